/**
 * Table shapes as Kysely sees them. One schema serves both engines; column types that differ
 * between engines are chosen in migrations.ts from the capability table.
 */
import type { Generated } from 'kysely';

export interface AppTable {
  app_code: string;
  /** Salted SHA-256 of the secret, left only on apps stored before secrets were sealed; '' otherwise. */
  secret_hash: string;
  /** JSON: "all" or an array of {type, id} scope grants */
  scopes: string;
  created_at: number;
  /** The secret sealed by the secret box (purpose `app:<code>`); '' while only the hash is known. */
  secret_sealed: Generated<string>;
  /** JSON array of platform permissions, e.g. ["public_script_manage"] */
  permissions: Generated<string>;
}

export interface BizTable {
  id: number;
  name: string;
  created_at: number;
  /** IANA time zone its crons default to; null: the server's. */
  time_zone: string | null;
}

export interface BizSetTable {
  id: number;
  name: string;
  created_at: number;
  /** IANA time zone its crons default to; null: the server's. */
  time_zone: string | null;
}

export interface BizSetMemberTable {
  biz_set_id: number;
  biz_id: number;
}

export interface HostTable {
  id: Generated<number>;
  cloud_id: number;
  ip: string;
  ipv6: string;
  hostname: string;
  os_type: string;
  agent_id: string | null;
  agent_token_hash: string | null;
  /** 1 normal, 0 abnormal (query_agent_info encoding) */
  agent_status: number;
  agent_version: string;
  last_heartbeat: number | null;
  biz_id: number | null;
  created_at: number;
  /** Set when an admin revoked the host's agent: no agent may register for it until readmitted. */
  agent_revoked_at: number | null;
}

export interface TopoSetTable {
  id: Generated<number>;
  biz_id: number;
  name: string;
}

export interface TopoModuleTable {
  id: Generated<number>;
  biz_id: number;
  set_id: number;
  name: string;
}

export interface HostModuleTable {
  host_id: number;
  module_id: number;
}

export interface DynamicGroupTable {
  id: string;
  biz_id: number;
  name: string;
  /** JSON of DynamicGroupFilter */
  filter: string;
  created_at: number;
}

export interface AccountTable {
  id: Generated<number>;
  biz_id: number;
  alias: string;
  os_user: string;
  os_type: string;
  /** 1 system, 2 db */
  category: number;
  creator: string;
  created_at: number;
  /** 1 Linux, 2 Windows, 9 MySQL, 10 Oracle, 11 DB2 */
  type: Generated<number>;
  description: Generated<string>;
  /** Password sealed by the server key (purpose `account:<id>`); null when the account has none. */
  password_sealed: string | null;
  db_port: number | null;
  db_system_account_id: number | null;
  last_modify_user: Generated<string>;
  last_modify_time: Generated<number>;
}

export interface JobInstanceTable {
  id: Generated<number>;
  scope_type: string;
  scope_id: string;
  name: string;
  type: number;
  launch_mode: number;
  operator: string;
  app_code: string;
  status: number;
  create_time: number;
  start_time: number | null;
  end_time: number | null;
  callback_url: string | null;
  client_request_id: string | null;
  /** Set when the job runs a plan. */
  job_plan_id: number | null;
  job_template_id: number | null;
  /** Set when a cron started the job. */
  cron_id?: number | null;
  /** Cluster mode: the server running the job's state machine (null: none, claimable). */
  owner_id?: string | null;
}

export interface StepInstanceTable {
  id: Generated<number>;
  job_instance_id: number;
  step_order: number;
  name: string;
  type: number;
  status: number;
  execute_count: number;
  create_time: number;
  start_time: number | null;
  end_time: number | null;
  /** JSON of the step's definition (script, account, timeout, ...) */
  spec: string;
  current_batch: number;
  /** Key id sealing the spec's sealed value (engine/step-secrets.ts); 'plain' before sealing; null when none. */
  sealed_key: string | null;
  /** Bumped by every commit that changes a host result of the step (see host_task.version). */
  hosts_version: Generated<number>;
}

export interface HostTaskTable {
  step_instance_id: number;
  execute_count: number;
  host_id: number;
  cloud_id: number;
  ip: string;
  ipv6: string;
  agent_id: string | null;
  status: number;
  exit_code: number | null;
  error_code: number;
  tag: string;
  start_time: number | null;
  end_time: number | null;
  log_bytes: number;
  dropped_bytes: number;
  batch: number;
  /** The step's hosts_version of the commit that last changed this row's result fields. */
  version: Generated<number>;
}

