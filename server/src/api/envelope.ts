/** The BK-JOB reply envelope, for success and failure alike. */
import type { ApiError, PermissionInfo } from './error-catalogue.js';

export interface Envelope {
  result: boolean;
  code: number;
  message: string;
  data: unknown;
  request_id: string;
  job_request_id: string;
  permission?: PermissionInfo;
}

export function successEnvelope(data: unknown, requestId: string): Envelope {
  return {
    result: true,
    code: 0,
    message: 'success',
    data: data ?? null,
    request_id: requestId,
    job_request_id: requestId,
  };
}

/** The success envelope around `data` that is already JSON: the bytes successEnvelope would give. */
export function rawSuccessEnvelope(dataJson: string, requestId: string): string {
  const id = JSON.stringify(requestId);
  return `{"result":true,"code":0,"message":"success","data":${dataJson},"request_id":${id},"job_request_id":${id}}`;
}

export function failureEnvelope(err: ApiError, requestId: string): Envelope {
  const env: Envelope = {
    result: false,
    code: err.code,
    message: err.message,
    data: null,
    request_id: requestId,
    job_request_id: requestId,
  };
  if (err.permission) env.permission = err.permission;
  return env;
}
