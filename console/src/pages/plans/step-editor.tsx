/**
 * One step of a template in the editor: script (inline content or a library script), file
 * transfer, or manual confirmation. Fields the editor does not show are kept as they were.
 */
import { t } from '../../i18n';
import { CodeEditor } from '../../resources/code-editor';
import { LanguageOptions } from '../../resources/language-options';
import { fromBase64, toBase64 } from '../../resources/format';
import { serverToText, withTextHosts } from '../../resources/targets';
import type { AccountRef, Step, StepServer, Variable } from './plan-types';
import { STEP_TYPES } from './plan-types';

/** A step while edited: script content as text, host lists as text. */
export interface EditStep {
  key: string;
  id?: number;
  name: string;
  type: 1 | 2 | 3;
  original: Step;
  language: number;
  content: string;
  source: 'inline' | 'library';
  scriptId: string;
  account: string;
  targetVar: string;
  targets: string;
  timeout: number;
  ignoreError: boolean;
  files: string;
  sourceHosts: string;
  destPath: string;
  approvers: string;
  message: string;
}

export interface Choice {
  id: string;
  label: string;
}

let seq = 0;
const key = () => `s${++seq}`;

const accountKey = (a: AccountRef | undefined) => (a?.id ? String(a.id) : (a?.alias ?? a?.name ?? ''));
const accountRef = (v: string): AccountRef => (/^\d+$/.test(v) ? { id: Number(v) } : { alias: v });
const serverRef = (variable: string, text: string, original: StepServer | undefined): StepServer =>
  variable ? { variable } : withTextHosts(original, text);

export function toEditStep(s: Step): EditStep {
  const si = s.script_info;
  const fi = s.file_info;
  const server = si?.server ?? fi?.file_destination.server;
  return {
    key: key(),
    id: s.id,
    name: s.name,
    type: s.type,
    original: s,
    language: si?.script_language ?? 1,
    content: si?.script_content ? fromBase64(si.script_content) : '',
    source: si && si.script_type && si.script_type !== 1 ? 'library' : 'inline',
    scriptId: si?.script_id ?? '',
    account: accountKey(si?.account ?? fi?.file_destination.account),
    targetVar: server?.variable ?? '',
    targets: serverToText(server),
    timeout: si?.script_timeout ?? fi?.timeout ?? 7200,
    ignoreError: (si?.is_ignore_error ?? fi?.is_ignore_error ?? 0) === 1,
    files: (fi?.file_source_list[0]?.file_list ?? []).join('\n'),
    sourceHosts: serverToText(fi?.file_source_list[0]?.server),
    destPath: fi?.file_destination.path ?? '',
    approvers: (s.approval_info?.approval_user.user_list ?? []).join(', '),
    message: s.approval_info?.approval_message ?? '',
  };
}

export function newEditStep(type: 1 | 2 | 3, defaultAccount: string): EditStep {
  return {
    ...toEditStep({ name: '', type }),
    account: defaultAccount,
    content: type === 1 ? '#!/bin/bash\n\n' : '',
  };
}

