/**
 * `jf run file`, `jf run plan` and `jf redo`: the other ways to start a job. Each follows the
 * job and prints its gathered result as `jf run script` does (job-commands.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import type { ApiClient } from './api-client.js';
import { contextOf, jobId, positiveInt } from './context.js';
import { CliError, Exit } from './exit-codes.js';
import {
  PARAM_FILE_OPTION,
  ROLLING_MODES,
  collect,
  followStarted,
  paramOf,
  startOptions,
  targetOption,
} from './job-commands.js';
import type { StartFlags } from './job-commands.js';
import { readValueFile } from './secret-input.js';
import { parseTargets } from './targets.js';

const TRANSFER_MODES: Record<string, number> = { strict: 1, force: 2 };

/** `HOST:/path` (HOST any single target expression: ip, cloud:ip, host id, range). */
const REMOTE = /^(.+?):(\/.*)$/;

interface FileSource {
  file_list: string[];
  file_type: number;
  server?: unknown;
  account?: { alias: string };
}

/**
 * Sources as the API takes them: local files are uploaded first (one upload URL each) and sent
 * as file_type 2; `HOST:/path` sources are read from that host (file_type 1) as the account.
 */
async function fileSources(client: ApiClient, sources: string[], account: string): Promise<FileSource[]> {
  const local: string[] = [];
  const remote = new Map<string, string[]>();
  for (const src of sources) {
    if (fs.existsSync(src)) {
      if (!fs.statSync(src).isFile())
        throw new CliError(
          `${src} is not a regular file (send directories from a host: HOST:${path.resolve(src)}/)`,
          Exit.USAGE,
        );
      local.push(src);
      continue;
    }
    const m = REMOTE.exec(src);
    if (!m) throw new CliError(`no local file ${src} (a file on a host is HOST:/path)`, Exit.USAGE);
    const [, host, file] = m as unknown as [string, string, string];
    parseTargets([host]);
    remote.set(host, [...(remote.get(host) ?? []), file]);
  }
  const names = local.map((f) => path.basename(f));
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup)
    throw new CliError(`two local files are named ${dup}; the target directory can hold one`, Exit.USAGE);
  const out: FileSource[] = [];
  if (local.length > 0) {
    const { url_map } = await client.call<{ url_map: Record<string, { upload_url: string; path: string }> }>(
      'generate_local_file_upload_url',
      { file_name_list: names },
    );
    const paths: string[] = [];
    for (const f of local) {
      const target = url_map[path.basename(f)];
      if (!target) throw new CliError(`the server gave no upload URL for ${f}`);
      let res: Response;
      try {
        res = await fetch(target.upload_url, { method: 'PUT', body: await fs.openAsBlob(f) });
      } catch (err) {
        throw new CliError(`cannot upload ${f}: ${err instanceof Error ? err.message : String(err)}`);
      }
      const env = (await res.json().catch(() => ({ result: false, message: `HTTP ${res.status}` }))) as {
        result: boolean;
        message?: string;
      };
      if (!env.result) throw new CliError(`upload of ${f} refused: ${env.message ?? ''}`);
      paths.push(target.path);
    }
    out.push({ file_list: paths, file_type: 2 });
  }
  for (const [host, files] of remote)
    out.push({ file_list: files, file_type: 1, server: parseTargets([host]), account: { alias: account } });
  return out;
}

interface FileFlags extends StartFlags {
  to: string;
  target: string[];
  account?: string;
  limitUp?: number;
  limitDown?: number;
  mode: string;
  name?: string;
  timeout?: number;
}

