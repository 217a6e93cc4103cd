/**
 * Turns authoring input into stored template and plan documents (ids assigned, accounts
 * resolved, cipher values sealed, references checked), and stored documents back into the
 * shapes get_job_plan_detail answers with.
 */
import type { z } from 'zod';
import { checkCallbackUrl, resolveAccount } from '../api/endpoints/job-submission.js';
import type { EndpointContext } from '../api/endpoint.js';
import { ApiError } from '../api/error-catalogue.js';
import { assertCallbackAllowed } from '../api/submission-checks.js';
import { sealCallbackUrl, tryOpenCallbackUrl } from '../engine/callback-url.js';
import { SecretBox, SecretBoxError } from '../secret-box.js';
import type { InventoryStore } from '../store/inventory-store.js';
import type { PlanRow, TemplateRow } from '../store/plan-store.js';
import { citedScript } from './library-scripts.js';
import { lookUpHosts, serverView } from './plan-hosts.js';
import type { HostLookup } from './plan-hosts.js';
import { apiSeconds } from './plan-times.js';
import { CIPHER_MASK, SENSITIVE_PARAM_PURPOSE, VarType, cipherPurpose, planValueOf } from './plan-shapes.js';
import type {
  PlanBody,
  PlanVar,
  StepInput,
  StepServer,
  StoredStep,
  StoredVar,
  TemplateBody,
  VarInput,
} from './plan-shapes.js';
import type { AccountRefInput } from './plan-shapes.js';

function invalid(reason: string): ApiError {
  return new ApiError('JOB_TEMPLATE_INVALID', { reason });
}

export function parseTemplateBody(row: TemplateRow): TemplateBody {
  return JSON.parse(row.body) as TemplateBody;
}

export function parsePlanBody(row: PlanRow): PlanBody {
  return JSON.parse(row.body) as PlanBody;
}

/**
 * A cipher value as given by a client: sealed with `seal`, or the stored one (`previous`) when
 * the client sends back the mask it was shown; nothing for no value. Templates, plans, crons and
 * execute_job_plan all read cipher values so.
 */
export function cipherValue(
  value: string | null | undefined,
  previous: { sealed?: string | undefined } | undefined,
  seal: (plain: string) => string,
): { sealed?: string } {
  if (value === CIPHER_MASK && previous?.sealed) return { sealed: previous.sealed };
  if (value === undefined || value === null || value === '' || value === CIPHER_MASK) return {};
  return { sealed: seal(value) };
}

/** A sensitive parameter decodes to at most this many bytes (behaviour notes §5, as fast_execute_script). */
const MAX_SENSITIVE_PARAM_BYTES = 48_128;

/**
 * A step's script_param as the template body keeps it: a sensitive one sealed, read as a cipher
 * value is (the mask it was shown keeps the stored one), any other as given.
 */
function templateParam(
  ctx: EndpointContext,
  at: string,
  si: { script_param?: string | undefined; is_param_sensitive: number },
  before: { script_param?: string | undefined; is_param_sensitive: number } | undefined,
): string | undefined {
  const given = si.script_param;
  if (si.is_param_sensitive !== 1) {
    if (given === CIPHER_MASK) throw invalid(`${at}: ${CIPHER_MASK} stands only for a sensitive parameter`);
    return given;
  }
  if (given && given !== CIPHER_MASK && Buffer.byteLength(given, 'base64') > MAX_SENSITIVE_PARAM_BYTES)
    throw invalid(`${at}: a sensitive parameter decodes to more than ${MAX_SENSITIVE_PARAM_BYTES} bytes`);
  const previous = before?.is_param_sensitive === 1 ? { sealed: before.script_param } : undefined;
  return cipherValue(given, previous, (plain) => ctx.services.secretBox.seal(plain, SENSITIVE_PARAM_PURPOSE))
    .sealed;
}

/**
 * A step's script_param as its job runs it (decoded text), a sealed sensitive one opened. One
 * that does not open (its key is gone) stays sealed: the job's step cannot open it either, and
 * fails its hosts (12, 1244903) as for any secret of a lost key.
 */
