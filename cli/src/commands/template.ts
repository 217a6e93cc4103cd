/**
 * `jobfleet template apply FILE` and `jobfleet template export ID`: one template with its plans
 * as one YAML (or JSON) file, kept in version control and applied like any other config.
 *
 * The file is the API's shapes (get_job_plan_detail) without server-side ids: steps and
 * variables are named, plans list their steps by name, library scripts are cited as
 * `script: name@version`, and script bodies and parameters are plain text instead of base64. Apply creates the template or brings it to the file's content
 * by name (ids stay stable), creates or updates each plan by name and deletes the template's
 * plans the file no longer lists; applying the same file again changes nothing. Export writes
 * the file apply reads, so export -> apply -> export gives the same bytes. Cipher values are
 * exported as "******", which apply reads as "keep the stored value".
 */
import fs from 'node:fs';
import os from 'node:os';
import { Command, Option } from 'commander';
import YAML from 'yaml';

interface Conn {
  server: string;
  appCode: string;
  appSecret: string;
  username: string;
}

type Obj = Record<string, unknown>;

interface Step extends Obj {
  id?: number;
  name: string;
  type: number;
  script_info?: Obj;
}
interface Var extends Obj {
  id?: number;
  name: string;
}
interface Detail {
  id: number;
  name: string;
  description: string;
  step_list: Step[];
  global_var_list: Var[];
}
interface PlanDetail extends Detail {
  job_template_id: number;
}

export interface TemplateFile {
  bk_scope_type: string;
  bk_scope_id: string;
  name: string;
  description: string;
  global_var_list: Var[];
  step_list: Step[];
  plans: { name: string; description: string; steps: string[]; global_var_list: Obj[] }[];
}

/** One v3 API call: its reply's data, or an Error with the server's message. */
export type Call = <T>(name: string, body: Obj) => Promise<T>;

function appCall(conn: Conn): Call {
  return async <T>(name: string, body: Obj): Promise<T> => {
    const res = await fetch(new URL(`/api/v3/${name}`, conn.server), {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-bkapi-authorization': JSON.stringify({
          bk_app_code: conn.appCode,
          bk_app_secret: conn.appSecret,
          bk_username: conn.username,
        }),
      },
      body: JSON.stringify(body),
    });
    const env = (await res.json()) as { result: boolean; code: number; message: string; data: T };
    if (!env.result) throw new Error(`${name}: ${env.message} (code ${env.code})`);
    return env.data;
  };
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

/** What the server shows for a sensitive parameter; sent back as is, it keeps the stored one. */
const SENSITIVE_MASK = '******';

/** Maps every script_info's base64 fields through `f` (plain text in files, base64 on the wire). */
function mapScripts(steps: Step[], f: (s: string) => string): Step[] {
  return steps.map((s) => {
    if (!s.script_info) return s;
    const si = { ...s.script_info };
    for (const k of ['script_content', 'script_param'])
      if (typeof si[k] === 'string' && si[k] !== SENSITIVE_MASK) si[k] = f(si[k]);
    return { ...s, script_info: si };
  });
}

function withoutIds<T extends { id?: number }>(list: T[]): Omit<T, 'id'>[] {
  return list.map(({ id: _id, ...rest }) => rest);
}

interface RenderedServer {
  variable?: string;
  ip_list?: { bk_host_id?: number | null; bk_cloud_id: number | null; ip: string | null }[];
  host_id_list?: number[];
  dynamic_group_list?: unknown[];
  topo_node_list?: unknown[];
}

/**
 * A plan variable's hosts as the file holds them. get_job_plan_detail renders every host as an
 * ip_list entry with its bk_host_id (BK-JOB's shape) and always lists dynamic groups and
 * topology nodes; the file keeps what was authored instead: host_id_list when the plan names
 * hosts by id (the detail keeps it then), else the cloud:ip pairs, without ids, which differ
 * between servers. Empty lists are left out, so export -> apply changes nothing.
 */
function authoredServer(server: unknown): unknown {
  if (!server || typeof server !== 'object') return server;
  const s = server as RenderedServer;
  const out: Obj = {};
  if (s.variable !== undefined) out.variable = s.variable;
  if (s.host_id_list !== undefined) out.host_id_list = s.host_id_list;
  if (!s.host_id_list?.length && s.ip_list?.length)
    out.ip_list = s.ip_list.map((e) => ({ bk_cloud_id: e.bk_cloud_id, ip: e.ip }));
  if (s.dynamic_group_list?.length) out.dynamic_group_list = s.dynamic_group_list;
  if (s.topo_node_list?.length) out.topo_node_list = s.topo_node_list;
  return out;
}

