/**
 * The signed-in person's API tokens (`jft_...` for the v3 API and the CLI): create one narrowed
 * to scopes, a role and a lifetime (its value is shown once), and revoke them.
 */
import { useState } from 'react';
import { api } from '../../api/client';
import { ApiError } from '../../components/api-error';
import { t } from '../../i18n';
import { formatTime } from '../../resources/format';
import { useAction, useLoad } from '../../resources/use-load';
import type { Role } from '../../session/session';
import { parseScopes, scopesText } from './apps-page';

export interface Token {
  id: number;
  name: string;
  prefix: string;
  scopes: 'all' | { type: 'biz' | 'biz_set'; id: number }[];
  role: Role;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  revoked_at: number | null;
}

export function TokenTable({ tokens, onRevoke }: { tokens: Token[]; onRevoke(id: number): void }) {
  if (tokens.length === 0) return <p className="muted">{t('tokens.empty')}</p>;
  return (
    <table className="data-table">
      <thead>
        <tr>
          <th scope="col">{t('tokens.name')}</th>
          <th scope="col">{t('tokens.prefix')}</th>
          <th scope="col">{t('tokens.scopes')}</th>
          <th scope="col">{t('tokens.role')}</th>
          <th scope="col">{t('tokens.expires')}</th>
          <th scope="col">{t('tokens.lastUsed')}</th>
          <th scope="col">{t('common.actions')}</th>
        </tr>
      </thead>
      <tbody>
        {tokens.map((k) => (
          <tr key={k.id}>
            <td>{k.name}</td>
            <td>
              <code>{k.prefix}…</code>
            </td>
            <td>{scopesText(k.scopes)}</td>
            <td>{k.role}</td>
            <td>{k.expires_at ? formatTime(k.expires_at) : t('tokens.never')}</td>
            <td>{formatTime(k.last_used_at)}</td>
            <td>
              {k.revoked_at ? (
                t('tokens.revokedAt', { time: formatTime(k.revoked_at) })
              ) : (
                <button
                  type="button"
                  className="danger"
                  onClick={() => onRevoke(k.id)}
                  aria-label={t('tokens.revokeOf', { name: k.name })}
                >
                  {t('tokens.revoke')}
                </button>
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export default function TokensPage() {
  const tokens = useLoad((signal) => api.get<{ tokens: Token[] }>('/api/auth/tokens', {}, signal), []);
  const action = useAction();
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState('all');
  const [role, setRole] = useState<Role>('operator');
  const [days, setDays] = useState('90');
  const [value, setValue] = useState<string>();
  const parsed = parseScopes(scopes);

  const create = async (e: React.FormEvent) => {
    e.preventDefault();
    const r = await action.run(() =>
      api.post<Token & { token: string }>('/api/auth/tokens', {
        name,
        scopes: parsed,
        role,
        ...(days ? { expires_in_days: Number(days) } : {}),
      }),
    );
    if (!r) return;
    setValue(r.token);
    setName('');
    tokens.reload();
  };
  const revoke = async (id: number) => {
    const r = await action.run(() => api.delete(`/api/auth/tokens/${id}`));
    if (r !== undefined) tokens.reload();
  };
  return (
    <section aria-labelledby="tokens-title">
      <h1 id="tokens-title">{t('tokens.title')}</h1>
      <ApiError error={tokens.error} onRetry={tokens.reload} />
      <ApiError error={action.error} />
      {value ? (
        <p className="notice" role="status">
          {t('tokens.shownOnce')} <code className="token-value">{value}</code>
        </p>
      ) : null}
      <TokenTable tokens={tokens.data?.tokens ?? []} onRevoke={(id) => void revoke(id)} />
      <form className="form" onSubmit={(e) => void create(e)} aria-labelledby="token-new-title">
        <h2 id="token-new-title">{t('tokens.new')}</h2>
        <div className="row">
          <label>
            {t('tokens.name')}
            <input required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />
          </label>
          <label>
            {t('tokens.role')}
            <select value={role} onChange={(e) => setRole(e.target.value as Role)}>
              <option value="viewer">viewer</option>
              <option value="operator">operator</option>
              <option value="admin">admin</option>
            </select>
          </label>
          <label>
            {t('tokens.days')}
            <input type="number" min={1} max={3650} value={days} onChange={(e) => setDays(e.target.value)} />
          </label>
        </div>
        <label>
          {t('tokens.scopes')}
          <input required value={scopes} aria-invalid={!parsed} onChange={(e) => setScopes(e.target.value)} />
          <span className={parsed ? 'muted small' : 'field-error'}>{t('apps.scopesHelp')}</span>
        </label>
        <div className="actions">
          <button type="submit" className="primary" disabled={action.busy || !parsed}>
            {t('tokens.create')}
          </button>
        </div>
      </form>
    </section>
  );
}
