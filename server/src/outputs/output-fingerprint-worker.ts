/**
 * The output fingerprinter's thread (see output-fingerprint-thread.ts): one OutputFingerprinter
 * per task, fed from the shared ring in the order the server wrote the bytes there, and the
 * fingerprints of finished tasks sent back. Ring space is released as soon as a piece is hashed,
 * and the server, when it waits for room, is woken at once.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { OutputFingerprinter } from './output-fingerprint.js';
import type { Fingerprints } from './output-fingerprint.js';
import type { FingerprintBatch, FingerprintReply, RingShare } from './output-fingerprint-thread.js';

const share = workerData as RingShare;
const ring = Buffer.from(share.ring);
const released = new Int32Array(share.released);
const live = new Map<string, OutputFingerprinter>();

parentPort?.on('message', (batch: FingerprintBatch) => {
  const done: [string, Fingerprints][] = [];
  for (const op of batch.ops) {
    if (op.kind === 'start') {
      live.set(op.key, new OutputFingerprinter(op.host));
    } else if (op.kind === 'bytes') {
      try {
        live.get(op.key)?.update(ring.subarray(op.at, op.at + op.length));
      } finally {
        // Even when the update fails (this thread then ends): the server may wait for the room.
        Atomics.add(released, 0, op.span);
        Atomics.notify(released, 0);
      }
    } else {
      const fp = live.get(op.key);
      live.delete(op.key);
      if (fp && op.kind === 'finish') done.push([op.key, fp.finish()]);
    }
  }
  if (batch.reply !== undefined)
    parentPort?.postMessage({ reply: batch.reply, done } satisfies FingerprintReply);
});
