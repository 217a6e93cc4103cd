/**
 * Loads what a page shows and reloads it on demand: `{ data, error, loading, reload }`. A newer
 * load wins over an older one still in flight, so quick filter changes never show stale rows.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { ReadOrder } from '../model/read-order';

export interface Loaded<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload(): void;
}

export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>, deps: readonly unknown[]): Loaded<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<unknown>();
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const latest = useRef(load);
  latest.current = load;
  useEffect(() => {
    const ctl = new AbortController();
    setLoading(true);
    latest.current(ctl.signal).then(
      (d) => {
        if (ctl.signal.aborted) return;
        setData(d);
        setError(undefined);
        setLoading(false);
      },
      (err: unknown) => {
        if (ctl.signal.aborted) return;
        setError(err);
        setLoading(false);
      },
    );
    return () => ctl.abort();
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((n) => n + 1), []);
  return { data, error, loading, reload };
}

/** Runs one action at a time (a save, a publish): its error, and whether it is running. */
export function useAction(): {
  busy: boolean;
  error: unknown;
  run<T>(action: () => Promise<T>): Promise<T | undefined>;
  clear(): void;
} {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const run = useCallback(async <T>(action: () => Promise<T>) => {
    setBusy(true);
    setError(undefined);
    try {
      return await action();
    } catch (err) {
      setError(err);
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  const clear = useCallback(() => setError(undefined), []);
  return { busy, error, run, clear };
}

/** A ReadOrder that lives as long as the component. */
export function useReadOrder(): ReadOrder {
  const order = useRef<ReadOrder | undefined>(undefined);
  order.current ??= new ReadOrder();
  return order.current;
}
