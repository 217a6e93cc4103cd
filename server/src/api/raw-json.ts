import { JsonPieces } from './json-string-pieces.js';

/**
 * `data` already serialized and encoded: an endpoint may return it to skip serializing and
 * encoding the same large reply again (the host list of a finished 10,000-host job is 1.7 MB
 * of JSON). Reads only: such a reply is written past Fastify's onSend hooks (http-app.ts
 * sendPieces), where the write audit takes its entries.
 */
export class RawJson {
  constructor(readonly bytes: Buffer) {}
}

/**
 * `data` encoded while it is sent, for a reply too large to hold whole (a log of 100 MiB): the
 * reply goes out in chunked transfer encoding, a piece at a time, and each piece is flushed to
 * the socket before the next is asked for, so a producer may write the next piece into the
 * memory of the last; a reply of one piece goes out whole, with its length. Reads only, as
 * RawJson. The reply has begun when the first piece is asked for: what may fail (a store that
 * cannot be read) should fail in the endpoint, before it returns this, to be answered with the
 * failure envelope; a failure later cuts the reply short.
 */
export class StreamedJson {
  constructor(readonly pieces: AsyncIterable<Buffer>) {}
}

/**
 * `fields` as a JSON object in their order, into `out`, with the value of `key` the JSON string
 * of the UTF-8 text in `text`.
 */
export async function* objectWithText(
  out: JsonPieces,
  fields: Record<string, unknown>,
  key: string,
  text: AsyncIterable<Buffer> | Iterable<Buffer>,
): AsyncGenerator<Buffer, void, undefined> {
  const entries = Object.entries(fields);
  const at = entries.findIndex(([k]) => k === key);
  if (at < 0) throw new Error(`no field ${key} to stream`);
  const before = JSON.stringify(Object.fromEntries(entries.slice(0, at))).slice(0, -1);
  const after = JSON.stringify(Object.fromEntries(entries.slice(at + 1))).slice(1);
  yield* out.raw(Buffer.from(`${before}${before.length > 1 ? ',' : ''}${JSON.stringify(key)}:`));
  yield* out.string(text);
  yield* out.raw(Buffer.from(after.length > 1 ? `,${after}` : after));
}

/** A reply of `fields` whose `key` is the JSON string of the UTF-8 text in `text`, made while it is sent. */
export function objectStreaming(
  fields: Record<string, unknown>,
  key: string,
  text: AsyncIterable<Buffer> | Iterable<Buffer>,
): StreamedJson {
  const out = new JsonPieces();
  return new StreamedJson(
    (async function* () {
      yield* objectWithText(out, fields, key, text);
      yield* out.end();
    })(),
  );
}
