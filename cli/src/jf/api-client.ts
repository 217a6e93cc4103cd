/**
 * Every call `jf` makes to a server goes through this module: the v3 API with the connection's
 * credentials and scope, an envelope check that maps failures to exit codes, and the few job
 * reads the commands share (status, host logs, operations).
 */
import type { Connection, Scope } from './profile.js';
import { CliError, Exit } from './exit-codes.js';

export interface Envelope<T = unknown> {
  result: boolean;
  code: number;
  message: string;
  data: T;
}

/** Codes a person fixes by changing credentials: app auth (1247xxx) and user auth (1238xxx). */
export function isAuthCode(code: number): boolean {
  return (code >= 1247000 && code < 1248000) || (code >= 1238000 && code < 1239000);
}

export interface RequestOptions {
  signal?: AbortSignal | undefined;
  timeoutMs?: number | undefined;
}

/** The reply as a v3 envelope, or undefined when it is none (an HTML error page, a proxy's JSON). */
export function envelopeOf<T = unknown>(text: string): Envelope<T> | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof doc !== 'object' || doc === null || typeof (doc as { result?: unknown }).result !== 'boolean')
    return undefined;
  return doc as Envelope<T>;
}

/** A refused call as the operator sees it: the server's message, exit 4 for credentials, else 1. */
export function failureOf(env: Envelope): CliError {
  return new CliError(
    `${env.message} (code ${env.code})`,
    isAuthCode(env.code) ? Exit.AUTH : Exit.FAILED,
    env.code,
  );
}

/**
 * The exit code of a raw reply (`jf api`): a refusal in its envelope as `call` maps it; without
 * an envelope, the HTTP status (401 is credentials).
 */
export function replyExitCode(status: number, text: string): Exit {
  const env = envelopeOf(text);
  if (env && !env.result) return failureOf(env).exitCode;
  if (status === 401) return Exit.AUTH;
  if (status >= 400) return Exit.FAILED;
  return Exit.OK;
}

export function authHeaders(conn: Connection): Record<string, string> {
  const a = conn.auth;
  if (!a) return {};
  if (a.kind === 'bearer') return { authorization: `Bearer ${a.token}` };
  return {
    'x-bkapi-authorization': JSON.stringify({
      bk_app_code: a.code,
      bk_app_secret: a.secret,
      ...(conn.user ? { bk_username: conn.user } : {}),
    }),
  };
}

/** Rows asked per page of a list. */
const LIST_PAGE = 1000;
/** Hosts one batch_get_job_instance_ip_log call may name. */
const MAX_BATCH_HOSTS = 500;

export class ApiClient {
  constructor(readonly conn: Connection) {}

  scope(): Scope {
    if (!this.conn.scope)
      throw new CliError(
        'no scope: pass --scope biz:<id>, set JOBFLEET_SCOPE or run `jf login --scope`',
        Exit.USAGE,
      );
    return this.conn.scope;
  }

  /**
   * One raw HTTP call; the reply's body text and status. `signal` stops it (the caller decides
   * what that means); `timeoutMs` gives up on a server that accepts the request and never answers.
   */
  async raw(
    method: string,
    path: string,
    body?: string,
    opts: RequestOptions = {},
  ): Promise<{ status: number; text: string; date: string | null }> {
    if (!this.conn.auth && !path.startsWith('/health'))
      throw new CliError('no credentials: run `jf login`, or pass --token / set JOBFLEET_TOKEN', Exit.AUTH);
    const timeout = opts.timeoutMs === undefined ? undefined : AbortSignal.timeout(opts.timeoutMs);
    const signals = [opts.signal, timeout].filter((s): s is AbortSignal => s !== undefined);
    try {
      const res = await fetch(this.conn.server + path, {
        method,
        headers: { 'content-type': 'application/json', ...authHeaders(this.conn) },
        ...(body === undefined ? {} : { body }),
        ...(signals.length ? { signal: AbortSignal.any(signals) } : {}),
      });
      return { status: res.status, text: await res.text(), date: res.headers.get('date') };
    } catch (err) {
      if (timeout?.aborted && !opts.signal?.aborted)
        throw new CliError(`cannot reach ${this.conn.server}: no answer within ${opts.timeoutMs} ms`);
      const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : String(err);
      throw new CliError(`cannot reach ${this.conn.server}: ${cause}`);
    }
  }

  /** A v3 API call in the connection's scope; the reply's data, or a CliError with the server's message. */
  call<T>(
    name: string,
    params: Record<string, unknown> = {},
    scoped = true,
    opts?: RequestOptions,
  ): Promise<T> {
    return this.callPath<T>(`/api/v3/${name}`, params, scoped, opts);
  }

  /** `call` on any path (e.g. /api/v3/system/...). */
  async callPath<T>(
    path: string,
    params: Record<string, unknown> = {},
    scoped = true,
    opts?: RequestOptions,
  ): Promise<T> {
    const scope = scoped ? { bk_scope_type: this.scope().type, bk_scope_id: this.scope().id } : {};
    const { text } = await this.raw('POST', path, JSON.stringify({ ...scope, ...params }), opts);
    const env = envelopeOf<T>(text);
    if (!env) throw new CliError(`${this.conn.server} did not answer as a Jobfleet server (${path})`);
    if (!env.result) throw failureOf(env);
    return env.data;
  }

