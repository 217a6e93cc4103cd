/**
 * Dangerous-command rules (behaviour notes §3.21): a regular expression, the script languages
 * it watches, and what a match does. Matching is per line, so a reply can point at the line.
 *
 * Expressions are JavaScript regular expressions compiled without flags. BK-JOB compiles them
 * as Java patterns; the common subset (classes, groups, anchors, quantifiers) means the same.
 */

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
    new RegExp(expression);
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
 * Every (line, rule) pair where the rule matches, in line order and, within a line, in the
 * order the rules were given. Each pair reports its first match in that line.
 */
export function scanScript(content: string, rules: readonly DangerousRule[]): RuleMatch[] {
  const compiled = rules.map((rule) => ({ rule, re: new RegExp(rule.expression) }));
  const matches: RuleMatch[] = [];
  const lines = content.split(/\r?\n/);
  // A trailing newline ends the last line; it does not start an empty one.
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  lines.forEach((text, i) => {
    for (const { rule, re } of compiled) {
      const m = re.exec(text);
      if (m) matches.push({ rule, line: i + 1, lineContent: text, matchContent: m[0] });
    }
  });
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
