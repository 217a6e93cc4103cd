/**
 * Server configuration, parsed once at start. Precedence: command-line flag > environment
 * variable > config file (JSON) > default. Nothing else in the server reads process.env.
 */
import fs from 'node:fs';
import { z } from 'zod';
import { allowListEntryError, splitAllowList } from './engine/callback-allow-list.js';

const MiB = 1024 * 1024;

const int = (min: number) => z.coerce.number().int().min(min);
/** A yes/no setting, off unless given as true or 1. */
const flag = () =>
  z
    .union([z.boolean(), z.enum(['true', 'false', '1', '0'])])
    .transform((v) => v === true || v === 'true' || v === '1')
    .default(false);

/** Each key: its schema, its environment variable, and what it is for (shown by --help). */
export const CONFIG_KEYS = {
  port: {
    schema: int(0).max(65535).default(8080),
    env: 'JOBFLEET_PORT',
    doc: 'HTTP port for the API and agent links (0 picks a free port)',
  },
  host: { schema: z.string().default('0.0.0.0'), env: 'JOBFLEET_HOST', doc: 'address to listen on' },
  dataDir: {
    schema: z.string().default('.jobfleet'),
    env: 'JOBFLEET_DATA_DIR',
    doc: 'directory for the embedded database and generated secrets',
  },
  databaseUrl: {
    schema: z.string().optional(),
    env: 'JOBFLEET_DATABASE_URL',
    doc: 'postgres://... to use PostgreSQL; default is SQLite in the data directory',
  },
  appCode: {
    schema: z
      .string()
      .min(1)
      .refine((c) => c !== 'admin', "admin is the admin token's own code")
      .default('jobfleet'),
    env: 'JOBFLEET_APP_CODE',
    doc: 'app code ensured at start with access to every scope',
  },
  appSecret: {
    schema: z.string().min(8).optional(),
    env: 'JOBFLEET_APP_SECRET',
    doc: 'its secret (generated and kept in the data directory when unset)',
  },
  adminToken: {
    schema: z.string().min(8).optional(),
    env: 'JOBFLEET_ADMIN_TOKEN',
    doc: 'token for /api/admin (generated when unset)',
  },
  agentBootstrapToken: {
    schema: z.string().min(8).optional(),
    env: 'JOBFLEET_AGENT_BOOTSTRAP_TOKEN',
    doc: 'token agents register with (generated when unset)',
  },
  serverKey: {
    schema: z.string().optional(),
    env: 'JOBFLEET_SERVER_KEY',
    doc: 'key (32 bytes, base64 or hex) that encrypts secrets at rest; generated and kept in the data directory when unset; the same on every server of a cluster',
  },
  serverKeysPrevious: {
    schema: z.string().default(''),
    env: 'JOBFLEET_SERVER_KEYS_PREVIOUS',
    doc: 'comma-separated earlier server keys, still accepted for reading secrets sealed before a rotation',
  },
  bodyLimitBytes: {
    schema: int(1024).default(64 * MiB),
    env: 'JOBFLEET_BODY_LIMIT_BYTES',
    doc: 'largest accepted request body',
  },
  heartbeatIntervalMs: {
    schema: int(100).default(5000),
    env: 'JOBFLEET_HEARTBEAT_INTERVAL_MS',
    doc: 'how often agents send a heartbeat',
  },
  heartbeatTimeoutMs: {
    schema: int(300).default(30000),
    env: 'JOBFLEET_HEARTBEAT_TIMEOUT_MS',
    doc: 'silence after which an agent is abnormal and its running tasks fail (310)',
  },
  logCapBytes: {
    schema: int(1024).default(5 * MiB),
    env: 'JOBFLEET_LOG_CAP_BYTES',
    doc: 'output kept per host task: the tail held back until the task ends is half of it up to 8 MiB, the head streaming live is the rest; the middle is dropped and counted',
  },
  callbackMaxAttempts: {
    schema: int(1).max(100).default(5),
    env: 'JOBFLEET_CALLBACK_MAX_ATTEMPTS',
    doc: 'attempts to deliver a job callback before giving up',
  },
  callbackBackoffBaseMs: {
    schema: int(10).default(1000),
    env: 'JOBFLEET_CALLBACK_BACKOFF_BASE_MS',
    doc: 'wait before the second callback attempt; doubles after each failure',
  },
  callbackBackoffCapMs: {
    schema: int(10).default(60000),
    env: 'JOBFLEET_CALLBACK_BACKOFF_CAP_MS',
    doc: 'longest wait between callback attempts',
  },
  callbackTimeoutMs: {
    schema: int(100).default(10000),
    env: 'JOBFLEET_CALLBACK_TIMEOUT_MS',
    doc: 'time a callback receiver has to answer',
  },
  callbackAllowList: {
    schema: z
      .string()
      .default('')
      .transform(splitAllowList)
      .superRefine((entries, ctx) => {
        for (const e of entries) {
          const error = allowListEntryError(e);
          if (error) ctx.addIssue({ code: 'custom', message: error });
        }
      }),
    env: 'JOBFLEET_CALLBACK_ALLOW_LIST',
    doc: 'comma-separated base URLs a callback_url must fall under (same scheme, host, port; path below); empty allows any',
  },
  fileFanout: {
    schema: int(1).max(1000).default(4),
    env: 'JOBFLEET_FILE_FANOUT',
    doc: 'concurrent downloads one host serves for a large file; finished targets serve the rest',
  },
  uploadMaxBytes: {
    schema: int(1).default(5 * 1024 * MiB),
    env: 'JOBFLEET_UPLOAD_MAX_BYTES',
    doc: 'largest file accepted by a local upload URL',
  },
  uploadUrlTtlSeconds: {
    schema: int(1).default(3600),
    env: 'JOBFLEET_UPLOAD_URL_TTL_SECONDS',
    doc: 'how long an upload URL from generate_local_file_upload_url stays valid',
  },
  logLevel: {
    schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    env: 'JOBFLEET_LOG_LEVEL',
    doc: 'server log level',
  },
  apiRatePerApp: {
    schema: int(0).default(20000),
    env: 'JOBFLEET_API_RATE_PER_APP',
    doc: 'API calls one app may make per second (0: no limit)',
  },
  apiRatePerAddress: {
    schema: int(0).default(20000),
    env: 'JOBFLEET_API_RATE_PER_ADDRESS',
    doc: 'calls one client address may make per second under /api/ (BK-JOB API, admin API, uploads) and to agent registration, counted before authentication (0: no limit)',
  },
  maxRunningJobsPerScope: {
    schema: int(0).default(5000),
    env: 'JOBFLEET_MAX_RUNNING_JOBS_PER_SCOPE',
    doc: 'running jobs one business or business set may have at once (0: no limit)',
  },
  maxRunningHostsPerScope: {
    schema: int(0).default(1000000),
    env: 'JOBFLEET_MAX_RUNNING_HOSTS_PER_SCOPE',
    doc: 'hosts in the running jobs of one business or business set (0: no limit)',
  },
  auditRetentionDays: {
    schema: int(0).default(365),
    env: 'JOBFLEET_AUDIT_RETENTION_DAYS',
    doc: 'days the audit log keeps an entry, and dangerous-rule hits as long (pruned hourly; 0 keeps both forever)',
  },
  sessionIdleSeconds: {
    schema: int(1).default(3600),
    env: 'JOBFLEET_SESSION_IDLE_SECONDS',
    doc: 'a console session unused for this long ends',
  },
  sessionMaxSeconds: {
    schema: int(1).default(12 * 3600),
    env: 'JOBFLEET_SESSION_MAX_SECONDS',
    doc: 'a console session ends this long after sign-in, however active',
  },
  trustProxy: {
    schema: z.string().default(''),
    env: 'JOBFLEET_TRUST_PROXY',
    doc: 'addresses or CIDRs (comma separated) of load balancers in front of the server: their X-Forwarded-For and X-Forwarded-Proto name the client (address limits, sign-in lockout, audit, the Secure session cookie); empty trusts none',
  },
  loginMaxFailuresPerUser: {
    schema: int(1).default(10),
    env: 'JOBFLEET_LOGIN_MAX_FAILURES_PER_USER',
    doc: 'failed sign-ins for one user name within the window before further attempts are refused',
  },
  loginMaxFailuresPerAddress: {
    schema: int(1).default(50),
    env: 'JOBFLEET_LOGIN_MAX_FAILURES_PER_ADDRESS',
    doc: 'failed sign-ins from one client address within the window before further attempts are refused',
  },
  loginFailureWindowSeconds: {
    schema: int(1).default(900),
    env: 'JOBFLEET_LOGIN_FAILURE_WINDOW_SECONDS',
    doc: 'window over which failed sign-ins are counted; a block lasts until it ends',
  },
  logFormat: {
    schema: z.enum(['auto', 'json', 'pretty']).default('auto'),
    env: 'JOBFLEET_LOG_FORMAT',
    doc: 'log lines as JSON or pretty and coloured; auto: pretty on a terminal, JSON otherwise',
  },
  streamMaxEventsPerSecond: {
    schema: int(0).default(50),
    env: 'JOBFLEET_STREAM_MAX_EVENTS_PER_SECOND',
    doc: 'default cap on messages per second to one event-stream client; past it host and log events are coalesced (0: never)',
  },
  streamMaxPerCaller: {
    schema: int(1).default(100),
    env: 'JOBFLEET_STREAM_MAX_PER_CALLER',
    doc: 'event streams one app or person may hold open on one server at once; past it a stream is refused',
  },
  streamPollMs: {
    schema: int(50).default(1000),
    env: 'JOBFLEET_STREAM_POLL_MS',
    doc: 'how often an idle event stream looks for events other servers of a cluster wrote',
  },
  metricsToken: {
    schema: z.string().min(8).optional(),
    env: 'JOBFLEET_METRICS_TOKEN',
    doc: 'bearer token /metrics asks for; unset: /metrics is open',
  },
  cronSecondsField: {
    schema: flag(),
    env: 'JOBFLEET_CRON_SECONDS_FIELD',
    doc: 'for tests only: cron expressions may carry a leading seconds field (6 fields), so firings come seconds apart',
  },
  cronTickMs: {
    schema: int(50).max(60_000).default(1000),
    env: 'JOBFLEET_CRON_TICK_MS',
    doc: 'how often the scheduler looks for due cron times',
  },
  cluster: {
    schema: flag(),
    env: 'JOBFLEET_CLUSTER',
    doc: 'run as one of several servers sharing one PostgreSQL database (see docs/cluster.md); off: a single server, as on SQLite',
  },
  clusterHeartbeatMs: {
    schema: int(50).default(2000),
    env: 'JOBFLEET_CLUSTER_HEARTBEAT_MS',
    doc: 'cluster: how often this server renews its liveness row (database clock)',
  },
  clusterDeadAfterMs: {
    schema: int(300).default(10_000),
    env: 'JOBFLEET_CLUSTER_DEAD_AFTER_MS',
    doc: 'cluster: a server whose liveness row is older than this is marked dead and its jobs are taken over',
  },
  clusterSweepMs: {
    schema: int(50).default(2000),
    env: 'JOBFLEET_CLUSTER_SWEEP_MS',
    doc: 'cluster: how often each server looks for dead servers and orphaned jobs',
  },
  clusterSelfFenceMs: {
    schema: int(100).default(6000),
    env: 'JOBFLEET_CLUSTER_SELF_FENCE_MS',
    doc: 'cluster: without a successful heartbeat for this long a server stops working and answers /healthz 503, and PostgreSQL ends a transaction of it left idle this long (keep it below the dead-after time)',
  },
  clusterPollMs: {
    schema: int(20).default(1000),
    env: 'JOBFLEET_CLUSTER_POLL_MS',
    doc: 'cluster: backstop poll for commands to held agents and results of owned jobs (NOTIFY wakes it sooner)',
  },
  clusterAgentGraceMs: {
    schema: int(100).default(60_000),
    env: 'JOBFLEET_CLUSTER_AGENT_GRACE_MS',
    doc: 'cluster: after the server holding an agent dies, how long its tasks wait for the agent to reconnect elsewhere before failing (310)',
  },
  jobEventRetentionDays: {
    schema: int(0).default(30),
    env: 'JOBFLEET_JOB_EVENT_RETENTION_DAYS',
    doc: 'days the event streams can replay a finished job (its events are pruned hourly; events of unfinished jobs are kept; 0 keeps events forever)',
  },
  jobRetentionDays: {
    schema: int(0).default(0),
    env: 'JOBFLEET_JOB_RETENTION_DAYS',
    doc: 'days a finished job is kept after its end, with its steps, host results, logs, variables and callbacks, a cron firing after its time, and a stored file (upload, pushed config) nothing named for as long (removed hourly; unfinished jobs are kept; 0 keeps every job forever)',
  },
  consoleDir: {
    schema: z.string().optional(),
    env: 'JOBFLEET_CONSOLE_DIR',
    doc: "directory of the built web console served under / (default: the console workspace's build)",
  },
} as const;

