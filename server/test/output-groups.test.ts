/**
 * Output groups, logs by offset and metrics end to end: a real server and six real agents
 * running a script whose output takes three forms (one names the host, one carries a time and
 * a PID, one fails). With normalisers the hosts fall into exactly three groups; without them the
 * varying outputs split; a diff of two groups shows what differs. A log is followed by offset.
 * /metrics parses as Prometheus text and its counters move.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import type { MetricFamily } from 'parse-prometheus-text-format';
import { eventually, get, post } from './helpers/api-client.js';
import { onFleetDatabase } from './helpers/fleet-database.js';
import { dropFreshDatabases, engines } from './helpers/databases.js';
import { b64, hostLog, runScript, startFleet, waitFinished } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { stopAll } from './helpers/processes.js';

const AGENTS = 6;
const SCRIPT = `n=\${TEST_AGENT_IP##*.}
case $((n % 3)) in
  0) echo "disk ok"; echo "checked at $(date '+%Y-%m-%d %H:%M:%S') by pid $$" ;;
  1) echo "disk full on host-$TEST_AGENT_IP ($TEST_AGENT_IP)" ;;
  2) echo "no such file"; exit 2 ;;
esac
`;

interface Group {
  group_id: string;
  status: number;
  exit_code: number | null;
  host_count: number;
  representative: { bk_host_id: number; log_content: string } | null;
  host_list: { bk_host_id: number; ip: string }[];
}
interface Groups {
  normalisers: string[];
  total_hosts: number;
  group_count: number;
  groups: Group[];
}

/** The scrape, parsed (and kept as text for histograms with labels, which the parser folds). */
async function metrics(fleet: Fleet): Promise<Map<string, MetricFamily> & { text: string }> {
  const res = await fetch(`${fleet.server.url}/metrics`, {
    headers: { authorization: 'Bearer metrics-token-1234' },
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
  const text = await res.text();
  return Object.assign(new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f])), { text });
}

/** A sample's value (a histogram's count) in a parsed scrape. */
function sample(fams: Map<string, MetricFamily>, name: string, labels: Record<string, string> = {}): number {
  const m = fams
    .get(name)
    ?.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
  return Number(m?.value ?? m?.buckets?.['+Inf'] ?? 0);
}

