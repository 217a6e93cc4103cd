/**
 * A job plan: its steps and variables, "launch" with variable values (operators; the job then
 * opens), the diff a sync would apply when the template changed (with the crons that run the
 * plan) and the sync itself, the plan's own values and steps (admins), and deleting it.
 * BK-JOB's `/api_plan/:id` lands here.
 */
import { useEffect, useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { api } from '../../api/client';
import { ApiError } from '../../components/api-error';
import { t } from '../../i18n';
import type { MessageKey } from '../../i18n';
import { formatTime } from '../../resources/format';
import { useAction, useLoad } from '../../resources/use-load';
import { useScope } from '../../session/scope';
import { reaches } from '../../session/session';
import type { PlanDetail } from './plan-types';
import { STEP_TYPES } from './plan-types';
import { initialValues, valuesToSend, VariableFields } from './variable-fields';

interface SyncPreview {
  need_update: boolean;
  step_list: { id: number; name: string; type: number; change: 'kept' | 'disabled' | 'added' }[];
  removed_step_id_list: number[];
  global_var_list: {
    id: number;
    name: string;
    type?: number;
    change: 'kept' | 'added' | 'dropped';
    plan_value?: string | null;
    template_value?: string | null;
  }[];
  cron_list: { id: number; name: string }[];
}

const stepType = (type: number): MessageKey =>
  STEP_TYPES.find((x) => x.id === type)?.key ?? 'steps.type.script';

export default function PlanPage() {
  const scope = useScope();
  const navigate = useNavigate();
  const { planId = '' } = useParams();
  const canRun = reaches(scope.role, 'operator');
  const manage = reaches(scope.role, 'admin');
  const plan = useLoad(
    (signal) => api.read<PlanDetail>('get_job_plan_detail', { ...scope.params, job_plan_id: planId }, signal),
    [scope.type, scope.id, planId],
  );
  const preview = useLoad(
    (signal) =>
      api.read<SyncPreview>('get_job_plan_sync_preview', { ...scope.params, job_plan_id: planId }, signal),
    [scope.type, scope.id, planId],
  );
  const [values, setValues] = useState<Record<string, string>>({});
  useEffect(() => {
    if (plan.data) setValues(initialValues(plan.data.global_var_list));
  }, [plan.data]);
  const action = useAction();

  const launch = async (e: React.FormEvent) => {
    e.preventDefault();
    if (!plan.data) return;
    const r = await action.run(() =>
      api.call<{ job_instance_id: number }>('execute_job_plan', {
        ...scope.params,
        job_plan_id: Number(planId),
        global_var_list: valuesToSend(plan.data?.global_var_list ?? [], values),
      }),
    );
    if (r) void navigate(scope.path(`jobs/${r.job_instance_id}`));
  };
  const saveValues = async () => {
    if (!plan.data) return;
    const r = await action.run(() =>
      api.call('update_job_plan', {
        ...scope.params,
        job_plan_id: Number(planId),
        global_var_list: valuesToSend(plan.data?.global_var_list ?? [], values),
      }),
    );
    if (r !== undefined) plan.reload();
  };
  const sync = async () => {
    const r = await action.run(() =>
      api.call('sync_job_plan', { ...scope.params, job_plan_id: Number(planId) }),
    );
    if (r !== undefined) {
      plan.reload();
      preview.reload();
    }
  };
  const remove = async () => {
    if (!window.confirm(t('plans.deleteConfirm', { name: plan.data?.name ?? '' }))) return;
    const r = await action.run(() =>
      api.call('delete_job_plan', { ...scope.params, job_plan_id: Number(planId) }),
    );
    if (r !== undefined) void navigate(scope.path('plans'));
  };

  if (plan.error) return <ApiError error={plan.error} onRetry={plan.reload} />;
  if (!plan.data) return <p className="muted">{t('app.loading')}</p>;
  const p = plan.data;
  const p2 = preview.data;
  return (
    <section aria-labelledby="plan-title">
      <div className="page-head">
        <h1 id="plan-title">{t('plans.titleOf', { name: p.name })}</h1>
        {manage ? (
          <button type="button" className="danger" onClick={() => void remove()}>
            {t('plans.delete')}
          </button>
        ) : null}
      </div>
      <p className="muted">
        {t('plans.ofTemplate')}{' '}
        <Link to={scope.path(`templates/${p.job_template_id}`)}>#{p.job_template_id}</Link> ·{' '}
        {t('plans.modified', { user: p.last_modify_user, time: formatTime(p.last_modify_time, 's') })}
      </p>
      <ApiError error={action.error} />

      {p2?.need_update ? (
        <section className="panel warn" aria-labelledby="sync-title">
          <h2 id="sync-title">{t('plans.syncTitle')}</h2>
          <p>{t('plans.syncIntro')}</p>
          <table className="data-table">
            <caption>{t('plans.syncSteps')}</caption>
            <thead>
              <tr>
                <th scope="col">{t('steps.name')}</th>
                <th scope="col">{t('steps.typeLabel')}</th>
                <th scope="col">{t('plans.change')}</th>
              </tr>
            </thead>
            <tbody>
              {p2.step_list.map((s) => (
                <tr key={s.id} className={`change-${s.change}`}>
                  <td>{s.name}</td>
                  <td>{t(stepType(s.type))}</td>
                  <td>{t(`plans.stepChange.${s.change}`)}</td>
                </tr>
              ))}
              {p2.removed_step_id_list.map((id) => (
                <tr key={`removed-${id}`} className="change-removed">
                  <td>#{id}</td>
                  <td />
                  <td>{t('plans.stepChange.removed')}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <table className="data-table">
            <caption>{t('plans.syncVars')}</caption>
            <thead>
              <tr>
                <th scope="col">{t('vars.name')}</th>
                <th scope="col">{t('plans.planValue')}</th>
                <th scope="col">{t('plans.templateValue')}</th>
                <th scope="col">{t('plans.change')}</th>
              </tr>
            </thead>
            <tbody>
              {p2.global_var_list.map((v) => (
                <tr key={`${v.id}-${v.name}`} className={`change-${v.change}`}>
                  <td>
                    <code>{v.name}</code>
                  </td>
                  <td>{v.plan_value ?? ''}</td>
                  <td>{v.template_value ?? ''}</td>
                  <td>{t(`plans.varChange.${v.change}`)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {p2.cron_list.length ? (
            <p>
              {t('plans.syncCrons', { n: p2.cron_list.length })}{' '}
              {p2.cron_list.map((c, i) => (
                <span key={c.id}>
                  {i ? ', ' : ''}
                  <Link to={scope.path(`crons/${c.id}`)}>{c.name}</Link>
                </span>
              ))}
            </p>
          ) : null}
          {manage ? (
            <button type="button" className="primary" disabled={action.busy} onClick={() => void sync()}>
              {t('plans.syncNow')}
            </button>
          ) : null}
        </section>
      ) : null}
      <ApiError error={preview.error} />

      <h2>{t('plans.steps')}</h2>
      <ol className="plain-list">
        {p.step_list.map((s) => (
          <li key={s.id}>
            {s.name} <span className="muted small">{t(stepType(s.type))}</span>
          </li>
        ))}
      </ol>

      <form className="form" onSubmit={(e) => void launch(e)} aria-labelledby="launch-title">
        <h2 id="launch-title">{canRun ? t('plans.launchTitle') : t('vars.title')}</h2>
        <VariableFields
          vars={p.global_var_list}
          values={values}
          onChange={(name, value) => setValues((v) => ({ ...v, [name]: value }))}
          readOnly={!canRun}
          idPrefix="plan-var"
        />
        <div className="actions">
          {canRun ? (
            <button type="submit" className="primary" disabled={action.busy}>
              {t('plans.launch')}
            </button>
          ) : null}
          {manage ? (
            <button type="button" disabled={action.busy} onClick={() => void saveValues()}>
              {t('plans.saveValues')}
            </button>
          ) : null}
        </div>
      </form>
    </section>
  );
}