export function runnableParam(box: SecretBox, si: { script_param?: string | undefined }): string {
  const p = si.script_param ?? '';
  if (!SecretBox.isSealed(p)) return Buffer.from(p, 'base64').toString('utf8');
  try {
    return Buffer.from(box.open(p, SENSITIVE_PARAM_PURPOSE), 'base64').toString('utf8');
  } catch (err) {
    if (err instanceof SecretBoxError) return p;
    throw err;
  }
}

/** Seals a plan or template variable's cipher value under its own purpose (its name). */
export const planSeal = (ctx: EndpointContext, name: string) => (plain: string) =>
  ctx.services.secretBox.seal(plain, cipherPurpose(name));

async function accountOf(
  ctx: EndpointContext,
  at: string,
  a: z.output<typeof AccountRefInput> | undefined,
  category: 1 | 2 = 1,
): Promise<{ id: number; name: string }> {
  const alias = a?.alias ?? a?.name;
  if (!a || (a.id === undefined && !alias))
    throw new ApiError('MISSING_PARAM_WITH_PARAM_NAME', { param: at });
  const r = await resolveAccount(ctx, a.id, alias, category);
  return { id: r.id, name: r.alias };
}

function checkServer(at: string, server: StepServer | undefined, vars: Map<string, StoredVar>): void {
  if (!server?.variable) return;
  const v = vars.get(server.variable);
  if (!v || v.type !== VarType.HOST_LIST)
    throw invalid(
      `${at}.variable: "${server.variable}" is not a host list variable (type 3) of this template`,
    );
}

