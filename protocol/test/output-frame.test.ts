/** Binary output frames: what goes in comes out, and anything malformed is refused. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeOutputFrame, encodeOutputFrame } from '../src/output-frame.js';

describe('output frames', () => {
  it('carry key, offset and any bytes unchanged', () => {
    const data = Buffer.from([0, 255, 10, 13, 0xc3, 0x28]); // not UTF-8, NULs and newlines
    const frame = encodeOutputFrame('12:3:4567', 2 ** 40, data);
    assert.deepEqual(decodeOutputFrame(frame), { key: '12:3:4567', offset: 2 ** 40, data });
    assert.deepEqual(decodeOutputFrame(encodeOutputFrame('1:0:1', 0, Buffer.alloc(0))).data, Buffer.alloc(0));
  });

  it('refuses frames of another kind, version, a bad key or offset, or cut short', () => {
    const good = encodeOutputFrame('1:0:2', 5, Buffer.from('hi'));
    const changed = (at: number, value: number) => {
      const f = Buffer.from(good);
      f.writeUInt8(value, at);
      return f;
    };
    assert.throws(() => decodeOutputFrame(changed(0, 2)), /not an output frame/);
    assert.throws(() => decodeOutputFrame(changed(1, 99)), /version/);
    assert.throws(() => decodeOutputFrame(changed(4, 'x'.charCodeAt(0))));
    assert.throws(() => decodeOutputFrame(good.subarray(0, 8)), /cut short|not an output/);
    const negative = Buffer.from(good);
    negative.writeDoubleBE(-1, 4 + '1:0:2'.length);
    assert.throws(() => decodeOutputFrame(negative), /offset/);
    assert.throws(() => decodeOutputFrame(encodeOutputFrame('1:0:2', 0.5, Buffer.alloc(1))), /offset/);
  });
});
