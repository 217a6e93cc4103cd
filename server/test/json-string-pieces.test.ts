/**
 * Stored output as a JSON string made piece by piece: the bytes JSON.stringify gives for the
 * output decoded as UTF-8, however the output was cut into chunks and the reply into pieces,
 * UTF-8 or not; and replies of many such strings among other fields.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JsonPieces } from '../src/api/json-string-pieces.js';
import { objectWithText } from '../src/api/raw-json.js';

/** A fixed sequence of pseudo-random numbers below `n`, the same on every run. */
function numbers(seed: number): (n: number) => number {
  let s = seed;
  return (n) => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s % n;
  };
}

async function* fed(chunks: readonly Buffer[]): AsyncGenerator<Buffer> {
  for (const c of chunks) yield c;
}

/** The pieces joined, each copied as it comes (the next one is written in its memory). */
async function joined(
  pieces: AsyncIterable<Buffer>,
  pieceBytes: number,
): Promise<{ text: Buffer; most: number }> {
  const copies: Buffer[] = [];
  let most = 0;
  for await (const piece of pieces) {
    copies.push(Buffer.from(piece));
    most = Math.max(most, piece.length);
  }
  assert.ok(most <= pieceBytes, `a piece of ${most} bytes, more than ${pieceBytes}`);
  return { text: Buffer.concat(copies), most };
}

/** The JSON string of the output in `chunks`, in pieces of at most `pieceBytes`. */
function written(chunks: readonly Buffer[], pieceBytes: number): Promise<{ text: Buffer; most: number }> {
  const out = new JsonPieces(pieceBytes);
  return joined(
    (async function* () {
      yield* out.string(fed(chunks));
      yield* out.end();
    })(),
    pieceBytes,
  );
}

const expected = (output: Buffer) => Buffer.from(JSON.stringify(output.toString('utf8')));

/** `output` cut at random places, as an agent's pipe cuts it. */
function cut(output: Buffer, next: (n: number) => number, longest: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < output.length;) {
    const n = 1 + next(longest);
    chunks.push(output.subarray(at, at + n));
    at += n;
  }
  return chunks;
}

const SAMPLES = [
  'a',
  'line ',
  '\n',
  '"',
  '\\',
  '\t',
  '\r',
  '\u0000',
  '\u001b[31m',
  '\u007f',
  'é',
  '€',
  '中文',
  '😀',
];
/** Bytes that break UTF-8 where they land: a stray continuation, leads, an overlong start, a surrogate's. */
const BREAKERS = [0x80, 0xbf, 0xc0, 0xc3, 0xe2, 0xed, 0xf0, 0xf4, 0xf8, 0xff];

test('any output cut anywhere reads as JSON.stringify writes its text', async () => {
  const next = numbers(59);
  for (let round = 0; round < 800; round++) {
    const text = Array.from({ length: next(300) }, () => SAMPLES[next(SAMPLES.length)]).join('');
    const bytes = [...Buffer.from(text)];
    const kind = round % 3;
    // One in three as it is, one with a few bytes broken, one of bytes at random.
    if (kind === 1)
      for (let k = 0; k < 3 && bytes.length > 0; k++)
        bytes[next(bytes.length)] = BREAKERS[next(BREAKERS.length)] ?? 0;
    const output = kind === 2 ? Buffer.from(bytes.map(() => next(256))) : Buffer.from(bytes);
    const pieceBytes = 12 + next(100);
    const { text: got } = await written(cut(output, next, next(2) === 0 ? 4 : 80), pieceBytes);
    assert.ok(got.equals(expected(output)), `round ${round}: ${output.toString('hex')}`);
  }
});

test('megabytes of text and of control bytes in large chunks, into pieces of a MiB', async () => {
  const lines = Buffer.from(
    Array.from({ length: 120_000 }, (_, i) => `${i} "quoted" \\ tab\there ü ✓ 😀 \u0001\n`).join(''),
  );
  const controls = Buffer.alloc(3 * 1024 * 1024, 0x01);
  for (const output of [lines, controls, Buffer.concat([lines, Buffer.from([0xe2, 0x82]), controls])]) {
    const { text } = await written(cut(output, numbers(7), 4 * 1024 * 1024), 1024 * 1024);
    assert.ok(text.equals(expected(output)));
  }
});

test('nothing is the empty string; a lone unfinished character is one U+FFFD', async () => {
  assert.equal((await written([], 64)).text.toString(), '""');
  assert.equal(
    (await written([Buffer.from([0xf0, 0x9f]), Buffer.from([0x98])], 64)).text.toString(),
    '"\ufffd"',
  );
  assert.equal(
    (await written([Buffer.from([0xf0, 0x9f]), Buffer.from([0x98, 0x80])], 64)).text.toString(),
    '"😀"',
  );
});

/** A copy of `bytes` in memory of its own, as SQLite gives a stored row's blob: nothing past its end. */
const own = (bytes: Buffer) => Buffer.from(new Uint8Array(bytes).buffer);

test('short chunks of memory of their own, finishing characters begun before them', async () => {
  // "é" cut after its first byte, as a running host's log is stored: the read from there on.
  const pieces = [own(Buffer.from([0xc3])), own(Buffer.from([0xa9, 0x0a]))];
  assert.equal((await written(pieces, 64)).text.toString(), '"é\\n"');
  const next = numbers(60);
  for (let round = 0; round < 300; round++) {
    const text = Array.from({ length: next(40) }, () => SAMPLES[next(SAMPLES.length)]).join('');
    const output = Buffer.from(text);
    const { text: got } = await written(cut(output, next, 5).map(own), 12 + next(50));
    assert.ok(got.equals(expected(output)), `round ${round}: ${output.toString('hex')}`);
  }
});

test('objects of fields and texts, one after another in one reply, parse back as written', async () => {
  const next = numbers(5);
  const entries = Array.from({ length: 40 }, (_, i) => ({
    host_id: i,
    ip: `10.0.0.${i}`,
    ipv6: null,
    log: Buffer.from(Array.from({ length: next(200) }, () => SAMPLES[next(SAMPLES.length)]).join('')),
    after: i % 2 === 0 ? { done: true } : {},
  }));
  for (const pieceBytes of [12, 31, 4096]) {
    const out = new JsonPieces(pieceBytes);
    const { text } = await joined(
      (async function* () {
        yield* out.raw(Buffer.from('{"logs":['));
        for (const [i, e] of entries.entries()) {
          if (i > 0) yield* out.raw(Buffer.from(','));
          const fields = { host_id: e.host_id, ip: e.ip, ipv6: e.ipv6, log_content: null, ...e.after };
          yield* objectWithText(out, fields, 'log_content', cut(e.log, next, 9));
        }
        yield* out.raw(Buffer.from(']}'));
        yield* out.end();
      })(),
      pieceBytes,
    );
    assert.deepEqual(JSON.parse(text.toString()), {
      logs: entries.map((e) => ({
        host_id: e.host_id,
        ip: e.ip,
        ipv6: e.ipv6,
        log_content: e.log.toString(),
        ...e.after,
      })),
    });
  }
});
