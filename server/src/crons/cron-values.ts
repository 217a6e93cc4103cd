/**
 * A cron's variable values as stored (by variable id, cipher values sealed) and as the API and
 * the plan-execution path take and give them.
 */
import { z } from 'zod';
import { ApiError } from '../api/error-catalogue.js';
import { TargetServer } from '../api/input-types.js';
import type { GivenVars } from '../api/endpoints/execute-job-plan.js';
import { CIPHER_MASK, VarType } from '../plans/plan-shapes.js';
import type { Services } from '../services.js';
import type { CronRow } from '../store/cron-store.js';
import type { Schedule } from './cron-schedule.js';

/** What a cron's cipher values are sealed for (the key rotation reseals them under it too). */
export const CRON_CIPHER_PURPOSE = 'cron-variable';

export const StoredCronVar = z.object({
  id: z.number(),
  name: z.string(),
  type: z.number(),
  value: z.string().nullable(),
  sealed: z.string().optional(),
  server: TargetServer.nullable(),
});
export type StoredCronVar = z.infer<typeof StoredCronVar>;

export function parseCronVars(cron: Pick<CronRow, 'vars'>): StoredCronVar[] {
  return z.array(StoredCronVar).parse(JSON.parse(cron.vars));
}

export function sealCronVar(services: Services, plain: string): string {
  return services.secretBox.seal(plain, CRON_CIPHER_PURPOSE);
}

/**
 * The values as execute_job_plan takes them (ciphers opened only to be sealed for the job); a
 * cipher value sealed under a key this server does not hold refuses the firing.
 */
export function cronVarsToGiven(services: Services, cron: Pick<CronRow, 'vars'>): GivenVars {
  return parseCronVars(cron).map((v) => {
    let value = v.value;
    if (v.sealed) {
      try {
        value = services.secretBox.open(v.sealed, CRON_CIPHER_PURPOSE);
      } catch (err) {
        throw new ApiError('SEALED_VALUE_UNOPENABLE', {
          what: `cipher variable ${v.name} of the cron`,
          reason: (err as Error).message,
        });
      }
    }
    return { id: v.id, value, server: v.server };
  });
}

/**
 * The API view of a value; cipher values are never shown back: one the cron sets shows as the
 * mask (as in get_job_plan_detail), which save_cron takes back as "unchanged".
 */
export function cronVarView(v: StoredCronVar): Record<string, unknown> {
  return {
    id: v.id,
    name: v.name,
    value: v.type === VarType.CIPHER ? (v.sealed ? CIPHER_MASK : null) : v.value,
    description: null,
    type: v.type,
    required: null,
  };
}

export function scheduleOf(
  cron: Pick<CronRow, 'expression' | 'execute_time' | 'time_zone' | 'end_time'>,
): Schedule {
  return {
    expression: cron.expression,
    executeTime: cron.execute_time === null ? null : Number(cron.execute_time),
    timeZone: cron.time_zone,
    endTime: cron.end_time === null ? null : Number(cron.end_time),
  };
}
