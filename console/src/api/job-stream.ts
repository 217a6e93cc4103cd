/**
 * Following a job live: its event stream (docs/event-stream.md) through EventSource, which
 * resumes by itself with Last-Event-ID after a dropped connection, so nothing is missed or
 * applied twice. Events arrive in order; the stream closes with `end` when the job is finished.
 */
import { useEffect, useRef } from 'react';
import { ApiFailure, CODES, api } from './client';

/** How often a page whose stream failed reads its data again, and tries the stream again. */
export const FALLBACK_POLL_MS = 5000;

/**
 * Opens an event stream that keeps its page current even when the stream fails for good.
 * EventSource retries a dropped connection by itself, but a reply that is no stream (the JSON
 * envelope of an ended session, an error page, a 204) closes it for good, and the page would
 * freeze on what it last showed. Then the session is checked: if it is gone, the client's
 * signed-out handler takes the person to sign-in; otherwise `poll` reads the page's data at once
 * and every few seconds while the stream is tried again, and once more when it opens (to catch up
 * on what happened in between). `url` is asked at each opening, so it can resume where it left.
 * Returns what closes it.
 */
export function openLiveStream(
  url: () => string,
  listen: (source: EventSource) => void,
  poll: () => void,
): () => void {
  let closed = false;
  let source: EventSource | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let failures = 0;

  async function failed() {
    failures++;
    try {
      await api.get('/api/auth/me');
    } catch (err) {
      if (err instanceof ApiFailure && err.code === CODES.userAuthFailed) return;
    }
    if (closed) return;
    poll();
    timer = setTimeout(() => {
      timer = undefined;
      if (!closed) open();
    }, FALLBACK_POLL_MS);
  }

  function open() {
    const s = new EventSource(url());
    source = s;
    s.addEventListener('open', () => {
      if (failures > 0 && !closed) poll();
      failures = 0;
    });
    // While the browser reconnects by itself the state is CONNECTING: only CLOSED is for good.
    s.addEventListener('error', () => {
      if (!closed && s.readyState === EventSource.CLOSED) void failed();
    });
    listen(s);
  }

  open();
  return () => {
    closed = true;
    if (timer) clearTimeout(timer);
    source?.close();
  };
}

export type JobEventType = 'job' | 'step' | 'batch' | 'host' | 'log' | 'coalesced' | 'end';
export type JobEventData = Record<string, unknown>;
export type JobEventHandler = (type: JobEventType, data: JobEventData) => void;

const TYPES: JobEventType[] = ['job', 'step', 'batch', 'host', 'log', 'coalesced', 'end'];

/**
 * Calls `onEvent` for every event of the job while mounted and `live` (the job is not finished).
 * The handler may change between renders. When a finished job runs again (a retry), `live` turns
 * true and the stream reopens after the last event seen, so nothing is applied twice. While the
 * stream is down for good, `onPoll` reads the page's data instead (see openLiveStream).
 */
export function useJobStream(
  scope: { bk_scope_type: string; bk_scope_id: string },
  jobId: number,
  onEvent: JobEventHandler,
  live: boolean,
  onPoll: () => void,
): void {
  const handler = useRef(onEvent);
  handler.current = onEvent;
  const poller = useRef(onPoll);
  poller.current = onPoll;
  const lastId = useRef<{ jobId: number; id: string }>({ jobId, id: '' });
  if (lastId.current.jobId !== jobId) lastId.current = { jobId, id: '' };
  const { bk_scope_type, bk_scope_id } = scope;
  useEffect(() => {
    if (!live || !jobId) return undefined;
    const url = () =>
      api.url('get_job_event_stream', {
        bk_scope_type,
        bk_scope_id,
        job_instance_id: jobId,
        last_event_id: lastId.current.id || undefined,
      });
    return openLiveStream(
      url,
      (source) => {
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
      },
      () => poller.current(),
    );
  }, [bk_scope_type, bk_scope_id, jobId, live]);
}

/**
 * Calls `onChange` for each of the scope's events of these `types` (get_scope_event_stream) while
 * mounted and `live`; `onPoll` reads the page's data while the stream is down for good.
 */
export function useScopeStream(
  scope: { bk_scope_type: string; bk_scope_id: string },
  types: readonly ('job' | 'step' | 'batch')[],
  onChange: () => void,
  onPoll: () => void,
  live = true,
): void {
  const changed = useRef(onChange);
  changed.current = onChange;
  const poller = useRef(onPoll);
  poller.current = onPoll;
  const { bk_scope_type, bk_scope_id } = scope;
  const names = types.join(' ');
  useEffect(() => {
    if (!live) return undefined;
    return openLiveStream(
      () => api.url('get_scope_event_stream', { bk_scope_type, bk_scope_id }),
      (source) => {
        for (const type of names.split(' ')) source.addEventListener(type, () => changed.current());
      },
      () => poller.current(),
    );
  }, [bk_scope_type, bk_scope_id, names, live]);
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
