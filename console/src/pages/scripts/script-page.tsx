/**
 * One script: its versions with their states (draft, online, offline, disabled), the selected
 * version in the editor (editable while it is a draft), a new version from what is in the
 * editor, publish / disable / delete, and the diff between any two versions.
 */
import { useEffect, useMemo, useState } from 'react';
import { useNavigate, useParams } from 'react-router';
import { api } from '../../api/client';
import { ApiError } from '../../components/api-error';
import { t } from '../../i18n';
import type { MessageKey } from '../../i18n';
import { CodeEditor } from '../../resources/code-editor';
import { DiffView } from '../../resources/diff-view';
import { formatTime, languageName, toBase64 } from '../../resources/format';
import { Findings, useScriptCheck } from '../../resources/script-check';
import { useAction, useLoad } from '../../resources/use-load';
import { useScope } from '../../session/scope';
import { reaches } from '../../session/session';

export interface ScriptVersion {
  id: number;
  script_id: string;
  name: string;
  version: string;
  content: string;
  status: number;
  version_desc: string;
  last_modify_user: string;
  last_modify_time: number;
  script_language: number;
  description: string;
}

const STATUS: Record<number, MessageKey> = {
  0: 'scripts.status.draft',
  1: 'scripts.status.online',
  2: 'scripts.status.offline',
  3: 'scripts.status.disabled',
};

function VersionSelect(props: {
  label: string;
  versions: ScriptVersion[];
  value: number;
  onChange(id: number): void;
}) {
  return (
    <label>
      {props.label}
      <select value={props.value} onChange={(e) => props.onChange(Number(e.target.value))}>
        {props.versions.map((v) => (
          <option key={v.id} value={v.id}>
            {v.version}
          </option>
        ))}
      </select>
    </label>
  );
}

