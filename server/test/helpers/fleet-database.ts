/** Statements on a fleet's database from outside its server (SQLite file or PostgreSQL). */
import path from 'node:path';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import type { Fleet } from './fleet.js';

/** Runs `sqliteText` on the SQLite file, or `pgText` on the PostgreSQL database, of the fleet. */
export async function onFleetDatabase(fleet: Fleet, sqliteText: string, pgText: string): Promise<void> {
  if (!fleet.databaseUrl) {
    const db = new SQLite(path.join(fleet.server.dataDir, 'jobfleet.db'));
    try {
      db.exec(sqliteText);
    } finally {
      db.close();
    }
    return;
  }
  const client = new pg.Client({ connectionString: fleet.databaseUrl });
  await client.connect();
  try {
    await client.query(pgText);
  } finally {
    await client.end();
  }
}

/** The rows `sqliteText` reads from the SQLite file, or `pgText` from the PostgreSQL database, of the fleet. */
export async function queryFleetDatabase<T>(fleet: Fleet, sqliteText: string, pgText: string): Promise<T[]> {
  if (!fleet.databaseUrl) {
    const db = new SQLite(path.join(fleet.server.dataDir, 'jobfleet.db'), { readonly: true });
    try {
      return db.prepare(sqliteText).all() as T[];
    } finally {
      db.close();
    }
  }
  const client = new pg.Client({ connectionString: fleet.databaseUrl });
  await client.connect();
  try {
    return (await client.query(pgText)).rows as T[];
  } finally {
    await client.end();
  }
}
