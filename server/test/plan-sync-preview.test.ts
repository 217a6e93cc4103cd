/**
 * get_job_plan_sync_preview: what sync_job_plan would change (steps added since the plan was
 * made, steps the plan leaves off, variables added and dropped, the crons that run the plan),
 * read before syncing and matching what the sync then does.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { get, post } from './helpers/api-client.js';
import type { Envelope } from './helpers/api-client.js';
import { dropFreshDatabases, engines } from './helpers/databases.js';
import { b64, startFleet } from './helpers/fleet.js';
import type { Fleet } from './helpers/fleet.js';
import { stopAll } from './helpers/processes.js';

interface Preview {
  need_update: boolean;
  step_list: { name: string; change: string }[];
  removed_step_id_list: number[];
  global_var_list: {
    name: string;
    change: string;
    plan_value?: string | null;
    template_value?: string | null;
  }[];
  cron_list: { id: number; name: string }[];
}

for (const engine of engines()) {
  describe(`plan sync preview on ${engine}`, () => {
    let fleet: Fleet;
    const call = <T>(name: string, body: Record<string, unknown>): Promise<Envelope<T>> =>
      post<T>(fleet.server.url, name, { ...fleet.scope, ...body }, fleet.creds);

    before(async () => {
      fleet = await startFleet(engine, 0);
    });
    after(async () => {
      await stopAll();
      await dropFreshDatabases();
    });

    test('lists the changes a sync makes, and the crons of the plan', async () => {
      const script = (name: string) => ({
        name,
        type: 1,
        script_info: {
          script_content: b64(`echo ${name}`),
          account: { alias: fleet.account },
          server: { ip_list: [{ bk_cloud_id: 0, ip: '127.0.0.2' }] },
        },
      });
      const t = await call<{ id: number }>('create_job_template', {
        name: 'preview',
        global_var_list: [
          { name: 'keep', type: 1, value: 'template' },
          { name: 'gone', type: 1, value: 'x' },
          { name: 'secret', type: 4, value: 'never-shown-7Q' },
        ],
        step_list: [script('one'), script('two'), script('three')],
      });
      assert.equal(t.result, true, t.message);
      const detail = await call<{ step_list: { id: number; name: string }[]; global_var_list: unknown[] }>(
        'get_job_template_detail',
        { job_template_id: t.data.id },
      );
      const [one, two, three] = detail.data.step_list;
      const p = await call<{ id: number }>('create_job_plan', {
        job_template_id: t.data.id,
        name: 'p',
        step_list: [{ id: one?.id }, { id: three?.id }],
        global_var_list: [{ name: 'keep', value: 'plan' }],
      });
      assert.equal(p.result, true, p.message);
      const cron = await call<{ id: number }>('save_cron', {
        job_plan_id: p.data.id,
        name: 'nightly',
        expression: '0 3 * * *',
      });
      assert.equal(cron.result, true, cron.message);

      const vars = detail.data.global_var_list as { id: number; name: string }[];
      const varNamed = (name: string) => vars.find((v) => v.name === name);
      const changed = await call('update_job_template', {
        job_template_id: t.data.id,
        name: 'preview',
        global_var_list: [
          { ...varNamed('keep'), type: 1, value: 'template' },
          { ...varNamed('secret'), type: 4, value: '******' },
          { name: 'fresh', type: 1, value: 'new' },
        ],
        step_list: [one, two, script('four')],
      });
      assert.equal(changed.result, true, changed.message);

      const preview = await get<Preview>(
        fleet.server.url,
        'get_job_plan_sync_preview',
        { ...fleet.scope, job_plan_id: p.data.id },
        fleet.creds,
      );
      assert.equal(preview.result, true, preview.message);
      assert.equal(preview.data.need_update, true);
      assert.deepEqual(
        preview.data.step_list.map((s) => [s.name, s.change]),
        [
          ['one', 'kept'],
          ['two', 'disabled'],
          ['four', 'added'],
        ],
      );
      assert.deepEqual(preview.data.removed_step_id_list, [three?.id]);
      assert.deepEqual(
        preview.data.global_var_list.map((v) => [v.name, v.change]),
        [
          ['keep', 'kept'],
          ['secret', 'kept'],
          ['fresh', 'added'],
          ['gone', 'dropped'],
        ],
      );
      const keep = preview.data.global_var_list.find((v) => v.name === 'keep');
      assert.deepEqual([keep?.plan_value, keep?.template_value], ['plan', 'template']);
      assert.ok(!JSON.stringify(preview).includes('never-shown-7Q'));
      assert.deepEqual(preview.data.cron_list, [{ id: cron.data.id, name: 'nightly' }]);

      // The sync does what the preview said.
      assert.equal((await call('sync_job_plan', { job_plan_id: p.data.id })).result, true);
      const synced = await call<{ step_list: { name: string }[] }>('get_job_plan_detail', {
        job_plan_id: p.data.id,
      });
      assert.deepEqual(
        synced.data.step_list.map((s) => s.name),
        ['one', 'four'],
      );
      const after = await call<Preview>('get_job_plan_sync_preview', { job_plan_id: p.data.id });
      assert.equal(after.data.need_update, false);
      assert.ok(after.data.step_list.every((s) => s.change !== 'added'));
      assert.ok(after.data.global_var_list.every((v) => v.change === 'kept'));
    });
  });
}
