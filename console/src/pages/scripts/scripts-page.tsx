/** Scripts of the scope: filter by name and language, open one, or start a new one (admins). */
import { useState } from 'react';
import { Link } from 'react-router';
import { ApiError } from '../../components/api-error';
import { t } from '../../i18n';
import { formatTime, languageName } from '../../resources/format';
import { LanguageOptions } from '../../resources/language-options';
import { NameSearch, PageHead, NamedListFooter, useNamedList } from '../../resources/list-page';
import { useScope } from '../../session/scope';

export interface ScriptItem {
  id: string;
  name: string;
  script_language: number;
  last_modify_user: string;
  last_modify_time: number;
  description: string;
  online_script_version_id: number | null;
}

export default function ScriptsPage() {
  const scope = useScope();
  const [language, setLanguage] = useState(0);
  const named = useNamedList<ScriptItem>('get_script_list', {
    script_language: language || undefined,
  });
  const { name, setName, setStart, list } = named;
  return (
    <section aria-labelledby="scripts-title">
      <PageHead
        id="scripts-title"
        title={t('scripts.title')}
        newLink={{ path: 'scripts/new', label: t('scripts.new') }}
      />
      <form className="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <NameSearch label={t('scripts.filterName')} value={name} onChange={setName} />
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
            <LanguageOptions />
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
      <NamedListFooter named={named} empty={t('scripts.empty')} />
    </section>
  );
}
