/** What a step holds, as stored in step_instance.spec. Steps are a typed list: script now, file next. */
import type { TargetServer } from '../api/input-types.js';
import type { ScriptLanguageCode } from './statuses.js';

export interface ScriptStepSpec {
  kind: 'script';
  /** base64, as received */
  scriptContent: string;
  language: ScriptLanguageCode;
  /** Decoded script_param, newlines replaced by spaces (BK-JOB passes it on one command line). */
  scriptParam: string;
  isParamSensitive: boolean;
  timeout: number;
  account: { id: number; alias: string; osUser: string };
  targetServer: TargetServer;
  ignoreError: boolean;
  rolling?: RollingSpec;
  /**
   * SQL scripts only: the database account they run as. `account` is then its linked system
   * account, which runs the database client on each target. The password is not here: it is
   * read (sealed) from the account when the step's tasks are sent.
   */
  database?: DatabaseRef;
  /** Set when the script came from the library: 2 business, 3 public (ScriptSourceEnum). */
  library?: { source: 2 | 3; scriptId: string; scriptVersionId: number };
  /** A step of a plan: the script sees the job's global variables and may change them. */
  vars?: boolean;
}

export interface DatabaseRef {
  accountId: number;
  alias: string;
  engine: 'mysql' | 'oracle' | 'db2';
  /** The database user. */
  user: string;
  port: number;
}

/** mode: 1 pause on failure, 2 ignore failure and continue, 3 wait for a person between batches. */
export interface RollingSpec {
  mode: 1 | 2 | 3;
  expression: string;
  /** Jobfleet extension: the step stops once more hosts than this have failed. */
  maxFailedHosts?: number | string;
}

export interface AccountRef {
  id: number;
  alias: string;
  osUser: string;
}

/** A source of a file step: files on agent hosts (file_type 1), or files the server holds (2, 4). */
export interface FileSource {
  kind: 'host' | 'server';
  fileType: 1 | 2 | 4;
  /** host: paths as given (file, dir/, or .../REGEX:pattern); server: stored-file paths */
  files: string[];
  hosts: { hostId: number; cloudId: number; ip: string }[];
  account: AccountRef | null;
  server: TargetServer | null;
}

export interface FileStepSpec {
  kind: 'file';
  sources: FileSource[];
  targetPath: string;
  targetName: string;
  account: AccountRef;
  timeout: number;
  /** MB/s, 0 = unlimited */
  uploadSpeedLimit: number;
  downloadSpeedLimit: number;
  /** 1 strict (missing target directory fails the host), 2 force (created) */
  transferMode: 1 | 2;
  targetServer: TargetServer;
  ignoreError: boolean;
  rolling?: RollingSpec;
  /**
   * A plan's step whose paths name string variables (`${name}`): the paths as the plan wrote
   * them (files by source), put in again as the step starts, from the values it starts with.
   * `targetPath` and `files` above hold them put in from the job's starting values.
   */
  pathTemplates?: { targetPath: string; files: string[][] };
}

/** A step that waits for one of its approvers to continue or terminate the job. */
export interface ConfirmStepSpec {
  kind: 'confirm';
  approvers: string[];
  message: string;
  notifyChannels: string[];
  webhookUrl: string | null;
  /** Never set: a confirmation has no hosts, so nothing to ignore or roll. */
  ignoreError?: undefined;
  rolling?: undefined;
}

export type StepSpec = ScriptStepSpec | FileStepSpec | ConfirmStepSpec;

export function parseStepSpec(json: string): StepSpec {
  return JSON.parse(json) as StepSpec;
}
