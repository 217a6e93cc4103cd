/**
 * Secrets that every server of a cluster must hold alike, shared through the database they
 * all use: the server key (it seals app secrets, account passwords and every other secret the
 * store keeps), the app secret, the admin token and the agent bootstrap token (which also keys
 * file-offer tokens, so a token minted by one server verifies on all). The first server to start
 * inserts its values (`on conflict do nothing`); every later one reads and adopts them, and
 * writes them to its own secrets.json. A value given by the environment is used as given.
 *
 * What protects them in the database (table `cluster_secret`):
 * - app secret, admin token, bootstrap token: sealed by the server key (secret-box.ts).
 * - the server key itself, when no server has it from JOBFLEET_SERVER_KEY: wrapped (AES-256-GCM)
 *   under a key derived with HKDF from the password in the database URL. A dump or a backup of
 *   the database alone does not open it; whoever can log in as Jobfleet's role can. Clusters
 *   should give JOBFLEET_SERVER_KEY to every server instead: then the key never enters the
 *   database, and only its key id (public: every sealed value carries it) is kept there, so that
 *   a server started with another key refuses to start instead of failing later.
 * On SQLite (one server) nothing is shared: secrets.json holds everything, as before. Outside
 * cluster mode a server whose key does not match the shared one (its key was lost and replaced)
 * is not refused: its own values replace the shared ones, with a warning.
 */
import crypto from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { ServerConfig } from './config.js';
import { parseServerKey, SecretBox, SecretBoxError } from './secret-box.js';
import { keepSecrets, openSecretBox } from './secrets.js';
import type { ServerSecrets } from './secrets.js';
import type { Store } from './store/store.js';

const WRAP_PREFIX = 'w1';
const WRAP_PURPOSE = 'cluster_secret:server_key';

/**
 * The shared secrets sealed by the server key: their row name and their environment variable.
 * `oneForAll`: one value serves every server (the app secret: one app row is read by all), so a
 * server's own value replaces the shared one rather than being used by that server alone.
 */
const SEALED = [
  { field: 'appSecret', name: 'app_secret', env: 'JOBFLEET_APP_SECRET', oneForAll: true },
  { field: 'adminToken', name: 'admin_token', env: 'JOBFLEET_ADMIN_TOKEN', oneForAll: false },
  {
    field: 'agentBootstrapToken',
    name: 'agent_bootstrap_token',
    env: 'JOBFLEET_AGENT_BOOTSTRAP_TOKEN',
    oneForAll: false,
  },
] as const;

function keyIdOf(serverKey: string): string {
  return new SecretBox(parseServerKey(serverKey)).currentKeyId;
}

function databasePassword(databaseUrl: string | undefined): string {
  if (!databaseUrl) return '';
  try {
    return decodeURIComponent(new URL(databaseUrl).password);
  } catch {
    return '';
  }
}

function wrappingBox(password: string, salt: Buffer): SecretBox {
  const kek = crypto.hkdfSync('sha256', password, salt, 'jobfleet cluster server key', 32);
  return new SecretBox(Buffer.from(kek));
}

export function wrapServerKey(serverKey: string, password: string): string {
  const salt = crypto.randomBytes(16);
  return `${WRAP_PREFIX}.${salt.toString('base64url')}.${wrappingBox(password, salt).seal(serverKey, WRAP_PURPOSE)}`;
}

export function unwrapServerKey(wrapped: string, password: string): string {
  const [prefix, salt, sealed] = wrapped.split('.');
  if (prefix !== WRAP_PREFIX || !salt || !sealed) throw new SecretBoxError('not a wrapped server key');
  return wrappingBox(password, Buffer.from(salt, 'base64url')).open(sealed, WRAP_PURPOSE);
}

class SharedSecretsError extends Error {}

