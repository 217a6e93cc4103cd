/**
 * Migration 0049 gives file_log columns for paths too long for its key and leaves the key and
 * the rows as they were. During a rolling upgrade servers of the older version share the
 * database: their upsert must go on working on the migrated table, and a log one version wrote
 * must be updated by the other rather than stored a second time.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, describe, it } from 'node:test';
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { openEngine } from '../src/store/engines.js';
import { migrateTo, migrateToLatest } from '../src/store/migrations.js';
import { Store } from '../src/store/store.js';
import { dropFreshDatabases, engines, freshDatabase } from './helpers/databases.js';
import { tempDir } from './helpers/processes.js';

after(dropFreshDatabases);

/** file_log as migration 0005 made it, which the older version reads and writes. */
interface FileLog0005 {
  step_instance_id: number;
  execute_count: number;
  host_id: number;
  mode: number;
  src_host_id: number;
  src_label: string;
  src_path: string;
  dest_host_id: number;
  dest_label: string;
  dest_path: string;
  status: number;
  size: number;
  bytes: number;
  speed: number;
  content: string;
  updated_at: number;
}

type OldDatabase = Kysely<{ file_log: FileLog0005 }>;

/** The older version's upsert of file logs (file-store.ts before migration 0049), as it was. */
async function oldUpsertLogs(db: OldDatabase, rows: readonly FileLog0005[]): Promise<void> {
  await db
    .insertInto('file_log')
    .values([...rows])
    .onConflict((oc) =>
      oc
        .columns([
          'step_instance_id',
          'execute_count',
          'host_id',
          'mode',
          'src_label',
          'src_path',
          'dest_label',
          'dest_path',
        ])
        .doUpdateSet((eb) => ({
          status: eb.ref('excluded.status'),
          size: eb.ref('excluded.size'),
          bytes: eb.ref('excluded.bytes'),
          speed: eb.ref('excluded.speed'),
          content: eb.ref('excluded.content'),
          updated_at: eb.ref('excluded.updated_at'),
        })),
    )
    .execute();
}

const STEP = 77;

function log(
  n: number,
  paths: Pick<FileLog0005, 'src_label' | 'src_path' | 'dest_label' | 'dest_path'>,
): FileLog0005 {
  return {
    step_instance_id: STEP,
    execute_count: 0,
    host_id: 1000 + (n % 3),
    mode: n % 2,
    src_host_id: 1000,
    dest_host_id: 1000 + (n % 3),
    status: 3,
    size: 1_000_000 + n,
    bytes: n,
    speed: 10 * n,
    content: `line ${n}`,
    updated_at: 1_700_000_000_000 + n,
    ...paths,
  };
}

/** A path of `bytes` bytes in UTF-8 that does not compress. */
function randomPath(bytes: number, prefix = '/'): string {
  const tail = crypto
    .randomBytes(bytes)
    .toString('base64url')
    .slice(0, bytes - Buffer.byteLength(prefix));
  return `${prefix}${tail}`;
}

/**
 * Rows the older version stored: text in several scripts, empty paths (a failed source names
 * none), and a path past the new code's bound that an older server stored under its text (it
 * repeats, so a PostgreSQL index entry compressed it; SQLite has no limit).
 */
function oldRows(): FileLog0005[] {
  const rows: FileLog0005[] = [
    log(0, {
      src_label: '0:10.0.0.1',
      src_path: '/données/日本/😀.bin',
      dest_label: 'é',
      dest_path: '/tmp/😀',
    }),
    log(1, { src_label: '0:10.0.0.1', src_path: '', dest_label: '', dest_path: '' }),
    log(2, {
      src_label: 'server',
      src_path: `/${'long/'.repeat(400)}f`,
      dest_label: '0:10.0.0.2',
      dest_path: `/${'deep/'.repeat(300)}f`,
    }),
  ];
  for (let n = 3; n < 60; n++)
    rows.push(
      log(n, {
        src_label: `0:10.0.${n % 7}.1`,
        src_path: `/srv/${n}/ü-${n}.dat`,
        dest_label: `0:10.0.${n % 3}.2`,
        dest_path: `/opt/in/ü-${n}.dat`,
      }),
    );
  return rows;
}

/** A row's identity as the older version keyed it, to match rows read back with those written. */
const identity = (r: FileLog0005) =>
  JSON.stringify([r.execute_count, r.host_id, r.mode, r.src_label, r.src_path, r.dest_label, r.dest_path]);

const byIdentity = <T extends FileLog0005>(rows: readonly T[]) => new Map(rows.map((r) => [identity(r), r]));

async function countRows(db: Kysely<unknown>): Promise<number> {
  const { rows } = await sql<{ n: number }>`select count(*) as n from file_log`.execute(db);
  return Number(rows[0]?.n);
}

/** Rows as the table holds them, the new columns included. */
async function tableRows(db: Kysely<unknown>): Promise<(FileLog0005 & Record<string, unknown>)[]> {
  const { rows } = await sql<FileLog0005 & Record<string, unknown>>`select * from file_log`.execute(db);
  return rows;
}

