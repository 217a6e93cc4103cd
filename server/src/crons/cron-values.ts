/**
 * A cron's variable values as stored (by variable id, cipher values sealed) and as the API and
 * the plan-execution path take and give them.
 */
import { z } from 'zod';
import { TargetServer } from '../api/input-types.js';
import type { GivenVars } from '../api/endpoints/execute-job-plan.js';
import { VarType } from '../plans/plan-shapes.js';
import type { Services } from '../services.js';
import type { CronRow } from '../store/cron-store.js';
import type { Schedule } from './cron-schedule.js';

const CIPHER_PURPOSE = 'cron-variable';

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
  return services.secretBox.seal(plain, CIPHER_PURPOSE);
}

/** The values as execute_job_plan takes them (ciphers opened only to be sealed for the job). */
export function cronVarsToGiven(services: Services, cron: Pick<CronRow, 'vars'>): GivenVars {
  return parseCronVars(cron).map((v) => ({
    id: v.id,
    value: v.sealed ? services.secretBox.open(v.sealed, CIPHER_PURPOSE) : v.value,
    server: v.server,
  }));
}

/** The API view of a value; cipher values are never shown back. */
export function cronVarView(v: StoredCronVar): Record<string, unknown> {
  return {
    id: v.id,
    name: v.name,
    value: v.type === VarType.CIPHER ? null : v.value,
    description: null,
    type: v.type,
    required: null,
    server: v.server,
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
