/** `jf run`, `jf watch`, `jf result`, `jf logs`, `jf hosts`, the step operations and `jf jobs`. */
import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import type { ApiClient, HostResult, JobStatus, StepStatus } from './api-client.js';
import { contextOf, jobId, positiveInt } from './context.js';
import type { Ctx } from './context.js';
import type { StepReport } from './job-report.js';
import type { Normaliser } from '@jobfleet/server/output-normalisers';
import { CliError, Exit } from './exit-codes.js';
import { followJob } from './follow.js';
import { applyEvents, progressLine, progressOf } from './job-progress.js';
import type { Progress } from './job-progress.js';
import { foldHosts } from './host-fold.js';
import { LogFollower } from './log-follow.js';
import { counts, currentStep, exitCodeOf, renderGroups, stepReports, summaryLine } from './job-report.js';
import { duration, hostLabel, printData, table } from './render.js';
import { RUN_STATUS_NAMES, hostState } from './statuses.js';
import { parseTargets } from './targets.js';
import { readValueFile } from './secret-input.js';

const LANGUAGES: Record<string, number> = { shell: 1, bat: 2, perl: 3, python: 4, powershell: 5 };
export const ROLLING_MODES: Record<string, number> = { pause: 1, ignore: 2, confirm: 3 };
/** The longest create-time window get_job_instance_list accepts. */
const THIRTY_DAYS_MS = 30 * 24 * 3600_000;

export const collect = (v: string, prev: string[] = []) => [...prev, v];

/**
 * Follows a job to its end with the live line; Enter lists the hosts still running and Ctrl-C
 * detaches (the job goes on; exit 130, so that `jf run ... && next` does not go on). With
 * -o ndjson each stream event goes to stdout with its cursor (`id`), or each status snapshot
 * when polling. Returns the final status.
 */
async function watchJob(
  ctx: Ctx,
  id: number,
  timeoutMs: number | undefined,
  cursor?: number,
): Promise<JobStatus> {
  const live = ctx.out.progress;
  const startedAt = Date.now();
  const abort = new AbortController();
  let progress: Progress | undefined;
  const draw = () => {
    if (live && progress) process.stderr.write(`\r\x1b[2K${progressLine(progress, startedAt)}`);
  };
  const onSigint = () => abort.abort();
  process.once('SIGINT', onSigint);
  const onEnter = () => {
    void ctx.client.jobStatus(id).then(
      (st) => {
        const hosts = currentStep(st)?.step_ip_result_list ?? [];
        const running = hosts
          .filter((h) => hostState(h.status) === 'running' || hostState(h.status) === 'waiting')
          .map(hostLabel);
        process.stderr.write(`\r\x1b[2Kstill running: ${running.length ? foldHosts(running) : 'none'}\n`);
        draw();
      },
      () => undefined,
    );
  };
  const stdinLive = live && process.stdin.isTTY;
  if (stdinLive) process.stdin.on('data', onEnter);
  try {
    return await followJob(ctx.client, id, {
      timeoutMs,
      cursor,
      signal: abort.signal,
      onEvents: (events) => {
        progress = applyEvents(progress, id, events);
        draw();
        if (ctx.out.format === 'ndjson')
          for (const e of events) process.stdout.write(JSON.stringify(e) + '\n');
      },
      onSnapshot: (st) => {
        progress = progressOf(st);
        draw();
        if (ctx.out.format === 'ndjson')
          process.stdout.write(JSON.stringify({ event: 'status', data: st }) + '\n');
      },
    });
  } catch (err) {
    if (err instanceof CliError && err.message === 'detached')
      throw new CliError(`detached; job ${id} goes on (jf watch ${id})`, Exit.INTERRUPTED);
    throw err;
  } finally {
    if (live) process.stderr.write('\r\x1b[2K');
    process.off('SIGINT', onSigint);
    if (stdinLive) {
      process.stdin.off('data', onEnter);
      process.stdin.pause();
    }
  }
}

/** The step asked for, or the job's current one; a CliError when the job has no such step. */
function pickStep(st: JobStatus, stepId: number | undefined): StepStatus {
  const step =
    stepId === undefined ? currentStep(st) : st.step_instance_list.find((s) => s.step_instance_id === stepId);
  if (!step) throw new CliError(`job ${st.job_instance.job_instance_id} has no step ${stepId ?? ''}`.trim());
  return step;
}

