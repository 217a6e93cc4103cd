/**
 * Request log lines without secrets. ESB clients put `bk_app_secret` in the query string, and
 * any POST may carry a field there too (query values fill what the body lacks), so the URL a
 * request line shows has the values of secret-bearing parameters replaced.
 */
const SECRET_PARAM = /secret|password|token/i;

export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const params = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const rawKey = eq < 0 ? pair : pair.slice(0, eq);
      let key = rawKey;
      try {
        key = decodeURIComponent(rawKey.replace(/\+/g, ' '));
      } catch {
        // An undecodable key is judged as written.
      }
      return eq >= 0 && SECRET_PARAM.test(key) ? `${rawKey}=***` : pair;
    });
  return `${url.slice(0, q)}?${params.join('&')}`;
}

interface LoggedRequest {
  method: string;
  url: string;
  host?: string;
  ip?: string;
  socket?: { remotePort?: number | undefined } | null;
}

/** Replaces the logger's `req` serializer (Fastify's shows the raw URL). */
export function requestSerializer(req: LoggedRequest) {
  return {
    method: req.method,
    url: redactUrl(req.url),
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket?.remotePort,
  };
}