/** Builds a template's stored body from its authoring input; `previous` keeps ids and cipher values stable. */
export async function buildTemplateBody(
  ctx: EndpointContext,
  steps: StepInput[],
  varsIn: VarInput[],
  previous?: TemplateBody,
): Promise<TemplateBody> {
  let nextId = previous?.nextId ?? 1;
  const vars = new Map<string, StoredVar>();
  const seenVarIds = new Set<number>();
  for (const [i, v] of varsIn.entries()) {
    const at = `global_var_list[${i}]`;
    if (vars.has(v.name)) throw invalid(`${at}.name: two variables are named "${v.name}"`);
    const given = v.id !== undefined ? previous?.vars.find((p) => p.id === v.id) : undefined;
    if (v.id !== undefined && !given) throw invalid(`${at}.id: ${v.id} is not a variable of this template`);
    // A variable whose type changes is a new one: plans and crons drop the values they hold for
    // the old one instead of running with a value of another type.
    const old = given?.type === v.type ? given : undefined;
    const id = old?.id ?? nextId++;
    if (seenVarIds.has(id)) throw invalid(`${at}.id: ${id} is given twice`);
    seenVarIds.add(id);
    const stored: StoredVar = {
      id,
      name: v.name,
      type: v.type,
      description: v.description,
      required: v.required,
    };
    if (v.type === VarType.HOST_LIST) {
      if (v.server) stored.server = v.server;
    } else if (v.type === VarType.CIPHER) {
      Object.assign(
        stored,
        cipherValue(v.value, old?.name === v.name ? old : undefined, planSeal(ctx, v.name)),
      );
    } else if (v.value !== undefined && v.value !== null) {
      checkArrayValue(`${at}.value`, v.type, v.value);
      stored.value = v.value;
    }
    vars.set(v.name, stored);
  }
  const out: StoredStep[] = [];
  const seenStepIds = new Set<number>();
  for (const [i, s] of steps.entries()) {
    const at = `step_list[${i}]`;
    if (s.id !== undefined && !previous?.steps.some((p) => p.id === s.id))
      throw invalid(`${at}.id: ${s.id} is not a step of this template`);
    const id = s.id ?? nextId++;
    if (seenStepIds.has(id)) throw invalid(`${at}.id: ${id} is given twice`);
    seenStepIds.add(id);
    const step: StoredStep = { id, name: s.name, type: s.type };
    if (s.type === 1 && s.script_info) {
      const si = s.script_info;
      if (si.script_type === 1 && !si.script_content)
        throw new ApiError('MISSING_PARAM_WITH_PARAM_NAME', { param: `${at}.script_info.script_content` });
      // A citation is pinned to the version it resolves to now (script_id alone: the online one).
      const pinned = si.script_type === 1 ? undefined : await citedScript(ctx, si);
      checkServer(`${at}.script_info.server`, si.server, vars);
      // A SQL step names a database account (its system account runs the client).
      const sql = (pinned?.language ?? si.script_language) === 6;
      const account = await accountOf(ctx, `${at}.script_info.account`, si.account, sql ? 2 : 1);
      const before = previous?.steps.find((p) => p.id === id)?.script_info;
      const script_param = templateParam(ctx, `${at}.script_info.script_param`, si, before);
      step.script_info = pinned
        ? {
            ...si,
            script_param,
            script_type: pinned.source,
            script_id: pinned.scriptId,
            script_version_id: pinned.scriptVersionId,
            script_content: undefined,
            script_language: pinned.language,
            account,
          }
        : { ...si, script_param, account };
    } else if (s.type === 2 && s.file_info) {
      const fi = s.file_info;
      checkServer(`${at}.file_info.file_destination.server`, fi.file_destination.server, vars);
      const sources = [];
      for (const [j, src] of fi.file_source_list.entries()) {
        const sat = `${at}.file_info.file_source_list[${j}]`;
        if (src.file_type === 1) {
          if (!src.server) throw new ApiError('MISSING_PARAM_WITH_PARAM_NAME', { param: `${sat}.server` });
          checkServer(`${sat}.server`, src.server, vars);
          sources.push({ ...src, account: await accountOf(ctx, `${sat}.account`, src.account) });
        } else sources.push(src);
      }
      const account = await accountOf(
        ctx,
        `${at}.file_info.file_destination.account`,
        fi.file_destination.account,
      );
      step.file_info = {
        ...fi,
        file_source_list: sources,
        file_destination: { ...fi.file_destination, account },
      };
    } else if (s.type === 3 && s.approval_info) {
      const ai = s.approval_info;
      if (ai.notify_channel.includes('webhook') && !ai.webhook_url)
        throw invalid(`${at}.approval_info.webhook_url: the webhook channel needs a URL`);
      if (ai.webhook_url) assertCallbackAllowed(ctx, checkCallbackUrl(ai.webhook_url));
      step.approval_info = {
        ...ai,
        webhook_url: webhookAtRest(
          ctx.services.secretBox,
          ai.webhook_url,
          previous?.steps.find((p) => p.id === id),
        ),
      };
    }
    out.push(step);
  }
  return { steps: out, vars: [...vars.values()], nextId };
}

/**
 * A confirmation's webhook URL as a template stores it: sealed (callback-url.ts: a webhook URL
 * often is its own credential). The step's earlier sealed text is kept when the URL is the same,
 * so a template saved unchanged stores the same body.
 */
function webhookAtRest(box: SecretBox, url: string | undefined, before: StoredStep | undefined) {
  if (url === undefined) return undefined;
  const stored = before?.approval_info?.webhook_url;
  if (stored !== undefined && !box.needsReseal(stored)) {
    const opened = tryOpenCallbackUrl(box, stored);
    if ('url' in opened && opened.url === url) return stored;
  }
  return sealCallbackUrl(box, url) ?? undefined;
}

/** Array variables take a bash array literal `( ... )` as BK-JOB does, or a JSON array / object. */
function checkArrayValue(at: string, type: number, value: string): void {
  const problem = arrayValueProblem(type, value);
  if (problem) throw invalid(`${at}: ${problem}`);
}

/** Why a value cannot be an array variable's (undefined when it can, or the type is no array). */
export function arrayValueProblem(type: number, value: string): string | undefined {
  if (type !== VarType.ASSOC_ARRAY && type !== VarType.INDEX_ARRAY) return undefined;
  const v = value.trim();
  if (v === '' || (v.startsWith('(') && v.endsWith(')'))) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(v);
  } catch {
    return 'an array value is a bash array literal "( ... )" or JSON';
  }
  const ok =
    type === VarType.INDEX_ARRAY
      ? Array.isArray(parsed)
      : typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed);
  return ok ? undefined : `expected a JSON ${type === VarType.INDEX_ARRAY ? 'array' : 'object'}`;
}

