/**
 * How an API endpoint plugs into the contract layer: a name, whether it reads or writes,
 * whether it needs a scope, an input schema, and a handler that returns `data`.
 * Validation happens here, once; handlers receive typed input.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { z } from 'zod';
import type { Services } from '../services.js';
import type { Caller } from './auth.js';
import { ApiError } from './error-catalogue.js';
import type { ErrorName } from './error-catalogue.js';
import type { Permission } from '../operators/roles.js';
import type { ResolvedScope } from './scope.js';

export interface EndpointContext {
  services: Services;
  caller: Caller;
  /** Present when the endpoint is scoped; already checked against the caller's grants. */
  scope: ResolvedScope;
  requestId: string;
  /** The server as the caller reached it, e.g. http://jobfleet.example:8080 (for URLs in replies). */
  baseUrl: string;
  log: FastifyBaseLogger;
}

export interface EndpointSpec<S extends z.ZodType> {
  name: string;
  /** read: answers GET and POST (query string or body); write: POST only. */
  kind: 'read' | 'write';
  /**
   * What a person needs to call it (apps need only a grant on the scope): read (viewer), run
   * (operator: start and operate jobs) or manage (admin: rules, scripts, plans, crons, accounts).
   * Chosen once per endpoint; see operators/roles.ts.
   */
  permission: Permission;
  /** Only reachable as /api/v3/system/<name> (BK-JOB exposes some APIs there alone). */
  systemOnly?: boolean;
  /** Whether the request names a scope. Unscoped endpoints get a placeholder scope. */
  scoped?: boolean;
  /** Whether a call changes something and gets an audit entry; writes do unless they only read. */
  audited?: boolean;
  input: S;
  /** Error to answer when validation of a given top-level field fails, where BK-JOB uses a specific code. */
  fieldErrors?: Record<string, ErrorName>;
  handle(ctx: EndpointContext, input: z.output<S>): Promise<unknown>;
}

export interface Endpoint {
  name: string;
  kind: 'read' | 'write';
  permission: Permission;
  systemOnly: boolean;
  scoped: boolean;
  audited: boolean;
  /** The input schema (also read by the fuzz suite to learn each endpoint's fields). */
  input: z.ZodType;
  run(ctx: EndpointContext, raw: Record<string, unknown>): Promise<unknown>;
}

export function zodFailure(error: z.ZodError, fieldErrors: Record<string, ErrorName> = {}): ApiError {
  const issue = error.issues[0];
  if (!issue) return new ApiError('BAD_REQUEST', { reason: 'invalid input' });
  const field = issue.path.reduce<string>(
    (acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)),
    '',
  );
  const top = String(issue.path[0] ?? '');
  const missing = issue.code === 'invalid_type' && issue.input === undefined;
  const reason = missing ? `${field} is required` : `${field || 'body'}: ${issue.message}`;
  const specific = fieldErrors[top];
  if (specific) return new ApiError(specific, { param: field, reason });
  if (missing) return new ApiError('MISSING_PARAM_WITH_PARAM_NAME', { param: field });
  return new ApiError('BAD_REQUEST', { reason });
}

export function defineEndpoint<S extends z.ZodType>(spec: EndpointSpec<S>): Endpoint {
  return {
    name: spec.name,
    kind: spec.kind,
    permission: spec.permission,
    systemOnly: spec.systemOnly ?? false,
    scoped: spec.scoped ?? true,
    audited: spec.audited ?? spec.kind === 'write',
    input: spec.input,
    async run(ctx, raw) {
      const nul = nulAt(raw);
      if (nul !== undefined)
        throw new ApiError('BAD_REQUEST', { reason: `${nul || 'body'}: must not contain NUL characters` });
      let input = raw;
      let parsed = spec.input.safeParse(input, { reportInput: true });
      // BK-JOB's JSON binding reads `"field": null` as an absent field, and SDKs that serialise
      // every field of a request (Java beans, Python dicts holding None) rely on it. A null is
      // dropped only where the schema refuses it, so a field that takes null keeps its meaning
      // (save_cron's `end_time: null` clears the end). Each pass drops every refused null it
      // sees; a null hidden behind another error shows up once that one is gone.
      for (let pass = 0; !parsed.success && pass < 8; pass++) {
        const pruned = withoutRefusedNulls(input, parsed.error);
        if (pruned === input) break;
        input = pruned;
        parsed = spec.input.safeParse(input, { reportInput: true });
      }
      if (!parsed.success) throw zodFailure(parsed.error, spec.fieldErrors);
      return spec.handle(ctx, parsed.data);
    },
  };
}

/**
 * Where the first string holding NUL is in a request (`a.b[2]`), if any. No field of the API
 * takes one (file contents travel as base64), and PostgreSQL stores no NUL in text: an id or
 * filter holding one made an internal error there, whichever field it was in.
 */
function nulAt(value: unknown, at = ''): string | undefined {
  if (typeof value === 'string') return value.includes('\u0000') ? at : undefined;
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) {
      if (typeof v === 'number') continue; // host id lists: nothing to look at
      const found = nulAt(v, `${at}[${i}]`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const found = nulAt(k, at) ?? nulAt(v, at ? `${at}.${k}` : k);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/**
 * A copy of `raw` without the object members the issues found null (the same object when there
 * are none). Nulls inside arrays stay: an array element cannot be absent.
 */
function withoutRefusedNulls(raw: Record<string, unknown>, error: z.ZodError): Record<string, unknown> {
  const paths = error.issues.filter((i) => i.input === null && i.path.length > 0).map((i) => i.path);
  if (paths.length === 0) return raw;
  const copy = structuredClone(raw);
  let dropped = false;
  for (const path of paths) {
    let parent: unknown = copy;
    for (const key of path.slice(0, -1)) parent = (parent as Record<PropertyKey, unknown> | undefined)?.[key];
    const last = path[path.length - 1];
    if (parent === null || typeof parent !== 'object' || Array.isArray(parent)) continue;
    if (last === undefined || typeof last === 'symbol' || (parent as Record<string, unknown>)[last] !== null)
      continue;
    delete (parent as Record<string, unknown>)[last];
    dropped = true;
  }
  return dropped ? copy : raw;
}
