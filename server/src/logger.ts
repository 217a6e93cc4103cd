/**
 * The log output of servers and agents: one JSON object per line when read by a machine,
 * pretty and coloured when a person watches a terminal. Both carry the same fields; `auto`
 * picks pretty only when stdout is a terminal.
 */
import pino from 'pino';
import type { Logger } from 'pino';
import pretty from 'pino-pretty';

export type LogFormat = 'auto' | 'json' | 'pretty';

export function createLogger(opts: {
  level: string;
  format: LogFormat;
  base: Record<string, unknown>;
  /** Where lines go (stdout by default); pretty when it is a terminal and format is auto. */
  stream?: NodeJS.WritableStream & { isTTY?: boolean; fd?: number };
}): Logger {
  const out = opts.stream ?? process.stdout;
  const isPretty = opts.format === 'pretty' || (opts.format === 'auto' && out.isTTY === true);
  const options = { level: opts.level, base: opts.base };
  if (!isPretty) return opts.stream ? pino(options, opts.stream) : pino(options);
  // In-process (not a worker transport): a line is written before the process can exit.
  return pino(
    options,
    pretty({
      colorize: out.isTTY === true,
      destination: out,
      sync: true,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname',
    }),
  );
}
