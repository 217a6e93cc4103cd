/**
 * The console's English strings: every word the console shows comes from here, so that a
 * Chinese catalogue (zh.ts, the same keys) can follow. `{name}` marks a value put in at run time.
 * The resource pages keep their strings in en-pages.ts, merged below.
 */
import { enPages } from './en-pages';

const core = {
  'app.name': 'Jobfleet',
  'app.skip': 'Skip to content',
  'app.loading': 'Loading…',
  'app.menu': 'Menu',
  'app.notFound': 'No such page: {path}',
  'app.noScope': 'You have no role in any business yet. Ask a platform admin to grant you one.',
  'app.noPermission': 'You may not open this page in {scope}: it needs the {needs} role.',
  'app.pageFailed': 'This page failed: {message}',
  'app.retry': 'Try again',

  'nav.main': 'Main',
  'nav.section.job': 'Jobs',
  'nav.section.orchestration': 'Orchestration',
  'nav.section.resources': 'Resources',
  'nav.section.platform': 'Platform',
  'nav.overview': 'Overview',
  'nav.runScript': 'Run script',
  'nav.pushFile': 'Push file',
  'nav.history': 'History',

  'scope.label': 'Business',
  'scope.biz': 'business',
  'scope.biz_set': 'business set',

  'user.menu': 'Signed in as {name}',
  'user.signOut': 'Sign out',
  'user.platformAdmin': 'platform admin',

  'signIn.title': 'Sign in to Jobfleet',
  'signIn.username': 'User name',
  'signIn.password': 'Password',
  'signIn.submit': 'Sign in',
  'signIn.busy': 'Signing in…',
  'signIn.hint': 'The first start of the server prints the password of the admin user.',

  'error.title': 'Error {code}',
  'error.network': 'The server did not answer: {message}',
  'error.requestId': 'request {id}',

  'common.close': 'Close',
  'common.cancel': 'Cancel',
  'common.copy': 'Copy',
  'common.copied': 'Copied {n}',
  'common.none': 'None',
  'common.refresh': 'Refresh',
  'common.search': 'Search',
  'common.all': 'All',
  'common.confirm': 'Confirm',
  'common.yes': 'Yes',
  'common.no': 'No',
  'common.more': 'More',
  'common.seconds': '{n} s',
} as const;

export const en = { ...core, ...enPages };

export type MessageKey = keyof typeof en;