export interface ReportFlags {
  step?: number;
  normalise?: Normaliser[];
  maxrc?: boolean;
  outdir?: string;
  diff?: boolean;
  ref?: number;
}

/**
 * `--diff` (clush --diff): each other group's output as a unified diff against the reference
 * group (--ref N, default the first: the largest). The diff library loads only when asked.
 */
async function addDiffs(reports: StepReport[], ref: number): Promise<string> {
  const { createTwoFilesPatch } = await import('diff');
  const text: string[] = [];
  for (const r of reports) {
    const base = r.groups[ref - 1];
    if (!base)
      throw new CliError(
        `step ${r.step_instance_id} has ${r.groups.length} output groups, not ${ref}`,
        Exit.USAGE,
      );
    for (const g of r.groups) {
      if (g === base) continue;
      g.diff = createTwoFilesPatch(
        base.folded,
        g.folded,
        base.output,
        g.output,
        `(${base.count})`,
        `(${g.count})`,
        {
          context: 3,
        },
      );
      text.push(g.diff.replace(/^=+\n/, ''));
    }
  }
  return text.join('');
}

/** Prints the gathered result of a job and sets the exit code. */
async function report(ctx: Ctx, st: JobStatus, flags: ReportFlags): Promise<void> {
  const reports = await stepReports(ctx.client, st, flags.step, flags.normalise);
  const diffs = flags.diff ? await addDiffs(reports, flags.ref ?? 1) : undefined;
  if (flags.outdir) await writeOutdir(ctx.client, st, flags.outdir, flags.step);
  const doc = {
    job_instance_id: st.job_instance.job_instance_id,
    name: st.job_instance.name,
    status: st.job_instance.status,
    status_name: RUN_STATUS_NAMES[st.job_instance.status],
    finished: st.finished,
    steps: reports,
  };
  if (ctx.out.format === 'ndjson')
    process.stdout.write(JSON.stringify({ event: 'result', data: doc }) + '\n');
  else printData(ctx.out, doc, () => diffs ?? renderGroups(ctx.out, reports));
  if (ctx.out.format === 'human' && !ctx.out.quiet) process.stderr.write(summaryLine(ctx.out, st) + '\n');
  process.exitCode = exitCodeOf(st, Boolean(flags.maxrc));
}

/** -t: the hosts a job runs on (targets.ts). */
export function targetOption(): Option {
  return new Option(
    '-t, --target <targets>',
    'hosts: ids, ip, cloud:ip, 10.0.1.[1-40], topo:module:ID, group:ID, @file (repeatable)',
  )
    .argParser(collect)
    .makeOptionMandatory();
}

/** What every command that starts a job does next: print its id (--detach), or follow it and report. */
export interface StartFlags extends ReportFlags {
  detach?: boolean;
  waitTimeout?: number;
}

export async function followStarted(ctx: Ctx, id: number, flags: StartFlags): Promise<void> {
  if (flags.detach) {
    printData(ctx.out, { job_instance_id: id }, () => String(id));
    return;
  }
  if (ctx.out.progress && ctx.out.format === 'human') process.stderr.write(`job ${id} started\n`);
  const st = await watchJob(ctx, id, flags.waitTimeout ? flags.waitTimeout * 1000 : undefined);
  await report(ctx, st, flags);
}

/** The options of following a started job, shared by every command that starts one. */
export function startOptions(c: Command): Command {
  return c
    .option('-d, --detach', 'print the job id and return at once')
    .option(
      '--wait-timeout <seconds>',
      'stop following after this long (exit 5; the job goes on)',
      positiveInt('wait timeout'),
    )
    .option('--maxrc', 'exit with the largest host exit code')
    .option('--outdir <dir>', 'also write each host output to DIR/<host>')
    .option(...NORMALISE_OPTION);
}

const NORMALISERS = ['host', 'timestamps', 'numbers'] as const satisfies readonly Normaliser[];

/**
 * `--normalise host,timestamps,numbers`: group outputs that differ only by the host's own
 * address, times or numbers, with the server's output-group normalisers (docs/output-groups.md).
 */
