/**
 * Files the server holds (local uploads, push_config_file contents) go with the job history
 * retention: a file no job or template has named for the retention's days is removed, row and
 * bytes. Without it every upload and every pushed config stayed on disk (or in the database of a
 * cluster) forever.
 *
 * A file counts as named when a job is accepted with it, when a template or plan naming it is
 * saved, and while a template, plan or cron's variables name it or a job the retention keeps
 * names it (read at each pass, only when some file is due). A file named at the moment it is
 * removed is either kept (the naming came first) or refused to the job naming it, with the
 * answer an unknown upload gets (the removal came first): see FileStore.useStoredFiles.
 */
import type { FileStore } from '../store/file-store.js';
import type { FileBodies } from './file-bodies.js';

const PAGE = 500;
/** Jobs created up to this long after the cutoff may have named their files just before it. */
const NAMING_MARGIN_MS = 3600_000;

/** Every string in a JSON text, at any depth: where a path sits in a body is not this module's concern. */
function stringsIn(json: string, into: Set<string>): void {
  const walk = (v: unknown): void => {
    if (typeof v === 'string') into.add(v);
    else if (Array.isArray(v)) for (const x of v) walk(x);
    else if (v !== null && typeof v === 'object') for (const x of Object.values(v)) walk(x);
  };
  try {
    walk(JSON.parse(json));
  } catch {
    // A text that does not parse names nothing this pass can read; its files are judged by use alone.
  }
}

/** Removes files unnamed since `before` (ms); resolves with how many went. */
export async function pruneUnusedFiles(
  files: FileStore,
  bodies: FileBodies,
  before: number,
  finishedStatuses: readonly number[],
  now = Date.now(),
): Promise<number> {
  let named: Set<string> | undefined;
  let removed = 0;
  for (let after = ''; ;) {
    const due = await files.unusedBefore(before, after, PAGE);
    if (due.length === 0) return removed;
    after = due[due.length - 1]!;
    if (!named) {
      named = new Set();
      for await (const text of files.namingTexts(before + NAMING_MARGIN_MS, before, finishedStatuses))
        stringsIn(text, named);
    }
    const keep = due.filter((p) => named!.has(p));
    // Named where a pass has to read to know: counted as used now, so the next passes skip them.
    if (keep.length > 0) await files.useStoredFiles(keep, now);
    const retired = await files.retireUnused(
      due.filter((p) => !named!.has(p)),
      before,
    );
    await bodies.remove(retired);
    await files.deleteRetired(retired);
    removed += retired.length;
  }
}