function parseScope(v: string): { bk_scope_type: string; bk_scope_id: string } {
  const [type, id] = v.split(':');
  if ((type !== 'biz' && type !== 'biz_set') || !id)
    throw new Error(`scope "${v}" is not biz:<id> or biz_set:<id>`);
  return { bk_scope_type: type, bk_scope_id: id };
}

function readFile(file: string): TemplateFile {
  const text = fs.readFileSync(file, 'utf8');
  const doc = (file.endsWith('.json') ? JSON.parse(text) : YAML.parse(text)) as Partial<TemplateFile> | null;
  if (!doc || typeof doc !== 'object') throw new Error(`${file}: not a template document`);
  for (const k of ['bk_scope_type', 'bk_scope_id', 'name'] as const)
    if (typeof doc[k] !== 'string' || doc[k] === '')
      throw new Error(`${file}: "${k}" is required (a string)`);
  const names = (doc.step_list ?? []).map((s) => s.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined)
    throw new Error(`${file}: two steps are named "${dup}"; apply matches steps by name`);
  for (const p of doc.plans ?? []) {
    const unknown = (p.steps ?? []).find((n) => !names.includes(n));
    if (unknown !== undefined) throw new Error(`${file}: plan "${p.name}": no step named "${unknown}"`);
  }
  return {
    bk_scope_type: doc.bk_scope_type as string,
    bk_scope_id: String(doc.bk_scope_id),
    name: doc.name as string,
    description: doc.description ?? '',
    global_var_list: doc.global_var_list ?? [],
    step_list: doc.step_list ?? [],
    plans: doc.plans ?? [],
  };
}

/** Library endpoints of a citation: business scripts (2) or public ones (3). */
const lib = (si: Obj, name: string) => (si.script_type === 3 ? name.replace(/^get_/, 'get_public_') : name);

/** Steps citing `script: name@version` get the ids of that library version. */
async function citeByIds(call: Call, scope: Obj, steps: Step[]): Promise<Step[]> {
  const out: Step[] = [];
  for (const s of steps) {
    const si = s.script_info;
    if (!si || typeof si.script !== 'string') {
      out.push(s);
      continue;
    }
    const at = si.script.lastIndexOf('@');
    if (at <= 0) throw new Error(`step "${s.name}": script "${si.script}" is not name@version`);
    const [name, version] = [si.script.slice(0, at), si.script.slice(at + 1)];
    const type = si.script_type === 3 ? 3 : 2;
    const list = await call<{ data: { id: string; name: string }[] }>(
      lib({ script_type: type }, 'get_script_list'),
      {
        ...scope,
        name,
        length: 1000,
      },
    );
    const script = list.data.find((x) => x.name === name);
    if (!script) throw new Error(`step "${s.name}": no library script named "${name}"`);
    const v = await call<{ id: number }>(lib({ script_type: type }, 'get_script_version_detail'), {
      ...scope,
      script_id: script.id,
      version,
    });
    const { script: _ref, ...rest } = si;
    out.push({
      ...s,
      script_info: { ...rest, script_type: type, script_id: script.id, script_version_id: v.id },
    });
  }
  return out;
}

/** Steps citing a library version by id show it as `script: name@version` (ids differ between servers). */
async function citeByName(call: Call, scope: Obj, steps: Step[]): Promise<Step[]> {
  const out: Step[] = [];
  for (const s of steps) {
    const si = s.script_info;
    if (!si || (si.script_type !== 2 && si.script_type !== 3)) {
      out.push(s);
      continue;
    }
    const v = await call<{ name: string; version: string }>(lib(si, 'get_script_version_detail'), {
      ...scope,
      id: si.script_version_id,
    });
    const { script_id: _id, script_version_id: _vid, script_language: _lang, ...rest } = si;
    out.push({ ...s, script_info: { script: `${v.name}@${v.version}`, ...rest } });
  }
  return out;
}

async function findTemplate(call: Call, scope: Obj, name: string): Promise<Detail | undefined> {
  const list = await call<{ data: { id: number; name: string }[] }>('get_job_template_list', {
    ...scope,
    name,
    length: 1000,
  });
  const hit = list.data.find((t) => t.name === name);
  return hit ? call<Detail>('get_job_template_detail', { ...scope, job_template_id: hit.id }) : undefined;
}

