/**
 * Previous / next over a BK-JOB list (start + length), with "rows a–b of n"; and the footer of a
 * list page: what it says when the list is empty, then the pager.
 */
import { t } from '../i18n';

export function Pager({
  start,
  length,
  total,
  onPage,
}: {
  start: number;
  length: number;
  total: number;
  onPage(start: number): void;
}) {
  if (total <= length && start === 0) return null;
  return (
    <nav className="pager" aria-label={t('pager.label')}>
      <button type="button" disabled={start === 0} onClick={() => onPage(Math.max(0, start - length))}>
        {t('pager.previous')}
      </button>
      <span>{t('pager.range', { from: start + 1, to: Math.min(total, start + length), total })}</span>
      <button type="button" disabled={start + length >= total} onClick={() => onPage(start + length)}>
        {t('pager.next')}
      </button>
    </nav>
  );
}

/** Under a list: `empty` when the (loaded) list has nothing, the pager when `start`/`onPage` are given. */
export function ListFooter({
  total,
  empty,
  start,
  length,
  onPage,
}: {
  /** Undefined while the list loads. */
  total: number | undefined;
  empty: string;
  start?: number;
  length?: number;
  onPage?(start: number): void;
}) {
  if (total === undefined) return null;
  return (
    <>
      {total === 0 ? <p className="muted">{empty}</p> : null}
      {onPage && start !== undefined && length !== undefined ? (
        <Pager start={start} length={length} total={total} onPage={onPage} />
      ) : null}
    </>
  );
}