/** Checks (and on first start records) which key the servers of this database use. */
async function checkKeyId(
  store: Store,
  config: ServerConfig,
  serverKey: string,
  hint: string,
  log: FastifyBaseLogger,
): Promise<void> {
  const id = keyIdOf(serverKey);
  const known = await store.clusterSecrets.insertOrGet('server_key_id', id);
  if (known === id) return;
  // A key rotation: the new key is given with the old one among the previous keys.
  const previous = config.serverKeysPrevious
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k.length > 0)
    .map(keyIdOf);
  if (previous.includes(known)) {
    // Servers restarted at once onto different new keys: the second sees the first's id.
    if (await store.clusterSecrets.replaceIf('server_key_id', id, known)) return;
    return checkKeyId(store, config, serverKey, hint, log);
  }
  const mismatch = `the servers sharing this database use server key ${known}, this server has ${id}`;
  if (config.cluster) throw new SharedSecretsError(`${mismatch}: ${hint}`);
  // Outside cluster mode a server started with another key is the operator's choice (a lost
  // key): it runs, and only what the old key sealed fails where it is used.
  log.warn(`${mismatch}; not in cluster mode, so this server's key is taken`);
  await store.clusterSecrets.replace('server_key_id', id);
}

async function sharedServerKey(
  store: Store,
  config: ServerConfig,
  local: string,
  log: FastifyBaseLogger,
): Promise<string> {
  const sameKey = 'give every server the same JOBFLEET_SERVER_KEY';
  if (config.serverKey) {
    await checkKeyId(store, config, config.serverKey, sameKey, log);
    return config.serverKey;
  }
  const password = databasePassword(config.databaseUrl);
  if (!password) {
    log.warn(
      'JOBFLEET_SERVER_KEY is not set and the database URL has no password to protect a shared key: ' +
        'the server key stays in this server’s data directory; other servers need the same JOBFLEET_SERVER_KEY',
    );
    await checkKeyId(store, config, local, sameKey, log);
    return local;
  }
  const stored = await store.clusterSecrets.insertOrGet('server_key', wrapServerKey(local, password));
  let key: string;
  try {
    key = unwrapServerKey(stored, password);
  } catch {
    // The database password changed since the key was shared: a server that holds the key
    // (in its secrets.json) wraps it again; any other cannot learn it.
    if ((await store.clusterSecrets.get('server_key_id')) !== keyIdOf(local))
      throw new SharedSecretsError(
        'the shared server key does not open with this database password (was it changed?): ' +
          'start a server that ran before, or set JOBFLEET_SERVER_KEY to the key in its secrets.json',
      );
    await store.clusterSecrets.replace('server_key', wrapServerKey(local, password));
    key = local;
  }
  await checkKeyId(store, config, key, `${sameKey} (the other servers have it from the environment)`, log);
  return key;
}

/** The secrets this server uses: its own on SQLite, the cluster's where servers share the database. */
export async function shareSecrets(
  store: Store,
  config: ServerConfig,
  local: ServerSecrets,
  log: FastifyBaseLogger,
): Promise<ServerSecrets> {
  if (!store.caps.sharedByServers) return local;
  const shared: ServerSecrets = {
    ...local,
    serverKey: await sharedServerKey(store, config, local.serverKey, log),
  };
  const box = openSecretBox(config, shared);
  for (const { field, name, env, oneForAll } of SEALED) {
    const purpose = `cluster_secret:${name}`;
    const stored = await store.clusterSecrets.insertOrGet(name, box.seal(local[field], purpose));
    let value: string;
    try {
      value = box.open(stored, purpose);
    } catch (err) {
      if (config.cluster)
        throw new SharedSecretsError(`the shared ${name} does not open: ${(err as Error).message}`);
      log.warn(
        `the shared ${name} does not open under this server's key; not in cluster mode, so this server's is taken`,
      );
      await store.clusterSecrets.replace(name, box.seal(local[field], purpose));
      value = local[field];
    }
    if (box.needsReseal(stored)) await store.clusterSecrets.replace(name, box.seal(value, purpose));
    if (config[field] !== undefined && config[field] !== value) {
      if (oneForAll) {
        log.warn(
          `${env} differs from the shared ${name}: it replaces it for every server sharing this database`,
        );
        await store.clusterSecrets.replace(name, box.seal(config[field], purpose));
      } else
        log.warn(
          `${env} differs from the value the other servers sharing this database use; this server uses its own`,
        );
      value = config[field];
    }
    shared[field] = value;
  }
  keepSecrets(config, shared);
  return shared;
}
