/**
 * Starting and stopping one server process: store, app bootstrap, agent hub, HTTP listener.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { AgentHub } from './agent-link/agent-hub.js';
import { Authenticator } from './api/auth.js';
import { ENDPOINTS } from './api/endpoints/index.js';
import { buildHttpApp } from './api/http-app.js';
import { ApiRateLimits } from './api/rate-limits.js';
import { startAuditRetention } from './audit/audit-retention.js';
import { startJobEventRetention } from './streams/job-event-retention.js';
import { startJobHistoryRetention } from './job-history-retention.js';
import { fileBodiesFor } from './files/file-bodies.js';
import { AuditTrail } from './audit/audit-trail.js';
import { randomUUID } from 'node:crypto';
import { ClusterNode } from './cluster/cluster-node.js';
import { ConfigError } from './config.js';
import type { ServerConfig } from './config.js';
import { CronScheduler } from './crons/cron-scheduler.js';
import { Engine } from './engine/engine.js';
import { createLogger } from './logger.js';
import { operatorAuthFor } from './operators/operator-setup.js';
import { redactingLogOptions } from './log-redaction.js';
import { resealInBackground } from './secret-rotation.js';
import { openSecretBox, resolveSecrets } from './secrets.js';
import type { ServerSecrets } from './secrets.js';
import { shareSecrets } from './shared-secrets.js';
import type { Services } from './services.js';
import { appSecretPurpose } from './store/app-store.js';
import { Store } from './store/store.js';
import { EventStreams } from './streams/event-streams.js';
import { Metrics } from './metrics/metrics.js';
import { OutputGroups } from './outputs/output-groups.js';

export interface RunningServer {
  services: Services;
  http: FastifyInstance;
  /** Base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  port: number;
  close(): Promise<void>;
}

/** How long a server declared dead by its cluster gives its stop before it exits anyway. */
const FENCED_STOP_MS = 10_000;
/**
 * Connections the kernel holds until the server accepts them. After a restart the whole fleet
 * connects within seconds, faster than the server takes them; past node's default of 511 the
 * kernel dropped the rest (5,000-15,000 attempts of a 5,000-agent return), and each dropped
 * agent's connect waited out TCP's retries (1, 3, 7 s), past 10 s a failed handshake. The
 * kernel caps it at net.core.somaxconn (4,096 on current Linux).
 */
const LISTEN_BACKLOG = 4096;

