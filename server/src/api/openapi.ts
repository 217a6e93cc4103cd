/**
 * The OpenAPI 3.1 description of the server, served at /api/openapi.json, generated from the
 * zod schemas the routes validate with (z.toJSONSchema), so it cannot drift from what the
 * server accepts. Every route the HTTP app registers is recorded as it is registered; a test
 * checks that each one is described here (a new route without a description fails it).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ADMIN_SCHEMAS } from '../admin/admin-routes.js';
import { DrainRequest } from '../cluster/cluster-routes.js';
import { AGENT_TRUST_SCHEMAS } from '../admin/agent-trust-routes.js';
import { INVENTORY_LIFECYCLE_SCHEMAS } from '../admin/inventory-lifecycle-routes.js';
import { AuditQuery } from '../admin/audit-routes.js';
import { StepLogExportQuery } from '../console/step-log-export.js';
import { OPERATOR_SCHEMAS } from '../operators/operator-routes.js';
import { CONSOLE_SCHEMAS } from '../console/console-routes.js';
import type { Endpoint } from './endpoint.js';
import { zLong } from './input-types.js';

export interface RecordedRoute {
  method: string;
  url: string;
}

const recorded = new WeakMap<FastifyInstance, RecordedRoute[]>();

/** Starts recording every route registered on `app` from now on (call before any route). */
export function recordRoutes(app: FastifyInstance): void {
  const routes: RecordedRoute[] = [];
  recorded.set(app, routes);
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) if (method !== 'HEAD') routes.push({ method, url: r.url });
  });
}

export function recordedRoutes(app: FastifyInstance): readonly RecordedRoute[] {
  return recorded.get(app) ?? [];
}

/** Fastify's `/x/:id` as OpenAPI's `/x/{id}`. */
export function openApiPath(url: string): string {
  return url.replace(/:([A-Za-z_]+)/g, '{$1}').replace(/\*$/, '{name}');
}

type JsonSchema = Record<string, unknown>;

/** A request schema; `required` recomputed from what the schema really refuses when absent. */
function requestSchema(schema: z.ZodType): JsonSchema {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  delete json.$schema;
  if (schema instanceof z.ZodObject) {
    const shape = schema.shape as Record<string, z.ZodType>;
    const required = Object.keys(shape).filter((k) => !shape[k]?.safeParse(undefined).success);
    if (required.length > 0) json.required = required;
    else delete json.required;
  }
  return json;
}

const ENVELOPE: JsonSchema = {
  type: 'object',
  required: ['result', 'code', 'message', 'data', 'request_id'],
  properties: {
    result: { type: 'boolean' },
    code: { type: 'integer', description: '0 on success; otherwise a code from docs/api-errors.md' },
    message: { type: 'string' },
    data: {},
    request_id: { type: 'string' },
    job_request_id: { type: 'string' },
  },
};

const envelopeReply = {
  '200': {
    description: 'The BK-JOB envelope (HTTP 200 for failures too, as BK-JOB answers)',
    content: { 'application/json': { schema: { $ref: '#/components/schemas/Envelope' } } },
  },
};

const SCOPE_PARAMS = ['bk_scope_type', 'bk_scope_id', 'bk_biz_id'];

