/** Templates, plans and their parts as the v3 API reads and writes them. */
import type { TargetServer } from '../../resources/targets';

export interface AccountRef {
  id?: number;
  alias?: string;
  name?: string;
}

export type StepServer = TargetServer & { variable?: string };

export interface ScriptInfo {
  script_type?: number;
  script_id?: string;
  script_version_id?: number;
  script_content?: string;
  script_language?: number;
  script_param?: string;
  script_timeout?: number;
  account: AccountRef;
  server: StepServer;
  is_ignore_error?: number;
  [other: string]: unknown;
}

export interface FileInfo {
  file_source_list: { file_list: string[]; file_type?: number; account?: AccountRef; server?: StepServer }[];
  file_destination: { path: string; account: AccountRef; server: StepServer };
  timeout?: number;
  transfer_mode?: number;
  is_ignore_error?: number;
  [other: string]: unknown;
}

export interface ApprovalInfo {
  approval_user: { user_list: string[] };
  approval_message?: string;
  [other: string]: unknown;
}

export interface Step {
  id?: number;
  name: string;
  type: 1 | 2 | 3;
  script_info?: ScriptInfo;
  file_info?: FileInfo;
  approval_info?: ApprovalInfo;
}

export interface Variable {
  id?: number;
  name: string;
  type: number;
  description?: string;
  required?: number;
  value?: string | null;
  server?: StepServer | null;
  used?: boolean;
}

export interface TemplateDetail {
  id: number;
  name: string;
  description: string;
  step_list: Step[];
  global_var_list: Variable[];
  last_modify_user: string;
  /** Seconds, as BK-JOB answers template and plan times (not ms). */
  last_modify_time: number;
}

export interface PlanDetail extends TemplateDetail {
  job_template_id: number;
}

export interface ListItem {
  id: number;
  name: string;
  job_template_id?: number;
  need_update?: boolean;
  creator: string;
  last_modify_user: string;
  /** Seconds. */
  last_modify_time: number;
}

export const VAR_TYPES = [
  { id: 1, key: 'vars.type.string' },
  { id: 2, key: 'vars.type.namespace' },
  { id: 3, key: 'vars.type.hosts' },
  { id: 4, key: 'vars.type.cipher' },
  { id: 5, key: 'vars.type.assoc' },
  { id: 6, key: 'vars.type.array' },
] as const;

export const STEP_TYPES = [
  { id: 1, key: 'steps.type.script' },
  { id: 2, key: 'steps.type.file' },
  { id: 3, key: 'steps.type.confirm' },
] as const;
