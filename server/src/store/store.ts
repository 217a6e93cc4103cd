/**
 * The store: one schema on two engines (SQLite embedded, PostgreSQL for scale-out), with
 * operations grouped by the part of the domain they serve.
 */
import type { Kysely } from 'kysely';
import { AccountStore } from './account-store.js';
import { AppStore } from './app-store.js';
import { AuditStore } from './audit-store.js';
import { AgentTrustStore } from './agent-trust-store.js';
import { CronStore } from './cron-store.js';
import { openEngine } from './engines.js';
import type { EngineCapabilities } from './engines.js';
import { ExecutionStore } from './execution-store.js';
import { FileStore } from './file-store.js';
import { InventoryStore } from './inventory-store.js';
import { JobHistoryStore } from './job-history-store.js';
import { migrateToLatest, ping } from './migrations.js';
import { NonceStore } from './nonce-store.js';
import { LibraryReferences } from './library-references.js';
import { QuotaStore } from './quota-store.js';
import { OperatorStore } from './operator-store.js';
import { PlanStore } from './plan-store.js';
import { RuleStore } from './rule-store.js';
import { ScriptStore } from './script-store.js';
import { OutputStore } from './output-store.js';
import type { Database } from './schema.js';
import { ClusterSecretStore } from './cluster-secret-store.js';
import { FileChunkStore } from './file-chunk-store.js';
import { SealedDocumentStore } from './sealed-document-store.js';

export class Store {
  readonly apps: AppStore;
  readonly inventory: InventoryStore;
  readonly executions: ExecutionStore;
  readonly history: JobHistoryStore;
  readonly files: FileStore;
  readonly rules: RuleStore;
  readonly audit: AuditStore;
  readonly nonces: NonceStore;
  readonly scripts: ScriptStore;
  readonly accounts: AccountStore;
  /** What cites script versions and accounts (plans, crons) registers here. */
  readonly references: LibraryReferences;
  readonly quotas: QuotaStore;
  readonly agentTrust: AgentTrustStore;
  readonly operators: OperatorStore;
  readonly outputs: OutputStore;
  readonly plans: PlanStore;
  readonly crons: CronStore;
  readonly clusterSecrets: ClusterSecretStore;
  readonly fileChunks: FileChunkStore;
  readonly sealedDocuments: SealedDocumentStore;
  /** Migrations a newer version applied that this one does not know (a rolling upgrade under way). */
  newerSchema: string[] = [];

  private constructor(
    readonly db: Kysely<Database>,
    readonly caps: EngineCapabilities,
    readonly location: string,
  ) {
    this.apps = new AppStore(db);
    this.inventory = new InventoryStore(db, caps);
    this.executions = new ExecutionStore(db, caps);
    this.history = new JobHistoryStore(db, caps.name);
    this.files = new FileStore(db);
    this.rules = new RuleStore(db);
    this.audit = new AuditStore(db, caps.name, caps.relaxedTransaction);
    this.nonces = new NonceStore(db, caps);
    this.scripts = new ScriptStore(db);
    this.accounts = new AccountStore(db);
    this.references = new LibraryReferences();
    this.quotas = new QuotaStore(db);
    this.agentTrust = new AgentTrustStore(db);
    this.operators = new OperatorStore(db);
    this.outputs = new OutputStore(db, caps);
    this.plans = new PlanStore(db);
    this.references.register(this.plans);
    this.crons = new CronStore(db);
    this.clusterSecrets = new ClusterSecretStore(db);
    this.fileChunks = new FileChunkStore(db);
    this.sealedDocuments = new SealedDocumentStore(db);
  }

  /** Opens the engine the URL names (SQLite under dataDir when none) and applies migrations. */
  static async open(opts: {
    databaseUrl?: string | undefined;
    dataDir: string;
    serverId?: string | undefined;
    idleInTransactionMs?: number | undefined;
    onPoolError?: (err: Error) => void;
  }): Promise<Store> {
    const { db, caps, location } = openEngine({ ...opts, databaseUrl: opts.databaseUrl });
    let newer: string[];
    try {
      ({ newer } = await migrateToLatest(db as unknown as Kysely<unknown>, caps));
    } catch (err) {
      await db.destroy();
      throw err;
    }
    const store = new Store(db, caps, location);
    store.newerSchema = newer;
    return store;
  }

  async healthy(): Promise<boolean> {
    try {
      await ping(this.db as unknown as Kysely<unknown>);
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}
