/**
 * The scope at a glance: agents normal and abnormal (with their addresses to copy), jobs running
 * now (live), and jobs that failed in the last 24 hours, one click from their failed hosts.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { Link } from 'react-router';
import { api } from '../../api/client';
import { throttle } from '../../api/job-stream';
import { ApiError } from '../../components/api-error';
import { copyText } from '../../components/copy';
import { RunStatusBadge } from '../../components/status';
import { formatNumber, t } from '../../i18n';
import { formatDuration, formatTime } from '../../model/statuses';
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

export default function OverviewPage() {
  const scope = useScope();
  const [agents, setAgents] = useState<Agents>();
  const [running, setRunning] = useState<JobRow[]>([]);
  const [failed, setFailed] = useState<{ total: number; data: JobRow[] }>({ total: 0, data: [] });
  const [error, setError] = useState<unknown>();
  const [copied, setCopied] = useState('');
  const { bk_scope_type, bk_scope_id } = scope.params;

  const load = useCallback(async () => {
    const now = Date.now();
    const p = { bk_scope_type, bk_scope_id };
    try {
      const [a, r, f] = await Promise.all([
        api.read<HostList>('get_host_list', { ...p, length: 1 }),
        api.read<{ data: JobRow[] }>('get_job_instance_list', {
          ...p,
          create_time_start: now - 30 * 86400e3 + 60e3,
          create_time_end: now + 60e3,
          status: 2,
          length: 50,
        }),
        api.read<{ total: number; data: JobRow[] }>('get_job_instance_list', {
          ...p,
          create_time_start: now - 86400e3,
          create_time_end: now + 60e3,
          status: 4,
          length: 20,
        }),
      ]);
      setAgents(a.agent_status_count);
      setRunning(r.data);
      setFailed(f);
      setError(undefined);
    } catch (err) {
      setError(err);
    }
  }, [bk_scope_type, bk_scope_id]);
  useEffect(() => void load(), [load]);
  const reloader = useRef(throttle(() => void load(), 1000));
  useEffect(() => {
    reloader.current = throttle(() => void load(), 1000);
    const source = new EventSource(api.url('get_scope_event_stream', { bk_scope_type, bk_scope_id }));
    source.addEventListener('job', () => reloader.current.call());
    return () => {
      source.close();
      reloader.current.cancel();
    };
  }, [load, bk_scope_type, bk_scope_id]);

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
          <p className="big">{formatNumber(running.length)}</p>
          <ul className="plain">
            {running.slice(0, 8).map((j) => (
              <li key={j.job_instance_id}>
                <Link to={scope.path(`jobs/${j.job_instance_id}`)}>{j.name}</Link>{' '}
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
            {failed.data.slice(0, 8).map((j) => (
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
