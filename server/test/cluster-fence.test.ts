/**
 * The cluster's fences, checked on the store itself (PostgreSQL only): a result written under an
 * agent session that moved on is refused, a server marked dead cannot change executions, and a
 * silent server whose statement holds its row is cut off so that it can be marked dead.
 */
import assert from 'node:assert/strict';
import crypto, { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { ClusterStore } from '../src/cluster/cluster-store.js';
import { CHUNK_BYTES, fileBodiesFor } from '../src/files/file-bodies.js';
import type { TaskWrite } from '../src/store/execution-store.js';
import { Store } from '../src/store/store.js';
import { eventually } from './helpers/api-client.js';
import { dropFreshDatabases, freshDatabase } from './helpers/databases.js';
import { tempDir } from './helpers/processes.js';

const withPg = Boolean(process.env.JOBFLEET_TEST_PG_URL);
const HOST = 7;

describe('cluster fences on PostgreSQL', { skip: !withPg }, () => {
  const me = randomUUID();
  let store: Store;
  let cluster: ClusterStore;
  let other: Store;
  let databaseUrl: string | undefined;

  before(async () => {
    databaseUrl = await freshDatabase('postgres');
    store = await Store.open({ databaseUrl, dataDir: tempDir('fence'), serverId: me });
    store.executions.ownerId = me;
    cluster = new ClusterStore(store.db);
    await cluster.register(me, 'http://127.0.1.1:1');
    // Another server's view of the same database (its own id, alive).
    const them = randomUUID();
    other = await Store.open({ databaseUrl, dataDir: tempDir('fence'), serverId: them });
    await new ClusterStore(other.db).register(them, 'http://127.0.1.2:1');
  });
  after(async () => {
    await store?.close();
    await other?.close();
    await dropFreshDatabases();
  });

  const newJob = () =>
    store.executions.createJobInstance(
      {
        scopeType: 'biz',
        scopeId: '2',
        name: 'fence',
        type: 0,
        launchMode: 1,
        operator: 'tester',
        appCode: 'test',
        callbackUrl: null,
        clientRequestId: null,
        steps: [
          {
            name: 's',
            type: 1,
            spec: { kind: 'script' },
            hosts: [
              { hostId: HOST, cloudId: 0, ip: '127.0.0.9', ipv6: '', agentId: null, status: 5, batch: 0 },
            ],
          },
        ],
      },
      true,
    );

  test('a result from a session that moved on is refused; the current one is recorded', async () => {
    const { jobInstanceId, stepInstanceIds } = await newJob();
    const step = stepInstanceIds[0] ?? 0;
    assert.equal((await store.executions.getJob(jobInstanceId))?.owner_id, me);
    const first = await cluster.openSession(HOST, me);
    const second = await new ClusterStore(other.db).openSession(HOST, 'elsewhere');
    assert.equal(second, first + 1);
    const stale: TaskWrite = {
      stepInstanceId: step,
      executeCount: 0,
      hostId: HOST,
      chunks: [],
      status: 9,
      sessionEpoch: first,
    };
    assert.equal((await store.executions.commitTaskWrites([stale])).size, 0);
    assert.equal(stale.fenced, true);
    assert.equal((await store.executions.getHostTask(step, 0, HOST))?.status, 5);
    const current = { ...stale, status: 104, sessionEpoch: second };
    assert.equal((await store.executions.commitTaskWrites([current])).size, 1);
    assert.equal((await store.executions.getHostTask(step, 0, HOST))?.status, 104);
  });

  test('a server marked dead can change no execution row, and never comes back', async () => {
    const { jobInstanceId } = await newJob();
    await store.db.updateTable('server_node').set({ heartbeat_at: 0 }).where('id', '=', me).execute();
    // Silent since 1970, against a dead-after of a minute: only this one, whatever the machine load.
    assert.deepEqual(await new ClusterStore(other.db).markSilentDead(60_000), [me]);
    await assert.rejects(store.executions.updateJob(jobInstanceId, { status: 3 }), /is fenced/);
    await assert.rejects(newJob(), /is fenced/);
    assert.equal(await cluster.heartbeat(me), 'dead');
    // The live server takes the job over and may change it.
    const them = (
      await other.db.selectFrom('server_node').select('id').where('state', '=', 'alive').execute()
    )[0]?.id;
    assert.ok(them);
    assert.ok((await new ClusterStore(other.db).claimOrphans(them, 10)).includes(jobInstanceId));
    await other.executions.updateJob(jobInstanceId, { status: 3 });
    assert.equal((await other.executions.getJob(jobInstanceId))?.status, 3);
  });

  test('a silent server whose statement holds its row is cut off and marked dead', async () => {
    const silent = randomUUID();
    await new ClusterStore(other.db).register(silent, 'http://127.0.1.3:1');
    await other.db.updateTable('server_node').set({ heartbeat_at: 0 }).where('id', '=', silent).execute();
    // As the fence leaves it in a statement the paused server cannot take the answer of.
    const held = new pg.Client({ connectionString: databaseUrl, application_name: `jobfleet:${silent}` });
    await held.connect();
    held.on('error', () => undefined);
    try {
      await held.query('begin');
      await held.query('select 1 from server_node where id = $1 for share', [silent]);
      assert.deepEqual(await new ClusterStore(other.db).markSilentDead(60_000), [silent]);
      await assert.rejects(held.query('select 1'), "the silent server's connection was ended");
    } finally {
      await held.end().catch(() => undefined);
    }
  });

  test('a server marked dead mid-upload cannot write into the file another server took over', async () => {
    const gone = randomUUID();
    const next = randomUUID();
    const goneStore = await Store.open({ databaseUrl, dataDir: tempDir('fence'), serverId: gone });
    const nextStore = await Store.open({ databaseUrl, dataDir: tempDir('fence'), serverId: next });
    try {
      await new ClusterStore(goneStore.db).register(gone, 'http://127.0.1.4:1');
      await new ClusterStore(nextStore.db).register(next, 'http://127.0.1.5:1');
      const path = `2/${randomUUID()}/tester/taken-over.bin`;
      await nextStore.files.createStoredFiles([
        {
          path,
          scope_type: 'biz',
          scope_id: '2',
          creator: 'tester',
          file_name: 'taken-over.bin',
          upload_token_hash: 'fence-token',
          expires_at: Date.now() + 600_000,
          size: null,
          sha256: null,
          created_at: Date.now(),
        },
      ]);
      const goneClaimant = { id: gone, clustered: true };
      const nextClaimant = { id: next, clustered: true };
      assert.ok(await goneStore.files.claimUpload('fence-token', Date.now(), goneClaimant));
      assert.equal(await nextStore.files.claimUpload('fence-token', Date.now(), nextClaimant), undefined);
      // The first upload writes a chunk, then its server stops (paused) in the middle of the body.
      let resume: () => void = () => undefined;
      const paused = new Promise<void>((r) => (resume = r));
      async function* slowBody(): AsyncGenerator<Buffer> {
        yield crypto.randomBytes(CHUNK_BYTES + 10);
        await paused;
        yield crypto.randomBytes(CHUNK_BYTES);
      }
      const goneWrite = fileBodiesFor(goneStore, tempDir('fence'))
        .write(path, slowBody())
        .then(
          () => undefined,
          (err: unknown) => err,
        );
      await eventually(async () => ((await nextStore.fileChunks.has(path)) ? true : undefined));
      await goneStore.db.updateTable('server_node').set({ heartbeat_at: 0 }).where('id', '=', gone).execute();
      assert.ok((await new ClusterStore(nextStore.db).markSilentDead(60_000)).includes(gone));

      const taken = await nextStore.files.claimUpload('fence-token', Date.now(), nextClaimant);
      assert.equal(taken?.upload_claimed_by, next);
      const data = crypto.randomBytes(CHUNK_BYTES + 5);
      const nextBodies = fileBodiesFor(nextStore, tempDir('fence'));
      const written = await nextBodies.write(path, [data]);
      // The paused server wakes up: its next chunk, and the clean-up of its failure, are refused.
      resume();
      assert.match(String(await goneWrite), /is fenced/);
      await assert.rejects(goneStore.files.releaseUpload('fence-token', gone), /is fenced/);
      await assert.rejects(goneStore.files.completeUpload('fence-token', gone, 1, 'x'), /is fenced/);
      assert.equal(
        await nextStore.files.completeUpload('fence-token', next, written.size, written.sha256),
        true,
      );
      const read = Buffer.concat(await nextBodies.read(path, 0, data.length).toArray());
      assert.ok(read.equals(data), 'the file holds the bytes of the upload that took it over');
    } finally {
      await goneStore.close();
      await nextStore.close();
    }
  });
});
