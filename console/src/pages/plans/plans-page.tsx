/** Job plans of the scope: which template each belongs to and whether it needs a sync. */
import { Link } from 'react-router';
import { ApiError } from '../../components/api-error';
import { t } from '../../i18n';
import { formatTime } from '../../resources/format';
import { NameSearch, PageHead, NamedListFooter, useNamedList } from '../../resources/list-page';
import { useScope } from '../../session/scope';
import type { ListItem } from './plan-types';

export default function PlansPage() {
  const scope = useScope();
  const named = useNamedList<ListItem>('get_job_plan_list');
  const { name, setName, list } = named;
  return (
    <section aria-labelledby="plans-title">
      <PageHead id="plans-title" title={t('plans.title')} />
      <form className="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <NameSearch label={t('plans.filterName')} value={name} onChange={setName} />
      </form>
      <ApiError error={list.error} onRetry={list.reload} />
      <table className="data-table">
        <thead>
          <tr>
            <th scope="col">{t('plans.name')}</th>
            <th scope="col">{t('plans.template')}</th>
            <th scope="col">{t('plans.sync')}</th>
            <th scope="col">{t('common.modifiedBy')}</th>
            <th scope="col">{t('common.modifiedAt')}</th>
          </tr>
        </thead>
        <tbody>
          {list.data?.data.map((x) => (
            <tr key={x.id}>
              <td>
                <Link to={scope.path(`plans/${x.id}`)}>{x.name}</Link>
              </td>
              <td>
                <Link to={scope.path(`templates/${x.job_template_id ?? ''}`)}>#{x.job_template_id}</Link>
              </td>
              <td>
                {x.need_update ? (
                  <span className="badge warn">{t('plans.needUpdate')}</span>
                ) : (
                  t('plans.upToDate')
                )}
              </td>
              <td>{x.last_modify_user}</td>
              <td>{formatTime(x.last_modify_time, 's')}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <NamedListFooter named={named} empty={t('plans.empty')} />
    </section>
  );
}
