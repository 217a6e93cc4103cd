/**
 * Jobfleet extensions: live event streams (Server-Sent Events), resumable by Last-Event-ID.
 * - get_job_event_stream: everything one job does (job, step, batch, host status changes and
 *   log appends as offset/length notices); it ends with an `end` message once the job finished.
 * - get_scope_event_stream: status events (job, step, batch) of every job of a scope; it starts
 *   at the newest event unless the client names where to resume.
 * See docs/event-stream.md.
 */
import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { isRunFinished } from '../../engine/statuses.js';
import { scopeStatusEvents } from '../../streams/event-streams.js';
import type { StreamSource } from '../../streams/event-streams.js';
import { defineEndpoint } from '../endpoint.js';
import type { EndpointContext } from '../endpoint.js';
import { ApiError } from '../error-catalogue.js';
import { zInt, zLong } from '../input-types.js';
import { StreamReply } from '../stream-reply.js';
import { jobInScope } from './job-lookup.js';

const StreamOptions = {
  /** Where to resume; the Last-Event-ID header, which EventSource sends on reconnect, wins. */
  last_event_id: zLong.pipe(z.number().nonnegative()).optional(),
  /** Messages per second before host and log events are coalesced; 0 never coalesces. */
  max_events_per_second: zInt.pipe(z.number().nonnegative()).optional(),
};

/** The cursor a client resumes from: its Last-Event-ID header, else the parameter. */
function resumeFrom(req: IncomingMessage, param: number | undefined): number | undefined {
  const header = req.headers['last-event-id'];
  if (typeof header === 'string' && header.trim() !== '') {
    const n = Number(header.trim());
    if (!Number.isSafeInteger(n) || n < 0)
      throw new ApiError('BAD_REQUEST', { reason: `Last-Event-ID must be an event id, got "${header}"` });
    return n;
  }
  return param;
}

function streamReply(
  ctx: EndpointContext,
  source: StreamSource,
  input: { last_event_id?: number | undefined; max_events_per_second?: number | undefined },
  startAtEnd: boolean,
): StreamReply {
  return new StreamReply(async (req, res, allowed) => {
    const { streams, config } = ctx.services;
    const release = streams.reserve(ctx.caller.appCode, config.streamMaxPerCaller);
    try {
      const named = resumeFrom(req, input.last_event_id);
      const afterId = named ?? (startAtEnd ? await ctx.services.store.executions.events.lastId() : 0);
      await streams.serve(req, res, source, {
        afterId,
        resumed: named !== undefined,
        allowed,
        maxPerSecond: input.max_events_per_second ?? config.streamMaxEventsPerSecond,
      });
    } finally {
      release();
    }
  });
}

export const getJobEventStream = defineEndpoint({
  name: 'get_job_event_stream',
  kind: 'read',
  permission: 'read',
  input: z.object({ job_instance_id: zLong, ...StreamOptions }),
  async handle(ctx, input) {
    const job = await jobInScope(ctx, input.job_instance_id);
    const executions = ctx.services.store.executions;
    return streamReply(
      ctx,
      {
        async list(afterId, limit) {
          const rows = await executions.events.listOfJob(job.id, afterId, limit);
          return { rows, through: rows.at(-1)?.id ?? afterId };
        },
        async finished() {
          const now = await executions.getJob(job.id);
          return now && isRunFinished(now.status)
            ? { job_instance_id: job.id, status: now.status, end_time: now.end_time }
            : undefined;
        },
      },
      input,
      false,
    );
  },
});

export const getScopeEventStream = defineEndpoint({
  name: 'get_scope_event_stream',
  kind: 'read',
  permission: 'read',
  input: z.object(StreamOptions),
  async handle(ctx, input) {
    const scopeType = ctx.scope.type;
    const scopeId = String(ctx.scope.id);
    const events = ctx.services.store.executions.events;
    return streamReply(ctx, scopeStatusEvents(events, scopeType, scopeId), input, true);
  },
});