for (const engine of engines()) {
  describe(`file log migration 0049 on ${engine}`, () => {
    it("keeps the rows and the key: either version's upsert updates the other's rows", async () => {
      const databaseUrl = await freshDatabase(engine);
      const dataDir = tempDir(`file-log-migration-${engine}`);
      const rows = oldRows();
      const added = log(100, { src_label: '0:10.0.9.1', src_path: '/added', dest_label: '', dest_path: '' });

      const opened = openEngine({ databaseUrl, dataDir });
      const db = opened.db as unknown as Kysely<unknown>;
      const old = opened.db as unknown as OldDatabase;
      try {
        await migrateTo(db, opened.caps, '0048_upload_claimed_by');
        await oldUpsertLogs(old, rows);

        assert.equal((await migrateToLatest(db, opened.caps)).applied[0], '0049_file_log_full_paths');
        const migrated = await tableRows(db);
        assert.equal(migrated.length, rows.length);
        const migratedBy = byIdentity(migrated);
        for (const r of rows)
          assert.deepEqual(migratedBy.get(identity(r)), { ...r, src_path_full: null, dest_path_full: null });

        // (1) A server of the older version, still running on the migrated database: its upsert
        // adds a row and updates one it wrote before.
        const first = rows[0] as FileLog0005;
        const firstLater = { ...first, status: 4, bytes: first.size, content: 'old server: done' };
        await oldUpsertLogs(old, [added, firstLater]);
        assert.equal(await countRows(db), rows.length + 1);
        const afterOld = byIdentity(await tableRows(db));
        assert.deepEqual(afterOld.get(identity(added)), {
          ...added,
          src_path_full: null,
          dest_path_full: null,
        });
        assert.deepEqual(afterOld.get(identity(first)), {
          ...firstLater,
          src_path_full: null,
          dest_path_full: null,
        });
      } finally {
        await opened.db.destroy();
      }

      const store = await Store.open({ databaseUrl, dataDir });
      try {
        // (2) The new version upserts the logs the older one wrote (the step goes on after the
        // upgrade): each row is updated, none is added, and the paths read back as they were.
        const later = [...rows, added].map((r) => ({
          ...r,
          status: 4,
          bytes: r.size,
          content: `${r.content} new server: done`,
        }));
        assert.deepEqual(await store.files.upsertFileLogs(later), []);
        assert.equal(await countRows(store.db as unknown as Kysely<unknown>), later.length);
        const stored = await store.files.fileLogs(STEP, 0);
        assert.equal(stored.length, later.length);
        const storedBy = byIdentity(stored);
        for (const r of later) assert.deepEqual(storedBy.get(identity(r)), r);

        // (3) Long paths written by the new version: stored, with their stand-ins in the key,
        // updated in place by a later write, and read back whole.
        const longSrc = randomPath(3000);
        const longDest = randomPath(4096);
        const accented = `/${'é'.repeat(500)}`; // 500 characters, 1,001 bytes
        const fits = randomPath(1000);
        const longRows = [
          log(200, {
            src_label: '0:10.0.0.1',
            src_path: longSrc,
            dest_label: '0:10.0.0.2',
            dest_path: longDest,
          }),
          log(201, {
            src_label: '0:10.0.0.1',
            src_path: longSrc,
            dest_label: '0:10.0.0.3',
            dest_path: '/short',
          }),
          log(202, {
            src_label: '0:10.0.0.1',
            src_path: '/short',
            dest_label: '0:10.0.0.2',
            dest_path: longDest,
          }),
          log(203, {
            src_label: '0:10.0.0.1',
            src_path: accented,
            dest_label: '0:10.0.0.2',
            dest_path: fits,
          }),
          // Its source failed: no target, and the same long path from another source host.
          log(204, { src_label: '0:10.0.0.4', src_path: longSrc, dest_label: '', dest_path: '' }),
        ].map((r) => ({ ...r, step_instance_id: STEP + 1 }));
        assert.deepEqual(await store.files.upsertFileLogs(longRows), []);
        const longLater = longRows.map((r) => ({ ...r, status: 4, content: `${r.content} done` }));
        assert.deepEqual(await store.files.upsertFileLogs(longLater), []);
        const longStored = await store.files.fileLogs(STEP + 1, 0);
        assert.equal(longStored.length, longRows.length, 'updated in place, no second row');
        const longBy = byIdentity(longStored);
        for (const r of longLater) assert.deepEqual(longBy.get(identity(r)), r);

        const standIn = (path: string) => `#sha256:${crypto.createHash('sha256').update(path).digest('hex')}`;
        const { rows: raw } = await sql<
          FileLog0005 & { src_path_full: string | null; dest_path_full: string | null }
        >`
          select * from file_log where step_instance_id = ${STEP + 1} order by updated_at`.execute(store.db);
        assert.deepEqual(
          raw.map((r) => [r.src_path, r.src_path_full, r.dest_path, r.dest_path_full]),
          [
            [standIn(longSrc), longSrc, standIn(longDest), longDest],
            [standIn(longSrc), longSrc, '/short', null],
            ['/short', null, standIn(longDest), longDest],
            [standIn(accented), accented, fits, null],
            [standIn(longSrc), longSrc, '', null],
          ],
        );
        assert.equal(await countRows(store.db as unknown as Kysely<unknown>), later.length + longRows.length);
      } finally {
        await store.close();
      }
    });
  });
}
