/**
 * GET /api/console/step-log-export: every host's log of one attempt of a script step, as one
 * .tar.gz with a file per host (`<ip>_<host id>.log`, plus `hosts.tsv` listing status and exit
 * code). BK-JOB packs such an archive asynchronously and offers it when ready; here the archive
 * is packed while it is sent, so there is nothing to wait for or clean up, and the browser's
 * download shows the progress. Logs are read many hosts a statement, a bounded page of chunks at
 * a time (log-pages.ts), and each is added once the compressor has taken the last, so memory
 * stays at about one page and one log whatever the host count.
 *
 * Limits: script steps only (a file step's records are not script output), and at most
 * MAX_EXPORT_BYTES of stored log in one archive; both refused with the envelope before a byte
 * of the archive is sent. `check=1` answers what the archive would hold (hosts, bytes) or the
 * refusal, so a page can show either before the download starts. Needs the read role in the job's scope (a session or personal token).
 */
import zlib from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import tar from 'tar-stream';
import { z } from 'zod';
import { parse } from '../admin/admin-routes.js';
import { ApiError } from '../api/error-catalogue.js';
import { zBool, zInt, zLong } from '../api/input-types.js';
import { successEnvelope } from '../api/envelope.js';
import { StepType } from '../engine/statuses.js';
import { principalRole } from '../operators/api-access.js';
import type { Services } from '../services.js';
import type { HostTask } from '../store/execution-store.js';
import { logChunks } from '../store/log-pages.js';
import type { Database } from '../store/schema.js';

/** Stored log bytes one archive may hold (before compression). */
export const MAX_EXPORT_BYTES = 512 * 1024 * 1024;

export const StepLogExportQuery = z.object({
  bk_scope_type: z.enum(['biz', 'biz_set']),
  bk_scope_id: zLong,
  job_instance_id: zLong,
  step_instance_id: zLong,
  execute_count: zInt.pipe(z.number().min(0)).optional(),
  /** Only check: answer the envelope with what the archive would hold (or the refusal), no archive. */
  check: zBool.optional(),
});

/**
 * The whole log of each of `tasks` in attempt `attempt` (empty for a task without output), by
 * ascending host id: a host's chunks are joined when the next host's come, so one log is held
 * at a time, besides the page being read.
 */
async function* logsOf(
  db: Kysely<Database>,
  stepId: number,
  attempt: number,
  tasks: readonly HostTask[],
): AsyncGenerator<[HostTask, Buffer], void, undefined> {
  const sorted = [...tasks].sort((a, b) => a.host_id - b.host_id);
  const empty = Buffer.alloc(0);
  let next = 0;
  let reading: HostTask | undefined;
  let parts: Buffer[] = [];
  for await (const { hostId, bytes } of logChunks(
    db,
    stepId,
    attempt,
    sorted.map((t) => t.host_id),
  )) {
    if (reading?.host_id !== hostId) {
      if (reading) yield [reading, Buffer.concat(parts)];
      parts = [];
      for (let t = sorted[next]; t && t.host_id < hostId; t = sorted[++next]) yield [t, empty];
      reading = sorted[next++];
    }
    parts.push(bytes);
  }
  if (reading) yield [reading, Buffer.concat(parts)];
  for (let t = sorted[next]; t; t = sorted[++next]) yield [t, empty];
}

