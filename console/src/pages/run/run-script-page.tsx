/**
 * Run a script on hosts (BK-JOB's fast script): every field of fast_execute_script, the
 * dangerous-command check 300 ms after each edit, the target picker with agent status, and the
 * rolling batches previewed before launch.
 */
import { useEffect, useMemo, useState } from 'react';
import type { FormEvent } from 'react';
import { useLocation, useNavigate } from 'react-router';
import { api } from '../../api/client';
import { ApiError } from '../../components/api-error';
import { TargetPicker } from '../../components/target-picker';
import type { ResolvedHost } from '../../components/target-picker';
import { t } from '../../i18n';
import { LANGUAGES } from '../../model/statuses';
import { useScope } from '../../session/scope';
import { SQL, accountsFor, base64, osOfLanguage, useAccounts } from './accounts';
import { JobBasics } from './job-basics';
import { RollingFields, rollingConfig } from './rolling-fields';
import type { Rolling } from './rolling-fields';
import { LibraryScriptPicker, SourceTabs } from './script-source';
import type { LibraryChoice, SourceKind } from './script-source';

interface Hit {
  line: number;
  line_content: string;
  match_content: string;
  description: string;
}

const DEFAULT_SCRIPT = '#!/bin/bash\n\n';

export default function RunScriptPage() {
  const scope = useScope();
  const navigate = useNavigate();
  const { accounts: allAccounts, error: accountError } = useAccounts(scope.params, true);
  const [name, setName] = useState('');
  const [source, setSource] = useState<SourceKind>('manual');
  const [library, setLibrary] = useState<LibraryChoice>();
  const [typedLanguage, setLanguage] = useState(1);
  const [typedScript, setScript] = useState(DEFAULT_SCRIPT);
  const fromLibrary = source !== 'manual';
  // A library script runs in its own language; what is typed stays for when the person comes back.
  const language = fromLibrary ? (library?.language ?? typedLanguage) : typedLanguage;
  const script = fromLibrary ? (library?.content ?? '') : typedScript;
  const accounts = useMemo(() => accountsFor(allAccounts, language), [allAccounts, language]);
  const [params, setParams] = useState('');
  const [sensitive, setSensitive] = useState(false);
  const [timeout, setTimeoutSeconds] = useState(7200);
  const [account, setAccount] = useState('');
  // "Run on selection" of the hosts page hands its hosts over as `state.targets`.
  const handed = (useLocation().state as { targets?: string[] } | null)?.targets;
  const [targetText, setTargetText] = useState(() => (handed ?? []).join('\n'));
  // null until the target text is resolved (the picker withdraws them at every edit).
  const [hosts, setHosts] = useState<ResolvedHost[] | null>(null);
  const targets = hosts ?? [];
  const [rolling, setRolling] = useState<Rolling>({ enabled: false, expression: '10%', mode: 1 });
  const [hits, setHits] = useState<Hit[]>([]);
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();

  useEffect(() => {
    if (!accounts.some((a) => a.alias === account)) setAccount(accounts[0]?.alias ?? '');
  }, [accounts, account]);

  // The dangerous-command check runs 300 ms after the last edit, as BK-JOB's editor does.
  const { bk_scope_type, bk_scope_id } = scope.params;
  useEffect(() => {
    if (!script.trim()) {
      setHits([]);
      return undefined;
    }
    let live = true;
    const timer = setTimeout(() => {
      api
        .call<Hit[]>('check_script', {
          bk_scope_type,
          bk_scope_id,
          script_language: language,
          content: base64(script),
        })
        .then((r) => live && setHits(r ?? []))
        .catch(() => undefined);
    }, 300);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [script, language, bk_scope_type, bk_scope_id]);

  async function launch() {
    if (!hosts?.length) return;
    setBusy(true);
    setError(undefined);
    const cited = fromLibrary && library ? { script_version_id: library.versionId } : undefined;
    const target_server = { host_id_list: hosts.map((h) => h.bk_host_id) };
    try {
      // SQL goes to fast_execute_sql as a database account; it takes no parameters or rolling.
      const r = await (language === SQL
        ? api.call<{ job_instance_id: number; step_instance_id: number }>('fast_execute_sql', {
            ...scope.params,
            ...(name ? { task_name: name } : {}),
            ...(cited ?? { script_content: base64(script) }),
            timeout,
            db_account_id: accounts.find((a) => a.alias === account)?.id,
            target_server,
          })
        : api.call<{ job_instance_id: number; step_instance_id: number }>('fast_execute_script', {
            ...scope.params,
            ...(name ? { task_name: name } : {}),
            ...(cited ?? { script_language: language, script_content: base64(script) }),
            ...(params ? { script_param: base64(params), is_param_sensitive: sensitive ? 1 : 0 } : {}),
            timeout,
            account_alias: account,
            target_server,
            ...(rollingConfig(rolling) ? { rolling_config: rollingConfig(rolling) } : {}),
          }));
      // A quick run has one step: its result is what the person wants to watch.
      void navigate(scope.path(`jobs/${r.job_instance_id}/steps/${r.step_instance_id}`));
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  }

  function submit(e: FormEvent) {
    e.preventDefault();
    if (hits.length > 0) setConfirming(true);
    else void launch();
  }

  const lines = script.split('\n').length;
  return (
    <form className="run-form" onSubmit={submit} aria-labelledby="run-script-title">
      <h1 id="run-script-title">{t('nav.runScript')}</h1>
      <JobBasics
        name={name}
        onName={setName}
        account={account}
        onAccount={setAccount}
        accounts={accounts}
        accountError={accountError}
        timeout={timeout}
        onTimeout={setTimeoutSeconds}
      />
      <SourceTabs value={source} onChange={setSource} />
      {fromLibrary ? (
        <LibraryScriptPicker kind={source} scopeParams={scope.params} onChoice={setLibrary} />
      ) : (
        <>
          <fieldset>
            <legend>{t('run.language')}</legend>
            <div className="tabs" role="radiogroup" aria-label={t('run.language')}>
              {[...LANGUAGES, { id: SQL, name: 'SQL' }].map((l) => (
                <label key={l.id} className={`tab${language === l.id ? ' active' : ''}`}>
                  <input
                    type="radio"
                    name="language"
                    value={l.id}
                    checked={language === l.id}
                    onChange={() => setLanguage(l.id)}
                  />
                  {l.name}
                </label>
              ))}
            </div>
          </fieldset>
          <div className="field">
            <span id="script-label" className="field-label">
              {t('run.script')}
            </span>
            <div className="editor">
              <pre className="editor-gutter" aria-hidden="true">
                {Array.from({ length: lines }, (_, i) => {
                  const hit = hits.some((h) => h.line === i + 1);
                  return (
                    <span key={i} className={hit ? 'gutter-hit' : undefined}>
                      {i + 1}
                      {'\n'}
                    </span>
                  );
                })}
              </pre>
              <textarea
                className="mono editor-text"
                rows={Math.max(10, Math.min(lines + 2, 30))}
                value={script}
                spellCheck={false}
                wrap="off"
                onChange={(e) => setScript(e.target.value)}
                aria-labelledby="script-label"
                aria-describedby="script-check"
              />
            </div>
          </div>
        </>
      )}
      {accounts.length === 0 && !accountError ? (
        <p className="warning" role="status">
          {language === SQL ? t('run.noDbAccount') : t('run.noAccount', { os: osOfLanguage(language) })}
        </p>
      ) : null}
      <div id="script-check" aria-live="polite">
        {hits.length > 0 ? (
          <div className="warning" role="alert">
            <strong>{t('run.dangerous', { n: hits.length })}</strong>
            <ul>
              {hits.map((h, i) => (
                <li key={i}>
                  {t('run.dangerousLine', { line: h.line })} <code>{h.match_content}</code> — {h.description}
                </li>
              ))}
            </ul>
          </div>
        ) : null}
      </div>
      {language === SQL ? null : (
        <div className="row">
          <label className="grow">
            {t('run.params')}
            <input
              className="mono"
              type={sensitive ? 'password' : 'text'}
              value={params}
              onChange={(e) => setParams(e.target.value)}
              autoComplete="off"
            />
          </label>
          <label className="inline">
            <input type="checkbox" checked={sensitive} onChange={(e) => setSensitive(e.target.checked)} />
            {t('run.sensitive')}
          </label>
        </div>
      )}
      <TargetPicker scopeParams={scope.params} value={targetText} onText={setTargetText} onHosts={setHosts} />
      {language === SQL ? null : (
        <RollingFields value={rolling} onChange={setRolling} hosts={targets.length} />
      )}
      <p className="small muted">{t('run.outputTip')}</p>
      <ApiError error={error} />
      {confirming ? (
        <div className="confirm" role="alertdialog" aria-labelledby="confirm-title">
          <p id="confirm-title">{t('run.dangerousConfirm', { n: hits.length })}</p>
          <button
            type="button"
            className="danger"
            disabled={targets.length === 0}
            onClick={() => (setConfirming(false), void launch())}
          >
            {t('run.launchAnyway')}
          </button>
          <button type="button" onClick={() => setConfirming(false)}>
            {t('common.cancel')}
          </button>
        </div>
      ) : null}
      <div className="actions">
        <button
          type="submit"
          className="primary"
          disabled={busy || targets.length === 0 || !script.trim() || !account}
        >
          {t('run.launch', { n: targets.length })}
        </button>
      </div>
    </form>
  );
}
