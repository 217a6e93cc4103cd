/**
 * Checks every execution API applies to what it is asked to run, before anything is stored:
 * dangerous-command rules on each script, and the callback allow-list.
 */
import { callbackUrlAllowed } from '../engine/callback-allow-list.js';
import { describeMatches, RuleAction, scanScript } from '../rules/dangerous-rules.js';
import type { RuleMatch } from '../rules/dangerous-rules.js';
import type { EndpointContext } from './endpoint.js';
import { ApiError } from './error-catalogue.js';

/** A pathological script (every line a hit) must not turn one submission into a flood of rows. */
const MAX_RECORDED_HITS = 1000;
/** Stored hits keep this much of the line and of the match; the script itself may be megabytes. */
const MAX_RECORDED_TEXT = 1000;

export interface ScreenedScript {
  /** Records the scan-only hits against the job made from the script (no-op without hits). */
  recordHits(jobInstanceId: number): Promise<void>;
}

const CLEAN: ScreenedScript = { recordHits: async () => undefined };

async function record(
  ctx: EndpointContext,
  language: number,
  matches: readonly RuleMatch[],
  outcome: { intercepted: boolean; jobInstanceId: number | null },
): Promise<void> {
  const now = Date.now();
  await ctx.services.store.rules.recordHits(
    matches.slice(0, MAX_RECORDED_HITS).map((m) => ({
      ruleId: m.rule.id,
      expression: m.rule.expression,
      description: m.rule.description,
      action: m.rule.action,
      scopeType: ctx.scope.type,
      scopeId: String(ctx.scope.id),
      appCode: ctx.caller.appCode,
      operator: ctx.caller.username,
      scriptLanguage: language,
      line: m.line,
      lineContent: m.lineContent.slice(0, MAX_RECORDED_TEXT),
      matchContent: m.matchContent.slice(0, MAX_RECORDED_TEXT),
      intercepted: outcome.intercepted,
      jobInstanceId: outcome.jobInstanceId,
      createTime: now,
    })),
  );
}

/**
 * Scans a base64 script with the enabled rules for its language. An intercept match refuses
 * the submission (1244019, naming each rule and its lines) after recording every hit; with
 * scan matches only, the caller creates the job and then records the hits against it.
 */
export async function enforceDangerousRules(
  ctx: EndpointContext,
  language: number,
  scriptContentBase64: string,
): Promise<ScreenedScript> {
  const rules = await ctx.services.store.rules.enabledRulesFor(language);
  if (rules.length === 0) return CLEAN;
  const matches = await scanScript(
    Buffer.from(scriptContentBase64, 'base64').toString('utf8'),
    language,
    rules,
  );
  if (matches.length === 0) return CLEAN;
  const intercepting = matches.filter((m) => m.rule.action === RuleAction.INTERCEPT);
  if (intercepting.length > 0) {
    await record(ctx, language, matches, { intercepted: true, jobInstanceId: null });
    throw new ApiError('DANGEROUS_SCRIPT_FORBIDDEN_EXECUTION', { matches: describeMatches(intercepting) });
  }
  return {
    // The job exists by now: failing the reply would invite a retry that runs it twice.
    recordHits: (jobInstanceId) =>
      record(ctx, language, matches, { intercepted: false, jobInstanceId }).catch((err: unknown) =>
        ctx.log.error({ err, job: jobInstanceId }, 'could not record dangerous-rule hits'),
      ),
  };
}

/** BK-JOB's own wording, which its clients may look for. */
const CALLBACK_REFUSED = 'Callback url is invalid or not in the allowed list';

export function assertCallbackAllowed(ctx: EndpointContext, callbackUrl: string | null): void {
  if (callbackUrl === null) return;
  if (!callbackUrlAllowed(ctx.services.config.callbackAllowList, callbackUrl))
    throw new ApiError('BAD_REQUEST', { reason: CALLBACK_REFUSED });
}
