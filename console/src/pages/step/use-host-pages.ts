/**
 * One group's host list, read page by page: the first rows come with the summary, the others
 * when the list is scrolled to them. When the summary is read again (the step moved on), every
 * row held is kept on screen but counts as stale, and the pages in view are read again.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { api } from '../../api/client';
import type { HostRow, StepHostSummary } from './host-summary';

const PAGE = 200;

export interface HostListQuery {
  /** Changes whenever the list is another one (group, output group, filters, sort, attempt). */
  key: string;
  /** The request parameters of one page, without offset and limit. */
  params: Record<string, unknown>;
  /** The first rows and the count, when the summary holds them for this list. */
  first?: { rows: HostRow[]; total: number };
  /** Bumped on each new summary: what is held becomes stale. */
  generation: number;
  /** False until the list is known (no group yet): nothing is read. */
  ready: boolean;
}

interface Held {
  key: string;
  total: number | undefined;
  rows: (HostRow | undefined)[];
  /** The generation each row was read in. */
  read: number[];
  inFlight: Set<number>;
}

export function useHostPages(query: HostListQuery) {
  const held = useRef<Held>({ key: '', total: undefined, rows: [], read: [], inFlight: new Set() });
  const [, rerender] = useState(0);
  const [error, setError] = useState<unknown>();
  const generation = useRef(query.generation);
  generation.current = query.generation;
  const params = useRef(query.params);
  params.current = query.params;
  const ready = useRef(query.ready);
  ready.current = query.ready;
  const range = useRef<[number, number]>([0, 0]);

  // A new list starts empty; a new generation of the same list keeps its rows as stale ones.
  const h = held.current;
  if (h.key !== query.key) {
    held.current = { key: query.key, total: undefined, rows: [], read: [], inFlight: new Set() };
  }
  const cur = held.current;
  if (query.first) {
    const { rows, total } = query.first;
    if (cur.total !== total) cur.rows.length = Math.min(cur.rows.length, total);
    cur.total = total;
    rows.forEach((r, i) => {
      if ((cur.read[i] ?? -1) < query.generation) {
        cur.rows[i] = r;
        cur.read[i] = query.generation;
      }
    });
  }

  const fetchPage = useCallback((page: number) => {
    const list = held.current;
    if (list.inFlight.has(page)) return;
    list.inFlight.add(page);
    const gen = generation.current;
    api
      .read<StepHostSummary>('get_step_host_summary', { ...params.current, offset: page * PAGE, limit: PAGE })
      .then(
        (reply) => {
          list.inFlight.delete(page);
          if (held.current !== list) return;
          const g = reply.groups.find((x) => x.matched_count !== null);
          list.total = g?.matched_count ?? 0;
          list.rows.length = Math.min(list.rows.length, list.total);
          g?.hosts.forEach((r, i) => {
            list.rows[page * PAGE + i] = r;
            list.read[page * PAGE + i] = gen;
          });
          setError(undefined);
          rerender((n) => n + 1);
        },
        (err: unknown) => {
          list.inFlight.delete(page);
          setError(err);
        },
      );
  }, []);

  /** Reads the pages of rows `start`..`end` that are missing or stale. */
  const want = useCallback(
    (start: number, end: number) => {
      range.current = [start, end];
      if (!ready.current) return;
      const list = held.current;
      const last = list.total === undefined ? start : Math.min(end, list.total - 1);
      for (let p = Math.floor(start / PAGE); p <= Math.floor(Math.max(start, last) / PAGE); p++) {
        const from = Math.max(start, p * PAGE);
        const to = Math.min(last, p * PAGE + PAGE - 1);
        let need = list.total === undefined;
        for (let i = from; i <= to && !need; i++)
          need = list.rows[i] === undefined || (list.read[i] ?? -1) < generation.current;
        if (need) fetchPage(p);
      }
    },
    [fetchPage],
  );

  // A new list, or a new generation of it, reads what is on screen and missing or stale (a list
  // without a first page from the summary, when an output group is chosen, reads its first page).
  useEffect(() => {
    want(...range.current);
  }, [query.key, query.generation, query.ready, want]);

  /** Applies a host's new state to the row held for it, if any. */
  const patch = useCallback((hostId: number, change: Partial<HostRow>) => {
    const list = held.current;
    const i = list.rows.findIndex((r) => r?.bk_host_id === hostId);
    const row = list.rows[i];
    if (!row) return false;
    list.rows[i] = { ...row, ...change };
    rerender((n) => n + 1);
    return true;
  }, []);

  return { total: cur.total, rows: cur.rows, want, patch, error };
}
