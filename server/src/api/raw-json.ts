/**
 * `data` already serialized and encoded: an endpoint may return it to skip serializing and
 * encoding the same large reply again (the host list of a finished 10,000-host job is 1.7 MB
 * of JSON). Reads only: such a reply is written past Fastify's onSend hooks (http-app.ts
 * sendPieces), where the write audit takes its entries.
 */
export class RawJson {
  constructor(readonly bytes: Buffer) {}
}
