/** Storage operations for dangerous-command rules and the record of their hits. */
import { sql } from 'kysely';
import type { Kysely, Selectable } from 'kysely';
import { languageMask, languagesOfMask, RuleStatus } from '../rules/dangerous-rules.js';
import type { DangerousRule, RuleAction } from '../rules/dangerous-rules.js';
import type { Database, DangerousRuleHitTable, DangerousRuleTable } from './schema.js';
import { isUniqueViolation } from './constraint-errors.js';
import { deleteInPages } from './paged-delete.js';

export type RuleHit = Selectable<DangerousRuleHitTable>;

export interface RuleFields {
  expression: string;
  scriptLanguages: readonly number[];
  description: string;
  action: RuleAction;
}

export interface NewRuleHit {
  ruleId: number;
  expression: string;
  description: string;
  action: number;
  scopeType: string;
  scopeId: string;
  appCode: string;
  operator: string;
  scriptLanguage: number;
  line: number;
  lineContent: string;
  matchContent: string;
  intercepted: boolean;
  jobInstanceId: number | null;
  createTime: number;
}

/** Another rule already has this expression for this language set. */
export const DUPLICATE = 'duplicate' as const;

const INSERT_CHUNK = 200;

function toRule(r: Selectable<DangerousRuleTable>): DangerousRule {
  return {
    id: r.id,
    expression: r.expression,
    scriptLanguages: languagesOfMask(r.script_languages),
    description: r.description,
    action: r.action as RuleAction,
    status: r.status as RuleStatus,
    creator: r.creator,
    createTime: r.create_time,
    lastModifyUser: r.last_modify_user,
    lastModifyTime: r.last_modify_time,
  };
}

export class RuleStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** New rules start disabled, so a rule is reviewed before it can refuse anyone's job. */
  async createRule(f: RuleFields, user: string, now = Date.now()): Promise<DangerousRule | typeof DUPLICATE> {
    try {
      const row = await this.db
        .insertInto('dangerous_rule')
        .values({
          expression: f.expression,
          script_languages: languageMask(f.scriptLanguages),
          description: f.description,
          action: f.action,
          status: RuleStatus.DISABLED,
          creator: user,
          create_time: now,
          last_modify_user: user,
          last_modify_time: now,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toRule(row);
    } catch (err) {
      if (isUniqueViolation(err)) return DUPLICATE;
      throw err;
    }
  }

  /** Undefined when no rule has this id; the status is kept. */
  async updateRule(
    id: number,
    f: RuleFields,
    user: string,
    now = Date.now(),
  ): Promise<DangerousRule | undefined | typeof DUPLICATE> {
    try {
      const row = await this.db
        .updateTable('dangerous_rule')
        .set({
          expression: f.expression,
          script_languages: languageMask(f.scriptLanguages),
          description: f.description,
          action: f.action,
          last_modify_user: user,
          last_modify_time: now,
        })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirst();
      return row && toRule(row);
    } catch (err) {
      if (isUniqueViolation(err)) return DUPLICATE;
      throw err;
    }
  }

  async setRuleStatus(
    id: number,
    status: RuleStatus,
    user: string,
    now = Date.now(),
  ): Promise<DangerousRule | undefined> {
    const row = await this.db
      .updateTable('dangerous_rule')
      .set({ status, last_modify_user: user, last_modify_time: now })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    return row && toRule(row);
  }

  async deleteRule(id: number): Promise<boolean> {
    const r = await this.db.deleteFrom('dangerous_rule').where('id', '=', id).executeTakeFirst();
    return r.numDeletedRows > 0n;
  }

  /** Every rule, oldest first: rules are few (an operator writes each one by hand). */
  async listRules(): Promise<DangerousRule[]> {
    const rows = await this.db.selectFrom('dangerous_rule').selectAll().orderBy('id').execute();
    return rows.map(toRule);
  }

  async enabledRulesFor(language: number): Promise<DangerousRule[]> {
    const rows = await this.db
      .selectFrom('dangerous_rule')
      .selectAll()
      .where('status', '=', RuleStatus.ENABLED)
      .where(sql<number>`script_languages & ${languageMask([language])}`, '<>', 0)
      .orderBy('id')
      .execute();
    return rows.map(toRule);
  }

  async recordHits(hits: readonly NewRuleHit[]): Promise<void> {
    if (hits.length === 0) return;
    await this.db.transaction().execute(async (tx) => {
      for (let i = 0; i < hits.length; i += INSERT_CHUNK) {
        await tx
          .insertInto('dangerous_rule_hit')
          .values(
            hits.slice(i, i + INSERT_CHUNK).map((h) => ({
              rule_id: h.ruleId,
              expression: h.expression,
              description: h.description,
              action: h.action,
              scope_type: h.scopeType,
              scope_id: h.scopeId,
              app_code: h.appCode,
              operator: h.operator,
              script_language: h.scriptLanguage,
              line: h.line,
              line_content: h.lineContent,
              match_content: h.matchContent,
              intercepted: h.intercepted ? 1 : 0,
              job_instance_id: h.jobInstanceId,
              create_time: h.createTime,
            })),
          )
          .execute();
      }
    });
  }

  /**
   * Removes hits recorded before `before` (the audit retention), oldest first, in pages; returns
   * how many. Each page is a range of the create_time index (migration 0055).
   */
  async pruneHits(before: number, page = 5000): Promise<number> {
    return deleteInPages(page, () =>
      this.db
        .deleteFrom('dangerous_rule_hit')
        .where('id', 'in', (eb) =>
          eb
            .selectFrom('dangerous_rule_hit as h')
            .select('h.id')
            .where('h.create_time', '<', before)
            .orderBy('h.create_time')
            .limit(page),
        )
        .executeTakeFirst(),
    );
  }

  /** Hits in one scope, newest first. */
  async listHits(f: {
    scopeType: string;
    scopeId: string;
    jobInstanceId?: number;
    start: number;
    length: number;
  }): Promise<{ total: number; hits: RuleHit[] }> {
    let q = this.db
      .selectFrom('dangerous_rule_hit')
      .where('scope_type', '=', f.scopeType)
      .where('scope_id', '=', f.scopeId);
    if (f.jobInstanceId !== undefined) q = q.where('job_instance_id', '=', f.jobInstanceId);
    const { total } = await q.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow();
    const hits = await q.selectAll().orderBy('id', 'desc').offset(f.start).limit(f.length).execute();
    return { total: Number(total), hits };
  }
}
