/** Builds the operator services of a server from its configuration. */
import crypto from 'node:crypto';
import type { ServerConfig } from '../config.js';
import { parseServerKey } from '../secret-box.js';
import type { ServerSecrets } from '../secrets.js';
import type { Store } from '../store/store.js';
import { OperatorAuth } from './operator-auth.js';

export function operatorAuthFor(config: ServerConfig, secrets: ServerSecrets, store: Store): OperatorAuth {
  return new OperatorAuth({
    store: store.operators,
    audit: store.audit,
    // A key of its own, derived from the server key: the same on every server of a cluster.
    key: crypto.createHmac('sha256', parseServerKey(secrets.serverKey)).update('jobfleet csrf').digest(),
    idleMs: config.sessionIdleSeconds * 1000,
    maxMs: config.sessionMaxSeconds * 1000,
    limits: {
      perUser: config.loginMaxFailuresPerUser,
      perAddress: config.loginMaxFailuresPerAddress,
      windowSeconds: config.loginFailureWindowSeconds,
    },
  });
}
