/**
 * The spool's record checksum: the native CRC-32 takes large records where it ships, and
 * both implementations give zlib's values, so a spool written by either reads with the other.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { describe, it } from 'node:test';
import { crc32, nativeCrc32 } from '../src/checksum.js';

describe('spool checksum', () => {
  it("gives zlib's CRC-32 for small and large records, whole and in parts", () => {
    for (const size of [0, 1, 7, 63, 64, 65, 4096, 100_003, 256 * 1024, 1 << 20]) {
      const data = crypto.randomBytes(size);
      assert.equal(crc32(data), zlib.crc32(data), `size ${size}`);
      const cut = Math.floor(size / 3);
      assert.equal(
        crc32(data.subarray(cut), crc32(data.subarray(0, cut))),
        zlib.crc32(data),
        `size ${size} in parts`,
      );
      const seeded = size === 0 ? 0xdeadbeef : zlib.crc32(data, 0xdeadbeef);
      assert.equal(crc32(data, 0xdeadbeef), seeded, `size ${size} from a seed`);
    }
  });

  it('uses the native CRC-32 for large records on Linux x64 and arm64', () => {
    crc32(crypto.randomBytes(1 << 20));
    if (process.platform === 'linux' && ['x64', 'arm64'].includes(process.arch))
      assert.equal(nativeCrc32(), true);
  });
});
