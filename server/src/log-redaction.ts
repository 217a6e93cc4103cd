/**
 * Keeps secrets out of the server log. Clients put credentials where BK-JOB lets them: the query
 * string of a GET (`?bk_app_secret=...`), the X-Bkapi-Authorization header, the body; and a
 * sensitive `script_param` may come in the query string too. Every log line passes through
 * here: request URLs, objects (headers, bodies, errors) and message text alike.
 *
 * What counts as secret: keys naming a secret, token, password, signature, cookie or
 * authorization, and `script_param` / `scriptParam` when the request marks it sensitive.
 */
import pino from 'pino';
import type { LoggerOptions } from 'pino';

export const REDACTED = '***';

const SECRET_KEY = /secret|token|passw|signature|authorization|cookie|server_?key/i;
const SENSITIVE_FLAG = /^(1|true)$/i;

function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

const QUERY_PAIR = /([?&;,\s(]|^)([^=&?#\s"(]+)=([^&#\s"]*)/g;
const JSON_PAIR = /"([^"\\]+)"\s*:\s*"((?:[^"\\]|\\.)*)"/g;
const BEARER = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/g;
/** Upload URLs carry their token in the path. */
const UPLOAD_TOKEN = /(\/api\/upload\/)[^/?#\s"]+/g;

/** Redacts secret values in free text: query strings, JSON fragments and bearer credentials. */
export function redactText(text: string): string {
  if (!/[="]|Bearer|Basic|\/api\/upload\//.test(text)) return text;
  const sensitiveParam = /is_param_sensitive"?\s*[=:]\s*"?(1|true)\b/i.test(text);
  const secretValue = (key: string) =>
    isSecretKey(key) || (sensitiveParam && /^script_?param$/i.test(decodeSafe(key)));
  return text
    .replace(QUERY_PAIR, (all, sep: string, key: string) =>
      secretValue(decodeSafe(key)) ? `${sep}${key}=${REDACTED}` : all,
    )
    .replace(JSON_PAIR, (all, key: string) => (secretValue(key) ? `"${key}":"${REDACTED}"` : all))
    .replace(BEARER, (_all, scheme: string) => `${scheme} ${REDACTED}`)
    .replace(UPLOAD_TOKEN, (_all, prefix: string) => `${prefix}${REDACTED}`);
}

function decodeSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function isSensitiveMarked(obj: Record<string, unknown>): boolean {
  const flag = obj.is_param_sensitive ?? obj.isParamSensitive;
  return flag === true || flag === 1 || (typeof flag === 'string' && SENSITIVE_FLAG.test(flag));
}

/** A copy of `value` with secret fields and secret text redacted. */
export function redactValue(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (typeof value === 'string') return redactText(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth > 8 || seen.has(value)) return '[...]';
  seen.add(value);
  if (Buffer.isBuffer(value)) return value;
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1, seen));
  if (value instanceof Error) return redactError(value);
  const obj = value as Record<string, unknown>;
  const sensitive = isSensitiveMarked(obj);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (
      v !== undefined &&
      v !== null &&
      v !== '' &&
      (isSecretKey(k) || (sensitive && /^script_?param$/i.test(k)))
    )
      out[k] = REDACTED;
    else out[k] = redactValue(v, depth + 1, seen);
  }
  return out;
}

function redactError(err: Error): unknown {
  return redactValue(pino.stdSerializers.err(err));
}

interface LoggedRequest {
  method?: string;
  url?: string;
  host?: string;
  hostname?: string;
  ip?: string;
  socket?: { remoteAddress?: string; remotePort?: number };
}

/** pino options that apply the redaction to every line the server writes. */
export function redactingLogOptions(): Pick<LoggerOptions, 'serializers' | 'formatters' | 'hooks'> {
  return {
    serializers: {
      // Replaces Fastify's request serializer, which logs the URL with its query string.
      req: (req: LoggedRequest) => ({
        method: req.method,
        url: redactText(req.url ?? ''),
        host: req.host ?? req.hostname,
        remoteAddress: req.ip ?? req.socket?.remoteAddress,
        remotePort: req.socket?.remotePort,
      }),
      // `err` is an Error in most lines, a message string in some.
      err: (err: unknown) => (err instanceof Error ? redactError(err) : redactValue(err)),
    },
    formatters: {
      log: (obj) => {
        const out: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(obj)) {
          // The serializers above handle these (they run after this formatter).
          if (k === 'req' || k === 'res' || k === 'err') out[k] = v;
          else if (isSecretKey(k) && v !== undefined && v !== null && v !== '') out[k] = REDACTED;
          else out[k] = redactValue(v);
        }
        return out;
      },
    },
    hooks: {
      // Message text (and printf-style arguments) can carry a URL or a header value too.
      logMethod(args, method) {
        const redacted = args.map((a) => (typeof a === 'string' ? redactText(a) : a)) as Parameters<
          typeof method
        >;
        method.apply(this, redacted);
      },
    },
  };
}
