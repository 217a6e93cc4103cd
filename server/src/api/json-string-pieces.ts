/**
 * Stored output as the text of a JSON string, made a piece at a time while it is sent.
 *
 * A whole log read back (100 MiB of output) was decoded into a string, serialized into a
 * larger one inside the envelope, measured and encoded again for the socket: four copies, three
 * of them in fresh memory, about 2.7 s of the server's thread per read. Here the stored bytes
 * are escaped straight into one buffer of the reply that is written again for each piece: the
 * one copy a reply needs.
 *
 * The text is the one JSON.stringify gives for the log decoded as UTF-8 (Buffer#toString):
 * valid UTF-8 passes as it is, only `"`, `\` and control characters escaped, as JSON.stringify
 * escapes them; bytes that are not UTF-8 become U+FFFD as toString makes them. Output chunks
 * end wherever the agent's pipe gave them, so a character cut between two chunks is joined
 * before it is judged.
 */
import { isUtf8 } from 'node:buffer';

/** Per byte: 0 when written as it is; the letter of its two-character escape; WIDE for `\u00XX`. */
const ESCAPE = new Uint8Array(256);
const WIDE = 0xff;
ESCAPE.fill(WIDE, 0, 0x20);
for (const [c, letter] of [
  [0x08, 'b'],
  [0x09, 't'],
  [0x0a, 'n'],
  [0x0c, 'f'],
  [0x0d, 'r'],
  [0x22, '"'],
  [0x5c, '\\'],
] as const)
  ESCAPE[c] = letter.charCodeAt(0);
const HEX = Buffer.from('0123456789abcdef');
/** Bytes the widest escape takes (four bytes copied at once take fewer). */
const WIDEST = 6;
const QUOTE = Buffer.from('"');
const NO_WORDS = new Uint32Array(0);

/** The reply's buffer: large enough that a 100 MiB log takes a hundred turns, not thousands. */
export const PIECE_BYTES = 1024 * 1024;

/**
 * Buffers of replies that ended, for the next replies. A reply's buffer lives as long as the
 * reply is sent (milliseconds to seconds): long enough to be moved to V8's old generation,
 * where only a full collection frees it, and a new one a reply made the server collect its
 * whole heap every few replies of a log read in windows.
 */
const spareBuffers: Buffer[] = [];
const MAX_SPARE_BUFFERS = 4;

/** Nonzero when one of the four bytes of `x` is escaped: below 0x20, `"` or `\`. */
function escapedIn(x: number): number {
  const quote = x ^ 0x22222222;
  const backslash = x ^ 0x5c5c5c5c;
  return (
    (((x - 0x20202020) & ~x) | ((quote - 0x01010101) & ~quote) | ((backslash - 0x01010101) & ~backslash)) &
    0x80808080
  );
}

/**
 * Escapes `src` from `from` into `out` from `at` until `src` ends or `out` may have no room for
 * the next escape; answers where each stopped. Four bytes are judged at once where they are
 * aligned (`words` views `src` from byte `base`): most text has none to escape.
 */
function escapeInto(
  src: Uint8Array,
  words: Uint32Array,
  base: number,
  from: number,
  out: Uint8Array,
  at: number,
): [number, number] {
  const end = src.length;
  const room = out.length - WIDEST;
  let i = from;
  let o = at;
  while (i < end && o <= room) {
    if ((i & 3) === base && i + 4 <= end && escapedIn(words[(i - base) >> 2] ?? 0) === 0) {
      out[o] = src[i] ?? 0;
      out[o + 1] = src[i + 1] ?? 0;
      out[o + 2] = src[i + 2] ?? 0;
      out[o + 3] = src[i + 3] ?? 0;
      o += 4;
      i += 4;
      continue;
    }
    const c = src[i++] ?? 0;
    const e = ESCAPE[c] ?? 0;
    if (e === 0) {
      out[o++] = c;
    } else if (e !== WIDE) {
      out[o] = 0x5c;
      out[o + 1] = e;
      o += 2;
    } else {
      out[o] = 0x5c;
      out[o + 1] = 0x75; // u
      out[o + 2] = 0x30;
      out[o + 3] = 0x30;
      out[o + 4] = HEX[c >> 4] ?? 0;
      out[o + 5] = HEX[c & 15] ?? 0;
      o += 6;
    }
  }
  return [i, o];
}

