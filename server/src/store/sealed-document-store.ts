/**
 * JSON documents that hold cipher variable values sealed inside them: template and plan bodies,
 * a cron's variable values and a plan job's variables. The key rotation reads them page by page
 * and rewrites one only if it is still what was read (compare-and-set), so jobs, authoring and
 * other servers resealing at the same time are safe.
 */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

export type SealedDocumentKind = 'template' | 'plan' | 'cron' | 'job_vars';

const WHERE: Record<
  SealedDocumentKind,
  { table: 'job_template' | 'job_plan' | 'cron_job' | 'job_instance_var'; column: 'body' | 'vars' }
> = {
  template: { table: 'job_template', column: 'body' },
  plan: { table: 'job_plan', column: 'body' },
  cron: { table: 'cron_job', column: 'vars' },
  job_vars: { table: 'job_instance_var', column: 'body' },
};

export class SealedDocumentStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** Documents with at least one sealed value, in id order after `afterId`. */
  async page(
    kind: SealedDocumentKind,
    afterId: number,
    limit: number,
  ): Promise<{ id: number; document: string }[]> {
    const { table, column } = WHERE[kind];
    const rows = await this.db
      .selectFrom(table)
      .select(['id', `${column} as document`])
      .where('id', '>', afterId)
      // Templates also hold sealed script parameters (of steps marked sensitive) and
      // confirmation webhook URLs.
      .where((eb) =>
        kind === 'template'
          ? eb.or([
              eb(column, 'like', '%"sealed":"%'),
              eb(column, 'like', '%"is_param_sensitive":1%'),
              eb(column, 'like', '%"webhook_url":"%'),
            ])
          : eb(column, 'like', '%"sealed":"%'),
      )
      .orderBy('id')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ id: Number(r.id), document: String(r.document) }));
  }

  /** Replaces a document if it is still `before`; false when it changed meanwhile. */
  async replace(kind: SealedDocumentKind, id: number, before: string, after: string): Promise<boolean> {
    const { table, column } = WHERE[kind];
    const r = await this.db
      .updateTable(table)
      .set({ [column]: after })
      .where('id', '=', id)
      .where(column, '=', before)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }
}
