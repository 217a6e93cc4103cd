/** Line diff of two texts as rows a table can show: removed, added or unchanged, with line numbers. */
import { diffLines } from 'diff';

export interface DiffRow {
  kind: 'same' | 'add' | 'del';
  /** Line number on the left (old) side, when the line is there. */
  left?: number;
  /** Line number on the right (new) side. */
  right?: number;
  text: string;
}

export function lineDiff(before: string, after: string): DiffRow[] {
  const rows: DiffRow[] = [];
  let l = 1;
  let r = 1;
  for (const part of diffLines(before, after)) {
    const lines = part.value.replace(/\n$/, '').split('\n');
    for (const text of lines) {
      if (part.added) rows.push({ kind: 'add', right: r++, text });
      else if (part.removed) rows.push({ kind: 'del', left: l++, text });
      else rows.push({ kind: 'same', left: l++, right: r++, text });
    }
  }
  return rows;
}

export function diffCounts(rows: DiffRow[]): { added: number; removed: number } {
  return {
    added: rows.filter((x) => x.kind === 'add').length,
    removed: rows.filter((x) => x.kind === 'del').length,
  };
}
