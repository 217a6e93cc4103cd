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
}

export type StepSpec = ScriptStepSpec;

export function parseStepSpec(json: string): StepSpec {
  return JSON.parse(json) as StepSpec;
}
