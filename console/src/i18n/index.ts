/**
 * Looking strings up: `t('nav.history')`, `t('common.copied', { n: 3 })`. The catalogue is
 * chosen once at start; every catalogue has the keys of the English one (the type says so).
 */
import { en } from './en';
import type { MessageKey } from './en';

export type { MessageKey };
export type Catalogue = Record<MessageKey, string>;

const catalogues: Record<string, Catalogue> = { en };

let active: Catalogue = en;

/** Picks the catalogue for a BCP 47 language tag (falls back to English). */
export function selectLanguage(tag: string): void {
  active = catalogues[tag] ?? catalogues[tag.split('-')[0] ?? ''] ?? en;
}

export function t(key: MessageKey, values?: Record<string, string | number>): string {
  const text = active[key] ?? en[key] ?? key;
  if (!values) return text;
  return text.replace(/\{(\w+)\}/g, (m, name: string) => (name in values ? String(values[name]) : m));
}

/** Numbers as people of the active language write them (1,000). */
export function formatNumber(n: number): string {
  return n.toLocaleString('en');
}
