/**
 * Push files to hosts (BK-JOB's fast file): files from source hosts (paths per source), target
 * path with BK-JOB's path variables, transfer mode, speed limits, account, targets and rolling.
 * Warns when two sources could write the same name, or when a source host is also a target.
 */
import { useEffect, useMemo, useState } from 'react';
import type { FormEvent } from 'react';
import { useNavigate } from 'react-router';
import { api } from '../../api/client';
import { ApiError } from '../../components/api-error';
import { TargetPicker } from '../../components/target-picker';
import type { ResolvedHost } from '../../components/target-picker';
import { t } from '../../i18n';
import { useScope } from '../../session/scope';
import { useAccounts } from './accounts';
import { JobBasics } from './job-basics';
import { RollingFields, rollingConfig } from './rolling-fields';
import type { Rolling } from './rolling-fields';
import { LocalUpload } from './local-upload';
import type { Upload } from './local-upload';

interface Source {
  text: string;
  /** null until `text` is resolved (the picker withdraws them at every edit). */
  hosts: ResolvedHost[] | null;
  paths: string;
}

function baseName(p: string): string {
  return p.replace(/\/+$/, '').split('/').pop() ?? p;
}

export default function PushFilePage() {
  const scope = useScope();
  const navigate = useNavigate();
  const { accounts, error: accountError } = useAccounts(scope.params);
  const [name, setName] = useState('');
  const [uploads, setUploads] = useState<Upload[]>([]);
  const [sources, setSources] = useState<Source[]>([{ text: '', hosts: null, paths: '' }]);
  // A host source left blank is no source: local files alone are enough.
  const hostSources = sources.filter((s) => s.text.trim() || s.paths.trim());
  const uploaded = uploads.flatMap((u) => (u.path ? [u.path] : []));
  const [targetPath, setTargetPath] = useState('/tmp/');
  // Force mode (2) is BK-JOB's default: the target directory is created when missing.
  const [mode, setMode] = useState(2);
  const [upLimit, setUpLimit] = useState(0);
  const [downLimit, setDownLimit] = useState(0);
  const [timeout, setTimeoutSeconds] = useState(7200);
  const [account, setAccount] = useState('');
  const [targetText, setTargetText] = useState('');
  const [hosts, setHosts] = useState<ResolvedHost[] | null>(null);
  const targets = hosts ?? [];
  const [rolling, setRolling] = useState<Rolling>({ enabled: false, expression: '10%', mode: 1 });
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    if (!account && accounts[0]) setAccount(accounts[0].alias);
  }, [accounts, account]);

  const warnings = useMemo(() => {
    const out: string[] = [];
    const names = new Map<string, number>();
    for (const u of uploads) names.set(u.name, (names.get(u.name) ?? 0) + 1);
    for (const s of sources)
      for (const p of s.paths
        .split('\n')
        .map((x) => x.trim())
        .filter(Boolean)) {
        const n = baseName(p);
        names.set(n, (names.get(n) ?? 0) + Math.max(1, s.hosts?.length ?? 0));
      }
    for (const [n, c] of names) if (c > 1) out.push(t('file.collision', { name: n, n: c }));
    const targetIds = new Set((hosts ?? []).map((h) => h.bk_host_id));
    if (sources.some((s) => s.hosts?.some((h) => targetIds.has(h.bk_host_id)))) out.push(t('file.sameHost'));
    return out;
  }, [sources, hosts, uploads]);

  const update = (i: number, patch: Partial<Source>) =>
    setSources((all) => all.map((s, j) => (j === i ? { ...s, ...patch } : s)));

  const ready =
    targets.length > 0 &&
    !!account &&
    !uploads.some((u) => !u.path) &&
    (uploaded.length > 0 || hostSources.length > 0) &&
    !hostSources.some((s) => !s.hosts?.length || !s.paths.trim());

  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!ready) return;
    setBusy(true);
    setError(undefined);
    try {
      const r = await api.call<{ job_instance_id: number; step_instance_id: number }>('fast_transfer_file', {
        ...scope.params,
        ...(name ? { task_name: name } : {}),
        file_target_path: targetPath,
        transfer_mode: mode,
        ...(upLimit ? { upload_speed_limit: upLimit } : {}),
        ...(downLimit ? { download_speed_limit: downLimit } : {}),
        timeout,
        account_alias: account,
        file_source_list: [
          ...(uploaded.length > 0 ? [{ file_list: uploaded, file_type: 2 }] : []),
          ...hostSources.map((s) => ({
            file_list: s.paths
              .split('\n')
              .map((x) => x.trim())
              .filter(Boolean),
            server: { host_id_list: (s.hosts ?? []).map((h) => h.bk_host_id) },
            account: { alias: account },
            file_type: 1,
          })),
        ],
        target_server: { host_id_list: targets.map((h) => h.bk_host_id) },
        ...(rollingConfig(rolling) ? { rolling_config: rollingConfig(rolling) } : {}),
      });
      void navigate(scope.path(`jobs/${r.job_instance_id}/steps/${r.step_instance_id}`));
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  }

  return (
    <form className="run-form" onSubmit={(e) => void submit(e)} aria-labelledby="push-file-title">
      <h1 id="push-file-title">{t('nav.pushFile')}</h1>
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
      <LocalUpload scopeParams={scope.params} uploads={uploads} onUploads={setUploads} />
      <h2>{t('file.serverSources')}</h2>
      {sources.map((s, i) => (
        <fieldset key={i} className="file-source">
          <legend>{t('file.source', { n: i + 1 })}</legend>
          <label>
            {t('file.paths')}
            <textarea
              className="mono"
              rows={3}
              value={s.paths}
              onChange={(e) => update(i, { paths: e.target.value })}
              placeholder="/etc/hosts"
            />
          </label>
          <TargetPicker
            scopeParams={scope.params}
            value={s.text}
            onText={(text) => update(i, { text })}
            onHosts={(h) => update(i, { hosts: h })}
          />
          {sources.length > 1 ? (
            <button type="button" onClick={() => setSources((all) => all.filter((_, j) => j !== i))}>
              {t('file.removeSource')}
            </button>
          ) : null}
        </fieldset>
      ))}
      <button
        type="button"
        onClick={() => setSources((all) => [...all, { text: '', hosts: null, paths: '' }])}
      >
        {t('file.addSource')}
      </button>
      <div className="row">
        <label className="grow">
          {t('file.targetPath')}
          <input
            className="mono"
            value={targetPath}
            onChange={(e) => setTargetPath(e.target.value)}
            required
          />
          <span className="small muted">{t('file.pathVars')}</span>
        </label>
        <label>
          {t('file.mode')}
          <select value={mode} onChange={(e) => setMode(Number(e.target.value))}>
            <option value={1}>{t('file.mode1')}</option>
            <option value={2}>{t('file.mode2')}</option>
          </select>
        </label>
        <label>
          {t('file.upLimit')}
          <input type="number" min={0} value={upLimit} onChange={(e) => setUpLimit(Number(e.target.value))} />
        </label>
        <label>
          {t('file.downLimit')}
          <input
            type="number"
            min={0}
            value={downLimit}
            onChange={(e) => setDownLimit(Number(e.target.value))}
          />
        </label>
      </div>
      <h2>{t('file.targets')}</h2>
      <TargetPicker scopeParams={scope.params} value={targetText} onText={setTargetText} onHosts={setHosts} />
      <RollingFields value={rolling} onChange={setRolling} hosts={targets.length} />
      {warnings.map((w) => (
        <p key={w} className="warning" role="status">
          {w}
        </p>
      ))}
      <ApiError error={error} />
      <div className="actions">
        <button type="submit" className="primary" disabled={busy || !ready}>
          {t('file.launch', { n: targets.length })}
        </button>
      </div>
    </form>
  );
}
