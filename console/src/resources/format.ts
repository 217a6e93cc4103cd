/** Small conversions the resource pages share: base64 of UTF-8 text, times, script languages. */

export function toBase64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

export function fromBase64(b64: string): string {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new TextDecoder().decode(bytes);
}

/** A time as `2026-11-29 21:30:05` in the browser's zone; BK-JOB answers some times in seconds, some in ms. */
export function formatTime(t: number | null | undefined, unit: 'ms' | 's' = 'ms'): string {
  if (t === null || t === undefined || t === 0) return '';
  const d = new Date(unit === 's' ? t * 1000 : t);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** BK-JOB's script languages, by their API number. */
export const LANGUAGES = [
  { id: 1, name: 'Shell' },
  { id: 2, name: 'Bat' },
  { id: 3, name: 'Perl' },
  { id: 4, name: 'Python' },
  { id: 5, name: 'PowerShell' },
  { id: 6, name: 'SQL' },
] as const;

export function languageName(id: number): string {
  return LANGUAGES.find((l) => l.id === id)?.name ?? String(id);
}

/** A page of a BK-JOB list reply. */
export interface PageOf<T> {
  start: number;
  length: number;
  total: number;
  data: T[];
}
