/** What every command's action needs: the connection, the API client and the output settings. */
import type { Command } from 'commander';
import type { ApiClient } from './api-client.js';
import { CliError, Exit } from './exit-codes.js';
import { FORMATS, makeOutput, prepareOutput } from './render.js';
import type { Format, Output } from './render.js';

export interface GlobalOptions {
  server?: string;
  token?: string;
  scope?: string;
  profile?: string;
  output?: string;
  color?: boolean;
  quiet?: boolean;
}

const GLOBAL_KEYS = ['server', 'token', 'scope', 'profile', 'output', 'color', 'quiet'] as const;

/**
 * The connection and output options of a command. They are declared on every level of the
 * command tree (program.ts), and each level reads only those before its subcommand: the one
 * given nearest the command wins, and defaults count as not given.
 */
export function globalOptionsOf(cmd: Command): GlobalOptions {
  const found: Record<string, unknown> = {};
  for (let c: Command | null = cmd; c; c = c.parent)
    for (const key of GLOBAL_KEYS) {
      const source = c.getOptionValueSource(key);
      if (!(key in found) && source !== undefined && source !== 'default') found[key] = c.getOptionValue(key);
    }
  return found as GlobalOptions;
}

export interface Ctx {
  client: ApiClient;
  out: Output;
}

export function outputOf(cmd: Command): Output {
  const g = globalOptionsOf(cmd);
  if (g.output !== undefined && !FORMATS.includes(g.output as Format))
    throw new CliError(`-o ${g.output}: choose one of ${FORMATS.join(', ')}`, Exit.USAGE);
  return makeOutput(g);
}

/** The connection (profile, flags, environment) and output of a command; its modules load here, not at start-up. */
export async function contextOf(cmd: Command): Promise<Ctx> {
  const g = globalOptionsOf(cmd);
  const out = outputOf(cmd);
  await prepareOutput(out);
  const [{ ApiClient }, { resolveConnection }] = await Promise.all([
    import('./api-client.js'),
    import('./profile.js'),
  ]);
  const conn = await resolveConnection({
    server: g.server,
    token: g.token,
    scope: g.scope,
    profile: g.profile,
  });
  return { client: new ApiClient(conn), out };
}

export function positiveInt(what: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n <= 0)
      throw new CliError(`${what} "${v}" is not a positive integer`, Exit.USAGE);
    return n;
  };
}

export const jobId = positiveInt('job id');