export function fromEditStep(e: EditStep): Step {
  const base = { ...(e.id ? { id: e.id } : {}), name: e.name, type: e.type };
  if (e.type === 1) {
    const old = e.original.script_info ?? { account: {}, server: {} };
    // The same library script keeps the version it pins; another one runs its online version.
    const pinned = e.scriptId === old.script_id ? old.script_version_id : undefined;
    const source =
      e.source === 'library'
        ? { script_type: 2, script_id: e.scriptId, script_content: undefined, script_version_id: pinned }
        : {
            script_type: 1,
            script_content: toBase64(e.content),
            script_id: undefined,
            script_version_id: undefined,
          };
    return {
      ...base,
      script_info: {
        ...old,
        ...source,
        script_language: e.language,
        account: accountRef(e.account),
        server: serverRef(e.targetVar, e.targets, old.server),
        script_timeout: e.timeout,
        is_ignore_error: e.ignoreError ? 1 : 0,
      },
    };
  }
  if (e.type === 2) {
    const old = e.original.file_info;
    const account = accountRef(e.account);
    // The editor shows the first source: the others, and what it does not show of the first
    // (its type, its own account, topology nodes), are kept as they were.
    const [first, ...others] = old?.file_source_list ?? [];
    return {
      ...base,
      file_info: {
        ...(old ?? {}),
        file_source_list: [
          {
            ...first,
            file_type: first?.file_type ?? 1,
            file_list: e.files
              .split('\n')
              .map((f) => f.trim())
              .filter(Boolean),
            account: first?.account ?? account,
            ...(first && !first.server && e.sourceHosts.trim() === ''
              ? {}
              : { server: serverRef('', e.sourceHosts, first?.server) }),
          },
          ...others,
        ],
        file_destination: {
          path: e.destPath,
          account,
          server: serverRef(e.targetVar, e.targets, old?.file_destination.server),
        },
        timeout: e.timeout,
        is_ignore_error: e.ignoreError ? 1 : 0,
      },
    };
  }
  return {
    ...base,
    approval_info: {
      ...(e.original.approval_info ?? {}),
      approval_user: { user_list: e.approvers.split(/[\s,]+/).filter(Boolean) },
      approval_message: e.message,
    },
  };
}

