import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OutputCap } from '../src/output-cap.js';

/** Bytes 0..n-1 as a repeating alphabet, so any misplaced byte shows. */
function pattern(n: number, from = 0): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = 97 + ((from + i) % 26);
  return b;
}

/** Feeds `input` in chunks of the given sizes (cycled) and returns the whole capped stream. */
function capped(cap: number, input: Buffer, chunkSizes: number[]): { out: Buffer; dropped: number } {
  const oc = new OutputCap(cap);
  const parts: Buffer[] = [];
  let i = 0;
  for (let at = 0; at < input.length; i++) {
    const size = chunkSizes[i % chunkSizes.length] ?? 1;
    parts.push(oc.push(input.subarray(at, at + size)));
    at += size;
  }
  parts.push(...oc.finish());
  return { out: Buffer.concat(parts), dropped: oc.dropped };
}

function marker(dropped: number, head: number, tail: number): string {
  return `\n[jobfleet: ${dropped} bytes of output dropped here; the log keeps the first ${head} and the last ${tail} bytes]\n`;
}

describe('OutputCap', () => {
  it('passes output within the cap through unchanged, with no marker', () => {
    for (const n of [0, 1, 499, 500, 501, 999, 1000]) {
      const input = pattern(n);
      const { out, dropped } = capped(1000, input, [7]);
      assert.deepEqual(out, input, `n=${n}`);
      assert.equal(dropped, 0);
    }
  });

  it('keeps head and tail and names the exact dropped count one byte past the cap', () => {
    const input = pattern(1001);
    const { out, dropped } = capped(1000, input, [1001]);
    assert.equal(dropped, 1);
    assert.equal(
      out.toString(),
      input.subarray(0, 500).toString() + marker(1, 500, 500) + input.subarray(501).toString(),
    );
  });

  it('gives the same result whatever the chunking (one huge chunk, tiny chunks, uneven ones)', () => {
    const input = pattern(30_000);
    const expected =
      input.subarray(0, 500).toString() + marker(29_000, 500, 500) + input.subarray(29_500).toString();
    for (const sizes of [[30_000], [1], [3, 997, 64, 1], [499], [501], [500], [65_536]]) {
      const { out, dropped } = capped(1000, input, sizes);
      assert.equal(dropped, 29_000, `chunks ${sizes.join(',')}`);
      assert.equal(out.toString(), expected, `chunks ${sizes.join(',')}`);
    }
  });

  it('keeps chunks of every size, small ones copied and large ones kept, in order', () => {
    const cap = 300_000;
    const input = pattern(2_000_000);
    const expected =
      input.subarray(0, cap / 2).toString() +
      marker(input.length - cap, cap / 2, cap / 2) +
      input.subarray(input.length - cap / 2).toString();
    for (const sizes of [[70_000, 3, 20_000, 1, 50_000, 16_383, 16_384], [100_000], [9_999, 1]]) {
      const { out, dropped } = capped(cap, input, sizes);
      assert.equal(dropped, input.length - cap, `chunks ${sizes.join(',')}`);
      assert.equal(out.toString(), expected, `chunks ${sizes.join(',')}`);
    }
    for (const n of [cap - 1, cap]) {
      const within = pattern(n);
      assert.deepEqual(capped(cap, within, [40_000, 5, 17_000]).out, within, `n=${n}`);
    }
  });

  it('splits an odd cap with the extra byte in the tail', () => {
    const input = pattern(20);
    const { out } = capped(5, input, [3]);
    assert.equal(
      out.toString(),
      input.subarray(0, 2).toString() + marker(15, 2, 3) + input.subarray(17).toString(),
    );
  });

  it('works with a cap of one byte (no head at all)', () => {
    const { out, dropped } = capped(1, pattern(10), [4]);
    assert.equal(dropped, 9);
    assert.equal(out.toString(), marker(9, 0, 1) + 'j');
  });
});
