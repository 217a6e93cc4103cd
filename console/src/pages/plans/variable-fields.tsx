/**
 * Values of global variables, as a form: one labelled field per variable (a password field
 * for ciphers, a host list for host variables). Used to launch a plan, for a cron's values and
 * in the template editor. Values travel as the API takes them: `{id, name, value}` or
 * `{id, name, server}`.
 */
import { t } from '../../i18n';
import type { MessageKey } from '../../i18n';
import { serverToText, textToServer, withTextHosts } from '../../resources/targets';
import type { StepServer, Variable } from './plan-types';
import { VAR_TYPES } from './plan-types';

export interface VarValue {
  id?: number;
  name: string;
  value?: string;
  server?: StepServer;
}

/** The form's starting values: what the plan (or cron) holds, hosts as text. */
export function initialValues(vars: Variable[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of vars) out[v.name] = v.type === 3 ? serverToText(v.server) : (v.value ?? '');
  return out;
}

/** The values to send: only those that differ from `base` (the plan's own), unless `all`. */
export function valuesToSend(vars: Variable[], values: Record<string, string>, all = false): VarValue[] {
  const base = initialValues(vars);
  return vars
    .filter((v) => all || values[v.name] !== base[v.name])
    .map((v) => {
      const text = values[v.name] ?? '';
      return v.type === 3
        ? { id: v.id, name: v.name, server: withTextHosts(v.server, text) }
        : { id: v.id, name: v.name, value: text };
    });
}

export function typeLabel(type: number): string {
  const key: MessageKey = VAR_TYPES.find((x) => x.id === type)?.key ?? 'vars.type.string';
  return t(key);
}

export function VariableFields({
  vars,
  values,
  onChange,
  readOnly = false,
  idPrefix,
}: {
  vars: Variable[];
  values: Record<string, string>;
  onChange(name: string, value: string): void;
  readOnly?: boolean;
  idPrefix: string;
}) {
  if (vars.length === 0) return <p className="muted">{t('vars.none')}</p>;
  return (
    <div className="var-fields">
      {vars.map((v) => {
        const id = `${idPrefix}-${v.name}`;
        const value = values[v.name] ?? '';
        const bad = v.type === 3 ? textToServer(value).bad : [];
        return (
          <div className="field" key={v.name}>
            <label htmlFor={id}>
              <code>{v.name}</code> <span className="muted small">{typeLabel(v.type)}</span>
              {v.required ? <span className="required"> {t('vars.required')}</span> : null}
            </label>
            {v.description ? <span className="muted small">{v.description}</span> : null}
            {v.type === 3 ? (
              <textarea
                id={id}
                rows={3}
                readOnly={readOnly}
                value={value}
                placeholder={t('vars.hostsPlaceholder')}
                onChange={(e) => onChange(v.name, e.target.value)}
              />
            ) : v.type === 4 ? (
              <input
                id={id}
                type="password"
                autoComplete="off"
                readOnly={readOnly}
                value={value}
                onChange={(e) => onChange(v.name, e.target.value)}
              />
            ) : (
              <input
                id={id}
                readOnly={readOnly}
                value={value}
                onChange={(e) => onChange(v.name, e.target.value)}
              />
            )}
            {bad.length ? (
              <span className="field-error">{t('vars.badHosts', { list: bad.join(', ') })}</span>
            ) : null}
          </div>
        );
      })}
    </div>
  );
}
