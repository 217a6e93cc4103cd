/**
 * Template and plan times on the wire. The store keeps them in ms, as it keeps every other time;
 * BK-JOB answers these two in seconds and its plan and template lists filter them in seconds
 * (behaviour notes §2.1: its docs show ms, its code uses seconds, and clients follow the code).
 * Both directions are converted here and nowhere else, so the store and its indexes stay as
 * they are.
 */

/** A stored time (ms) as BK-JOB answers it: whole seconds. */
export function apiSeconds(ms: number): number {
  return Math.floor(ms / 1000);
}

// A bound far outside any stored time still has to be a number the databases take as an integer.
const clamp = (ms: number) => Math.min(Math.max(ms, Number.MIN_SAFE_INTEGER), Number.MAX_SAFE_INTEGER);

/** A filter's lower bound in seconds as a stored (ms) bound: from the start of that second. */
export function msFrom(seconds: number | undefined): number | undefined {
  return seconds === undefined ? undefined : clamp(seconds * 1000);
}

/**
 * A filter's upper bound in seconds as a stored (ms) bound: to the end of that second, so that
 * an item answered with `create_time: s` is found by `create_time_end: s`.
 */
export function msTo(seconds: number | undefined): number | undefined {
  return seconds === undefined ? undefined : clamp(seconds * 1000 + 999);
}
