/**
 * Output of `jf`: results to stdout in the chosen format, progress and messages to stderr.
 * Colour only when the stream is a terminal and neither NO_COLOR nor --no-color says otherwise
 * (CLICOLOR_FORCE forces it).
 */
import pc from 'picocolors';
import type YAML from 'yaml';

export type Format = 'human' | 'json' | 'ndjson' | 'yaml';
export const FORMATS: readonly Format[] = ['human', 'json', 'ndjson', 'yaml'];

export interface Output {
  format: Format;
  color: boolean;
  quiet: boolean;
  /** Live progress on stderr: only to a terminal, and never when quiet. */
  progress: boolean;
}

export function makeOutput(opts: { output?: string; color?: boolean; quiet?: boolean }): Output {
  const format = (opts.output ?? 'human') as Format;
  const env = process.env;
  const forced = env.CLICOLOR_FORCE !== undefined && env.CLICOLOR_FORCE !== '0';
  const color =
    opts.color !== false &&
    !('NO_COLOR' in env && env.NO_COLOR !== '') &&
    (forced || Boolean(process.stdout.isTTY));
  return {
    format,
    color,
    quiet: Boolean(opts.quiet),
    progress: Boolean(process.stderr.isTTY) && !opts.quiet,
  };
}

let yaml: typeof YAML | undefined;
/** Loads the YAML printer when -o yaml asks for it (kept out of start-up otherwise). */
export async function prepareOutput(out: Output): Promise<void> {
  if (out.format === 'yaml' && !yaml) yaml = (await import('yaml')).default;
}

export function paint(out: Output) {
  return pc.createColors(out.color);
}

/** Prints a machine-readable document (json, yaml) or one line per item (ndjson). */
export function printData(out: Output, data: unknown, human: () => string): void {
  switch (out.format) {
    case 'json':
      process.stdout.write(JSON.stringify(data, null, 2) + '\n');
      return;
    case 'yaml':
      process.stdout.write((yaml as typeof YAML).stringify(data));
      return;
    case 'ndjson':
      for (const item of Array.isArray(data) ? data : [data])
        process.stdout.write(JSON.stringify(item) + '\n');
      return;
    default: {
      const text = human();
      if (text) process.stdout.write(text.endsWith('\n') ? text : text + '\n');
    }
  }
}

/** A plain table: columns padded to their widest cell. */
export function table(head: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = [head, ...rows.map((r) => r.map((c) => (c === null || c === undefined ? '' : String(c))))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  '))
    .join('\n');
}

export function hostLabel(h: { ip: string | null; bk_cloud_id: number | null; bk_host_id: number }): string {
  if (!h.ip) return `host${h.bk_host_id}`;
  return h.bk_cloud_id ? `${h.bk_cloud_id}:${h.ip}` : h.ip;
}

export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