/** The addresses of a step's host tasks, for the job list's ip filter (step-ip-sets.ts). */
export interface StepIpSetTable {
  step_instance_id: number;
  /** `,ip1,ip2,...,` */
  ips: string;
}

export interface LogChunkTable {
  step_instance_id: number;
  execute_count: number;
  host_id: number;
  offset: number;
  data: Uint8Array;
  /** 0: as the agent sent it, 1: deflated (log-chunk-codec.ts). */
  encoding: number;
}

export interface CallbackTable {
  id: Generated<number>;
  job_instance_id: number;
  url: string;
  payload: string;
  /** 'pending' | 'delivered' | 'failed' */
  state: string;
  attempts: number;
  next_attempt_at: number;
  created_at: number;
}

export interface CallbackAttemptTable {
  callback_id: number;
  attempt: number;
  at: number;
  http_status: number | null;
  error: string;
}

export interface DangerousRuleTable {
  id: Generated<number>;
  expression: string;
  /** Bit (1 << (language - 1)) set for each script language the rule applies to */
  script_languages: number;
  description: string;
  /** 1 scan, 2 intercept */
  action: number;
  /** 0 disabled, 1 enabled */
  status: number;
  creator: string;
  create_time: number;
  last_modify_user: string;
  last_modify_time: number;
}

/** One match of a rule in a submitted script; the rule's fields are copied as they were then. */
export interface DangerousRuleHitTable {
  id: Generated<number>;
  rule_id: number;
  expression: string;
  description: string;
  action: number;
  scope_type: string;
  scope_id: string;
  app_code: string;
  operator: string;
  script_language: number;
  line: number;
  line_content: string;
  match_content: string;
  /** 1 when the submission was refused (some intercept rule matched) */
  intercepted: number;
  job_instance_id: number | null;
  create_time: number;
}

export interface StoredFileTable {
  /** The `path` handed to clients: <scope id>/<uuid>/<user>/<file name>. */
  path: string;
  scope_type: string;
  scope_id: string;
  creator: string;
  file_name: string;
  /** Set while the upload URL is open; cleared once the bytes arrived. */
  upload_token_hash: string | null;
  /**
   * The server process whose upload holds the URL's claim (its cluster id in cluster mode); null
   * while no upload holds it, and on a claim made before the column existed.
   */
  upload_claimed_by: string | null;
  expires_at: number;
  /** Known once the bytes are stored. */
  size: number | null;
  sha256: string | null;
  created_at: number;
  /**
   * When a job or a template last named the file (ms; null on rows of versions before it, which
   * count from `created_at`): the job history retention removes files unnamed for its days.
   */
  used_at: number | null;
}

export interface FileLogTable {
  step_instance_id: number;
  execute_count: number;
  /** The host this log belongs to: the target (mode 1) or the source (mode 0). */
  host_id: number;
  /** 0 upload (source side), 1 download (target side) */
  mode: number;
  src_host_id: number;
  src_label: string;
  src_path: string;
  dest_host_id: number;
  dest_label: string;
  dest_path: string;
  /** 1 waiting, 2 uploading, 3 downloading, 4 finished, 5 failed */
  status: number;
  size: number;
  bytes: number;
  speed: number;
  content: string;
  updated_at: number;
  /** The path when too long for the key, which then holds a stand-in (file-store.ts); else null. */
  src_path_full: string | null;
  dest_path_full: string | null;
}

/** One row per write or security-relevant event; rows are only ever inserted (and aged out). */
export interface AuditLogTable {
  id: Generated<number>;
  at: number;
  /** 'app' | 'user' | 'admin' | 'agent' | 'system' */
  actor_kind: string;
  app_code: string;
  username: string;
  scope_type: string;
  scope_id: string;
  /** What was done, e.g. an API name (`fast_execute_script`) or `user.login`. */
  action: string;
  /** What it was done to, e.g. `job_instance:12`; empty when nothing was created or named. */
  target: string;
  /** 'ok' | 'refused' | 'error' */
  outcome: string;
  code: number;
  source_ip: string;
  /** JSON object with further facts; never a secret. */
  detail: string;
}

/** A bk_nonce an app signed a request with, remembered while that request's timestamp is acceptable. */
export interface AppNonceTable {
  app_code: string;
  nonce: string;
  /** ms; once past, the signed timestamp is stale anyway, so the nonce may be used again. */
  expires_at: number;
}

export interface ScriptTable {
  /** Insertion order, for stable paging; not shown to clients. */
  id: Generated<number>;
  /** The id clients see: 32 hex digits. */
  script_id: string;
  /** 1 for a public script (shared by every scope); its scope fields are then empty. */
  public: number;
  scope_type: string;
  scope_id: string;
  name: string;
  script_language: number;
  description: string;
  creator: string;
  create_time: number;
  last_modify_user: string;
  last_modify_time: number;
}

