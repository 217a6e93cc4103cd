/**
 * The HTTP application, built apart from listen() so tests can drive it in-process.
 *
 * Every reply under /api is the BK-JOB envelope. Fastify's own failures (bad JSON, body too
 * large, unknown route) are turned into envelopes here too, so a client never sees an HTML
 * page or a stack trace.
 */
import crypto from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import Fastify, { LogController } from 'fastify';
import { AGENT_REGISTER_PATH } from '@jobfleet/protocol';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../services.js';
import { assertAdminToken, registerAdminRoutes } from '../admin/admin-routes.js';
import { registerAgentRoutes } from '../agent-link/registration.js';
import { registerFileRoutes } from '../files/file-routes.js';
import { authorizeCall, userCaller } from '../operators/api-access.js';
import { registerOperatorRoutes } from '../operators/operator-routes.js';
import { signedRequestOf } from './app-signature.js';
import { extractCredentials } from './auth.js';
import type { Caller } from './auth.js';
import { PUBLIC_SCRIPT_PERMISSION } from './endpoints/script-library.js';
import type { Endpoint, EndpointContext } from './endpoint.js';
import { failureEnvelope, rawSuccessEnvelope, successEnvelope, successEnvelopeAround } from './envelope.js';
import { RawJson, StreamedJson } from './raw-json.js';
import { queryParams } from './input-types.js';
import { StreamReply } from './stream-reply.js';
import { jsonShapeProblem } from './json-body-shape.js';
import { ApiError } from './error-catalogue.js';
import { CachedScopeLookup, resolveScope, ScopeFields } from './scope.js';
import { ClientRequestLock } from './client-request-lock.js';
import { zodFailure } from './endpoint.js';
import { RateLimited } from './rate-limits.js';
import { attribute, installWriteAudit } from '../audit/write-audit.js';
import { noteApiCode } from '../metrics/metrics.js';
import { recordRoutes, registerOpenApiRoute } from './openapi.js';
import { defaultConsoleDir, registerConsoleStatic } from '../console/console-static.js';
import { registerConsoleRoutes } from '../console/console-routes.js';

/** Turns anything thrown into an ApiError; unexpected errors are logged with their stack and hidden. */
export function toApiError(err: unknown, req: FastifyRequest): ApiError {
  if (err instanceof ApiError) return err;
  const fe = err as Partial<FastifyError>;
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError('BAD_REQUEST', {
        reason: `request body is larger than the limit of ${req.routeOptions.bodyLimit ?? 0} bytes`,
      });
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError('BAD_REQUEST', { reason: `body is not valid JSON (${fe.message ?? ''})` });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ApiError('BAD_REQUEST', { reason: fe.message ?? 'unreadable body' });
    default:
      break;
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new ApiError('BAD_REQUEST', { reason: fe.message ?? 'bad request' });
  }
  req.log.error({ err }, 'unhandled error');
  return new ApiError('INTERNAL_ERROR', { requestId: req.id });
}

/** A URL the router cannot take: bad percent-encoding, or a path segment over its length limit. */
function routerError(err: FastifyError, req: FastifyRequest): ApiError {
  const path = req.raw.url?.split('?')[0] ?? '';
  const shown = path.length > 120 ? `${path.slice(0, 120)}... (${path.length} characters)` : path;
  if (err.code === 'FST_ERR_MAX_PARAM_LENGTH')
    return new ApiError('BAD_REQUEST', {
      reason: `a path segment is longer than ${MAX_PATH_SEGMENT} characters: ${shown}`,
    });
  if (err.code === 'FST_ERR_BAD_URL')
    return new ApiError('BAD_REQUEST', { reason: `the path is not valid percent-encoding: ${shown}` });
  return toApiError(err, req);
}

/** A request id as BK-JOB writes them: 32 hex digits. */
const newRequestId = (): string => crypto.randomUUID().replace(/-/g, '');

