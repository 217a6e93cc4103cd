/**
 * A small fleet for end-to-end tests: one server, business 2 with an execution account for
 * the current OS user, and N agents on 127.0.0.2, 127.0.0.3, ... placed in that business.
 */
import os from 'node:os';
import { admin, post, get, eventually } from './api-client.js';
import type { ApiCreds, Envelope } from './api-client.js';
import { dropFreshDatabases, freshDatabase } from './databases.js';
import type { EngineName } from './databases.js';
import { startAgent, startServer, stopAll, tempDir } from './processes.js';
import type { AgentProcess, ServerOptions, ServerProcess } from './processes.js';

export const BIZ = 2;

export interface Fleet {
  server: ServerProcess;
  agents: AgentProcess[];
  /** ip -> bk_host_id */
  hostIds: Map<string, number>;
  creds: ApiCreds;
  account: string;
  scope: { bk_scope_type: 'biz'; bk_scope_id: string };
  /** ip -> the directory that agent sees as "/" for files (when started with fileRoots). */
  fileRoots: Map<string, string>;
  /** The PostgreSQL database of the fleet; undefined on SQLite (the server's data dir holds it). */
  databaseUrl: string | undefined;
}

/** The test business's hosts, ip -> bk_host_id, as the admin API lists them. */
export async function hostIdsByIp(url: string, adminToken: string): Promise<Map<string, number>> {
  const hosts = await admin<{ hosts: { bk_host_id: number; ip: string }[] }>(
    url,
    adminToken,
    'GET',
    `/hosts?bk_biz_id=${BIZ}`,
  );
  return new Map(hosts.data.hosts.map((h) => [h.ip, h.bk_host_id]));
}

export async function startFleet(
  engine: EngineName,
  agentCount: number,
  opts: ServerOptions & { fileRoots?: boolean } = {},
): Promise<Fleet> {
  const { fileRoots: wantRoots, ...serverOpts } = opts;
  const databaseUrl = await freshDatabase(engine);
  const server = await startServer({ ...serverOpts, ...(databaseUrl ? { databaseUrl } : {}) });
  const created = await admin(server.url, server.adminToken, 'POST', '/biz', {
    id: BIZ,
    name: 'test business',
  });
  if (!created.result) throw new Error(created.message);
  const account = os.userInfo().username;
  await admin(server.url, server.adminToken, 'POST', '/accounts', {
    bk_biz_id: BIZ,
    alias: account,
    os_user: account,
  });
  const fileRoots = new Map<string, string>();
  const agents = await Promise.all(
    Array.from({ length: agentCount }, (_, i) => {
      const ip = `127.0.0.${i + 2}`;
      // Scripts see which test host runs them through TEST_AGENT_IP (all agents share one machine);
      // with file roots, each agent also has its own view of the filesystem for file steps.
      const root = wantRoots ? tempDir(`root-${ip}`) : undefined;
      if (root) fileRoots.set(ip, root);
      return startAgent({
        server,
        ip,
        biz: BIZ,
        env: { TEST_AGENT_IP: ip, ...(root ? { JOBFLEET_AGENT_FILE_ROOT: root } : {}) },
      });
    }),
  );
  const hostIds = await hostIdsByIp(server.url, server.adminToken);
  return {
    server,
    agents,
    hostIds,
    creds: { appCode: server.appCode, appSecret: server.appSecret, username: 'tester' },
    account,
    scope: { bk_scope_type: 'biz', bk_scope_id: String(BIZ) },
    fileRoots,
    databaseUrl,
  };
}

/**
 * Stops every process the test file started, then drops the PostgreSQL databases its fleets
 * used: a suite run on PostgreSQL would otherwise leave one behind per fleet.
 */
export async function stopFleets(): Promise<void> {
  await stopAll();
  await dropFreshDatabases();
}

export const b64 = (s: string) => Buffer.from(s).toString('base64');

export interface JobStatus {
  finished: boolean;
  job_instance: Record<string, unknown> & { status: number; job_instance_id: number };
  step_instance_list: (Record<string, unknown> & {
    step_instance_id: number;
    status: number;
    step_ip_result_list:
      (Record<string, unknown> & { bk_host_id: number; status: number; exit_code: number })[] | null;
  })[];
}

