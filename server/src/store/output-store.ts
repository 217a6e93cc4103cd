/** Output fingerprints of finished host tasks (see outputs/output-fingerprint.ts). */
import type { Kysely } from 'kysely';
import { onConnectionAround } from './connection-around.js';
import type { EngineCapabilities } from './engines.js';
import type { Database } from './schema.js';

export interface FingerprintRow {
  stepInstanceId: number;
  executeCount: number;
  hostId: number;
  fingerprints: Record<string, string>;
}

const CHUNK = 500;

export class OutputStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly caps: EngineCapabilities,
  ) {}

  /**
   * Where the engine allows it (SQLite, see relaxedTransaction) the write does not wait for the
   * disk: it comes right after the results it belongs to are committed, and a sync there would
   * hold up the server (SQLite syncs on the event loop) just as clients come to read those
   * results. Fingerprints are derived data: a crash that loses them leaves them to be computed
   * again from the stored logs (output-groups.ts); the next durable commit makes them durable.
   */
  async save(rows: readonly FingerprintRow[]): Promise<void> {
    const around = this.caps.relaxedTransaction;
    if (!around) return this.insert(this.db, rows);
    await onConnectionAround(this.db, around, (conn) => this.insert(conn, rows));
  }

  private async insert(db: Kysely<Database>, given: readonly FingerprintRow[]): Promise<void> {
    // The last row of each host attempt: PostgreSQL refuses an upsert that names a key twice,
    // and a batch may hold a result and its resend.
    const rows = [
      ...new Map(given.map((r) => [`${r.stepInstanceId}:${r.executeCount}:${r.hostId}`, r])).values(),
    ];
    for (let i = 0; i < rows.length; i += CHUNK) {
      await db
        .insertInto('output_fingerprint')
        .values(
          rows.slice(i, i + CHUNK).map((r) => ({
            step_instance_id: r.stepInstanceId,
            execute_count: r.executeCount,
            host_id: r.hostId,
            fingerprints: JSON.stringify(r.fingerprints),
          })),
        )
        .onConflict((oc) =>
          oc
            .columns(['step_instance_id', 'execute_count', 'host_id'])
            .doUpdateSet((eb) => ({ fingerprints: eb.ref('excluded.fingerprints') })),
        )
        .execute();
    }
  }

  /** bk_host_id -> fingerprints, for the hosts of one step attempt that have them. */
  async ofAttempt(
    stepInstanceId: number,
    executeCount: number,
  ): Promise<Map<number, Record<string, string>>> {
    const rows = await this.db
      .selectFrom('output_fingerprint')
      .select(['host_id', 'fingerprints'])
      .where('step_instance_id', '=', stepInstanceId)
      .where('execute_count', '=', executeCount)
      .execute();
    return new Map(rows.map((r) => [r.host_id, JSON.parse(r.fingerprints) as Record<string, string>]));
  }

  /** The address and name each host reported (what the host normaliser replaces). */
  async identities(hostIds: readonly number[]): Promise<Map<number, { ip: string; hostname: string }>> {
    const out = new Map<number, { ip: string; hostname: string }>();
    for (let i = 0; i < hostIds.length; i += CHUNK) {
      const rows = await this.db
        .selectFrom('host')
        .select(['id', 'ip', 'hostname'])
        .where('id', 'in', hostIds.slice(i, i + CHUNK))
        .execute();
      for (const r of rows) out.set(r.id, { ip: r.ip, hostname: r.hostname });
    }
    return out;
  }
}
