/** An API failure as the person can act on it: the envelope's code and message, and the request id. */
import { ApiFailure } from '../api/client';
import { t } from '../i18n';

export function ApiError({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  if (error === undefined || error === null) return null;
  const failure = error instanceof ApiFailure ? error : undefined;
  return (
    <div className="api-error" role="alert">
      <strong>
        {failure ? t('error.title', { code: failure.code }) : t('error.network', { message: '' })}
      </strong>{' '}
      <span className="api-error-message">{(error as Error).message ?? String(error)}</span>
      {failure?.requestId ? (
        <span className="muted"> ({t('error.requestId', { id: failure.requestId })})</span>
      ) : null}
      {onRetry ? (
        <button type="button" className="link" onClick={onRetry}>
          {t('app.retry')}
        </button>
      ) : null}
    </div>
  );
}