for (const engine of engines()) {
  describe(`output groups, logs by offset and metrics on ${engine}`, () => {
    let fleet: Fleet;
    let job: number;
    let step: number;

    before(async () => {
      fleet = await startFleet(engine, AGENTS, { env: { JOBFLEET_METRICS_TOKEN: 'metrics-token-1234' } });
    });
    after(async () => {
      await stopAll();
      await dropFreshDatabases();
    });

    test('/metrics needs its token, parses, and counts jobs as they run', async () => {
      const refused = await fetch(`${fleet.server.url}/metrics`);
      assert.equal(refused.status, 401);
      const before = await metrics(fleet);
      const r = await runScript(fleet, {
        script_content: b64(SCRIPT),
        target_server: { host_id_list: [...fleet.hostIds.values()] },
      });
      assert.equal(r.result, true, r.message);
      job = r.data.job_instance_id;
      step = r.data.step_instance_id;
      await waitFinished(fleet, job);
      const afterRun = await metrics(fleet);
      const calls = (f: typeof before) =>
        sample(f, 'jobfleet_http_requests_total', { endpoint: 'fast_execute_script', code: '0' });
      assert.equal(calls(afterRun) - calls(before), 1);
      assert.equal(sample(afterRun, 'jobfleet_jobs', { status: '4' }), 1, 'one failed job');
      assert.equal(sample(afterRun, 'jobfleet_host_tasks', { status: '9' }), 4);
      assert.equal(sample(afterRun, 'jobfleet_agents', { state: 'connected' }), AGENTS);
      assert.ok(sample(afterRun, 'jobfleet_task_dispatch_seconds') >= AGENTS);
      const commits = (t: string) =>
        Number(
          /^jobfleet_store_transaction_seconds_count\{op="commit_task_writes"\} (\d+)$/m.exec(t)?.[1] ?? 0,
        );
      assert.ok(commits(afterRun.text) > commits(before.text));
      assert.ok(afterRun.has('jobfleet_stream_clients'));
      assert.ok(afterRun.has('jobfleet_callbacks'));
      assert.equal(sample(afterRun, 'jobfleet_store_up'), 1);
      // Scrapes at once share one read of the store, each answered in full.
      const many = await Promise.all(Array.from({ length: 40 }, () => metrics(fleet)));
      for (const m of many) assert.equal(sample(m, 'jobfleet_jobs', { status: '4' }), 1);
    });

    test('/metrics answers while the store cannot be read, without the store figures', async () => {
      const rename = (from: string, to: string) =>
        onFleetDatabase(
          fleet,
          `ALTER TABLE ${from} RENAME TO ${to};`,
          `ALTER TABLE ${from} RENAME TO ${to};`,
        );
      await rename('callback_attempt', 'callback_attempt_away');
      try {
        const down = await metrics(fleet);
        assert.equal(sample(down, 'jobfleet_store_up'), 0);
        assert.equal(
          down.has('jobfleet_jobs') && (down.get('jobfleet_jobs')?.metrics.length ?? 0) > 0,
          false,
        );
        assert.ok(sample(down, 'jobfleet_process_cpu_user_seconds_total') > 0);
      } finally {
        await rename('callback_attempt_away', 'callback_attempt');
      }
      const back = await metrics(fleet);
      assert.equal(sample(back, 'jobfleet_store_up'), 1);
      assert.equal(sample(back, 'jobfleet_jobs', { status: '4' }), 1);
    });

    const groupsOf = (params: Record<string, string | number>) =>
      get<Groups>(
        fleet.server.url,
        'get_step_output_groups',
        { ...fleet.scope, job_instance_id: job, step_instance_id: step, ...params },
        fleet.creds,
      );

    test('normalised outputs fall into three groups with the right counts', async () => {
      const all = await groupsOf({ normalisers: 'host,timestamps,numbers' });
      assert.equal(all.result, true, all.message);
      assert.deepEqual(all.data.normalisers, ['host', 'numbers', 'timestamps']);
      assert.equal(all.data.total_hosts, AGENTS);
      assert.deepEqual(
        all.data.groups.map((g) => g.host_count),
        [2, 2, 2],
      );
      const texts = all.data.groups.map((g) => g.representative?.log_content ?? '');
      assert.ok(texts.some((t) => t.startsWith('disk ok')));
      assert.ok(texts.some((t) => t.startsWith('disk full on host-127.0.0.')));
      const failed = all.data.groups.find((g) => g.exit_code === 2);
      assert.ok(failed);
      assert.notEqual(failed.status, 9);

      // Without the host and numbers normalisers, the hosts naming themselves or their PID split apart.
      const raw = await groupsOf({ normalisers: 'timestamps' });
      assert.equal(raw.data.groups.length, 5);
      // The groups, paged: the count is of all of them.
      const groupPage = await groupsOf({ normalisers: 'timestamps', group_start: 1, group_length: 2 });
      assert.equal(groupPage.data.group_count, 5);
      assert.deepEqual(
        groupPage.data.groups.map((g) => g.group_id),
        raw.data.groups.slice(1, 3).map((g) => g.group_id),
      );

      // One group's hosts, paged.
      const big = all.data.groups[0];
      assert.ok(big);
      const page = await groupsOf({
        normalisers: 'host,timestamps,numbers',
        group_id: big.group_id,
        start: 1,
        length: 1,
      });
      assert.equal(page.data.groups.length, 1);
      assert.deepEqual(page.data.groups[0]?.host_list, big.host_list.slice(1, 2));

      // A diff of two groups compares their representatives.
      const ok = all.data.groups.find((g) => g.representative?.log_content.startsWith('disk ok'));
      const full = all.data.groups.find((g) => g.representative?.log_content.startsWith('disk full'));
      assert.ok(ok && full);
      const diff = await post<{ identical: boolean; diff: string; normalisers: string[] }>(
        fleet.server.url,
        'get_output_diff',
        {
          ...fleet.scope,
          job_instance_id: job,
          step_instance_id: step,
          normalisers: ['host', 'timestamps', 'numbers'],
          left_group_id: ok.group_id,
          right_group_id: full.group_id,
        },
        fleet.creds,
      );
      assert.equal(diff.result, true, diff.message);
      assert.equal(diff.data.identical, false);
      const lines = diff.data.diff.split('\n');
      assert.ok(lines.includes('-disk ok'), diff.data.diff);
      assert.ok(lines.includes('-checked at <time> by pid <n>'), diff.data.diff);
      assert.ok(lines.includes('+disk full on <host> (<host>)'), diff.data.diff);

      // Two hosts of one group are identical once normalised, and differ raw.
      const [a, b] = full.host_list.length > 1 ? full.host_list : big.host_list;
      const same = await get<{ identical: boolean; diff: string }>(
        fleet.server.url,
        'get_output_diff',
        {
          ...fleet.scope,
          job_instance_id: job,
          step_instance_id: step,
          normalisers: 'host',
          left_host_id: a?.bk_host_id ?? 0,
          right_host_id: b?.bk_host_id ?? 0,
        },
        fleet.creds,
      );
      assert.equal(same.data.identical, true, same.data.diff);
    });

    test('a diff of outputs that share nothing gives up after its budget instead of holding the server', async () => {
      const ids = ['127.0.0.2', '127.0.0.3'].map((ip) => fleet.hostIds.get(ip) ?? 0);
      const r = await runScript(fleet, {
        script_content: b64('seq 1 12000 | sed "s/^/$TEST_AGENT_IP-/"'),
        target_server: { host_id_list: ids },
      });
      await waitFinished(fleet, r.data.job_instance_id);
      const diff = await get<{ identical: boolean; too_different: boolean; diff: string }>(
        fleet.server.url,
        'get_output_diff',
        {
          ...fleet.scope,
          job_instance_id: r.data.job_instance_id,
          step_instance_id: r.data.step_instance_id,
          left_host_id: ids[0] ?? 0,
          right_host_id: ids[1] ?? 0,
        },
        fleet.creds,
      );
      assert.equal(diff.result, true, diff.message);
      assert.equal(diff.data.identical, false);
      assert.equal(diff.data.too_different, true);
      assert.equal(diff.data.diff, '');
    });

    test('a log is read by offset, and the window says where to go on', async () => {
      const r = await runScript(fleet, {
        script_content: b64('for i in $(seq 1 200); do echo "line $i é"; done'),
        target_server: { host_id_list: [fleet.hostIds.get('127.0.0.2') ?? 0] },
      });
      await waitFinished(fleet, r.data.job_instance_id);
      const whole = Array.from({ length: 200 }, (_, i) => `line ${i + 1} é\n`).join('');
      let offset = 0;
      let text = '';
      let reads = 0;
      for (;;) {
        const page = await get<{
          log_content: string | null;
          log_next_offset: number;
          log_total_bytes: number;
          log_dropped_bytes: number;
          log_complete: boolean;
        }>(
          fleet.server.url,
          'get_job_instance_ip_log',
          {
            ...fleet.scope,
            job_instance_id: r.data.job_instance_id,
            step_instance_id: r.data.step_instance_id,
            bk_host_id: fleet.hostIds.get('127.0.0.2') ?? 0,
            log_offset: offset,
            log_length: 333,
          },
          fleet.creds,
        );
        assert.equal(page.result, true, page.message);
        assert.equal(page.data.log_total_bytes, Buffer.byteLength(whole));
        assert.equal(page.data.log_dropped_bytes, 0);
        assert.ok(page.data.log_next_offset - offset <= 333);
        text += page.data.log_content ?? '';
        offset = page.data.log_next_offset;
        reads++;
        if (page.data.log_complete) break;
        assert.ok(reads < 100, 'the log ends');
      }
      assert.equal(text, whole, 'no character is split or lost between windows');
      assert.ok(reads > 5);
    });

    test('a running host whose log ends inside a character is read up to that character', async () => {
      const host = fleet.hostIds.get('127.0.0.2') ?? 0;
      // "é" is C3 A9: the first byte now, the second once the script wakes.
      const r = await runScript(fleet, {
        script_content: b64("printf 'ok \\303'; sleep 3; printf '\\251\\n'"),
        target_server: { host_id_list: [host] },
      });
      const read = (offset: number) =>
        get<{ log_content: string | null; log_next_offset: number; log_complete: boolean }>(
          fleet.server.url,
          'get_job_instance_ip_log',
          {
            ...fleet.scope,
            job_instance_id: r.data.job_instance_id,
            step_instance_id: r.data.step_instance_id,
            bk_host_id: host,
            log_offset: offset,
            log_length: 4096,
          },
          fleet.creds,
        );
      const live = await eventually(async () => {
        const page = await read(0);
        return page.data.log_content ? page : undefined;
      });
      assert.equal(live.data.log_content, 'ok ');
      assert.equal(live.data.log_next_offset, 3);
      await waitFinished(fleet, r.data.job_instance_id);
      const rest = await read(live.data.log_next_offset);
      assert.equal(rest.data.log_content, 'é\n');
      assert.equal(rest.data.log_complete, true);
      // The whole log, from its two stored chunks: the second finishes the first's character.
      const whole = await hostLog(fleet, r.data.job_instance_id, r.data.step_instance_id, host);
      assert.equal(whole, 'ok é\n');
    });
  });
}
