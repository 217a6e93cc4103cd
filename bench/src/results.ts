/**
 * The bench's output: one figure per measured quantity, printed as a table and written to
 * bench/results/latest.json and latest.md. A figure whose target applies to its ratio
 * (P1, P3, P5) is judged on the ratio; one with an absolute target (P2, P4) on its value.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { summarize } from './stats.js';

export type ExecutorLabel = 'process' | 'noop' | 'n/a';

/** The store a pass runs on. */
export type Store = 'sqlite' | 'postgres';

export interface Figure {
  id: string;
  params: Record<string, string | number>;
  /** Median of the runs; null when the figure could not be measured (see note). */
  value: number | null;
  unit: string;
  baseline: number | null;
  ratio: number | null;
  target: number | null;
  met: boolean | null;
  min: number | null;
  max: number | null;
  executor: ExecutorLabel;
  note: string;
}

export interface Machine {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  kernel: string;
  peers: Record<string, string>;
}

export interface Results {
  figures: Figure[];
  machine: Machine;
  date: string;
}

export function machine(peers: Record<string, string>): Machine {
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    peers,
  };
}

const fmt = (n: number | null, digits = 3): string =>
  n === null ? '—' : String(Number(n.toPrecision(digits + 1)));

function params(p: Figure['params']): string {
  return Object.entries(p)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}

const HEADER = [
  'figure',
  'params',
  'value',
  'min–max',
  'baseline',
  'ratio',
  'target',
  'met',
  'executor',
  'note',
];

function row(f: Figure): string[] {
  return [
    f.id,
    params(f.params),
    f.value === null ? '—' : `${fmt(f.value)} ${f.unit}`,
    f.min === null || f.max === null ? '—' : `${fmt(f.min)}–${fmt(f.max)}`,
    fmt(f.baseline),
    fmt(f.ratio),
    fmt(f.target),
    f.met === null ? '—' : f.met ? 'yes' : 'NO',
    f.executor,
    f.note,
  ];
}

export function textTable(figures: Figure[]): string {
  const rows = [HEADER, ...figures.map(row)];
  const widths = HEADER.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  '))
    .join('\n');
}

export function markdownTable(figures: Figure[]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  return [
    `| ${HEADER.join(' | ')} |`,
    `|${HEADER.map(() => '---').join('|')}|`,
    ...figures.map((f) => `| ${row(f).map(esc).join(' | ')} |`),
  ].join('\n');
}

/** Writes `<name>.json` and `<name>.md` (`latest` for whole runs, `partial` for selections). */
export function writeResults(dir: string, results: Results, mode: string, name = 'latest'): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(results, null, 2) + '\n');
  const m = results.machine;
  const md = [
    `# Jobfleet bench — ${mode} run, ${results.date}`,
    '',
    `Machine: ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, Node ${m.node}, ${m.kernel}.`,
    `Peers: ${Object.entries(m.peers)
      .map(([k, v]) => `${k}: ${v}`)
      .join('; ')}.`,
    '',
    markdownTable(results.figures),
    '',
  ].join('\n');
  fs.writeFileSync(path.join(dir, `${name}.md`), md);
}

/**
 * What a figure measured when each of its runs had a run of its baseline beside it: the median of
 * the runs and their spread, the baseline's median, and the ratio of the two medians.
 */
export function againstBaseline(
  values: readonly number[],
  baselines: readonly number[],
): Pick<Figure, 'value' | 'baseline' | 'ratio' | 'min' | 'max'> {
  const sum = summarize(values);
  const baseline = summarize(baselines).median;
  return { value: sum.median, baseline, ratio: sum.median / baseline, min: sum.min, max: sum.max };
}

/** A figure judged against a target: `atMost` for times and sizes, `atLeast` for speeds and peer ratios. */
export function judged(
  f: Omit<Figure, 'met'>,
  on: 'value' | 'ratio',
  direction: 'atMost' | 'atLeast',
): Figure {
  const x = on === 'value' ? f.value : f.ratio;
  const met = f.target === null || x === null ? null : direction === 'atMost' ? x <= f.target : x >= f.target;
  return { ...f, met };
}

/** A figure that could not be measured: the note says why. */
export function unmeasured(
  base: Pick<Figure, 'id' | 'params' | 'unit' | 'target' | 'executor'>,
  note: string,
): Figure {
  return { ...base, value: null, baseline: null, ratio: null, met: null, min: null, max: null, note };
}
