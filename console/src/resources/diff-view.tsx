/** A unified line diff of two texts, as a table: old and new line numbers, a sign, the line. */
import { t } from '../i18n';
import { diffCounts, lineDiff } from './line-diff';

export function DiffView({ before, after, caption }: { before: string; after: string; caption: string }) {
  const rows = lineDiff(before, after);
  const { added, removed } = diffCounts(rows);
  return (
    <div className="diff-view">
      <p className="muted" aria-live="polite">
        {added === 0 && removed === 0 ? t('diff.same') : t('diff.counts', { added, removed })}
      </p>
      <table className="diff-table">
        <caption className="visually-hidden">{caption}</caption>
        <thead>
          <tr>
            <th scope="col">{t('diff.old')}</th>
            <th scope="col">{t('diff.new')}</th>
            <th scope="col">
              <span className="visually-hidden">{t('diff.change')}</span>
            </th>
            <th scope="col">{t('diff.line')}</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r, i) => (
            <tr key={i} className={`diff-${r.kind}`}>
              <td className="num">{r.left ?? ''}</td>
              <td className="num">{r.right ?? ''}</td>
              <td
                className="sign"
                aria-label={
                  r.kind === 'add' ? t('diff.added') : r.kind === 'del' ? t('diff.removed') : undefined
                }
              >
                {r.kind === 'add' ? '+' : r.kind === 'del' ? '-' : ' '}
              </td>
              <td>
                <pre>{r.text}</pre>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
