/**
 * The one way the console talks to the server. Every reply under /api is the BK-JOB envelope;
 * a failure becomes an ApiFailure carrying the envelope's code and message, which pages show
 * as they are. The session rides on its HttpOnly cookie; writes also send the session's CSRF
 * token (given at sign-in and by /api/auth/me) in X-CSRF-Token.
 */

export interface Envelope<T> {
  result: boolean;
  code: number;
  message: string;
  data: T;
  request_id: string;
}

/** Codes the console reacts to (docs/api-errors.md). */
export const CODES = {
  userAuthFailed: 1238012,
  csrfCheckFailed: 1238013,
  permissionDenied: 1238014,
  resourceNotFound: 1240006,
} as const;

export class ApiFailure extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly requestId: string,
  ) {
    super(message);
    this.name = 'ApiFailure';
  }
}

/** Code 0 with no envelope: the server could not be reached or answered something else. */
export class NetworkFailure extends Error {
  override name = 'NetworkFailure';
}

let csrfToken = '';

export function setCsrfToken(token: string): void {
  csrfToken = token;
}

/** Called when the session turns out to be gone (expired, logged out elsewhere). */
let onSignedOut: () => void = () => undefined;

export function whenSignedOut(handler: () => void): void {
  onSignedOut = handler;
}

export type Params = Record<string, unknown>;

function queryString(params: Params): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    q.set(k, typeof v === 'object' ? JSON.stringify(v) : String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

export async function request<T>(
  method: string,
  path: string,
  body?: unknown,
  signal?: AbortSignal,
): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      ...(signal ? { signal } : {}),
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new NetworkFailure((err as Error).message);
  }
  let env: Envelope<T>;
  try {
    env = (await res.json()) as Envelope<T>;
  } catch {
    throw new NetworkFailure(`HTTP ${res.status} without a JSON reply`);
  }
  if (!env.result) {
    if (env.code === CODES.userAuthFailed) onSignedOut();
    throw new ApiFailure(env.code, env.message, env.request_id);
  }
  return env.data;
}

export const api = {
  get: <T>(path: string, params: Params = {}, signal?: AbortSignal) =>
    request<T>('GET', `${path}${queryString(params)}`, undefined, signal),
  post: <T>(path: string, body: unknown = {}) => request<T>('POST', path, body),
  delete: <T>(path: string) => request<T>('DELETE', path),
  /** A v3 read (GET with a query string; nested values as JSON, which the server reads back). */
  read: <T>(name: string, params: Params = {}, signal?: AbortSignal) =>
    request<T>('GET', `/api/v3/${name}${queryString(params)}`, undefined, signal),
  /**
   * Every item of a v3 list, a page at a time: BK-JOB's lists answer at most 1,000 items a
   * page, and a picker that read one page hid the rest of a large scope.
   */
  readAll: async <T>(name: string, params: Params = {}, signal?: AbortSignal, pageLength = 1000) => {
    const data: T[] = [];
    for (;;) {
      const page = await request<{ data: T[]; total: number }>(
        'GET',
        `/api/v3/${name}${queryString({ ...params, start: data.length, length: pageLength })}`,
        undefined,
        signal,
      );
      data.push(...page.data);
      if (page.data.length === 0 || data.length >= page.total) return { data, total: page.total };
    }
  },
  /** A v3 call with a JSON body: every write, and reads whose parameters are lists or objects. */
  call: <T>(name: string, body: Params = {}) => request<T>('POST', `/api/v3/${name}`, body),
  /** The URL of a v3 read, for EventSource and downloads. */
  url: (name: string, params: Params = {}) => `/api/v3/${name}${queryString(params)}`,
};
