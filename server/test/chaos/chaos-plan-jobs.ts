/**
 * The chaos run's plan jobs and its cron.
 *
 * One template, run on the hosts a host-list variable names: a script that changes a string
 * and a namespace variable, a file step whose destination expands a variable, a confirmation,
 * and a script that prints what reached it. One plan keeps the confirmation (the run continues
 * it through any server once it waits), the other leaves it out. A plan job must succeed, each
 * script task run exactly once with its log byte-exact (the string variable as the host with
 * the highest id left it, the namespace as each host left its own), every target holding the
 * file byte-exact. A job one of whose agents was killed while it ran may fail instead, as the
 * other jobs of the run may (see checkPlanJob).
 *
 * The cron runs a one-step plan on two hosts every few seconds. Each due time must be recorded
 * once: fired, or skipped as the misfire policy says (docs/crons.md), none missing between the
 * first and the last; each fired time has exactly one job, and that job succeeds with each task
 * run once.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { taskKey } from '@jobfleet/protocol';
import { post } from '../helpers/api-client.js';
import { everyStatus, liveServer, markerLines, operateStepVia, waitJobFinished } from '../helpers/cluster.js';
import type { Cluster } from '../helpers/cluster.js';
import { b64, hostLog } from '../helpers/fleet.js';
import type { JobStatus } from '../helpers/fleet.js';
import { checkDelivered, sha } from './chaos-file-jobs.js';
import type { FileRoot, KilledWhile } from './chaos-file-jobs.js';

/** The template's steps, in order; `confirm` only runs in the plan that keeps it. */
const STEPS = ['mark', 'ship', 'confirm', 'report'] as const;
/** The file the ship step copies, from the first host; where it lands on each target. */
const SOURCE = '/plan-src/blob.bin';
const landing = (tag: string) => `/plan/${tag}/`;

export interface Plans {
  /** Plan ids: with the confirmation step, and without it. */
  confirmed: number;
  straight: number;
  source: string;
  sourceSha: string;
}

export interface PlanJob {
  jobId: number;
  tag: string;
  hosts: string[];
  confirm: boolean;
  submittedAt: number;
}

let seq = 0;

async function call<T>(c: Cluster, via: number, name: string, body: Record<string, unknown>): Promise<T> {
  const f = c.via(via);
  const r = await post<T>(f.server.url, name, { ...f.scope, ...body }, f.creds);
  if (!r.result) throw new Error(`${name}: ${r.message}`);
  return r.data;
}

/** Creates the template, its two plans and the file the ship step copies. */
export async function preparePlans(c: Cluster, via: number, root: FileRoot, ips: string[]): Promise<Plans> {
  const source = ips[0] ?? '';
  const blob = crypto.randomBytes(256 * 1024);
  const held = root(source, SOURCE);
  fs.mkdirSync(path.dirname(held), { recursive: true });
  fs.writeFileSync(held, blob);
  const account = { alias: c.account };
  const hosts = { variable: 'hosts' };
  const script = (lines: string[]) => ({
    script_content: b64(lines.join('\n')),
    script_language: 1,
    account,
    server: hosts,
  });
  const template = await call<{ id: number }>(c, via, 'create_job_template', {
    name: 'chaos plan',
    global_var_list: [
      { name: 'tag', type: 1, required: 1, value: '' },
      { name: 'carry', type: 1, value: 'none' },
      { name: 'ns', type: 2, value: '' },
      { name: 'nap', type: 1, value: '0.5' },
      { name: 'hosts', type: 3, required: 1, server: { host_id_list: [c.hostIds.get(source)] } },
    ],
    step_list: [
      {
        name: 'mark',
        type: 1,
        script_info: script([
          'echo "mark $tag $TEST_AGENT_IP carry=$carry ns=[$ns]"',
          'echo run >> "$TEST_MARKERS/$tag-mark-$TEST_AGENT_IP"',
          'sleep "$nap"',
          'carry="c-$TEST_AGENT_IP"',
          'ns="n-$TEST_AGENT_IP"',
        ]),
      },
      {
        name: 'ship',
        type: 2,
        file_info: {
          file_source_list: [
            { file_list: [SOURCE], account, server: { host_id_list: [c.hostIds.get(source)] } },
          ],
          file_destination: { path: landing('${tag}'), account, server: hosts },
        },
      },
      {
        name: 'confirm',
        type: 3,
        approval_info: { approval_user: { user_list: ['tester'] }, approval_message: 'go on?' },
      },
      {
        name: 'report',
        type: 1,
        script_info: script([
          'echo "report $tag $TEST_AGENT_IP carry=$carry ns=$ns"',
          'echo run >> "$TEST_MARKERS/$tag-report-$TEST_AGENT_IP"',
        ]),
      },
    ],
  });
  const detail = await call<{ step_list: { id: number; name: string }[] }>(
    c,
    via,
    'get_job_template_detail',
    {
      job_template_id: template.id,
    },
  );
  const stepIds = (names: readonly string[]) =>
    detail.step_list.filter((s) => names.includes(s.name)).map((s) => ({ id: s.id }));
  const plan = async (name: string, steps: readonly string[]) =>
    (
      await call<{ id: number }>(c, via, 'create_job_plan', {
        job_template_id: template.id,
        name,
        step_list: stepIds(steps),
      })
    ).id;
  return {
    confirmed: await plan('with confirmation', STEPS),
    straight: await plan(
      'straight',
      STEPS.filter((s) => s !== 'confirm'),
    ),
    source,
    sourceSha: sha(blob),
  };
}