export function StepEditor({
  step,
  index,
  count,
  onChange,
  onMove,
  onRemove,
  readOnly,
  accounts,
  scripts,
  hostVars,
}: {
  step: EditStep;
  index: number;
  count: number;
  onChange(patch: Partial<EditStep>): void;
  onMove(delta: -1 | 1): void;
  onRemove(): void;
  readOnly: boolean;
  accounts: Choice[];
  scripts: Choice[];
  hostVars: Variable[];
}) {
  const id = (f: string) => `step-${step.key}-${f}`;
  const typeKey = STEP_TYPES.find((x) => x.id === step.type)?.key ?? 'steps.type.script';
  const targets = (
    <fieldset>
      <legend>{t('steps.targets')}</legend>
      <label>
        {t('steps.targetVar')}
        <select
          disabled={readOnly}
          value={step.targetVar}
          onChange={(e) => onChange({ targetVar: e.target.value })}
        >
          <option value="">{t('steps.targetList')}</option>
          {hostVars.map((v) => (
            <option key={v.name} value={v.name}>
              {v.name}
            </option>
          ))}
        </select>
      </label>
      {step.targetVar ? null : (
        <label>
          {t('steps.targetHosts')}
          <textarea
            rows={2}
            readOnly={readOnly}
            value={step.targets}
            placeholder={t('vars.hostsPlaceholder')}
            onChange={(e) => onChange({ targets: e.target.value })}
          />
        </label>
      )}
    </fieldset>
  );
  const account = (
    <label>
      {t('steps.account')}
      <select
        disabled={readOnly}
        value={step.account}
        onChange={(e) => onChange({ account: e.target.value })}
      >
        {step.account && !accounts.some((a) => a.id === step.account) ? (
          <option value={step.account}>{step.account}</option>
        ) : null}
        {accounts.map((a) => (
          <option key={a.id} value={a.id}>
            {a.label}
          </option>
        ))}
      </select>
    </label>
  );
  return (
    <li className="step-card" aria-label={t('steps.label', { n: index + 1, name: step.name || t(typeKey) })}>
      <div className="step-head">
        <strong>
          {index + 1}. {t(typeKey)}
        </strong>
        {readOnly ? null : (
          <span className="row-actions">
            <button
              type="button"
              disabled={index === 0}
              onClick={() => onMove(-1)}
              aria-label={t('steps.up', { n: index + 1 })}
            >
              ↑
            </button>
            <button
              type="button"
              disabled={index === count - 1}
              onClick={() => onMove(1)}
              aria-label={t('steps.down', { n: index + 1 })}
            >
              ↓
            </button>
            <button
              type="button"
              className="danger"
              onClick={onRemove}
              aria-label={t('steps.remove', { n: index + 1 })}
            >
              {t('common.remove')}
            </button>
          </span>
        )}
      </div>
      <label>
        {t('steps.name')}
        <input
          required
          readOnly={readOnly}
          value={step.name}
          onChange={(e) => onChange({ name: e.target.value })}
        />
      </label>
      {step.type === 1 ? (
        <>
          <div className="row">
            <label>
              {t('steps.source')}
              <select
                disabled={readOnly}
                value={step.source}
                onChange={(e) => onChange({ source: e.target.value === 'library' ? 'library' : 'inline' })}
              >
                <option value="inline">{t('steps.sourceInline')}</option>
                <option value="library">{t('steps.sourceLibrary')}</option>
              </select>
            </label>
            {step.source === 'library' ? (
              <label>
                {t('steps.script')}
                <select
                  disabled={readOnly}
                  value={step.scriptId}
                  onChange={(e) => onChange({ scriptId: e.target.value })}
                >
                  <option value="">—</option>
                  {scripts.map((s) => (
                    <option key={s.id} value={s.id}>
                      {s.label}
                    </option>
                  ))}
                </select>
              </label>
            ) : (
              <label>
                {t('scripts.language')}
                <select
                  disabled={readOnly}
                  value={step.language}
                  onChange={(e) => onChange({ language: Number(e.target.value) })}
                >
                  <LanguageOptions />
                </select>
              </label>
            )}
            {account}
            <label>
              {t('steps.timeout')}
              <input
                type="number"
                min={1}
                max={259200}
                readOnly={readOnly}
                value={step.timeout}
                onChange={(e) => onChange({ timeout: Number(e.target.value) })}
              />
            </label>
          </div>
          {step.source === 'inline' ? (
            <div className="field">
              <span id={id('content')}>{t('scripts.content')}</span>
              <CodeEditor
                value={step.content}
                onChange={(content) => onChange({ content })}
                language={step.language}
                readOnly={readOnly}
                label={t('steps.contentOf', { name: step.name || String(index + 1) })}
              />
            </div>
          ) : null}
          {targets}
        </>
      ) : null}
      {step.type === 2 ? (
        <>
          <label>
            {t('steps.files')}
            <textarea
              rows={2}
              readOnly={readOnly}
              value={step.files}
              onChange={(e) => onChange({ files: e.target.value })}
            />
          </label>
          <label>
            {t('steps.sourceHosts')}
            <textarea
              rows={2}
              readOnly={readOnly}
              value={step.sourceHosts}
              placeholder={t('vars.hostsPlaceholder')}
              onChange={(e) => onChange({ sourceHosts: e.target.value })}
            />
          </label>
          <div className="row">
            <label>
              {t('steps.destPath')}
              <input
                readOnly={readOnly}
                value={step.destPath}
                onChange={(e) => onChange({ destPath: e.target.value })}
              />
            </label>
            {account}
          </div>
          {targets}
        </>
      ) : null}
      {step.type === 3 ? (
        <>
          <label>
            {t('steps.approvers')}
            <input
              readOnly={readOnly}
              value={step.approvers}
              onChange={(e) => onChange({ approvers: e.target.value })}
            />
          </label>
          <label>
            {t('steps.message')}
            <textarea
              rows={2}
              readOnly={readOnly}
              value={step.message}
              onChange={(e) => onChange({ message: e.target.value })}
            />
          </label>
        </>
      ) : null}
      {step.type !== 3 ? (
        <label className="check">
          <input
            type="checkbox"
            disabled={readOnly}
            checked={step.ignoreError}
            onChange={(e) => onChange({ ignoreError: e.target.checked })}
          />
          {t('steps.ignoreError')}
        </label>
      ) : null}
    </li>
  );
}
