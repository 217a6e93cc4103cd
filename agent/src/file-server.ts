/**
 * The agent's file server: serves the files of its offers to peers over HTTP.
 *
 *   GET /files/<serveId>/<encodeURIComponent(relPath)>
 *   Authorization: Bearer <the offer's token>
 *   Range: bytes=N-  (optional, resumes from byte N: 206)
 *
 * 401 for a missing or wrong token, 404 for an unknown offer or a file the offer does not
 * list; nothing else on disk is reachable, because a request names a file only through the
 * offer's own table. All downloads of one offer share its upload rate limit. Files are
 * streamed with backpressure, so memory does not grow with file size or with the number of
 * peers pulling at once.
 *
 * `unserve` refuses new requests for the offer at once; downloads already streaming finish
 * (they were authorised, and cutting them would only make the peer retry against a 404).
 * Offers live in memory: after an agent restart the server asks again.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ServeFiles } from '@jobfleet/protocol';
import type { FilesServed } from '@jobfleet/protocol';
import { resolveOffer } from './file-offer.js';
import type { FileOffer, OfferResult } from './file-offer.js';
import type { FileRoot } from './file-root.js';
import { RateLimiter } from './rate-limiter.js';

export interface FileServerOptions {
  /** Address to bind, the host's ip. */
  host: string;
  /** 0 = any free port. */
  port: number;
  root: FileRoot;
}

interface LiveOffer extends FileOffer {
  limiter: RateLimiter;
}

const FILES_PREFIX = '/files/';

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer (.+)$/.exec(header ?? '');
  // Compared as digests so that the comparison time says nothing about the token.
  return m !== null && timingSafeEqual(digest(m[1] as string), digest(token));
}

/** The start offset of `Range: bytes=N-` (or N-M, read as N-), undefined when absent or unusable. */
function rangeStart(header: string | undefined): number | undefined {
  const m = /^bytes=(\d+)-\d*$/.exec(header?.trim() ?? '');
  return m ? Number(m[1]) : undefined;
}

/** Read buffers per response; a buffer is reused once the socket has written it out. */
const SEND_BUFFERS = 4;
const SEND_BUFFER_BYTES = 64 * 1024;

/**
 * Streams bytes [from, size) of a file into `res` through a few reused buffers, so that
 * serving allocates nothing per chunk (many peers pulling big files would otherwise keep the
 * garbage collector busy and the resident size high). Waiting for a free buffer is the
 * backpressure: a buffer comes back only when the socket has flushed it.
 *
 * Bounded to the hashed size: a file that grew since is served as offered (the peer's
 * checksum then decides); one that shrank ends the response early and the peer retries.
 */
async function sendFile(
  fh: fs.promises.FileHandle,
  from: number,
  size: number,
  limiter: RateLimiter,
  res: http.ServerResponse,
): Promise<void> {
  const free = Array.from({ length: SEND_BUFFERS }, () => Buffer.allocUnsafe(SEND_BUFFER_BYTES));
  let wake: (() => void) | undefined;
  // A peer that went away never gets its writes flushed: the loop must not wait for them.
  let closed = false;
  const onClose = () => {
    closed = true;
    wake?.();
  };
  res.once('close', onClose);
  try {
    let pos = from;
    while (pos < size && !closed) {
      const buf = free.pop();
      if (!buf) {
        await new Promise<void>((resolve) => (wake = resolve));
        continue;
      }
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - pos), pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      await limiter.wait(bytesRead);
      res.write(buf.subarray(0, bytesRead), () => {
        free.push(buf);
        wake?.();
      });
    }
    if (pos < size) res.destroy();
    else if (!closed) res.end();
  } finally {
    res.off('close', onClose);
    await fh.close();
  }
}

export class FileServer {
  private readonly offers = new Map<string, LiveOffer>();
  private readonly pending = new Map<string, Promise<OfferResult>>();
  private readonly http: http.Server;
  private listening: Promise<string> | undefined;

  constructor(private readonly opts: FileServerOptions) {
    this.http = http.createServer((req, res) => void this.handle(req, res));
    this.http.keepAliveTimeout = 5_000;
  }

