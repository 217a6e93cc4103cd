/**
 * Templates and plans as the API reads and writes them. The authoring endpoints take the
 * shapes get_job_plan_detail returns (behaviour notes §3.16), so what a client reads it can
 * write back; the same shapes are stored (ids assigned, cipher values sealed).
 */
import { z } from 'zod';
import { RollingConfig } from '../api/endpoints/job-submission.js';
import {
  IpEntry,
  TargetServer,
  zBase64,
  zBase64Param,
  zInt,
  zLong,
  zText,
  zVarValue,
} from '../api/input-types.js';

const MAX_SCRIPT_BYTES = 16_777_215;
const MAX_PARAM_BYTES = 65_535;
const zFlag = zInt.pipe(z.union([z.literal(0), z.literal(1)]));

/** What BK-JOB scripts can name: shell variable names. */
export const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

export const VarType = {
  STRING: 1,
  NAMESPACE: 2,
  HOST_LIST: 3,
  CIPHER: 4,
  ASSOC_ARRAY: 5,
  INDEX_ARRAY: 6,
} as const;
/** How a cipher value is shown everywhere (behaviour notes §3.16). */
export const CIPHER_MASK = '******';

export const AccountRefInput = z.object({
  id: zLong.optional(),
  alias: z.string().optional(),
  name: z.string().optional(),
});

/**
 * Reads back a server as get_job_plan_detail shows it (plan-hosts.ts), so that what a client
 * reads it can write back: `bk_host_id: null` (an ip the inventory does not know) is no id, and
 * an entry with a null cloud area and ip (a host id the inventory does not know) is dropped when
 * host_id_list names that host (the list is what runs; ip_list is ignored beside it). Such an
 * entry anywhere else fails as any entry without an ip does.
 */
function asAuthored(v: unknown): unknown {
  if (typeof v !== 'object' || v === null) return v;
  const s = v as { host_id_list?: unknown; ip_list?: unknown };
  if (!Array.isArray(s.ip_list)) return v;
  const ids = new Set(Array.isArray(s.host_id_list) ? s.host_id_list.map(String) : []);
  const ipList: unknown[] = [];
  for (const e of s.ip_list as unknown[]) {
    if (typeof e !== 'object' || e === null) {
      ipList.push(e);
      continue;
    }
    const { bk_host_id: id, ...rest } = e as { bk_host_id?: unknown; bk_cloud_id?: unknown; ip?: unknown };
    if (rest.ip === null && rest.bk_cloud_id === null && ids.has(String(id))) continue;
    ipList.push(id === null ? rest : e);
  }
  return { ...s, ip_list: ipList };
}

/** A step's hosts: a target_server, or a host list variable named by `variable`. */
export const StepServer = z.preprocess(
  asAuthored,
  TargetServer.extend({
    ip_list: z.array(IpEntry.extend({ bk_host_id: zLong.optional() })).optional(),
    variable: z.string().optional(),
  }),
);
export type StepServer = z.output<typeof StepServer>;

export const ScriptInfo = z.object({
  /** 1 inline, 2 a business library script, 3 a public library script */
  script_type: zInt.pipe(z.union([z.literal(1), z.literal(2), z.literal(3)])).default(1),
  script_id: z.string().optional(),
  script_version_id: zLong.optional(),
  script_content: zBase64(MAX_SCRIPT_BYTES).optional(),
  script_language: zInt.pipe(z.number().min(1).max(6)).default(1),
  /** Base64; of a sensitive parameter, the mask it was shown keeps the stored value (plan-documents.ts). */
  script_param: z.union([z.literal(CIPHER_MASK), zBase64Param(MAX_PARAM_BYTES)]).optional(),
  script_timeout: zInt.pipe(z.number().min(1).max(259_200)).default(7200),
  account: AccountRefInput,
  server: StepServer,
  is_param_sensitive: zFlag.default(0),
  /** Jobfleet extension: the job goes on when this step fails. */
  is_ignore_error: zFlag.default(0),
  /** Jobfleet extension: the step's hosts run in batches, as with fast_execute_script. */
  rolling_config: RollingConfig,
});
export type ScriptInfo = z.output<typeof ScriptInfo>;

export const FileSourceInfo = z.object({
  file_list: z.array(z.string().min(1)).min(1),
  /** 1 files on hosts, 2 files uploaded to the server */
  file_type: zInt.pipe(z.union([z.literal(1), z.literal(2)])).default(1),
  account: AccountRefInput.optional(),
  server: StepServer.optional(),
});

