/**
 * Rolling execution on the server: the batch sizes of @jobfleet/protocol/rolling (the console
 * previews the same ones) with the API's refusals, and the failure budget.
 */
import { MAX_BATCHES, rollingBatchSizes } from '@jobfleet/protocol/rolling';
import { ApiError } from '../api/error-catalogue.js';

export { MAX_BATCHES };

/** Batch sizes for `total` hosts; throws 1244026 for a bad expression, 1244027 past 500 batches. */
export function batchSizes(expression: string, total: number): number[] {
  const sizes = rollingBatchSizes(expression, total);
  if (sizes === 'invalid') throw new ApiError('INVALID_ROLLING_EXPR', { expression });
  if (sizes === 'too-many-batches') throw new ApiError('ROLLING_BATCH_LIMIT', { limit: MAX_BATCHES });
  return sizes;
}

/** The failure budget: a count, or a percentage of the step's hosts (rounded down). */
export function failureBudget(value: number | string | undefined, total: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'number') return value;
  const pct = Number(value.slice(0, -1));
  return Math.floor((total * pct) / 100);
}