export const NORMALISE_OPTION = [
  '--normalise <list>',
  `ignore these differences when gathering: ${NORMALISERS.join(', ')} (comma-separated)`,
  (v: string): Normaliser[] => {
    const list = v.split(',').map((x) => x.trim());
    const bad = list.find((x) => !(NORMALISERS as readonly string[]).includes(x));
    if (bad !== undefined)
      throw new CliError(`--normalise ${bad}: choose from ${NORMALISERS.join(', ')}`, Exit.USAGE);
    return list as Normaliser[];
  },
] as const;

async function writeOutdir(client: ApiClient, st: JobStatus, dir: string, stepId?: number): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  const steps = st.step_instance_list.filter((s) => stepId === undefined || s.step_instance_id === stepId);
  for (const s of steps) {
    const target = steps.length > 1 ? path.join(dir, `step-${s.step_instance_id}`) : dir;
    fs.mkdirSync(target, { recursive: true });
    const byId = new Map((s.step_ip_result_list ?? []).map((h) => [h.bk_host_id, h]));
    const batches = client.hostLogBatches(st.job_instance.job_instance_id, s.step_instance_id, [
      ...byId.keys(),
    ]);
    for await (const logs of batches)
      for (const [hostId, output] of logs) {
        const h = byId.get(hostId);
        if (h) fs.writeFileSync(path.join(target, hostLabel(h).replace(/[/:]/g, '_')), output);
      }
  }
}

async function scriptVersionId(client: ApiClient, spec: string): Promise<Record<string, unknown>> {
  const [id, version] = spec.split('@');
  if (!id) throw new CliError(`--script ${spec}: give ID or ID@VERSION`, Exit.USAGE);
  if (version === undefined) return { script_id: id };
  const list = await client.readAll<{ id: number; version: string }>('get_script_version_list', {
    script_id: id,
  });
  const found = list.find((v) => v.version === version);
  if (!found) throw new CliError(`script ${id} has no version "${version}"`, Exit.USAGE);
  return { script_version_id: found.id };
}

interface RunFlags extends StartFlags {
  command?: string;
  file?: string;
  script?: string;
  target: string[];
  account?: string;
  timeout?: number;
  param?: string;
  paramFile?: string;
  sensitive?: boolean;
  lang: string;
  rolling?: string;
  rollingMode: string;
  name?: string;
}

/** `--param-file`: parameters kept off the command line, where ps and the shell history show them. */
export const PARAM_FILE_OPTION = [
  '--param-file <path>',
  'read the script parameters from a file (- for standard input; one final line end is dropped)',
] as const;

/** The script parameters of --param or --param-file (not both). */
export async function paramOf(flags: { param?: string; paramFile?: string }): Promise<string | undefined> {
  if (flags.paramFile === undefined) return flags.param;
  if (flags.param !== undefined) throw new CliError('give --param or --param-file, not both', Exit.USAGE);
  return readValueFile(flags.paramFile);
}

