/**
 * A cron (new at /crons/new): the plan it runs and its variable values, a schedule built from
 * common shapes or typed as an expression, read back in words, with the next ten fire times in
 * the cron's time zone; once or an end time; and, for a saved cron, on/off and the history of
 * its firings (fired, skipped, failed with the reason).
 */
import { useEffect, useMemo, useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { api } from '../../api/client';
import { ApiError } from '../../components/api-error';
import { t } from '../../i18n';
import type { MessageKey } from '../../i18n';
import {
  browserTimeZone,
  builderOf,
  DEFAULT_BUILDER,
  describe,
  expressionOf,
  formatInZone,
  isTimeZone,
  nextFireTimes,
} from '../../resources/cron-schedule';
import type { Builder, Shape } from '../../resources/cron-schedule';
import { formatTime } from '../../resources/format';
import { useAction, useLoad } from '../../resources/use-load';
import { useScope } from '../../session/scope';
import { reaches } from '../../session/session';
import type { ListItem, PlanDetail, Variable } from '../plans/plan-types';
import { initialValues, valuesToSend, VariableFields } from '../plans/variable-fields';

interface CronDetail {
  id: number;
  name: string;
  status: number;
  job_plan_id: number;
  expression: string | null;
  execute_time: number | null;
  execute_time_zone: string;
  end_time: number | null;
  misfire_grace_seconds: number;
  global_var_list: { id: number; name: string; value?: string | null; server?: unknown }[];
  next_run_times: number[];
  last_runs: {
    scheduled_time: number;
    outcome: 'fired' | 'skipped' | 'failed';
    job_instance_id: number | null;
    status: number | null;
    reason: string | null;
  }[];
  last_modify_user: string;
  last_modify_time: number;
}

const SHAPES: { id: Shape; key: MessageKey }[] = [
  { id: 'minutes', key: 'crons.shape.minutes' },
  { id: 'hourly', key: 'crons.shape.hourly' },
  { id: 'daily', key: 'crons.shape.daily' },
  { id: 'weekly', key: 'crons.shape.weekly' },
  { id: 'monthly', key: 'crons.shape.monthly' },
  { id: 'custom', key: 'crons.shape.custom' },
];
const WEEKDAYS: MessageKey[] = [
  'crons.day.0',
  'crons.day.1',
  'crons.day.2',
  'crons.day.3',
  'crons.day.4',
  'crons.day.5',
  'crons.day.6',
];

/** `datetime-local` text in the browser's zone <-> seconds. */
const toLocalInput = (s: number | null | undefined) => {
  if (!s) return '';
  const d = new Date(s * 1000 - new Date(s * 1000).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
};
const fromLocalInput = (v: string) => (v ? Math.floor(new Date(v).getTime() / 1000) : null);

function zones(): string[] {
  const intl = Intl as unknown as { supportedValuesOf?: (k: string) => string[] };
  return intl.supportedValuesOf?.('timeZone') ?? [browserTimeZone()];
}

function NumberField(props: {
  label: string;
  min: number;
  max: number;
  readOnly: boolean;
  value: number;
  onChange(n: number): void;
}) {
  return (
    <label>
      {props.label}
      <input
        type="number"
        min={props.min}
        max={props.max}
        readOnly={props.readOnly}
        value={props.value}
        onChange={(e) => props.onChange(Number(e.target.value))}
      />
    </label>
  );
}

export default function CronPage() {
  const scope = useScope();
  const navigate = useNavigate();
  const { cronId } = useParams();
  const isNew = cronId === undefined;
  const manage = reaches(scope.role, 'admin');
  const cron = useLoad(
    (signal) =>
      isNew
        ? Promise.resolve(undefined)
        : api.read<CronDetail>('get_cron_detail', { ...scope.params, id: cronId }, signal),
    [scope.type, scope.id, cronId],
  );
  const plans = useLoad(
    (signal) => api.readAll<ListItem>('get_job_plan_list', scope.params, signal),
    [scope.type, scope.id],
  );

  const [name, setName] = useState('');
  const [planId, setPlanId] = useState(0);
  const [once, setOnce] = useState(false);
  const [builder, setBuilder] = useState<Builder>(DEFAULT_BUILDER);
  const [executeAt, setExecuteAt] = useState('');
  const [endAt, setEndAt] = useState('');
  // Empty: the cron names no zone and the server applies the scope's default (shown, not sent).
  const [zone, setZone] = useState('');
  const defaultZone = useLoad(
    (signal) =>
      api.get<{ time_zone: string }>(
        '/api/console/time-zone',
        { bk_scope_type: scope.params.bk_scope_type, bk_scope_id: scope.params.bk_scope_id },
        signal,
      ),
    [scope.type, scope.id],
  ).data?.time_zone;
  // A zone being typed passes through names no zone has: shown as an error, not run with.
  const zoneBad = zone !== '' && !isTimeZone(zone);
  const effectiveZone = (!zoneBad && zone) || defaultZone || browserTimeZone();
  const [grace, setGrace] = useState(300);
  const [values, setValues] = useState<Record<string, string>>({});

  useEffect(() => {
    const c = cron.data;
    if (!c) return;
    setName(c.name);
    setPlanId(c.job_plan_id);
    setOnce(!c.expression);
    if (c.expression) setBuilder(builderOf(c.expression));
    setExecuteAt(toLocalInput(c.execute_time));
    setEndAt(toLocalInput(c.end_time));
    setZone(c.execute_time_zone);
    setGrace(c.misfire_grace_seconds);
  }, [cron.data]);

  const plan = useLoad(
    (signal) =>
      planId
        ? api.read<PlanDetail>('get_job_plan_detail', { ...scope.params, job_plan_id: planId }, signal)
        : Promise.resolve(undefined),
    [scope.type, scope.id, planId],
  );
  // The cron's own values over the plan's (a variable the cron does not set runs with the plan's).
  const vars: Variable[] = useMemo(() => {
    const own = cron.data?.job_plan_id === planId ? cron.data.global_var_list : [];
    return (plan.data?.global_var_list ?? []).map((v) => {
      const c = own.find((o) => o.id === v.id);
      return c
        ? { ...v, value: c.value ?? v.value, server: (c.server as Variable['server']) ?? v.server }
        : v;
    });
  }, [plan.data, cron.data, planId]);
  useEffect(() => setValues(initialValues(vars)), [vars]);

  const expression = expressionOf(builder);
  const described = describe(expression);
  const endMs = endAt ? (fromLocalInput(endAt) ?? 0) * 1000 : undefined;
  const upcoming = useMemo(
    () => (once || 'error' in described ? [] : nextFireTimes(expression, effectiveZone, 10, endMs)),
    [once, expression, effectiveZone, endMs, described],
  );

  const action = useAction();
  const save = async (e: React.FormEvent) => {
    e.preventDefault();
    const r = await action.run(() =>
      api.call<{ id: number }>('save_cron', {
        ...scope.params,
        ...(isNew ? {} : { id: Number(cronId) }),
        name,
        job_plan_id: planId,
        ...(once ? { execute_time: fromLocalInput(executeAt) } : { expression }),
        ...(zone ? { execute_time_zone: zone } : {}),
        end_time: once ? null : fromLocalInput(endAt),
        misfire_grace_seconds: grace,
        global_var_list: valuesToSend(vars, values, true),
      }),
    );
    if (!r) return;
    if (isNew) void navigate(scope.path(`crons/${r.id}`));
    else cron.reload();
  };
  const setStatus = async (status: 0 | 1) => {
    const r = await action.run(() =>
      api.call('update_cron_status', { ...scope.params, id: Number(cronId), status }),
    );
    if (r !== undefined) cron.reload();
  };
  const remove = async () => {
    if (!window.confirm(t('crons.deleteConfirm', { name }))) return;
    const r = await action.run(() => api.call('delete_cron', { ...scope.params, id: Number(cronId) }));
    if (r !== undefined) void navigate(scope.path('crons'));
  };
  const patch = (p: Partial<Builder>) => setBuilder((b) => ({ ...b, ...p }));
  const readOnly = !manage;

  if (cron.error) return <ApiError error={cron.error} onRetry={cron.reload} />;
  if (!isNew && !cron.data) return <p className="muted">{t('app.loading')}</p>;
  const c = cron.data;
  return (
    <section aria-labelledby="cron-title">
      <div className="page-head">
        <h1 id="cron-title">{isNew ? t('crons.new') : t('crons.titleOf', { name: c?.name ?? '' })}</h1>
        {manage && c ? (
          <span className="row-actions">
            {c.status === 1 ? (
              <button type="button" disabled={action.busy} onClick={() => void setStatus(0)}>
                {t('crons.disable')}
              </button>
            ) : (
              <button
                type="button"
                className="primary"
                disabled={action.busy}
                onClick={() => void setStatus(1)}
              >
                {t('crons.enable')}
              </button>
            )}
            <button type="button" className="danger" onClick={() => void remove()}>
              {t('crons.delete')}
            </button>
          </span>
        ) : null}
      </div>
      {c ? <p className="muted">{c.status === 1 ? t('crons.stateOn') : t('crons.stateOff')}</p> : null}
      <ApiError error={action.error} />
      <form className="form" onSubmit={(e) => void save(e)}>
        <label>
          {t('crons.name')}
          <input
            required
            maxLength={60}
            readOnly={readOnly}
            value={name}
            onChange={(e) => setName(e.target.value)}
          />
        </label>
        <label>
          {t('crons.plan')}
          <select
            required
            disabled={readOnly}
            value={planId || ''}
            onChange={(e) => setPlanId(Number(e.target.value))}
          >
            <option value="">—</option>
            {plans.data?.data.map((p) => (
              <option key={p.id} value={p.id}>
                {p.name} (#{p.id})
              </option>
            ))}
          </select>
        </label>
        <fieldset>
          <legend>{t('crons.schedule')}</legend>
          <label className="check">
            <input
              type="radio"
              name="cron-mode"
              disabled={readOnly}
              checked={!once}
              onChange={() => setOnce(false)}
            />
            {t('crons.repeat')}
          </label>
          <label className="check">
            <input
              type="radio"
              name="cron-mode"
              disabled={readOnly}
              checked={once}
              onChange={() => setOnce(true)}
            />
            {t('crons.onceAt')}
          </label>
          {once ? (
            <label>
              {t('crons.executeTime', { zone: browserTimeZone() })}
              <input
                type="datetime-local"
                required
                readOnly={readOnly}
                value={executeAt}
                onChange={(e) => setExecuteAt(e.target.value)}
              />
            </label>
          ) : (
            <>
              <div className="row">
                <label>
                  {t('crons.shape')}
                  <select
                    disabled={readOnly}
                    value={builder.shape}
                    onChange={(e) => {
                      const shape = e.target.value as Shape;
                      setBuilder((b) => ({ ...b, shape, expression: expressionOf(b) }));
                    }}
                  >
                    {SHAPES.map((s) => (
                      <option key={s.id} value={s.id}>
                        {t(s.key)}
                      </option>
                    ))}
                  </select>
                </label>
                {builder.shape === 'minutes' ? (
                  <NumberField
                    label={t('crons.every')}
                    min={1}
                    max={59}
                    readOnly={readOnly}
                    value={builder.every}
                    onChange={(n) => patch({ every: n })}
                  />
                ) : null}
                {['daily', 'weekly', 'monthly'].includes(builder.shape) ? (
                  <NumberField
                    label={t('crons.hour')}
                    min={0}
                    max={23}
                    readOnly={readOnly}
                    value={builder.hour}
                    onChange={(n) => patch({ hour: n })}
                  />
                ) : null}
                {['hourly', 'daily', 'weekly', 'monthly'].includes(builder.shape) ? (
                  <NumberField
                    label={t('crons.minute')}
                    min={0}
                    max={59}
                    readOnly={readOnly}
                    value={builder.minute}
                    onChange={(n) => patch({ minute: n })}
                  />
                ) : null}
                {builder.shape === 'monthly' ? (
                  <NumberField
                    label={t('crons.monthDay')}
                    min={1}
                    max={31}
                    readOnly={readOnly}
                    value={builder.monthDay}
                    onChange={(n) => patch({ monthDay: n })}
                  />
                ) : null}
                {builder.shape === 'custom' ? (
                  <label>
                    {t('crons.expression')}
                    <input
                      required
                      readOnly={readOnly}
                      spellCheck={false}
                      value={builder.expression}
                      onChange={(e) => patch({ expression: e.target.value })}
                    />
                  </label>
                ) : null}
              </div>
              {builder.shape === 'weekly' ? (
                <fieldset className="row">
                  <legend>{t('crons.weekdays')}</legend>
                  {WEEKDAYS.map((key, day) => (
                    <label className="check" key={day}>
                      <input
                        type="checkbox"
                        disabled={readOnly}
                        checked={builder.weekdays.includes(day)}
                        onChange={(e) =>
                          patch({
                            weekdays: e.target.checked
                              ? [...builder.weekdays, day]
                              : builder.weekdays.filter((d) => d !== day),
                          })
                        }
                      />
                      {t(key)}
                    </label>
                  ))}
                </fieldset>
              ) : null}
              <p className="cron-text" aria-live="polite">
                <code>{expression}</code> —{' '}
                {'text' in described ? (
                  <span className="cron-words">{described.text}</span>
                ) : (
                  <span className="field-error">{described.error}</span>
                )}
              </p>
              <label>
                {t('crons.endTime', { zone: browserTimeZone() })}
                <input
                  type="datetime-local"
                  readOnly={readOnly}
                  value={endAt}
                  onChange={(e) => setEndAt(e.target.value)}
                />
              </label>
            </>
          )}
          <div className="row">
            <label>
              {t('crons.zone')}
              <input
                list="cron-zones"
                readOnly={readOnly}
                value={zone}
                placeholder={defaultZone ? t('cron.zoneDefault', { zone: defaultZone }) : ''}
                onChange={(e) => setZone(e.target.value)}
                aria-describedby="cron-zone-effective"
              />
              <span id="cron-zone-effective" className={zoneBad ? 'small field-error' : 'small muted'}>
                {zoneBad ? t('cron.zoneBad', { zone }) : t('cron.zoneEffective', { zone: effectiveZone })}
              </span>
              <datalist id="cron-zones">
                {zones().map((z) => (
                  <option key={z} value={z} />
                ))}
              </datalist>
            </label>
            <NumberField
              label={t('crons.grace')}
              min={0}
              max={86400}
              readOnly={readOnly}
              value={grace}
              onChange={setGrace}
            />
          </div>
        </fieldset>
        {once ? null : (
          <section aria-labelledby="next-times-title">
            <h2 id="next-times-title">{t('crons.nextTimes', { zone: effectiveZone })}</h2>
            {upcoming.length ? (
              <ol className="next-times">
                {upcoming.map((ms) => (
                  <li key={ms}>
                    <time dateTime={new Date(ms).toISOString()}>{formatInZone(ms, effectiveZone)}</time>
                  </li>
                ))}
              </ol>
            ) : (
              <p className="muted">{t('crons.noNextTimes')}</p>
            )}
          </section>
        )}
        <h2>{t('vars.title')}</h2>
        <VariableFields
          vars={vars}
          values={values}
          onChange={(n, v) => setValues((x) => ({ ...x, [n]: v }))}
          readOnly={readOnly}
          idPrefix="cron-var"
        />
        {manage ? (
          <div className="actions">
            <button type="submit" className="primary" disabled={action.busy || zoneBad}>
              {t('crons.save')}
            </button>
            <span className="muted small">{t('crons.saveNote')}</span>
          </div>
        ) : null}
      </form>

      {c ? (
        <section aria-labelledby="cron-history-title">
          <h2 id="cron-history-title">{t('crons.history')}</h2>
          {c.next_run_times.length ? (
            <p className="muted">
              {t('crons.serverNext', {
                list: c.next_run_times.map((s) => formatInZone(s * 1000, effectiveZone)).join(', '),
              })}
            </p>
          ) : null}
          {c.last_runs.length === 0 ? (
            <p className="muted">{t('crons.noRuns')}</p>
          ) : (
            <table className="data-table">
              <thead>
                <tr>
                  <th scope="col">{t('crons.due')}</th>
                  <th scope="col">{t('crons.outcome')}</th>
                  <th scope="col">{t('crons.job')}</th>
                  <th scope="col">{t('crons.reason')}</th>
                </tr>
              </thead>
              <tbody>
                {c.last_runs.map((r) => (
                  <tr key={r.scheduled_time} className={`outcome-${r.outcome}`}>
                    <td>{formatTime(r.scheduled_time, 's')}</td>
                    <td>{t(`crons.outcome.${r.outcome}`)}</td>
                    <td>
                      {r.job_instance_id ? (
                        <Link to={scope.path(`jobs/${r.job_instance_id}`)}>#{r.job_instance_id}</Link>
                      ) : null}
                    </td>
                    <td>{r.reason ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
      ) : null}
    </section>
  );
}
