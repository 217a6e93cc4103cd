/**
 * The console's routes: sign-in, BK-JOB's deep links, and every registered page (routes/) inside
 * the layout, scoped pages under /:scopeType/:scopeId.
 */
import { Navigate, Outlet, RouterProvider, createBrowserRouter, useLocation } from 'react-router';
import type { RouteObject } from 'react-router';
import { t } from './i18n';
import { Layout } from './layout/layout';
import SignInPage from './pages/sign-in-page';
import { PAGES } from './routes';
import { DeepLink } from './routes/deep-links';
import { NotFound } from './routes/not-found';
import { PageGate } from './routes/page-gate';
import { scopeBase } from './session/scope';
import { SessionProvider, useSession } from './session/session';

function RequireSession() {
  const { me } = useSession();
  const location = useLocation();
  if (me === undefined) return <p className="muted centered">{t('app.loading')}</p>;
  if (me === null)
    return <Navigate to="/sign-in" replace state={{ from: location.pathname + location.search }} />;
  return <Outlet />;
}

/** `/` opens the first scope the person has a role in. */
function Home() {
  const { scopes } = useSession();
  const first = scopes[0];
  if (!first) return <p className="notice">{t('app.noScope')}</p>;
  return <Navigate to={scopeBase(first.scope_type, first.scope_id)} replace />;
}

const routes: RouteObject[] = [
  { path: '/sign-in', element: <SignInPage /> },
  {
    element: <RequireSession />,
    children: [
      { path: '/api_execute/:jobId', element: <DeepLink kind="job" /> },
      { path: '/api_execute_step/:jobId/:stepId', element: <DeepLink kind="step" /> },
      { path: '/api_plan/:planId', element: <DeepLink kind="plan" /> },
      {
        element: <Layout />,
        children: [
          { path: '/', element: <Home /> },
          {
            path: '/:scopeType/:scopeId',
            children: PAGES.filter((p) => p.scoped).map((p) =>
              p.path === ''
                ? { index: true, element: <PageGate page={p} /> }
                : { path: p.path, element: <PageGate page={p} /> },
            ),
          },
          ...PAGES.filter((p) => !p.scoped).map((p) => ({ path: p.path, element: <PageGate page={p} /> })),
          { path: '*', element: <NotFound /> },
        ],
      },
    ],
  },
];

const router = createBrowserRouter(routes);

export function App() {
  return (
    <SessionProvider>
      <RouterProvider router={router} />
    </SessionProvider>
  );
}
