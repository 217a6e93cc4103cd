/**
 * A plan's global variables inside its job: how they reach a shell script, and how the values a
 * script leaves in them come back for the steps after it.
 *
 * To the script: the server puts a prelude in front of the script body that assigns each
 * variable as a shell variable (`name='value'`; a namespace variable gets this host's value;
 * arrays become bash arrays with `declare -A` / `declare -a`). Cipher values are not written
 * into the script: they travel in the task's environment (which the agent never spools) and
 * the prelude turns them into plain, unexported shell variables.
 * Back from the script: the prelude sets an EXIT trap that writes every string and namespace
 * variable, as NUL-separated name/value pairs, to the file the agent names in
 * $JOBFLEET_VARS_OUT; the agent returns that file with the task's result. When the step is
 * over, a string variable takes the value a host changed it to (the highest host id's when
 * several changed it) and a namespace variable keeps each host's own value.
 * A script step's parameters and a file step's paths take `${name}` of string variables as the
 * step starts, so a value an earlier step set reaches them (as in BK-JOB).
 */
import type { SecretBox } from '../secret-box.js';
import { VarType, cipherPurpose } from '../plans/plan-shapes.js';
import type { StepServer } from '../plans/plan-shapes.js';
import type { FileStepSpec } from './step-spec.js';

export interface JobVar {
  name: string;
  type: number;
  value?: string;
  /** cipher values */
  sealed?: string;
  /** namespace values by host id */
  hosts?: Record<string, string>;
  server?: StepServer;
}

export type VarState = JobVar[];

/**
 * The variables an attempt of a step starts from: the last state stored by an earlier step, or
 * by an earlier attempt of this one. States come in the order they were stored; the job's
 * starting values come first (step 0).
 */
export function inputStateOf<T extends { stepInstanceId: number; executeCount: number }>(
  states: readonly T[],
  stepInstanceId: number,
  executeCount: number,
): T | undefined {
  return states
    .filter(
      (s) =>
        s.stepInstanceId < stepInstanceId ||
        (s.stepInstanceId === stepInstanceId && s.executeCount < executeCount),
    )
    .pop();
}

/** The variables an attempt of a step starts from (see inputStateOf); none outside a plan's job. */
export function startingVars(
  states: readonly { stepInstanceId: number; executeCount: number; body: string }[],
  stepInstanceId: number,
  executeCount: number,
): VarState {
  const input = inputStateOf(states, stepInstanceId, executeCount);
  return input ? (JSON.parse(input.body) as VarState) : [];
}

/** A plan's file step with its paths as written (`pathTemplates`) put in from `state`. */
export function withFilePaths(spec: FileStepSpec, state: VarState): FileStepSpec {
  const t = spec.pathTemplates;
  if (!t) return spec;
  return {
    ...spec,
    targetPath: expandStrings(t.targetPath, state),
    sources: spec.sources.map((s, i) =>
      s.kind === 'host' ? { ...s, files: (t.files[i] ?? s.files).map((f) => expandStrings(f, state)) } : s,
    ),
  };
}

/** `${name}` of string variables put in, as file paths and script parameters take them; any other text is kept. */
export function expandStrings(text: string, state: VarState): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (whole, name: string) => {
    const v = state.find((x) => x.name === name && x.type === VarType.STRING);
    return v ? (v.value ?? '') : whole;
  });
}

/** A script's parameters as one line, string variables put in. */
export function scriptParamOf(param: string, state: VarState): string {
  return expandStrings(param, state).replace(/\n/g, ' ');
}

/** Marks the variables block of a script so output can be told apart from it. */
const PRELUDE_END = '# ---- end of Jobfleet variables ----';

function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function arrayLiteral(type: number, value: string): string {
  const v = value.trim();
  if (v === '') return '()';
  if (v.startsWith('(')) return v; // a bash array literal, as BK-JOB takes it
  const parsed = JSON.parse(v) as unknown;
  if (type === VarType.INDEX_ARRAY && Array.isArray(parsed))
    return `(${parsed.map((x) => q(String(x))).join(' ')})`;
  const entries = Object.entries(parsed as Record<string, unknown>);
  return `(${entries.map(([k, x]) => `[${q(k)}]=${q(String(x))}`).join(' ')})`;
}

/** The prelude for one host, and the environment carrying its cipher values. */
export function shellPrelude(
  state: VarState,
  hostId: number,
  box: SecretBox,
): { prelude: string; env: Record<string, string> } {
  const lines: string[] = [];
  const env: Record<string, string> = {};
  const reported: string[] = [];
  for (const v of state) {
    switch (v.type) {
      case VarType.STRING:
        lines.push(`${v.name}=${q(v.value ?? '')}`);
        reported.push(v.name);
        break;
      case VarType.NAMESPACE:
        lines.push(`${v.name}=${q(v.hosts?.[String(hostId)] ?? v.value ?? '')}`);
        reported.push(v.name);
        break;
      case VarType.CIPHER: {
        const envName = `JOBFLEET_CIPHER_${v.name}`;
        env[envName] = v.sealed ? box.open(v.sealed, cipherPurpose(v.name)) : '';
        lines.push(`${v.name}="\${${envName}-}"; unset ${envName}`);
        break;
      }
      case VarType.ASSOC_ARRAY:
        lines.push(`declare -A ${v.name}=${arrayLiteral(v.type, v.value ?? '')}`);
        break;
      case VarType.INDEX_ARRAY:
        lines.push(`declare -a ${v.name}=${arrayLiteral(v.type, v.value ?? '')}`);
        break;
    }
  }
  const dump = reported.map((n) => `printf '%s\\0%s\\0' ${q(n)} "\${${n}-}"`).join('; ');
  if (reported.length > 0)
    lines.push(
      `__jobfleet_vars_out() { [ -n "\${JOBFLEET_VARS_OUT-}" ] && { ${dump}; } > "$JOBFLEET_VARS_OUT"; }`,
      'trap __jobfleet_vars_out EXIT',
    );
  lines.push(PRELUDE_END, '');
  return { prelude: lines.join('\n'), env };
}

/**
 * The NUL-separated pairs a script wrote back (base64), as name -> value. Without a prototype:
 * `__proto__` is a valid shell name, and a plain object would take it as its prototype.
 */
export function parseReported(b64: string): Record<string, string> {
  const parts = Buffer.from(b64, 'base64').toString('utf8').split('\0');
  const out = Object.create(null) as Record<string, string>;
  for (let i = 0; i + 1 < parts.length; i += 2) out[parts[i] as string] = parts[i + 1] as string;
  return out;
}

/** The variables after a step, from the state before it and what each host reported. */
export function foldReports(
  state: VarState,
  reports: { hostId: number; values: Record<string, string> }[],
): VarState {
  return state.map((v) => {
    if (v.type === VarType.STRING) {
      // own keys only: `constructor` or `__proto__` is in every plain object the reports parse to
      const last = reports
        .filter((r) => Object.hasOwn(r.values, v.name) && r.values[v.name] !== v.value)
        .pop();
      return last ? { ...v, value: last.values[v.name] as string } : v;
    }
    if (v.type === VarType.NAMESPACE) {
      const hosts = { ...v.hosts };
      for (const r of reports)
        if (Object.hasOwn(r.values, v.name)) hosts[String(r.hostId)] = r.values[v.name] as string;
      return { ...v, hosts };
    }
    return v;
  });
}
