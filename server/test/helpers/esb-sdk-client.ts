/**
 * A client that puts on the wire exactly what the BlueKing ESB Python SDK
 * (`blueking.component`, ComponentClient and ComponentClientWithSignature) sends through
 * Python `requests`:
 * - GET: every parameter in the query string as `str(value)` (`True`, not `true`), the common
 *   arguments (bk_app_code, bk_username and, without signatures, bk_app_secret) first;
 * - POST: `data=json.dumps({...common args, ...data})`, so Python's separators (`", "`, `": "`),
 *   non-ASCII escaped, and no Content-Type header;
 * - with signatures: no secret anywhere; bk_timestamp, bk_nonce and bk_signature in the query
 *   string (for a POST nothing else is there), the signature computed as the SDK's
 *   get_signature does.
 * The signature is computed here from the algorithm, independently of the server's code.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import { apiUrl } from './api-client.js';
import type { Envelope, UrlForm } from './api-client.js';

export type PyValue = string | number | boolean | null | PyValue[] | { [key: string]: PyValue };

/** Python's str() of a parameter value, as `requests` puts it in a query string. */
export function pyStr(v: PyValue): string {
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (v === null) return 'None';
  return String(v);
}

/** Python's json.dumps with its defaults. */
export function pyJsonDumps(v: PyValue): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean' || typeof v === 'number') return JSON.stringify(v);
  if (typeof v === 'string') {
    return JSON.stringify(v).replace(
      /[\u007f-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
  }
  if (Array.isArray(v)) return `[${v.map(pyJsonDumps).join(', ')}]`;
  return `{${Object.entries(v)
    .map(([k, x]) => `${pyJsonDumps(k)}: ${pyJsonDumps(x)}`)
    .join(', ')}}`;
}

/** urllib's quote_plus, which `requests` encodes query values with. */
function quotePlus(s: string): string {
  return encodeURIComponent(s)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, '+');
}

/** The SDK's get_signature. */
function sdkSignature(
  method: string,
  path: string,
  secret: string,
  params: [string, string][],
  data?: string,
): string {
  const kwargs = [...params];
  if (data) kwargs.push(['data', data]);
  kwargs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const original = `${method}${path}?${kwargs.map(([k, v]) => `${k}=${v}`).join('&')}`;
  return crypto.createHmac('sha1', Buffer.from(secret, 'utf8')).update(original, 'utf8').digest('base64');
}

/** A request exactly as it went on the wire, to send again byte for byte. */
export interface WireRequest {
  method: 'GET' | 'POST';
  /** Path and query string. */
  target: string;
  body: string | undefined;
}

export interface EsbSdkOptions {
  appCode: string;
  appSecret: string;
  username: string;
  /** ComponentClientWithSignature instead of ComponentClient. */
  signature?: boolean;
  /** Seconds added to this machine's clock when signing (a client with a wrong clock). */
  clockSkewS?: number;
  /** The SDK calls the ESB form; the same client pointed at the gateway forms. */
  form?: UrlForm;
}

export class EsbSdkClient {
  /** The last request sent, for replaying it. */
  last: WireRequest | undefined;

  constructor(
    private readonly baseUrl: string,
    private readonly opts: EsbSdkOptions,
  ) {}

  /** `client.jobv3.<name>(params)` for an API the SDK declares GET. */
  get<T = unknown>(name: string, params: Record<string, PyValue>): Promise<Envelope<T>> {
    return this.call('GET', name, params);
  }

  /** `client.jobv3.<name>(data)` for an API the SDK declares POST. */
  post<T = unknown>(name: string, data: Record<string, PyValue>): Promise<Envelope<T>> {
    return this.call('POST', name, data);
  }

  async call<T>(method: 'GET' | 'POST', name: string, args: Record<string, PyValue>): Promise<Envelope<T>> {
    const path = apiUrl('', name, this.opts.form ?? 'esb');
    const common: Record<string, PyValue> = {
      bk_app_code: this.opts.appCode,
      bk_username: this.opts.username,
    };
    if (!this.opts.signature) common.bk_app_secret = this.opts.appSecret;
    let params: [string, string][] = [];
    let body: string | undefined;
    if (method === 'GET') params = Object.entries({ ...common, ...args }).map(([k, v]) => [k, pyStr(v)]);
    else body = pyJsonDumps({ ...common, ...args });
    if (this.opts.signature) {
      const now = Math.floor(Date.now() / 1000) + (this.opts.clockSkewS ?? 0);
      params.push(['bk_timestamp', String(now)], ['bk_nonce', String(crypto.randomInt(1, 2147483647))]);
      params.push(['bk_signature', sdkSignature(method, path, this.opts.appSecret, params, body)]);
    }
    const query = params.map(([k, v]) => `${quotePlus(k)}=${quotePlus(v)}`).join('&');
    return this.send<T>({ method, target: query ? `${path}?${query}` : path, body });
  }

  /** Sends a request as `requests` does: its usual headers, a body with no Content-Type. */
  send<T = unknown>(req: WireRequest): Promise<Envelope<T>> {
    this.last = req;
    const url = new URL(this.baseUrl);
    const headers: Record<string, string> = {
      'User-Agent': 'python-requests/2.31.0',
      'Accept-Encoding': 'gzip, deflate',
      Accept: '*/*',
      Connection: 'keep-alive',
    };
    if (req.body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(req.body));
    return new Promise((resolve, reject) => {
      const r = http.request(
        { host: url.hostname, port: url.port, method: req.method, path: req.target, headers, agent: false },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => {
            if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}: ${text}`));
            try {
              resolve(JSON.parse(text) as Envelope<T>);
            } catch (err) {
              reject(err instanceof Error ? err : new Error(String(err)));
            }
          });
        },
      );
      r.on('error', reject);
      r.end(req.body);
    });
  }
}
