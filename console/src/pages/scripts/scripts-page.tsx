/** Scripts of the scope: filter by name and language, open one, or start a new one (admins). */
import { useState } from 'react';
import { Link } from 'react-router';
import { api } from '../../api/client';
import { ApiError } from '../../components/api-error';
import { t } from '../../i18n';
import { formatTime, LANGUAGES, languageName } from '../../resources/format';
import type { PageOf } from '../../resources/format';
import { Pager } from '../../resources/pager';
import { useLoad } from '../../resources/use-load';
import { useScope } from '../../session/scope';
import { reaches } from '../../session/session';

export interface ScriptItem {
  id: string;
  name: string;
  script_language: number;
  last_modify_user: string;
  last_modify_time: number;
  description: string;
  online_script_version_id: number | null;
}

const PAGE = 50;

export default function ScriptsPage() {
  const scope = useScope();
  const [name, setName] = useState('');
  const [language, setLanguage] = useState(0);
  const [start, setStart] = useState(0);
  const list = useLoad(
    (signal) =>
      api.read<PageOf<ScriptItem>>(
        'get_script_list',
        { ...scope.params, name, script_language: language || undefined, start, length: PAGE },
        signal,
      ),
    [scope.type, scope.id, name, language, start],
  );
  return (
    <section aria-labelledby="scripts-title">
      <div className="page-head">
        <h1 id="scripts-title">{t('scripts.title')}</h1>
        {reaches(scope.role, 'admin') ? (
          <Link className="button primary" to={scope.path('scripts/new')}>
            {t('scripts.new')}
          </Link>
        ) : null}
      </div>
      <form className="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <label>
          {t('scripts.filterName')}
          <input
            type="search"
            value={name}
            onChange={(e) => {
              setName(e.target.value);
              setStart(0);
            }}
          />
        </label>
        <label>
          {t('scripts.language')}
          <select
            value={language}
            onChange={(e) => {
              setLanguage(Number(e.target.value));
              setStart(0);
            }}
          >
            <option value={0}>{t('common.all')}</option>
            {LANGUAGES.map((l) => (
              <option key={l.id} value={l.id}>
                {l.name}
              </option>
            ))}
          </select>
        </label>
      </form>
      <ApiError error={list.error} onRetry={list.reload} />
      <table className="data-table">
        <thead>
          <tr>
            <th scope="col">{t('scripts.name')}</th>
            <th scope="col">{t('scripts.language')}</th>
            <th scope="col">{t('scripts.online')}</th>
            <th scope="col">{t('common.modifiedBy')}</th>
            <th scope="col">{t('common.modifiedAt')}</th>
          </tr>
        </thead>
        <tbody>
          {list.data?.data.map((s) => (
            <tr key={s.id}>
              <td>
                <Link to={scope.path(`scripts/${s.id}`)}>{s.name}</Link>
                {s.description ? <div className="muted small">{s.description}</div> : null}
              </td>
              <td>{languageName(s.script_language)}</td>
              <td>{s.online_script_version_id ? t('scripts.onlineYes') : t('scripts.onlineNo')}</td>
              <td>{s.last_modify_user}</td>
              <td>{formatTime(s.last_modify_time)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {list.data && list.data.total === 0 ? <p className="muted">{t('scripts.empty')}</p> : null}
      {list.data ? <Pager start={start} length={PAGE} total={list.data.total} onPage={setStart} /> : null}
    </section>
  );
}