export function runFileCommand(): Command {
  const cmd = new Command('file')
    .description('send files to hosts: local files (uploaded first) or HOST:/path files of another host')
    .argument('<sources...>', 'local files, or HOST:/path on a host (ip, cloud:ip or host id)')
    .requiredOption('--to <dir>', 'target directory on every host')
    .addOption(targetOption())
    .option(
      '-a, --account <alias>',
      'account on the targets (and sources); default: the profile account, else your OS user',
    )
    .option('--limit-up <MB/s>', 'upload speed limit of each source', positiveInt('limit'))
    .option('--limit-down <MB/s>', 'download speed limit of each target', positiveInt('limit'))
    .addOption(
      new Option('--mode <mode>', 'strict: fail when a source is missing; force: send what exists')
        .choices(Object.keys(TRANSFER_MODES))
        .default('force'),
    )
    .option('--timeout <seconds>', 'transfer timeout', positiveInt('timeout'))
    .option('-n, --name <name>', 'job name');
  return startOptions(cmd)
    .addHelpText(
      'after',
      `
Examples:
  jf run file ./app.tgz ./app.conf --to /opt/app/ -t 10.0.1.[1-40]
  jf run file 10.0.0.5:/etc/ssl/ca.pem --to /etc/ssl/ -t @hosts.txt --mode strict
  jf run file build/app.tgz --to /srv/ -t group:web --limit-down 20 --detach`,
    )
    .action(async (sources: string[], flags: FileFlags, c: Command) => {
      const targetServer = parseTargets(flags.target);
      if (!flags.to.startsWith('/') && !/^[A-Za-z]:[\\/]/.test(flags.to))
        throw new CliError(`--to ${flags.to}: give an absolute directory`, Exit.USAGE);
      const ctx = await contextOf(c);
      const account = flags.account ?? ctx.client.conn.account;
      const list = await fileSources(ctx.client, sources, account);
      const started = await ctx.client.call<{ job_instance_id: number }>('fast_transfer_file', {
        file_source_list: list,
        file_target_path: flags.to,
        target_server: targetServer,
        account_alias: account,
        transfer_mode: TRANSFER_MODES[flags.mode],
        ...(flags.limitUp ? { upload_speed_limit: flags.limitUp } : {}),
        ...(flags.limitDown ? { download_speed_limit: flags.limitDown } : {}),
        ...(flags.timeout ? { timeout: flags.timeout } : {}),
        ...(flags.name ? { task_name: flags.name } : {}),
      });
      await followStarted(ctx, started.job_instance_id, flags);
    });
}

export interface VarFlags {
  var?: string[];
  varFile?: string[];
}

/**
 * `--var name=value` (a string) or `--var name=hosts:TARGETS` for a host list variable, then
 * `--var-file name=FILE`: a value read from a file as --param-file reads it (a cipher value kept
 * off the command line and out of the shell's history).
 */
export async function planVars(flags: VarFlags): Promise<Record<string, unknown>[]> {
  const pair = (flag: string, v: string, what: string) => {
    const eq = v.indexOf('=');
    if (eq <= 0) throw new CliError(`${flag} ${v}: give NAME=${what}`, Exit.USAGE);
    return [v.slice(0, eq), v.slice(eq + 1)] as const;
  };
  const vars: Record<string, unknown>[] = (flags.var ?? []).map((v) => {
    const [name, value] = pair('--var', v, 'VALUE');
    return value.startsWith('hosts:')
      ? { name, server: parseTargets([value.slice('hosts:'.length)]) }
      : { name, value };
  });
  for (const v of flags.varFile ?? []) {
    const [name, file] = pair('--var-file', v, 'FILE');
    vars.push({ name, value: await readValueFile(file) });
  }
  return vars;
}

/** --var and --var-file, on every command that gives plan variable values. */
export function withVarOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        '--var <name=value>',
        'a plan variable value (repeatable); NAME=hosts:TARGETS for a host list variable',
      ).argParser(collect),
    )
    .addOption(
      new Option(
        '--var-file <name=file>',
        'a plan variable value read from a file (repeatable; - for standard input; one final line end is dropped)',
      ).argParser(collect),
    );
}

