/**
 * Messages exchanged between an agent and a server over the agent's WebSocket.
 *
 * Every frame is one JSON object carrying `v` (protocol version) and `type`. A receiver
 * refuses frames whose major version it does not speak, so an old agent talking to a new
 * server fails loudly instead of misreading fields.
 *
 * A task is identified by its key `<stepInstanceId>:<executeCount>:<hostId>`; the key is
 * what makes dispatch, output and results idempotent across reconnects.
 */
import { z } from 'zod';
import { PROTOCOL_VERSION, TASK_KEY_PATTERN } from './link-basics.js';

export {
  AGENT_LINK_PATH,
  AGENT_REGISTER_PATH,
  PROTOCOL_VERSION,
  parseTaskKey,
  taskKey,
} from './link-basics.js';

const header = { v: z.literal(PROTOCOL_VERSION) };

export const TaskKey = z.string().regex(TASK_KEY_PATTERN);
export type TaskKey = z.infer<typeof TaskKey>;

/**
 * What an agent says of its host. The address is the host's key in the inventory and a file
 * server's listen address, so it must be one: any text (`../x`) reached archive names and
 * log lines.
 */
export const HostFacts = z.object({
  ip: z.ipv4({ error: 'is not an IPv4 address (start the agent with --ip)' }),
  ipv6: z.union([z.literal(''), z.ipv6({ error: 'is not an IPv6 address' })]).default(''),
  cloudId: z.number().int().nonnegative(),
  hostname: z
    .string()
    .max(255)
    .refine((s) => ![...s].some((c) => c < ' ' || c === '\u007f'), 'must not contain control characters'),
  osType: z.enum(['linux', 'windows', 'darwin', 'other']),
});
export type HostFacts = z.infer<typeof HostFacts>;

/** What an agent still holds for a task when it (re)connects. */
export const HeldTask = z.object({
  key: TaskKey,
  /** Bytes of output the agent has produced for this task (head + tail, after capping). */
  outputBytes: z.number().int().nonnegative(),
  finished: z.boolean(),
});
export type HeldTask = z.infer<typeof HeldTask>;

// ---------------------------------------------------------------- agent -> server

export const Hello = z.object({
  ...header,
  type: z.literal('hello'),
  agentVersion: z.string(),
  host: HostFacts,
  held: z.array(HeldTask),
});

export const Heartbeat = z.object({ ...header, type: z.literal('heartbeat') });

export const TaskOutput = z.object({
  ...header,
  type: z.literal('task.output'),
  key: TaskKey,
  /** Byte offset of `data` in the task's stored output; lets the server drop resent bytes. */
  offset: z.number().int().nonnegative(),
  /** base64 of the raw bytes (output may be any encoding). */
  data: z.string(),
});

/** How a task ended, as the agent saw it. The server maps it to a host status. */
export const TaskOutcome = z.enum([
  'exited', // process ran and exited; exitCode says how
  'timeout', // killed after its timeout
  'killed', // killed on request (terminate)
  'unsupported', // language cannot run on this host
  'user_missing', // execution account does not exist or cannot be switched to
  'spawn_failed', // could not start at all
  'lost', // agent restarted and no longer knows the task
  'transfer_failed', // a file could not be fetched or verified after retries
  'target_invalid', // target path unusable: missing directory in strict mode, not a directory, no permission
]);
export type TaskOutcome = z.infer<typeof TaskOutcome>;

export const TaskFinished = z.object({
  ...header,
  type: z.literal('task.finished'),
  key: TaskKey,
  outcome: TaskOutcome,
  /** The store keeps it as a 32-bit integer (PostgreSQL refuses more; a wait status fits). */
  exitCode: z.number().int().min(-0x80000000).max(0x7fffffff),
  startTime: z.number().int(),
  endTime: z.number().int(),
  /** Total output bytes the agent sent (the server must hold this many before it accepts the result). */
  outputBytes: z.number().int().nonnegative(),
  /** Bytes the agent dropped between head and tail because of the log cap. */
  droppedBytes: z.number().int().nonnegative(),
  message: z.string().default(''),
  /** What a script left in the job's variables: base64 of NUL-separated name/value pairs (when asked for). */
  vars: z.string().optional(),
});