export async function startServer(config: ServerConfig): Promise<RunningServer> {
  const log = createLogger(
    { level: config.logLevel, base: { service: 'jobfleet-server' }, ...redactingLogOptions() },
    config.logFormat,
  );
  const clustered = clusterMode(config);
  const processId = randomUUID();
  const serverId = clustered ? processId : undefined;
  const store = await Store.open({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    serverId,
    // A transaction left open past the self-fence time is a paused server's (a live one would
    // have fenced itself by then): its locks must not keep others, or its agents moving to
    // another server, waiting until it is declared dead.
    idleInTransactionMs: clustered ? config.clusterSelfFenceMs : undefined,
    onPoolError: (err) =>
      log.warn({ err: err.message }, 'database connection lost; reconnecting on next use'),
  });
  log.info({ store: store.caps.name, location: store.location }, 'store ready');
  if (store.newerSchema.length > 0)
    log.warn(
      { migrations: store.newerSchema },
      'the database was migrated by a newer Jobfleet; this server runs on it as it is',
    );
  let secrets: ServerSecrets;
  try {
    secrets = await shareSecrets(store, config, resolveSecrets(config), log);
  } catch (err) {
    await store.close();
    throw err;
  }
  const secretBox = openSecretBox(config, secrets);

  // The configured app always exists with access to every scope, so a first start needs no set-up.
  await store.apps.upsertApp({
    appCode: config.appCode,
    secretSealed: secretBox.seal(secrets.appSecret, appSecretPurpose(config.appCode)),
    scopes: 'all',
  });

  // The hub and the engine need the services they belong to; they are attached right after.
  const auth = new Authenticator(store.apps, secretBox, store.nonces);
  const services = {
    config,
    processId,
    secrets,
    secretBox,
    store,
    auth,
    log,
    operators: operatorAuthFor(config, secrets, store),
    limits: new ApiRateLimits(config),
    auditTrail: new AuditTrail(store.audit, log),
    streams: new EventStreams(store.executions.events, config.streamPollMs),
    outputs: new OutputGroups(store.executions, store.outputs, log),
  } as Omit<Services, 'hub' | 'engine' | 'metrics'> as Services;
  const auditRetention = startAuditRetention(store, config.auditRetentionDays, log);
  if (clustered && serverId && config.databaseUrl) {
    services.cluster = new ClusterNode(services, config.databaseUrl, serverId);
    store.executions.ownerId = serverId;
  }
  const eventRetention = startJobEventRetention(store.executions.events, config.jobEventRetentionDays, log);
  services.hub = new AgentHub(services);
  services.metrics = new Metrics(services);
  services.engine = new Engine(services);
  services.hub.setEvents(services.engine);
  // Before listening: an agent that connects must find the jobs it holds results for.
  await services.engine.recover();

  const http = buildHttpApp(services, ENDPOINTS);
  http.server.on('upgrade', (req, socket, head) => services.hub.handleUpgrade(req, socket, head));
  services.hub.start();

  // Registered right before listening (heartbeats start now) and before anything is written:
  // the fence refuses writes of an unknown server.
  await services.cluster?.register(`http://${config.host}:${config.port}`);
  await http.listen({ port: config.port, host: config.host, backlog: LISTEN_BACKLOG });
  const scheduler = new CronScheduler(services);
  scheduler.start();
  const port = (http.server.address() as AddressInfo).port;
  const shownHost = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  const url = `http://${shownHost}:${port}`;
  log.info(
    { url, ...(services.cluster ? { serverId: services.cluster.id } : {}) },
    'jobfleet server listening',
  );
  resealInBackground(services);

  let closing: Promise<void> | undefined;
  const cluster = services.cluster;
  if (cluster) {
    await cluster.store.setUrl(cluster.id, url);
    cluster.start();
  }
  // Once the server is a cluster member: the fence refuses the deletes of a server not alive.
  const jobRetention = startJobHistoryRetention(
    store,
    fileBodiesFor(store, config.dataDir),
    config.jobRetentionDays,
    log,
  );
  // The parts of a stop in order; `stopping` names the one under way (a fenced server that
  // cannot finish says which part held it).
  let stopping = '';
  const stopParts: [string, () => unknown][] = [
    // A cluster member hands its jobs over first (they are claimed at the next sweep).
    ['cluster drain', () => cluster?.drain()],
    ['cron scheduler', () => scheduler.stop()],
    // Agent sockets and streams first: an open one would keep http.close() waiting.
    ['event streams', () => services.streams.close()],
    ['agent links', () => services.hub.close()],
    ['HTTP listener', () => http.close()],
    ['engine', () => services.engine.close()],
    ['output groups', () => services.outputs.close()],
    [
      'retention',
      () => {
        auditRetention.stop();
        eventRetention.stop();
        jobRetention.stop();
      },
    ],
    ['audit trail', () => services.auditTrail.flush()],
    ['metrics', () => services.metrics.close()],
    ['store', () => store.close()],
  ];
  const running: RunningServer = {
    services,
    http,
    url,
    port,
    close() {
      closing ??= (async () => {
        for (const [name, stop] of stopParts) {
          stopping = name;
          await stop();
        }
      })();
      return closing;
    },
  };
  if (cluster) {
    cluster.onFenced = () => {
      // Declared dead: others run this server's jobs now. Stop and exit for a fresh start (new
      // id). The fence refuses every write the stop could still make, so a part that does not
      // finish (a request whose body never comes, a firing waiting on the store) is left to the
      // exit: a dead server that stayed up would answer calls it can no longer carry out.
      const late = setTimeout(() => {
        log.error({ waitingOn: stopping }, 'declared dead: the stop did not finish in time; exiting');
        process.exit(3);
      }, FENCED_STOP_MS);
      void running.close().finally(() => {
        clearTimeout(late);
        process.exit(3);
      });
    };
    // Drained on an operator's request: leave as on SIGTERM, and exit 0 (a supervisor that
    // restarts only on failure leaves it stopped).
    cluster.onDrainRequested = () => void running.close().finally(() => process.exit(0));
  }
  return running;
}

function clusterMode(config: ServerConfig): boolean {
  if (!config.cluster) return false;
  if (!config.databaseUrl || !/^postgres(ql)?:\/\//.test(config.databaseUrl))
    throw new ConfigError(
      'cluster mode (JOBFLEET_CLUSTER) needs PostgreSQL: set JOBFLEET_DATABASE_URL=postgres://...',
    );
  return true;
}
