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

const RAW_HEAD = Buffer.from('{"result":true,"code":0,"message":"success","data":');

/**
 * The success envelope around `data` that is already encoded JSON, in pieces that give the
 * bytes successEnvelope would: written one after another, `data` (a kept reply of megabytes) is
 * sent as it is, never copied into a buffer of its own per request.
 */
export function rawSuccessEnvelope(data: Buffer, requestId: string): Buffer[] {
  const [head, tail] = successEnvelopeAround(requestId);
  return [head, data, tail];
}

/** What goes before and after encoded `data` in the success envelope. */
export function successEnvelopeAround(requestId: string): [Buffer, Buffer] {
  const id = JSON.stringify(requestId);
  return [RAW_HEAD, Buffer.from(`,"request_id":${id},"job_request_id":${id}}`)];
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
