/**
 * The resource pages: scripts, templates and plans, crons, accounts, hosts and agents, and the
 * platform pages (dangerous rules, apps, users, roles, tokens, audit). See console/README.md,
 * "Adding a page".
 */
import type { ConsolePage } from './page';

export const RESOURCE_PAGES: readonly ConsolePage[] = [];
