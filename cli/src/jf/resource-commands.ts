/**
 * `jf templates`, `jf plans`, `jf crons` and the library round trip of `jf scripts`
 * (push, publish, diff): the orchestration objects of a scope, each command one or a few v3
 * calls. Template files are the ones `jobfleet template apply|export` reads and writes
 * (docs/job-plans.md); their code loads only when such a command runs.
 */
import fs from 'node:fs';
import { Command, Option } from 'commander';
import type { ApiClient } from './api-client.js';
import { contextOf, positiveInt } from './context.js';
import type { Ctx } from './context.js';
import { CliError, Exit } from './exit-codes.js';
import { followStarted, startOptions } from './job-commands.js';
import type { StartFlags } from './job-commands.js';
import { findPlan, planVars, withVarOptions } from './launch-commands.js';
import type { VarFlags } from './launch-commands.js';
import { printData, table } from './render.js';
import { languageOf } from '../commands/library.js';

const time = (ms: number | null | undefined) =>
  ms ? new Date(ms).toISOString().slice(0, 19).replace('T', ' ') : '';
/** Template, plan and cron times are seconds (BK-JOB's units for them). */
const secs = (s: number | null | undefined) => (s ? time(s * 1000) : '');

const idArg = positiveInt('id');

function examples(c: Command, ...lines: string[]): Command {
  return c.addHelpText('after', `\nExamples:\n${lines.map((l) => `  ${l}`).join('\n')}`);
}

/** The action of a command, given its context (connection and output) before its arguments. */
function act<A extends unknown[]>(c: Command, fn: (ctx: Ctx, ...args: A) => Promise<void>): Command {
  return c.action(async (...all: unknown[]) => {
    const cmd = all[all.length - 1] as Command;
    const ctx = await contextOf(cmd);
    await fn(ctx, ...(all.slice(0, -1) as A));
  });
}

interface TemplateRow {
  id: number;
  name: string;
  creator: string;
  last_modify_user: string;
  last_modify_time: number;
}

interface Detail {
  id: number;
  name: string;
  description?: string;
  step_list: { id: number; name: string; type: number; enable?: number }[];
  global_var_list: { id: number; name: string; type: number; value?: string | null; required?: number }[];
}

const STEP_TYPES: Record<number, string> = { 1: 'script', 2: 'file', 3: 'confirm', 4: 'sql' };
const VAR_TYPES: Record<number, string> = {
  1: 'string',
  2: 'namespace',
  3: 'hosts',
  4: 'cipher',
  5: 'assoc array',
  6: 'array',
};

function renderDetail(kind: string, d: Detail): string {
  return [
    `${kind} ${d.id}: ${d.name}${d.description ? ` (${d.description})` : ''}`,
    '',
    table(
      ['STEP', 'TYPE', 'NAME'],
      d.step_list.map((s) => [s.id, STEP_TYPES[s.type] ?? s.type, s.name]),
    ),
    ...(d.global_var_list.length
      ? [
          '',
          table(
            ['VARIABLE', 'TYPE', 'VALUE'],
            d.global_var_list.map((v) => [
              v.name,
              VAR_TYPES[v.type] ?? v.type,
              v.type === 3 ? '(hosts)' : (v.value ?? ''),
            ]),
          ),
        ]
      : []),
  ].join('\n');
}

/** The template code of `jobfleet template`, calling through jf's connection. */
async function templateFiles(client: ApiClient) {
  const mod = await import('../commands/template.js');
  const call = <T>(name: string, body: Record<string, unknown>) => client.call<T>(name, body, false);
  return { mod, call: call as Parameters<typeof mod.applyTemplate>[0] };
}

