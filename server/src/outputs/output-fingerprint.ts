/**
 * The fingerprint of one host task's output under every set of normalisers, computed as the
 * output arrives (one pass, line by line), so grouping a finished step reads no log.
 * A fingerprint equals that of `normaliseText` over the whole output (lines joined by "\n").
 */
import crypto from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';
import { NORMALISER_SETS, lineNormaliser, normaliseText, normaliserKey } from './output-normalisers.js';
import type { HostIdentity } from './output-normalisers.js';

export type Fingerprints = Record<string, string>;

const digest = (h: crypto.Hash) => h.digest('hex').slice(0, 32);

export class OutputFingerprinter {
  private readonly raw = crypto.createHash('sha256');
  private readonly sets: { key: string; hash: crypto.Hash; normalise: (line: string) => string }[];
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';
  /** Bytes taken so far: output must arrive in order, from 0. */
  bytes = 0;

  // Built here, not as a field initializer: those run before a parameter property is assigned,
  // so `host` was undefined, construction threw, and every finished task's log was read back.
  constructor(host: HostIdentity) {
    this.sets = NORMALISER_SETS.filter((s) => s.length > 0).map((set) => ({
      key: normaliserKey(set),
      hash: crypto.createHash('sha256'),
      normalise: lineNormaliser(set, host),
    }));
  }

  update(data: Buffer): void {
    this.bytes += data.length;
    this.raw.update(data);
    const text = this.partial + this.decoder.write(data);
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) for (const s of this.sets) s.hash.update(s.normalise(line) + '\n');
  }

  finish(): Fingerprints {
    const last = this.partial + this.decoder.end();
    const out: Fingerprints = { '': digest(this.raw) };
    for (const s of this.sets) {
      s.hash.update(s.normalise(last));
      out[s.key] = digest(s.hash);
    }
    return out;
  }
}

/** The same fingerprints from a whole stored output (when it did not stream through here). */
export function fingerprintsOf(output: Buffer, host: HostIdentity): Fingerprints {
  const out: Fingerprints = { '': digest(crypto.createHash('sha256').update(output)) };
  const text = output.toString('utf8');
  for (const set of NORMALISER_SETS) {
    if (set.length === 0) continue;
    out[normaliserKey(set)] = digest(crypto.createHash('sha256').update(normaliseText(text, set, host)));
  }
  return out;
}
