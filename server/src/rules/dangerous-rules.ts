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

/**
 * The most instructions an expression's program may have. RE2 matches in time proportional to
 * the line times the program: `a.{1000}` repeated takes seconds a line in one uninterruptible
 * call, where real rules have tens of instructions (`[a-z]{1,100}x` has about 200).
 */
export const MAX_PROGRAM_SIZE = 1000;

/** Why an expression cannot be a rule, or null when it can. */
export function expressionError(expression: string): string | null {
  let size: number;
  try {
    size = RE2JS.compile(expression).programSize();
  } catch (err) {
    return `is not a regular expression the linear-time (RE2) engine takes: ${(err as Error).message}; backreferences and lookaround are not supported`;
  }
  return size > MAX_PROGRAM_SIZE
    ? `is too complex to check scripts with (${size} instructions, at most ${MAX_PROGRAM_SIZE}; large repeat counts make it so)`
    : null;
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
/** Line length × program size one match call may take (about a second at worst). */
const MAX_MATCH_WORK = 64 * 1024 * 1024;

function compileRules(rules: readonly DangerousRule[]): { rule: DangerousRule; re: RE2JS; size: number }[] {
  const compiled: { rule: DangerousRule; re: RE2JS; size: number }[] = [];
  for (const rule of rules) {
    try {
      const re = RE2JS.compile(rule.expression);
      compiled.push({ rule, re, size: re.programSize() });
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
    for (const { rule, re, size } of compiled) {
      // A rule saved before its program size was bounded may still be too slow for a long line.
      if (text.length * size > MAX_MATCH_WORK)
        throw limit(`line ${i + 1} is too long for rule ${rule.id}'s expression (${size} instructions)`);
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