function templatesCommand(): Command {
  const t = new Command('templates').description('job templates of the scope (steps and variables)');
  t.addCommand(
    examples(
      act(
        new Command('ls').description('templates of the scope').option('--name <part>', 'name contains'),
        async (ctx, flags: { name?: string }) => {
          const rows = await ctx.client.readAll<TemplateRow>('get_job_template_list', {
            ...(flags.name ? { name: flags.name } : {}),
          });
          printData(ctx.out, rows, () =>
            table(
              ['ID', 'MODIFIED', 'BY', 'NAME'],
              rows.map((x) => [x.id, secs(x.last_modify_time), x.last_modify_user, x.name]),
            ),
          );
        },
      ),
      'jf templates ls --name backup',
    ),
  );
  t.addCommand(
    examples(
      act(
        new Command('show')
          .description('a template: steps and variables')
          .argument('<id>', 'template id', idArg),
        async (ctx, id: number) => {
          const d = await ctx.client.call<Detail>('get_job_template_detail', { job_template_id: id });
          printData(ctx.out, d, () => renderDetail('template', d));
        },
      ),
      'jf templates show 3',
      'jf templates show 3 -o json | jq ".step_list[].name"',
    ),
  );
  t.addCommand(
    examples(
      act(
        new Command('export')
          .description('a template and its plans as the YAML file `templates apply` reads')
          .argument('<id>', 'template id', idArg),
        async (ctx, id: number) => {
          const { mod, call } = await templateFiles(ctx.client);
          const scope = ctx.client.scope();
          const doc = await mod.exportTemplate(
            call,
            { bk_scope_type: scope.type, bk_scope_id: scope.id },
            id,
          );
          if (ctx.out.format === 'human' || ctx.out.format === 'yaml')
            process.stdout.write((await import('yaml')).default.stringify(doc));
          else printData(ctx.out, doc, () => '');
        },
      ),
      'jf templates export 3 > backup.yaml',
      'jf templates export 3 -o json',
    ),
  );
  t.addCommand(
    examples(
      act(
        new Command('apply')
          .description('create or update a template and its plans from a YAML or JSON file (idempotent)')
          .argument('<file>', 'template file'),
        async (ctx, file: string) => {
          if (!fs.existsSync(file)) throw new CliError(`cannot read ${file}`, Exit.USAGE);
          const { mod, call } = await templateFiles(ctx.client);
          const r = await mod.applyTemplate(call, file);
          printData(
            ctx.out,
            { job_template_id: r.id, job_plan_ids: r.plans },
            () => `template ${r.id} applied; plans ${r.plans.join(', ') || 'none'}`,
          );
        },
      ),
      'jf templates apply backup.yaml',
    ),
  );
  return t;
}

interface PlanRow {
  id: number;
  job_template_id: number;
  name: string;
  need_update?: boolean;
  last_modify_user: string;
  last_modify_time: number;
}

function plansCommand(): Command {
  const p = new Command('plans').description('job plans of the scope: list, show, launch, sync');
  p.addCommand(
    examples(
      act(
        new Command('ls')
          .description('plans of the scope')
          .option('--template <id>', 'only the plans of this template', idArg)
          .option('--name <part>', 'name contains'),
        async (ctx, flags: { template?: number; name?: string }) => {
          const rows = await ctx.client.readAll<PlanRow>('get_job_plan_list', {
            ...(flags.template ? { job_template_id: flags.template } : {}),
            ...(flags.name ? { name: flags.name } : {}),
          });
          printData(ctx.out, rows, () =>
            table(
              ['ID', 'TEMPLATE', 'MODIFIED', 'BY', 'SYNC', 'NAME'],
              rows.map((x) => [
                x.id,
                x.job_template_id,
                secs(x.last_modify_time),
                x.last_modify_user,
                x.need_update ? 'needed' : '',
                x.name,
              ]),
            ),
          );
        },
      ),
      'jf plans ls --template 3',
    ),
  );
  p.addCommand(
    examples(
      act(
        new Command('show')
          .description('a plan: its steps and variable values')
          .argument('<plan>', 'plan id or name'),
        async (ctx, ref: string) => {
          const plan = await findPlan(ctx.client, ref);
          const d = await ctx.client.call<Detail>('get_job_plan_detail', { job_plan_id: plan.id });
          printData(ctx.out, d, () => renderDetail('plan', d));
        },
      ),
      'jf plans show "nightly backup"',
    ),
  );
  const launch = new Command('launch')
    .description('run a plan (the same as jf run plan)')
    .argument('<plan>', 'plan id or name');
  p.addCommand(
    examples(
      act(startOptions(withVarOptions(launch)), async (ctx, ref: string, flags: StartFlags & VarFlags) => {
        const vars = await planVars(flags);
        const plan = await findPlan(ctx.client, ref);
        const started = await ctx.client.call<{ job_instance_id: number }>('execute_job_plan', {
          job_plan_id: plan.id,
          global_var_list: vars,
        });
        await followStarted(ctx, started.job_instance_id, flags);
      }),
      'jf plans launch 7 --var version=1.4.2',
    ),
  );
  p.addCommand(
    examples(
      act(
        new Command('sync')
          .description("take the template's current steps into the plan, keeping its values")
          .argument('<plan>', 'plan id or name'),
        async (ctx, ref: string) => {
          const plan = await findPlan(ctx.client, ref);
          await ctx.client.call('sync_job_plan', { job_plan_id: plan.id });
          printData(ctx.out, { job_plan_id: plan.id, synced: true }, () => `plan ${plan.id} synced`);
        },
      ),
      'jf plans ls -o json | jq ".[] | select(.need_update) | .id" | xargs -n1 jf plans sync',
    ),
  );
  return p;
}

