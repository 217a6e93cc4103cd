/**
 * What a console page declares: where it lives, whether it sits inside a scope, the role it
 * needs, and its entry in the navigation. core-pages.ts and resource-pages.ts list them.
 */
import type { ComponentType, LazyExoticComponent } from 'react';
import type { MessageKey } from '../i18n';
import type { Role } from '../session/session';

export type NavSection = 'job' | 'orchestration' | 'resources' | 'platform';

export const NAV_SECTIONS: readonly NavSection[] = ['job', 'orchestration', 'resources', 'platform'];

export interface ConsolePage {
  /**
   * Scoped pages: relative to the scope (`jobs/:jobId` is /biz/2/jobs/7); the empty path is the
   * scope's home. Platform pages: absolute (`/dangerous-rules`).
   */
  path: string;
  scoped: boolean;
  /** Lazily loaded, so each page is its own chunk. */
  component: LazyExoticComponent<ComponentType> | ComponentType;
  /**
   * Scoped pages: the role needed in the scope (default viewer). Platform pages: 'platform' for
   * platform admins only (default: any signed-in user).
   */
  needs?: Role | 'platform';
  /** Shown in the navigation when set (pages reached by a link, like a job's detail, have none). */
  nav?: { section: NavSection; label: MessageKey; order: number };
}
