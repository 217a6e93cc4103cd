/** Binary output frames: what goes in comes out, and anything malformed is refused. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeOutputFrame, encodeOutputFrame, outputBuffer } from '../src/output-frame.js';

describe('output frames', () => {
  it('carry key, offset and any bytes unchanged', () => {
    const data = Buffer.from([0, 255, 10, 13, 0xc3, 0x28]); // not UTF-8, NULs and newlines
    const frame = encodeOutputFrame('12:3:4567', 2 ** 40, data);
    assert.deepEqual(decodeOutputFrame(frame), { key: '12:3:4567', offset: 2 ** 40, data });
    assert.deepEqual(decodeOutputFrame(encodeOutputFrame('1:0:1', 0, Buffer.alloc(0))).data, Buffer.alloc(0));
  });

  it('are laid around an output buffer without copying its bytes, once; anything else is copied', () => {
    const data = outputBuffer(8192).fill('a');
    const frame = encodeOutputFrame('12:3:4567', 7, data);
    assert.equal(frame.buffer, data.buffer, 'the frame shares the bytes');
    assert.equal(frame.byteOffset + frame.length, data.byteOffset + data.length);
    assert.deepEqual(decodeOutputFrame(frame), { key: '12:3:4567', offset: 7, data });
    // Its room is used: a second frame of the same bytes is a copy and leaves the first intact.
    const again = encodeOutputFrame('1:0:1', 99, data);
    assert.notEqual(again.buffer, data.buffer);
    assert.deepEqual(decodeOutputFrame(again), { key: '1:0:1', offset: 99, data });
    assert.deepEqual(decodeOutputFrame(frame), { key: '12:3:4567', offset: 7, data });
    // A part of an output buffer, and a key longer than the room, are copied too.
    const whole = outputBuffer(8192).fill('b');
    const part = whole.subarray(0, 100);
    assert.notEqual(encodeOutputFrame('1:0:1', 0, part).buffer, whole.buffer);
    const longKey = `${'9'.repeat(60)}:0:1`;
    const long = encodeOutputFrame(longKey, 3, whole);
    assert.notEqual(long.buffer, whole.buffer);
    assert.deepEqual(decodeOutputFrame(long), { key: longKey, offset: 3, data: whole });
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