/**
 * A request Node's HTTP parser refuses before any route sees it (headers and query string over
 * its 16 KiB limit, a malformed request line): the envelope with HTTP 200, as for any bad input,
 * then the connection is closed because the rest of the stream cannot be trusted.
 */
function clientError(err: Error & { code?: string }, socket: Duplex): void {
  if (!socket.writable) return void socket.destroy();
  const reason =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? 'the request line and headers are larger than 16 KiB; send long parameters as a POST body'
      : `the HTTP request cannot be read (${err.code ?? err.message})`;
  const body = JSON.stringify(failureEnvelope(new ApiError('BAD_REQUEST', { reason }), newRequestId()));
  socket.end(
    `HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** The router's limit on one path parameter (an API name, an upload token): find-my-way's default. */
const MAX_PATH_SEGMENT = 100;

function sendError(reply: FastifyReply, err: ApiError): FastifyReply {
  noteApiCode(reply.request, err.code);
  return reply
    .code(err.http)
    .header('content-type', 'application/json; charset=utf-8')
    .send(failureEnvelope(err, reply.request.id));
}

/** Request bodies as they arrived: a signed request signs these exact characters. */
const rawBodies = new WeakMap<FastifyRequest, string>();

/** Parses any request body as JSON: curl -d sends form content-type with a JSON body. */
function parseJsonBody(
  req: FastifyRequest,
  body: string,
  done: (err: Error | null, body?: unknown) => void,
): void {
  rawBodies.set(req, body);
  // A byte order mark some editors write is skipped, as Jackson skips it; the raw body keeps it.
  const text = body.charCodeAt(0) === 0xfeff ? body.slice(1) : body;
  if (text.trim() === '') return done(null, {});
  const problem = jsonShapeProblem(text);
  if (problem) return done(new ApiError('BAD_REQUEST', { reason: problem }));
  try {
    done(null, JSON.parse(text));
  } catch (err) {
    done(new ApiError('BAD_REQUEST', { reason: `body is not valid JSON (${(err as Error).message})` }));
  }
}

const API_PREFIXES = ['/api/c/compapi/v2/jobv3', '/api/v3', '/api/v3/system'] as const;
const API_ROUTES: ReadonlySet<string> = new Set(API_PREFIXES.map((p) => `${p}/:name`));
/** The BK-JOB endpoints served to the admin token (see below). */
const ADMIN_API_ROUTE = '/api/admin/v3/:name';

function objectParam(v: unknown, key: string): unknown {
  return v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[key] : undefined;
}

/** Waits for a rate-limit check; a flood past the limit gets one audit entry per window, not one per call. */
async function rateLimited(req: FastifyRequest, check: Promise<void>): Promise<void> {
  try {
    await check;
  } catch (err) {
    if (err instanceof RateLimited && !err.firstInWindow) attribute(req, { skip: true });
    throw err;
  }
}

export function buildHttpApp(services: Services, endpoints: readonly Endpoint[]): FastifyInstance {
  // A client polling a job every few milliseconds would log two lines per poll: calls of the
  // BK-JOB API that only read are not logged one by one (an error they meet still is).
  const reads = new Set(endpoints.filter((e) => e.kind === 'read').map((e) => e.name));
  const app = Fastify({
    loggerInstance: services.log,
    logController: new LogController({
      disableRequestLogging: (req) =>
        API_ROUTES.has(req.routeOptions.url ?? '') && reads.has(String(objectParam(req.params, 'name'))),
    }),
    bodyLimit: services.config.bodyLimitBytes,
    routerOptions: {
      ignoreTrailingSlash: true,
      ignoreDuplicateSlashes: true,
      maxParamLength: MAX_PATH_SEGMENT,
    },
    genReqId: newRequestId,
    // Behind a load balancer every client would share its address (one lockout for all) and
    // the session cookie would never be Secure: the balancers named say who and how.
    trustProxy: services.config.trustProxy === '' ? false : services.config.trustProxy,
    // Failures the router meets before any route runs answer with the envelope too.
    frameworkErrors: (err, req, reply) => sendError(reply, routerError(err, req)),
    clientErrorHandler: clientError,
  });

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, parseJsonBody);

  app.setErrorHandler((err, req, reply) => sendError(reply, toApiError(err, req)));
  recordRoutes(app);
  // The web console takes the GETs no route answers outside the server's prefixes (its client routes).
  const webConsole = registerConsoleStatic(app, services.config.consoleDir ?? defaultConsoleDir());
  app.setNotFoundHandler((req, reply) => {
    if (webConsole?.fallback(req, reply)) return reply;
    return sendError(
      reply,
      new ApiError('NOT_FOUND', { method: req.method, path: req.url.split('?')[0] ?? '' }),
    );
  });

  services.metrics.instrument(app, new Set(endpoints.map((e) => e.name)));
  services.metrics.route(app, services.config.metricsToken);
  registerOpenApiRoute(app, endpoints);

  app.get('/healthz', async (_req, reply) => {
    // A cluster member that is fenced or draining must get no new agents or calls (load balancers check this).
    const unhealthy = services.cluster?.unhealthy();
    if (unhealthy) return reply.code(503).send({ status: unhealthy });
    const ok = await services.store.healthy();
    return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'store unreachable' });
  });

  const byName = new Map(endpoints.map((e) => [e.name, e]));
  installWriteAudit(app, services.auditTrail, (req) => {
    const route = req.routeOptions.url ?? '';
    if (!API_ROUTES.has(route) && route !== ADMIN_API_ROUTE) return undefined;
    const endpoint = byName.get(String(objectParam(req.params, 'name')));
    return endpoint?.audited ? endpoint.name : null;
  });
  // Before anything else, authentication included: guessing an app secret, the admin token or
  // the bootstrap token is throttled like any other call from that address.
  // The route matched, not the raw URL: `//api/...` and `/%61pi/...` reach the same handlers.
  app.addHook('onRequest', async (req) => {
    const path = req.routeOptions.url ?? req.url;
    if (path.startsWith('/api/') || path.startsWith(AGENT_REGISTER_PATH))
      await rateLimited(req, services.limits.takeAddress(req.ip));
  });

  registerAdminRoutes(app, services);
  registerAgentRoutes(app, services);
  registerFileRoutes(app, services);
  registerOperatorRoutes(app, services);
  registerConsoleRoutes(app, services);

  const scopes = new CachedScopeLookup(services.store.inventory);
  const submissions = new ClientRequestLock(() => services.cluster?.store, services.log);
  for (const prefix of API_PREFIXES) {
    app.route({
      // Other methods are routed too, so that they get BK-JOB's 1240003 rather than a 404.
      method: ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'],
      url: `${prefix}/:name`,
      handler: async (req, reply) => {
        const name = (req.params as { name: string }).name;
        const endpoint = byName.get(name);
        if (!endpoint) throw new ApiError('BAD_REQUEST', { reason: `unknown API ${name}` });
        if (endpoint.systemOnly && prefix !== '/api/v3/system') {
          throw new ApiError('BAD_REQUEST', { reason: `${name} is only served as /api/v3/system/${name}` });
        }
        const method = methodServed(req);
        if (endpoint.kind === 'write' && method !== 'POST') {
          throw new ApiError('BAD_REQUEST', { reason: `${name} accepts POST only (got ${req.method})` });
        }
        if (method !== 'GET' && method !== 'POST') {
          throw new ApiError('BAD_REQUEST', {
            reason: `${name} accepts GET and POST only (got ${req.method})`,
          });
        }
        const raw = requestParams(req);
        const creds = extractCredentials(req.headers, raw);
        attribute(req, { appCode: creds.appCode?.slice(0, 128), username: creds.username?.slice(0, 128) });
        const caller =
          (await userCaller(services, req, raw)) ??
          (await services.auth.authenticate({
            ...creds,
            signed: signedRequestOf(req.method, req.url, rawBodies.get(req)),
          }));
        attribute(req, { appCode: caller.appCode, username: caller.username, verified: true });
        await rateLimited(req, services.limits.takeApp(caller.appCode));
        // A stream asks again while it lasts: the person's session or token, else the app.
        const recheck = async () =>
          (await userCaller(services, req, raw, false)) ?? services.auth.recheck(creds, caller.signedWith);
        return runEndpoint(endpoint, raw, caller, req, reply, recheck);
      },
    });
  }

  /**
   * The same endpoints for the admin token, acting as the platform (every scope, every
   * permission): how `jobfleet admin script|account ...` works without a BK app.
   */
  app.post('/api/admin/v3/:name', async (req, reply) => {
    assertAdminToken(req, services);
    const name = (req.params as { name: string }).name;
    const endpoint = byName.get(name);
    if (!endpoint) throw new ApiError('BAD_REQUEST', { reason: `unknown API ${name}` });
    const user = req.headers['x-bk-username'];
    const caller: Caller = {
      appCode: 'admin',
      username: typeof user === 'string' && user !== '' ? user : 'admin',
      scopes: 'all',
      permissions: [PUBLIC_SCRIPT_PERMISSION],
    };
    attribute(req, { username: caller.username, verified: true });
    return runEndpoint(endpoint, requestParams(req), caller, req, reply);
  });

  async function runEndpoint(
    endpoint: Endpoint,
    raw: Record<string, unknown>,
    caller: Caller,
    req: FastifyRequest,
    reply: FastifyReply,
    recheck?: () => Promise<Caller>,
  ) {
    const ctx: EndpointContext = {
      services,
      caller,
      scope: { type: 'biz', id: 0, name: '', bizIds: [] },
      requestId: req.id,
      baseUrl: `${req.protocol}://${req.headers.host ?? `127.0.0.1:${services.config.port}`}`,
      log: req.log,
    };
    if (endpoint.scoped) {
      const fields = ScopeFields.safeParse(raw, { reportInput: true });
      if (!fields.success) throw zodFailure(fields.error);
      ctx.scope = await resolveScope(scopes, fields.data);
      attribute(req, { scopeType: ctx.scope.type, scopeId: String(ctx.scope.id) });
    }
    await authorizeCall(scopes, caller, endpoint.permission, endpoint.scoped ? ctx.scope : undefined);
    const data =
      endpoint.kind === 'write'
        ? await submissions.run(caller.appCode, raw.client_request_id, () => endpoint.run(ctx, raw))
        : await endpoint.run(ctx, raw);
    if (data instanceof StreamReply) {
      // Whether the caller may still read the stream: a revoked grant, app, session or token ends it.
      const allowed = async (): Promise<boolean> => {
        if (!recheck) return true;
        try {
          await authorizeCall(
            scopes,
            await recheck(),
            endpoint.permission,
            endpoint.scoped ? ctx.scope : undefined,
          );
          return true;
        } catch (err) {
          if (err instanceof ApiError) return false;
          // The store could not be read: the stream goes on, and the next check asks again.
          req.log.warn({ err }, 'event stream access not checked again');
          return true;
        }
      };
      reply.hijack();
      await data.serve(req.raw, reply.raw, allowed).catch((err: unknown) => {
        // Before the stream started, the failure is an envelope like any other; after, the stream ends.
        const e = toApiError(err, req);
        if (reply.raw.headersSent) reply.raw.end();
        else
          reply.raw
            .writeHead(e.http, { 'content-type': 'application/json; charset=utf-8' })
            .end(JSON.stringify(failureEnvelope(e, req.id)));
      });
      return reply;
    }
    reply.header('content-type', 'application/json; charset=utf-8');
    if (data instanceof RawJson) return sendPieces(reply, rawSuccessEnvelope(data.bytes, req.id));
    if (data instanceof StreamedJson) return sendStreamed(req, reply, data.pieces);
    return reply.send(successEnvelope(data, req.id));
  }
  return app;
}

/**
 * A 200 reply of several buffers, written corked so that they leave in one writev with the
 * headers, none copied. Fastify sends one buffer only, so the reply is taken over (its
 * response listeners, which log the request and count it, still see it finish); the headers
 * set on it so far go along.
 */
function sendPieces(reply: FastifyReply, pieces: Buffer[]): FastifyReply {
  writeWhole(takenOver(reply), pieces);
  return reply;
}

/** The reply's response, taken over from Fastify with the headers set so far. */
function takenOver(reply: FastifyReply): ServerResponse {
  reply.hijack();
  const res = reply.raw;
  for (const [name, value] of Object.entries(reply.getHeaders()))
    if (value !== undefined) res.setHeader(name, value);
  return res;
}

function writeWhole(res: ServerResponse, pieces: Buffer[]): void {
  res.setHeader(
    'content-length',
    pieces.reduce((n, p) => n + p.length, 0),
  );
  res.writeHead(200);
  res.cork();
  for (const p of pieces) res.write(p);
  res.end();
  res.uncork();
}

/**
 * A 200 reply written as `pieces` come, each flushed before the next is asked for (see
 * StreamedJson), in chunked transfer encoding: its length is known only at its end. A client
 * that goes away stops the making of pieces; a failure to make one cuts the reply short (the
 * client sees a reply that never ended, as for any broken connection) and is logged.
 * A reply of one piece (a window of a log, a short log) goes out whole, with its length, as soon
 * as it is made: held while a client takes it, a request's buffers lived long enough to be
 * moved to V8's old generation, and reading 128 windows of 512 KiB in a row made the server
 * collect its whole heap at every read on a busy machine.
 */
function sendStreamed(req: FastifyRequest, reply: FastifyReply, pieces: AsyncIterable<Buffer>): FastifyReply {
  const res = takenOver(reply);
  const [head, tail] = successEnvelopeAround(req.id);
  const it = pieces[Symbol.asyncIterator]();
  void (async () => {
    const first = await it.next();
    // Copied before the next piece is asked for, which may be written into the same memory.
    const firstPiece = first.done ? Buffer.alloc(0) : Buffer.copyBytesFrom(first.value);
    const second = first.done ? first : await it.next();
    if (second.done) return writeWhole(res, [head, firstPiece, tail]);
    res.writeHead(200);
    for (const piece of [head, firstPiece, second.value])
      if (!(await flushed(res, piece))) return await it.return?.();
    for await (const piece of { [Symbol.asyncIterator]: () => it }) if (!(await flushed(res, piece))) return;
    res.end(tail);
  })().catch((err: unknown) => {
    req.log.warn({ err }, 'reply cut short');
    res.destroy();
  });
  return reply;
}

/** Whether `piece` was written to the socket: false when the client went away first. */
function flushed(res: ServerResponse, piece: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    if (res.destroyed) return resolve(false);
    const gone = () => resolve(false);
    res.once('close', gone);
    res.write(piece, (err) => {
      res.off('close', gone);
      resolve(!err);
    });
  });
}

/**
 * The method a request is served as. HEAD is a GET whose answer keeps its headers (Content-Length
 * included) and drops its body: Node's response sends no body for it, streamed replies included.
 */
function methodServed(req: FastifyRequest): string {
  return req.method === 'HEAD' ? 'GET' : req.method;
}

/** GET reads the query string; POST reads the body, with query values filling what the body lacks. */
function requestParams(req: FastifyRequest): Record<string, unknown> {
  const query = queryParams((req.query ?? {}) as Record<string, unknown>);
  if (methodServed(req) === 'GET') return query;
  const body = req.body;
  if (body === undefined) return query;
  // A literal `null` body is as wrong as `[]` or `42`: only an object can carry parameters.
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new ApiError('BAD_REQUEST', { reason: 'body must be a JSON object' });
  return { ...query, ...(body as Record<string, unknown>) };
}
