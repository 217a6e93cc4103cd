/** Output fingerprints of finished host tasks (see outputs/output-fingerprint.ts). */
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
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
   * Committed without waiting for the disk: fingerprints are derived from stored logs, and a
   * finished task that has none (lost to a power cut) is fingerprinted from its log when its
   * groups are asked for (OutputGroups.fingerprints). Waiting would cost every batch of results
   * a second sync.
   */
  async save(rows: readonly FingerprintRow[]): Promise<void> {
    if (rows.length === 0) return;
    const { before, after } = this.caps.relaxedCommit;
    await this.db.connection().execute(async (conn) => {
      for (const s of before) await sql.raw(s).execute(conn);
      try {
        for (let i = 0; i < rows.length; i += CHUNK) {
          await conn
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
      } finally {
        for (const s of after) await sql.raw(s).execute(conn);
      }
    });
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
