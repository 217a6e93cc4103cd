/**
 * The BK-JOB v3 calls the bench makes, in the API-gateway form (credentials in the
 * X-Bkapi-Authorization header), and the admin calls that prepare a fresh server.
 * Replies are validated: a reply of the wrong shape is a broken system, not a slow one.
 */
import http from 'node:http';
import { z } from 'zod';
import { postOnce } from './http-post.js';
import type { Secrets } from './processes.js';

const Envelope = z.object({
  result: z.boolean(),
  code: z.number(),
  message: z.string().nullish(),
  data: z.unknown(),
});

export class ApiFailure extends Error {}

/** Every call's connections (kept alive; idle ones closed well before the server's keep-alive timeout). */
const keptAlive = new http.Agent({ keepAlive: true, timeout: 30_000 });

/** Status codes used by the bench (BK-JOB job status 3 and host status 9 mean success). */
export const JOB_SUCCESS = 3;
export const HOST_SUCCESS = 9;

const FastExecuteData = z.object({
  job_instance_id: z.number(),
  step_instance_id: z.number(),
});
export type FastExecuteData = z.infer<typeof FastExecuteData>;

const HostResult = z.object({ bk_host_id: z.number(), status: z.number(), exit_code: z.number().nullish() });

const StatusData = z.object({
  finished: z.boolean(),
  job_instance: z.object({ status: z.number() }),
  step_instance_list: z
    .array(z.object({ step_instance_id: z.number(), step_ip_result_list: z.array(HostResult).nullish() }))
    .nullish(),
});
export type StatusData = z.infer<typeof StatusData>;

const IpLogData = z.object({ log_content: z.string().nullish() });

export class BkApi {
  private readonly auth: string;

  constructor(
    readonly baseUrl: string,
    private readonly secrets: Secrets,
  ) {
    this.auth = JSON.stringify({
      bk_app_code: secrets.appCode,
      bk_app_secret: secrets.appSecret,
      bk_username: 'bench',
    });
  }

  /** The headers and body of a gateway-form call, for load generators that send it themselves. */
  request(
    name: string,
    body: Record<string, unknown>,
  ): { url: string; headers: Record<string, string>; body: string } {
    return {
      url: `${this.baseUrl}/api/v3/${name}`,
      headers: { 'content-type': 'application/json', 'x-bkapi-authorization': this.auth },
      body: JSON.stringify(body),
    };
  }

  private async call<S extends z.ZodType>(
    name: string,
    body: Record<string, unknown>,
    schema: S,
  ): Promise<z.output<S>> {
    const req = this.request(name, body);
    const { status, text = '' } = await postOnce(keptAlive, req, { timeoutMs: 120_000, keepBody: true });
    if (status !== 200) throw new ApiFailure(`${name}: HTTP ${status}: ${text.slice(0, 500)}`);
    const env = Envelope.parse(JSON.parse(text));
    if (!env.result) throw new ApiFailure(`${name}: code ${env.code}: ${env.message ?? ''}`);
    return schema.parse(env.data);
  }

  fastExecuteScript(hostIds: number[], script: string, account: string): Promise<FastExecuteData> {
    return this.call(
      'fast_execute_script',
      {
        bk_scope_type: 'biz',
        bk_scope_id: '1',
        script_language: 1,
        script_content: Buffer.from(script).toString('base64'),
        account_alias: account,
        timeout: 3600,
        target_server: { host_id_list: hostIds },
      },
      FastExecuteData,
    );
  }

  /** One file from one source host to every target, agent to agent. */
  transferFile(
    sourceHostId: number,
    file: string,
    targetDir: string,
    targets: number[],
    account: string,
  ): Promise<FastExecuteData> {
    return this.call(
      'fast_transfer_file',
      {
        bk_scope_type: 'biz',
        bk_scope_id: '1',
        account_alias: account,
        timeout: 3600,
        file_source_list: [
          { file_list: [file], server: { host_id_list: [sourceHostId] }, account: { alias: account } },
        ],
        file_target_path: targetDir,
        target_server: { host_id_list: targets },
      },
      FastExecuteData,
    );
  }

  statusBody(jobInstanceId: number, returnIpResult: boolean): Record<string, unknown> {
    return {
      bk_scope_type: 'biz',
      bk_scope_id: '1',
      job_instance_id: jobInstanceId,
      return_ip_result: returnIpResult,
    };
  }

  /** Terminates a job (operation 1); its hosts still running are killed. */
  async terminateJob(jobInstanceId: number): Promise<void> {
    await this.call(
      'operate_job_instance',
      { bk_scope_type: 'biz', bk_scope_id: '1', job_instance_id: jobInstanceId, operation_code: 1 },
      z.unknown(),
    );
  }

  jobStatus(jobInstanceId: number, returnIpResult: boolean): Promise<StatusData> {
    return this.call('get_job_instance_status', this.statusBody(jobInstanceId, returnIpResult), StatusData);
  }

  async ipLog(job: FastExecuteData, hostId: number): Promise<string> {
    const data = await this.call(
      'get_job_instance_ip_log',
      {
        bk_scope_type: 'biz',
        bk_scope_id: '1',
        job_instance_id: job.job_instance_id,
        step_instance_id: job.step_instance_id,
        bk_host_id: hostId,
      },
      IpLogData,
    );
    return data.log_content ?? '';
  }

  private async admin(path: string, body: unknown): Promise<void> {
    const res = await fetch(`${this.baseUrl}/api/admin${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.secrets.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const env = Envelope.parse(await res.json());
    if (!env.result) throw new ApiFailure(`admin ${path}: code ${env.code}: ${env.message ?? ''}`);
  }

  /** Business 1 and an execution account named after the OS user the agents run as. */
  async prepareBusiness(osUser: string): Promise<void> {
    await this.admin('/biz', { id: 1, name: 'bench' });
    await this.admin('/accounts', { bk_biz_id: 1, alias: osUser, os_user: osUser });
  }
}

/**
 * Polls the job until it is finished (without per-host results, which would make the poll
 * itself the load), then checks every host once. Resolves with the time it was first seen
 * finished; rejects when it did not finish in time or a host did not succeed.
 */
export async function waitForSuccess(
  api: BkApi,
  jobInstanceId: number,
  expectedHosts: number,
  opts: { timeoutMs: number; pollMs: number },
): Promise<number> {
  const deadline = performance.now() + opts.timeoutMs;
  for (;;) {
    const s = await api.jobStatus(jobInstanceId, false);
    if (s.finished) {
      const at = performance.now();
      const full = await api.jobStatus(jobInstanceId, true);
      const hosts = full.step_instance_list?.flatMap((st) => st.step_ip_result_list ?? []) ?? [];
      const ok = hosts.filter((h) => h.status === HOST_SUCCESS).length;
      if (full.job_instance.status !== JOB_SUCCESS || ok !== expectedHosts) {
        const byStatus: Record<string, number> = {};
        for (const h of hosts) byStatus[h.status] = (byStatus[h.status] ?? 0) + 1;
        throw new ApiFailure(
          `job ${jobInstanceId} finished with status ${full.job_instance.status}: ${ok} of ${expectedHosts} hosts successful; hosts by status ${JSON.stringify(byStatus)}`,
        );
      }
      return at;
    }
    if (performance.now() > deadline)
      throw new ApiFailure(`job ${jobInstanceId} not finished after ${opts.timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, opts.pollMs));
  }
}