function queryParameters(schema: JsonSchema): JsonSchema[] {
  const props = (schema.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((schema.required ?? []) as string[]);
  return Object.entries(props).map(([name, s]) => ({
    name,
    in: 'query',
    required: required.has(name),
    // GET carries every value as text; numbers and booleans are read from it.
    schema: s,
    ...(typeof s.type === 'string' && s.type !== 'string' ? { style: 'form', explode: true } : {}),
  }));
}

/** The v3 API: one path per endpoint (the gateway form), GET for reads, POST for all. */
function endpointPaths(endpoints: readonly Endpoint[]): Record<string, JsonSchema> {
  const paths: Record<string, JsonSchema> = {};
  for (const e of endpoints) {
    const schema = requestSchema(e.input);
    if (e.scoped) {
      const props = (schema.properties ?? {}) as Record<string, JsonSchema>;
      schema.properties = {
        bk_scope_type: { type: 'string', enum: ['biz', 'biz_set'] },
        bk_scope_id: { type: 'string' },
        bk_biz_id: { type: 'integer', description: 'older form of bk_scope_type=biz + bk_scope_id' },
        ...props,
      };
    }
    const stream = e.name.endsWith('_event_stream');
    const op = (method: 'get' | 'post') => ({
      operationId: method === 'get' && e.kind === 'read' ? e.name : `${e.name}_${method}`,
      summary: e.name,
      tags: [e.name.startsWith('get_') || e.name.startsWith('batch_get_') ? 'read' : 'write'],
      security: [{ bkapiAuthorization: [] }, { appCodeAndSecret: [] }],
      description: `Also served as /api/c/compapi/v2/jobv3/${e.name}/ and /api/v3/system/${e.name}.${
        e.scoped ? ` Scoped: ${SCOPE_PARAMS.join(', ')}.` : ''
      }`,
      ...(method === 'get'
        ? { parameters: queryParameters(schema) }
        : { requestBody: { required: true, content: { 'application/json': { schema } } } }),
      responses: stream
        ? {
            '200': {
              description:
                'Server-Sent Events (see docs/event-stream.md); failures before the stream starts are envelopes',
              content: { 'text/event-stream': { schema: { type: 'string' } } },
            },
            '204': { description: 'Resumed after the last event of a finished job: nothing more will come' },
          }
        : envelopeReply,
    });
    const path = e.systemOnly ? `/api/v3/system/${e.name}` : `/api/v3/${e.name}`;
    paths[path] = e.kind === 'read' ? { get: op('get'), post: op('post') } : { post: op('post') };
  }
  return paths;
}

const A = ADMIN_SCHEMAS;
const bizRequired = z.object({ bk_biz_id: zLong });

/** Routes outside the v3 API, each with the schema its handler parses. */
const O = OPERATOR_SCHEMAS;

const OTHER_ROUTES: {
  method: 'get' | 'post' | 'put' | 'delete';
  path: string;
  summary: string;
  body?: z.ZodType;
  query?: z.ZodType;
  security?: string;
  content?: string;
  /** For routes people call: the role class they need (`public`: no sign-in at all). */
  permission?: 'public' | 'read' | 'run' | 'manage';
}[] = [
  { method: 'get', path: '/healthz', summary: 'liveness: 200 when the store answers' },
  {
    method: 'get',
    path: '/metrics',
    summary: 'Prometheus metrics',
    security: 'metricsToken',
    content: 'text/plain',
  },
  { method: 'get', path: '/api/openapi.json', summary: 'this document' },
  { method: 'post', path: '/agent/v1/register', summary: 'an agent registers with the bootstrap token' },
  {
    method: 'get',
    path: '/agent/v1/files/{serveId}/{name}',
    summary: 'a file the server offers to the targets of a file step (per-offer token)',
  },
  {
    method: 'put',
    path: '/api/upload/{token}',
    summary: 'a local upload (URL from generate_local_file_upload_url)',
  },
  {
    method: 'post',
    path: '/api/upload/{token}',
    summary: 'a local upload (URL from generate_local_file_upload_url)',
  },
  { method: 'get', path: '/api/admin/biz', summary: 'list businesses', security: 'adminToken' },
  {
    method: 'get',
    path: '/api/admin/cluster',
    summary:
      'the servers of the cluster: age, state, agents held and jobs owned ({cluster:false} on a single server)',
    security: 'adminToken',
  },
  {
    method: 'post',
    path: '/api/admin/cluster/drain',
    summary:
      'drain a live server of the cluster (id or URL): it hands its jobs and agents to the others and exits; answers once it has left',
    body: DrainRequest,
    security: 'adminToken',
  },
  {
    method: 'post',
    path: '/api/admin/biz',
    summary: 'create a business',
    body: A.biz,
    security: 'adminToken',
  },
  {
    method: 'post',
    path: '/api/admin/biz_set',
    summary: 'create a business set',
    body: A.bizSet,
    security: 'adminToken',
  },
  {
    method: 'get',
    path: '/api/admin/hosts',
    summary:
      'list hosts in id order with their module ids (with limit, 1..5000: one page after after_id, and next_after_id)',
    query: A.hostsQuery,
    security: 'adminToken',
  },
  { method: 'post', path: '/api/admin/hosts', summary: 'add a host', body: A.host, security: 'adminToken' },
  {
    method: 'post',
    path: '/api/admin/hosts/{id}/biz',
    summary: "set a host's business",
    body: A.hostBiz,
    security: 'adminToken',
  },
  {
    method: 'get',
    path: '/api/admin/topology',
    summary: 'sets and modules',
    query: bizRequired,
    security: 'adminToken',
  },
  {
    method: 'post',
    path: '/api/admin/topology/sets',
    summary: 'create a set',
    body: A.set,
    security: 'adminToken',
  },
  {
    method: 'post',
    path: '/api/admin/topology/modules',
    summary: 'create a module',
    body: A.module,
    security: 'adminToken',
  },
  {
    method: 'post',
    path: '/api/admin/topology/modules/{id}/hosts',
    summary: 'put hosts in a module',
    body: A.moduleHosts,
    security: 'adminToken',
  },
  {
    method: 'get',
    path: '/api/admin/dynamic_groups',
    summary: 'list dynamic groups',
    query: bizRequired,
    security: 'adminToken',
  },
  {
    method: 'post',
    path: '/api/admin/dynamic_groups',
    summary: 'create a dynamic group',
    body: A.dynamicGroup,
    security: 'adminToken',
  },
  {
    method: 'get',
    path: '/api/admin/accounts',
    summary: 'list accounts',
    query: bizRequired,
    security: 'adminToken',
  },
  {
    method: 'post',
    path: '/api/admin/accounts',
    summary: 'create an account',
    body: A.account,
    security: 'adminToken',
  },
  {
    method: 'post',
    path: '/api/admin/v3/{name}',
    summary: 'any v3 API above (its body as there), called with the admin token, acting as the platform',
    security: 'adminToken',
  },
  {
    method: 'get',
    path: '/api/admin/audit',
    summary: 'the audit log, newest first',
    query: AuditQuery,
    security: 'adminToken',
  },
  {
    method: 'post',
    path: '/api/admin/agents/{id}/revoke',
    summary: "revoke a host's agent",
    security: 'adminToken',
  },
  {
    method: 'post',
    path: '/api/admin/agents/{id}/readmit',
    summary: 'readmit a revoked agent',
    security: 'adminToken',
  },
  {
    method: 'post',
    path: '/api/admin/hosts/{id}/identity',
    summary: "change a host's cloud and IP",
    body: AGENT_TRUST_SCHEMAS.identity,
    security: 'adminToken',
  },
  {
    method: 'post',
    path: '/api/admin/agents/bootstrap-token',
    summary: 'rotate the agent bootstrap token',
    body: AGENT_TRUST_SCHEMAS.bootstrap,
    security: 'adminToken',
  },
  {
    method: 'post',
    path: '/api/auth/login',
    summary: 'sign in: a session cookie and its CSRF token',
    body: O.login,
  },
  { method: 'post', path: '/api/auth/logout', summary: 'end this session', security: 'userSession' },
  { method: 'get', path: '/api/auth/me', summary: 'who is signed in, with roles', security: 'userSession' },
  {
    method: 'post',
    path: '/api/auth/password',
    summary: 'change my password',
    body: O.password,
    security: 'userSession',
  },
  { method: 'get', path: '/api/auth/tokens', summary: 'my personal API tokens', security: 'userSession' },
  {
    method: 'post',
    path: '/api/auth/tokens',
    summary: 'create a personal API token (shown once)',
    body: O.token,
    security: 'userSession',
  },
  { method: 'delete', path: '/api/auth/tokens/{id}', summary: 'revoke my token', security: 'userSession' },
  { method: 'get', path: '/api/admin/users', summary: 'list users', security: 'adminToken' },
  {
    method: 'post',
    path: '/api/admin/users',
    summary: 'create a user',
    body: O.user,
    security: 'adminToken',
  },
  { method: 'get', path: '/api/admin/users/{name}', summary: 'one user with roles', security: 'adminToken' },
  {
    method: 'post',
    path: '/api/admin/users/{name}/roles',
    summary: "set a user's roles per scope",
    body: O.roles,
    security: 'adminToken',
  },
  {
    method: 'post',
    path: '/api/admin/users/{name}/password',
    summary: "reset a user's password",
    body: O.reset,
    security: 'adminToken',
  },
  { method: 'delete', path: '/api/admin/users/{name}', summary: 'delete a user', security: 'adminToken' },
  {
    method: 'get',
    path: '/api/admin/users/{name}/tokens',
    summary: "a user's personal tokens",
    security: 'adminToken',
  },
  { method: 'delete', path: '/api/admin/tokens/{id}', summary: 'revoke any token', security: 'adminToken' },
  { method: 'get', path: '/api/admin/crons', summary: 'list crons of every scope', security: 'adminToken' },
  { method: 'post', path: '/api/admin/crons/{id}/enable', summary: 'enable a cron', security: 'adminToken' },
  {
    method: 'post',
    path: '/api/admin/crons/{id}/disable',
    summary: 'disable a cron',
    security: 'adminToken',
  },
  { method: 'get', path: '/api/admin/apps', summary: 'list apps', security: 'adminToken' },
  {
    method: 'post',
    path: '/api/admin/apps',
    summary: 'create or update an app',
    body: A.app,
    security: 'adminToken',
  },
  {
    method: 'delete',
    path: '/api/admin/hosts/{id}',
    summary: 'remove a host that left the fleet',
    security: 'adminToken',
  },
  {
    method: 'get',
    path: '/api/admin/scopes/{type}/{id}/time_zone',
    summary: "a business's or business set's time zone",
    security: 'adminToken',
  },
  {
    method: 'post',
    path: '/api/admin/scopes/{type}/{id}/time_zone',
    summary: "set a business's or business set's time zone (crons default to it)",
    body: INVENTORY_LIFECYCLE_SCHEMAS.timeZone,
    security: 'adminToken',
  },
  {
    method: 'get',
    path: '/{name}',
    summary: "the web console's page, for any path outside /api, /agent, /metrics, /healthz and /assets",
    content: 'text/html',
    permission: 'public',
  },
  {
    method: 'get',
    path: '/assets/{name}',
    summary: "the web console's scripts and styles (hashed names, cached for good)",
    content: 'application/octet-stream',
    permission: 'public',
  },
  {
    method: 'get',
    path: '/api/console/scopes',
    summary: 'the scopes the signed-in person can open, with their role in each',
    security: 'userSession',
    permission: 'read',
  },
  {
    method: 'get',
    path: '/api/console/locate',
    summary: "the scope of a job instance or job plan (for BK-JOB's deep links)",
    query: CONSOLE_SCHEMAS.locate,
    security: 'userSession',
    permission: 'read',
  },
  {
    method: 'get',
    path: '/api/console/time-zone',
    summary:
      'the time zone crons of a scope run in when they name none (the scope default, else the server zone)',
    query: CONSOLE_SCHEMAS.timeZone,
    security: 'userSession',
    permission: 'read',
  },
  {
    method: 'get',
    path: '/api/console/step-log-export',
    summary: "every host's log of one attempt of a script step, as a .tar.gz streamed while it is packed",
    query: StepLogExportQuery,
    security: 'userSession',
    permission: 'read',
    content: 'application/gzip',
  },
];

function otherPaths(): Record<string, Record<string, JsonSchema>> {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const r of OTHER_ROUTES) {
    const params = [...r.path.matchAll(/\{([A-Za-z_]+)\}/g)].map((m) => ({
      name: m[1],
      in: 'path',
      required: true,
      schema: { type: 'string' },
    }));
    (paths[r.path] ??= {})[r.method] = {
      operationId: `${r.method}_${r.path.replace(/[^A-Za-z0-9]+/g, '_').replace(/^_|_$/g, '')}`,
      summary: r.summary,
      ...(r.security ? { security: [{ [r.security]: [] }] } : {}),
      ...(r.permission ? { 'x-jobfleet-permission': r.permission } : {}),
      parameters: [...params, ...(r.query ? queryParameters(requestSchema(r.query)) : [])],
      ...(r.body
        ? {
            requestBody: {
              required: true,
              content: { 'application/json': { schema: requestSchema(r.body) } },
            },
          }
        : {}),
      responses: r.content
        ? { '200': { description: 'ok', content: { [r.content]: { schema: { type: 'string' } } } } }
        : { '200': { description: 'ok', content: { 'application/json': { schema: {} } } } },
    };
  }
  return paths;
}

