/** Rolling settings with a preview of the batches the expression gives for the chosen hosts. */
import { t } from '../../i18n';
import { MAX_BATCHES, rollingBatchSizes } from '@jobfleet/protocol/rolling';

export interface Rolling {
  enabled: boolean;
  expression: string;
  mode: number;
}

export function rollingConfig(r: Rolling) {
  return r.enabled ? { expression: r.expression, mode: r.mode } : undefined;
}

export function RollingFields({
  value,
  onChange,
  hosts,
}: {
  value: Rolling;
  onChange: (r: Rolling) => void;
  hosts: number;
}) {
  const sizes = value.enabled ? rollingBatchSizes(value.expression, hosts) : [];
  return (
    <fieldset className="rolling">
      <legend>{t('run.rolling')}</legend>
      <label className="inline">
        <input
          type="checkbox"
          checked={value.enabled}
          onChange={(e) => onChange({ ...value, enabled: e.target.checked })}
        />
        {t('run.rollingEnable')}
      </label>
      {hosts >= 100 && !value.enabled ? <p className="small muted">{t('run.rollingHint')}</p> : null}
      {value.enabled ? (
        <div className="row">
          <label>
            {t('run.rollingExpression')}
            <input
              value={value.expression}
              onChange={(e) => onChange({ ...value, expression: e.target.value })}
            />
          </label>
          <label>
            {t('run.rollingMode')}
            <select value={value.mode} onChange={(e) => onChange({ ...value, mode: Number(e.target.value) })}>
              <option value={1}>{t('run.rollingMode1')}</option>
              <option value={2}>{t('run.rollingMode2')}</option>
              <option value={3}>{t('run.rollingMode3')}</option>
            </select>
          </label>
        </div>
      ) : null}
      {value.enabled && typeof sizes === 'string' ? (
        <p className="field-error">
          {sizes === 'invalid' ? t('run.rollingInvalid') : t('run.rollingTooMany', { n: MAX_BATCHES })}
        </p>
      ) : null}
      {value.enabled && Array.isArray(sizes) && hosts > 0 ? (
        <div className="batch-preview" aria-label={t('run.rollingPreview')}>
          <span className="small muted">{t('run.rollingBatches', { n: sizes.length, hosts })}</span>
          <ol>
            {sizes.slice(0, 30).map((s, i) => (
              <li key={i}>{s}</li>
            ))}
            {sizes.length > 30 ? <li>…</li> : null}
          </ol>
        </div>
      ) : null}
    </fieldset>
  );
}