interface CronRow {
  id: number;
  name: string;
  status: number;
  job_plan_id: number;
  expression: string | null;
  last_modify_user: string;
}

interface CronDetail extends CronRow {
  execute_time: number | null;
  execute_time_zone: string;
  end_time: number | null;
  next_run_times: number[];
  last_runs: {
    scheduled_time: number;
    outcome: string;
    job_instance_id: number | null;
    status: number | null;
    reason: string | null;
  }[];
  global_var_list: { name: string; value: string | null }[];
}

function cronsCommand(): Command {
  const c = new Command('crons').description('crons of the scope: plans run on a schedule');
  c.addCommand(
    examples(
      act(
        new Command('ls')
          .description('crons of the scope')
          .addOption(
            new Option('--status <state>', 'only enabled or disabled crons').choices(['enabled', 'disabled']),
          ),
        async (ctx, flags: { status?: string }) => {
          const rows = await ctx.client.readAll<CronRow>('get_cron_list', {
            ...(flags.status ? { status: flags.status === 'enabled' ? 1 : 0 } : {}),
          });
          printData(ctx.out, rows, () =>
            table(
              ['ID', 'STATE', 'PLAN', 'SCHEDULE', 'NAME'],
              rows.map((x) => [
                x.id,
                x.status === 1 ? 'enabled' : 'disabled',
                x.job_plan_id,
                x.expression ?? '(once)',
                x.name,
              ]),
            ),
          );
        },
      ),
      'jf crons ls --status enabled',
    ),
  );
  c.addCommand(
    examples(
      act(
        new Command('show')
          .description('a cron with its next run times and last runs')
          .argument('<id>', 'cron id', idArg),
        async (ctx, id: number) => {
          const d = await ctx.client.call<CronDetail>('get_cron_detail', { id });
          printData(ctx.out, d, () =>
            [
              `cron ${d.id}: ${d.name} (${d.status === 1 ? 'enabled' : 'disabled'}), plan ${d.job_plan_id}`,
              `schedule: ${d.expression ?? `once at ${secs(d.execute_time)}`} ${d.execute_time_zone}${d.end_time ? `, until ${secs(d.end_time)}` : ''}`,
              `next: ${d.next_run_times.map(secs).join(', ') || 'none'}`,
              ...(d.last_runs.length
                ? [
                    '',
                    table(
                      ['DUE', 'OUTCOME', 'JOB', 'REASON'],
                      d.last_runs.map((r) => [
                        secs(r.scheduled_time),
                        r.outcome,
                        r.job_instance_id,
                        r.reason,
                      ]),
                    ),
                  ]
                : []),
            ].join('\n'),
          );
        },
      ),
      'jf crons show 4',
    ),
  );
  c.addCommand(
    examples(
      act(
        withVarOptions(new Command('save'))
          .description('create a cron (or change one with --id); it is saved disabled unless --enable')
          .option('--id <id>', 'the cron to change', idArg)
          .option('--plan <plan>', 'plan id or name (required for a new cron)')
          .option('--name <name>', 'cron name (required for a new cron)')
          .option('--cron <expr>', '5-field cron expression, e.g. "0 2 * * *"')
          .option('--at <time>', 'run once at this time (ISO 8601, e.g. 2026-12-01T02:00:00Z)')
          .option('--tz <zone>', "IANA time zone of the expression (default: the server's)")
          .option('--until <time>', 'no run after this time (ISO 8601)')
          .option('--enable', 'enable the cron once saved'),
        async (
          ctx,
          f: {
            id?: number;
            plan?: string;
            name?: string;
            cron?: string;
            at?: string;
            tz?: string;
            until?: string;
            enable?: boolean;
          } & VarFlags,
        ) => {
          if (f.cron && f.at) throw new CliError('give --cron or --at, not both', Exit.USAGE);
          if (f.id === undefined && (!f.plan || !f.name || (!f.cron && !f.at)))
            throw new CliError('a new cron needs --plan, --name and --cron or --at', Exit.USAGE);
          const when = (flag: string, v: string | undefined) => {
            if (v === undefined) return undefined;
            const t = Date.parse(v);
            if (Number.isNaN(t)) throw new CliError(`${flag} ${v}: not a time (ISO 8601)`, Exit.USAGE);
            return Math.floor(t / 1000);
          };
          const at = when('--at', f.at);
          const until = when('--until', f.until);
          const vars = await planVars(f);
          const plan = f.plan ? await findPlan(ctx.client, f.plan) : undefined;
          const saved = await ctx.client.call<{ id: number }>('save_cron', {
            ...(f.id ? { id: f.id } : {}),
            ...(plan ? { job_plan_id: plan.id } : {}),
            ...(f.name ? { name: f.name } : {}),
            ...(f.cron ? { expression: f.cron } : {}),
            ...(at ? { execute_time: at } : {}),
            ...(f.tz ? { execute_time_zone: f.tz } : {}),
            ...(until ? { end_time: until } : {}),
            ...(vars.length ? { global_var_list: vars } : {}),
          });
          if (f.enable) await ctx.client.call('update_cron_status', { id: saved.id, status: 1 });
          printData(
            ctx.out,
            { id: saved.id, enabled: Boolean(f.enable) },
            () =>
              `cron ${saved.id} saved, ${f.enable ? 'enabled' : `disabled (jf crons enable ${saved.id})`}`,
          );
        },
      ),
      'jf crons save --plan "nightly backup" --name nightly --cron "0 2 * * *" --tz Europe/Berlin --enable',
      'jf crons save --id 4 --cron "30 2 * * *"',
    ),
  );
  for (const [name, status, what] of [
    ['enable', 1, 'enabled'],
    ['disable', 0, 'disabled'],
  ] as const)
    c.addCommand(
      examples(
        act(
          new Command(name).description(`${name} a cron`).argument('<id>', 'cron id', idArg),
          async (ctx, id: number) => {
            await ctx.client.call('update_cron_status', { id, status });
            printData(ctx.out, { id, status }, () => `cron ${id} ${what}`);
          },
        ),
        `jf crons ${name} 4`,
      ),
    );
  c.addCommand(
    examples(
      act(
        new Command('delete').description('delete a cron').argument('<id>', 'cron id', idArg),
        async (ctx, id: number) => {
          await ctx.client.call('delete_cron', { id });
          printData(ctx.out, { id, deleted: true }, () => `cron ${id} deleted`);
        },
      ),
      'jf crons delete 4',
    ),
  );
  return c;
}