export const FileInfo = z.object({
  file_source_list: z.array(FileSourceInfo).min(1),
  file_destination: z.object({ path: z.string().min(1), account: AccountRefInput, server: StepServer }),
  timeout: zInt.pipe(z.number().min(1).max(259_200)).default(7200),
  source_speed_limit: zInt.pipe(z.number().min(0)).nullable().optional(),
  destination_speed_limit: zInt.pipe(z.number().min(0)).nullable().optional(),
  /** 1 strict, 2 force (create the target directory) */
  transfer_mode: zInt.pipe(z.union([z.literal(1), z.literal(2)])).default(2),
  is_ignore_error: zFlag.default(0),
  rolling_config: RollingConfig,
});
export type FileInfo = z.output<typeof FileInfo>;

export const ApprovalInfo = z.object({
  approval_user: z.object({ user_list: z.array(z.string().min(1).max(128)).min(1).max(100) }),
  approval_message: z.string().max(4096).default(''),
  /** Channels to notify approvers on; Jobfleet sends "webhook" (to webhook_url). */
  notify_channel: z.array(z.enum(['webhook'])).default([]),
  /** Jobfleet extension: where the webhook channel POSTs; allow-listed like callback URLs. */
  webhook_url: z.string().max(2048).optional(),
});
export type ApprovalInfo = z.output<typeof ApprovalInfo>;

/** Step types as plans show them (TaskStepTypeEnum): 1 script, 2 file, 3 approval. SQL steps are type 1 with script_language 6. */
export const StepInput = z
  .object({
    id: zLong.pipe(z.number().min(1)).optional(),
    name: z.string().trim().min(1).max(512),
    type: zInt.pipe(z.union([z.literal(1), z.literal(2), z.literal(3)])),
    script_info: ScriptInfo.optional(),
    file_info: FileInfo.optional(),
    approval_info: ApprovalInfo.optional(),
  })
  .superRefine((s, ctx) => {
    const need = ({ 1: 'script_info', 2: 'file_info', 3: 'approval_info' } as const)[s.type];
    if (s[need] === undefined)
      ctx.addIssue({ code: 'custom', path: [need], message: `a step of type ${s.type} needs ${need}` });
  });
export type StepInput = z.output<typeof StepInput>;

export const VarInput = z.object({
  id: zLong.pipe(z.number().min(1)).optional(),
  name: z
    .string()
    .regex(VAR_NAME, 'must be a shell variable name (letters, digits, _; not starting with a digit)'),
  type: zInt.pipe(z.number().min(1).max(6)),
  description: z.string().max(1024).default(''),
  required: zFlag.default(0),
  value: zVarValue.nullable().optional(),
  server: StepServer.nullable().optional(),
});
export type VarInput = z.output<typeof VarInput>;

export const TemplateInput = {
  name: zText(256).trim().min(1),
  description: zText(4096).default(''),
  step_list: z.array(StepInput).max(100).default([]),
  global_var_list: z.array(VarInput).max(100).default([]),
};

// ------------------------------------------------------------------ stored documents

/** A step as stored: the input shape with its id. */
export type StoredStep = StepInput & { id: number };

/** A variable as stored: a cipher keeps `sealed` instead of `value`. */
export interface StoredVar {
  id: number;
  name: string;
  type: number;
  description: string;
  required: 0 | 1;
  value?: string;
  sealed?: string;
  server?: StepServer;
}

export interface TemplateBody {
  steps: StoredStep[];
  vars: StoredVar[];
  /** Next id for a new step or variable of this template. */
  nextId: number;
}

export interface PlanVar {
  id: number;
  name: string;
  value?: string;
  sealed?: string;
  server?: StepServer;
}

export interface PlanBody {
  description: string;
  /** Template step ids this plan runs, in template order. */
  enabled: number[];
  /** Template step ids when the plan was made or last synced (steps added since start enabled). */
  known: number[];
  vars: PlanVar[];
}

/**
 * The plan's own value of a template variable. It counts only while the variable keeps the id and
 * the name it had when the plan took it (a type change gives a new id, buildTemplateBody): a
 * cipher value is sealed under the name, and a value for another name or type is not the one the
 * plan's owner chose. Otherwise the template's default applies, as a sync would make it.
 */
export function planValueOf(vars: PlanVar[], def: { id: number; name: string }): PlanVar | undefined {
  return vars.find((v) => v.id === def.id && v.name === def.name);
}

/** The secret-box purpose of a template step's sensitive script_param (kept sealed in the body). */
export const SENSITIVE_PARAM_PURPOSE = 'job_template.step.script_param';

export function cipherPurpose(name: string): string {
  return `global_var:${name}`;
}
