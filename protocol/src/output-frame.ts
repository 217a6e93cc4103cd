/**
 * Task output as a binary WebSocket frame instead of a `task.output` JSON message with base64
 * data: no base64 growth (a third), no JSON to parse, and the receiver slices the bytes out of
 * the frame without copying them.
 *
 *   u8 kind (1) | u8 version | u16 key length | key (UTF-8) | f64 offset | output bytes
 *
 * An agent sends these only to a server whose welcome says `binaryOutput`; older servers get
 * `task.output` messages as before.
 */
import { PROTOCOL_VERSION, TASK_KEY_PATTERN } from './link-basics.js';

const KIND_OUTPUT = 1;
const FIXED = 1 + 1 + 2 + 8;

export interface OutputFrame {
  key: string;
  offset: number;
  data: Buffer;
}

export function encodeOutputFrame(key: string, offset: number, data: Buffer): Buffer {
  const k = Buffer.from(key);
  const frame = Buffer.allocUnsafe(FIXED + k.length + data.length);
  frame.writeUInt8(KIND_OUTPUT, 0);
  frame.writeUInt8(PROTOCOL_VERSION, 1);
  frame.writeUInt16BE(k.length, 2);
  k.copy(frame, 4);
  frame.writeDoubleBE(offset, 4 + k.length);
  data.copy(frame, FIXED + k.length);
  return frame;
}

/** The output a frame carries; throws on anything that is not a well-formed output frame. */
export function decodeOutputFrame(frame: Buffer): OutputFrame {
  if (frame.length < FIXED || frame.readUInt8(0) !== KIND_OUTPUT) throw new Error('not an output frame');
  if (frame.readUInt8(1) !== PROTOCOL_VERSION)
    throw new Error(`unsupported frame version ${frame.readUInt8(1)}`);
  const keyLength = frame.readUInt16BE(2);
  if (frame.length < FIXED + keyLength) throw new Error('output frame cut short');
  const key = frame.subarray(4, 4 + keyLength).toString();
  if (!TASK_KEY_PATTERN.test(key)) throw new Error('bad task key in output frame');
  const offset = frame.readDoubleBE(4 + keyLength);
  if (!Number.isSafeInteger(offset) || offset < 0) throw new Error('bad output offset');
  return { key, offset, data: frame.subarray(FIXED + keyLength) };
}
