/**
 * One POST over a keep-alive agent, the way every API call of the bench is sent. node:http, not
 * fetch: the bench shares the two cores with the server, agent and scripts it measures, and with
 * fetch a P7 job's submit and status polls cost the bench 8.9-9.6 ms of CPU (300 jobs in a row;
 * 3.6-4.1 ms with node:http), close to half a core taken from what is measured (a job took 22 ms).
 */
import http from 'node:http';

export interface PostTarget {
  url: string;
  headers: Record<string, string>;
  body: string;
}

export interface PostReply {
  status: number;
  bytes: number;
  /** The reply's body, when it was kept (a load generator only counts its bytes). */
  text?: string;
}

export function postOnce(
  agent: http.Agent,
  target: PostTarget,
  opts: { timeoutMs: number; keepBody: boolean },
): Promise<PostReply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      target.url,
      {
        method: 'POST',
        agent,
        headers: { ...target.headers, 'content-length': Buffer.byteLength(target.body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (d: Buffer) => {
          bytes += d.length;
          if (opts.keepBody) chunks.push(d);
        });
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          resolve(
            opts.keepBody
              ? { status, bytes, text: Buffer.concat(chunks).toString('utf8') }
              : { status, bytes },
          );
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(opts.timeoutMs, () => req.destroy(new Error(`no answer in ${opts.timeoutMs} ms`)));
    req.on('error', reject);
    req.end(target.body);
  });
}
