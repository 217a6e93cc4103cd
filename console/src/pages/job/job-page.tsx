/**
 * A job instance: its steps as a flow from start to end with status, attempt and times, a
 * timeline of the steps on one time axis, and the job's operations. Live from the event stream.
 */
import { useCallback, useEffect, useMemo, useState } from 'react';
import { Link, useParams } from 'react-router';
import { JobPanels } from '../step/step-panels';
import { api } from '../../api/client';
import { throttle, useJobStream } from '../../api/job-stream';
import { ApiError } from '../../components/api-error';
import { RunStatusBadge } from '../../components/status';
import { t } from '../../i18n';
import { STEP_TYPES, formatDuration, formatTime, runStatus } from '../../model/statuses';
import { useScope } from '../../session/scope';
import { reaches } from '../../session/session';
import { useJobSummary } from '../step/job-summary';

export default function JobPage() {
  const scope = useScope();
  const jobId = Number(useParams().jobId);
  const { job, error, reload } = useJobSummary(scope.params, jobId);
  const [opError, setOpError] = useState<unknown>();
  const reloader = useMemo(() => throttle(reload, 500), [reload]);
  useEffect(() => () => reloader.cancel(), [reloader]);
  const onEvent = useCallback(() => reloader.call(), [reloader]);
  useJobStream(scope.params, jobId, onEvent, job !== undefined && !job.finished, reload);

  if (error) return <ApiError error={error} onRetry={reload} />;
  if (!job) return <p className="muted">{t('app.loading')}</p>;
  const j = job.job_instance;
  const start = j.start_time ?? j.create_time ?? 0;
  const end = j.end_time ?? Date.now();
  const span = Math.max(1, end - start);

  async function terminate() {
    setOpError(undefined);
    try {
      await api.call('operate_job_instance', { ...scope.params, job_instance_id: jobId, operation_code: 1 });
      reload();
    } catch (err) {
      setOpError(err);
    }
  }

  return (
    <div className="job-page">
      <nav className="breadcrumb small" aria-label={t('step.breadcrumb')}>
        <Link to={scope.path('jobs')}>{t('nav.history')}</Link>
      </nav>
      <header className="step-header">
        <h1>{j.name}</h1>
        <RunStatusBadge status={j.status} />
        <span className="muted">
          {t('job.id', { id: j.job_instance_id })} · {formatTime(j.create_time)} ·{' '}
          {formatDuration(j.total_time ?? (j.start_time ? Date.now() - j.start_time : null))}
        </span>
        {!job.finished && reaches(scope.role, 'operator') ? (
          <button type="button" className="danger" onClick={() => void terminate()}>
            {t('op.terminate')}
          </button>
        ) : null}
      </header>
      <ApiError error={opError} />
      <JobPanels scopeParams={scope.params} jobId={jobId} version={j.status} />
      <h2>{t('job.steps')}</h2>
      <ol className="step-flow">
        <li className="flow-end">{t('job.start')}</li>
        {job.step_instance_list.map((s, i) => (
          <li key={s.step_instance_id} className={`flow-step status-border-${runStatus(s.status).tone}`}>
            <Link to={scope.path(`jobs/${jobId}/steps/${s.step_instance_id}`)}>
              {t('step.position', { i: i + 1, n: job.step_instance_list.length })} {s.name}
            </Link>
            <RunStatusBadge status={s.status} />
            <span className="small muted">
              {STEP_TYPES[s.type] ?? ''} · {formatDuration(s.total_time)}
              {s.execute_count > 0 ? ` · ${t('job.attempts', { n: s.execute_count + 1 })}` : ''}
            </span>
          </li>
        ))}
        <li className="flow-end">{job.finished ? t('job.end') : t('job.running')}</li>
      </ol>
      <h2>{t('job.timeline')}</h2>
      <div className="timeline" role="list" aria-label={t('job.timeline')}>
        {job.step_instance_list.map((s) => {
          const from = (s.start_time ?? end) - start;
          const to = (s.end_time ?? (s.start_time ? Date.now() : end)) - start;
          return (
            <div key={s.step_instance_id} className="timeline-row" role="listitem">
              <span className="timeline-label">{s.name}</span>
              <span className="timeline-track">
                <span
                  className={`timeline-bar status-${runStatus(s.status).tone}`}
                  style={{
                    left: `${(from / span) * 100}%`,
                    width: `${Math.max(0.5, ((to - from) / span) * 100)}%`,
                  }}
                  title={`${formatTime(s.start_time)} – ${formatTime(s.end_time)}`}
                />
              </span>
              <span className="small muted">{formatDuration(s.total_time)}</span>
            </div>
          );
        })}
      </div>
    </div>
  );
}
