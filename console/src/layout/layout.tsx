/**
 * The frame around every signed-in page: a header (product, scope switcher, user), the
 * navigation built from the page registry, and the page. Below 900 px the navigation folds
 * behind a Menu button.
 */
import { useEffect, useState } from 'react';
import { NavLink, Outlet, useLocation, useNavigate, useParams } from 'react-router';
import { t } from '../i18n';
import { NAV_SECTIONS, PAGES } from '../routes';
import type { ConsolePage } from '../routes';
import { scopeBase } from '../session/scope';
import { reaches, useSession } from '../session/session';
import type { ScopeEntry } from '../session/session';

function visible(page: ConsolePage, scope: ScopeEntry | undefined, platformAdmin: boolean): boolean {
  if (!page.nav) return false;
  if (page.scoped) {
    const needs = page.needs === undefined || page.needs === 'platform' ? 'viewer' : page.needs;
    return reaches(scope?.role, needs);
  }
  return page.needs !== 'platform' || platformAdmin;
}

export function Layout() {
  const { me, scopes, signOut } = useSession();
  const { scopeType, scopeId } = useParams();
  const location = useLocation();
  const navigate = useNavigate();
  const [menuOpen, setMenuOpen] = useState(false);
  useEffect(() => setMenuOpen(false), [location.pathname]);

  // Platform pages have no scope in their URL: their navigation keeps the last scope opened.
  const [lastScope, setLastScope] = useState<string>('');
  const here = scopeType && scopeId ? `${scopeType}:${scopeId}` : lastScope;
  useEffect(() => {
    if (scopeType && scopeId) setLastScope(`${scopeType}:${scopeId}`);
  }, [scopeType, scopeId]);
  const current = scopes.find((s) => `${s.scope_type}:${s.scope_id}` === here) ?? scopes[0];
  const platformAdmin = me?.platform_admin ?? false;

  const navFor = (page: ConsolePage) =>
    page.scoped
      ? `${scopeBase(current?.scope_type ?? 'biz', current?.scope_id ?? 0)}${page.path ? `/${page.path}` : ''}`
      : page.path;

  return (
    <div className={`app${menuOpen ? ' menu-open' : ''}`}>
      <a className="skip-link" href="#main">
        {t('app.skip')}
      </a>
      <header className="app-header">
        <button
          type="button"
          className="menu-button"
          aria-expanded={menuOpen}
          aria-controls="app-nav"
          onClick={() => setMenuOpen((o) => !o)}
        >
          {t('app.menu')}
        </button>
        <a className="brand" href="/">
          {t('app.name')}
        </a>
        {scopes.length > 0 ? (
          <label className="scope-switch">
            <span>{t('scope.label')}</span>
            <select
              value={current ? `${current.scope_type}:${current.scope_id}` : ''}
              onChange={(e) => {
                const [type, id] = e.target.value.split(':');
                void navigate(scopeBase(type === 'biz_set' ? 'biz_set' : 'biz', id ?? ''));
              }}
            >
              {scopes.map((s) => (
                <option key={`${s.scope_type}:${s.scope_id}`} value={`${s.scope_type}:${s.scope_id}`}>
                  {s.name} ({s.scope_type === 'biz' ? t('scope.biz') : t('scope.biz_set')} {s.scope_id},{' '}
                  {s.role})
                </option>
              ))}
            </select>
          </label>
        ) : null}
        <div className="user">
          <span className="user-name">
            {t('user.menu', { name: me?.user.display_name || me?.user.name || '' })}
            {platformAdmin ? <span className="badge">{t('user.platformAdmin')}</span> : null}
          </span>
          <button type="button" onClick={() => void signOut().then(() => navigate('/sign-in'))}>
            {t('user.signOut')}
          </button>
        </div>
      </header>
      <nav id="app-nav" className="app-nav" aria-label={t('nav.main')}>
        {NAV_SECTIONS.map((section) => {
          const pages = PAGES.filter(
            (p) => p.nav?.section === section && visible(p, current, platformAdmin),
          ).sort((a, b) => (a.nav?.order ?? 0) - (b.nav?.order ?? 0));
          if (pages.length === 0) return null;
          return (
            <div key={section} className="nav-section">
              <h2>{t(`nav.section.${section}`)}</h2>
              <ul>
                {pages.map((p) => (
                  <li key={p.path}>
                    <NavLink to={navFor(p)} end={p.path === ''}>
                      {p.nav ? t(p.nav.label) : null}
                    </NavLink>
                  </li>
                ))}
              </ul>
            </div>
          );
        })}
      </nav>
      <main id="main" className="app-main" tabIndex={-1}>
        {scopes.length === 0 && !platformAdmin ? <p className="notice">{t('app.noScope')}</p> : <Outlet />}
      </main>
    </div>
  );
}
