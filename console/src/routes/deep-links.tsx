/**
 * BK-JOB's links for other systems: `/api_execute/:jobId`, `/api_execute_step/:jobId/:stepId`
 * and `/api_plan/:planId` carry no scope, so the console asks the server where the job or plan
 * lives and goes to its page there.
 */
import { useEffect, useState } from 'react';
import { Navigate, useParams } from 'react-router';
import { api } from '../api/client';
import { ApiError } from '../components/api-error';
import { t } from '../i18n';
import { scopeBase } from '../session/scope';

interface Located {
  scope_type: 'biz' | 'biz_set';
  scope_id: number;
}

export function DeepLink({ kind }: { kind: 'job' | 'step' | 'plan' }) {
  const { jobId, stepId, planId } = useParams();
  const id = kind === 'plan' ? planId : jobId;
  const [found, setFound] = useState<Located>();
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    api
      .get<Located>('/api/console/locate', { kind: kind === 'plan' ? 'plan' : 'job', id })
      .then(setFound, setError);
  }, [kind, id]);
  if (error) return <ApiError error={error} />;
  if (!found) return <p className="muted">{t('app.loading')}</p>;
  const base = scopeBase(found.scope_type, found.scope_id);
  const to =
    kind === 'job'
      ? `${base}/jobs/${jobId}`
      : kind === 'step'
        ? `${base}/jobs/${jobId}/steps/${stepId}`
        : `${base}/plans/${planId}`;
  return <Navigate to={to} replace />;
}
