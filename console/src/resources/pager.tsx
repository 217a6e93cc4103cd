/** Previous / next over a BK-JOB list (start + length), with "rows a–b of n". */
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