/** A plan's variable values over its template's definitions: by id, else by name. */
export function buildPlanVars(
  ctx: EndpointContext,
  template: TemplateBody,
  input: {
    id?: number | undefined;
    name?: string | undefined;
    value?: string | null | undefined;
    server?: StepServer | null | undefined;
  }[],
  previous: PlanVar[],
): PlanVar[] {
  const out: PlanVar[] = [];
  const given = new Map<number, (typeof input)[number]>();
  for (const [i, v] of input.entries()) {
    const def = template.vars.find((d) => (v.id !== undefined ? d.id === v.id : d.name === v.name));
    if (!def)
      throw invalid(
        `global_var_list[${i}]: ${v.id ?? v.name ?? '(no id or name)'} is not a variable of the template`,
      );
    given.set(def.id, v);
  }
  for (const def of template.vars) {
    const v = given.get(def.id);
    const old = planValueOf(previous, def);
    const pv: PlanVar = { id: def.id, name: def.name };
    // An entry without the field of its variable's type (hosts for a host list, a value for the
    // others) changes nothing, as execute_job_plan reads it; null clears.
    const field = def.type === VarType.HOST_LIST ? v?.server : v?.value;
    if (!v || field === undefined) {
      // Not given: the plan keeps what it had, or starts from the template's default.
      Object.assign(pv, old ?? { value: def.value, sealed: def.sealed, server: def.server });
      pv.id = def.id;
      pv.name = def.name;
    } else if (def.type === VarType.HOST_LIST) {
      if (v.server) pv.server = v.server;
    } else if (def.type === VarType.CIPHER) {
      Object.assign(pv, cipherValue(v.value, old ?? def, planSeal(ctx, def.name)));
    } else if (v.value !== undefined && v.value !== null) {
      checkArrayValue(`global_var_list.${def.name}.value`, def.type, v.value);
      pv.value = v.value;
    }
    out.push(JSON.parse(JSON.stringify(pv)) as PlanVar);
  }
  return out;
}

/** Whether any step of the template mentions the variable. */
function isUsed(template: TemplateBody, name: string): boolean {
  const text = JSON.stringify(template.steps);
  if (text.includes(`"variable":"${name}"`) || text.includes(`\${${name}}`)) return true;
  // Script text and parameters are stored base64: read as the script and its arguments.
  const decoded = (b64: string | undefined) =>
    b64 === undefined ? '' : Buffer.from(b64, 'base64').toString('utf8');
  // The name as a word ($name, ${name[@]}, name=..., read name), not inside another word: a
  // variable `ech` is not used by every script that calls echo. Names are shell names, no
  // pattern characters.
  const word = new RegExp(`(^|[^A-Za-z0-9_])${name}($|[^A-Za-z0-9_])`);
  return template.steps.some(
    (s) =>
      word.test(decoded(s.script_info?.script_content)) ||
      // A sensitive parameter stays sealed here: it is not read for its variables.
      (s.script_info?.is_param_sensitive !== 1 &&
        decoded(s.script_info?.script_param).includes(`\${${name}}`)),
  );
}

/** A variable as get_job_plan_detail shows it (cipher values masked). */
export function varView(template: TemplateBody, def: StoredVar, value: Omit<PlanVar, 'id' | 'name'> = def) {
  const base = {
    id: def.id,
    name: def.name,
    type: def.type,
    description: def.description,
    required: def.required,
    used: isUsed(template, def.name),
  };
  if (def.type === VarType.HOST_LIST) return { ...base, server: value.server ?? null };
  if (def.type === VarType.CIPHER) return { ...base, value: value.sealed ? CIPHER_MASK : '' };
  return { ...base, value: value.value ?? '' };
}

/**
 * A step as the details show it: a sensitive parameter masked, a webhook URL opened (as
 * get_job_instance_callback_list shows callback URLs: whoever may read the template may change
 * where it points; one that does not open, its key lost, is left out).
 */
