/**
 * Where `jf` connects to: flags > JOBFLEET_URL / JOBFLEET_TOKEN / JOBFLEET_SCOPE > the profile
 * file ($XDG_CONFIG_HOME/jobfleet/config.yaml or ~/.config/jobfleet/config.yaml, mode 0600).
 *
 * A token is either a personal API token (sent as `Authorization: Bearer`) or, when it has the
 * form `APP_CODE:APP_SECRET`, the credentials of an app (sent in `X-Bkapi-Authorization`).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { configPath } from './config-path.js';
import { CliError, Exit } from './exit-codes.js';

export interface Profile {
  server?: string | undefined;
  token?: string | undefined;
  scope?: string | undefined;
  account?: string | undefined;
  user?: string | undefined;
}

interface ProfileFile {
  current: string;
  profiles: Record<string, Profile>;
}

/**
 * The profile file's schema. zod loads on first use, only when there is a file to read (it
 * costs about as much as the rest of jf's start-up); this module itself is loaded lazily too.
 * The file is written as JSON, which YAML reads too, so the YAML parser loads only for a file
 * someone wrote by hand.
 */
async function profileFileSchema() {
  const { z } = await import('zod');
  const profile = z.object({
    server: z.string().optional(),
    token: z.string().optional(),
    scope: z.string().optional(),
    account: z.string().optional(),
    user: z.string().optional(),
  });
  return z.object({
    current: z.string().default('default'),
    profiles: z.record(z.string(), profile).default({}),
  });
}

const loadYaml = async () => (await import('yaml')).default;

async function readFile(file: string): Promise<ProfileFile> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return { current: 'default', profiles: {} };
  }
  const schema = await profileFileSchema();
  let doc: unknown;
  try {
    // jf writes the file as JSON (which is YAML): read without loading the YAML parser.
    doc = JSON.parse(text);
  } catch {
    try {
      doc = (await loadYaml()).parse(text) ?? {};
    } catch {
      doc = undefined;
    }
  }
  const parsed = schema.safeParse(doc);
  if (!parsed.success)
    throw new CliError(`${file} is not a jobfleet profile file; fix or delete it`, Exit.USAGE);
  return parsed.data;
}

export async function saveProfile(name: string, profile: Profile, file = configPath()): Promise<void> {
  const all = await readFile(file);
  all.profiles[name] = profile;
  all.current = name;
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  // Written to a temporary file created 0600, then renamed: the token is never readable by others.
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(all, null, 2) + '\n', { mode: 0o600 });
  fs.renameSync(tmp, file);
  fs.chmodSync(file, 0o600);
}

export interface Scope {
  type: 'biz' | 'biz_set';
  id: string;
}

export type Auth = { kind: 'bearer'; token: string } | { kind: 'app'; code: string; secret: string };

export interface Connection {
  server: string;
  auth: Auth | undefined;
  scope: Scope | undefined;
  account: string;
  user: string | undefined;
  profileName: string;
}

export interface ConnectionFlags {
  server?: string | undefined;
  token?: string | undefined;
  scope?: string | undefined;
  profile?: string | undefined;
}

export function parseScope(text: string): Scope {
  const m = /^(biz|biz_set):(\d+)$/.exec(text.trim());
  if (!m) throw new CliError(`scope "${text}" is not biz:<id> or biz_set:<id>`, Exit.USAGE);
  return { type: m[1] as Scope['type'], id: m[2] as string };
}

export function parseToken(token: string): Auth {
  const colon = token.indexOf(':');
  if (colon > 0) return { kind: 'app', code: token.slice(0, colon), secret: token.slice(colon + 1) };
  return { kind: 'bearer', token };
}

export async function resolveConnection(
  flags: ConnectionFlags,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Connection> {
  const all = await readFile(configPath(env));
  const profileName = flags.profile || env.JOBFLEET_PROFILE || all.current;
  const p = all.profiles[profileName] ?? {};
  const server = flags.server || env.JOBFLEET_URL || p.server;
  if (!server)
    throw new CliError('no server: run `jf login`, or pass --server / set JOBFLEET_URL', Exit.USAGE);
  const token = flags.token || env.JOBFLEET_TOKEN || p.token;
  const scope = flags.scope || env.JOBFLEET_SCOPE || p.scope;
  return {
    server: server.replace(/\/+$/, ''),
    auth: token ? parseToken(token) : undefined,
    scope: scope ? parseScope(scope) : undefined,
    account: p.account ?? os.userInfo().username,
    user: p.user,
    profileName,
  };
}