export interface ScriptVersionTable {
  id: Generated<number>;
  script_id: string;
  version: string;
  /** Plain text (requests carry it in base64). */
  content: string;
  /** 0 draft, 1 online, 2 offline, 3 disabled */
  status: number;
  version_desc: string;
  creator: string;
  create_time: number;
  last_modify_user: string;
  last_modify_time: number;
}

/** A person who signs in to the console or calls the API with a personal token. */
export interface UserAccountTable {
  id: Generated<number>;
  name: string;
  display_name: string;
  /** scrypt$N$r$p$salt$hash (see operators/password-hash.ts); never the password. */
  password_hash: string;
  /** 1: may do anything in every scope and manage users, apps and the inventory. */
  platform_admin: number;
  created_at: number;
  updated_at: number;
}

/** A user's role in one scope: 'viewer' | 'operator' | 'admin'. */
export interface UserRoleTable {
  user_id: number;
  scope_type: string;
  scope_id: number;
  role: string;
}

/** A console session; the cookie holds the token, the row only its SHA-256. */
export interface UserSessionTable {
  token_hash: string;
  user_id: number;
  created_at: number;
  last_seen_at: number;
  /** Absolute end, whatever the activity. */
  expires_at: number;
  source_ip: string;
}

/** A personal API token; the row holds its SHA-256, never the token. */
export interface ApiTokenTable {
  id: Generated<number>;
  user_id: number;
  name: string;
  token_hash: string;
  /** The first characters of the token, so a person can tell tokens apart. */
  prefix: string;
  /** JSON: "all" (every scope the user has) or an array of {type, id} scope grants */
  scopes: string;
  /** Highest role the token acts with: 'viewer' | 'operator' | 'admin'. */
  max_role: string;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  revoked_at: number | null;
}

/** One event of a job's stream; `data` is the JSON the stream sends. */
export interface JobEventTable {
  id: Generated<number>;
  job_instance_id: number;
  scope_type: string;
  scope_id: string;
  /** 'job' | 'step' | 'batch' | 'host' | 'log' */
  kind: string;
  data: string;
  at: number;
}

export interface OutputFingerprintTable {
  step_instance_id: number;
  execute_count: number;
  host_id: number;
  /** JSON object: normaliser set (e.g. "host,numbers", "" for none) -> hex digest. */
  fingerprints: string;
}

export interface Database {
  app: AppTable;
  biz: BizTable;
  biz_set: BizSetTable;
  biz_set_member: BizSetMemberTable;
  host: HostTable;
  topo_set: TopoSetTable;
  topo_module: TopoModuleTable;
  host_module: HostModuleTable;
  dynamic_group: DynamicGroupTable;
  account: AccountTable;
  job_instance: JobInstanceTable;
  step_instance: StepInstanceTable;
  host_task: HostTaskTable;
  step_ip_set: StepIpSetTable;
  log_chunk: LogChunkTable;
  callback: CallbackTable;
  callback_attempt: CallbackAttemptTable;
  dangerous_rule: DangerousRuleTable;
  dangerous_rule_hit: DangerousRuleHitTable;
  stored_file: StoredFileTable;
  file_log: FileLogTable;
  audit_log: AuditLogTable;
  app_nonce: AppNonceTable;
  script: ScriptTable;
  script_version: ScriptVersionTable;
  user_account: UserAccountTable;
  user_role: UserRoleTable;
  user_session: UserSessionTable;
  api_token: ApiTokenTable;
  server_setting: ServerSettingTable;
  job_event: JobEventTable;
  output_fingerprint: OutputFingerprintTable;
  job_template: JobTemplateTable;
  job_plan: JobPlanTable;
  job_instance_var: JobInstanceVarTable;
  host_task_var: HostTaskVarTable;
  step_confirmation: StepConfirmationTable;
  cron_job: CronJobTable;
  cron_firing: CronFiringTable;
  server_node: ServerNodeTable;
  agent_session: AgentSessionTable;
  agent_command: AgentCommandTable;
  cluster_secret: ClusterSecretTable;
  stored_file_chunk: StoredFileChunkTable;
  file_offer: FileOfferTable;
  client_request_claim: ClientRequestClaimTable;
}

/** Cluster mode: which submission holds one app's client_request_id. Times: ms of the database clock. */
export interface ClientRequestClaimTable {
  app_code: string;
  client_request_id: string;
  holder: string;
  claimed_at: number;
}

