/**
 * The agent's log lines, in the server's format (pino's JSON lines; pino-pretty on a terminal)
 * but written without pino: pino loads worker_threads and thread-stream for transports the
 * agent never uses, about 2.5 MiB of every idle agent for as long as its host runs.
 */
import { createRequire } from 'node:module';
import type Pretty from 'pino-pretty';

export type LogFormat = 'auto' | 'json' | 'pretty';

type Write = (fieldsOrMsg: Record<string, unknown> | string, msg?: string) => void;
export interface AgentLogger {
  info: Write;
  warn: Write;
  error: Write;
}

export function createAgentLogger(
  base: Record<string, unknown>,
  format: LogFormat,
  stream: NodeJS.WriteStream,
): AgentLogger {
  const isPretty = format === 'pretty' || (format === 'auto' && stream.isTTY);
  let out: { write(line: string): unknown } = stream;
  if (isPretty) {
    // The same settings as the server's pretty logs (server/src/logger.ts).
    const pretty = createRequire(import.meta.url)('pino-pretty') as typeof Pretty;
    out = pretty({
      colorize: stream.isTTY,
      destination: stream,
      sync: true,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname',
    });
  }
  const at =
    (level: number): Write =>
    (fieldsOrMsg, msg) => {
      const fields = typeof fieldsOrMsg === 'string' ? {} : fieldsOrMsg;
      const text = typeof fieldsOrMsg === 'string' ? fieldsOrMsg : msg;
      out.write(`${JSON.stringify({ level, time: Date.now(), ...base, ...fields, msg: text })}\n`);
    };
  return { info: at(30), warn: at(40), error: at(50) };
}