export const TaskStarted = z.object({
  ...header,
  type: z.literal('task.started'),
  key: TaskKey,
  startTime: z.number().int(),
});

export type Hello = z.infer<typeof Hello>;
export type TaskReport = z.infer<typeof TaskReport>;
export type TaskOutput = z.infer<typeof TaskOutput>;
export type TaskFinished = z.infer<typeof TaskFinished>;
export type TaskStarted = z.infer<typeof TaskStarted>;

// ---------------------------------------------------------------- server -> agent

export const ScriptLanguage = z.enum(['shell', 'bat', 'perl', 'python', 'powershell', 'sql']);
export type ScriptLanguage = z.infer<typeof ScriptLanguage>;

export const Welcome = z.object({
  ...header,
  type: z.literal('welcome'),
  hostId: z.number().int(),
  heartbeatIntervalMs: z.number().int().positive(),
  /** For each held task: bytes of output the server has stored; the agent resends from there. */
  stored: z.record(z.string(), z.number().int().nonnegative()),
  /** Held tasks the server no longer wants (already recorded, or unknown): the agent drops them. */
  forget: z.array(TaskKey),
  /** The server takes output as binary frames (output-frame.ts); absent from older servers. */
  binaryOutput: z.boolean().optional(),
  /** The server takes `task.report` messages; absent from older servers. */
  combinedReports: z.boolean().optional(),
  /** The server takes a download's file reports in `task.report` (its `files`); absent from older servers. */
  fileReports: z.boolean().optional(),
  /**
   * The server counts the agent's WebSocket pings as heartbeats, so the agent sends no
   * `heartbeat` message; absent from older servers, which need the message.
   */
  pingHeartbeat: z.boolean().optional(),
});

/**
 * How a SQL task reaches its database: the database server on the target host itself, at
 * `port`, as `user`. The password travels only in this message; the agent never writes it to
 * its spool or a log, and hands it to the client through a private option file.
 */
export const DatabaseLogin = z.object({
  engine: z.enum(['mysql', 'oracle', 'db2']),
  user: z.string().min(1),
  password: z.string(),
  port: z.number().int().min(1).max(65535),
});
export type DatabaseLogin = z.infer<typeof DatabaseLogin>;

export const RunScript = z.object({
  ...header,
  type: z.literal('task.run'),
  key: TaskKey,
  language: ScriptLanguage,
  /** base64 script body */
  script: z.string(),
  /** Arguments as one string, split by the shell the way BK-JOB passes script_param. */
  params: z.string(),
  timeoutSeconds: z.number().int().positive(),
  /** OS user to run as; empty means the agent's own user. */
  user: z.string(),
  /** Output kept per task: a tail of half this many bytes, at most 8 MiB, and a head of the rest. */
  logCapBytes: z.number().int().positive(),
  /** SQL tasks (language sql) only: the database to run against. */
  database: DatabaseLogin.optional(),
  /** Extra environment for the script (secret values: the agent never writes them to its spool). */
  env: z.record(z.string(), z.string()).optional(),
  /**
   * The script reports variables back: it finds a file path in $JOBFLEET_VARS_OUT, and what it
   * writes there (NUL-separated name/value pairs) comes back base64 in the result's `vars`.
   */
  varsOut: z.boolean().optional(),
});
export type RunScript = z.infer<typeof RunScript>;

export const KillTask = z.object({ ...header, type: z.literal('task.kill'), key: TaskKey });

/** The server has durably recorded the task's result; the agent may forget it. */
export const TaskRecorded = z.object({ ...header, type: z.literal('task.recorded'), key: TaskKey });

