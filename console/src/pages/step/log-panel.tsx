/**
 * One host's log: read by byte offset (log_offset/log_next_offset), so following a running host
 * fetches only what is new, when the event stream announces output for it or, as a fallback,
 * every 2 s while the host runs. ANSI colours, search with match count and "matching lines
 * only", wrap, font size, download (the rest is read by offset first), auto-scroll while the view
 * is at the bottom. Logs of tens of thousands of lines render only the visible lines.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { api } from '../../api/client';
import { AnsiLine, stripAnsi } from '../../components/ansi-text';
import { ApiError } from '../../components/api-error';
import { t } from '../../i18n';

const CHUNK = 512 * 1024;

interface LogReply {
  log_content: string | null;
  log_offset: number;
  log_next_offset: number;
  log_total_bytes: number;
  log_dropped_bytes: number;
  log_complete: boolean;
}

export interface LogTarget {
  jobId: number;
  stepId: number;
  executeCount: number;
  hostId: number;
  ip: string;
}

export function LogPanel({
  scopeParams,
  target,
  running,
  bump,
}: {
  scopeParams: { bk_scope_type: string; bk_scope_id: string };
  target: LogTarget;
  /** The host is still running: keep following. */
  running: boolean;
  /** Changes whenever the event stream announces new output for this host. */
  bump: number;
}) {
  const [text, setText] = useState('');
  const [dropped, setDropped] = useState(0);
  const [complete, setComplete] = useState(false);
  const [error, setError] = useState<unknown>();
  const [wrap, setWrap] = useState(false);
  const [fontSize, setFontSize] = useState(13);
  const [search, setSearch] = useState('');
  const [onlyMatches, setOnlyMatches] = useState(false);
  const [follow, setFollow] = useState(true);
  const offset = useRef(0);
  /** What `text` holds once the reads so far are rendered: a download reads the rest, then this. */
  const held = useRef('');
  /** The read under way: a caller arriving meanwhile waits for it (and for the re-read it asks). */
  const inflight = useRef<Promise<boolean> | undefined>(undefined);
  /**
   * Output was announced while a read was under way: that read may stop at the total it saw
   * first, so another read follows it. Without it the host's last lines could be announced
   * during a read, and nothing read them once the host finished and the poll stopped.
   */
  const again = useRef(false);
  const key = `${target.jobId}/${target.stepId}/${target.executeCount}/${target.hostId}`;
  /**
   * Bumped whenever the log starts again from byte 0. A read begun before belongs to an older
   * generation: what it brings is dropped, and it leaves `inflight` to the newer one. A key would
   * not do: after host A, B and A again, a read of the first A came back as current, and its
   * bytes were appended beside those of the new read from byte 0 (the log shown twice).
   */
  const generation = useRef(0);

  /** Reads from `offset` to the end the server has now; whether the log is complete. */
  const readToEnd = useCallback(
    async (mine: number): Promise<boolean> => {
      for (;;) {
        const r = await api.read<LogReply>('get_job_instance_ip_log', {
          ...scopeParams,
          job_instance_id: target.jobId,
          step_instance_id: target.stepId,
          execute_count: target.executeCount,
          bk_host_id: target.hostId,
          log_offset: offset.current,
          log_length: CHUNK,
        });
        if (mine !== generation.current) return false;
        const got = r.log_content ?? '';
        if (got) {
          held.current += got;
          setText(held.current);
        }
        offset.current = r.log_next_offset ?? offset.current;
        setDropped(r.log_dropped_bytes ?? 0);
        setComplete(r.log_complete);
        setError(undefined);
        if (!got || r.log_next_offset >= r.log_total_bytes) return r.log_complete;
      }
    },
    [scopeParams, target.jobId, target.stepId, target.executeCount, target.hostId],
  );

  const readMore = useCallback((): Promise<boolean> => {
    if (inflight.current) {
      again.current = true;
      return inflight.current;
    }
    const mine = generation.current;
    const run = (async () => {
      try {
        for (;;) {
          again.current = false;
          const done = await readToEnd(mine);
          if (mine !== generation.current || done || !again.current) return done;
        }
      } catch (err) {
        if (mine === generation.current) setError(err);
        return false;
      } finally {
        if (mine === generation.current) inflight.current = undefined;
      }
    })();
    inflight.current = run;
    return run;
  }, [readToEnd]);

  // A new host or attempt starts from byte 0.
  useEffect(() => {
    generation.current += 1;
    offset.current = 0;
    inflight.current = undefined;
    again.current = false;
    held.current = '';
    setText('');
    setComplete(false);
    setDropped(0);
    setError(undefined);
    void readMore();
  }, [key, readMore]);

  // New output announced by the stream; and a slow poll while the host runs, in case events were coalesced.
  useEffect(() => {
    if (bump > 0) void readMore();
  }, [bump, readMore]);
  useEffect(() => {
    if (!running || complete) return undefined;
    const timer = setInterval(() => void readMore(), 2000);
    return () => clearInterval(timer);
  }, [running, complete, readMore]);
  // The host just finished and the poll stops: one more read takes what it printed last.
  const seen = useRef({ key, running });
  useEffect(() => {
    const finished = seen.current.key === key && seen.current.running && !running;
    seen.current = { key, running };
    if (finished && !complete) void readMore();
  }, [key, running, complete, readMore]);

  const lines = useMemo(() => {
    const all = text.split('\n');
    if (all.length > 0 && all[all.length - 1] === '') all.pop();
    return all;
  }, [text]);
  const plain = useMemo(() => (search ? lines.map(stripAnsi) : []), [lines, search]);
  const matches = useMemo(() => {
    if (!search) return [];
    const needle = search.toLowerCase();
    const out: number[] = [];
    plain.forEach((l, i) => {
      if (l.toLowerCase().includes(needle)) out.push(i);
    });
    return out;
  }, [plain, search]);
  const shown = onlyMatches && search ? matches : undefined;
  const count = shown ? shown.length : lines.length;

  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (el && follow) el.scrollTop = el.scrollHeight;
  }, [count, follow, wrap]);

  async function download() {
    let done = complete;
    while (!done) {
      const before = offset.current;
      done = await readMore();
      if (offset.current === before) break;
    }
    const blob = new Blob([held.current], { type: 'text/plain' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = `${target.ip}-step${target.stepId}-attempt${target.executeCount}.log`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  }

  // Virtualised by hand: fixed line height when not wrapping; the wrapped view renders every line.
  const [scrollTop, setScrollTop] = useState(0);
  const viewport = 520;
  const LINE_HEIGHT = Math.round(fontSize * 1.45);
  const first = wrap ? 0 : Math.max(0, Math.floor(scrollTop / LINE_HEIGHT) - 20);
  const last = wrap ? count : Math.min(count, Math.ceil((scrollTop + viewport) / LINE_HEIGHT) + 20);
  const rows = [];
  for (let r = first; r < last; r++) {
    const i = shown ? (shown[r] ?? 0) : r;
    rows.push(
      <div
        key={i}
        className="log-line"
        style={
          wrap
            ? undefined
            : {
                position: 'absolute',
                top: r * LINE_HEIGHT,
                height: LINE_HEIGHT,
                lineHeight: `${LINE_HEIGHT}px`,
              }
        }
      >
        <span className="log-no" aria-hidden="true">
          {i + 1}
        </span>
        <span className="log-text">
          <AnsiLine text={lines[i] ?? ''} highlight={search} />
        </span>
      </div>,
    );
  }

  return (
    <section className="log-panel" aria-label={t('log.title', { ip: target.ip })}>
      <div className="log-tools">
        <strong className="mono">{target.ip}</strong>
        <label className="inline">
          <span className="visually-hidden">{t('log.search')}</span>
          <input
            type="search"
            placeholder={t('log.search')}
            value={search}
            onChange={(e) => setSearch(e.target.value)}
            aria-label={t('log.search')}
          />
        </label>
        {search ? <span className="small">{t('log.matches', { n: matches.length })}</span> : null}
        <label className="inline">
          <input type="checkbox" checked={onlyMatches} onChange={(e) => setOnlyMatches(e.target.checked)} />
          {t('log.onlyMatches')}
        </label>
        <label className="inline">
          <input type="checkbox" checked={wrap} onChange={(e) => setWrap(e.target.checked)} />
          {t('log.wrap')}
        </label>
        <label className="inline">
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} />
          {t('log.follow')}
        </label>
        <label className="inline">
          {t('log.font')}
          <select value={fontSize} onChange={(e) => setFontSize(Number(e.target.value))}>
            {[11, 12, 13, 14, 16, 18].map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
        <button type="button" onClick={() => void download()}>
          {t('log.download')}
        </button>
      </div>
      <ApiError error={error} />
      {dropped > 0 ? <p className="warning small">{t('log.dropped', { n: dropped })}</p> : null}
      <div
        ref={box}
        className={`log-view mono${wrap ? ' wrap' : ''}`}
        style={{ fontSize, height: viewport }}
        tabIndex={0}
        role="log"
        aria-label={t('log.output', { ip: target.ip })}
        onScroll={(e) => {
          const el = e.currentTarget;
          setScrollTop(el.scrollTop);
          const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 30;
          if (atBottom !== follow) setFollow(atBottom);
        }}
      >
        <div style={wrap ? undefined : { position: 'relative', height: count * LINE_HEIGHT }}>{rows}</div>
        {lines.length === 0 ? <p className="muted">{complete ? t('log.empty') : t('log.waiting')}</p> : null}
      </div>
      <p className="small muted" aria-live="polite">
        {t('log.status', { lines: lines.length, bytes: offset.current })}
        {complete ? ` · ${t('log.complete')}` : running ? ` · ${t('log.following')}` : ''}
      </p>
    </section>
  );
}
