/**
 * Dangerous-command rules (behaviour notes §3.21): create, update, delete, enable, disable and
 * list. Rules are global, so these endpoints take no scope; changing them needs a platform app
 * (one granted every scope), as BK-JOB asks for a platform-level permission. Every invalid
 * field answers 1240003, as BK-JOB's bean validation does.
 */
import { z } from 'zod';
import {
  expressionError,
  MAX_DESCRIPTION_LENGTH,
  MAX_EXPRESSION_LENGTH,
  RuleStatus,
} from '../../rules/dangerous-rules.js';
import type { DangerousRule } from '../../rules/dangerous-rules.js';
import { DUPLICATE } from '../../store/rule-store.js';
import type { RuleFields } from '../../store/rule-store.js';
import { defineEndpoint } from '../endpoint.js';
import type { EndpointContext } from '../endpoint.js';
import { ApiError } from '../error-catalogue.js';
import type { ErrorName, PermissionInfo } from '../error-catalogue.js';
import { zInt, zLong, zText } from '../input-types.js';

const LANGUAGES = 'must be 1 shell, 2 bat, 3 perl, 4 python, 5 powershell or 6 sql';
export const ScriptLanguage = zInt.pipe(z.number().min(1, LANGUAGES).max(6, LANGUAGES));
const Action = zInt.pipe(z.literal([1, 2], { error: 'must be 1 (scan) or 2 (intercept)' }));
const RuleId = zLong.pipe(z.number().min(1, 'must be a rule id (1 or more)'));

const Expression = zText(MAX_EXPRESSION_LENGTH)
  .refine((s) => s.trim() !== '', 'must not be blank')
  .superRefine((s, ctx) => {
    const error = expressionError(s);
    if (error) ctx.addIssue({ code: 'custom', message: error });
  });

const RuleInput = z.object({
  expression: Expression,
  script_language_list: z.array(ScriptLanguage).min(1, 'must name at least one script language'),
  description: zText(MAX_DESCRIPTION_LENGTH).nullish(),
  action: Action,
});

const ALL_BAD_REQUEST: Record<string, ErrorName> = {
  id: 'BAD_REQUEST',
  expression: 'BAD_REQUEST',
  script_language_list: 'BAD_REQUEST',
  description: 'BAD_REQUEST',
  action: 'BAD_REQUEST',
};

const PERMISSION: PermissionInfo = {
  system_id: 'bk_job',
  system_name: 'Jobfleet',
  actions: [
    { id: 'high_risk_detect_rule', name: 'Manage dangerous-command rules', related_resource_types: [] },
  ],
};

function assertPlatformApp(ctx: EndpointContext): void {
  if (ctx.caller.scopes === 'all') return;
  throw new ApiError(
    'BK_PERMISSION_DENIED',
    { appCode: ctx.caller.appCode, resource: 'dangerous-command rules (needs an app granted every scope)' },
    PERMISSION,
  );
}

export function ruleReply(r: DangerousRule) {
  return {
    id: r.id,
    expression: r.expression,
    script_language_list: r.scriptLanguages,
    description: r.description,
    action: r.action,
    status: r.status,
    creator: r.creator,
    create_time: r.createTime,
    last_modify_user: r.lastModifyUser,
    last_modify_time: r.lastModifyTime,
  };
}

function fieldsOf(input: z.output<typeof RuleInput>): RuleFields {
  return {
    expression: input.expression,
    scriptLanguages: [...new Set(input.script_language_list)].sort((a, b) => a - b),
    description: input.description ?? '',
    action: input.action,
  };
}

export const createDangerousRule = defineEndpoint({
  name: 'create_dangerous_rule',
  kind: 'write',
  permission: 'manage',
  scoped: false,
  input: RuleInput,
  fieldErrors: ALL_BAD_REQUEST,
  async handle(ctx, input) {
    assertPlatformApp(ctx);
    const rule = await ctx.services.store.rules.createRule(fieldsOf(input), ctx.caller.username);
    if (rule === DUPLICATE) throw new ApiError('DANGEROUS_RULE_EXIST', { expression: input.expression });
    return ruleReply(rule);
  },
});

export const updateDangerousRule = defineEndpoint({
  name: 'update_dangerous_rule',
  kind: 'write',
  permission: 'manage',
  scoped: false,
  input: RuleInput.extend({ id: RuleId }),
  fieldErrors: ALL_BAD_REQUEST,
  async handle(ctx, input) {
    assertPlatformApp(ctx);
    const rule = await ctx.services.store.rules.updateRule(input.id, fieldsOf(input), ctx.caller.username);
    if (rule === DUPLICATE) throw new ApiError('DANGEROUS_RULE_EXIST', { expression: input.expression });
    if (!rule) throw new ApiError('DANGEROUS_RULE_NOT_EXIST', { id: input.id });
    return ruleReply(rule);
  },
});

export const deleteDangerousRule = defineEndpoint({
  name: 'delete_dangerous_rule',
  kind: 'write',
  permission: 'manage',
  scoped: false,
  input: z.object({ id: RuleId }),
  fieldErrors: ALL_BAD_REQUEST,
  async handle(ctx, input) {
    assertPlatformApp(ctx);
    if (!(await ctx.services.store.rules.deleteRule(input.id)))
      throw new ApiError('DANGEROUS_RULE_NOT_EXIST', { id: input.id });
    return null;
  },
});

function statusEndpoint(name: string, status: RuleStatus) {
  return defineEndpoint({
    name,
    kind: 'write',
    permission: 'manage',
    scoped: false,
    input: z.object({ id: RuleId }),
    fieldErrors: ALL_BAD_REQUEST,
    async handle(ctx, input) {
      assertPlatformApp(ctx);
      const rule = await ctx.services.store.rules.setRuleStatus(input.id, status, ctx.caller.username);
      if (!rule) throw new ApiError('DANGEROUS_RULE_NOT_EXIST', { id: input.id });
      return { id: rule.id, status: rule.status };
    },
  });
}

export const enableDangerousRule = statusEndpoint('enable_dangerous_rule', RuleStatus.ENABLED);
export const disableDangerousRule = statusEndpoint('disable_dangerous_rule', RuleStatus.DISABLED);

/** A GET query string carries a list as `1,4` or as repeated keys. */
function listFromText(v: unknown): unknown {
  return typeof v === 'string' ? v.split(',').filter((s) => s.trim() !== '') : v;
}

const contains = (text: string, part: string) => text.toLowerCase().includes(part.toLowerCase());

/**
 * A plain array, not paged. Text filters match a part of the field, ignoring case (as
 * BK-JOB's LIKE on MySQL does); a language filter keeps rules watching any of the languages.
 */
export const getDangerousRuleList = defineEndpoint({
  name: 'get_dangerous_rule_list',
  kind: 'read',
  permission: 'read',
  scoped: false,
  input: z.object({
    expression: z.string().nullish(),
    script_language_list: z.preprocess(listFromText, z.array(ScriptLanguage)).nullish(),
    description: z.string().nullish(),
    action: Action.nullish(),
  }),
  fieldErrors: ALL_BAD_REQUEST,
  async handle(ctx, input) {
    const rules = await ctx.services.store.rules.listRules();
    const languages = input.script_language_list ?? [];
    return rules
      .filter(
        (r) =>
          (!input.expression || contains(r.expression, input.expression)) &&
          (!input.description || contains(r.description, input.description)) &&
          (input.action == null || r.action === input.action) &&
          (languages.length === 0 || r.scriptLanguages.some((l) => languages.includes(l))),
      )
      .map(ruleReply);
  },
});