function runScriptCommand(): Command {
  const cmd = new Command('script')
    .description('run a script on hosts and follow it; the gathered output goes to stdout')
    .option('-c, --command <cmd>', 'script text')
    .option('-f, --file <file>', 'script file')
    .option('--script <id[@version]>', 'a library script (its online version, or the named version)')
    .addOption(targetOption())
    .option(
      '-a, --account <alias>',
      'execution account alias (default: the profile account, else your OS user)',
    )
    .option('--timeout <seconds>', 'script timeout', positiveInt('timeout'))
    .option('-p, --param <text>', 'script parameters')
    .option(...PARAM_FILE_OPTION)
    .option('--sensitive', 'hide the parameters in logs and history (give them with --param-file)')
    .addOption(
      new Option('-l, --lang <language>', 'script language').choices(Object.keys(LANGUAGES)).default('shell'),
    )
    .option('--rolling <expr>', 'rolling batches, e.g. "10%" or "1 2 5+"')
    .addOption(
      new Option('--rolling-mode <mode>', 'on a failed batch')
        .choices(Object.keys(ROLLING_MODES))
        .default('pause'),
    )
    .option('-n, --name <name>', 'job name');
  return startOptions(cmd)
    .addHelpText(
      'after',
      `
Examples:
  jf run script -c 'uptime' -t 10.0.1.[1-40]
  jf run script -f deploy.sh -p '--fast' -t @hosts.txt --rolling 10% --rolling-mode confirm
  jf run script -f rotate.sh --param-file - --sensitive -t 42 < key.txt
  jf run script --script 12@v3 -t 42,43 --detach
  jf run script -c 'df -h /' -t 0:10.0.2.7 -o json | jq '.steps[0].groups[].folded'`,
    )
    .action(async (flags: RunFlags, cmd: Command) => {
      const sources = [flags.command, flags.file, flags.script].filter((s) => s !== undefined).length;
      if (sources !== 1)
        throw new CliError('give exactly one of -c CMD, -f FILE or --script ID[@VER]', Exit.USAGE);
      const targetServer = parseTargets(flags.target);
      const param = await paramOf(flags);
      const ctx = await contextOf(cmd);
      let content: Record<string, unknown>;
      if (flags.script) content = await scriptVersionId(ctx.client, flags.script);
      else {
        // A file goes as its bytes: a script in another encoding (GBK) runs as written.
        let body = Buffer.from(flags.command ?? '');
        if (flags.file) {
          try {
            body = fs.readFileSync(flags.file);
          } catch {
            throw new CliError(`cannot read script file ${flags.file}`, Exit.USAGE);
          }
        }
        content = {
          script_content: body.toString('base64'),
          script_language: LANGUAGES[flags.lang],
        };
      }
      const started = await ctx.client.call<{ job_instance_id: number }>('fast_execute_script', {
        ...content,
        account_alias: flags.account ?? ctx.client.conn.account,
        target_server: targetServer,
        ...(flags.name ? { task_name: flags.name } : {}),
        ...(flags.timeout ? { timeout: flags.timeout } : {}),
        ...(param !== undefined ? { script_param: Buffer.from(param).toString('base64') } : {}),
        ...(flags.sensitive ? { is_param_sensitive: 1 } : {}),
        ...(flags.rolling
          ? { rolling_config: { expression: flags.rolling, mode: ROLLING_MODES[flags.rollingMode] } }
          : {}),
      });
      await followStarted(ctx, started.job_instance_id, flags);
    });
}

function watchCommand(): Command {
  return new Command('watch')
    .description('follow a job with one live line on stderr; Enter lists running hosts, Ctrl-C detaches')
    .argument('<job>', 'job instance id', jobId)
    .option('--wait-timeout <seconds>', 'give up after this long (exit 5)', positiveInt('wait timeout'))
    .option('--maxrc', 'exit with the largest host exit code')
    .option(
      '--since <cursor>',
      'with -o ndjson: only the events after this cursor (an "id" printed before)',
      (v: string) => {
        const n = Number(v);
        if (!Number.isSafeInteger(n) || n < 0)
          throw new CliError(`cursor "${v}" is not an event id`, Exit.USAGE);
        return n;
      },
    )
    .addHelpText(
      'after',
      '\nExamples:\n  jf watch 42\n  jf watch 42 --wait-timeout 600 && echo done\n  jf watch 42 -o ndjson --since 1834 | jq -c \'select(.event == "host")\'',
    )
    .action(
      async (id: number, flags: { waitTimeout?: number; maxrc?: boolean; since?: number }, cmd: Command) => {
        const ctx = await contextOf(cmd);
        const st = await watchJob(
          ctx,
          id,
          flags.waitTimeout ? flags.waitTimeout * 1000 : undefined,
          flags.since,
        );
        const doc = {
          job_instance_id: id,
          status: st.job_instance.status,
          status_name: RUN_STATUS_NAMES[st.job_instance.status],
          counts: counts(st),
        };
        if (ctx.out.format === 'ndjson')
          process.stdout.write(JSON.stringify({ event: 'summary', data: doc }) + '\n');
        else printData(ctx.out, doc, () => summaryLine(ctx.out, st));
        process.exitCode = exitCodeOf(st, Boolean(flags.maxrc));
      },
    );
}