export function stepView(box: SecretBox, step: StoredStep) {
  const view = JSON.parse(JSON.stringify(step)) as StoredStep;
  if (view.script_info?.is_param_sensitive === 1 && view.script_info.script_param)
    view.script_info.script_param = CIPHER_MASK;
  const ai = view.approval_info;
  if (ai?.webhook_url) {
    const opened = tryOpenCallbackUrl(box, ai.webhook_url);
    if ('url' in opened) ai.webhook_url = opened.url;
    else delete ai.webhook_url;
  }
  return view;
}

/**
 * A template as get_job_template_detail (a Jobfleet extension) answers it: as authored, hosts
 * included, since it is what the template editors read and write back unchanged; only the plan
 * detail, which BK-JOB clients read, renders hosts as BK-JOB does.
 */
export function templateDetail(box: SecretBox, row: TemplateRow) {
  const body = parseTemplateBody(row);
  return {
    ...scopeAndAudit(row),
    id: row.id,
    name: row.name,
    description: row.description,
    step_list: body.steps.map((s) => stepView(box, s)),
    global_var_list: body.vars.map((v) => varView(body, v)),
  };
}

/**
 * A plan as get_job_plan_detail answers it: its enabled template steps and every template
 * variable with the plan's value, hosts rendered as BK-JOB renders them (plan-hosts.ts) and a
 * file step's speed limits always present (null when unset), as BK-JOB's file_info has them.
 */
export async function planDetail(
  box: SecretBox,
  inv: InventoryStore,
  plan: PlanRow,
  template: TemplateRow,
  bizIds: readonly number[],
) {
  const tb = parseTemplateBody(template);
  const pb = parsePlanBody(plan);
  const steps = tb.steps.filter((s) => pb.enabled.includes(s.id));
  const vars = tb.vars.map((def) => varView(tb, def, planValueOf(pb.vars, def) ?? def));
  const hosts = await lookUpHosts(
    inv,
    [
      ...steps.flatMap((s) => [
        s.script_info?.server,
        s.file_info?.file_destination.server,
        ...(s.file_info?.file_source_list.map((f) => f.server) ?? []),
      ]),
      ...vars.map((v) => ('server' in v ? v.server : undefined)),
    ],
    bizIds,
  );
  return {
    ...scopeAndAudit(plan),
    id: plan.id,
    job_template_id: plan.template_id,
    name: plan.name,
    description: pb.description,
    step_list: steps.map((s) => planStepView(box, s, hosts)),
    global_var_list: vars.map((v) =>
      'server' in v && v.server ? { ...v, server: serverView(v.server, hosts) } : v,
    ),
  };
}

function planStepView(box: SecretBox, step: StoredStep, hosts: HostLookup) {
  const { script_info: si, file_info: fi, ...rest } = stepView(box, step);
  return {
    ...rest,
    ...(si ? { script_info: { ...si, server: serverView(si.server, hosts) } } : {}),
    ...(fi
      ? {
          file_info: {
            ...fi,
            file_source_list: fi.file_source_list.map((f) =>
              f.server ? { ...f, server: serverView(f.server, hosts) } : f,
            ),
            file_destination: {
              ...fi.file_destination,
              server: serverView(fi.file_destination.server, hosts),
            },
            source_speed_limit: fi.source_speed_limit ?? null,
            destination_speed_limit: fi.destination_speed_limit ?? null,
          },
        }
      : {}),
  };
}

/** Scope and who changed the template or plan when; times in seconds, as BK-JOB answers them. */
export function scopeAndAudit(
  row: Pick<
    TemplateRow | PlanRow,
    'scope_type' | 'scope_id' | 'creator' | 'create_time' | 'last_modify_user' | 'last_modify_time'
  >,
) {
  return {
    bk_scope_type: row.scope_type,
    bk_scope_id: row.scope_id,
    creator: row.creator,
    create_time: apiSeconds(row.create_time),
    last_modify_user: row.last_modify_user,
    last_modify_time: apiSeconds(row.last_modify_time),
  };
}
