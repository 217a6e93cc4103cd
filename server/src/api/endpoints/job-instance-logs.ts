/**
 * get_job_instance_ip_log and batch_get_job_instance_ip_log (behaviour notes §3.8, §3.9, §6):
 * the full stored log of each host for the step's latest execution.
 */
import { z } from 'zod';
import type { HostTask, StepHead } from '../../store/execution-store.js';
import { defineEndpoint } from '../endpoint.js';
import type { EndpointContext } from '../endpoint.js';
import { ApiError } from '../error-catalogue.js';
import { humanSize, humanSpeed, progressText } from '../../engine/file-log-line.js';
import { HostStatus, StepType, isHostFinished } from '../../engine/statuses.js';
import type { FileLog } from '../../store/file-store.js';
import { IpEntry, zInt, zLong } from '../input-types.js';
import { jobInScope, stepOfJob } from './job-lookup.js';
import { JsonPieces, unfinishedTail } from '../json-string-pieces.js';
import { StreamedJson, objectStreaming, objectWithText } from '../raw-json.js';
import { logChunks } from '../../store/log-pages.js';
import { byteRange } from '../../store/log-chunk-codec.js';

const MAX_BATCH_HOSTS = 500;
const MAX_LOG_LENGTH = 16 * 1024 * 1024;
const COMMA = Buffer.from(',');
/** The most log one batch_get_job_instance_ip_log reply holds: stored bytes, held while the reply is sent. */
const BATCH_LOG_BUDGET = 256 * 1024 * 1024;

/**
 * The execution a host's log is read from, and its row there. A host kept as "last success" (3)
 * by a retry did not run in that execution: its log is the one of the execution that ran it
 * (behaviour notes §6).
 */
async function attemptOf(
  ctx: EndpointContext,
  step: StepHead,
  executeCount: number,
  task: HostTask,
): Promise<{ count: number; source: HostTask }> {
  if (task.status !== HostStatus.LAST_SUCCESS) return { count: executeCount, source: task };
  const ex = ctx.services.store.executions;
  const count = (await ex.lastSuccessfulRun(step.id, task.host_id, executeCount)) ?? executeCount;
  return { count, source: (await ex.getHostTask(step.id, count, task.host_id)) ?? task };
}

/** A window of a host's log for one execution. */
async function logOf(
  ctx: EndpointContext,
  step: StepHead,
  executeCount: number,
  task: HostTask,
  range: LogRange,
): Promise<WindowRead> {
  const { count, source } = await attemptOf(ctx, step, executeCount, task);
  const pieces = await ctx.services.store.executions.readLogRange(
    step.id,
    count,
    task.host_id,
    range.offset,
    range.length,
  );
  return logWindow(source, range.offset, pieces);
}

/**
 * A host's whole log for one execution, chunk by chunk as it is read, or null when it has none.
 * Its first chunk is read here, so that a store that cannot be read is answered with the failure
 * envelope, not a reply cut short.
 */
async function wholeLog(
  ctx: EndpointContext,
  step: StepHead,
  executeCount: number,
  task: HostTask | undefined,
): Promise<AsyncIterable<Buffer> | null> {
  if (!task) return null;
  const { count } = await attemptOf(ctx, step, executeCount, task);
  const chunks = logChunks(ctx.services.store.db, step.id, count, [task.host_id]);
  const first = await chunks.next();
  if (first.done) return null;
  return (async function* () {
    yield first.value.bytes;
    for await (const c of chunks) yield c.bytes;
  })();
}

/**
 * Jobfleet extension: read a log from a byte offset, at most `log_length` bytes, so a follower
 * fetches only what is new. Replies then say where the next read starts and whether more can
 * come; truncation of a long output stays visible (`log_dropped_bytes`, and the marker line
 * in the log itself).
 */
const LogRangeFields = {
  log_offset: zLong.pipe(z.number().min(0)).optional(),
  // At least one whole character of UTF-8: a smaller window could hold none and never move on.
  log_length: zLong.pipe(z.number().min(4).max(MAX_LOG_LENGTH)).optional(),
};
interface LogRange {
  offset: number;
  length: number;
}
/** A window's fields, and its text as the stored bytes it is (none: `log_content` is null). */
interface WindowRead {
  fields: LogWindow;
  text: Buffer[];
}
interface LogWindow {
  log_offset: number;
  log_next_offset: number;
  log_total_bytes: number;
  log_dropped_bytes: number;
  /** No more output will come for this host (its task is finished). */
  log_complete: boolean;
}