/** Runs one of the plans on `hosts` through server `via`. */
export async function submitPlanJob(
  c: Cluster,
  via: number,
  plans: Plans,
  job: { hosts: string[]; confirm: boolean; nap: number },
): Promise<PlanJob> {
  const tag = `plan${process.pid}-${++seq}`;
  const submittedAt = Date.now();
  const r = await call<{ job_instance_id: number }>(c, via, 'execute_job_plan', {
    job_plan_id: job.confirm ? plans.confirmed : plans.straight,
    global_var_list: [
      { name: 'tag', value: tag },
      { name: 'nap', value: job.nap.toFixed(1) },
      { name: 'hosts', server: { host_id_list: job.hosts.map((ip) => c.hostIds.get(ip)) } },
    ],
  });
  return { jobId: r.job_instance_id, tag, submittedAt, ...job };
}

/**
 * Continues the job's confirmation once it waits (7), through a server `pick` draws each time,
 * until the step has moved on or the job ended (a continue whose answer was lost is seen that
 * way); until the step waits it keeps looking.
 * Returns whether this call's continue was accepted.
 */
export async function confirmWhenWaiting(
  c: Cluster,
  job: PlanJob,
  pick: () => number | undefined,
  deadline: number,
): Promise<boolean> {
  let confirmed = false;
  await everyStatus(c, job.jobId, pick, deadline, async (st, via) => {
    const step = st.step_instance_list[STEPS.indexOf('confirm')];
    if (st.finished) return true;
    // Not started (1), or started and about to wait (2).
    if (!step || step.status === 1 || step.status === 2) return false;
    if (step.status !== 7) return true;
    confirmed = await operateStepVia(c, via, { jobId: job.jobId, stepId: step.step_instance_id }, 6);
    return confirmed;
  });
  return confirmed;
}

/** A step's host statuses, by ip. */
function statusesOf(
  c: Cluster,
  step: JobStatus['step_instance_list'][number],
  ips: string[],
): Map<string, number> {
  const byId = new Map(step.step_ip_result_list?.map((h) => [h.bk_host_id, h.status]));
  return new Map(ips.map((ip) => [ip, byId.get(c.hostIds.get(ip) ?? 0) ?? -1]));
}

/**
 * A script task of a finished step: run exactly once with its whole log when it succeeded;
 * otherwise (allowed only where `exposed` says so) run at most once with a prefix of it.
 */
async function checkScriptTask(
  c: Cluster,
  what: string,
  at: { jobId: number; stepId: number; ip: string; status: number },
  ran: number,
  expected: string,
  exposed: boolean,
): Promise<void> {
  const stored = (await hostLog(c.via(liveServer(c)), at.jobId, at.stepId, c.hostIds.get(at.ip) ?? 0)) ?? '';
  if (at.status === 9) {
    assert.equal(ran, 1, `${what} on ${at.ip} ran ${ran} times`);
    assert.equal(
      stored,
      expected,
      `${what}: log of ${at.ip} ${JSON.stringify(stored)}, not ${JSON.stringify(expected)}`,
    );
    return;
  }
  assert.ok(exposed, `${what}: ${at.ip} ended ${at.status}; no agent of the job was killed`);
  assert.ok(ran <= 1, `${what} on ${at.ip} (cut short) ran ${ran} times`);
  assert.ok(
    expected.startsWith(stored),
    `${what}: log of ${at.ip} (cut short) ${JSON.stringify(stored)} is not a prefix of ${JSON.stringify(expected)}`,
  );
}

