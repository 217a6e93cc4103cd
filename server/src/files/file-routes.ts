/**
 * HTTP routes for bytes, outside the BK-JOB API:
 *   PUT|POST /api/upload/<token>              a local upload (URL from generate_local_file_upload_url)
 *   GET      /agent/v1/files/<serveId>/<name>  files the server offers to targets of a file step
 * Both stream: no file is held in memory. Where the bytes live: file-bodies.ts.
 */
import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { successEnvelope } from '../api/envelope.js';
import { ApiError } from '../api/error-catalogue.js';
import { offerToken, parseServeId } from '../engine/file-tokens.js';
import { RunStatus } from '../engine/statuses.js';
import { parseStepSpec } from '../engine/step-spec.js';
import { sameSecret } from '../secrets.js';
import type { Services } from '../services.js';
import { fileBodiesFor, FileTooLarge } from './file-bodies.js';
import { sha256Hex } from './stored-files.js';

/** What is read of a refused upload's body, at most, before the answer (about a second on a LAN). */
const REFUSED_BODY_DISCARD_BYTES = 64 * 1024 * 1024;
const REFUSED_BODY_DISCARD_MS = 2000;

/** Reads and drops what is left of `body`, until it ends, `maxBytes` were read or `maxMs` passed. */
async function discardRest(body: Readable, maxBytes: number, maxMs: number): Promise<void> {
  if (body.readableEnded || body.destroyed) return;
  await new Promise<void>((resolve) => {
    let read = 0;
    const done = () => {
      clearTimeout(timer);
      body.off('data', count).off('end', done).off('error', done).off('close', done);
      body.pause();
      resolve();
    };
    const count = (chunk: Buffer) => {
      read += chunk.length;
      if (read > maxBytes) done();
    };
    const timer = setTimeout(done, maxMs);
    body.on('data', count).once('end', done).once('error', done).once('close', done);
    body.resume();
  });
}

export function registerFileRoutes(app: FastifyInstance, services: Services): void {
  const bodies = fileBodiesFor(services.store, services.config.dataDir);
  app.register(async (raw) => {
    // The body is the file: hand the stream to the handler instead of parsing it.
    raw.removeAllContentTypeParsers();
    raw.addContentTypeParser('*', (_req, payload, done) => done(null, payload));

    const upload = async (
      token: string,
      body: Readable,
    ): Promise<{ path: string; size: number; sha256: string }> => {
      const files = services.store.files;
      const tokenHash = sha256Hex(token);
      const limit = services.config.uploadMaxBytes;
      const claimant = { id: services.processId, clustered: services.cluster !== undefined };
      // Claimed before a byte is written: a second request on the same URL is refused here and
      // never touches the file of the upload that holds the claim (unless that upload's server
      // is gone: then this one takes the claim over and writes the file anew).
      const row = await files.claimUpload(tokenHash, Date.now(), claimant);
      if (!row) throw new ApiError('UPLOAD_URL_INVALID');
      let written: { size: number; sha256: string };
      try {
        // Not destroyed when the limit stops the read: a destroyed request resets the connection
        // before the refusal reaches the client, and a client that then retries its PUT (undici
        // does) would race the claim's release and be told the URL was used. The rest of the
        // body is dropped with the connection, closed after the answer (below).
        written = await bodies.write(row.path, body.iterator({ destroyOnReturn: false }), limit);
      } catch (err) {
        await files.releaseUpload(tokenHash, claimant.id);
        if (err instanceof FileTooLarge) throw new ApiError('UPLOAD_FILE_MAX_SIZE_EXCEEDED', { limit });
        throw err;
      }
      const { size, sha256 } = written;
      if (!(await files.completeUpload(tokenHash, claimant.id, size, sha256)))
        throw new ApiError('UPLOAD_URL_INVALID');
      return { path: row.path, size, sha256 };
    };

    raw.route({
      method: ['PUT', 'POST'],
      url: '/api/upload/:token',
      bodyLimit: Number.MAX_SAFE_INTEGER,
      handler: async (req, reply) => {
        const { token } = req.params as { token: string };
        const body = (req.body as Readable | undefined) ?? req.raw;
        try {
          return reply.send(successEnvelope(await upload(token, body), req.id));
        } catch (err) {
          // The rest of a refused body is still on the way: the connection cannot be reused. A
          // client still sending when it closes sees a broken pipe instead of the answer (curl
          // and fetch do), so a bounded rest is read first.
          reply.header('connection', 'close');
          await discardRest(body, REFUSED_BODY_DISCARD_BYTES, REFUSED_BODY_DISCARD_MS);
          throw err;
        }
      },
    });
  });

  app.register(async (agents) => {
    // Agents read any 200 as the file: a failure here (the database out of reach, say) must not
    // be the API's envelope with 200. A 503 makes the agent retry, here or at another server.
    agents.setErrorHandler((err, req, reply) => {
      req.log.warn({ err }, 'a file offered to agents cannot be served now');
      return reply.code(503).header('retry-after', '1').send({ error: 'cannot serve the file now; retry' });
    });

    agents.get('/agent/v1/files/:serveId/*', async (req, reply) => {
      const { serveId, '*': relPath } = req.params as { serveId: string; '*': string };
      const auth = req.headers.authorization;
      const id = parseServeId(serveId);
      const expected = offerToken(services.secrets.serverKey, serveId);
      if (!id || id.kind !== 'server' || !sameSecret(auth, `Bearer ${expected}`))
        return reply.code(401).send({ error: 'bad token' });
      const step = await services.store.executions.getStep(id.stepInstanceId);
      // Only while that execution of the step runs: a token seen once is no key for good.
      const current =
        step?.execute_count === id.executeCount &&
        (step.status === RunStatus.RUNNING || step.status === RunStatus.STOPPING);
      const spec = step && current ? parseStepSpec(step.spec) : undefined;
      if (!spec || spec.kind !== 'file') return reply.code(404).send({ error: 'no such offer' });
      const paths = spec.sources.filter((s) => s.kind === 'server').flatMap((s) => s.files);
      // The router has decoded the path already: decoding again breaks names holding `%`.
      const row = await services.store.files.findStoredFile(paths, relPath);
      if (!row || row.size === null) return reply.code(404).send({ error: 'no such file' });
      const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      const start = range ? Number(range[1]) : 0;
      if (start > row.size) return reply.code(416).send({ error: 'range' });
      reply
        .header('content-type', 'application/octet-stream')
        .header('content-length', String(row.size - start));
      if (range) reply.code(206).header('content-range', `bytes ${start}-${row.size - 1}/${row.size}`);
      return reply.send(bodies.read(row.path, start, row.size));
    });
  });
}