function rangeOf(input: {
  log_offset?: number | undefined;
  log_length?: number | undefined;
}): LogRange | undefined {
  if (input.log_offset === undefined && input.log_length === undefined) return undefined;
  return { offset: input.log_offset ?? 0, length: input.log_length ?? MAX_LOG_LENGTH };
}

/**
 * Whole characters only: a window never ends inside a UTF-8 sequence (the next one starts there),
 * neither inside the log nor at the live end of a running host's (its agent sends bytes as the
 * pipe gives them; the rest of the character comes later). A finished log's last bytes are
 * given as they are, valid or not.
 */
function logWindow(task: HostTask, offset: number, pieces: readonly Buffer[]): WindowRead {
  const read = byteLength(pieces);
  // The task row was read before the bytes: the log may have grown since.
  const total = Math.max(task.log_bytes, offset + read);
  const cut = offset + read < total || !isHostFinished(task.status);
  const last = Buffer.concat(byteRange(pieces, Math.max(0, read - 3), 3));
  const length = read - (cut ? unfinishedTail(last) : 0);
  return {
    fields: {
      log_offset: offset,
      log_next_offset: offset + length,
      log_total_bytes: total,
      log_dropped_bytes: task.dropped_bytes,
      log_complete: isHostFinished(task.status) && offset + length >= total,
    },
    text: byteRange(pieces, 0, length),
  };
}

const byteLength = (pieces: readonly Buffer[]) => pieces.reduce((n, p) => n + p.length, 0);

/**
 * The whole logs of hosts of one execution, by host id (none for a host without output), read
 * many hosts a statement: a kept host's from the execution that ran it, as attemptOf finds it.
 * The read stops past the reply's budget (with `tooBig`) instead of holding more.
 */
async function wholeLogs(
  ctx: EndpointContext,
  stepId: number,
  picked: readonly (HostTask | undefined)[],
  tooBig: () => ApiError,
): Promise<Map<number, Buffer[]>> {
  const tasks = [...new Set(picked.filter((t) => t !== undefined))];
  const all = new Map<number, Buffer[]>();
  let bytes = 0;
  for (const [attempt, inAttempt] of await ctx.services.outputs.outputAttempts(tasks)) {
    const ids = inAttempt.map((t) => t.host_id);
    const logs = await ctx.services.store.executions.readLogs(stepId, attempt, ids, BATCH_LOG_BUDGET - bytes);
    if (!logs) throw tooBig();
    for (const [hostId, chunks] of logs) {
      const length = byteLength(chunks);
      bytes += length;
      if (length > 0) all.set(hostId, chunks);
    }
  }
  return all;
}

/** A host's entry in script_task_logs, its log fields apart. */
const scriptLogHost = (t: HostTask) => ({
  host_id: t.host_id,
  bk_host_id: t.host_id,
  bk_cloud_id: t.cloud_id,
  ip: t.ip,
  ipv6: t.ipv6,
});

type Ip = { bk_host_id: number; bk_cloud_id: number | null; ip: string | null };

/** "cloud:ip" labels back into BK-JOB's ip objects (null parts when the label is not of that form). */
function ipOf(hostId: number, label: string): Ip {
  const m = /^(\d+):(.+)$/.exec(label);
  return { bk_host_id: hostId, bk_cloud_id: m ? Number(m[1]) : null, ip: m ? (m[2] ?? null) : null };
}

function fullIp(hostId: number, label: string) {
  return { ...ipOf(hostId, label), bk_cloud_name: null, ipv6: null, bk_agent_id: null, alive: null };
}

/**
 * A file step's logs for one execution. A target kept as "last success" (3) by a retry did not
 * take part in it: its downloads are read from the execution that ran them (behaviour notes §6);
 * the sources' upload logs are those of the execution asked for.
 */