type Keys = typeof CONFIG_KEYS;
export type ServerConfig = { [K in keyof Keys]: z.output<Keys[K]['schema']> };
export type ConfigInput = Partial<Record<keyof Keys, string | number | undefined>>;

export class ConfigError extends Error {}

export function readConfigFile(file: string | undefined): ConfigInput {
  if (!file) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
  }
  if (!parsed || typeof parsed !== 'object')
    throw new ConfigError(`config file ${file} must hold a JSON object`);
  return parsed as ConfigInput;
}

export function loadConfig(sources: {
  flags?: ConfigInput;
  env?: NodeJS.ProcessEnv;
  file?: ConfigInput;
}): ServerConfig {
  const out: Record<string, unknown> = {};
  for (const [key, def] of Object.entries(CONFIG_KEYS) as [keyof Keys, Keys[keyof Keys]][]) {
    const raw = sources.flags?.[key] ?? sources.env?.[def.env] ?? sources.file?.[key];
    const parsed = def.schema.safeParse(raw === '' ? undefined : raw);
    if (!parsed.success) {
      throw new ConfigError(
        `invalid ${key} (${def.env}): ${parsed.error.issues.map((i) => i.message).join('; ')}`,
      );
    }
    out[key] = parsed.data;
  }
  const config = out as ServerConfig;
  const clash = timingClash(config);
  if (clash) throw new ConfigError(clash);
  return config;
}

