/** Job templates of the scope, each with a link to its editor and its plans. */
import { Link } from 'react-router';
import { ApiError } from '../../components/api-error';
import { t } from '../../i18n';
import { formatTime } from '../../resources/format';
import { NameSearch, PAGE_LENGTH, PageHead, useNamedList } from '../../resources/list-page';
import { ListFooter } from '../../resources/pager';
import { useScope } from '../../session/scope';
import type { ListItem } from './plan-types';

export default function TemplatesPage() {
  const scope = useScope();
  const { name, setName, start, setStart, list } = useNamedList<ListItem>('get_job_template_list');
  return (
    <section aria-labelledby="templates-title">
      <PageHead
        id="templates-title"
        title={t('templates.title')}
        newLink={{ path: 'templates/new', label: t('templates.new') }}
      />
      <form className="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <NameSearch label={t('templates.filterName')} value={name} onChange={setName} />
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
      <ListFooter
        total={list.data?.total}
        empty={t('templates.empty')}
        start={start}
        length={PAGE_LENGTH}
        onPage={setStart}
      />
    </section>
  );
}