async function fileStepLogs(
  ctx: EndpointContext,
  step: StepHead,
  executeCount: number,
  asked: readonly HostTask[],
  only: { hosts: readonly number[]; uploadsTo: boolean } | undefined,
): Promise<FileLog[]> {
  const files = ctx.services.store.files;
  const logs = await files.fileLogs(step.id, executeCount, only);
  const kept = asked.filter((t) => t.status === HostStatus.LAST_SUCCESS);
  for (const [count, inCount] of await ctx.services.outputs.outputAttempts(kept)) {
    if (count === executeCount) continue; // never succeeded before: nothing to show
    const hosts = new Set(inCount.map((t) => t.host_id));
    const earlier = await files.fileLogs(step.id, count, { hosts: [...hosts], uploadsTo: false });
    logs.push(...earlier.filter((l) => l.mode === 1 && hosts.has(l.host_id)));
  }
  return logs;
}

/**
 * The hosts one execution of a file step knows: its targets and the hosts its logs name (the
 * sources, which are no tasks of the step). Only these are answered: looking hosts up in the
 * inventory would show hosts outside the step, and of other scopes, to whoever asks.
 */
function fileStepHosts(tasks: readonly HostTask[], logs: readonly FileLog[]): Map<number, Ip> {
  const hosts = new Map<number, Ip>();
  for (const t of tasks) hosts.set(t.host_id, { bk_host_id: t.host_id, bk_cloud_id: t.cloud_id, ip: t.ip });
  for (const l of logs) {
    for (const [id, label] of [
      [l.src_host_id, l.src_label],
      [l.dest_host_id, l.dest_label],
    ] as const) {
      if (id > 0 && !hosts.has(id)) hosts.set(id, ipOf(id, label));
    }
  }
  return hosts;
}

function hostAt(hosts: Map<number, Ip>, cloudId: number | undefined, ip: string | undefined): Ip | undefined {
  return [...hosts.values()].find((h) => h.bk_cloud_id === cloudId && h.ip === ip);
}

/**
 * File logs of a host: its downloads (mode 1), its own uploads (mode 0) and, when asked, the
 * sources' uploads to it and their failures (which name no target).
 */
function fileLogsOf(logs: readonly FileLog[], hostId: number, withSourceUploads: boolean, detailed: boolean) {
  return logs
    .filter(
      (l) =>
        l.host_id === hostId ||
        (withSourceUploads && l.mode === 0 && (l.dest_host_id === hostId || l.dest_host_id === 0)),
    )
    .map((l) => ({
      mode: l.mode,
      src_ip: detailed ? fullIp(l.src_host_id, l.src_label) : ipOf(l.src_host_id, l.src_label),
      src_path: l.src_path,
      ...(l.mode === 1
        ? {
            dest_ip: detailed ? fullIp(l.dest_host_id, l.dest_label) : ipOf(l.dest_host_id, l.dest_label),
            dest_path: l.dest_path,
          }
        : {}),
      status: l.status,
      log_content: l.content,
      size: detailed ? humanSize(l.size) : null,
      speed: detailed ? humanSpeed(l.speed) : null,
      process: detailed ? progressText(l.bytes, l.size) : null,
    }));
}

/** Jobfleet extension: `execute_count` picks an earlier attempt; the latest when omitted (BK-JOB behaviour). */
const ExecuteCount = zInt.pipe(z.number().min(0)).optional();

