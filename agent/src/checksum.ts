/**
 * CRC-32 (the IEEE polynomial, the same values as zlib.crc32) of the spool's records.
 *
 * Every byte a task prints goes through it once, so it is on the path of large outputs:
 * zlib's table-driven loop runs at about 3 GB/s here, @node-rs/crc32 (carry-less multiply
 * instructions) at about 20 GB/s, which took the agent's CPU for a 100 MiB output from
 * 0.26–0.27 to 0.23–0.24 s. Loading that library adds almost 4 MiB to the process, so it is
 * loaded by the first large record only: an agent whose tasks print little never pays for it.
 * Where it has no binary for the platform, zlib's gives the same values: a spool written with
 * one is read with the other.
 */
import { createRequire } from 'node:module';
import zlib from 'node:zlib';

type Crc32 = (data: Buffer, initial?: number) => number;

/** Below this, zlib's loop takes microseconds and the faster one would not repay its memory. */
const NATIVE_FROM_BYTES = 256 * 1024;

/** undefined until the first large record; null when the library could not be loaded. */
let native: Crc32 | null | undefined;

function loadNative(): Crc32 | null {
  try {
    const mod: unknown = createRequire(import.meta.url)('@node-rs/crc32');
    const fn = (mod as { crc32?: unknown } | null)?.crc32;
    if (typeof fn === 'function') return fn as Crc32;
  } catch {
    /* no binary for this platform */
  }
  return null;
}

export function crc32(data: Buffer, initial = 0): number {
  // An empty part leaves the CRC as it is (zlib.crc32 answers 0 for an empty buffer without memory
  // behind it, whatever the starting value).
  if (data.length === 0) return initial;
  if (data.length < NATIVE_FROM_BYTES) return zlib.crc32(data, initial);
  native ??= loadNative();
  return native ? native(data, initial) : zlib.crc32(data, initial);
}

/** Whether large records use the native implementation (tests check it does where it ships). */
export function nativeCrc32(): boolean {
  return typeof native === 'function';
}
