/** Job templates of the scope, each with a link to its editor and its plans. */
import { Link } from 'react-router';
import { ApiError } from '../../components/api-error';
import { t } from '../../i18n';
import { formatTime } from '../../resources/format';
import { NameSearch, PageHead, NamedListFooter, useNamedList } from '../../resources/list-page';
import { useScope } from '../../session/scope';
import type { ListItem } from './plan-types';

export default function TemplatesPage() {
  const scope = useScope();
  const named = useNamedList<ListItem>('get_job_template_list');
  const { name, setName, list } = named;
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
              <td>{formatTime(x.last_modify_time, 's')}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <NamedListFooter named={named} empty={t('templates.empty')} />
    </section>
  );
}
