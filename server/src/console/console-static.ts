/**
 * The web console, served from its built static files under `/`. Hashed assets are cached for
 * good; index.html never is, so a new build reaches browsers at once. Any other GET that no
 * server route answers and that is not under a server prefix gets index.html, so client routes
 * (`/biz/2/jobs/7`, BK-JOB's `/api_execute/7`) load the app, which routes them itself.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** Paths that belong to the server: a miss there is the API's 404 envelope, never the app. */
const SERVER_PREFIXES = ['/api/', '/agent/', '/metrics', '/healthz'];

/** The console workspace's build output, next to this server in the repository. */
export function defaultConsoleDir(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../console/dist/app');
}

const CSP = [
  "default-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "style-src 'self' 'unsafe-inline'",
  "script-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  // Framed by another site, its buttons (terminate, revoke) could be clicked through a decoy.
  "frame-ancestors 'self'",
].join('; ');

export interface ConsoleStatic {
  /** Answers a request no route took with index.html when it is a client route; false otherwise. */
  fallback(req: FastifyRequest, reply: FastifyReply): boolean;
}

export function registerConsoleStatic(app: FastifyInstance, dir: string): ConsoleStatic | undefined {
  const index = path.join(dir, 'index.html');
  if (!fs.existsSync(index)) {
    app.log.warn({ dir }, 'web console not built (npm run build): / serves the API only');
    return undefined;
  }
  // Only /assets/ gets the plugin's wildcard route: a wildcard at / would also take API paths
  // the router refuses (an endpoint name over its length limit), which must get the envelope.
  app.register(fastifyStatic, {
    root: path.join(dir, 'assets'),
    prefix: '/assets/',
    index: false,
    // Its own Cache-Control (public, max-age=0) would be written over the one set here.
    cacheControl: false,
    setHeaders(res, file) {
      res.setHeader('x-content-type-options', 'nosniff');
      if (file.endsWith('.html')) {
        res.setHeader('cache-control', 'no-cache');
        res.setHeader('content-security-policy', CSP);
        res.setHeader('x-frame-options', 'SAMEORIGIN');
      } else {
        res.setHeader('cache-control', 'public, max-age=31536000, immutable');
      }
    },
  });
  return {
    fallback(req, reply) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return false;
      const p = req.url.split('?')[0] ?? '/';
      if (p === '/api' || p === '/agent' || SERVER_PREFIXES.some((s) => p.startsWith(s))) return false;
      // A missing asset is a 404, not the app's page under a script's name.
      if (p.startsWith('/assets/')) return false;
      void reply
        .header('content-security-policy', CSP)
        .header('x-frame-options', 'SAMEORIGIN')
        .header('cache-control', 'no-cache')
        .sendFile('index.html', dir);
      return true;
    },
  };
}