/** A plan named by id, or by its exact name in the scope. */
export async function findPlan(client: ApiClient, ref: string): Promise<{ id: number; name: string }> {
  if (/^\d+$/.test(ref)) return { id: Number(ref), name: ref };
  const list = await client.readAll<{ id: number; name: string }>('get_job_plan_list', { name: ref });
  const hits = list.filter((p) => p.name === ref);
  if (hits.length === 0) throw new CliError(`no plan named "${ref}" in this scope`);
  if (hits.length > 1)
    throw new CliError(
      `${hits.length} plans are named "${ref}" (ids ${hits.map((h) => h.id).join(', ')}); give the id`,
    );
  return hits[0] as { id: number; name: string };
}

export function runPlanCommand(): Command {
  const cmd = new Command('plan')
    .description('run a job plan (by id or name) with variable values')
    .argument('<plan>', 'plan id or name');
  return startOptions(withVarOptions(cmd))
    .addHelpText(
      'after',
      `
Examples:
  jf run plan 7
  jf run plan "nightly backup" --var target_dir=/srv/backups --var hosts=hosts:10.0.2.[1-8]
  jf run plan 7 --detach -o json | jq .job_instance_id
  jf run plan deploy --var-file db_password=- < password.txt`,
    )
    .action(async (ref: string, flags: StartFlags & VarFlags, c: Command) => {
      const vars = await planVars(flags);
      const ctx = await contextOf(c);
      const plan = await findPlan(ctx.client, ref);
      const started = await ctx.client.call<{ job_instance_id: number }>('execute_job_plan', {
        job_plan_id: plan.id,
        global_var_list: vars,
      });
      await followStarted(ctx, started.job_instance_id, flags);
    });
}

interface StepDetail {
  type: number;
  script_info: {
    script_type: number;
    script_version_id: number | null;
    script_content: string;
    script_language: number;
    script_param: string;
    script_timeout: number;
    account: { id: number };
    server: Record<string, unknown[]>;
    is_param_sensitive: number;
  } | null;
  file_info: {
    file_source_list: {
      file_list: string[];
      file_type: number;
      account: { id: number } | null;
      server: unknown;
    }[];
    file_destination: { path: string; account: { id: number }; server: unknown };
    timeout: number;
    source_speed_limit: number | null;
    destination_speed_limit: number | null;
    transfer_mode: number;
  } | null;
  rolling_config?: Record<string, unknown> | null;
}

/** The job list row of one job (its type and plan), found in the second it was created. */
async function jobRow(
  client: ApiClient,
  id: number,
): Promise<{ type: number; job_plan_id: number | null; name: string }> {
  const st = await client.jobStatus(id);
  const t = st.job_instance.create_time;
  const list = await client.call<{
    data: { job_instance_id: number; type: number; job_plan_id: number | null; name: string }[];
  }>('get_job_instance_list', { create_time_start: t, create_time_end: t + 1000, length: 1000 });
  const row = list.data.find((j) => j.job_instance_id === id);
  if (!row) throw new CliError(`job ${id} is not in the job history`);
  return row;
}

/**
 * The request that starts a job like `id` again. A plan job runs its plan (with the plan's
 * current values, and --var); a script or file job is sent again as its step was submitted.
 */
