/**
 * Which callback URLs the server may call (behaviour notes §7). An entry is a base URL; a
 * callback URL is allowed when its scheme, host and port equal the entry's and its path is the
 * entry's path or lies below it. The path test stops at a `/`, so `/hooks` does not admit
 * `/hooksx`. An empty list allows every URL, as BK-JOB does while the check is switched off.
 */

const DEFAULT_PORTS: Record<string, string> = { 'http:': '80', 'https:': '443' };

interface Base {
  protocol: string;
  hostname: string;
  port: string;
  /** Without a trailing slash; '' admits every path. */
  path: string;
}

function parse(url: string): URL | null {
  try {
    return new URL(url);
  } catch {
    return null;
  }
}

function portOf(u: URL): string {
  return u.port || (DEFAULT_PORTS[u.protocol] ?? '');
}

/** Why an entry cannot serve as a base URL, or null when it can. */
export function allowListEntryError(entry: string): string | null {
  const u = parse(entry);
  if (!u) return `"${entry}" is not a URL`;
  if (!(u.protocol in DEFAULT_PORTS)) return `"${entry}" is not an http(s) URL`;
  if (u.username || u.password) return `"${entry}" holds user info`;
  return null;
}

/** Comma-separated entries, blanks dropped. */
export function splitAllowList(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function baseOf(entry: string): Base | null {
  const u = parse(entry);
  if (!u) return null;
  return {
    protocol: u.protocol,
    hostname: u.hostname,
    port: portOf(u),
    path: u.pathname.replace(/\/+$/, ''),
  };
}

export function callbackUrlAllowed(allowList: readonly string[], url: string): boolean {
  if (allowList.length === 0) return true;
  const u = parse(url);
  if (!u) return false;
  // URL parsing has already resolved `.` and `..` segments, so `/hooks/../admin` is `/admin` here.
  const path = u.pathname;
  return allowList.some((entry) => {
    const b = baseOf(entry);
    return (
      b !== null &&
      b.protocol === u.protocol &&
      b.hostname === u.hostname &&
      b.port === portOf(u) &&
      (b.path === '' || path === b.path || path.startsWith(`${b.path}/`))
    );
  });
}
