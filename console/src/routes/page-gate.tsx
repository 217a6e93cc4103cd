/** Renders a registered page once its role is checked, with a loading state and an error boundary. */
import { Suspense } from 'react';
import { useLocation, useParams } from 'react-router';
import { PageBoundary } from '../components/page-boundary';
import { t } from '../i18n';
import { reaches, useSession } from '../session/session';
import type { ConsolePage } from './page';
import { NotFound } from './not-found';

export function PageGate({ page }: { page: ConsolePage }) {
  const { me, scopes } = useSession();
  const { scopeType, scopeId } = useParams();
  const location = useLocation();
  if (page.scoped) {
    if (scopeType !== 'biz' && scopeType !== 'biz_set') return <NotFound />;
    const held = scopes.find((s) => s.scope_type === scopeType && String(s.scope_id) === scopeId)?.role;
    const needs = page.needs === undefined || page.needs === 'platform' ? 'viewer' : page.needs;
    if (!reaches(held, needs))
      return (
        <p className="notice">{t('app.noPermission', { scope: `${scopeType} ${scopeId ?? ''}`, needs })}</p>
      );
  } else if (page.needs === 'platform' && !me?.platform_admin) {
    return <p className="notice">{t('app.noPermission', { scope: 'Jobfleet', needs: 'platform admin' })}</p>;
  }
  const Page = page.component;
  return (
    <PageBoundary resetKey={location.pathname}>
      <Suspense fallback={<p className="muted">{t('app.loading')}</p>}>
        <Page />
      </Suspense>
    </PageBoundary>
  );
}
