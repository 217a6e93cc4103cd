/**
 * Execution history: every filter of BK-JOB's history page, kept in the URL (so a filtered view
 * can be shared and survives a reload), live from the scope's event stream with a pause.
 * The duration buckets filter the page that was read (the API has no duration filter).
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { Link, useSearchParams } from 'react-router';
import { api } from '../../api/client';
import { throttle, useScopeStream } from '../../api/job-stream';
import { ApiError } from '../../components/api-error';
import { RunStatusBadge } from '../../components/status';
import { formatNumber, t } from '../../i18n';
import { RUN_STATUSES, formatDuration, formatTime, runStatus } from '../../model/statuses';
import { useReadOrder } from '../../resources/use-load';
import { useScope } from '../../session/scope';

interface JobRow {
  job_instance_id: number;
  name: string;
  operator: string;
  launch_mode: number;
  status: number;
  type: number;
  create_time: number;
  total_time: number | null;
  start_time: number | null;
}

const RANGES: Record<string, number> = {
  '1h': 3600e3,
  '12h': 12 * 3600e3,
  '24h': 24 * 3600e3,
  '7d': 7 * 86400e3,
  '30d': 30 * 86400e3 - 60e3,
};
const PAGE = 50;
const TYPES: Record<number, string> = { 0: 'Plan', 1: 'Script', 2: 'File' };
const MODES: Record<number, string> = { 1: 'Web', 2: 'API', 3: 'Cron' };

function inDuration(bucket: string, ms: number | null): boolean {
  if (!bucket) return true;
  if (ms === null) return false;
  if (bucket === 'lt1m') return ms < 60e3;
  if (bucket === '1to10m') return ms >= 60e3 && ms <= 600e3;
  return ms > 600e3;
}

export default function HistoryPage() {
  const scope = useScope();
  const [q, setQ] = useSearchParams();
  const [rows, setRows] = useState<JobRow[]>([]);
  const [total, setTotal] = useState(0);
  const [error, setError] = useState<unknown>();
  const [paused, setPaused] = useState(false);
  const get = (k: string) => q.get(k) ?? '';
  const range = get('range') || '24h';
  const page = Number(get('page') || '0');
  const key = q.toString();

  // A live reload of page 1 answering after the person went to page 2 is dropped (ReadOrder).
  const reads = useReadOrder();
  const load = useCallback(async () => {
    const now = Date.now();
    const from =
      range === 'custom' && get('from')
        ? new Date(get('from')).getTime()
        : now - (RANGES[range] ?? RANGES['24h'] ?? 0);
    const to = range === 'custom' && get('to') ? new Date(get('to')).getTime() : now + 60e3;
    const got = await reads.read((signal) =>
      api.read<{ total: number; data: JobRow[] | null }>(
        'get_job_instance_list',
        {
          ...scope.params,
          create_time_start: from,
          create_time_end: to,
          job_instance_id: get('id') || undefined,
          name: get('name') || undefined,
          ip: get('ip') || undefined,
          operator: get('operator') || undefined,
          status: get('status') || undefined,
          type: get('type') || undefined,
          launch_mode: get('mode') || undefined,
          start: page * PAGE,
          length: PAGE,
        },
        signal,
      ),
    );
    if (!got) return;
    if ('error' in got) {
      setError(got.error);
      return;
    }
    setRows(got.value.data ?? []);
    setTotal(got.value.total);
    setError(undefined);
  }, [key, scope.params, reads]);
  useEffect(() => {
    void load();
    // Replies still out were asked for other filters or another page.
    return () => reads.abortAll();
  }, [load, reads]);

  // Live: any job of the scope changing reloads the page (at most once a second), unless paused.
  const reloader = useRef(throttle(() => void load(), 1000));
  useEffect(() => {
    reloader.current.cancel();
    reloader.current = throttle(() => void load(), 1000);
    return () => reloader.current.cancel();
  }, [load]);
  useScopeStream(
    scope.params,
    ['job', 'step'],
    () => reloader.current.call(),
    () => void load(),
    !paused,
  );

  function set(k: string, v: string) {
    const next = new URLSearchParams(q);
    if (v) next.set(k, v);
    else next.delete(k);
    if (k !== 'page') next.delete('page');
    setQ(next, { replace: true });
  }

  const shown = rows.filter((r) => inDuration(get('duration'), r.total_time));
  const input = (k: string, label: string, width = '9rem') => (
    <label>
      {label}
      <input
        style={{ width }}
        defaultValue={get(k)}
        onBlur={(e) => set(k, e.target.value.trim())}
        onKeyDown={(e) => e.key === 'Enter' && set(k, e.currentTarget.value.trim())}
      />
    </label>
  );
  const select = (k: string, label: string, options: [string, string][]) => (
    <label>
      {label}
      <select value={get(k)} onChange={(e) => set(k, e.target.value)}>
        <option value="">{t('common.all')}</option>
        {options.map(([v, l]) => (
          <option key={v} value={v}>
            {l}
          </option>
        ))}
      </select>
    </label>
  );

  return (
    <div className="history-page">
      <div className="row">
        <h1>{t('nav.history')}</h1>
        <button type="button" onClick={() => setPaused((p) => !p)} aria-pressed={paused}>
          {paused ? t('history.resume') : t('history.pause')}
        </button>
      </div>
      <form
        className="filters"
        role="search"
        aria-label={t('history.filters')}
        onSubmit={(e) => e.preventDefault()}
        key={key}
      >
        {input('id', t('history.id'), '6rem')}
        {input('name', t('history.name'), '12rem')}
        {input('ip', t('history.ip'))}
        {input('operator', t('history.operator'))}
        {select(
          'status',
          t('history.status'),
          RUN_STATUSES.map((s) => [String(s), runStatus(s).label]),
        )}
        {select('type', t('history.type'), Object.entries(TYPES))}
        {select('mode', t('history.mode'), Object.entries(MODES))}
        {select('duration', t('history.duration'), [
          ['lt1m', t('history.lt1m')],
          ['1to10m', t('history.1to10m')],
          ['gt10m', t('history.gt10m')],
        ])}
        <label>
          {t('history.range')}
          <select value={range} onChange={(e) => set('range', e.target.value)}>
            {[...Object.keys(RANGES), 'custom'].map((r) => (
              <option key={r} value={r}>
                {t(`history.range.${r}` as 'history.range.1h')}
              </option>
            ))}
          </select>
        </label>
        {range === 'custom' ? (
          <>
            <label>
              {t('history.from')}
              <input
                type="datetime-local"
                value={get('from')}
                onChange={(e) => set('from', e.target.value)}
              />
            </label>
            <label>
              {t('history.to')}
              <input type="datetime-local" value={get('to')} onChange={(e) => set('to', e.target.value)} />
            </label>
          </>
        ) : null}
      </form>
      <ApiError error={error} onRetry={() => void load()} />
      <table className="data-table">
        <thead>
          <tr>
            <th scope="col">{t('history.id')}</th>
            <th scope="col">{t('history.name')}</th>
            <th scope="col">{t('history.status')}</th>
            <th scope="col">{t('history.type')}</th>
            <th scope="col">{t('history.mode')}</th>
            <th scope="col">{t('history.operator')}</th>
            <th scope="col">{t('history.created')}</th>
            <th scope="col">{t('history.duration')}</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((r) => (
            <tr key={r.job_instance_id}>
              <td>{r.job_instance_id}</td>
              <td>
                <Link to={scope.path(`jobs/${r.job_instance_id}`)}>{r.name}</Link>
              </td>
              <td>
                <RunStatusBadge status={r.status} />
              </td>
              <td>{TYPES[r.type] ?? r.type}</td>
              <td>{MODES[r.launch_mode] ?? r.launch_mode}</td>
              <td>{r.operator}</td>
              <td>{formatTime(r.create_time)}</td>
              <td>{formatDuration(r.total_time ?? (r.start_time ? Date.now() - r.start_time : null))}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {shown.length === 0 ? <p className="muted">{t('history.none')}</p> : null}
      <div className="row pager">
        <button type="button" disabled={page === 0} onClick={() => set('page', String(page - 1))}>
          {t('history.prev')}
        </button>
        <span className="small">
          {t('history.page', {
            from: formatNumber(total === 0 ? 0 : page * PAGE + 1),
            to: formatNumber(Math.min(total, (page + 1) * PAGE)),
            total: formatNumber(total),
          })}
        </span>
        <button
          type="button"
          disabled={(page + 1) * PAGE >= total}
          onClick={() => set('page', String(page + 1))}
        >
          {t('history.next')}
        </button>
      </div>
    </div>
  );
}