/**
 * The checker's invariants for a plan job. Without an agent of the job killed while it ran it
 * succeeds, every step and host too; with one, it may fail (4), each task having run at most
 * once, and a step that never started ran nothing.
 */
export async function checkPlanJob(
  c: Cluster,
  job: PlanJob,
  plans: Plans,
  root: FileRoot,
  killedWhile: KilledWhile,
): Promise<void> {
  const st = await waitJobFinished(c, job.jobId, 180_000);
  const end = Number(st.job_instance.end_time ?? Date.now());
  const exposed = [plans.source, ...job.hosts].some((ip) => killedWhile(ip, job.submittedAt, end));
  const what = (step: string) => `plan job ${job.jobId} step ${step}`;
  if (st.job_instance.status !== 3) {
    assert.ok(
      exposed,
      `plan job ${job.jobId} ended ${st.job_instance.status}; no agent of the job was killed`,
    );
    assert.equal(st.job_instance.status, 4, `plan job ${job.jobId} final status`);
  }
  const names = STEPS.filter((s) => job.confirm || s !== 'confirm');
  assert.equal(st.step_instance_list.length, names.length, `plan job ${job.jobId} steps`);
  // The host with the highest id sets the string variable the steps after it see.
  const last = [...job.hosts].sort((a, b) => (c.hostIds.get(b) ?? 0) - (c.hostIds.get(a) ?? 0))[0];
  for (const [i, name] of names.entries()) {
    const step = st.step_instance_list[i] as JobStatus['step_instance_list'][number];
    if (step.status === 1) {
      // Not started (an earlier step failed): none of its scripts ran.
      assert.notEqual(st.job_instance.status, 3, `${what(name)} never started in a successful job`);
      for (const ip of job.hosts)
        assert.equal(markerLines(c, `${job.tag}-${name}-${ip}`), 0, `${what(name)} ran on ${ip}`);
      continue;
    }
    if (name === 'confirm') {
      assert.equal(step.status, 3, `${what(name)} status`);
      continue;
    }
    for (const [ip, status] of statusesOf(c, step, job.hosts)) {
      const at = { jobId: job.jobId, stepId: step.step_instance_id, ip, status };
      if (name === 'mark') {
        const expected = `mark ${job.tag} ${ip} carry=none ns=[]\n`;
        await checkScriptTask(c, what(name), at, markerLines(c, `${job.tag}-mark-${ip}`), expected, exposed);
      } else if (name === 'report') {
        const expected = `report ${job.tag} ${ip} carry=c-${last} ns=n-${ip}\n`;
        await checkScriptTask(
          c,
          what(name),
          at,
          markerLines(c, `${job.tag}-report-${ip}`),
          expected,
          exposed,
        );
      } else if (status === 9) {
        const files = [{ name: path.basename(SOURCE), sha: plans.sourceSha }];
        checkDelivered(root(ip, landing(job.tag)), files, `${what(name)} on ${ip}`);
      } else {
        assert.ok(exposed, `${what(name)}: ${ip} ended ${status}; no agent of the job was killed`);
      }
    }
  }
}

// ------------------------------------------------------------------------------------- the cron

export interface ChaosCron {
  id: number;
  hosts: string[];
  everySeconds: number;
}

/**
 * A cron due every `everySeconds` seconds (the servers take a seconds field: cronSecondsField)
 * running a one-step plan on `hosts`. Its script marks its run under its own task's name: the
 * agent runs each task in a directory named after the task's key (the cron's variables are the
 * same for every firing, so nothing else tells two firings' runs apart).
 */
