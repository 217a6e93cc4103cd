/**
 * One audit entry per write call, taken where every reply leaves the server (Fastify's onSend),
 * so that no route has to remember it: BK-JOB API endpoints that change something, every admin
 * API call but GETs, and agent registration. The entry is built from the reply envelope (outcome
 * and code), ids named in the request or the reply (the target), and what the dispatch layer
 * learnt of the caller. Bodies are never copied: they carry secrets (app secrets, scripts,
 * tokens in replies).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AGENT_REGISTER_PATH } from '@jobfleet/protocol';
import { ERROR_CATALOGUE } from '../api/error-catalogue.js';
import { adminActor } from '../operators/admin-access.js';
import type { AuditRecord } from '../store/audit-store.js';
import type { AuditTrail } from './audit-trail.js';

/** What the dispatch layer knows about who is calling. */
export interface Attribution {
  appCode?: string | undefined;
  username?: string | undefined;
  scopeType?: string;
  scopeId?: string;
  /** The caller of an API call was authenticated: until then its app and user are only claimed. */
  verified?: boolean;
  /**
   * No entry here: a repeated refusal not worth one (a rate-limited flood is recorded once per
   * window), or a call whose route stored its entry itself (agent registration, in its commit).
   */
  skip?: boolean;
}

const attributions = new WeakMap<FastifyRequest, Attribution>();

export function attribute(req: FastifyRequest, a: Attribution): void {
  attributions.set(req, { ...attributions.get(req), ...a });
}

/** Ids worth naming as the target, with the label they get (`job_instance:12`), in the order looked for. */
const TARGET_KEYS: readonly (readonly [string, string])[] = [
  ['job_instance_id', 'job_instance'],
  ['step_instance_id', 'step_instance'],
  ['id', 'id'],
  ['bk_host_id', 'host'],
  ['hostId', 'host'],
  ['host_id', 'host'],
  ['module_id', 'module'],
  ['set_id', 'set'],
  ['bk_biz_set_id', 'biz_set'],
  ['app_code', 'app'],
];

const ADMIN_PREFIX = '/api/admin';

function objectOf(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function idValue(v: unknown): string | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'string' && v.length > 0 && v.length <= 128) return v;
  return undefined;
}

/** Looks in the reply first, then the request; each label once. */
function targetOf(...sources: Record<string, unknown>[]): string {
  const found = new Map<string, string>();
  for (const [key, label] of TARGET_KEYS) {
    if (found.has(label)) continue;
    for (const s of sources) {
      const v = idValue(s[key]);
      if (v !== undefined) {
        found.set(label, v);
        break;
      }
    }
  }
  // A bare route id (`/hosts/:id/biz`) that a named id already gives says nothing more.
  const id = found.get('id');
  if (id !== undefined && [...found].some(([label, v]) => label !== 'id' && v === id)) found.delete('id');
  return [...found].map(([label, v]) => `${label}:${v}`).join(' ');
}

function envelopeOf(payload: unknown): { result: boolean; code: number; data: Record<string, unknown> } {
  let parsed: unknown;
  try {
    parsed = typeof payload === 'string' ? JSON.parse(payload) : payload;
  } catch {
    parsed = undefined;
  }
  const env = objectOf(parsed);
  return {
    result: env.result === true,
    code: typeof env.code === 'number' ? env.code : ERROR_CATALOGUE.INTERNAL_ERROR.code,
    data: objectOf(env.data),
  };
}

/**
 * @param apiAction for a BK-JOB endpoint request (also through the admin token), its endpoint
 *   name when the call is audited, null when it is not (it only reads); undefined for any other
 *   route.
 */
export function installWriteAudit(
  app: FastifyInstance,
  trail: AuditTrail,
  apiAction: (req: FastifyRequest) => string | null | undefined,
): void {
  app.addHook('onSend', async (req, _reply, payload) => {
    const route = req.routeOptions.url ?? '';
    const admin = route.startsWith(`${ADMIN_PREFIX}/`);
    const api = apiAction(req);
    let actorKind: AuditRecord['actorKind'] = admin ? adminActor(req).kind : 'app';
    let action: string | undefined;
    if (api !== undefined) {
      action = api ?? undefined;
    } else if (admin && req.method !== 'GET') {
      action = `admin ${req.method} ${route.slice(ADMIN_PREFIX.length)}`;
    } else if (route === AGENT_REGISTER_PATH) {
      actorKind = 'agent';
      action = 'agent register';
    }
    if (action === undefined) return payload;
    const who = attributions.get(req) ?? {};
    if (who.skip) return payload;
    // A person: a platform admin through the admin API, or anyone through the v3 API.
    const person = admin ? adminActor(req).name : who.appCode?.startsWith('user:') ? who.username : '';
    if (actorKind !== 'agent' && person) actorKind = 'user';
    const env = envelopeOf(payload);
    const body = objectOf(req.body);
    const query = objectOf(req.query);
    const params = objectOf(req.params);
    const bizId = idValue(body.bk_biz_id) ?? idValue(query.bk_biz_id);
    const scopeType =
      who.scopeType ??
      idValue(body.bk_scope_type) ??
      idValue(query.bk_scope_type) ??
      (bizId !== undefined ? 'biz' : undefined);
    const scopeId = who.scopeId ?? idValue(body.bk_scope_id) ?? idValue(query.bk_scope_id) ?? bizId;
    trail.add({
      actorKind,
      ...(who.appCode ? { appCode: who.appCode } : {}),
      ...(person || who.username ? { username: person || who.username } : {}),
      ...(scopeType !== undefined ? { scopeType } : {}),
      ...(scopeId !== undefined ? { scopeId } : {}),
      action,
      // An API call by a caller never authenticated names no target: what it claims to act on
      // (a job of another scope, say) must not show up in that job's records.
      target: api !== undefined && !who.verified ? '' : targetOf(env.data, params, body, query),
      outcome: env.result ? 'ok' : env.code === ERROR_CATALOGUE.INTERNAL_ERROR.code ? 'error' : 'refused',
      code: env.result ? 0 : env.code,
      sourceIp: req.ip,
      // The operation asked for (retry, skip, confirm, terminate...): what a job's records show.
      detail: {
        request_id: req.id,
        ...(/^\d{1,3}$/.test(String(body.operation_code))
          ? { operation_code: Number(body.operation_code) }
          : {}),
      },
    });
    return payload;
  });
}
