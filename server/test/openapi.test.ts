/**
 * /api/openapi.json: a valid OpenAPI 3.1 document (checked with a maintained validator) that
 * describes every route the server registers: each v3 endpoint and extension, the admin API
 * and the server's own routes. A route added without a description fails here.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import { ENDPOINTS } from '../src/api/endpoints/index.js';
import { openApiPath, recordedRoutes } from '../src/api/openapi.js';
import { loadConfig } from '../src/config.js';
import { startServer } from '../src/server.js';
import type { RunningServer } from '../src/server.js';
import { tempDir } from './helpers/processes.js';

interface Doc {
  openapi: string;
  paths: Record<string, Record<string, { requestBody?: unknown; parameters?: unknown[] }>>;
}

describe('OpenAPI document', () => {
  let server: RunningServer;
  let doc: Doc;

  before(async () => {
    server = await startServer(
      loadConfig({
        flags: { port: 0, host: '127.0.0.1', dataDir: tempDir('openapi'), logLevel: 'silent' },
        env: {},
      }),
    );
    const res = await fetch(`${server.url}/api/openapi.json`);
    assert.equal(res.status, 200);
    doc = (await res.json()) as Doc;
  });
  after(async () => {
    await server?.close();
  });

  test('validates as OpenAPI 3.1', async () => {
    assert.equal(doc.openapi, '3.1.0');
    const result = await new Validator().validate(doc as unknown as Parameters<Validator['validate']>[0]);
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2));
  });

  test('describes every endpoint with the schema it validates with', () => {
    for (const e of ENDPOINTS) {
      const path = e.systemOnly ? `/api/v3/system/${e.name}` : `/api/v3/${e.name}`;
      const item = doc.paths[path];
      assert.ok(item, `${e.name} is described`);
      assert.ok(item.post?.requestBody, `${e.name} has a request body`);
      if (e.kind === 'read') assert.ok(item.get?.parameters, `${e.name} has GET parameters`);
    }
    const logs = doc.paths['/api/v3/get_job_instance_ip_log']?.get?.parameters as { name: string }[];
    assert.ok(
      logs.some((p) => p.name === 'log_offset'),
      'extensions are described too',
    );
  });

  test('describes every route the server registered', () => {
    const generic = new Set(['/api/c/compapi/v2/jobv3/:name', '/api/v3/:name', '/api/v3/system/:name']);
    const routes = recordedRoutes(server.http).filter((r) => !generic.has(r.url));
    assert.ok(routes.length > 10);
    const missing = routes
      .filter((r) => !doc.paths[openApiPath(r.url)]?.[r.method.toLowerCase()])
      .map((r) => `${r.method} ${r.url}`);
    assert.deepEqual(missing, [], 'routes without a description in /api/openapi.json');
  });
});
