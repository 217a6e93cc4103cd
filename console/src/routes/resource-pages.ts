/**
 * The resource pages: scripts, templates and plans, crons, accounts, hosts and agents, and the
 * platform pages (dangerous rules, apps, users and roles, tokens, audit). See console/README.md,
 * "Adding a page".
 */
import { lazy } from 'react';
import '../resources/resources.css';
import type { ConsolePage } from './page';

export const RESOURCE_PAGES: readonly ConsolePage[] = [
  {
    path: 'templates',
    scoped: true,
    component: lazy(() => import('../pages/plans/templates-page')),
    nav: { section: 'orchestration', label: 'nav.templates', order: 10 },
  },
  {
    path: 'templates/new',
    scoped: true,
    needs: 'admin',
    component: lazy(() => import('../pages/plans/template-page')),
  },
  {
    path: 'templates/:templateId',
    scoped: true,
    component: lazy(() => import('../pages/plans/template-page')),
  },
  {
    path: 'plans',
    scoped: true,
    component: lazy(() => import('../pages/plans/plans-page')),
    nav: { section: 'orchestration', label: 'nav.plans', order: 20 },
  },
  // BK-JOB's /api_plan/:id lands here (routes/deep-links.tsx).
  { path: 'plans/:planId', scoped: true, component: lazy(() => import('../pages/plans/plan-page')) },
  {
    path: 'crons',
    scoped: true,
    component: lazy(() => import('../pages/crons/crons-page')),
    nav: { section: 'orchestration', label: 'nav.crons', order: 30 },
  },
  {
    path: 'crons/new',
    scoped: true,
    needs: 'admin',
    component: lazy(() => import('../pages/crons/cron-page')),
  },
  { path: 'crons/:cronId', scoped: true, component: lazy(() => import('../pages/crons/cron-page')) },
  {
    path: 'scripts',
    scoped: true,
    component: lazy(() => import('../pages/scripts/scripts-page')),
    nav: { section: 'resources', label: 'nav.scripts', order: 10 },
  },
  {
    path: 'scripts/new',
    scoped: true,
    needs: 'admin',
    component: lazy(() => import('../pages/scripts/script-new-page')),
  },
  { path: 'scripts/:scriptId', scoped: true, component: lazy(() => import('../pages/scripts/script-page')) },
  {
    path: 'accounts',
    scoped: true,
    component: lazy(() => import('../pages/accounts/accounts-page')),
    nav: { section: 'resources', label: 'nav.accounts', order: 20 },
  },
  {
    path: 'hosts',
    scoped: true,
    component: lazy(() => import('../pages/hosts/hosts-page')),
    nav: { section: 'resources', label: 'nav.hosts', order: 30 },
  },
  {
    path: '/dangerous-rules',
    scoped: false,
    component: lazy(() => import('../pages/admin/dangerous-rules-page')),
    nav: { section: 'platform', label: 'nav.rules', order: 10 },
  },
  {
    path: '/tokens',
    scoped: false,
    component: lazy(() => import('../pages/admin/tokens-page')),
    nav: { section: 'platform', label: 'nav.tokens', order: 20 },
  },
  {
    path: '/admin/users',
    scoped: false,
    needs: 'platform',
    component: lazy(() => import('../pages/admin/users-page')),
    nav: { section: 'platform', label: 'nav.users', order: 30 },
  },
  {
    path: '/admin/apps',
    scoped: false,
    needs: 'platform',
    component: lazy(() => import('../pages/admin/apps-page')),
    nav: { section: 'platform', label: 'nav.apps', order: 40 },
  },
  {
    path: '/admin/audit',
    scoped: false,
    needs: 'platform',
    component: lazy(() => import('../pages/admin/audit-page')),
    nav: { section: 'platform', label: 'nav.audit', order: 50 },
  },
];