interface ScriptRow {
  id: string;
  name: string;
  online_script_version_id: number | null;
}
interface VersionRow {
  id: number;
  version: string;
  status: number;
  content?: string;
}

/** A library script by id or exact name. */
async function findScript(client: ApiClient, ref: string): Promise<ScriptRow | undefined> {
  const named = await client.readAll<ScriptRow>('get_script_list', { name: ref });
  return (
    named.find((s) => s.name === ref) ??
    (await client.readAll<ScriptRow>('get_script_list')).find((s) => s.id === ref)
  );
}

async function versionsOf(client: ApiClient, scriptId: string): Promise<VersionRow[]> {
  return client.readAll<VersionRow>('get_script_version_list', {
    script_id: scriptId,
    return_script_content: true,
  });
}

/** A version named by its name or id ("online": the online one). */
function pickVersion(script: ScriptRow, versions: VersionRow[], ref: string): VersionRow {
  const v =
    ref === 'online'
      ? versions.find((x) => x.id === script.online_script_version_id)
      : (versions.find((x) => x.version === ref) ?? versions.find((x) => String(x.id) === ref));
  if (!v)
    throw new CliError(
      ref === 'online'
        ? `script ${script.name} has no online version`
        : `script ${script.name} has no version "${ref}"`,
    );
  return v;
}

function readLocal(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch {
    throw new CliError(`cannot read ${file}`, Exit.USAGE);
  }
}

