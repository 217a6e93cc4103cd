/**
 * The audit log (platform admins): who did what, to what, with which outcome, newest first.
 * Filters live in the URL so a view can be shared; older entries load page by page.
 */
import { useEffect, useState } from 'react';
import { useSearchParams } from 'react-router';
import { api } from '../../api/client';
import { ApiError } from '../../components/api-error';
import { t } from '../../i18n';
import { formatTime } from '../../resources/format';
import { useAction } from '../../resources/use-load';

interface Entry {
  id: number;
  at: number;
  actor_kind: string;
  app_code: string | null;
  username: string | null;
  scope_type: string | null;
  scope_id: string | null;
  action: string;
  target: string | null;
  outcome: 'ok' | 'refused' | 'error';
  code: number;
  source_ip: string | null;
}

const FILTERS = ['actor_kind', 'app_code', 'username', 'action', 'outcome'] as const;

export default function AuditPage() {
  const [search, setSearch] = useSearchParams();
  const [entries, setEntries] = useState<Entry[]>([]);
  const [next, setNext] = useState<number | null>(null);
  const load = useAction();
  const filters = Object.fromEntries(FILTERS.map((f) => [f, search.get(f) ?? '']));
  const key = search.toString();

  useEffect(() => {
    void load
      .run(() =>
        api.get<{ entries: Entry[]; next_before_id: number | null }>('/api/admin/audit', {
          ...filters,
          limit: 100,
        }),
      )
      .then((r) => {
        if (!r) return;
        setEntries(r.entries);
        setNext(r.next_before_id);
      });
    // Reloads when the URL's filters change.
  }, [key]);
  const older = async () => {
    const r = await load.run(() =>
      api.get<{ entries: Entry[]; next_before_id: number | null }>('/api/admin/audit', {
        ...filters,
        before_id: next,
        limit: 100,
      }),
    );
    if (!r) return;
    setEntries((e) => [...e, ...r.entries]);
    setNext(r.next_before_id);
  };
  const setFilter = (name: string, value: string) => {
    const p = new URLSearchParams(search);
    if (value) p.set(name, value);
    else p.delete(name);
    setSearch(p, { replace: true });
  };

  return (
    <section aria-labelledby="audit-title">
      <h1 id="audit-title">{t('audit.title')}</h1>
      <form className="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <label>
          {t('audit.actorKind')}
          <select value={filters.actor_kind} onChange={(e) => setFilter('actor_kind', e.target.value)}>
            <option value="">{t('common.all')}</option>
            {['app', 'user', 'admin', 'agent', 'system'].map((k) => (
              <option key={k} value={k}>
                {k}
              </option>
            ))}
          </select>
        </label>
        <label>
          {t('audit.app')}
          <input
            defaultValue={filters.app_code}
            onBlur={(e) => setFilter('app_code', e.target.value.trim())}
          />
        </label>
        <label>
          {t('audit.user')}
          <input
            defaultValue={filters.username}
            onBlur={(e) => setFilter('username', e.target.value.trim())}
          />
        </label>
        <label>
          {t('audit.action')}
          <input defaultValue={filters.action} onBlur={(e) => setFilter('action', e.target.value.trim())} />
        </label>
        <label>
          {t('audit.outcome')}
          <select value={filters.outcome} onChange={(e) => setFilter('outcome', e.target.value)}>
            <option value="">{t('common.all')}</option>
            <option value="ok">ok</option>
            <option value="refused">refused</option>
            <option value="error">error</option>
          </select>
        </label>
      </form>
      <ApiError error={load.error} />
      <table className="data-table">
        <thead>
          <tr>
            <th scope="col">{t('audit.at')}</th>
            <th scope="col">{t('audit.actor')}</th>
            <th scope="col">{t('audit.scope')}</th>
            <th scope="col">{t('audit.action')}</th>
            <th scope="col">{t('audit.target')}</th>
            <th scope="col">{t('audit.outcome')}</th>
            <th scope="col">{t('audit.source')}</th>
          </tr>
        </thead>
        <tbody>
          {entries.map((e) => (
            <tr key={e.id} className={`outcome-${e.outcome}`}>
              <td>{formatTime(e.at)}</td>
              <td>
                {e.actor_kind} {e.username ?? ''}
                {e.app_code ? <span className="muted small"> ({e.app_code})</span> : null}
              </td>
              <td>{e.scope_type ? `${e.scope_type}:${e.scope_id ?? ''}` : ''}</td>
              <td>
                <code>{e.action}</code>
              </td>
              <td>{e.target ?? ''}</td>
              <td>{e.outcome === 'ok' ? 'ok' : `${e.outcome} ${e.code}`}</td>
              <td>{e.source_ip ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {entries.length === 0 && !load.busy ? <p className="muted">{t('audit.empty')}</p> : null}
      {next !== null ? (
        <button type="button" disabled={load.busy} onClick={() => void older()}>
          {t('audit.older')}
        </button>
      ) : null}
    </section>
  );
}
