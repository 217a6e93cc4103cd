/**
 * Following a job live: its event stream (docs/event-stream.md) through EventSource, which
 * resumes by itself with Last-Event-ID after a dropped connection, so nothing is missed or
 * applied twice. Events arrive in order; the stream closes with `end` when the job is finished.
 */
import { useEffect, useRef } from 'react';
import { api } from './client';

export type JobEventType = 'job' | 'step' | 'batch' | 'host' | 'log' | 'coalesced' | 'end';
export type JobEventData = Record<string, unknown>;
export type JobEventHandler = (type: JobEventType, data: JobEventData) => void;

const TYPES: JobEventType[] = ['job', 'step', 'batch', 'host', 'log', 'coalesced', 'end'];

/**
 * Calls `onEvent` for every event of the job while mounted and `live` (the job is not finished).
 * The handler may change between renders. When a finished job runs again (a retry), `live` turns
 * true and the stream reopens after the last event seen, so nothing is applied twice.
 */
export function useJobStream(
  scope: { bk_scope_type: string; bk_scope_id: string },
  jobId: number,
  onEvent: JobEventHandler,
  live = true,
): void {
  const handler = useRef(onEvent);
  handler.current = onEvent;
  const lastId = useRef<{ jobId: number; id: string }>({ jobId, id: '' });
  if (lastId.current.jobId !== jobId) lastId.current = { jobId, id: '' };
  const { bk_scope_type, bk_scope_id } = scope;
  useEffect(() => {
    if (!live || !jobId) return undefined;
    const url = api.url('get_job_event_stream', {
      bk_scope_type,
      bk_scope_id,
      job_instance_id: jobId,
      last_event_id: lastId.current.id || undefined,
    });
    const source = new EventSource(url);
    for (const type of TYPES)
      source.addEventListener(type, (e) => {
        let data: JobEventData = {};
        try {
          data = JSON.parse((e as MessageEvent<string>).data) as JobEventData;
        } catch {
          return;
        }
        if ((e as MessageEvent<string>).lastEventId)
          lastId.current.id = (e as MessageEvent<string>).lastEventId;
        handler.current(type, data);
        if (type === 'end') source.close();
      });
    return () => source.close();
  }, [bk_scope_type, bk_scope_id, jobId, live]);
}

/** Calls `fn` at most once per `ms`, the last call winning (for reloads triggered by many events). */
export function throttle(fn: () => void, ms: number): { call(): void; cancel(): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let last = 0;
  return {
    call() {
      if (timer) return;
      const wait = Math.max(0, last + ms - Date.now());
      timer = setTimeout(() => {
        timer = undefined;
        last = Date.now();
        fn();
      }, wait);
    },
    cancel() {
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
}
