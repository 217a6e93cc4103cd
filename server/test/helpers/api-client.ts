/** Calls a server the way BK-JOB clients do, and the admin API. */

export interface Envelope<T = unknown> {
  result: boolean;
  code: number;
  message: string;
  data: T;
  request_id: string;
  job_request_id: string;
  permission?: unknown;
}

export interface ApiCreds {
  appCode: string;
  appSecret: string;
  username?: string;
}

export type UrlForm = 'esb' | 'gateway' | 'system';

export function apiUrl(base: string, name: string, form: UrlForm = 'gateway'): string {
  switch (form) {
    case 'esb':
      return `${base}/api/c/compapi/v2/jobv3/${name}/`;
    case 'gateway':
      return `${base}/api/v3/${name}`;
    case 'system':
      return `${base}/api/v3/system/${name}`;
  }
}

/** POST with a JSON body (credentials in the X-Bkapi-Authorization header unless `inBody`). */
export async function post<T = unknown>(
  base: string,
  name: string,
  body: Record<string, unknown>,
  creds: ApiCreds,
  opts: { form?: UrlForm; inBody?: boolean } = {},
): Promise<Envelope<T>> {
  const auth = {
    bk_app_code: creds.appCode,
    bk_app_secret: creds.appSecret,
    bk_username: creds.username ?? 'tester',
  };
  const res = await fetch(apiUrl(base, name, opts.form), {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(opts.inBody ? {} : { 'x-bkapi-authorization': JSON.stringify(auth) }),
    },
    body: JSON.stringify(opts.inBody ? { ...auth, ...body } : body),
  });
  if (res.status !== 200) throw new Error(`HTTP ${res.status} from ${name}: ${await res.text()}`);
  return (await res.json()) as Envelope<T>;
}

/** A host's agent status (query_agent_info: 1 normal, 0 abnormal), undefined when not listed. */
export async function agentStatus(
  server: { url: string } & ApiCreds,
  scopeId: string,
  hostId: number,
): Promise<number | undefined> {
  const env = await post<{ agent_info_list: { bk_host_id: number; status: number }[] }>(
    server.url,
    'query_agent_info',
    { bk_scope_type: 'biz', bk_scope_id: scopeId, host_id_list: [hostId] },
    server,
    { form: 'system' },
  );
  if (!env.result) throw new Error(`query_agent_info: ${env.message}`);
  return env.data.agent_info_list.find((a) => a.bk_host_id === hostId)?.status;
}

/** The URL of a GET with every parameter in the query string, credentials included. */
export function getUrl(
  base: string,
  name: string,
  params: Record<string, string | number | boolean>,
  creds: ApiCreds,
  form?: UrlForm,
): string {
  const q = new URLSearchParams({
    bk_app_code: creds.appCode,
    bk_app_secret: creds.appSecret,
    bk_username: creds.username ?? 'tester',
    ...Object.fromEntries(Object.entries(params).map(([k, v]) => [k, String(v)])),
  });
  return `${apiUrl(base, name, form)}?${q}`;
}

/** GET with every parameter in the query string, credentials included, as ESB clients send them. */
export async function get<T = unknown>(
  base: string,
  name: string,
  params: Record<string, string | number | boolean>,
  creds: ApiCreds,
  opts: { form?: UrlForm } = {},
): Promise<Envelope<T>> {
  const res = await fetch(getUrl(base, name, params, creds, opts.form));
  if (res.status !== 200) throw new Error(`HTTP ${res.status} from ${name}: ${await res.text()}`);
  return (await res.json()) as Envelope<T>;
}

export async function admin<T = unknown>(
  base: string,
  token: string,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  body?: unknown,
): Promise<Envelope<T>> {
  const res = await fetch(`${base}/api/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return (await res.json()) as Envelope<T>;
}

/** Polls `fn` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  fn: () => Promise<T | undefined>,
  timeoutMs = 15_000,
  what = 'condition',
): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
