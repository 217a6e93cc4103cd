/**
 * Dangerous-command rules (behaviour notes §3.21): a regular expression, the script languages
 * it watches, and what a match does. Matching is per line, so a reply can point at the line.
 *
 * Expressions are RE2 patterns (https://github.com/google/re2/wiki/Syntax). BK-JOB compiles
 * them as Java patterns; the common subset (classes, groups, anchors, quantifiers) means the
 * same. What RE2 leaves out (backreferences, lookaround) is what makes a backtracking engine
 * take exponential time: any app may send a script to check, so a rule such as `^(a+)+$` must
 * not be able to stall the server. Such expressions are refused when a rule is written.
 *
 * The engine is re2js, a pure JavaScript port of RE2: matching is linear in the input, and it
 * needs no native addon (the `re2` binding compiles C++ with node-gyp at install, which every
 * machine installing Jobfleet would then need a compiler for).
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { RE2JS } from 're2js';
import { ApiError } from '../api/error-catalogue.js';

export const RuleAction = { SCAN: 1, INTERCEPT: 2 } as const;
export type RuleAction = (typeof RuleAction)[keyof typeof RuleAction];

export const RuleStatus = { DISABLED: 0, ENABLED: 1 } as const;
export type RuleStatus = (typeof RuleStatus)[keyof typeof RuleStatus];

export function isRuleAction(v: number): v is RuleAction {
  return v === RuleAction.SCAN || v === RuleAction.INTERCEPT;
}

/** check_script levels; rule matches are always fatal. */
export const CheckLevel = { WARNING: 1, ERROR: 2, FATAL: 3 } as const;

export const MAX_EXPRESSION_LENGTH = 250;
export const MAX_DESCRIPTION_LENGTH = 1000;
export const SCRIPT_LANGUAGE_CODES = [1, 2, 3, 4, 5, 6] as const;

export interface DangerousRule {
  id: number;
  expression: string;
  /** Sorted, without duplicates. */
  scriptLanguages: number[];
  description: string;
  action: RuleAction;
  status: RuleStatus;
  creator: string;
  createTime: number;
  lastModifyUser: string;
  lastModifyTime: number;
}

/** A set of languages as one integer, so the store can select "rules for language n" with one AND. */
export function languageMask(languages: readonly number[]): number {
  return languages.reduce((mask, l) => mask | (1 << (l - 1)), 0);
}

export function languagesOfMask(mask: number): number[] {
  return SCRIPT_LANGUAGE_CODES.filter((l) => (mask & (1 << (l - 1))) !== 0);
}

/** The compiler's complaint about an expression, or null when it compiles. */
export function expressionError(expression: string): string | null {
  try {
    RE2JS.compile(expression);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

export interface RuleMatch {
  rule: DangerousRule;
  /** 1-based. */
  line: number;
  lineContent: string;
  matchContent: string;
}

/**
 * Bounds on one check, so that a large script cannot hold the server: the longest line matched
 * (one match call is one uninterrupted stretch of work, at worst about 0.6 µs a character), and
 * the time a whole check may take. Between lines the check yields to other requests.
 */
export const MAX_CHECKED_LINE_CHARS = 1024 * 1024;
export const MAX_CHECK_MS = 5000;
const WORK_BETWEEN_YIELDS = 256 * 1024;

function compileRules(rules: readonly DangerousRule[]): { rule: DangerousRule; re: RE2JS }[] {
  const compiled: { rule: DangerousRule; re: RE2JS }[] = [];
  for (const rule of rules) {
    try {
      compiled.push({ rule, re: RE2JS.compile(rule.expression) });
    } catch (err) {
      // Written before expressions were checked with RE2: it cannot be evaluated safely.
      throw new ApiError('DANGEROUS_RULE_EXPRESSION_UNSUPPORTED', {
        id: rule.id,
        expression: rule.expression,
        reason: (err as Error).message,
      });
    }
  }
  return compiled;
}

/** How a comment line of each script language starts (after leading blanks), as BK-JOB reads them; SQL has none. */
const COMMENT_START: Partial<Record<number, string>> = { 1: '#', 2: 'REM', 3: '#', 4: '#', 5: '#' };

/**
 * Every (line, rule) pair where the rule matches, in line order and, within a line, in the
 * order the rules were given. Each pair reports its first match in that line. Blank lines and
 * comment lines are not checked (BK-JOB skips them too): a command commented out does not run.
 */
export async function scanScript(
  content: string,
  language: number,
  rules: readonly DangerousRule[],
): Promise<RuleMatch[]> {
  if (rules.length === 0) return [];
  const compiled = compileRules(rules);
  const matches: RuleMatch[] = [];
  const lines = content.split(/\r?\n/);
  // A trailing newline ends the last line; it does not start an empty one.
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  const limit = (why: string) =>
    new ApiError('DANGEROUS_RULE_CHECK_LIMIT', { reason: why, rules: compiled.length });
  const deadline = Date.now() + MAX_CHECK_MS;
  let work = 0;
  const comment = COMMENT_START[language];
  for (const [i, text] of lines.entries()) {
    const trimmed = text.trim();
    if (trimmed === '' || (comment !== undefined && trimmed.startsWith(comment))) continue;
    if (text.length > MAX_CHECKED_LINE_CHARS)
      throw limit(`line ${i + 1} is longer than ${MAX_CHECKED_LINE_CHARS} characters`);
    for (const { rule, re } of compiled) {
      const m = re.matcher(text);
      if (m.find()) matches.push({ rule, line: i + 1, lineContent: text, matchContent: m.group() ?? '' });
      work += text.length + 1;
      if (work >= WORK_BETWEEN_YIELDS) {
        work = 0;
        await yieldToEventLoop();
        if (Date.now() > deadline) throw limit(`checking took longer than ${MAX_CHECK_MS} ms`);
      }
    }
  }
  return matches;
}

/** `rule 3 "rm -rf" (wipes files) at lines 1, 4`, one clause per rule, for refusal messages. */
export function describeMatches(matches: readonly RuleMatch[], maxLinesPerRule = 20): string {
  const byRule = new Map<number, { rule: DangerousRule; lines: number[] }>();
  for (const m of matches) {
    const entry = byRule.get(m.rule.id) ?? { rule: m.rule, lines: [] };
    entry.lines.push(m.line);
    byRule.set(m.rule.id, entry);
  }
  return [...byRule.values()]
    .map(({ rule, lines }) => {
      const shown = lines.slice(0, maxLinesPerRule).join(', ');
      const more = lines.length > maxLinesPerRule ? ` and ${lines.length - maxLinesPerRule} more` : '';
      const desc = rule.description ? ` (${rule.description})` : '';
      return `rule ${rule.id} "${rule.expression}"${desc} at line${lines.length > 1 ? 's' : ''} ${shown}${more}`;
    })
    .join('; ');
}
