/**
 * Execution accounts of the scope: OS accounts (Linux, Windows) and database accounts (MySQL,
 * Oracle, DB2, each run through an OS account). Admins add and delete them; a password is sent
 * once and never shown again.
 */
import { useState } from 'react';
import { api } from '../../api/client';
import { ApiError } from '../../components/api-error';
import { t } from '../../i18n';
import type { MessageKey } from '../../i18n';
import { formatTime } from '../../resources/format';
import { useAction, useLoad } from '../../resources/use-load';
import { useScope } from '../../session/scope';
import { reaches } from '../../session/session';
import { ListFooter } from '../../resources/pager';

interface Account {
  id: number;
  account: string;
  alias: string;
  category: number;
  type: number;
  db_port: number | null;
  db_system_account_id: number | null;
  description: string;
  last_modify_user: string;
  last_modify_time: number;
}

const TYPES: { id: number; category: 1 | 2; key: MessageKey }[] = [
  { id: 1, category: 1, key: 'accounts.type.linux' },
  { id: 2, category: 1, key: 'accounts.type.windows' },
  { id: 9, category: 2, key: 'accounts.type.mysql' },
  { id: 10, category: 2, key: 'accounts.type.oracle' },
  { id: 11, category: 2, key: 'accounts.type.db2' },
];
const typeKey = (id: number): MessageKey => TYPES.find((x) => x.id === id)?.key ?? 'accounts.type.linux';

export default function AccountsPage() {
  const scope = useScope();
  const manage = reaches(scope.role, 'admin') && scope.type === 'biz';
  const [category, setCategory] = useState(0);
  const list = useLoad(
    (signal) =>
      api.readAll<Account>('get_account_list', { ...scope.params, category: category || undefined }, signal),
    [scope.type, scope.id, category],
  );
  const action = useAction();
  const [type, setType] = useState(1);
  const [account, setAccount] = useState('');
  const [alias, setAlias] = useState('');
  const [password, setPassword] = useState('');
  const [dbPort, setDbPort] = useState('');
  const [dbSystem, setDbSystem] = useState('');
  const [description, setDescription] = useState('');
  const isDb = type >= 9;
  const systemAccounts = (list.data?.data ?? []).filter((a) => a.category === 1);

  const create = async (e: React.FormEvent) => {
    e.preventDefault();
    const r = await action.run(() =>
      api.call('create_account', {
        ...scope.params,
        account,
        alias: alias || undefined,
        type,
        category: isDb ? 2 : 1,
        description,
        ...(isDb
          ? { db_password: password, db_port: Number(dbPort), db_system_account_id: Number(dbSystem) }
          : type === 2
            ? { password }
            : {}),
      }),
    );
    if (r === undefined) return;
    setAccount('');
    setAlias('');
    setPassword('');
    setDescription('');
    list.reload();
  };
  const remove = async (a: Account) => {
    if (!window.confirm(t('accounts.deleteConfirm', { alias: a.alias }))) return;
    const r = await action.run(() => api.call('delete_account', { ...scope.params, id: a.id }));
    if (r !== undefined) list.reload();
  };

  return (
    <section aria-labelledby="accounts-title">
      <h1 id="accounts-title">{t('accounts.title')}</h1>
      <form className="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          {t('accounts.category')}
          <select value={category} onChange={(e) => setCategory(Number(e.target.value))}>
            <option value={0}>{t('common.all')}</option>
            <option value={1}>{t('accounts.category.system')}</option>
            <option value={2}>{t('accounts.category.db')}</option>
          </select>
        </label>
      </form>
      <ApiError error={list.error} onRetry={list.reload} />
      <ApiError error={action.error} />
      <table className="data-table">
        <thead>
          <tr>
            <th scope="col">{t('accounts.alias')}</th>
            <th scope="col">{t('accounts.account')}</th>
            <th scope="col">{t('accounts.typeLabel')}</th>
            <th scope="col">{t('accounts.db')}</th>
            <th scope="col">{t('accounts.description')}</th>
            <th scope="col">{t('common.modifiedAt')}</th>
            {manage ? <th scope="col">{t('common.actions')}</th> : null}
          </tr>
        </thead>
        <tbody>
          {list.data?.data.map((a) => (
            <tr key={a.id}>
              <td>{a.alias}</td>
              <td>
                <code>{a.account}</code>
              </td>
              <td>{t(typeKey(a.type))}</td>
              <td>
                {a.category === 2
                  ? t('accounts.dbVia', {
                      port: a.db_port ?? '',
                      via:
                        list.data?.data.find((x) => x.id === a.db_system_account_id)?.alias ??
                        String(a.db_system_account_id),
                    })
                  : ''}
              </td>
              <td>{a.description}</td>
              <td>{formatTime(a.last_modify_time)}</td>
              {manage ? (
                <td>
                  <button
                    type="button"
                    className="danger"
                    onClick={() => void remove(a)}
                    aria-label={t('accounts.deleteOf', { alias: a.alias })}
                  >
                    {t('common.delete')}
                  </button>
                </td>
              ) : null}
            </tr>
          ))}
        </tbody>
      </table>
      <ListFooter total={list.data?.total} empty={t('accounts.empty')} />

      {manage ? (
        <form className="form" onSubmit={(e) => void create(e)} aria-labelledby="account-new-title">
          <h2 id="account-new-title">{t('accounts.new')}</h2>
          <div className="row">
            <label>
              {t('accounts.typeLabel')}
              <select value={type} onChange={(e) => setType(Number(e.target.value))}>
                {TYPES.map((x) => (
                  <option key={x.id} value={x.id}>
                    {t(x.key)}
                  </option>
                ))}
              </select>
            </label>
            <label>
              {t('accounts.account')}
              <input required maxLength={64} value={account} onChange={(e) => setAccount(e.target.value)} />
            </label>
            <label>
              {t('accounts.alias')}
              <input
                maxLength={255}
                value={alias}
                placeholder={account}
                onChange={(e) => setAlias(e.target.value)}
              />
            </label>
          </div>
          {type === 2 || isDb ? (
            <label>
              {t('accounts.password')}
              <input
                type="password"
                autoComplete="new-password"
                required
                value={password}
                onChange={(e) => setPassword(e.target.value)}
              />
            </label>
          ) : null}
          {isDb ? (
            <div className="row">
              <label>
                {t('accounts.dbPort')}
                <input
                  type="number"
                  min={1}
                  max={65535}
                  required
                  value={dbPort}
                  onChange={(e) => setDbPort(e.target.value)}
                />
              </label>
              <label>
                {t('accounts.dbSystem')}
                <select required value={dbSystem} onChange={(e) => setDbSystem(e.target.value)}>
                  <option value="">—</option>
                  {systemAccounts.map((a) => (
                    <option key={a.id} value={a.id}>
                      {a.alias} ({a.account})
                    </option>
                  ))}
                </select>
              </label>
            </div>
          ) : null}
          <label>
            {t('accounts.description')}
            <input maxLength={1024} value={description} onChange={(e) => setDescription(e.target.value)} />
          </label>
          <div className="actions">
            <button type="submit" className="primary" disabled={action.busy}>
              {t('accounts.create')}
            </button>
          </div>
        </form>
      ) : null}
    </section>
  );
}
