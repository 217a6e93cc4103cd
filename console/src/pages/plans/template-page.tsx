/**
 * A job template: name, global variables and steps (new at /templates/new), saved with
 * create_job_template / update_job_template; below it the template's plans and a form for a new
 * plan (name and the steps it runs). Viewers and operators see it read-only.
 */
import { useEffect, useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { api } from '../../api/client';
import { ApiError } from '../../components/api-error';
import { t } from '../../i18n';
import { serverToText, textToServer } from '../../resources/targets';
import { useAction, useLoad } from '../../resources/use-load';
import { useScope } from '../../session/scope';
import { reaches } from '../../session/session';
import type { ListItem, TemplateDetail, Variable } from './plan-types';
import { VAR_TYPES } from './plan-types';
import { fromEditStep, newEditStep, StepEditor, toEditStep } from './step-editor';
import type { Choice, EditStep } from './step-editor';

interface EditVar {
  key: string;
  id?: number;
  name: string;
  type: number;
  description: string;
  required: boolean;
  value: string;
}

let seq = 0;
const toEditVar = (v: Variable): EditVar => ({
  key: `v${++seq}`,
  id: v.id,
  name: v.name,
  type: v.type,
  description: v.description ?? '',
  required: v.required === 1,
  value: v.type === 3 ? serverToText(v.server) : (v.value ?? ''),
});
const fromEditVar = (v: EditVar): Variable => ({
  ...(v.id ? { id: v.id } : {}),
  name: v.name,
  type: v.type,
  description: v.description,
  required: v.required ? 1 : 0,
  ...(v.type === 3 ? { server: textToServer(v.value).server } : { value: v.value }),
});

export function useAccountChoices(params: Record<string, string>): Choice[] {
  const accounts = useLoad(
    (signal) =>
      api.readAll<{ id: number; alias: string; account: string }>(
        'get_account_list',
        { ...params, category: 1 },
        signal,
      ),
    [params.bk_scope_type, params.bk_scope_id],
  );
  return (accounts.data?.data ?? []).map((a) => ({ id: String(a.id), label: `${a.alias} (${a.account})` }));
}

export default function TemplatePage() {
  const scope = useScope();
  const navigate = useNavigate();
  const { templateId } = useParams();
  const isNew = templateId === undefined;
  const manage = reaches(scope.role, 'admin');
  const readOnly = !manage;
  const detail = useLoad(
    (signal) =>
      isNew
        ? Promise.resolve(undefined)
        : api.read<TemplateDetail>(
            'get_job_template_detail',
            { ...scope.params, job_template_id: templateId },
            signal,
          ),
    [scope.type, scope.id, templateId],
  );
  const accounts = useAccountChoices(scope.params);
  const scripts = useLoad(
    (signal) =>
      api.readAll<{ id: string; name: string; online_script_version_id: number | null }>(
        'get_script_list',
        scope.params,
        signal,
      ),
    [scope.type, scope.id],
  );
  const scriptChoices: Choice[] = (scripts.data?.data ?? [])
    .filter((s) => s.online_script_version_id)
    .map((s) => ({ id: s.id, label: s.name }));

  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [vars, setVars] = useState<EditVar[]>([]);
  const [steps, setSteps] = useState<EditStep[]>([]);
  useEffect(() => {
    const d = detail.data;
    if (!d) return;
    setName(d.name);
    setDescription(d.description);
    setVars(d.global_var_list.map(toEditVar));
    setSteps(d.step_list.map(toEditStep));
  }, [detail.data]);
  const save = useAction();

  const patchStep = (i: number, patch: Partial<EditStep>) =>
    setSteps((s) => s.map((x, j) => (j === i ? { ...x, ...patch } : x)));
  const moveStep = (i: number, d: -1 | 1) =>
    setSteps((s) => {
      const next = [...s];
      const [x] = next.splice(i, 1);
      if (x) next.splice(i + d, 0, x);
      return next;
    });
  const patchVar = (i: number, patch: Partial<EditVar>) =>
    setVars((v) => v.map((x, j) => (j === i ? { ...x, ...patch } : x)));

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const body = {
      ...scope.params,
      name,
      description,
      global_var_list: vars.map(fromEditVar),
      step_list: steps.map(fromEditStep),
    };
    const r = await save.run(() =>
      isNew
        ? api.call<{ id: number }>('create_job_template', body)
        : api.call<{ id: number }>('update_job_template', { ...body, job_template_id: Number(templateId) }),
    );
    if (!r) return;
    if (isNew) void navigate(scope.path(`templates/${r.id}`));
    else detail.reload();
  };
  const remove = async () => {
    if (!window.confirm(t('templates.deleteConfirm', { name }))) return;
    const r = await save.run(() =>
      api.call('delete_job_template', { ...scope.params, job_template_id: Number(templateId) }),
    );
    if (r !== undefined) void navigate(scope.path('templates'));
  };

  if (detail.error) return <ApiError error={detail.error} onRetry={detail.reload} />;
  if (!isNew && !detail.data) return <p className="muted">{t('app.loading')}</p>;
  const hostVars = vars.filter((v) => v.type === 3 && v.name).map(fromEditVar);

  return (
    <section aria-labelledby="template-title">
      <div className="page-head">
        <h1 id="template-title">
          {isNew ? t('templates.new') : t('templates.titleOf', { name: detail.data?.name ?? '' })}
        </h1>
        {manage && !isNew ? (
          <button type="button" className="danger" onClick={() => void remove()}>
            {t('templates.delete')}
          </button>
        ) : null}
      </div>
      <form className="form" onSubmit={(e) => void submit(e)}>
        <label>
          {t('templates.name')}
          <input
            required
            maxLength={256}
            readOnly={readOnly}
            value={name}
            onChange={(e) => setName(e.target.value)}
          />
        </label>
        <label>
          {t('templates.description')}
          <textarea
            rows={2}
            readOnly={readOnly}
            value={description}
            onChange={(e) => setDescription(e.target.value)}
          />
        </label>

        <h2>{t('vars.title')}</h2>
        <table className="data-table vars-table">
          <thead>
            <tr>
              <th scope="col">{t('vars.name')}</th>
              <th scope="col">{t('vars.type')}</th>
              <th scope="col">{t('vars.value')}</th>
              <th scope="col">{t('vars.required')}</th>
              <th scope="col">{t('vars.description')}</th>
              {readOnly ? null : <th scope="col">{t('common.actions')}</th>}
            </tr>
          </thead>
          <tbody>
            {vars.map((v, i) => (
              <tr key={v.key}>
                <td>
                  <input
                    aria-label={t('vars.nameOf', { n: i + 1 })}
                    required
                    pattern="[A-Za-z_][A-Za-z0-9_]{0,63}"
                    readOnly={readOnly}
                    value={v.name}
                    onChange={(e) => patchVar(i, { name: e.target.value })}
                  />
                </td>
                <td>
                  <select
                    aria-label={t('vars.typeOf', { n: i + 1 })}
                    disabled={readOnly || v.id !== undefined}
                    value={v.type}
                    onChange={(e) => patchVar(i, { type: Number(e.target.value) })}
                  >
                    {VAR_TYPES.map((x) => (
                      <option key={x.id} value={x.id}>
                        {t(x.key)}
                      </option>
                    ))}
                  </select>
                </td>
                <td>
                  {v.type === 3 ? (
                    <textarea
                      aria-label={t('vars.valueOf', { n: i + 1 })}
                      rows={2}
                      readOnly={readOnly}
                      value={v.value}
                      placeholder={t('vars.hostsPlaceholder')}
                      onChange={(e) => patchVar(i, { value: e.target.value })}
                    />
                  ) : (
                    <input
                      aria-label={t('vars.valueOf', { n: i + 1 })}
                      type={v.type === 4 ? 'password' : 'text'}
                      autoComplete="off"
                      readOnly={readOnly}
                      value={v.value}
                      onChange={(e) => patchVar(i, { value: e.target.value })}
                    />
                  )}
                </td>
                <td>
                  <input
                    type="checkbox"
                    aria-label={t('vars.requiredOf', { n: i + 1 })}
                    disabled={readOnly}
                    checked={v.required}
                    onChange={(e) => patchVar(i, { required: e.target.checked })}
                  />
                </td>
                <td>
                  <input
                    aria-label={t('vars.descriptionOf', { n: i + 1 })}
                    readOnly={readOnly}
                    value={v.description}
                    onChange={(e) => patchVar(i, { description: e.target.value })}
                  />
                </td>
                {readOnly ? null : (
                  <td>
                    <button
                      type="button"
                      className="danger"
                      aria-label={t('vars.removeOf', { n: i + 1 })}
                      onClick={() => setVars((x) => x.filter((_, j) => j !== i))}
                    >
                      {t('common.remove')}
                    </button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
        {readOnly ? null : (
          <div className="actions">
            <button
              type="button"
              onClick={() =>
                setVars((x) => [
                  ...x,
                  { key: `v${++seq}`, name: '', type: 1, description: '', required: false, value: '' },
                ])
              }
            >
              {t('vars.add')}
            </button>
          </div>
        )}

        <h2>{t('steps.title')}</h2>
        <ol className="step-list">
          {steps.map((s, i) => (
            <StepEditor
              key={s.key}
              step={s}
              index={i}
              count={steps.length}
              onChange={(p) => patchStep(i, p)}
              onMove={(d) => moveStep(i, d)}
              onRemove={() => setSteps((x) => x.filter((_, j) => j !== i))}
              readOnly={readOnly}
              accounts={accounts}
              scripts={scriptChoices}
              hostVars={hostVars}
            />
          ))}
        </ol>
        {readOnly ? null : (
          <div className="actions">
            <button
              type="button"
              onClick={() => setSteps((s) => [...s, newEditStep(1, accounts[0]?.id ?? '')])}
            >
              {t('steps.addScript')}
            </button>
            <button
              type="button"
              onClick={() => setSteps((s) => [...s, newEditStep(2, accounts[0]?.id ?? '')])}
            >
              {t('steps.addFile')}
            </button>
            <button type="button" onClick={() => setSteps((s) => [...s, newEditStep(3, '')])}>
              {t('steps.addConfirm')}
            </button>
          </div>
        )}
        <ApiError error={save.error} />
        {readOnly ? null : (
          <div className="actions sticky-actions">
            <button type="submit" className="primary" disabled={save.busy}>
              {isNew ? t('templates.create') : t('templates.save')}
            </button>
          </div>
        )}
      </form>
      {isNew || !detail.data ? null : (
        <TemplatePlans templateId={detail.data.id} steps={detail.data.step_list} />
      )}
    </section>
  );
}

function TemplatePlans({ templateId, steps }: { templateId: number; steps: TemplateDetail['step_list'] }) {
  const scope = useScope();
  const navigate = useNavigate();
  const plans = useLoad(
    (signal) =>
      api.readAll<ListItem>('get_job_plan_list', { ...scope.params, job_template_id: templateId }, signal),
    [scope.type, scope.id, templateId],
  );
  const [name, setName] = useState('');
  const [enabled, setEnabled] = useState<Record<number, boolean>>({});
  const create = useAction();
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const r = await create.run(() =>
      api.call<{ id: number }>('create_job_plan', {
        ...scope.params,
        job_template_id: templateId,
        name,
        step_list: steps.filter((s) => s.id && enabled[s.id] !== false).map((s) => ({ id: s.id })),
      }),
    );
    if (r) void navigate(scope.path(`plans/${r.id}`));
  };
  return (
    <section aria-labelledby="template-plans-title">
      <h2 id="template-plans-title">{t('templates.plans')}</h2>
      <ApiError error={plans.error} onRetry={plans.reload} />
      <ul className="plain-list">
        {plans.data?.data.map((p) => (
          <li key={p.id}>
            <Link to={scope.path(`plans/${p.id}`)}>{p.name}</Link>{' '}
            {p.need_update ? <span className="badge warn">{t('plans.needUpdate')}</span> : null}
          </li>
        ))}
      </ul>
      {plans.data && plans.data.total === 0 ? <p className="muted">{t('plans.empty')}</p> : null}
      {reaches(scope.role, 'admin') ? (
        <form className="form" onSubmit={(e) => void submit(e)} aria-labelledby="new-plan-title">
          <h3 id="new-plan-title">{t('plans.new')}</h3>
          <label>
            {t('plans.name')}
            <input required maxLength={256} value={name} onChange={(e) => setName(e.target.value)} />
          </label>
          <fieldset>
            <legend>{t('plans.steps')}</legend>
            {steps.map((s) =>
              s.id ? (
                <label className="check" key={s.id}>
                  <input
                    type="checkbox"
                    checked={enabled[s.id] !== false}
                    onChange={(e) => setEnabled((x) => ({ ...x, [s.id ?? 0]: e.target.checked }))}
                  />
                  {s.name}
                </label>
              ) : null,
            )}
          </fieldset>
          <ApiError error={create.error} />
          <div className="actions">
            <button type="submit" className="primary" disabled={create.busy}>
              {t('plans.create')}
            </button>
          </div>
        </form>
      ) : null}
    </section>
  );
}