export function registerStepLogExport(app: FastifyInstance, services: Services): void {
  const ex = services.store.executions;
  app.get('/api/console/step-log-export', async (req, reply) => {
    const p = await services.operators.requirePrincipal(req);
    const q = parse(StepLogExportQuery, req.query);
    const job = await ex.getJob(q.job_instance_id);
    const step = await ex.getStep(q.step_instance_id);
    const visible =
      job &&
      job.scope_type === q.bk_scope_type &&
      job.scope_id === String(q.bk_scope_id) &&
      (await principalRole(services.store.inventory, p, { type: q.bk_scope_type, id: q.bk_scope_id }));
    if (!visible) throw new ApiError('TASK_INSTANCE_NOT_EXIST', { jobInstanceId: q.job_instance_id });
    if (!step || step.job_instance_id !== job.id)
      throw new ApiError('STEP_INSTANCE_NOT_EXIST', { stepInstanceId: q.step_instance_id });
    if (step.type !== StepType.SCRIPT && step.type !== StepType.SQL)
      throw new ApiError('BAD_REQUEST', {
        reason: `step ${step.id} is not a script step: only script output can be exported`,
      });
    const count = q.execute_count ?? step.execute_count;
    if (count > step.execute_count)
      throw new ApiError('BAD_REQUEST', {
        reason: `execute_count ${count} has not run (the step is at ${step.execute_count})`,
      });
    const tasks = await ex.listHostTasks(step.id, count);
    const total = tasks.reduce((n, h) => n + h.log_bytes, 0);
    if (total > MAX_EXPORT_BYTES)
      throw new ApiError('BAD_REQUEST', {
        reason: `the logs of this attempt hold ${total} bytes, more than the ${MAX_EXPORT_BYTES} one export may hold; download single hosts instead`,
      });
    if (q.check)
      return successEnvelope(
        { host_count: tasks.length, log_bytes: total, max_bytes: MAX_EXPORT_BYTES, execute_count: count },
        req.id,
      );

    const pack = tar.pack();
    const gzip = zlib.createGzip();
    pack.pipe(gzip);
    let gone = false;
    reply.raw.on('close', () => (gone = true));
    // A client that goes away closes the compressor, and the compressor's end fails the archive
    // piped into it: unheard, that error would end the process.
    pack.on('error', (err: Error) => {
      gone = true;
      if (!gzip.destroyed) gzip.destroy(err);
    });
    const mtime = new Date(job.create_time);
    const add = (name: string, body: Buffer) =>
      new Promise<void>((resolve, reject) =>
        pack.entry({ name, size: body.length, mtime }, body, (err) => (err ? reject(err) : resolve())),
      );
    // The ip is what the agent reported at registration: only address characters reach a name
    // in the archive (no `/`, `..` or control characters) or a field of the index.
    const ipOf = (h: HostTask) => h.ip.replace(/[^0-9A-Za-z.:_-]/g, '_');
    const fileOf = (h: HostTask) => `${ipOf(h) || 'host'}_${h.host_id}.log`;
    // Waits for the compressor, or for its end: a client gone away drains nothing.
    const drained = () =>
      new Promise<void>((resolve) => {
        const done = () => {
          gzip.off('drain', done).off('close', done);
          resolve();
        };
        gzip.on('drain', done).on('close', done);
      });
    const write = async () => {
      // A host kept from an earlier run by a retry shows the log of the run that succeeded, and
      // each attempt's logs are read in one pass: the logs go into the archive by attempt, the
      // earliest first, and by host id within an attempt (the same order on every download).
      // hosts.tsv lists the hosts in host id order, as the step does.
      const attempts = [...(await services.outputs.outputAttempts(tasks))].sort(([a], [b]) => a - b);
      for (const [attempt, inAttempt] of attempts) {
        for await (const [h, log] of logsOf(services.store.db, step.id, attempt, inAttempt)) {
          if (gone) return;
          await add(fileOf(h), log);
          if (gzip.writableNeedDrain) await drained();
        }
      }
      if (gone) return;
      const index = [
        'bk_host_id\tip\tstatus\texit_code\tfile',
        ...tasks.map(
          (h) => `${h.host_id}\t${h.cloud_id}:${ipOf(h)}\t${h.status}\t${h.exit_code ?? ''}\t${fileOf(h)}`,
        ),
      ];
      await add('hosts.tsv', Buffer.from(`${index.join('\n')}\n`));
      pack.finalize();
    };
    write().catch((err: unknown) => {
      if (!gone) req.log.warn({ err }, 'step log export stopped');
      gzip.destroy(err instanceof Error ? err : new Error(String(err)));
    });
    const name = `job-${job.id}-step-${step.id}-attempt-${count + 1}-logs.tar.gz`;
    return reply
      .header('content-type', 'application/gzip')
      .header('content-disposition', `attachment; filename="${name}"`)
      .header('cache-control', 'no-store')
      .send(gzip);
  });
}
