import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OutputCap, TAIL_WINDOW_BYTES } from '../src/output-cap.js';

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

  it('holds back a tail of at most the tail window under a large cap; the head streams the rest', () => {
    const MiB = 1024 * 1024;
    const cap = 64 * MiB;
    const tail = TAIL_WINDOW_BYTES;
    assert.ok(tail < cap / 2, 'the window is below half of this cap');
    const oc = new OutputCap(cap);
    const chunk = Buffer.alloc(MiB);
    let streamed = 0;
    let pushed = 0;
    // Twice the cap, in 1 MiB chunks: each chunk is a distinct buffer, so the tail's share of it is what it keeps.
    for (; pushed < 2 * cap; pushed += chunk.length) {
      chunk.fill(97 + ((pushed / MiB) % 26));
      const out = oc.push(Buffer.from(chunk));
      streamed += out.length;
      assert.equal(
        streamed,
        Math.min(pushed + chunk.length, cap - tail),
        'everything up to the cap less the tail window streams as it comes',
      );
    }
    const rest = oc.finish();
    const [mark, ...kept] = rest;
    const keptBytes = kept.reduce((n, b) => n + b.length, 0);
    assert.equal(keptBytes, tail, 'the tail is the window, not half the cap');
    // What it held in memory: the buffers behind the parts it kept, at most the window and one chunk.
    const held = new Set(kept.map((b) => b.buffer));
    const heldBytes = [...held].reduce((n, ab) => n + ab.byteLength, 0);
    assert.ok(heldBytes <= tail + chunk.length, `held ${heldBytes} bytes for a ${tail}-byte tail`);
    assert.equal(oc.dropped, 2 * cap - cap);
    assert.equal(mark?.toString(), marker(cap, cap - tail, tail));
    const last = Buffer.concat(kept);
    assert.equal(
      last[last.length - 1],
      97 + (((2 * cap) / MiB - 1) % 26),
      'the tail ends with the last byte printed',
    );
  });

  it('splits caps up to twice the tail window in halves, larger ones at the window', () => {
    for (const [cap, head, tail] of [
      [5 * 1024 * 1024, 2.5 * 1024 * 1024, 2.5 * 1024 * 1024],
      [2 * TAIL_WINDOW_BYTES, TAIL_WINDOW_BYTES, TAIL_WINDOW_BYTES],
      [2 * TAIL_WINDOW_BYTES + 1, TAIL_WINDOW_BYTES + 1, TAIL_WINDOW_BYTES],
      [116 * 1024 * 1024, 116 * 1024 * 1024 - TAIL_WINDOW_BYTES, TAIL_WINDOW_BYTES],
    ] as const) {
      const oc = new OutputCap(cap);
      assert.equal(oc.push(Buffer.alloc(cap + 1)).length, head, `cap ${cap}`);
      const [mark, ...kept] = oc.finish();
      assert.equal(mark?.toString(), marker(1, head, tail), `cap ${cap}`);
      assert.equal(
        kept.reduce((n, b) => n + b.length, 0),
        tail,
        `cap ${cap}`,
      );
    }
  });
});