async function redoRequest(
  client: ApiClient,
  id: number,
  vars: Record<string, unknown>[],
  param: string | undefined,
  rolling: Record<string, unknown> | undefined,
): Promise<{ api: string; body: Record<string, unknown> }> {
  const row = await jobRow(client, id);
  if (row.type === 0) {
    if (row.job_plan_id === null) throw new CliError(`job ${id} names no plan`);
    if (rolling) throw new CliError(`job ${id} is a plan's job: its plan says how it rolls`, Exit.USAGE);
    return { api: 'execute_job_plan', body: { job_plan_id: row.job_plan_id, global_var_list: vars } };
  }
  if (vars.length > 0)
    throw new CliError(`job ${id} is not a plan's job: --var has nothing to set`, Exit.USAGE);
  const st = await client.jobStatus(id);
  const stepId = st.step_instance_list[0]?.step_instance_id;
  if (stepId === undefined) throw new CliError(`job ${id} has no step`);
  const d = await client.call<StepDetail>('get_step_instance_detail', {
    job_instance_id: id,
    step_instance_id: stepId,
  });
  // The batches the job rolled in, unless --rolling gives others.
  const rollingConfig = rolling ?? d.rolling_config ?? undefined;
  const common = { task_name: row.name, ...(rollingConfig ? { rolling_config: rollingConfig } : {}) };
  if (d.script_info) {
    const s = d.script_info;
    if (s.script_language === 6)
      throw new CliError(`job ${id} is a SQL job; jf redo runs script, file and plan jobs`);
    if (s.is_param_sensitive && param === undefined)
      throw new CliError(
        `job ${id} had sensitive parameters, which are not shown back: give them with --param-file (or --param)`,
        Exit.USAGE,
      );
    const p = param ?? s.script_param;
    return {
      api: 'fast_execute_script',
      body: {
        ...common,
        ...(s.script_version_id !== null && s.script_type !== 1
          ? { script_version_id: s.script_version_id }
          : {
              script_content: Buffer.from(s.script_content).toString('base64'),
              script_language: s.script_language,
            }),
        ...(p ? { script_param: Buffer.from(p).toString('base64') } : {}),
        ...(s.is_param_sensitive ? { is_param_sensitive: 1 } : {}),
        timeout: s.script_timeout,
        account_id: s.account.id,
        target_server: s.server,
      },
    };
  }
  if (d.file_info) {
    const f = d.file_info;
    return {
      api: 'fast_transfer_file',
      body: {
        ...common,
        file_source_list: f.file_source_list.map((s) => ({
          file_list: s.file_list,
          file_type: s.file_type,
          ...(s.file_type === 1 ? { server: s.server, account: { id: s.account?.id } } : {}),
        })),
        file_target_path: f.file_destination.path,
        account_id: f.file_destination.account.id,
        target_server: f.file_destination.server,
        timeout: f.timeout,
        transfer_mode: f.transfer_mode,
        ...(f.source_speed_limit ? { upload_speed_limit: f.source_speed_limit } : {}),
        ...(f.destination_speed_limit ? { download_speed_limit: f.destination_speed_limit } : {}),
      },
    };
  }
  throw new CliError(`job ${id}'s step cannot be run again on its own`);
}

interface RedoFlags extends StartFlags, VarFlags {
  param?: string;
  paramFile?: string;
  rolling?: string;
  rollingMode: string;
}

export function redoCommand(): Command {
  const cmd = new Command('redo')
    .description('start a job again as it was submitted (a plan job: its plan, with --var values)')
    .argument('<job>', 'job instance id', jobId)
    .option('-p, --param <text>', 'script parameters (needed when the job hid them as sensitive)')
    .option(...PARAM_FILE_OPTION)
    .option('--rolling <expr>', 'rolling batches, e.g. "10%" (default: the batches the job rolled in)')
    .addOption(
      new Option('--rolling-mode <mode>', 'on a failed batch')
        .choices(Object.keys(ROLLING_MODES))
        .default('pause'),
    );
  return startOptions(withVarOptions(cmd))
    .addHelpText(
      'after',
      "\nExamples:\n  jf redo 42\n  jf redo 57 --var version=1.4.2 --detach\n  jf redo 61 --param-file secret-args.txt --rolling '1 5 25%'",
    )
    .action(async (id: number, flags: RedoFlags, c: Command) => {
      const vars = await planVars(flags);
      const param = await paramOf(flags);
      const rolling = flags.rolling
        ? { expression: flags.rolling, mode: ROLLING_MODES[flags.rollingMode] }
        : undefined;
      const ctx = await contextOf(c);
      const { api, body } = await redoRequest(ctx.client, id, vars, param, rolling);
      const started = await ctx.client.call<{ job_instance_id: number }>(api, body);
      await followStarted(ctx, started.job_instance_id, flags);
    });
}
