/** Every page of the console, in one list: the router and the navigation are built from it. */
import { CORE_PAGES } from './core-pages';
import type { ConsolePage } from './page';
import { RESOURCE_PAGES } from './resource-pages';

export const PAGES: readonly ConsolePage[] = [...CORE_PAGES, ...RESOURCE_PAGES];
export type { ConsolePage, NavSection } from './page';
export { NAV_SECTIONS } from './page';