function resultCommand(): Command {
  return new Command('result')
    .description(
      'gathered output: hosts with the same output and exit code under one folded host list, largest group first',
    )
    .argument('<job>', 'job instance id', jobId)
    .option('-s, --step <id>', 'one step instance', positiveInt('step id'))
    .option('--maxrc', 'exit with the largest host exit code')
    .option('--diff', 'show how each group differs from the reference group (unified diff)')
    .option('--ref <n>', 'the reference group for --diff (default 1, the largest)', positiveInt('group'))
    .option(...NORMALISE_OPTION)
    .option('--outdir <dir>', 'also write each host output to DIR/<host>')
    .addHelpText(
      'after',
      "\nExamples:\n  jf result 42\n  jf result 42 --normalise host,timestamps,numbers\n  jf result 42 --outdir ./out && ls out\n  jf result 42 -o json | jq '.steps[].groups[] | {folded, exitCode}'",
    )
    .action(async (id: number, flags: ReportFlags, cmd: Command) => {
      const ctx = await contextOf(cmd);
      await report(ctx, await ctx.client.jobStatus(id), flags);
    });
}

interface LogFlags {
  step?: number;
  host?: string[];
  failed?: boolean;
  follow?: boolean;
  tail?: number;
}

function logsCommand(): Command {
  return new Command('logs')
    .description('host-prefixed output lines of a job')
    .argument('<job>', 'job instance id', jobId)
    .option(
      '-s, --step <id>',
      'one step instance (default: the current or last step)',
      positiveInt('step id'),
    )
    .option('-H, --host <host>', 'only this host (ip, cloud:ip or host id; repeatable)', collect)
    .option('--failed', 'only hosts that failed')
    .option('-f, --follow', 'keep printing new output until the job ends')
    .option('-n, --tail <lines>', 'only the last N lines of each host', positiveInt('tail'))
    .addHelpText(
      'after',
      '\nExamples:\n  jf logs 42 --failed\n  jf logs 42 -H 10.0.1.7 --tail 20\n  jf logs 42 -f | grep ERROR',
    )
    .action(async (id: number, flags: LogFlags, cmd: Command) => {
      if (flags.follow && flags.failed)
        throw new CliError('--failed lists finished hosts; use it without --follow', Exit.USAGE);
      const ctx = await contextOf(cmd);
      const collected: { host: string; lines: string[] }[] = [];
      const document = ctx.out.format === 'json' || ctx.out.format === 'yaml';
      const print = (host: string, text: string) => {
        const lines = text.split('\n');
        if (document) collected.push({ host, lines });
        else
          for (const line of lines)
            process.stdout.write(
              ctx.out.format === 'human' ? `${host}: ${line}\n` : JSON.stringify({ host, line }) + '\n',
            );
      };
      const st = await ctx.client.jobStatus(id);
      const matchHost = hostMatcher(id, st, flags.host);
      if (flags.follow) {
        // --tail: the last lines of what is there now, then everything new.
        let emit: (host: string, text: string) => void = print;
        const follower = new LogFollower(ctx.client, id, {
          stepId: flags.step,
          include: matchHost,
          emit: (host, text) => emit(host, text),
        });
        if (flags.tail) {
          const step = pickStep(st, flags.step);
          // As tail -f passes over the start of a file: what the other steps printed so far is
          // read past unprinted, so that only their new output follows the tail.
          emit = () => undefined;
          follower.markSnapshot({
            ...st,
            step_instance_list: st.step_instance_list.filter((s) => s !== step),
          });
          await follower.flush();
          emit = (host, text) => collected.push({ host, lines: text.split('\n') });
          follower.markSnapshot({ ...st, step_instance_list: [step] });
          await follower.flush();
          const lines = new Map<string, string[]>();
          for (const c of collected.splice(0)) lines.set(c.host, [...(lines.get(c.host) ?? []), ...c.lines]);
          for (const [host, l] of lines) print(host, l.slice(-(flags.tail ?? 0)).join('\n'));
          emit = print;
        }
        follower.learn(st);
        const end = await followJob(ctx.client, id, {
          onEvents: async (events) => {
            await follower.markEvents(events);
            await follower.flush();
          },
          onSnapshot: async (snap) => {
            follower.markSnapshot(snap);
            await follower.flush();
          },
        });
        follower.markSnapshot(end);
        await follower.flush();
        follower.finish();
      } else {
        const step = pickStep(st, flags.step);
        let hosts = (step.step_ip_result_list ?? []).filter(matchHost);
        if (flags.failed) hosts = hosts.filter((h) => hostState(h.status) === 'failed');
        // Printed a batch at a time: a whole fleet's logs are not held at once.
        const byId = new Map(hosts.map((h) => [h.bk_host_id, h]));
        const batches = ctx.client.hostLogBatches(id, step.step_instance_id, [...byId.keys()]);
        for await (const logs of batches)
          for (const [hostId, log] of logs) {
            const h = byId.get(hostId);
            const text = log.replace(/\n$/, '');
            if (h && text)
              print(hostLabel(h), flags.tail ? text.split('\n').slice(-flags.tail).join('\n') : text);
          }
      }
      if (document) printData(ctx.out, collected, () => '');
    });
}