  /** Every row of a paged list (`start`/`length`), a page of 1,000 at a time. */
  async readAll<T>(name: string, params: Record<string, unknown> = {}): Promise<T[]> {
    const rows: T[] = [];
    for (;;) {
      const page = await this.call<{ data: T[] | null; total?: number }>(name, {
        ...params,
        start: rows.length,
        length: LIST_PAGE,
      });
      rows.push(...(page.data ?? []));
      if ((page.data ?? []).length < LIST_PAGE || (page.total !== undefined && rows.length >= page.total))
        return rows;
    }
  }

  jobStatus(jobId: number, opts?: RequestOptions): Promise<JobStatus> {
    return this.call<JobStatus>(
      'get_job_instance_status',
      { job_instance_id: jobId, return_ip_result: true },
      true,
      opts,
    );
  }

  /**
   * batch_get_job_instance_ip_log over any number of hosts, one reply per call: 500 hosts a call
   * (the API's limit), fewer from the first call the server refuses for holding more log text
   * than one reply may (1241007 naming host_id_list); those hosts are asked again in halves.
   */
  async *logBatches<T>(params: Record<string, unknown>, hostIds: readonly number[]): AsyncGenerator<T> {
    let size = MAX_BATCH_HOSTS;
    for (let i = 0; i < hostIds.length;) {
      const part = hostIds.slice(i, i + size);
      let reply: T;
      try {
        reply = await this.call<T>('batch_get_job_instance_ip_log', { ...params, host_id_list: part });
      } catch (err) {
        const tooMuch =
          err instanceof CliError && err.apiCode === 1241007 && /host_id_list/.test(err.message);
        if (!tooMuch || part.length === 1) throw err;
        size = Math.ceil(part.length / 2);
        continue;
      }
      i += part.length;
      yield reply;
    }
  }

  /**
   * The whole stored output of each host of a step, a batch of hosts at a time (`logBatches`);
   * for a file step, one line per file it sent or received.
   */
  async *hostLogBatches(
    jobId: number,
    stepId: number,
    hostIds: readonly number[],
  ): AsyncGenerator<Map<number, string>> {
    const batches = this.logBatches<{
      script_task_logs: { bk_host_id: number; log_content: string | null }[] | null;
      file_task_logs: { bk_host_id: number; file_logs: FileLog[] | null }[] | null;
    }>({ job_instance_id: jobId, step_instance_id: stepId }, hostIds);
    for await (const data of batches) {
      const out = new Map<number, string>();
      for (const l of data.script_task_logs ?? []) out.set(l.bk_host_id, l.log_content ?? '');
      for (const l of data.file_task_logs ?? [])
        out.set(l.bk_host_id, [...new Set((l.file_logs ?? []).flatMap(fileLogLine))].join(''));
      yield out;
    }
  }

  /** `hostLogBatches` gathered, for what needs every host's output at once. */
  async hostLogs(jobId: number, stepId: number, hostIds: readonly number[]): Promise<Map<number, string>> {
    const out = new Map<number, string>();
    for await (const batch of this.hostLogBatches(jobId, stepId, hostIds))
      for (const [k, v] of batch) out.set(k, v);
    return out;
  }

  /** `reason` is kept with a confirmation step's continue (6) or terminate (9). */
  operateStep(jobId: number, stepId: number, operationCode: number, reason?: string): Promise<unknown> {
    return this.call('operate_step_instance', {
      job_instance_id: jobId,
      step_instance_id: stepId,
      operation_code: operationCode,
      ...(reason === undefined ? {} : { confirm_reason: reason }),
    });
  }

  operateJob(jobId: number, operationCode: number): Promise<unknown> {
    return this.call('operate_job_instance', { job_instance_id: jobId, operation_code: operationCode });
  }
}

export interface HostResult {
  bk_host_id: number;
  ip: string | null;
  bk_cloud_id: number | null;
  status: number;
  exit_code: number | null;
  start_time: number | null;
  end_time: number | null;
}

export interface StepStatus {
  step_instance_id: number;
  name: string;
  status: number;
  type: number;
  execute_count: number;
  step_ip_result_list: HostResult[] | null;
}

export interface JobStatus {
  finished: boolean;
  job_instance: {
    job_instance_id: number;
    name: string;
    status: number;
    create_time: number;
    start_time: number | null;
    end_time: number | null;
  };
  step_instance_list: StepStatus[];
}

interface FileLog {
  mode: number;
  src_path: string;
  dest_path?: string;
  size: string | null;
  log_content: string | null;
}

/**
 * One line per file the host received, without the time stamp of the server's log line (so
 * that hosts that received the same files gather into one group): `/opt/app.tgz 3.0 MB
 * download success`. A host that was a source adds a line only when sending failed.
 */
export function fileLogLine(f: FileLog): string[] {
  const m = /State: (.*?) Speed:.*Detail: ?(.*)$/s.exec(f.log_content ?? '');
  const state = m?.[1] ?? '';
  const detail = m?.[2]?.trim() ?? '';
  if (f.mode === 0 && state.endsWith('success')) return [];
  const file = f.mode === 1 ? (f.dest_path ?? f.src_path) : `${f.src_path} (source)`;
  return [[file, f.size ?? '', state].filter(Boolean).join(' ') + (detail ? `: ${detail}` : '') + '\n'];
}