export async function startCron(
  c: Cluster,
  via: number,
  hosts: string[],
  everySeconds: number,
): Promise<ChaosCron> {
  const template = await call<{ id: number }>(c, via, 'create_job_template', {
    name: 'chaos tick',
    step_list: [
      {
        name: 'tick',
        type: 1,
        script_info: {
          script_content: b64(
            [
              'd=$(basename "$PWD")',
              'echo run >> "$TEST_MARKERS/cron-${d%??????}"',
              'echo "tick $TEST_AGENT_IP"',
              'sleep 0.3',
            ].join('\n'),
          ),
          script_language: 1,
          account: { alias: c.account },
          server: { host_id_list: hosts.map((ip) => c.hostIds.get(ip)) },
        },
      },
    ],
  });
  const plan = await call<{ id: number }>(c, via, 'create_job_plan', {
    job_template_id: template.id,
    name: 'tick',
  });
  const cron = await call<{ id: number }>(c, via, 'save_cron', {
    name: 'chaos tick',
    job_plan_id: plan.id,
    expression: `*/${everySeconds} * * * * *`,
  });
  await call(c, via, 'update_cron_status', { id: cron.id, status: 1 });
  return { id: cron.id, hosts, everySeconds };
}

/** Disables the cron through a server `pick` draws, until one accepts. */
export async function stopCron(c: Cluster, cron: ChaosCron, pick: () => number | undefined): Promise<void> {
  for (;;) {
    const via = pick();
    if (
      via !== undefined &&
      (await call(c, via, 'update_cron_status', { id: cron.id, status: 2 }).then(
        () => true,
        () => false,
      ))
    )
      return;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

interface Firing {
  scheduled_time: number;
  outcome: string;
  reason: string;
  job_instance_id: number | null;
}

/**
 * The cron's invariants (see the module's comment). Returns how many times fired and how many
 * were skipped.
 */
export async function checkCron(
  c: Cluster,
  cron: ChaosCron,
  killedWhile: KilledWhile,
): Promise<{ fired: number; skipped: number }> {
  const all = (
    await c.db<Firing>(
      'select scheduled_time, outcome, reason, job_instance_id from cron_firing where cron_id = $1 order by scheduled_time',
      [cron.id],
    )
  ).map((f) => ({
    ...f,
    scheduled_time: Number(f.scheduled_time),
    job_instance_id: f.job_instance_id && Number(f.job_instance_id),
  }));
  assert.ok(all.length > 0, 'the cron never fired');
  const times = all.map((f) => f.scheduled_time);
  assert.equal(new Set(times).size, times.length, 'a due time recorded twice');
  const first = times[0] as number;
  const last = times[times.length - 1] as number;
  for (let t = first; t <= last; t += cron.everySeconds)
    assert.ok(times.includes(t), `cron: due time ${t} not recorded`);
  for (const f of all.filter((x) => x.outcome !== 'fired')) {
    assert.equal(f.outcome, 'skipped', `cron: time ${f.scheduled_time}: ${JSON.stringify(f)}`);
    assert.match(f.reason, /later time was due/, `cron: time ${f.scheduled_time}`);
  }
  const fired = all.filter((f) => f.outcome === 'fired');
  const jobs = await c.db<{ id: string }>('select id from job_instance where cron_id = $1 order by id', [
    cron.id,
  ]);
  assert.deepEqual(
    jobs.map((j) => Number(j.id)),
    fired.map((f) => f.job_instance_id).sort((a, b) => (a ?? 0) - (b ?? 0)),
    'cron: one job per fired time, and no job without its firing',
  );
  for (const f of fired) {
    const jobId = f.job_instance_id ?? 0;
    const st = await waitJobFinished(c, jobId, 120_000);
    const end = Number(st.job_instance.end_time ?? Date.now());
    const exposed = cron.hosts.some((ip) => killedWhile(ip, f.scheduled_time * 1000, end));
    if (st.job_instance.status !== 3) {
      assert.ok(exposed, `cron job ${jobId} (time ${f.scheduled_time}) ended ${st.job_instance.status}`);
      assert.equal(st.job_instance.status, 4, `cron job ${jobId} final status`);
    }
    const step = st.step_instance_list[0] as JobStatus['step_instance_list'][number];
    for (const [ip, status] of statusesOf(c, step, cron.hosts)) {
      const key = taskKey(step.step_instance_id, Number(step.execute_count ?? 0), c.hostIds.get(ip) ?? 0);
      const ran = markerLines(c, `cron-jobfleet-task-${key.replace(/:/g, '_')}-`);
      const at = { jobId, stepId: step.step_instance_id, ip, status };
      await checkScriptTask(c, `cron job ${jobId}`, at, ran, `tick ${ip}\n`, exposed);
    }
  }
  return { fired: fired.length, skipped: all.length - fired.length };
}