export const getJobInstanceIpLog = defineEndpoint({
  name: 'get_job_instance_ip_log',
  kind: 'read',
  permission: 'read',
  input: z.object({
    job_instance_id: zLong.pipe(z.number().min(1)),
    step_instance_id: zLong.pipe(z.number().min(1)),
    bk_host_id: zLong.optional(),
    bk_cloud_id: zLong.optional(),
    ip: z.string().optional(),
    execute_count: ExecuteCount,
    ...LogRangeFields,
  }),
  fieldErrors: {
    job_instance_id: 'MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME',
    step_instance_id: 'MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME',
  },
  async handle(ctx, input) {
    if (input.bk_host_id === undefined && (input.bk_cloud_id === undefined || !input.ip)) {
      throw new ApiError('MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME', {
        param: 'bk_host_id|(bk_cloud_id,ip)',
        reason: 'give bk_host_id, or bk_cloud_id and ip',
      });
    }
    const job = await jobInScope(ctx, input.job_instance_id);
    const step = await stepOfJob(ctx, job, input.step_instance_id, 'TASK_INSTANCE_NOT_EXIST');
    const executeCount = input.execute_count ?? step.execute_count;
    const ex = ctx.services.store.executions;
    // The host's row alone, not the step's whole host list (10,000 rows for one log).
    const task =
      input.bk_host_id !== undefined
        ? await ex.getHostTask(step.id, executeCount, input.bk_host_id)
        : (
            await ex.hostTasksAt(step.id, executeCount, [
              { cloudId: input.bk_cloud_id ?? 0, ip: input.ip ?? '' },
            ])
          )[0];
    if (step.type === StepType.FILE) {
      // A host asked by id, or found among the targets, reads its own logs; a source asked by
      // its address is found in the step's logs.
      const hostId = input.bk_host_id ?? task?.host_id;
      const logs = await fileStepLogs(
        ctx,
        step,
        executeCount,
        task ? [task] : [],
        hostId === undefined ? undefined : { hosts: [hostId], uploadsTo: true },
      );
      const hosts = fileStepHosts(task ? [task] : [], logs);
      const host =
        input.bk_host_id !== undefined
          ? hosts.get(input.bk_host_id)
          : hostAt(hosts, input.bk_cloud_id, input.ip);
      const answered = host?.bk_host_id ?? input.bk_host_id ?? null;
      return {
        log_type: 2,
        bk_host_id: answered,
        bk_cloud_id: host?.bk_cloud_id ?? input.bk_cloud_id ?? null,
        ip: host?.ip ?? input.ip ?? null,
        log_content: null,
        file_logs: answered === null ? [] : fileLogsOf(logs, answered, true, false),
      };
    }
    const range = rangeOf(input);
    const window = range && task ? await logOf(ctx, step, executeCount, task, range) : undefined;
    const data = {
      log_type: 1,
      bk_host_id: task?.host_id ?? input.bk_host_id ?? null,
      bk_cloud_id: task?.cloud_id ?? input.bk_cloud_id ?? null,
      ip: task?.ip ?? input.ip ?? null,
      log_content: null,
      ...window?.fields,
      file_logs: null,
    };
    // The text goes out as it is encoded (json-string-pieces.ts), never as one string.
    const text = range ? window?.text.length && window.text : await wholeLog(ctx, step, executeCount, task);
    return text ? objectStreaming(data, 'log_content', text) : data;
  },
});