/**
 * Bytes at the end of `b` that begin a character `b` does not finish (0 to 3): they belong with
 * the bytes that follow. Continuation bytes without a lead in reach are left in: they are not
 * UTF-8 wherever the piece ends.
 */
export function unfinishedTail(b: Uint8Array): number {
  for (let back = 1; back <= 3 && back <= b.length; back++) {
    const c = b[b.length - back] ?? 0;
    if (c < 0x80) return 0;
    if (c >= 0xc0) {
      const length = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
      return length > back ? back : 0;
    }
  }
  return 0;
}

/**
 * One reply's JSON, made in pieces: encoded JSON copied as it is, and JSON strings of UTF-8 text
 * escaped from its bytes. Each piece is a view of one buffer that the next piece is written
 * into: the caller must be done with a piece (have it flushed) before it asks for the next.
 * Pieces are given when the buffer is full, and by `end` for what is left.
 */
export class JsonPieces {
  private readonly out: Buffer;
  private used = 0;

  constructor(pieceBytes = PIECE_BYTES) {
    const bytes = Math.max(pieceBytes, 2 * WIDEST);
    this.out = (bytes === PIECE_BYTES && spareBuffers.pop()) || Buffer.allocUnsafeSlow(bytes);
  }

  /** `json`, already encoded. */
  *raw(json: Buffer): Generator<Buffer, void, undefined> {
    for (let from = 0; from < json.length;) {
      const n = json.copy(this.out, this.used, from);
      from += n;
      this.used += n;
      if (from < json.length) yield* this.full();
    }
  }

  /** The JSON string (quotes included) of the UTF-8 text in `chunks`. */
  async *string(chunks: AsyncIterable<Buffer> | Iterable<Buffer>): AsyncGenerator<Buffer, void, undefined> {
    yield* this.raw(QUOTE);
    let carry = Buffer.alloc(0);
    for await (const chunk of chunks) {
      let rest = chunk;
      // A character begun in the last chunk ends within the first three bytes of this one.
      while (carry.length > 0 && rest.length > 0) {
        const joined = Buffer.concat([carry, rest.subarray(0, 3)]);
        rest = rest.subarray(3);
        const tail = unfinishedTail(joined);
        yield* this.judged(joined.subarray(0, joined.length - tail));
        carry = joined.subarray(joined.length - tail);
      }
      const tail = unfinishedTail(rest);
      yield* this.judged(rest.subarray(0, rest.length - tail));
      // Copied: a subarray would hold the whole chunk until the next one comes.
      if (tail > 0) carry = Buffer.from(rest.subarray(rest.length - tail));
    }
    yield* this.judged(carry);
    yield* this.raw(QUOTE);
  }

  /**
   * What is left in the buffer. Asked for the next piece after it, the caller is done with every
   * piece: the buffer serves another reply then (a reply abandoned before leaves it to the
   * collector, as a piece may still be on its way).
   */
  *end(): Generator<Buffer, void, undefined> {
    if (this.used > 0) yield* this.full();
    if (this.out.length === PIECE_BYTES && spareBuffers.length < MAX_SPARE_BUFFERS)
      spareBuffers.push(this.out);
  }

  private *full(): Generator<Buffer, void, undefined> {
    yield this.out.subarray(0, this.used);
    this.used = 0;
  }

  /**
   * A piece of text that starts and ends between characters; one that is not UTF-8 is decoded
   * as toString decodes it (its decoder would be between characters there too).
   */
  private judged(piece: Buffer): Generator<Buffer, void, undefined> {
    return this.escaped(isUtf8(piece) ? piece : Buffer.from(piece.toString('utf8')));
  }

  private *escaped(text: Uint8Array): Generator<Buffer, void, undefined> {
    const base = (4 - (text.byteOffset & 3)) & 3;
    const count = Math.max(0, text.length - base) >> 2;
    // None for a text of no whole word: its aligned start may lie past the end of its memory.
    const words = count === 0 ? NO_WORDS : new Uint32Array(text.buffer, text.byteOffset + base, count);
    for (let from = 0; from < text.length;) {
      [from, this.used] = escapeInto(text, words, base, from, this.out, this.used);
      if (from < text.length) yield* this.full();
    }
  }
}
