/**
 * Where a quick run's script comes from, as BK-JOB's fast script offers it: written on the page,
 * or a business or public script from the library. A library script runs its online version,
 * cited by script_version_id; its content is shown read-only and its language is fixed.
 */
import { useEffect, useMemo, useState } from 'react';
import { api } from '../../api/client';
import { ApiError } from '../../components/api-error';
import { t } from '../../i18n';
import { LANGUAGES } from '../../model/statuses';
import { CodeEditor } from '../../resources/code-editor';
import { useLoad } from '../../resources/use-load';

export type SourceKind = 'manual' | 'business' | 'public';

export interface LibraryChoice {
  versionId: number;
  language: number;
  content: string;
}

interface ScriptRow {
  id: string;
  name: string;
  script_language: number;
  online_script_version_id: number | null;
}

interface VersionDetail {
  id: number;
  version: string;
  content: string;
}

const KINDS: { kind: SourceKind; label: 'source.manual' | 'source.business' | 'source.public' }[] = [
  { kind: 'manual', label: 'source.manual' },
  { kind: 'business', label: 'source.business' },
  { kind: 'public', label: 'source.public' },
];

export function SourceTabs(props: { value: SourceKind; onChange: (kind: SourceKind) => void }) {
  return (
    <fieldset>
      <legend>{t('source.label')}</legend>
      <div className="tabs" role="radiogroup" aria-label={t('source.label')}>
        {KINDS.map((k) => (
          <label key={k.kind} className={`tab${props.value === k.kind ? ' active' : ''}`}>
            <input
              type="radio"
              name="script-source"
              value={k.kind}
              checked={props.value === k.kind}
              onChange={() => props.onChange(k.kind)}
            />
            {t(k.label)}
          </label>
        ))}
      </div>
    </fieldset>
  );
}

/** Picks a library script with an online version; tells the page the version to run. */
export function LibraryScriptPicker(props: {
  kind: 'business' | 'public';
  scopeParams: { bk_scope_type: string; bk_scope_id: string };
  onChoice: (choice: LibraryChoice | undefined) => void;
}) {
  const { kind, onChoice } = props;
  const { bk_scope_type, bk_scope_id } = props.scopeParams;
  const [filter, setFilter] = useState('');
  const [scriptId, setScriptId] = useState('');
  const list = useLoad(
    (signal) =>
      kind === 'business'
        ? api.readAll<ScriptRow>('get_script_list', { bk_scope_type, bk_scope_id }, signal)
        : api.readAll<ScriptRow>('get_public_script_list', {}, signal),
    [kind, bk_scope_type, bk_scope_id],
  );
  const scripts = useMemo(
    () => (list.data?.data ?? []).filter((s) => s.name.toLowerCase().includes(filter.trim().toLowerCase())),
    [list.data, filter],
  );
  const script = list.data?.data.find((s) => s.id === scriptId);
  const versionId = script?.online_script_version_id ?? undefined;
  const version = useLoad(
    (signal) =>
      versionId === undefined
        ? Promise.resolve(undefined)
        : kind === 'business'
          ? api.read<VersionDetail>(
              'get_script_version_detail',
              { bk_scope_type, bk_scope_id, id: versionId },
              signal,
            )
          : api.read<VersionDetail>('get_public_script_version_detail', { id: versionId }, signal),
    [kind, versionId, bk_scope_type, bk_scope_id],
  );
  useEffect(() => setScriptId(''), [kind]);
  const detail = version.data;
  useEffect(() => {
    onChoice(
      script && detail && detail.id === versionId
        ? { versionId: detail.id, language: script.script_language, content: detail.content }
        : undefined,
    );
  }, [script, detail, versionId, onChoice]);

  const languageName = LANGUAGES.find((l) => l.id === script?.script_language)?.name ?? '';
  return (
    <div className="library-picker">
      <div className="row">
        <label className="grow">
          {t('source.filter')}
          <input type="search" value={filter} onChange={(e) => setFilter(e.target.value)} />
        </label>
        <label className="grow">
          {t('source.pick')}
          <select value={scriptId} onChange={(e) => setScriptId(e.target.value)} required>
            <option value="">{t('source.choose')}</option>
            {scripts.map((s) => (
              <option key={s.id} value={s.id}>
                {s.name}
              </option>
            ))}
          </select>
        </label>
      </div>
      <ApiError error={list.error ?? version.error} />
      {list.data && scripts.length === 0 ? <p className="muted">{t('source.none')}</p> : null}
      {script && versionId === undefined ? <p className="warning">{t('source.noOnline')}</p> : null}
      {versionId !== undefined && !detail ? <p className="muted">{t('source.loading')}</p> : null}
      {script && detail ? (
        <>
          <p className="small muted">
            {t('source.online', { version: detail.version, language: languageName })}
          </p>
          <CodeEditor
            value={detail.content}
            language={script.script_language}
            readOnly
            label={t('run.script')}
          />
        </>
      ) : null}
    </div>
  );
}
