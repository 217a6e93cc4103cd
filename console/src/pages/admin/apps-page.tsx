/**
 * Apps (platform admins): the bk_app_code / bk_app_secret pairs BK-JOB clients call with, and
 * the scopes each may act in. Saving an existing code replaces its secret and grants.
 */
import { useState } from 'react';
import { api } from '../../api/client';
import { ApiError } from '../../components/api-error';
import { t } from '../../i18n';
import { useAction, useLoad } from '../../resources/use-load';

interface App {
  app_code: string;
  scopes: 'all' | { type: 'biz' | 'biz_set'; id: number }[];
  signature_auth: boolean;
  permissions: string[];
}

export function scopesText(scopes: App['scopes']): string {
  return scopes === 'all' ? t('apps.allScopes') : scopes.map((s) => `${s.type}:${s.id}`).join(', ');
}

/** `all`, or `biz:2, biz_set:8000001` -> grants; undefined when a part does not parse. */
export function parseScopes(text: string): App['scopes'] | undefined {
  const s = text.trim();
  if (s === 'all') return 'all';
  const out: { type: 'biz' | 'biz_set'; id: number }[] = [];
  for (const part of s.split(/[\s,]+/).filter(Boolean)) {
    const m = /^(biz|biz_set):(\d+)$/.exec(part);
    if (!m) return undefined;
    out.push({ type: m[1] === 'biz_set' ? 'biz_set' : 'biz', id: Number(m[2]) });
  }
  return out.length ? out : undefined;
}

export function randomSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export default function AppsPage() {
  const apps = useLoad((signal) => api.get<{ apps: App[] }>('/api/admin/apps', {}, signal), []);
  const action = useAction();
  const [code, setCode] = useState('');
  const [secret, setSecret] = useState('');
  const [scopes, setScopes] = useState('all');
  const [publicScripts, setPublicScripts] = useState(false);
  const [saved, setSaved] = useState<{ code: string; secret: string }>();
  const parsed = parseScopes(scopes);

  const save = async (e: React.FormEvent) => {
    e.preventDefault();
    if (!parsed) return;
    const r = await action.run(() =>
      api.post('/api/admin/apps', {
        app_code: code,
        app_secret: secret,
        scopes: parsed,
        permissions: publicScripts ? ['public_script_manage'] : [],
      }),
    );
    if (r === undefined) return;
    setSaved({ code, secret });
    setCode('');
    setSecret('');
    apps.reload();
  };

  return (
    <section aria-labelledby="apps-title">
      <h1 id="apps-title">{t('apps.title')}</h1>
      <ApiError error={apps.error} onRetry={apps.reload} />
      <table className="data-table">
        <thead>
          <tr>
            <th scope="col">{t('apps.code')}</th>
            <th scope="col">{t('apps.scopes')}</th>
            <th scope="col">{t('apps.permissions')}</th>
            <th scope="col">{t('apps.signature')}</th>
          </tr>
        </thead>
        <tbody>
          {apps.data?.apps.map((a) => (
            <tr key={a.app_code}>
              <td>
                <code>{a.app_code}</code>
              </td>
              <td>{scopesText(a.scopes)}</td>
              <td>{a.permissions.join(', ')}</td>
              <td>{a.signature_auth ? t('common.yes') : t('common.no')}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <form className="form" onSubmit={(e) => void save(e)} aria-labelledby="app-form-title">
        <h2 id="app-form-title">{t('apps.save')}</h2>
        <p className="muted">{t('apps.saveIntro')}</p>
        <div className="row">
          <label>
            {t('apps.code')}
            <input
              required
              pattern="[A-Za-z0-9_\-]{1,64}"
              value={code}
              onChange={(e) => setCode(e.target.value)}
            />
          </label>
          <label>
            {t('apps.secret')}
            <input
              required
              minLength={8}
              type="text"
              autoComplete="off"
              spellCheck={false}
              value={secret}
              onChange={(e) => setSecret(e.target.value)}
            />
          </label>
          <button type="button" onClick={() => setSecret(randomSecret())}>
            {t('apps.generate')}
          </button>
        </div>
        <label>
          {t('apps.scopes')}
          <input
            required
            value={scopes}
            aria-invalid={!parsed}
            aria-describedby="app-scopes-help"
            onChange={(e) => setScopes(e.target.value)}
          />
          <span id="app-scopes-help" className={parsed ? 'muted small' : 'field-error'}>
            {t('apps.scopesHelp')}
          </span>
        </label>
        <label className="check">
          <input
            type="checkbox"
            checked={publicScripts}
            onChange={(e) => setPublicScripts(e.target.checked)}
          />
          {t('apps.publicScripts')}
        </label>
        <ApiError error={action.error} />
        <div className="actions">
          <button type="submit" className="primary" disabled={action.busy || !parsed}>
            {t('apps.saveButton')}
          </button>
        </div>
        {saved ? (
          <p className="notice" role="status">
            {t('apps.saved', { code: saved.code })} <code>{saved.secret}</code>
          </p>
        ) : null}
      </form>
    </section>
  );
}