export async function runScript(
  fleet: Fleet,
  body: Record<string, unknown>,
): Promise<Envelope<{ job_instance_id: number; step_instance_id: number; job_instance_name: string }>> {
  return post(
    fleet.server.url,
    'fast_execute_script',
    { ...fleet.scope, script_language: 1, account_alias: fleet.account, ...body },
    fleet.creds,
  );
}

/** operate_job_instance (1 terminate, 2 start) through the fleet's server. */
export function operateJob(
  fleet: Fleet,
  jobInstanceId: number,
  operationCode: 1 | 2,
): Promise<Envelope<{ job_instance_id: number }>> {
  return post(
    fleet.server.url,
    'operate_job_instance',
    { ...fleet.scope, job_instance_id: jobInstanceId, operation_code: operationCode },
    fleet.creds,
  );
}

/** Where a job's status is read: a fleet, or any server with a scope and credentials. */
type JobApi = { server: { url: string }; scope: Record<string, string>; creds: ApiCreds };

/** get_job_instance_status with host results (GET, query string). */
export async function jobStatus(fleet: JobApi, jobInstanceId: number): Promise<JobStatus> {
  const r = await get<JobStatus>(
    fleet.server.url,
    'get_job_instance_status',
    { ...fleet.scope, job_instance_id: jobInstanceId, return_ip_result: true },
    fleet.creds,
  );
  if (!r.result) throw new Error(r.message);
  return r.data;
}

/** Polls get_job_instance_status until the job is finished. */
export async function waitFinished(
  fleet: JobApi,
  jobInstanceId: number,
  timeoutMs = 20_000,
): Promise<JobStatus> {
  return eventually(
    async () => {
      const st = await jobStatus(fleet, jobInstanceId);
      return st.finished ? st : undefined;
    },
    timeoutMs,
    `job ${jobInstanceId} to finish`,
  );
}

export async function hostLog(
  fleet: Fleet,
  jobInstanceId: number,
  stepInstanceId: number,
  hostId: number,
): Promise<string | null> {
  const r = await get<{ log_content: string | null }>(
    fleet.server.url,
    'get_job_instance_ip_log',
    { ...fleet.scope, job_instance_id: jobInstanceId, step_instance_id: stepInstanceId, bk_host_id: hostId },
    fleet.creds,
  );
  if (!r.result) throw new Error(r.message);
  return r.data.log_content;
}

/** One entry of a host's `file_logs` in get_job_instance_ip_log and its batch form. */
export interface FileLogItem {
  mode: number;
  src_ip: { bk_host_id: number; ip: string | null };
  src_path: string;
  dest_ip?: { bk_host_id: number; ip: string | null };
  dest_path?: string;
  status: number;
  log_content: string;
  size: string | null;
  speed: string | null;
  process: string | null;
}

export interface CallbackRecord {
  state: string;
  attempts: number;
  attempt_list: { http_status: number }[];
}

/** Polls get_job_instance_callback_list until the job's first callback was delivered. */
export async function waitCallbackDelivered(
  fleet: Fleet,
  jobInstanceId: number,
  timeoutMs = 15_000,
): Promise<CallbackRecord> {
  return eventually(
    async () => {
      const list = await get<{ callback_list: CallbackRecord[] }>(
        fleet.server.url,
        'get_job_instance_callback_list',
        { ...fleet.scope, job_instance_id: jobInstanceId },
        fleet.creds,
      );
      const c = list.data.callback_list[0];
      return c?.state === 'delivered' ? c : undefined;
    },
    timeoutMs,
    `callback of job ${jobInstanceId} delivered`,
  );
}

/** bk_host_id -> status of the first step's hosts. */
export function hostStatuses(st: JobStatus): Map<number, number> {
  return new Map(st.step_instance_list[0]?.step_ip_result_list?.map((h) => [h.bk_host_id, h.status]));
}

/** Jobs of the fleet's scope created in the last hour (to check that a refusal created none). */
export async function jobCount(fleet: Fleet): Promise<number> {
  const now = Date.now();
  const r = await get<{ total: number }>(
    fleet.server.url,
    'get_job_instance_list',
    { ...fleet.scope, create_time_start: now - 3600_000, create_time_end: now + 60_000 },
    fleet.creds,
  );
  if (!r.result) throw new Error(r.message);
  return r.data.total;
}
