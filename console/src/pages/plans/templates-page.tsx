/** Job templates of the scope, each with a link to its editor and its plans. */
import { useState } from 'react';
import { Link } from 'react-router';
import { api } from '../../api/client';
import { ApiError } from '../../components/api-error';
import { t } from '../../i18n';
import { formatTime } from '../../resources/format';
import type { PageOf } from '../../resources/format';
import { Pager } from '../../resources/pager';
import { useLoad } from '../../resources/use-load';
import { useScope } from '../../session/scope';
import { reaches } from '../../session/session';
import type { ListItem } from './plan-types';

const PAGE = 50;

export default function TemplatesPage() {
  const scope = useScope();
  const [name, setName] = useState('');
  const [start, setStart] = useState(0);
  const list = useLoad(
    (signal) =>
      api.read<PageOf<ListItem>>(
        'get_job_template_list',
        { ...scope.params, name, start, length: PAGE },
        signal,
      ),
    [scope.type, scope.id, name, start],
  );
  return (
    <section aria-labelledby="templates-title">
      <div className="page-head">
        <h1 id="templates-title">{t('templates.title')}</h1>
        {reaches(scope.role, 'admin') ? (
          <Link className="button primary" to={scope.path('templates/new')}>
            {t('templates.new')}
          </Link>
        ) : null}
      </div>
      <form className="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <label>
          {t('templates.filterName')}
          <input
            type="search"
            value={name}
            onChange={(e) => {
              setName(e.target.value);
              setStart(0);
            }}
          />
        </label>
      </form>
      <ApiError error={list.error} onRetry={list.reload} />
      <table className="data-table">
        <thead>
          <tr>
            <th scope="col">{t('templates.name')}</th>
            <th scope="col">{t('common.creator')}</th>
            <th scope="col">{t('common.modifiedBy')}</th>
            <th scope="col">{t('common.modifiedAt')}</th>
          </tr>
        </thead>
        <tbody>
          {list.data?.data.map((x) => (
            <tr key={x.id}>
              <td>
                <Link to={scope.path(`templates/${x.id}`)}>{x.name}</Link>
              </td>
              <td>{x.creator}</td>
              <td>{x.last_modify_user}</td>
              <td>{formatTime(x.last_modify_time)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {list.data && list.data.total === 0 ? <p className="muted">{t('templates.empty')}</p> : null}
      {list.data ? <Pager start={start} length={PAGE} total={list.data.total} onPage={setStart} /> : null}
    </section>
  );
}