/** Cluster mode: one row per server process start. Times: ms of the database clock. */
export interface ServerNodeTable {
  id: string;
  url: string;
  state: 'alive' | 'dead';
  started_at: number;
  heartbeat_at: number;
  stopped_at: number | null;
  /** When an operator asked this server to drain (it leaves the cluster and exits at its next heartbeat). */
  drain_requested_at: number | null;
}

/** Cluster mode: the server holding each agent's connection, and the session's epoch. */
export interface AgentSessionTable {
  host_id: number;
  server_id: string;
  epoch: number;
  state: 'connected' | 'gone';
  last_seen: number;
}

/** Cluster mode: a message for an agent, sent by the server holding its session (payload sealed). */
export interface AgentCommandTable {
  id: Generated<number>;
  host_id: number;
  type: string;
  step_instance_id: number | null;
  execute_count: number | null;
  payload: string;
  /** The session epoch it was last sent under; sent again when the agent has a new session. */
  sent_epoch: number | null;
  created_at: number;
}

/** Cluster-wide settings changed at run time (e.g. the agent bootstrap token's hash). */
export interface ServerSettingTable {
  key: string;
  value: string;
  updated_at: number;
}

export interface JobTemplateTable {
  id: Generated<number>;
  scope_type: string;
  scope_id: string;
  name: string;
  description: string;
  creator: string;
  create_time: number;
  last_modify_user: string;
  last_modify_time: number;
  /** Goes up with every change; a plan made from an older version needs an update. */
  version: number;
  /** JSON TemplateBody (plans/plan-shapes.ts) */
  body: string;
}

export interface JobPlanTable {
  id: Generated<number>;
  template_id: number;
  scope_type: string;
  scope_id: string;
  name: string;
  creator: string;
  create_time: number;
  last_modify_user: string;
  last_modify_time: number;
  template_version: number;
  /** JSON PlanBody (plans/plan-shapes.ts) */
  body: string;
}

export interface JobInstanceVarTable {
  id: Generated<number>;
  job_instance_id: number;
  /** 0: the values the job started with */
  step_instance_id: number;
  /** The step's attempt that left these values (0 for the job's start) */
  execute_count: Generated<number>;
  /** JSON VarState (engine/job-variables.ts) */
  body: string;
}

export interface HostTaskVarTable {
  step_instance_id: number;
  execute_count: number;
  host_id: number;
  /** JSON object name -> value */
  body: string;
}

export interface StepConfirmationTable {
  id: Generated<number>;
  step_instance_id: number;
  /** 'continue' | 'terminate' | 'restart' */
  action: string;
  operator: string;
  reason: string;
  at: number;
}

export interface CronJobTable {
  id: Generated<number>;
  scope_type: string;
  scope_id: string;
  job_plan_id: number;
  name: string;
  /** 5-field Unix cron expression; null for a one-shot cron. */
  expression: string | null;
  /** One-shot time in seconds; null for a repeating cron. */
  execute_time: number | null;
  time_zone: string;
  enabled: number;
  /** When it was last enabled (ms): times before it are never due. */
  enabled_at: number;
  /** Seconds; after it the cron disables itself. */
  end_time: number | null;
  misfire_grace_seconds: number;
  /** JSON: variable values by id, cipher values sealed. */
  vars: string;
  /** The app of the last change: jobs it starts are that app's. */
  app_code: string;
  creator: string;
  create_time: number;
  last_modify_user: string;
  last_modify_time: number;
}

export interface CronFiringTable {
  id: Generated<number>;
  cron_id: number;
  /** The due time in seconds; unique per cron, so a time is fired or skipped once. */
  scheduled_time: number;
  /** fired | skipped | failed */
  outcome: string;
  job_instance_id: number | null;
  reason: string | null;
  recorded_at: number;
}

/**
 * Secrets every server sharing the database must agree on, written by the first server to
 * start (see shared-secrets.ts). `value` is never the plain secret: sealed by the server key,
 * or, for the server key itself, wrapped under a key derived from the database password.
 */
export interface ClusterSecretTable {
  name: string;
  value: string;
  created_at: number;
}

/** The bytes of a stored file, in order, where servers share the database (file-bodies.ts). */
export interface StoredFileChunkTable {
  path: string;
  seq: number;
  data: Uint8Array;
}

/**
 * Cluster mode: an agent's answer to `file.serve` (what it offers, or why it cannot), recorded by
 * the server holding that agent for the server running the step.
 */
export interface FileOfferTable {
  id: Generated<number>;
  step_instance_id: number;
  execute_count: number;
  host_id: number;
  /** The agent's `file.served` message as JSON (a URL and file descriptors: nothing secret). */
  payload: string;
  created_at: number;
}