/**
 * File distribution. A source (an agent, or a server for uploaded files) serves files over
 * HTTP to the targets that pull them; bytes go from peer to peer, not through the server.
 *
 * `file.serve` asks an agent to resolve paths, hash them and serve them under a token:
 *   - "/a/b.txt"         one file, served as "b.txt"
 *   - "/a/dir/"          the directory tree, served as "dir/<relative path>"
 *   - "/a/REGEX:^x.*$"   files of /a whose names match, each served as its name
 *   - {path, relPath}    a file served under an explicit relative path (targets that finished
 *                        re-serve what they received, so one source is not pulled by everyone)
 * Paths are resolved under the agent's file root, if it has one.
 */
export const ServeEntry = z.object({ path: z.string().min(1), relPath: z.string().min(1).optional() });
export type ServeEntry = z.infer<typeof ServeEntry>;

export const ServeFiles = z.object({
  ...header,
  type: z.literal('file.serve'),
  /** Identifies this offer; free-form, unique per step execution and host. */
  serveId: z.string().min(1),
  entries: z.array(ServeEntry).min(1),
  /** OS user whose permissions apply to reading the files; empty = the agent's user. */
  user: z.string(),
  /** Bearer token peers must present. */
  token: z.string().min(16),
  /** Total upload rate for this offer in bytes/s; 0 = unlimited. */
  rateLimitBytes: z.number().int().nonnegative(),
});
export type ServeFiles = z.infer<typeof ServeFiles>;

export const StopServing = z.object({
  ...header,
  type: z.literal('file.unserve'),
  serveId: z.string().min(1),
});
export type StopServing = z.infer<typeof StopServing>;

export const FileDescriptor = z.object({
  /** Where it came from on the source (for logs). */
  sourcePath: z.string(),
  /** Path relative to the target directory, '/'-separated, never absolute and never containing '..'. */
  relPath: z.string(),
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  mode: z.number().int().nonnegative(),
});
export type FileDescriptor = z.infer<typeof FileDescriptor>;

export const DownloadSource = z.object({
  /** Base URL of the serving peer; a file is fetched at `${url}/files/${encodeURIComponent(serveId)}/${encodeURIComponent(relPath)}`. */
  url: z.string().url(),
  serveId: z.string(),
  token: z.string(),
  /** "cloud:ip" of the source, for logs. */
  label: z.string(),
  files: z.array(FileDescriptor),
});
export type DownloadSource = z.infer<typeof DownloadSource>;

export const DownloadFiles = z.object({
  ...header,
  type: z.literal('task.download'),
  key: TaskKey,
  sources: z.array(DownloadSource).min(1),
  /** Absolute target directory (under the agent's file root, if any). */
  targetDir: z.string().min(1),
  /** Rename the single file to this name (file_target_name); empty keeps names. */
  targetName: z.string(),
  user: z.string(),
  /** true: a missing target directory fails the host; false: it is created. */
  strict: z.boolean(),
  rateLimitBytes: z.number().int().nonnegative(),
  timeoutSeconds: z.number().int().positive(),
});
export type DownloadFiles = z.infer<typeof DownloadFiles>;

export const ServerMessage = z.discriminatedUnion('type', [
  Welcome,
  RunScript,
  KillTask,
  TaskRecorded,
  ServeFiles,
  StopServing,
  DownloadFiles,
]);
export type ServerMessage = z.infer<typeof ServerMessage>;
export type Welcome = z.infer<typeof Welcome>;
export type KillTask = z.infer<typeof KillTask>;
export type TaskRecorded = z.infer<typeof TaskRecorded>;

// ---------------------------------------------------------------- registration (HTTP)

export const RegisterRequest = z.object({
  bootstrapToken: z.string().min(1),
  host: HostFacts,
  /** Ask to be placed in this business (allowed with the bootstrap token). */
  bizId: z.number().int().positive().optional(),
});
export type RegisterRequest = z.infer<typeof RegisterRequest>;

export const RegisterResponse = z.object({
  agentId: z.string(),
  token: z.string(),
  hostId: z.number().int(),
});
export type RegisterResponse = z.infer<typeof RegisterResponse>;

// ---------------------------------------------------------------- agent -> server, file distribution