export function openApiDocument(endpoints: readonly Endpoint[], version: string): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Jobfleet API',
      version,
      description:
        "BK-JOB v3 compatible API with Jobfleet's extensions, the admin API and the server's own routes. " +
        'Generated from the schemas the server validates requests with.',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    paths: { ...endpointPaths(endpoints), ...otherPaths() },
    components: {
      schemas: { Envelope: ENVELOPE },
      securitySchemes: {
        bkapiAuthorization: {
          type: 'apiKey',
          in: 'header',
          name: 'X-Bkapi-Authorization',
          description: 'JSON: {"bk_app_code": ..., "bk_app_secret": ..., "bk_username": ...}',
        },
        appCodeAndSecret: {
          type: 'apiKey',
          in: 'query',
          name: 'bk_app_secret',
          description: 'bk_app_code and bk_app_secret in the query string or the JSON body',
        },
        adminToken: {
          type: 'http',
          scheme: 'bearer',
          description: "the admin token, or a platform admin's personal token or session",
        },
        userSession: {
          type: 'apiKey',
          in: 'cookie',
          name: 'jobfleet_session',
          description:
            'a console session (writes also need the CSRF token header), or a personal token as bearer',
        },
        metricsToken: {
          type: 'http',
          scheme: 'bearer',
          description: 'the metrics token, when one is configured',
        },
      },
    },
  };
}

/** Serves the document (built once, on first request). */
export function registerOpenApiRoute(app: FastifyInstance, endpoints: readonly Endpoint[]): void {
  let json: string | undefined;
  app.get('/api/openapi.json', async (_req, reply) => {
    json ??= JSON.stringify(openApiDocument(endpoints, '0.1.0'));
    return reply.header('content-type', 'application/json; charset=utf-8').send(json);
  });
}
