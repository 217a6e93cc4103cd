/**
 * The engines a test runs on: SQLite always; PostgreSQL when JOBFLEET_TEST_PG_URL names a
 * server (CI always sets it). Each call to `freshDatabase` creates a new, empty PostgreSQL
 * database, so test files never see each other's rows.
 */
import crypto from 'node:crypto';
import pg from 'pg';

export type EngineName = 'sqlite' | 'postgres';

export function engines(): EngineName[] {
  return process.env.JOBFLEET_TEST_PG_URL ? ['sqlite', 'postgres'] : ['sqlite'];
}

/** A database URL for the engine: undefined for SQLite (the server's data dir holds it). */
export async function freshDatabase(engine: EngineName): Promise<string | undefined> {
  if (engine === 'sqlite') return undefined;
  const base = process.env.JOBFLEET_TEST_PG_URL;
  if (!base) throw new Error('JOBFLEET_TEST_PG_URL is not set');
  const name = `jobfleet_test_${crypto.randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: base });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(base);
  url.pathname = `/${name}`;
  return url.toString();
}