export const batchGetJobInstanceIpLog = defineEndpoint({
  name: 'batch_get_job_instance_ip_log',
  kind: 'write',
  permission: 'read',
  // POST only, as BK-JOB serves it, but it changes nothing: no audit entry.
  audited: false,
  input: z.object({
    job_instance_id: zLong.pipe(z.number().min(1)),
    step_instance_id: zLong.pipe(z.number().min(1)),
    host_id_list: z.array(zLong).optional(),
    ip_list: z.array(IpEntry).optional(),
    execute_count: ExecuteCount,
    ...LogRangeFields,
  }),
  fieldErrors: {
    job_instance_id: 'MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME',
    step_instance_id: 'MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME',
    host_id_list: 'MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME',
    ip_list: 'MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME',
  },
  async handle(ctx, input) {
    const byId = input.host_id_list !== undefined && input.host_id_list.length > 0;
    const wanted = byId ? (input.host_id_list ?? []) : (input.ip_list ?? []);
    if (wanted.length === 0) {
      throw new ApiError('MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME', {
        param: 'host_id_list|ip_list',
        reason: 'give host_id_list or ip_list',
      });
    }
    if (wanted.length > MAX_BATCH_HOSTS) {
      throw new ApiError('MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME', {
        param: byId ? 'host_id_list' : 'ip_list',
        reason: `at most ${MAX_BATCH_HOSTS} hosts per call`,
      });
    }
    const job = await jobInScope(ctx, input.job_instance_id);
    const step = await stepOfJob(ctx, job, input.step_instance_id, 'TASK_INSTANCE_NOT_EXIST');
    const executeCount = input.execute_count ?? step.execute_count;
    const ex = ctx.services.store.executions;
    // The rows of the hosts asked (at most 500), not the step's whole host list.
    const tasks = byId
      ? await ex.hostTasksOf(step.id, executeCount, input.host_id_list ?? [])
      : await ex.hostTasksAt(
          step.id,
          executeCount,
          (input.ip_list ?? []).map((p) => ({ cloudId: p.bk_cloud_id, ip: p.ip })),
        );
    const byHost = new Map(tasks.map((t) => [t.host_id, t]));
    const byAddress = new Map(tasks.map((t) => [`${t.cloud_id}:${t.ip}`, t]));
    const picked = byId
      ? [...new Set(input.host_id_list)].map((id) => byHost.get(id))
      : (input.ip_list ?? []).map((p) => byAddress.get(`${p.bk_cloud_id}:${p.ip}`));
    if (step.type === StepType.FILE) {
      // Hosts asked by id, or all found among the targets, read their own logs; a source asked
      // by its address (no task of the step) is found in the step's logs.
      const found = picked.filter((t) => t !== undefined);
      const ownLogs = byId
        ? [...new Set(input.host_id_list)]
        : found.length === picked.length
          ? found.map((t) => t.host_id)
          : undefined;
      const logs = await fileStepLogs(
        ctx,
        step,
        executeCount,
        found,
        ownLogs && { hosts: ownLogs, uploadsTo: false },
      );
      const hosts = fileStepHosts(tasks, logs);
      const named = byId
        ? [...new Set(input.host_id_list)].map((id) => hosts.get(id))
        : (input.ip_list ?? []).map((p) => hostAt(hosts, p.bk_cloud_id, p.ip));
      const answered = new Map<number, Ip>();
      for (const h of named) if (h) answered.set(h.bk_host_id, h);
      return {
        job_instance_id: job.id,
        step_instance_id: step.id,
        log_type: 2,
        script_task_logs: null,
        file_task_logs: [...answered.values()].map((h) => ({
          ...h,
          file_logs: fileLogsOf(logs, h.bk_host_id, false, true),
        })),
      };
    }
    // 500 hosts of full logs could be gigabytes, held in the server's memory while the reply is
    // sent: past the budget the caller is told how to page instead.
    const tooBig = () =>
      new ApiError('MISSING_OR_ILLEGAL_PARAM_WITH_PARAM_NAME', {
        param: 'host_id_list',
        reason: `the logs of these ${picked.length} hosts hold more than ${BATCH_LOG_BUDGET / 1024 / 1024} MiB: ask for fewer hosts at a time, or read each in windows with log_offset and log_length`,
      });
    const head = { job_instance_id: job.id, step_instance_id: step.id, log_type: 1 };
    const range = rangeOf(input);
    const texts = range ? new Map<number, Buffer[]>() : await wholeLogs(ctx, step.id, picked, tooBig);
    const windows = new Map<number, LogWindow>();
    if (range) {
      let bytes = 0;
      for (const t of picked) {
        if (!t || windows.has(t.host_id)) continue;
        const { fields, text } = await logOf(ctx, step, executeCount, t, range);
        bytes += byteLength(text);
        if (bytes > BATCH_LOG_BUDGET) throw tooBig();
        windows.set(t.host_id, fields);
        if (text.length > 0) texts.set(t.host_id, text);
      }
    }
    // The logs go out as they are encoded (json-string-pieces.ts), never as one string.
    const out = new JsonPieces();
    return new StreamedJson(
      (async function* () {
        yield* out.raw(Buffer.from(`${JSON.stringify(head).slice(0, -1)},"script_task_logs":[`));
        let first = true;
        for (const t of picked) {
          if (!t) continue;
          if (!first) yield* out.raw(COMMA);
          first = false;
          const text = texts.get(t.host_id);
          const entry = { ...scriptLogHost(t), log_content: null, ...windows.get(t.host_id) };
          if (text) yield* objectWithText(out, entry, 'log_content', text);
          else yield* out.raw(Buffer.from(JSON.stringify(entry)));
        }
        yield* out.raw(Buffer.from('],"file_task_logs":null}'));
        yield* out.end();
      })(),
    );
  },
});
