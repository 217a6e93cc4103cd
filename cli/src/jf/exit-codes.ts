/**
 * Exit codes of `jf` (documented in cli/README.md): scripts branch on them, so they never change
 * meaning. `--maxrc` answers the largest host exit code instead, when that is larger.
 */
export const Exit = {
  OK: 0,
  FAILED: 1,
  USAGE: 2,
  TERMINATED: 3,
  AUTH: 4,
  TIMED_OUT: 5,
  /** Ctrl-C while following: the job goes on, its outcome is unknown (128 + SIGINT, as shells report it). */
  INTERRUPTED: 130,
  /** stdout was closed (`| head`) before the outcome was known (128 + SIGPIPE). */
  PIPE_CLOSED: 141,
} as const;
export type Exit = (typeof Exit)[keyof typeof Exit];

/** An error meant for the operator: one line on stderr and its exit code, no stack. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: Exit = Exit.FAILED,
    /** The server's code, when the server refused the call. */
    readonly apiCode?: number,
  ) {
    super(message);
  }
}
