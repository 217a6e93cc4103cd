/**
 * The log output of servers and agents: one JSON object per line when read by a machine,
 * pretty and coloured when a person watches a terminal. Both carry the same fields; `auto`
 * picks pretty only when the output is a terminal.
 */
import { createRequire } from 'node:module';
import pino from 'pino';
import type { Logger, LoggerOptions } from 'pino';
import type Pretty from 'pino-pretty';

// pino-pretty is loaded only for a terminal: agents and servers logging JSON never need it.
const require = createRequire(import.meta.url);

export type LogFormat = 'auto' | 'json' | 'pretty';

/** `options` are pino's (level, base fields, serializers, redaction); lines go to `stream` (stdout). */
export function createLogger(
  options: LoggerOptions,
  format: LogFormat,
  stream: NodeJS.WriteStream = process.stdout,
): Logger {
  const isPretty = format === 'pretty' || (format === 'auto' && stream.isTTY);
  if (!isPretty) return stream === process.stdout ? pino(options) : pino(options, stream);
  // In-process rather than a worker transport: a line is written before the process can exit.
  const pretty = require('pino-pretty') as typeof Pretty;
  return pino(
    options,
    pretty({
      colorize: stream.isTTY,
      destination: stream,
      sync: true,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname',
    }),
  );
}