/** --host filters (ip, cloud:ip or host id); a CliError when the job ran on none of them. */
function hostMatcher(id: number, st: JobStatus, wanted: string[] | undefined): (h: HostResult) => boolean {
  if (!wanted) return () => true;
  const set = new Set(wanted);
  const match = (h: HostResult) =>
    set.has(hostLabel(h)) || set.has(String(h.bk_host_id)) || set.has(h.ip ?? '');
  if (!st.step_instance_list.some((s) => (s.step_ip_result_list ?? []).some(match)))
    throw new CliError(`job ${id} ran on none of ${wanted.join(', ')}`);
  return match;
}

function hostsCommand(): Command {
  return new Command('hosts')
    .description('the hosts of a job, to pipe into the next run')
    .argument('<job>', 'job instance id', jobId)
    .option('-s, --step <id>', 'one step instance', positiveInt('step id'))
    .addOption(
      new Option('--status <state>', 'only hosts in this state').choices([
        'ok',
        'failed',
        'running',
        'waiting',
      ]),
    )
    .option(
      '-g, --group <n>',
      'only the hosts of output group N (1 = largest, as jf result lists them)',
      positiveInt('group'),
    )
    .addOption(
      new Option('--format <format>', 'how to print them').choices(['ips', 'ids', 'folded']).default('ips'),
    )
    .option(...NORMALISE_OPTION)
    .addHelpText(
      'after',
      '\nExamples:\n  jf hosts 42 --status failed --format folded\n  jf run script -c "systemctl restart app" -t "$(jf hosts 42 --group 2 --format ids)"',
    )
    .action(
      async (
        id: number,
        flags: { step?: number; status?: string; group?: number; format: string; normalise?: Normaliser[] },
        cmd: Command,
      ) => {
        const ctx = await contextOf(cmd);
        const st = await ctx.client.jobStatus(id);
        const step = pickStep(st, flags.step);
        let hosts = step.step_ip_result_list ?? [];
        if (flags.status) hosts = hosts.filter((h) => hostState(h.status) === flags.status);
        if (flags.group) {
          const [r] = await stepReports(ctx.client, st, step.step_instance_id, flags.normalise);
          const g = r?.groups[flags.group - 1];
          if (!g)
            throw new CliError(`job ${id} has ${r?.groups.length ?? 0} output groups, not ${flags.group}`);
          const ids = new Set(g.host_ids);
          hosts = hosts.filter((h) => ids.has(h.bk_host_id));
        }
        const labels = hosts.map(hostLabel);
        printData(
          ctx.out,
          hosts.map((h) => ({ bk_host_id: h.bk_host_id, bk_cloud_id: h.bk_cloud_id, ip: h.ip })),
          () =>
            flags.format === 'ids'
              ? hosts.map((h) => h.bk_host_id).join(',')
              : flags.format === 'folded'
                ? foldHosts(labels)
                : labels.join('\n'),
        );
      },
    );
}

