/** Crons of the scope: schedule in words, on/off (admins switch it), the plan it runs. */
import { Link } from 'react-router';
import { api } from '../../api/client';
import { ApiError } from '../../components/api-error';
import { t } from '../../i18n';
import { describe } from '../../resources/cron-schedule';
import { formatTime } from '../../resources/format';
import { NameSearch, NamedListFooter, useNamedList } from '../../resources/list-page';
import { useAction } from '../../resources/use-load';
import { useScope } from '../../session/scope';
import { reaches } from '../../session/session';

export interface CronItem {
  id: number;
  name: string;
  status: number;
  job_plan_id: number;
  expression: string | null;
  last_modify_user: string;
  last_modify_time: number;
}

export function scheduleText(expression: string | null): string {
  if (!expression) return t('crons.once');
  const d = describe(expression);
  return 'text' in d ? d.text : expression;
}

export default function CronsPage() {
  const scope = useScope();
  const manage = reaches(scope.role, 'admin');
  const named = useNamedList<CronItem>('get_cron_list');
  const { name, setName, list } = named;
  const action = useAction();
  const toggle = async (c: CronItem) => {
    const r = await action.run(() =>
      api.call('update_cron_status', { ...scope.params, id: c.id, status: c.status === 1 ? 0 : 1 }),
    );
    if (r !== undefined) list.reload();
  };
  return (
    <section aria-labelledby="crons-title">
      <div className="page-head">
        <h1 id="crons-title">{t('crons.title')}</h1>
        {manage ? (
          <Link className="button primary" to={scope.path('crons/new')}>
            {t('crons.new')}
          </Link>
        ) : null}
      </div>
      <form className="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <NameSearch label={t('crons.filterName')} value={name} onChange={setName} />
      </form>
      <ApiError error={list.error} onRetry={list.reload} />
      <ApiError error={action.error} />
      <table className="data-table">
        <thead>
          <tr>
            <th scope="col">{t('crons.name')}</th>
            <th scope="col">{t('crons.schedule')}</th>
            <th scope="col">{t('crons.plan')}</th>
            <th scope="col">{t('crons.state')}</th>
            <th scope="col">{t('common.modifiedBy')}</th>
            <th scope="col">{t('common.modifiedAt')}</th>
          </tr>
        </thead>
        <tbody>
          {list.data?.data.map((c) => (
            <tr key={c.id}>
              <td>
                <Link to={scope.path(`crons/${c.id}`)}>{c.name}</Link>
              </td>
              <td>
                {scheduleText(c.expression)}
                {c.expression ? (
                  <div className="muted small">
                    <code>{c.expression}</code>
                  </div>
                ) : null}
              </td>
              <td>
                <Link to={scope.path(`plans/${c.job_plan_id}`)}>#{c.job_plan_id}</Link>
              </td>
              <td>
                {manage ? (
                  <button
                    type="button"
                    role="switch"
                    aria-checked={c.status === 1}
                    aria-label={t('crons.toggle', { name: c.name })}
                    disabled={action.busy}
                    onClick={() => void toggle(c)}
                  >
                    {c.status === 1 ? t('crons.on') : t('crons.off')}
                  </button>
                ) : c.status === 1 ? (
                  t('crons.on')
                ) : (
                  t('crons.off')
                )}
              </td>
              <td>{c.last_modify_user}</td>
              <td>{formatTime(c.last_modify_time, 's')}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <NamedListFooter named={named} empty={t('crons.empty')} />
    </section>
  );
}
