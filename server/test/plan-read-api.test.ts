/**
 * Templates and plans as BK-JOB clients read them: create and modify times in seconds (and the
 * lists' time filters in seconds, to the end of the second), the lists' paging normalised and
 * uncapped, and get_job_plan_detail rendering every host target as ip_list entries resolved
 * through the inventory, with empty dynamic group and topology node lists and the file step's
 * speed limits present; a detail written back changes nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { admin, get, post } from './helpers/api-client.js';
import type { Envelope } from './helpers/api-client.js';
import { dropFreshDatabases, engines } from './helpers/databases.js';
import { b64, BIZ, startFleet } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { stopAll } from './helpers/processes.js';

interface Audit {
  id: number;
  create_time: number;
  last_modify_time: number;
}
interface Page<T> {
  start: number;
  length: number;
  total: number;
  data: T[];
}
interface IpView {
  bk_host_id: number | null;
  bk_cloud_id: number | null;
  ip: string | null;
}
interface ServerView {
  variable?: string;
  ip_list: IpView[];
  host_id_list?: number[];
  dynamic_group_list: unknown[];
  topo_node_list: unknown[];
}
interface PlanDetail extends Audit {
  step_list: {
    name: string;
    script_info?: { server: ServerView };
    file_info?: {
      file_source_list: { server: ServerView }[];
      file_destination: { server: ServerView };
      source_speed_limit: number | null;
      destination_speed_limit: number | null;
    };
  }[];
  global_var_list: { id: number; name: string; server?: ServerView | null }[];
}

const UNKNOWN_HOST = 987_654;
const nowSeconds = () => Math.floor(Date.now() / 1000);

for (const engine of engines()) {
  describe(`plans as BK-JOB clients read them on ${engine}`, () => {
    let fleet: Fleet;
    const call = <T>(name: string, body: Record<string, unknown>): Promise<Envelope<T>> =>
      post<T>(fleet.server.url, name, { ...fleet.scope, ...body }, fleet.creds);
    const read = <T>(name: string, query: Record<string, unknown>): Promise<Envelope<T>> =>
      get<T>(fleet.server.url, name, { ...fleet.scope, ...query }, fleet.creds);
    const addHost = async (ip: string, cloudId: number): Promise<number> => {
      const h = await admin<{ bk_host_id: number }>(
        fleet.server.url,
        fleet.server.adminToken,
        'POST',
        '/hosts',
        {
          ip,
          bk_cloud_id: cloudId,
          bk_biz_id: BIZ,
        },
      );
      assert.equal(h.result, true, h.message);
      return h.data.bk_host_id;
    };
    const script = (name: string, server: Record<string, unknown>) => ({
      name,
      type: 1,
      script_info: { script_content: b64(`echo ${name}`), account: { alias: fleet.account }, server },
    });

    before(async () => {
      fleet = await startFleet(engine, 0);
    });
    after(async () => {
      await stopAll();
      await dropFreshDatabases();
    });

    test('create and modify times are seconds, and the lists filter them in seconds', async () => {
      const from = nowSeconds();
      const t = await call<{ id: number }>('create_job_template', {
        name: 'timed',
        step_list: [script('one', { ip_list: [{ bk_cloud_id: 0, ip: '10.9.0.1' }] })],
      });
      assert.equal(t.result, true, t.message);
      const p = await call<{ id: number }>('create_job_plan', { job_template_id: t.data.id, name: 'timed' });
      assert.equal(p.result, true, p.message);
      const to = nowSeconds();
      const inRange = (what: string, x: Audit | undefined) => {
        assert.ok(x, `${what}: not listed`);
        for (const k of ['create_time', 'last_modify_time'] as const)
          assert.ok(x[k] >= from && x[k] <= to, `${what}.${k} = ${x[k]}, not seconds in [${from}, ${to}]`);
      };
      const templates = await read<Page<Audit>>('get_job_template_list', {});
      inRange(
        'template list item',
        templates.data.data.find((x) => x.id === t.data.id),
      );
      const plans = await read<Page<Audit>>('get_job_plan_list', { job_template_id: t.data.id });
      inRange(
        'plan list item',
        plans.data.data.find((x) => x.id === p.data.id),
      );
      inRange('plan detail', (await read<Audit>('get_job_plan_detail', { job_plan_id: p.data.id })).data);
      inRange(
        'template detail',
        (await read<Audit>('get_job_template_detail', { job_template_id: t.data.id })).data,
      );

      // A bound is a second: the end bound takes in the whole second the item was answered with.
      const created = plans.data.data.find((x) => x.id === p.data.id)?.create_time ?? 0;
      const ids = async (name: string, filter: Record<string, unknown>) => {
        const r = await read<Page<Audit>>(name, filter);
        assert.equal(r.result, true, r.message);
        return r.data.data.map((x) => x.id);
      };
      const exact = (s: number) => ({ create_time_start: s, create_time_end: s });
      assert.deepEqual(await ids('get_job_plan_list', { job_template_id: t.data.id, ...exact(created) }), [
        p.data.id,
      ]);
      // The template may have been created in the second before the plan.
      const templateCreated = templates.data.data.find((x) => x.id === t.data.id)?.create_time ?? 0;
      assert.ok((await ids('get_job_template_list', exact(templateCreated))).includes(t.data.id));
      assert.deepEqual(
        await ids('get_job_plan_list', { job_template_id: t.data.id, create_time_end: created - 1 }),
        [],
      );
      assert.deepEqual(
        await ids('get_job_plan_list', { job_template_id: t.data.id, create_time_start: created + 1 }),
        [],
      );

      // An update moves last_modify_time, in seconds too.
      await new Promise((r) => setTimeout(r, 1100));
      const renamed = await call('update_job_plan', { job_plan_id: p.data.id, name: 'timed again' });
      assert.equal(renamed.result, true, renamed.message);
      const after = (await read<Audit>('get_job_plan_detail', { job_plan_id: p.data.id })).data;
      assert.ok(after.last_modify_time > created && after.last_modify_time <= nowSeconds());
      assert.equal(after.create_time, created);
      assert.deepEqual(
        await ids('get_job_plan_list', {
          job_template_id: t.data.id,
          last_modify_time_start: after.last_modify_time,
          last_modify_time_end: after.last_modify_time,
        }),
        [p.data.id],
      );
      assert.deepEqual(
        await ids('get_job_plan_list', { job_template_id: t.data.id, last_modify_time_end: created }),
        [],
      );
    });

    test('list paging: any length above 0 is taken whole, a length of 0 or less is 20, a negative start 0', async () => {
      for (const name of ['get_job_plan_list', 'get_job_template_list']) {
        const asked: [Record<string, unknown>, number, number][] = [
          [{ length: 2000 }, 0, 2000],
          [{ length: 0 }, 0, 20],
          [{ length: -5, start: -3 }, 0, 20],
          [{ start: 1, length: 1001 }, 1, 1001],
        ];
        for (const [paging, start, length] of asked) {
          for (const r of [await read<Page<Audit>>(name, paging), await call<Page<Audit>>(name, paging)]) {
            assert.equal(r.result, true, `${name} ${JSON.stringify(paging)}: ${r.message}`);
            assert.deepEqual(
              [r.data.start, r.data.length],
              [start, length],
              `${name} ${JSON.stringify(paging)}`,
            );
          }
        }
      }
      // The script list keeps BK-JOB's cut at 1000.
      const scripts = await read<Page<unknown>>('get_script_list', { length: 2000 });
      assert.equal(scripts.data.length, 1000);
    });

    test('the name filter matches a part of the name in any case, and takes _ % and \\ as themselves', async () => {
      for (const name of ['Nightly_Backup', 'nightlyXbackup', '50%_off\\x']) {
        const t = await call<{ id: number }>('create_job_template', {
          name,
          step_list: [script('one', { ip_list: [{ bk_cloud_id: 0, ip: '10.9.0.1' }] })],
        });
        assert.equal(t.result, true, t.message);
        const p = await call<{ id: number }>('create_job_plan', { job_template_id: t.data.id, name });
        assert.equal(p.result, true, p.message);
      }
      const names = async (list: string, name: string) => {
        const r = await read<Page<Audit & { name: string }>>(list, { name });
        assert.equal(r.result, true, r.message);
        return r.data.data.map((x) => x.name).sort();
      };
      for (const list of ['get_job_template_list', 'get_job_plan_list']) {
        assert.deepEqual(await names(list, 'nightly_backup'), ['Nightly_Backup'], list);
        assert.deepEqual(await names(list, 'NIGHTLY'), ['Nightly_Backup', 'nightlyXbackup'], list);
        assert.deepEqual(await names(list, '%_off\\'), ['50%_off\\x'], list);
        assert.deepEqual(await names(list, '0_o'), [], list);
      }
    });

    test('the plan detail renders hosts as ip_list entries; written back, nothing changes', async () => {
      const byIp = await addHost('10.9.1.1', 0);
      const byId = await addHost('10.9.1.2', 3);
      const source = await addHost('10.9.1.3', 0);
      // A host of no business of this scope: the detail must not tell its address or its id.
      const outside = await admin<{ bk_host_id: number }>(
        fleet.server.url,
        fleet.server.adminToken,
        'POST',
        '/hosts',
        { ip: '10.9.1.4', bk_cloud_id: 0 },
      );
      assert.equal(outside.result, true, outside.message);
      const elsewhere = outside.data.bk_host_id;
      const t = await call<{ id: number }>('create_job_template', {
        name: 'hosts',
        global_var_list: [
          { name: 'hosts', type: 3, server: { host_id_list: [byId, UNKNOWN_HOST, elsewhere] } },
        ],
        step_list: [
          script('by ip', {
            ip_list: [
              { bk_cloud_id: 0, ip: '10.9.1.1' },
              { bk_cloud_id: 0, ip: '10.9.9.9' },
              { bk_cloud_id: 0, ip: '10.9.1.4' },
            ],
          }),
          script('by variable', { variable: 'hosts' }),
          {
            name: 'ship',
            type: 2,
            file_info: {
              file_source_list: [
                {
                  file_list: ['/data/a.txt'],
                  account: { alias: fleet.account },
                  server: { host_id_list: [source] },
                },
              ],
              file_destination: {
                path: '/data/',
                account: { alias: fleet.account },
                server: { variable: 'hosts' },
              },
            },
          },
        ],
      });
      assert.equal(t.result, true, t.message);
      const p = await call<{ id: number }>('create_job_plan', { job_template_id: t.data.id, name: 'hosts' });
      assert.equal(p.result, true, p.message);
      const detail = (await read<PlanDetail>('get_job_plan_detail', { job_plan_id: p.data.id })).data;
      const [byIpStep, byVarStep, ship] = detail.step_list;
      const empty = { dynamic_group_list: [], topo_node_list: [] };
      assert.deepEqual(byIpStep?.script_info?.server, {
        ip_list: [
          { bk_host_id: byIp, bk_cloud_id: 0, ip: '10.9.1.1' },
          // Not in the inventory: the cloud:ip as given, no id.
          { bk_host_id: null, bk_cloud_id: 0, ip: '10.9.9.9' },
          { bk_host_id: null, bk_cloud_id: 0, ip: '10.9.1.4' },
        ],
        ...empty,
      });
      assert.deepEqual(byVarStep?.script_info?.server, { variable: 'hosts', ip_list: [], ...empty });
      assert.deepEqual(ship?.file_info?.file_source_list[0]?.server, {
        ip_list: [{ bk_host_id: source, bk_cloud_id: 0, ip: '10.9.1.3' }],
        host_id_list: [source],
        ...empty,
      });
      assert.deepEqual(ship?.file_info?.file_destination.server, {
        variable: 'hosts',
        ip_list: [],
        ...empty,
      });
      assert.equal(ship?.file_info?.source_speed_limit, null);
      assert.equal(ship?.file_info?.destination_speed_limit, null);
      const hostsVar = detail.global_var_list.find((v) => v.name === 'hosts');
      assert.deepEqual(hostsVar?.server, {
        ip_list: [
          { bk_host_id: byId, bk_cloud_id: 3, ip: '10.9.1.2' },
          // An id the inventory does not know keeps its id, without cloud area or ip.
          { bk_host_id: UNKNOWN_HOST, bk_cloud_id: null, ip: null },
          { bk_host_id: elsewhere, bk_cloud_id: null, ip: null },
        ],
        host_id_list: [byId, UNKNOWN_HOST, elsewhere],
        ...empty,
      });

      // The template detail stays as authored (what the template editors write back).
      const template = await read<{ step_list: { script_info?: { server: unknown } }[] }>(
        'get_job_template_detail',
        { job_template_id: t.data.id },
      );
      assert.deepEqual(template.data.step_list[0]?.script_info?.server, {
        ip_list: [
          { bk_cloud_id: 0, ip: '10.9.1.1' },
          { bk_cloud_id: 0, ip: '10.9.9.9' },
          { bk_cloud_id: 0, ip: '10.9.1.4' },
        ],
      });

      // The plan's variables written back as read: accepted, and the detail reads the same.
      const back = await call('update_job_plan', {
        job_plan_id: p.data.id,
        global_var_list: detail.global_var_list.map((v) => ({ id: v.id, server: v.server })),
      });
      assert.equal(back.result, true, back.message);
      const again = (await read<PlanDetail>('get_job_plan_detail', { job_plan_id: p.data.id })).data;
      assert.deepEqual(again.global_var_list, detail.global_var_list);
      assert.deepEqual(again.step_list, detail.step_list);
      // An entry without the field of its type (a value for a host list) changes nothing.
      const mismatched = await call('update_job_plan', {
        job_plan_id: p.data.id,
        global_var_list: [{ id: hostsVar?.id, value: 'not hosts' }],
      });
      assert.equal(mismatched.result, true, mismatched.message);
      const kept = (await read<PlanDetail>('get_job_plan_detail', { job_plan_id: p.data.id })).data;
      assert.deepEqual(kept.global_var_list, detail.global_var_list);

      // So are the steps, written back into the template.
      const vars = await read<{ global_var_list: unknown[] }>('get_job_template_detail', {
        job_template_id: t.data.id,
      });
      const steps = await call('update_job_template', {
        job_template_id: t.data.id,
        name: 'hosts',
        step_list: detail.step_list,
        global_var_list: vars.data.global_var_list,
      });
      assert.equal(steps.result, true, steps.message);
      const synced = await call('sync_job_plan', { job_plan_id: p.data.id });
      assert.equal(synced.result, true, synced.message);
      const third = (await read<PlanDetail>('get_job_plan_detail', { job_plan_id: p.data.id })).data;
      assert.deepEqual(third.step_list, detail.step_list);
    });
  });
}
