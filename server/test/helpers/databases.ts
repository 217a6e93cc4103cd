/**
 * The engines a test runs on: SQLite always; PostgreSQL when JOBFLEET_TEST_PG_URL names a
 * server (CI always sets it). Each call to `freshDatabase` creates a new, empty PostgreSQL
 * database, so test files never see each other's rows; `dropFreshDatabases` removes the ones
 * this process created (call it in `after`, once the processes using them are stopped).
 */
import crypto from 'node:crypto';
import pg from 'pg';

export type EngineName = 'sqlite' | 'postgres';

export function engines(): EngineName[] {
  return process.env.JOBFLEET_TEST_PG_URL ? ['sqlite', 'postgres'] : ['sqlite'];
}

const created: string[] = [];

async function withAdminClient<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const base = process.env.JOBFLEET_TEST_PG_URL;
  if (!base) throw new Error('JOBFLEET_TEST_PG_URL is not set');
  const client = new pg.Client({ connectionString: base });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** A database URL for the engine: undefined for SQLite (the server's data dir holds it). */
export async function freshDatabase(engine: EngineName): Promise<string | undefined> {
  if (engine === 'sqlite') return undefined;
  const name = `jobfleet_test_${crypto.randomBytes(6).toString('hex')}`;
  await withAdminClient((client) => client.query(`CREATE DATABASE ${name}`));
  created.push(name);
  const url = new URL(process.env.JOBFLEET_TEST_PG_URL ?? '');
  url.pathname = `/${name}`;
  return url.toString();
}

/** Drops every database `freshDatabase` created in this process (FORCE ends leftover sessions). */
export async function dropFreshDatabases(): Promise<void> {
  if (created.length === 0) return;
  const names = created.splice(0);
  await withAdminClient(async (client) => {
    for (const name of names) await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  });
}
