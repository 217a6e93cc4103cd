/**
 * The fingerprint of one host task's output under every set of normalisers, computed as the
 * output arrives, so grouping a finished step reads no log.
 * A fingerprint equals that of `normaliseText` over the whole output (lines joined by "\n").
 *
 * Output is taken a block of whole lines at a time: no normaliser pattern spans a newline, so
 * normalising a block equals normalising its lines one by one. Most output leaves most sets
 * unchanged (no digit, no host name), so a set shares one "unchanged text" hash until the first
 * block that it changes, and only then gets its own copy of that hash. The unchanged text of
 * valid UTF-8 is its bytes, so that hash is the raw one until a block is not: a host printing
 * text pays one hash of it and a digit scan, not seven normalisations of every line.
 *
 * Normalisers apply to the first NORMALISED_HEAD_BYTES of an output only (more than the default
 * log cap keeps, so whole at every usual size); the rest is hashed as it is, once, and each
 * fingerprint of a longer output is the hash of its head's fingerprint and that tail hash (see
 * output-tail-hash.ts for why the tail's hash is another algorithm). Hosts
 * whose long outputs differ past the head only in what a normaliser hides land in different
 * groups (never the reverse: equal fingerprints still mean equal normalised output), and a host
 * printing 100 MiB costs one hash of its output, not a regular expression pass per set.
 */
import crypto from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import { NORMALISER_SETS, SetsNormaliser, normaliseText, normaliserKey } from './output-normalisers.js';
import type { HostIdentity } from './output-normalisers.js';
import { tailHash } from './output-tail-hash.js';
import type { TailHash } from './output-tail-hash.js';

export type Fingerprints = Record<string, string>;

const digest = (h: crypto.Hash) => h.digest('hex').slice(0, 32);
/** Output past this many bytes is hashed as it is (see above). */
export const NORMALISED_HEAD_BYTES = 8 * 1024 * 1024;
/** A long output's fingerprint: of its head's, under one set, and of its tail's hash. */
const joined = (head: string, tail: string | undefined) =>
  tail === undefined ? head : digest(crypto.createHash('sha256').update(`${head}:${tail}`));
/** The largest text the head is normalised in (see `update`). */
const HEAD_BLOCK_BYTES = 64 * 1024;
const DIGIT = /\d/;
const NEWLINE = 0x0a;

/** The sets that change anything, and their keys: the same for every host. */
const SETS = NORMALISER_SETS.filter((s) => s.length > 0);
const SET_KEYS = SETS.map((set) => normaliserKey(set));

interface SetState {
  key: string;
  /**
   * Undefined while every block so far left this set's text unchanged (it is `unchanged`).
   * Sets whose texts have been equal so far share one hash (e.g. every set with `numbers`, when
   * the host and timestamps do not occur): it is copied when their texts part.
   */
  hash: crypto.Hash | undefined;
}

export class OutputFingerprinter {
  /** The head's bytes; while `unchanged` is undefined, also the unchanged text's hash. */
  private readonly raw = crypto.createHash('sha256');
  /**
   * The unchanged text's hash, made when the text first differs from the bytes (output that is
   * not valid UTF-8 decodes to U+FFFD). Until then the text, encoded, is the bytes themselves,
   * and hashing them once serves both.
   */
  private unchanged: crypto.Hash | undefined;
  private readonly sets: SetState[];
  /** Made on first use: most outputs never need one (see `plain`). */
  private normaliser: SetsNormaliser | undefined;
  private readonly names: string[];
  /** Bytes of the head's last line so far (no newline yet), copied: the caller may reuse its buffers. */
  private partial: Buffer[] = [];
  /** Hash of the bytes past the head; undefined while the output is no longer than the head. */
  private tail: TailHash | undefined;
  /** Bytes taken so far: output must arrive in order, from 0. */
  bytes = 0;

  constructor(private readonly host: HostIdentity) {
    this.names = [host.ip, host.hostname].filter((n) => n.length > 0);
    this.sets = SET_KEYS.map((key) => ({ key, hash: undefined }));
  }

  /** True when no normaliser can change the text: no digit (IPs, times, numbers) and no name. */
  private plain(text: string): boolean {
    return !DIGIT.test(text) && !this.names.some((n) => text.includes(n));
  }

