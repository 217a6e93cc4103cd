/**
 * check_script (behaviour notes §3.21): what the enabled dangerous-command rules for a language
 * find in a script, line by line. Jobfleet has no other script checks, so every item is a rule
 * match at level 3 (fatal), whatever the rule's action.
 */
import { z } from 'zod';
import { CheckLevel, scanScript } from '../../rules/dangerous-rules.js';
import type { RuleMatch } from '../../rules/dangerous-rules.js';
import { defineEndpoint } from '../endpoint.js';
import { zBase64 } from '../input-types.js';
import { ScriptLanguage } from './dangerous-rules.js';

const MAX_SCRIPT_BYTES = 16_777_215;

export const checkScript = defineEndpoint({
  name: 'check_script',
  kind: 'write',
  permission: 'read',
  // POST only, as BK-JOB serves it, but it changes nothing: no audit entry.
  audited: false,
  scoped: false,
  input: z.object({
    script_language: ScriptLanguage,
    content: zBase64(MAX_SCRIPT_BYTES).refine((s) => s !== '', 'must not be empty'),
  }),
  fieldErrors: { script_language: 'BAD_REQUEST', content: 'BAD_REQUEST' },
  async handle(ctx, input) {
    const rules = await ctx.services.store.rules.enabledRulesFor(input.script_language);
    const content = Buffer.from(input.content, 'base64').toString('utf8');
    return (await scanScript(content, input.script_language, rules)).map(checkItem);
  },
});

/** One finding in check_script's shape (also the warnings of a saved library script). */
export function checkItem(m: RuleMatch) {
  return {
    line: m.line,
    line_content: m.lineContent,
    match_content: m.matchContent,
    level: CheckLevel.FATAL,
    description: m.rule.description,
  };
}
