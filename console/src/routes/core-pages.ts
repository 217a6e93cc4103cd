/** The console's own pages: overview, quick runs, history, job and step results. */
import { lazy } from 'react';
import type { ConsolePage } from './page';

export const CORE_PAGES: readonly ConsolePage[] = [
  {
    path: '',
    scoped: true,
    component: lazy(() => import('../pages/overview/overview-page')),
    nav: { section: 'job', label: 'nav.overview', order: 10 },
  },
  {
    path: 'run/script',
    scoped: true,
    needs: 'operator',
    component: lazy(() => import('../pages/run/run-script-page')),
    nav: { section: 'job', label: 'nav.runScript', order: 20 },
  },
  {
    path: 'run/file',
    scoped: true,
    needs: 'operator',
    component: lazy(() => import('../pages/run/push-file-page')),
    nav: { section: 'job', label: 'nav.pushFile', order: 30 },
  },
  {
    path: 'jobs',
    scoped: true,
    component: lazy(() => import('../pages/history/history-page')),
    nav: { section: 'job', label: 'nav.history', order: 40 },
  },
  { path: 'jobs/:jobId', scoped: true, component: lazy(() => import('../pages/job/job-page')) },
  {
    path: 'jobs/:jobId/steps/:stepId',
    scoped: true,
    component: lazy(() => import('../pages/step/step-page')),
  },
];
