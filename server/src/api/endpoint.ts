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
      const parsed = spec.input.safeParse(raw, { reportInput: true });
      if (!parsed.success) throw zodFailure(parsed.error, spec.fieldErrors);
      return spec.handle(ctx, parsed.data);
    },
  };
}
