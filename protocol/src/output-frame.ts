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

/**
 * Bytes a buffer from `outputBuffer` keeps free in front of its data: the frame's fields with a
 * task key of up to 52 characters (three safe integers and two colons).
 */
const ROOM = 64;

/** Buffers from `outputBuffer` whose room is still free. */
const roomy = new WeakSet<Buffer>();

/**
 * A buffer for `length` bytes of output with room in front of them for an output frame's fields:
 * `encodeOutputFrame` lays the frame around those bytes instead of copying them into a new one
 * (a task printing fast sends a MiB per frame, and that copy was a large part of the agent's
 * work). The agent assembles the output its launcher relays in these.
 */
export function outputBuffer(length: number): Buffer {
  const data = Buffer.allocUnsafe(ROOM + length).subarray(ROOM);
  roomy.add(data);
  return data;
}

/**
 * The frame for `data`. Data from `outputBuffer`, as it was returned (not a part of it), gets its
 * fields written into the room in front of it, once: the frame shares its bytes, which must not
 * change until the frame is sent. Any other data is copied into a new frame.
 */
export function encodeOutputFrame(key: string, offset: number, data: Buffer): Buffer {
  const head = FIXED + Buffer.byteLength(key);
  const inPlace = roomy.delete(data) && head <= ROOM;
  const frame = inPlace
    ? Buffer.from(data.buffer, data.byteOffset - head, head + data.length)
    : Buffer.allocUnsafe(head + data.length);
  frame.writeUInt8(KIND_OUTPUT, 0);
  frame.writeUInt8(PROTOCOL_VERSION, 1);
  frame.writeUInt16BE(head - FIXED, 2);
  frame.write(key, 4);
  frame.writeDoubleBE(offset, head - 8);
  if (!inPlace) data.copy(frame, head);
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
