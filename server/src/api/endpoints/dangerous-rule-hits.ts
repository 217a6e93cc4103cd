/**
 * get_dangerous_rule_hit_list (Jobfleet extension; not in BK-JOB): every dangerous-command rule
 * match in scripts submitted in the scope, newest first, with who submitted it, what matched
 * and the job it became (null when the submission was refused).
 */
import { z } from 'zod';
import { defineEndpoint } from '../endpoint.js';
import { zInt, zLong } from '../input-types.js';

export const getDangerousRuleHitList = defineEndpoint({
  name: 'get_dangerous_rule_hit_list',
  kind: 'read',
  permission: 'read',
  input: z.object({
    job_instance_id: zLong.pipe(z.number().min(1)).optional(),
    start: zInt.pipe(z.number().min(0)).default(0),
    length: zInt.pipe(z.number().min(1).max(1000)).default(20),
  }),
  fieldErrors: { job_instance_id: 'BAD_REQUEST', start: 'BAD_REQUEST', length: 'BAD_REQUEST' },
  async handle(ctx, input) {
    const { total, hits } = await ctx.services.store.rules.listHits({
      scopeType: ctx.scope.type,
      scopeId: String(ctx.scope.id),
      ...(input.job_instance_id !== undefined ? { jobInstanceId: input.job_instance_id } : {}),
      start: input.start,
      length: input.length,
    });
    return {
      start: input.start,
      length: input.length,
      total,
      data: hits.map((h) => ({
        id: h.id,
        rule_id: h.rule_id,
        expression: h.expression,
        description: h.description,
        action: h.action,
        script_language: h.script_language,
        line: h.line,
        line_content: h.line_content,
        match_content: h.match_content,
        intercepted: h.intercepted === 1,
        job_instance_id: h.job_instance_id,
        bk_scope_type: h.scope_type,
        bk_scope_id: h.scope_id,
        app_code: h.app_code,
        operator: h.operator,
        create_time: h.create_time,
      })),
    };
  },
});