/**
 * Why an offer could not be made; the server maps it to a host status:
 *   missing      paths that do not exist, patterns that match nothing (203 source file not exist)
 *   user_missing the account does not exist or cannot be acted as (311)
 *   unreadable   files the account may not read (202)
 *   invalid      malformed entries: bad pattern, bad relPath, two files under one name (202)
 */
export const ServeErrorKind = z.enum(['missing', 'user_missing', 'unreadable', 'invalid']);
export type ServeErrorKind = z.infer<typeof ServeErrorKind>;

export const ServeError = z.object({
  kind: ServeErrorKind,
  /** The entries (as the host sees them, without the file root) the error is about. */
  paths: z.array(z.string()),
  message: z.string(),
});
export type ServeError = z.infer<typeof ServeError>;

/** The answer to `file.serve`: on error `files` is empty and nothing is served. */
export const FilesServed = z.object({
  ...header,
  type: z.literal('file.served'),
  serveId: z.string().min(1),
  /** Base URL of the agent's file server, `http://<ip>:<port>`. */
  url: z.string().url(),
  files: z.array(FileDescriptor),
  error: ServeError.optional(),
});
export type FilesServed = z.infer<typeof FilesServed>;

/** File log `status` values (BK-JOB's FileDistStatusEnum) an agent reports while it downloads. */
export const FileStatus = z.enum(['downloading', 'finished', 'failed']);
export type FileStatus = z.infer<typeof FileStatus>;

/**
 * Progress of one file of a download task: `downloading` when it starts and about once a
 * second while it runs, then one final `finished` or `failed`. Final reports are kept with
 * the task's result and sent again after a reconnect, so the server must treat a repeat of
 * (key, sourcePath, targetPath, status) as the same report.
 */
export const FileProgress = z.object({
  ...header,
  type: z.literal('task.file'),
  key: TaskKey,
  /** The source's label ("cloud:ip"). */
  label: z.string(),
  sourcePath: z.string(),
  /** Where the file goes, as the host sees it (without the agent's file root). */
  targetPath: z.string(),
  status: FileStatus,
  size: z.number().int().nonnegative(),
  /** Bytes received so far. */
  bytes: z.number().int().nonnegative(),
  /** Average bytes per second since the file started. */
  speed: z.number().int().nonnegative(),
  message: z.string(),
});
export type FileProgress = z.infer<typeof FileProgress>;

// ---------------------------------------------------------------- agent -> server, combined

/**
 * A task's start, output and result in one message: an agent sends this for a task that ends
 * soon after it starts (see agent/src/report-hold.ts), to a server whose welcome says
 * `combinedReports`, instead of `task.started`, its output and `task.finished`. The server
 * handles it as those three in order; older servers never receive it.
 *
 * A download's reports carry its files' last reports too (`files`), but only to a server whose
 * welcome also says `fileReports`: the server handles them as the same `task.file` messages,
 * after the output and before the result. A server without the flag (its schema would drop the
 * field silently, and the files' logs with it) gets them as `task.file` messages as before.
 */
export const TaskReport = z.object({
  ...header,
  type: z.literal('task.report'),
  key: TaskKey,
  startTime: z.number().int(),
  /** The task's output from `offset` on (base64); absent when it wrote nothing. */
  output: z.object({ offset: z.number().int().nonnegative(), data: z.string() }).optional(),
  /**
   * A download's file reports (`task.file` without v, type and key): the last of each file
   * (later reports of a file supersede its earlier ones), in the order those were made; absent
   * when there are none.
   */
  files: z.array(FileProgress.omit({ v: true, type: true, key: true })).optional(),
  result: TaskFinished.omit({ v: true, type: true, key: true }),
});

export const AgentMessage = z.discriminatedUnion('type', [
  Hello,
  Heartbeat,
  TaskStarted,
  TaskOutput,
  TaskFinished,
  FilesServed,
  FileProgress,
  TaskReport,
]);
export type AgentMessage = z.infer<typeof AgentMessage>;
