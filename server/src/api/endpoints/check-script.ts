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
    return checkItems(await scanScript(content, input.script_language, rules));
  },
});

/**
 * A reply names at most this many findings, each line and match cut to MAX_SHOWN_CHARS: every
 * finding repeats its whole line, so a 16 MiB script of lines that each match every rule made a
 * reply of hundreds of MiB (past what JSON.stringify takes).
 */
const MAX_ITEMS = 1000;
const MAX_SHOWN_CHARS = 1024;

function shown(text: string): string {
  return text.length > MAX_SHOWN_CHARS ? `${text.slice(0, MAX_SHOWN_CHARS)}…` : text;
}

/** Findings in check_script's shape (also the warnings of a saved library script). */
export function checkItems(matches: readonly RuleMatch[]) {
  return matches.slice(0, MAX_ITEMS).map((m) => ({
    line: m.line,
    line_content: shown(m.lineContent),
    match_content: shown(m.matchContent),
    level: CheckLevel.FATAL,
    description: m.rule.description,
  }));
}