  /**
   * Whole lines (or the head's last bytes), as `pieces` that each end where a line does: a
   * newline never belongs to a multi-byte character, so each piece decodes on its own as it
   * would within the whole output.
   */
  private take(pieces: readonly Buffer[]): void {
    const text = pieces.map((p) => p.toString('utf8')).join('');
    if (text.length === 0) return;
    // Text that is not valid UTF-8 is no longer its bytes: the unchanged hash parts from the raw.
    if (!this.unchanged && !pieces.every((p) => isUtf8(p))) this.unchanged = this.raw.copy();
    const unchanged = this.unchanged ?? this.raw;
    if (this.plain(text)) {
      for (const h of new Set(this.sets.map((s) => s.hash))) h?.update(text);
      this.unchanged?.update(text);
      for (const p of pieces) this.raw.update(p);
      return;
    }
    this.normaliser ??= new SetsNormaliser(SETS, this.host);
    const outs = this.normaliser.apply(text);
    // Sets often end with the same text: it is encoded once, not once per set.
    const encoded: { text: string; bytes: Buffer }[] = [];
    const bytesOf = (out: string): Buffer => {
      let e = encoded.find((x) => x.text === out);
      if (!e) encoded.push((e = { text: out, bytes: Buffer.from(out) }));
      return e.bytes;
    };
    // Sets sharing a hash whose texts now differ part first (each copy taken before any update).
    const next: { from: crypto.Hash | undefined; out: string; hash: crypto.Hash | undefined }[] = [];
    this.sets.forEach((s, i) => {
      const out = outs[i] ?? text;
      let n = next.find((x) => x.from === s.hash && x.out === out);
      if (!n) {
        const kept = s.hash !== undefined && !next.some((x) => x.from === s.hash);
        const hash = kept
          ? s.hash
          : s.hash === undefined && out === text
            ? undefined
            : (s.hash ?? unchanged).copy();
        next.push((n = { from: s.hash, out, hash }));
      }
      s.hash = n.hash;
    });
    for (const n of next) n.hash?.update(bytesOf(n.out));
    this.unchanged?.update(bytesOf(text));
    for (const p of pieces) this.raw.update(p);
  }

  update(data: Buffer): void {
    // A large piece of the head is taken a block at a time: normalising and encoding a MiB of
    // text as one string cost 2-3 times what the same bytes cost as 64 KiB strings.
    let rest = data;
    while (rest.length > HEAD_BLOCK_BYTES && this.bytes < NORMALISED_HEAD_BYTES) {
      const block = Math.min(HEAD_BLOCK_BYTES, NORMALISED_HEAD_BYTES - this.bytes);
      this.updatePiece(rest.subarray(0, block));
      rest = rest.subarray(block);
    }
    this.updatePiece(rest);
  }

  private updatePiece(data: Buffer): void {
    const room = NORMALISED_HEAD_BYTES - this.bytes;
    this.bytes += data.length;
    if (this.tail) {
      this.tail.update(data);
      return;
    }
    const head = room >= data.length ? data : data.subarray(0, room);
    const last = head.lastIndexOf(NEWLINE) + 1;
    if (last > 0) {
      // The line held so far ends here: it is joined with its end alone, not with the whole block.
      const first = head.indexOf(NEWLINE) + 1;
      const pieces: Buffer[] =
        this.partial.length > 0 ? [Buffer.concat([...this.partial, head.subarray(0, first)])] : [];
      this.partial = [];
      const rest = head.subarray(pieces.length > 0 ? first : 0, last);
      if (rest.length > 0) pieces.push(rest);
      this.take(pieces);
    }
    if (last < head.length) this.partial.push(Buffer.from(head.subarray(last)));
    if (head === data) return;
    this.endHead();
    this.tail = tailHash().update(data.subarray(room));
  }

  private endHead(): void {
    this.take([Buffer.concat(this.partial)]);
    this.partial = [];
  }

  finish(): Fingerprints {
    if (!this.tail) this.endHead();
    const tail = this.tail?.digest();
    const raw = digest(this.raw);
    const out: Fingerprints = { '': joined(raw, tail) };
    // Sets that never changed the text share one fingerprint: the unchanged text's; sets sharing
    // a hash share its fingerprint (a hash gives its digest once).
    const done = new Map<crypto.Hash | undefined, string>();
    for (const s of this.sets) {
      let f = done.get(s.hash);
      if (f === undefined) {
        const d = s.hash ? digest(s.hash) : this.unchanged ? digest(this.unchanged) : raw;
        done.set(s.hash, (f = joined(d, tail)));
      }
      out[s.key] = f;
    }
    return out;
  }
}

/** The same fingerprints from a whole stored output (when it did not stream through here). */
export function fingerprintsOf(output: Buffer, host: HostIdentity): Fingerprints {
  const head = output.subarray(0, NORMALISED_HEAD_BYTES);
  const tail =
    output.length > head.length ? tailHash().update(output.subarray(head.length)).digest() : undefined;
  const out: Fingerprints = { '': joined(digest(crypto.createHash('sha256').update(head)), tail) };
  const text = head.toString('utf8');
  for (const set of NORMALISER_SETS) {
    if (set.length === 0) continue;
    const normalised = crypto.createHash('sha256').update(normaliseText(text, set, host));
    out[normaliserKey(set)] = joined(digest(normalised), tail);
  }
  return out;
}
