/**
 * Prometheus metrics (prom-client), served at /metrics.
 *
 * Counts that live in the store (jobs, steps and host tasks by status, agents by state,
 * callbacks by state and failed attempts) are read from it at scrape time (scrapes at once share
 * one read: store-figures.ts), so every server of a cluster reports the same,
 * true figures; what only this process sees (HTTP requests, dispatch
 * latency, store transaction latency, stream clients) is measured as it happens.
 */
import crypto from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Services } from '../services.js';
import { StoreFigureReader } from './store-figures.js';
import type { StoreFigures } from './store-figures.js';

function sameSecret(given: string, expected: string): boolean {
  const digest = (v: string) => crypto.createHash('sha256').update(v).digest();
  return crypto.timingSafeEqual(digest(given), digest(expected));
}

const TIME_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const MAX_IN_FLIGHT_DISPATCHES = 200_000;

/** The BK-JOB code an API reply carried (0 for success), noted where failures are answered. */
const apiCodes = new WeakMap<FastifyRequest, number>();
export function noteApiCode(req: FastifyRequest, code: number): void {
  apiCodes.set(req, code);
}

export class Metrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'endpoint' | 'code'>;
  private readonly requestSeconds: Histogram<'endpoint'>;
  private readonly dispatchSeconds: Histogram;
  private readonly transactionSeconds: Histogram<'op'>;
  private readonly dispatchedAt = new Map<string, number>();
  private readonly taskResults: Counter<'message'>;
  private readonly reader: StoreFigureReader;

  constructor(
    services: Pick<Services, 'store' | 'streams' | 'log'> & {
      hub?: { connectedHostIds(): number[] };
      /** Set after the metrics (the engine reports to them): read at each scrape. */
      engine?: { readonly relayedTaskCount: number };
    },
  ) {
    const registry = this.registry;
    collectDefaultMetrics({ register: registry, prefix: 'jobfleet_' });
    this.requests = new Counter({
      name: 'jobfleet_http_requests_total',
      help: 'HTTP requests by endpoint (API name or route) and code (BK-JOB code for the API, else HTTP status)',
      labelNames: ['endpoint', 'code'],
      registers: [registry],
    });
    this.requestSeconds = new Histogram({
      name: 'jobfleet_http_request_duration_seconds',
      help: 'HTTP request latency by endpoint',
      labelNames: ['endpoint'],
      buckets: TIME_BUCKETS,
      registers: [registry],
    });
    this.taskResults = new Counter({
      name: 'jobfleet_agent_task_results_total',
      help: 'task results received from agents, by message: task.report (start, output and result in one) or task.finished',
      labelNames: ['message'],
      registers: [registry],
    });
    this.dispatchSeconds = new Histogram({
      name: 'jobfleet_task_dispatch_seconds',
      help: 'time from sending a task to an agent to the agent reporting it started',
      buckets: TIME_BUCKETS,
      registers: [registry],
    });
    this.transactionSeconds = new Histogram({
      name: 'jobfleet_store_transaction_seconds',
      help: 'store transaction latency by operation',
      labelNames: ['op'],
      buckets: TIME_BUCKETS,
      registers: [registry],
    });
    const cluster = (services as { cluster?: Services['cluster'] }).cluster;
    const { store } = services;
    const reader = new StoreFigureReader(
      store.db,
      services.log,
      cluster ? () => cluster.store.view() : undefined,
      store.caps.name === 'sqlite' && store.location !== ':memory:' ? store.location : undefined,
    );
    this.reader = reader;
    const figures = () => reader.figures();
    /** A gauge of counts by one label, read from the store's figures (summed where keys repeat). */
    const counted = (
      name: string,
      help: string,
      label: string,
      pick: (f: StoreFigures) => { key: string; n: number }[],
      always: readonly string[] = [],
      extra?: (g: Gauge<string>) => void,
    ) =>
      new Gauge({
        name,
        help,
        labelNames: [label],
        registers: [registry],
        async collect() {
          const f = await figures();
          this.reset();
          extra?.(this);
          if (!f) return;
          const sums = new Map<string, number>(always.map((k) => [k, 0]));
          for (const r of pick(f)) sums.set(r.key, (sums.get(r.key) ?? 0) + r.n);
          for (const [key, n] of sums) this.set({ [label]: key }, n);
        },
      });
    counted('jobfleet_jobs', 'job instances by status', 'status', (f) => f.jobs);
    counted('jobfleet_steps', 'step instances by status', 'status', (f) => f.steps);
    counted('jobfleet_host_tasks', 'host tasks by status', 'status', (f) => f.hostTasks);
    const hub = services.hub;
    counted(
      'jobfleet_agents',
      'agents by state: connected (to this server), normal and abnormal (as the store records them)',
      'state',
      (f) => f.agents,
      [],
      (g) => g.set({ state: 'connected' }, hub?.connectedHostIds().length ?? 0),
    );
    counted(
      'jobfleet_callbacks',
      'job callbacks by delivery state (pending is the queue depth)',
      'state',
      (f) => f.callbacks,
      ['pending', 'delivered', 'failed'],
    );
    new Gauge({
      name: 'jobfleet_callback_failed_attempts',
      help: 'callback delivery attempts that failed (no 2xx answer), all time',
      registers: [registry],
      async collect() {
        const f = await figures();
        this.reset();
        if (f) this.set(f.failedAttempts);
      },
    });
    new Gauge({
      name: 'jobfleet_store_up',
      help: 'whether the store figures of this scrape could be read (1) or not (0: the store gauges are empty)',
      registers: [registry],
      async collect() {
        this.set((await figures()) ? 1 : 0);
      },
    });
    const streams = services.streams;
    new Gauge({
      name: 'jobfleet_stream_clients',
      help: 'event-stream (SSE) clients connected to this server',
      registers: [registry],
      collect() {
        this.set(streams.clientCount);
      },
    });
    new Gauge({
      name: 'jobfleet_stream_buffered_bytes',
      help: 'bytes written to event streams and not yet taken by their clients',
      registers: [registry],
      collect() {
        this.set(streams.bufferedBytes());
      },
    });
    if (cluster) {
      const view = async () => (await figures())?.cluster ?? { now: 0, servers: [] };
      new Gauge({
        name: 'jobfleet_cluster_servers',
        help: 'cluster servers by state (alive, dead in the last hour)',
        labelNames: ['state'],
        registers: [registry],
        async collect() {
          const { servers } = await view();
          this.reset();
          for (const s of ['alive', 'dead'])
            this.set({ state: s }, servers.filter((x) => x.state === s).length);
        },
      });
      new Gauge({
        name: 'jobfleet_cluster_server_info',
        help: 'each live cluster server: age in seconds (value), with agents held and jobs owned as their own gauges',
        labelNames: ['server', 'url'],
        registers: [registry],
        async collect() {
          const { now, servers } = await view();
          this.reset();
          for (const s of servers.filter((x) => x.state === 'alive'))
            this.set({ server: s.id, url: s.url }, Math.round((now - Number(s.started_at)) / 1000));
        },
      });
      new Gauge({
        name: 'jobfleet_cluster_relayed_tasks',
        help: 'unfinished tasks of jobs owned by other servers that this server carries for its agents',
        registers: [registry],
        collect() {
          this.set(services.engine?.relayedTaskCount ?? 0);
        },
      });
      for (const [name, help, field] of [
        ['jobfleet_cluster_agents_held', 'agents connected to each live cluster server', 'agents'],
        ['jobfleet_cluster_jobs_owned', 'unfinished jobs owned by each live cluster server', 'jobs'],
      ] as const) {
        new Gauge({
          name,
          help,
          labelNames: ['server'],
          registers: [registry],
          async collect() {
            const { servers } = await view();
            this.reset();
            for (const s of servers.filter((x) => x.state === 'alive')) this.set({ server: s.id }, s[field]);
          },
        });
      }
    }
    services.store.executions.observeTransactions((op, seconds) =>
      this.transactionSeconds.observe({ op }, seconds),
    );
  }

  /** Ends the thread that reads the store's counts on SQLite. */
  close(): Promise<void> {
    return this.reader.close();
  }

  taskDispatched(key: string): void {
    if (this.dispatchedAt.size >= MAX_IN_FLIGHT_DISPATCHES) this.dispatchedAt.clear();
    this.dispatchedAt.set(key, performance.now());
  }

  taskStarted(key: string): void {
    const at = this.dispatchedAt.get(key);
    if (at === undefined) return;
    this.dispatchedAt.delete(key);
    this.dispatchSeconds.observe((performance.now() - at) / 1000);
  }

  taskResult(message: 'task.report' | 'task.finished'): void {
    this.taskResults.inc({ message });
  }

  /**
   * Counts and times every request; registered before the routes so it sees all of them. An API
   * name is a label only when it names an API (`apiNames`): anyone can send others, and each
   * would add series that are never dropped.
   */
  instrument(app: FastifyInstance, apiNames: ReadonlySet<string>): void {
    app.addHook('onResponse', async (req, reply) => {
      const param = (req.params as { name?: unknown } | undefined)?.name;
      const name = typeof param === 'string' && apiNames.has(param) ? param : 'unknown';
      const endpoint =
        typeof param === 'string' && req.url.startsWith('/api/') && !req.url.startsWith('/api/admin')
          ? name
          : (req.routeOptions.url ?? 'unmatched');
      const code = apiCodes.get(req) ?? (endpoint === name ? 0 : reply.statusCode);
      this.requests.inc({ endpoint, code: String(code) });
      this.requestSeconds.observe({ endpoint }, reply.elapsedTime / 1000);
    });
  }

  /** GET /metrics, behind its own bearer token when one is configured. */
  route(app: FastifyInstance, token: string | undefined): void {
    app.get('/metrics', async (req, reply) => {
      if (token !== undefined && !sameSecret(req.headers.authorization ?? '', `Bearer ${token}`)) {
        return reply.code(401).header('www-authenticate', 'Bearer').send('metrics token required\n');
      }
      const text = await this.registry.metrics();
      return reply.header('content-type', this.registry.contentType).send(text);
    });
  }
}
