/**
 * The scope at a glance: agents normal and abnormal (with their addresses to copy), jobs running
 * now (live), and jobs that failed in the last 24 hours, one click from their failed hosts.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { Link } from 'react-router';
import { api } from '../../api/client';
import { throttle, useScopeStream } from '../../api/job-stream';
import { ApiError } from '../../components/api-error';
import { copyText } from '../../components/copy';
import { RunStatusBadge } from '../../components/status';
import { formatNumber, t } from '../../i18n';
import { FAILED_JOB_STATUSES, RUNNING_JOB_STATUSES, formatDuration, formatTime } from '../../model/statuses';
import { useReadOrder } from '../../resources/use-load';
import { useScope } from '../../session/scope';

/** get_host_list: the overview reads its counts; the addresses are read when copied. */
interface HostList {
  total: number;
  agent_status_count: { normal: number; abnormal: number };
  data: { ip: string }[];
}

interface Agents {
  normal: number;
  abnormal: number;
}

/** The largest page get_host_list gives. */
const HOST_PAGE = 10_000;

interface JobRow {
  job_instance_id: number;
  name: string;
  operator: string;
  status: number;
  create_time: number;
  start_time: number | null;
  total_time: number | null;
}

interface Jobs {
  total: number;
  data: JobRow[];
}

/** Jobs listed in a tile. */
const SHOWN = 8;

/**
 * The jobs of any of these statuses created in [from, to): get_job_instance_list takes one status
 * a call, so one call each, their totals summed and their newest rows merged.
 */
async function jobsOf(
  p: { bk_scope_type: string; bk_scope_id: string },
  statuses: readonly number[],
  from: number,
  to: number,
  signal: AbortSignal,
): Promise<Jobs> {
  const pages = await Promise.all(
    statuses.map((status) =>
      api.read<{ total: number; data: JobRow[] | null }>(
        'get_job_instance_list',
        { ...p, create_time_start: from, create_time_end: to, status, length: SHOWN },
        signal,
      ),
    ),
  );
  return {
    total: pages.reduce((n, page) => n + page.total, 0),
    data: pages
      .flatMap((page) => page.data ?? [])
      .sort((a, b) => b.create_time - a.create_time || b.job_instance_id - a.job_instance_id)
      .slice(0, SHOWN),
  };
}

export default function OverviewPage() {
  const scope = useScope();
  const [agents, setAgents] = useState<Agents>();
  const [running, setRunning] = useState<Jobs>({ total: 0, data: [] });
  const [failed, setFailed] = useState<Jobs>({ total: 0, data: [] });
  const [error, setError] = useState<unknown>();
  const [copied, setCopied] = useState('');
  const { bk_scope_type, bk_scope_id } = scope.params;

  // Replies are taken in the order their reads were made: a slow older one never wins (ReadOrder).
  const reads = useReadOrder();
  const load = useCallback(async () => {
    const now = Date.now();
    const p = { bk_scope_type, bk_scope_id };
    const got = await reads.read((signal) =>
      Promise.all([
        api.read<HostList>('get_host_list', { ...p, length: 1 }, signal),
        // The longest span the list takes: a job still running after 30 days is not counted.
        jobsOf(p, RUNNING_JOB_STATUSES, now - 30 * 86400e3 + 60e3, now + 60e3, signal),
        jobsOf(p, FAILED_JOB_STATUSES, now - 86400e3, now + 60e3, signal),
      ]),
    );
    if (!got) return;
    if ('error' in got) {
      setError(got.error);
      return;
    }
    const [a, r, f] = got.value;
    setAgents(a.agent_status_count);
    setRunning(r);
    setFailed(f);
    setError(undefined);
  }, [bk_scope_type, bk_scope_id, reads]);
  useEffect(() => {
    void load();
    return () => reads.abortAll();
  }, [load, reads]);
  const reloader = useRef(throttle(() => void load(), 1000));
  useEffect(() => {
    reloader.current.cancel();
    reloader.current = throttle(() => void load(), 1000);
    return () => reloader.current.cancel();
  }, [load]);
  useScopeStream(
    scope.params,
    ['job'],
    () => reloader.current.call(),
    () => void load(),
  );

  async function copyAgents(normal: boolean) {
    const ips: string[] = [];
    try {
      for (let start = 0; ; start += HOST_PAGE) {
        const page = await api.read<HostList>('get_host_list', {
          bk_scope_type,
          bk_scope_id,
          agent_status: normal ? 1 : 0,
          start,
          length: HOST_PAGE,
        });
        ips.push(...page.data.map((h) => h.ip));
        if (start + HOST_PAGE >= page.total) break;
      }
    } catch (err) {
      setError(err);
      return;
    }
    await copyText(ips.join('\n'));
    setCopied(t('common.copied', { n: formatNumber(ips.length) }));
  }

  return (
    <div className="overview">
      <h1>{t('nav.overview')}</h1>
      <ApiError error={error} onRetry={() => void load()} />
      <div className="tiles">
        <section className="card tile" aria-labelledby="tile-agents">
          <h2 id="tile-agents">{t('overview.agents')}</h2>
          <p className="big">
            <span className="status-ok-text">{formatNumber(agents?.normal ?? 0)}</span> {t('overview.normal')}{' '}
            ·{' '}
            <span className={agents?.abnormal ? 'status-fail-text' : undefined}>
              {formatNumber(agents?.abnormal ?? 0)}
            </span>{' '}
            {t('overview.abnormal')}
          </p>
          <div className="row">
            <button type="button" onClick={() => void copyAgents(true)} disabled={!agents?.normal}>
              {t('overview.copyNormal')}
            </button>
            <button type="button" onClick={() => void copyAgents(false)} disabled={!agents?.abnormal}>
              {t('overview.copyAbnormal')}
            </button>
            <span className="small muted" role="status">
              {copied}
            </span>
          </div>
        </section>
        <section className="card tile" aria-labelledby="tile-running">
          <h2 id="tile-running">{t('overview.running')}</h2>
          <p className="big">{formatNumber(running.total)}</p>
          <ul className="plain">
            {running.data.map((j) => (
              <li key={j.job_instance_id}>
                <Link to={scope.path(`jobs/${j.job_instance_id}`)}>{j.name}</Link>{' '}
                {j.status !== 2 ? <RunStatusBadge status={j.status} /> : null}{' '}
                <span className="small muted">
                  {j.operator} · {formatDuration(j.start_time ? Date.now() - j.start_time : null)}
                </span>
              </li>
            ))}
          </ul>
        </section>
        <section className="card tile" aria-labelledby="tile-failed">
          <h2 id="tile-failed">{t('overview.failed24h')}</h2>
          <p className="big">
            <span className={failed.total ? 'status-fail-text' : undefined}>
              {formatNumber(failed.total)}
            </span>
          </p>
          <ul className="plain">
            {failed.data.map((j) => (
              <li key={j.job_instance_id}>
                <Link to={scope.path(`jobs/${j.job_instance_id}`)}>{j.name}</Link>{' '}
                <RunStatusBadge status={j.status} />{' '}
                <span className="small muted">{formatTime(j.create_time)}</span>
              </li>
            ))}
          </ul>
        </section>
      </div>
      <p>
        <Link to={scope.path('run/script')}>{t('nav.runScript')}</Link> ·{' '}
        <Link to={scope.path('run/file')}>{t('nav.pushFile')}</Link> ·{' '}
        <Link to={scope.path('jobs')}>{t('nav.history')}</Link>
      </p>
    </div>
  );
}