  /** Starts listening (once) and resolves to the base URL peers use. */
  url(): Promise<string> {
    if (this.listening) return this.listening;
    const listening = new Promise<string>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.opts.port, this.opts.host, () => {
        this.http.off('error', reject);
        const { port } = this.http.address() as AddressInfo;
        resolve(`http://${this.opts.host}:${port}`);
      });
    });
    // A listen that failed (its port taken for a while) is tried again by the next offer.
    listening.catch(() => {
      if (this.listening === listening) this.listening = undefined;
    });
    this.listening = listening;
    return listening;
  }

  /**
   * Resolves, hashes and registers an offer. The same serveId again gets the same answer
   * (an offer in progress is awaited, not redone); an offer that failed is tried afresh.
   */
  async serve(msg: ServeFiles): Promise<Omit<FilesServed, 'v' | 'type'>> {
    const url = await this.url();
    const known = this.offers.get(msg.serveId);
    let result: OfferResult = known ? { offer: known } : await this.resolve(msg);
    if (result.offer && !this.offers.has(msg.serveId) && !this.pending.has(msg.serveId)) {
      // Unserved while it was being hashed: the offer is withdrawn.
      result = { error: { kind: 'missing', paths: [], message: 'the offer was withdrawn' } };
    }
    if (result.error) return { serveId: msg.serveId, url, files: [], error: result.error };
    return { serveId: msg.serveId, url, files: [...result.offer.files.values()].map((f) => f.descriptor) };
  }

  private resolve(msg: ServeFiles): Promise<OfferResult> {
    const inFlight = this.pending.get(msg.serveId);
    if (inFlight) return inFlight;
    const p = resolveOffer(msg, this.opts.root).then((r) => {
      if (this.pending.get(msg.serveId) === p) {
        this.pending.delete(msg.serveId);
        if (r.offer)
          this.offers.set(msg.serveId, { ...r.offer, limiter: new RateLimiter(r.offer.rateLimitBytes) });
      }
      return r;
    });
    this.pending.set(msg.serveId, p);
    return p;
  }

  /** An offer is registered or being hashed. */
  offering(): boolean {
    return this.offers.size > 0 || this.pending.size > 0;
  }

  unserve(serveId: string): void {
    this.offers.delete(serveId);
    this.pending.delete(serveId);
  }

  /** Closes the listener and every connection, streaming or idle. */
  async close(): Promise<void> {
    this.offers.clear();
    this.pending.clear();
    if (!this.listening) return;
    await this.listening.catch(() => undefined);
    await new Promise<void>((resolve) => {
      this.http.close(() => resolve());
      this.http.closeAllConnections();
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const fail = (status: number, text: string) => {
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(text + '\n');
    };
    if (req.method !== 'GET') return fail(405, 'only GET');
    const urlPath = (req.url ?? '').split('?')[0] ?? '';
    if (!urlPath.startsWith(FILES_PREFIX)) return fail(404, 'not found');
    const [rawId, rawRel, ...extra] = urlPath.slice(FILES_PREFIX.length).split('/');
    let serveId: string;
    let relPath: string;
    try {
      serveId = decodeURIComponent(rawId ?? '');
      relPath = decodeURIComponent(rawRel ?? '');
    } catch {
      return fail(404, 'not found');
    }
    const offer = this.offers.get(serveId);
    if (!offer) return fail(404, 'no such offer');
    if (!tokenMatches(req.headers.authorization, offer.token)) return fail(401, 'bad token');
    const file = extra.length === 0 ? offer.files.get(relPath) : undefined;
    if (!file) return fail(404, 'no such file in this offer');
    const size = file.descriptor.size;
    const start = rangeStart(req.headers.range);
    if (start !== undefined && start > size) {
      res.writeHead(416, { 'content-range': `bytes */${size}` });
      return void res.end();
    }
    let fh: fs.promises.FileHandle;
    try {
      fh = await fs.promises.open(file.localPath, 'r');
    } catch {
      return fail(404, 'file no longer readable');
    }
    const from = start ?? 0;
    const headers: http.OutgoingHttpHeaders = {
      'content-type': 'application/octet-stream',
      'content-length': size - from,
      'accept-ranges': 'bytes',
    };
    if (start !== undefined && size > 0) headers['content-range'] = `bytes ${from}-${size - 1}/${size}`;
    res.writeHead(start !== undefined ? 206 : 200, headers);
    await sendFile(fh, from, size, offer.limiter, res).catch(() => res.destroy());
  }
}
