/** A fresh PostgreSQL database per server the bench starts, dropped afterwards. */
import crypto from 'node:crypto';
import pg from 'pg';

async function withClient<T>(adminUrl: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** True when the server answers (the bench then also runs the PostgreSQL figures). */
export async function reachable(adminUrl: string): Promise<boolean> {
  try {
    await withClient(adminUrl, (c) => c.query('SELECT 1'));
    return true;
  } catch {
    return false;
  }
}

export async function createDatabase(adminUrl: string): Promise<string> {
  const name = `jobfleet_bench_${crypto.randomBytes(6).toString('hex')}`;
  await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function dropDatabase(adminUrl: string, databaseUrl: string): Promise<void> {
  const name = new URL(databaseUrl).pathname.slice(1);
  if (!/^jobfleet_bench_[0-9a-f]+$/.test(name)) throw new Error(`refusing to drop ${name}`);
  await withClient(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
}