export default function ScriptPage() {
  const scope = useScope();
  const navigate = useNavigate();
  const { scriptId = '' } = useParams();
  const manage = reaches(scope.role, 'admin');
  const versions = useLoad(
    (signal) =>
      api.readAll<ScriptVersion>(
        'get_script_version_list',
        { ...scope.params, script_id: scriptId, return_script_content: true },
        signal,
        500,
      ),
    [scope.type, scope.id, scriptId],
  );
  const list = useMemo(() => [...(versions.data?.data ?? [])].sort((a, b) => b.id - a.id), [versions.data]);
  const [selectedId, setSelectedId] = useState<number>();
  const selected = list.find((v) => v.id === selectedId) ?? list[0];
  const [content, setContent] = useState('');
  const [versionDesc, setVersionDesc] = useState('');
  useEffect(() => {
    setContent(selected?.content ?? '');
    setVersionDesc(selected?.version_desc ?? '');
  }, [selected?.id, selected?.content, selected?.version_desc]);
  const [newVersion, setNewVersion] = useState('');
  const [left, setLeft] = useState<number>();
  const [right, setRight] = useState<number>();
  const action = useAction();
  const language = selected?.script_language ?? 1;
  const check = useScriptCheck(language, content);
  const editable = manage && selected?.status === 0;

  const act = async (name: string, v: ScriptVersion) => {
    const done = await action.run(() =>
      api.call(name, { ...scope.params, script_id: v.script_id, script_version_id: v.id }),
    );
    if (done !== undefined) versions.reload();
  };
  const saveDraft = async () => {
    if (!selected) return;
    const done = await action.run(() =>
      api.call('update_script_version', {
        ...scope.params,
        script_id: selected.script_id,
        script_version_id: selected.id,
        content: toBase64(content),
        version_desc: versionDesc,
      }),
    );
    if (done !== undefined) versions.reload();
  };
  const addVersion = async (e: React.FormEvent) => {
    e.preventDefault();
    const created = await action.run(() =>
      api.call<ScriptVersion>('create_script_version', {
        ...scope.params,
        script_id: scriptId,
        version: newVersion,
        content: toBase64(content),
        version_desc: versionDesc,
      }),
    );
    if (created) {
      setNewVersion('');
      setSelectedId(created.id);
      setRight(created.id);
      setLeft(selected?.id);
      versions.reload();
    }
  };
  const removeScript = async () => {
    if (!window.confirm(t('scripts.deleteConfirm', { name: selected?.name ?? '' }))) return;
    const done = await action.run(() => api.call('delete_script', { ...scope.params, script_id: scriptId }));
    if (done !== undefined) void navigate(scope.path('scripts'));
  };

  const leftV = list.find((v) => v.id === left) ?? list[1] ?? list[0];
  const rightV = list.find((v) => v.id === right) ?? list[0];

  if (versions.error) return <ApiError error={versions.error} onRetry={versions.reload} />;
  if (!versions.data) return <p className="muted">{t('app.loading')}</p>;
  const head = list[0];
  return (
    <section aria-labelledby="script-title">
      <div className="page-head">
        <h1 id="script-title">
          {head?.name ?? scriptId} <span className="muted small">{languageName(language)}</span>
        </h1>
        {manage ? (
          <button type="button" className="danger" onClick={() => void removeScript()}>
            {t('scripts.delete')}
          </button>
        ) : null}
      </div>
      {head?.description ? <p>{head.description}</p> : null}
      <ApiError error={action.error} />

      <h2>{t('scripts.versions')}</h2>
      <table className="data-table">
        <thead>
          <tr>
            <th scope="col">{t('scripts.version')}</th>
            <th scope="col">{t('scripts.state')}</th>
            <th scope="col">{t('scripts.versionDesc')}</th>
            <th scope="col">{t('common.modifiedBy')}</th>
            <th scope="col">{t('common.modifiedAt')}</th>
            <th scope="col">{t('common.actions')}</th>
          </tr>
        </thead>
        <tbody>
          {list.map((v) => (
            <tr key={v.id} aria-current={v.id === selected?.id ? 'true' : undefined}>
              <td>
                <button type="button" className="link" onClick={() => setSelectedId(v.id)}>
                  {v.version}
                </button>
              </td>
              <td>
                <span className={`state state-${v.status}`}>
                  {t(STATUS[v.status] ?? 'scripts.status.draft')}
                </span>
              </td>
              <td>{v.version_desc}</td>
              <td>{v.last_modify_user}</td>
              <td>{formatTime(v.last_modify_time)}</td>
              <td className="row-actions">
                {manage && (v.status === 0 || v.status === 2) ? (
                  <button
                    type="button"
                    disabled={action.busy}
                    onClick={() => void act('publish_script_version', v)}
                  >
                    {t('scripts.publish')}
                  </button>
                ) : null}
                {manage && (v.status === 1 || v.status === 2) ? (
                  <button
                    type="button"
                    disabled={action.busy}
                    onClick={() => void act('disable_script_version', v)}
                  >
                    {t('scripts.disable')}
                  </button>
                ) : null}
                {manage && v.status !== 1 ? (
                  <button
                    type="button"
                    disabled={action.busy}
                    onClick={() => void act('delete_script_version', v)}
                  >
                    {t('scripts.deleteVersion')}
                  </button>
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>

      {selected ? (
        <>
          <h2>{t('scripts.versionTitle', { version: selected.version })}</h2>
          <div className="field">
            <CodeEditor
              value={content}
              onChange={setContent}
              language={language}
              readOnly={!manage}
              label={t('scripts.contentOf', { version: selected.version })}
            />
          </div>
          {manage ? (
            <>
              <Findings findings={check.findings} error={check.error} />
              <label>
                {t('scripts.versionDesc')}
                <input
                  value={versionDesc}
                  maxLength={1000}
                  onChange={(e) => setVersionDesc(e.target.value)}
                />
              </label>
              <div className="actions">
                {editable ? (
                  <button type="button" disabled={action.busy} onClick={() => void saveDraft()}>
                    {t('scripts.saveDraft')}
                  </button>
                ) : (
                  <span className="muted">{t('scripts.notDraft')}</span>
                )}
              </div>
              <form className="inline-form" onSubmit={(e) => void addVersion(e)}>
                <label>
                  {t('scripts.newVersionName')}
                  <input
                    required
                    maxLength={60}
                    pattern="[A-Za-z0-9_\-#@.]+"
                    value={newVersion}
                    onChange={(e) => setNewVersion(e.target.value)}
                  />
                </label>
                <button type="submit" className="primary" disabled={action.busy}>
                  {t('scripts.saveAsVersion')}
                </button>
              </form>
            </>
          ) : null}
        </>
      ) : null}

      {list.length > 1 && leftV && rightV ? (
        <>
          <h2 id="script-diff-title">{t('scripts.diff')}</h2>
          <div className="filters">
            <VersionSelect
              label={t('scripts.diffFrom')}
              versions={list}
              value={leftV.id}
              onChange={setLeft}
            />
            <VersionSelect
              label={t('scripts.diffTo')}
              versions={list}
              value={rightV.id}
              onChange={setRight}
            />
          </div>
          <DiffView
            before={leftV.content}
            after={rightV.content}
            caption={t('scripts.diffCaption', { from: leftV.version, to: rightV.version })}
          />
        </>
      ) : null}
    </section>
  );
}