/** `jf scripts push|publish|diff`, added to the `scripts` command of setup-commands.ts. */
export function addScriptCommands(scripts: Command): Command {
  scripts.addCommand(
    examples(
      act(
        new Command('push')
          .description(
            'a local file as a new version of the script of that name (a new script when there is none)',
          )
          .argument('<file>', 'script file')
          .requiredOption('--name <name>', 'script name')
          .requiredOption('--script-version <version>', "version name (--version prints jf's own)")
          .option('--desc <text>', 'version description')
          .option('--publish', 'put the new version online'),
        async (
          ctx,
          file: string,
          f: { name: string; scriptVersion: string; desc?: string; publish?: boolean },
        ) => {
          // Its bytes: the server refuses what is not UTF-8 text, where reading it as UTF-8 here
          // would have replaced those bytes unseen.
          const content = readLocal(file).toString('base64');
          const existing = await findScript(ctx.client, f.name);
          const created = await ctx.client.call<{
            id: number;
            script_id: string;
            warnings?: { description: string }[];
          }>(
            existing ? 'create_script_version' : 'create_script',
            existing
              ? { script_id: existing.id, version: f.scriptVersion, content, version_desc: f.desc ?? '' }
              : {
                  name: f.name,
                  version: f.scriptVersion,
                  content,
                  version_desc: f.desc ?? '',
                  script_language: languageOf(file, undefined),
                },
          );
          if (f.publish)
            await ctx.client.call('publish_script_version', {
              script_id: created.script_id,
              script_version_id: created.id,
            });
          for (const w of created.warnings ?? []) process.stderr.write(`warning: ${w.description}\n`);
          printData(
            ctx.out,
            {
              script_id: created.script_id,
              script_version_id: created.id,
              version: f.scriptVersion,
              published: Boolean(f.publish),
            },
            () =>
              `script ${created.script_id} version ${f.scriptVersion} (${created.id}) ${f.publish ? 'online' : 'saved as a draft'}`,
          );
        },
      ),
      'jf scripts push deploy.sh --name deploy --script-version v4 --publish',
    ),
  );
  scripts.addCommand(
    examples(
      act(
        new Command('publish')
          .description('put a version online (the online one goes offline)')
          .argument('<script>', 'script id or name')
          .argument('<version>', 'version name or id'),
        async (ctx, ref: string, version: string) => {
          const script = await findScript(ctx.client, ref);
          if (!script) throw new CliError(`no script ${ref} in this scope`);
          const v = pickVersion(script, await versionsOf(ctx.client, script.id), version);
          await ctx.client.call('publish_script_version', { script_id: script.id, script_version_id: v.id });
          printData(
            ctx.out,
            { script_id: script.id, script_version_id: v.id, version: v.version },
            () => `script ${script.name} version ${v.version} is online`,
          );
        },
      ),
      'jf scripts publish deploy v4',
    ),
  );
  scripts.addCommand(
    examples(
      act(
        new Command('diff')
          .description(
            'a unified diff between two versions, or a version and a local file (exit 1 when they differ)',
          )
          .argument('<script>', 'script id or name')
          .argument('<a>', 'version name or id, "online", or a local file')
          .argument('[b]', 'the same (default: the online version)'),
        async (ctx, ref: string, a: string, b: string | undefined) => {
          const script = await findScript(ctx.client, ref);
          if (!script) throw new CliError(`no script ${ref} in this scope`);
          const versions = await versionsOf(ctx.client, script.id);
          const side = (x: string) => {
            if (fs.existsSync(x)) return { label: x, text: readLocal(x).toString('utf8') };
            const v = pickVersion(script, versions, x);
            return { label: `${script.name}@${v.version}`, text: v.content ?? '' };
          };
          const left = side(b === undefined ? 'online' : a);
          const right = side(b ?? a);
          const { createTwoFilesPatch } = await import('diff');
          const same = left.text === right.text;
          const patch = same ? '' : createTwoFilesPatch(left.label, right.label, left.text, right.text);
          printData(ctx.out, { left: left.label, right: right.label, identical: same, diff: patch }, () =>
            patch.replace(/^=+\n/, ''),
          );
          if (!same) process.exitCode = Exit.FAILED;
        },
      ),
      'jf scripts diff deploy ./deploy.sh          # the online version against a local file',
      'jf scripts diff deploy v3 v4',
    ),
  );
  return scripts;
}

export function resourceCommands(): Command[] {
  return [templatesCommand(), plansCommand(), cronsCommand()];
}