/** The step operations of operate_step_instance, on the job's current step unless --step says otherwise. */
function stepOperation(
  name: string,
  description: string,
  example: string,
  code: (flags: Record<string, unknown>) => number,
  extra?: (c: Command) => Command,
): Command {
  let c = new Command(name)
    .description(description)
    .addHelpText('after', `\nExamples:\n  jf ${name} 42${example}`)
    .argument('<job>', 'job instance id', jobId)
    .option('-s, --step <id>', 'step instance (default: the current step)', positiveInt('step id'));
  if (extra) c = extra(c);
  return c.action(async (id: number, flags: Record<string, unknown> & { step?: number }, cmd: Command) => {
    const ctx = await contextOf(cmd);
    const st = await ctx.client.jobStatus(id);
    const stepId = flags.step ?? currentStep(st)?.step_instance_id;
    if (!stepId) throw new CliError(`job ${id} has no step`);
    await ctx.client.operateStep(id, stepId, code(flags));
    printData(
      ctx.out,
      { job_instance_id: id, step_instance_id: stepId, operation: name },
      () => `job ${id} step ${stepId}: ${name} done`,
    );
  });
}

/**
 * The operation that answers a job waiting for someone: a manual confirmation step (type 3) at 7
 * takes 6 (continue) or 9 (terminate, --refuse); a rolling step at 7 waits between batches and
 * takes 13. Status 15 is a rolling step moving on by itself: nobody is waited for.
 */
export function confirmOperation(st: JobStatus, refuse: boolean): { stepId: number; code: 6 | 9 | 13 } {
  const id = st.job_instance.job_instance_id;
  const step = st.step_instance_list.find((s) => s.status === 7);
  if (!step) throw new CliError(`job ${id} has no step waiting for confirmation`);
  if (step.type === 3) return { stepId: step.step_instance_id, code: refuse ? 9 : 6 };
  if (refuse)
    throw new CliError(
      `job ${id} step ${step.step_instance_id} is a rolling step waiting between batches, not a confirmation step: stop it with jf terminate ${id}`,
      Exit.USAGE,
    );
  return { stepId: step.step_instance_id, code: 13 };
}

function operationCommands(): Command[] {
  return [
    stepOperation(
      'retry',
      'run the step again on its failed hosts (--all: on every host)',
      '\n  jf retry 42 --all --step 7',
      (f) => (f.all ? 8 : 2),
      (c) =>
        c.option('--failed', 'only the failed hosts (default)').option('--all', 'every host of the step'),
    ),
    stepOperation('ignore-error', 'mark a failed step as ignored and go on', '', () => 3),
    stepOperation('skip', 'skip a step that is stopping', '', () => 12),
    stepOperation('next', 'go on to the next step after a terminated one', '', () => 11),
    stepOperation(
      'continue',
      'start the next rolling batch (or confirm a waiting batch)',
      ' && jf watch 42',
      () => 13,
    ),
    new Command('confirm')
      .description(
        'confirm a waiting confirmation step (--refuse: terminate it), or start the next batch of a rolling step waiting for it',
      )
      .argument('<job>', 'job instance id', jobId)
      .option('--reason <text>', 'why (kept with the confirmation step)')
      .option('--refuse', 'terminate the confirmation step instead: the job ends as refused')
      .addHelpText(
        'after',
        "\nExamples:\n  jf confirm 42 --reason 'canary looks fine'\n  jf confirm 42 --refuse --reason 'error rate is up'",
      )
      .action(async (id: number, flags: { reason?: string; refuse?: boolean }, cmd: Command) => {
        const ctx = await contextOf(cmd);
        const st = await ctx.client.jobStatus(id);
        const { stepId, code } = confirmOperation(st, Boolean(flags.refuse));
        await ctx.client.operateStep(id, stepId, code, code === 13 ? undefined : flags.reason);
        const outcome = code === 6 ? 'confirmed' : code === 9 ? 'refused' : 'next batch started';
        printData(
          ctx.out,
          { job_instance_id: id, step_instance_id: stepId, operation: code === 9 ? 'refuse' : 'confirm' },
          () => `job ${id} step ${stepId}: ${outcome}`,
        );
      }),
    new Command('terminate')
      .description('stop a running job (its running hosts are killed)')
      .argument('<job>', 'job instance id', jobId)
      .addHelpText('after', '\nExamples:\n  jf terminate 42 && jf watch 42')
      .action(async (id: number, _f: unknown, cmd: Command) => {
        const ctx = await contextOf(cmd);
        await ctx.client.operateJob(id, 1);
        printData(ctx.out, { job_instance_id: id, operation: 'terminate' }, () => `job ${id}: terminating`);
      }),
  ];
}

