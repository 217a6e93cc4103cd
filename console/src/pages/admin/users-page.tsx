/**
 * Users and their roles (platform admins): create a user (a generated password is shown once),
 * set the roles per business or business set and platform admin, reset a password, delete a
 * user, and see and revoke the user's API tokens.
 */
import { useState } from 'react';
import { api } from '../../api/client';
import { ApiError } from '../../components/api-error';
import { t } from '../../i18n';
import { formatTime } from '../../resources/format';
import { useAction, useLoad } from '../../resources/use-load';
import type { Role, ScopeType } from '../../session/session';
import type { Token } from './tokens-page';
import { TokenTable } from './tokens-page';

interface Grant {
  scope_type: ScopeType;
  scope_id: number;
  role: Role;
}

interface User {
  id: number;
  name: string;
  display_name: string;
  platform_admin: boolean;
  roles: Grant[];
  created_at: number;
}

interface BizList {
  biz: { id: number; name: string }[];
  biz_sets: { id: number; name: string }[];
}

const ROLES: Role[] = ['viewer', 'operator', 'admin'];

export default function UsersPage() {
  const users = useLoad((signal) => api.get<{ users: User[] }>('/api/admin/users', {}, signal), []);
  const biz = useLoad((signal) => api.get<BizList>('/api/admin/biz', {}, signal), []);
  const action = useAction();
  const [name, setName] = useState('');
  const [displayName, setDisplayName] = useState('');
  const [platformAdmin, setPlatformAdmin] = useState(false);
  const [shown, setShown] = useState<{ name: string; password: string }>();
  const [editing, setEditing] = useState<string>();

  const create = async (e: React.FormEvent) => {
    e.preventDefault();
    const r = await action.run(() =>
      api.post<User & { password?: string }>('/api/admin/users', {
        name,
        display_name: displayName || undefined,
        platform_admin: platformAdmin,
      }),
    );
    if (!r) return;
    if (r.password) setShown({ name: r.name, password: r.password });
    setName('');
    setDisplayName('');
    setPlatformAdmin(false);
    setEditing(r.name);
    users.reload();
  };
  const reset = async (u: User) => {
    if (!window.confirm(t('users.resetConfirm', { name: u.name }))) return;
    const r = await action.run(() =>
      api.post<{ password?: string }>(`/api/admin/users/${encodeURIComponent(u.name)}/password`, {}),
    );
    if (r?.password) setShown({ name: u.name, password: r.password });
  };
  const remove = async (u: User) => {
    if (!window.confirm(t('users.deleteConfirm', { name: u.name }))) return;
    const r = await action.run(() => api.delete(`/api/admin/users/${encodeURIComponent(u.name)}`));
    if (r !== undefined) users.reload();
  };
  const scopeName = (g: { scope_type: ScopeType; scope_id: number }) =>
    (g.scope_type === 'biz' ? biz.data?.biz : biz.data?.biz_sets)?.find((b) => b.id === g.scope_id)?.name ??
    `${g.scope_type}:${g.scope_id}`;

  return (
    <section aria-labelledby="users-title">
      <h1 id="users-title">{t('users.title')}</h1>
      <ApiError error={users.error} onRetry={users.reload} />
      <ApiError error={action.error} />
      {shown ? (
        <p className="notice" role="status">
          {t('users.passwordShown', { name: shown.name })} <code>{shown.password}</code>{' '}
          <button type="button" className="link" onClick={() => setShown(undefined)}>
            {t('common.close')}
          </button>
        </p>
      ) : null}
      <table className="data-table">
        <thead>
          <tr>
            <th scope="col">{t('users.name')}</th>
            <th scope="col">{t('users.roles')}</th>
            <th scope="col">{t('users.created')}</th>
            <th scope="col">{t('common.actions')}</th>
          </tr>
        </thead>
        <tbody>
          {users.data?.users.map((u) => (
            <tr key={u.id}>
              <td>
                <strong>{u.name}</strong>
                {u.display_name !== u.name ? <div className="muted small">{u.display_name}</div> : null}
              </td>
              <td>
                {u.platform_admin ? <span className="badge">{t('user.platformAdmin')}</span> : null}{' '}
                {u.roles.map((g) => `${scopeName(g)}: ${g.role}`).join(', ')}
              </td>
              <td>{formatTime(u.created_at)}</td>
              <td className="row-actions">
                <button
                  type="button"
                  onClick={() => setEditing(editing === u.name ? undefined : u.name)}
                  aria-expanded={editing === u.name}
                >
                  {t('users.manage', { name: u.name })}
                </button>
                <button type="button" onClick={() => void reset(u)}>
                  {t('users.reset')}
                </button>
                <button
                  type="button"
                  className="danger"
                  onClick={() => void remove(u)}
                  aria-label={t('users.deleteOf', { name: u.name })}
                >
                  {t('common.delete')}
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {editing && users.data ? (
        <UserEditor
          key={editing}
          user={users.data.users.find((u) => u.name === editing)}
          biz={biz.data}
          onSaved={users.reload}
        />
      ) : null}
      <form className="form" onSubmit={(e) => void create(e)} aria-labelledby="user-new-title">
        <h2 id="user-new-title">{t('users.new')}</h2>
        <div className="row">
          <label>
            {t('users.name')}
            <input
              required
              pattern="[A-Za-z0-9_.@\-]{1,64}"
              value={name}
              onChange={(e) => setName(e.target.value)}
            />
          </label>
          <label>
            {t('users.displayName')}
            <input maxLength={200} value={displayName} onChange={(e) => setDisplayName(e.target.value)} />
          </label>
        </div>
        <label className="check">
          <input
            type="checkbox"
            checked={platformAdmin}
            onChange={(e) => setPlatformAdmin(e.target.checked)}
          />
          {t('user.platformAdmin')}
        </label>
        <p className="muted small">{t('users.passwordNote')}</p>
        <div className="actions">
          <button type="submit" className="primary" disabled={action.busy}>
            {t('users.create')}
          </button>
        </div>
      </form>
    </section>
  );
}

function UserEditor({
  user,
  biz,
  onSaved,
}: {
  user: User | undefined;
  biz: BizList | undefined;
  onSaved(): void;
}) {
  const [grants, setGrants] = useState<Grant[]>(user?.roles ?? []);
  const [platformAdmin, setPlatformAdmin] = useState(user?.platform_admin ?? false);
  const action = useAction();
  const tokens = useLoad(
    (signal) =>
      user
        ? api.get<{ tokens: Token[] }>(`/api/admin/users/${encodeURIComponent(user.name)}/tokens`, {}, signal)
        : Promise.resolve({ tokens: [] }),
    [user?.name],
  );
  if (!user) return null;
  const scopes = [
    ...(biz?.biz ?? []).map((b) => ({ key: `biz:${b.id}`, label: `${b.name} (biz ${b.id})` })),
    ...(biz?.biz_sets ?? []).map((b) => ({ key: `biz_set:${b.id}`, label: `${b.name} (biz_set ${b.id})` })),
  ];
  const save = async () => {
    const r = await action.run(() =>
      api.post(`/api/admin/users/${encodeURIComponent(user.name)}/roles`, {
        roles: grants,
        platform_admin: platformAdmin,
      }),
    );
    if (r !== undefined) onSaved();
  };
  const revoke = async (id: number) => {
    const r = await action.run(() => api.delete(`/api/admin/tokens/${id}`));
    if (r !== undefined) tokens.reload();
  };
  return (
    <section className="panel" aria-labelledby="user-edit-title">
      <h2 id="user-edit-title">{t('users.rolesOf', { name: user.name })}</h2>
      <ul className="plain-list">
        {grants.map((g, i) => (
          <li key={i} className="row">
            <label>
              {t('users.scope')}
              <select
                value={`${g.scope_type}:${g.scope_id}`}
                onChange={(e) => {
                  const [type, id] = e.target.value.split(':');
                  setGrants((x) =>
                    x.map((y, j) =>
                      j === i
                        ? { ...y, scope_type: type === 'biz_set' ? 'biz_set' : 'biz', scope_id: Number(id) }
                        : y,
                    ),
                  );
                }}
              >
                {scopes.map((s) => (
                  <option key={s.key} value={s.key}>
                    {s.label}
                  </option>
                ))}
              </select>
            </label>
            <label>
              {t('users.role')}
              <select
                value={g.role}
                onChange={(e) =>
                  setGrants((x) => x.map((y, j) => (j === i ? { ...y, role: e.target.value as Role } : y)))
                }
              >
                {ROLES.map((r) => (
                  <option key={r} value={r}>
                    {r}
                  </option>
                ))}
              </select>
            </label>
            <button
              type="button"
              className="danger"
              onClick={() => setGrants((x) => x.filter((_, j) => j !== i))}
            >
              {t('common.remove')}
            </button>
          </li>
        ))}
      </ul>
      <div className="actions">
        <button
          type="button"
          disabled={scopes.length === 0}
          onClick={() => {
            const [type, id] = (scopes[0]?.key ?? 'biz:0').split(':');
            setGrants((x) => [
              ...x,
              { scope_type: type === 'biz_set' ? 'biz_set' : 'biz', scope_id: Number(id), role: 'viewer' },
            ]);
          }}
        >
          {t('users.addRole')}
        </button>
      </div>
      <label className="check">
        <input type="checkbox" checked={platformAdmin} onChange={(e) => setPlatformAdmin(e.target.checked)} />
        {t('user.platformAdmin')}
      </label>
      <ApiError error={action.error} />
      <div className="actions">
        <button type="button" className="primary" disabled={action.busy} onClick={() => void save()}>
          {t('users.saveRoles')}
        </button>
      </div>
      <h3>{t('tokens.of', { name: user.name })}</h3>
      <ApiError error={tokens.error} />
      <TokenTable tokens={tokens.data?.tokens ?? []} onRevoke={(id) => void revoke(id)} />
    </section>
  );
}
