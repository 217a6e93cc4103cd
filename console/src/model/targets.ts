/**
 * Reading a pasted target list: addresses separated by spaces, commas, semicolons or lines;
 * `ip`, `cloud:ip`, host ids, and ranges like `10.0.1.[1-40]` expanded here.
 */
export const MAX_ENTRIES = 50_000;

export function parseTargets(text: string): { entries: string[]; tooMany: boolean } {
  const entries: string[] = [];
  for (const word of text.split(/[\s,;]+/)) {
    if (!word) continue;
    const m = /^(.*)\[(\d+)-(\d+)\](.*)$/.exec(word);
    if (m) {
      const from = Number(m[2]);
      const to = Number(m[3]);
      const width = m[2]?.startsWith('0') ? (m[2]?.length ?? 0) : 0;
      for (let n = Math.min(from, to); n <= Math.max(from, to) && entries.length <= MAX_ENTRIES; n++)
        entries.push(`${m[1] ?? ''}${String(n).padStart(width, '0')}${m[4] ?? ''}`);
    } else entries.push(word);
    if (entries.length > MAX_ENTRIES) return { entries: entries.slice(0, MAX_ENTRIES), tooMany: true };
  }
  return { entries, tooMany: false };
}
