/**
 * What an agent validates, as valibot schemas: the messages a server sends it, the answer to
 * its registration and the records it reads back from its own spool.
 *
 * These mirror the zod schemas of agent-link.ts (the server's side, where zod also feeds the
 * OpenAPI document) field for field. They exist because zod costs an idle agent about 12 MiB
 * of memory and valibot about 1; protocol/test/agent-checks.test.ts proves both sides infer the
 * same types and accept and refuse the same messages.
 */
import * as v from 'valibot';
import type {
  DownloadFiles,
  FileProgress,
  RegisterResponse,
  RunScript,
  ServerMessage,
  TaskFinished,
} from './agent-link.js';
import { PROTOCOL_VERSION, TASK_KEY_PATTERN } from './link-basics.js';

const int = v.pipe(v.number(), v.safeInteger());
const count = v.pipe(v.number(), v.safeInteger(), v.minValue(0));
const positive = v.pipe(v.number(), v.safeInteger(), v.minValue(1));
const nonEmpty = v.pipe(v.string(), v.minLength(1));
const TaskKey = v.pipe(v.string(), v.regex(TASK_KEY_PATTERN));
const header = { v: v.literal(PROTOCOL_VERSION) };

const Welcome = v.object({
  ...header,
  type: v.literal('welcome'),
  hostId: int,
  heartbeatIntervalMs: positive,
  stored: v.record(v.string(), count),
  forget: v.array(TaskKey),
  binaryOutput: v.optional(v.boolean()),
  combinedReports: v.optional(v.boolean()),
  fileReports: v.optional(v.boolean()),
  pingHeartbeat: v.optional(v.boolean()),
});

const DatabaseLogin = v.object({
  engine: v.picklist(['mysql', 'oracle', 'db2']),
  user: nonEmpty,
  password: v.string(),
  port: v.pipe(v.number(), v.safeInteger(), v.minValue(1), v.maxValue(65535)),
});

export const RunScriptCheck = v.object({
  ...header,
  type: v.literal('task.run'),
  key: TaskKey,
  language: v.picklist(['shell', 'bat', 'perl', 'python', 'powershell', 'sql']),
  script: v.string(),
  params: v.string(),
  timeoutSeconds: positive,
  user: v.string(),
  logCapBytes: positive,
  database: v.optional(DatabaseLogin),
  env: v.optional(v.record(v.string(), v.string())),
  varsOut: v.optional(v.boolean()),
});

const KillTask = v.object({ ...header, type: v.literal('task.kill'), key: TaskKey });
const TaskRecorded = v.object({ ...header, type: v.literal('task.recorded'), key: TaskKey });

const ServeFiles = v.object({
  ...header,
  type: v.literal('file.serve'),
  serveId: nonEmpty,
  entries: v.pipe(v.array(v.object({ path: nonEmpty, relPath: v.optional(nonEmpty) })), v.minLength(1)),
  user: v.string(),
  token: v.pipe(v.string(), v.minLength(16)),
  rateLimitBytes: count,
});

const StopServing = v.object({ ...header, type: v.literal('file.unserve'), serveId: nonEmpty });

const FileDescriptor = v.object({
  sourcePath: v.string(),
  relPath: v.string(),
  size: count,
  sha256: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/)),
  mode: count,
});

export const DownloadFilesCheck = v.object({
  ...header,
  type: v.literal('task.download'),
  key: TaskKey,
  sources: v.pipe(
    v.array(
      v.object({
        url: v.pipe(v.string(), v.url()),
        serveId: v.string(),
        token: v.string(),
        label: v.string(),
        files: v.array(FileDescriptor),
      }),
    ),
    v.minLength(1),
  ),
  targetDir: nonEmpty,
  targetName: v.string(),
  user: v.string(),
  strict: v.boolean(),
  rateLimitBytes: count,
  timeoutSeconds: positive,
});

const ServerMessageCheck = v.variant('type', [
  Welcome,
  RunScriptCheck,
  KillTask,
  TaskRecorded,
  ServeFiles,
  StopServing,
  DownloadFilesCheck,
]);

const RegisterResponseCheck = v.object({ agentId: v.string(), token: v.string(), hostId: int });

/** A task's result as the agent spools it (the `task.finished` message without v and type). */
export const FinishedRecordCheck = v.object({
  key: TaskKey,
  outcome: v.picklist([
    'exited',
    'timeout',
    'killed',
    'unsupported',
    'user_missing',
    'spawn_failed',
    'lost',
    'transfer_failed',
    'target_invalid',
  ]),
  exitCode: int,
  startTime: int,
  endTime: int,
  outputBytes: count,
  droppedBytes: count,
  message: v.optional(v.string(), ''),
  vars: v.optional(v.string()),
});

/** One file's progress as the agent spools it (the `task.file` message without v and type). */
export const FileRecordCheck = v.object({
  key: TaskKey,
  label: v.string(),
  sourcePath: v.string(),
  targetPath: v.string(),
  status: v.picklist(['downloading', 'finished', 'failed']),
  size: count,
  bytes: count,
  speed: count,
  message: v.string(),
});

/** Throws an Error naming the first problem, with its path (as zod's messages do). */
export function parseWith<S extends v.GenericSchema>(schema: S, value: unknown): v.InferOutput<S> {
  const r = v.safeParse(schema, value);
  if (r.success) return r.output;
  const issue = r.issues[0];
  const at = issue.path?.map((p) => String(p.key)).join('.');
  throw new Error(at ? `${at}: ${issue.message}` : issue.message);
}

export function parseServerMessage(value: unknown): ServerMessage {
  return parseWith(ServerMessageCheck, value);
}

export function parseRegisterResponse(value: unknown): RegisterResponse {
  return parseWith(RegisterResponseCheck, value);
}

export function parseTaskRequest(value: unknown): RunScript | DownloadFiles {
  return parseWith(v.variant('type', [RunScriptCheck, DownloadFilesCheck]), value);
}

export function parseFinishedRecord(value: unknown): Omit<TaskFinished, 'v' | 'type'> {
  return parseWith(FinishedRecordCheck, value);
}

export function parseFileRecord(value: unknown): Omit<FileProgress, 'v' | 'type'> {
  return parseWith(FileRecordCheck, value);
}