/**
 * Timings that only work in one order, each fine alone: a heartbeat window shorter than two
 * beats marks healthy agents abnormal between beats (their running tasks fail, 310); a cluster
 * server that fences itself no sooner than the others declare it dead keeps working on jobs
 * they have taken over, and one renewing its row no sooner than it fences stops at every beat.
 */
function timingClash(c: ServerConfig): string | undefined {
  if (c.heartbeatTimeoutMs < 2 * c.heartbeatIntervalMs)
    return `heartbeatTimeoutMs (JOBFLEET_HEARTBEAT_TIMEOUT_MS, ${c.heartbeatTimeoutMs}) must be at least twice heartbeatIntervalMs (JOBFLEET_HEARTBEAT_INTERVAL_MS, ${c.heartbeatIntervalMs})`;
  if (c.clusterSelfFenceMs >= c.clusterDeadAfterMs)
    return `clusterSelfFenceMs (JOBFLEET_CLUSTER_SELF_FENCE_MS, ${c.clusterSelfFenceMs}) must be below clusterDeadAfterMs (JOBFLEET_CLUSTER_DEAD_AFTER_MS, ${c.clusterDeadAfterMs})`;
  if (c.clusterHeartbeatMs >= c.clusterSelfFenceMs)
    return `clusterHeartbeatMs (JOBFLEET_CLUSTER_HEARTBEAT_MS, ${c.clusterHeartbeatMs}) must be below clusterSelfFenceMs (JOBFLEET_CLUSTER_SELF_FENCE_MS, ${c.clusterSelfFenceMs})`;
  return undefined;
}