export async function applyTemplate(call: Call, file: string): Promise<{ id: number; plans: number[] }> {
  const doc = readFile(file);
  const scope = { bk_scope_type: doc.bk_scope_type, bk_scope_id: doc.bk_scope_id };
  const existing = await findTemplate(call, scope, doc.name);
  const steps = await citeByIds(call, scope, doc.step_list);
  // Steps and variables keep their ids by name, so the template is updated, not replaced.
  const idOf = (list: { id?: number; name: string }[] | undefined, name: string) =>
    list?.find((x) => x.name === name)?.id;
  const body = {
    ...scope,
    name: doc.name,
    description: doc.description,
    step_list: mapScripts(steps, b64).map((s) => ({ ...s, id: idOf(existing?.step_list, s.name) })),
    global_var_list: doc.global_var_list.map((v) => ({ ...v, id: idOf(existing?.global_var_list, v.name) })),
  };
  const { id } = existing
    ? await call<{ id: number }>('update_job_template', { ...body, job_template_id: existing.id })
    : await call<{ id: number }>('create_job_template', body);
  const template = await call<Detail>('get_job_template_detail', { ...scope, job_template_id: id });
  const current = await call<{ data: { id: number; name: string }[] }>('get_job_plan_list', {
    ...scope,
    job_template_id: id,
    length: 1000,
  });
  const plans: number[] = [];
  for (const p of doc.plans) {
    const stepIds = p.steps.map((name) => ({ id: idOf(template.step_list, name) }));
    const planBody = {
      ...scope,
      description: p.description ?? '',
      step_list: stepIds,
      global_var_list: p.global_var_list ?? [],
    };
    const have = current.data.find((x) => x.name === p.name);
    const r = have
      ? await call<{ id: number }>('update_job_plan', { ...planBody, job_plan_id: have.id })
      : await call<{ id: number }>('create_job_plan', {
          ...planBody,
          job_template_id: id,
          name: p.name,
        });
    plans.push(r.id);
  }
  for (const gone of current.data.filter((x) => !doc.plans.some((p) => p.name === x.name)))
    await call('delete_job_plan', { ...scope, job_plan_id: gone.id });
  return { id, plans };
}

export async function exportTemplate(call: Call, scope: Obj, id: number): Promise<TemplateFile> {
  const t = await call<Detail & { bk_scope_type: string; bk_scope_id: string }>('get_job_template_detail', {
    ...scope,
    job_template_id: id,
  });
  const list = await call<{ data: { id: number }[] }>('get_job_plan_list', {
    ...scope,
    job_template_id: id,
    length: 1000,
  });
  const plans = [];
  for (const { id: planId } of [...list.data].sort((a, b) => a.id - b.id)) {
    const p = await call<PlanDetail & { description: string }>('get_job_plan_detail', {
      ...scope,
      job_plan_id: planId,
    });
    plans.push({
      name: p.name,
      description: p.description,
      steps: p.step_list.map((s) => s.name),
      global_var_list: p.global_var_list.map((v) =>
        'server' in v ? { name: v.name, server: authoredServer(v.server) } : { name: v.name, value: v.value },
      ),
    });
  }
  return {
    bk_scope_type: t.bk_scope_type,
    bk_scope_id: t.bk_scope_id,
    name: t.name,
    description: t.description,
    global_var_list: withoutIds(t.global_var_list).map(({ used: _used, ...v }) => v) as Var[],
    step_list: withoutIds(mapScripts(await citeByName(call, scope, t.step_list), unb64)) as Step[],
    plans,
  };
}

export function templateCommand(): Command {
  const cmd = new Command('template')
    .description('apply a template file (a template with its plans) or export one')
    .addOption(
      new Option('--server <url>', 'server base URL').env('JOBFLEET_SERVER').default('http://127.0.0.1:8080'),
    )
    .addOption(new Option('--app-code <code>', 'app code').env('JOBFLEET_APP_CODE').default('jobfleet'))
    .addOption(
      new Option('--app-secret <secret>', 'app secret').env('JOBFLEET_APP_SECRET').makeOptionMandatory(),
    )
    .addOption(
      new Option('--username <user>', 'operator recorded as creator/modifier')
        .env('JOBFLEET_USERNAME')
        .default(os.userInfo().username),
    );
  const conn = (): Conn => cmd.opts<Conn>();
  cmd
    .command('apply <file>')
    .description('create or update the template and its plans from a YAML or JSON file (idempotent)')
    .action(async (file: string) => {
      const r = await applyTemplate(appCall(conn()), file);
      process.stdout.write(`${JSON.stringify({ job_template_id: r.id, job_plan_ids: r.plans })}\n`);
    });
  cmd
    .command('export <id>')
    .description('print a template and its plans as the YAML file apply reads')
    .requiredOption('--scope <scope>', 'biz:<id> or biz_set:<id>')
    .option('--json', 'print JSON instead of YAML')
    .action(async (id: string, o: { scope: string; json?: boolean }) => {
      const doc = await exportTemplate(appCall(conn()), parseScope(o.scope), Number(id));
      process.stdout.write(o.json ? `${JSON.stringify(doc, null, 2)}\n` : YAML.stringify(doc));
    });
  return cmd;
}