interface JobRow {
  job_instance_id: number;
  name: string;
  status: number;
  operator: string;
  create_time: number;
  total_time: number | null;
}

function jobsCommand(): Command {
  const ls = new Command('ls')
    .description('job history of the scope, newest first')
    .option('--since <hours>', 'created in the last N hours (at most 720)', positiveInt('hours'), 24)
    .option(
      '--status <code>',
      'only this status code (3 success, 4 failed, 2 running ...)',
      positiveInt('status'),
    )
    .option('--operator <user>', 'started by this user')
    .option('--name <text>', 'name contains')
    .option('--ip <ip>', 'ran on this ip')
    .option('-n, --limit <n>', 'at most N jobs', positiveInt('limit'), 20)
    .addHelpText(
      'after',
      "\nExamples:\n  jf jobs ls --status 4 --since 72\n  jf jobs ls -o json | jq '.[].job_instance_id'",
    )
    .action(
      async (
        flags: {
          since: number;
          status?: number;
          operator?: string;
          name?: string;
          ip?: string;
          limit: number;
        },
        cmd: Command,
      ) => {
        const ctx = await contextOf(cmd);
        // The end is a minute ahead, for a server clock ahead of this one; the window stays
        // within the 30 days the server accepts.
        const end = Date.now() + 60_000;
        const data = await ctx.client.call<{ data: JobRow[] | null; total: number }>(
          'get_job_instance_list',
          {
            create_time_start: end - Math.min(flags.since * 3600_000 + 60_000, THIRTY_DAYS_MS),
            create_time_end: end,
            length: Math.min(flags.limit, 1000),
            ...(flags.status ? { status: flags.status } : {}),
            ...(flags.operator ? { operator: flags.operator } : {}),
            ...(flags.name ? { name: flags.name } : {}),
            ...(flags.ip ? { ip: flags.ip } : {}),
          },
        );
        const rows = data.data ?? [];
        printData(ctx.out, rows, () =>
          table(
            ['ID', 'STATUS', 'OPERATOR', 'CREATED', 'TOOK', 'NAME'],
            rows.map((j) => [
              j.job_instance_id,
              RUN_STATUS_NAMES[j.status] ?? j.status,
              j.operator,
              new Date(j.create_time).toISOString().slice(0, 19).replace('T', ' '),
              j.total_time === null ? '' : duration(j.total_time),
              j.name,
            ]),
          ),
        );
      },
    );
  const get = new Command('get')
    .description('a job with its steps and host counts')
    .argument('<job>', 'job instance id', jobId)
    .addHelpText(
      'after',
      "\nExamples:\n  jf jobs get 42\n  jf jobs get 42 -o json | jq '.step_instance_list[].status'",
    )
    .action(async (id: number, _f: unknown, cmd: Command) => {
      const ctx = await contextOf(cmd);
      const st = await ctx.client.jobStatus(id);
      printData(ctx.out, st, () =>
        [
          summaryLine(ctx.out, st),
          table(
            ['STEP', 'STATUS', 'HOSTS', 'NAME'],
            st.step_instance_list.map((s) => [
              s.step_instance_id,
              RUN_STATUS_NAMES[s.status] ?? s.status,
              s.step_ip_result_list?.length ?? 0,
              s.name,
            ]),
          ),
        ].join('\n'),
      );
    });
  return new Command('jobs').description('job history').addCommand(ls).addCommand(get);
}

/** `jf run script`, and the other kinds of run (launch-commands.ts) under the same `run`. */
export function runCommand(more: Command[]): Command {
  const run = new Command('run').description('start a job').addCommand(runScriptCommand());
  for (const c of more) run.addCommand(c);
  return run;
}

export function jobCommands(moreRuns: Command[] = []): Command[] {
  return [
    runCommand(moreRuns),
    watchCommand(),
    resultCommand(),
    logsCommand(),
    hostsCommand(),
    ...operationCommands(),
    jobsCommand(),
  ];
}
