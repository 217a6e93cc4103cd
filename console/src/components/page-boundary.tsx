/** Keeps one broken page from blanking the whole console; shows what failed and offers a retry. */
import { Component } from 'react';
import type { ReactNode } from 'react';
import { t } from '../i18n';

interface State {
  error: Error | undefined;
}

export class PageBoundary extends Component<{ children: ReactNode; resetKey: string }, State> {
  override state: State = { error: undefined };

  static getDerivedStateFromError(error: Error): State {
    return { error };
  }

  override componentDidUpdate(prev: { resetKey: string }) {
    if (prev.resetKey !== this.props.resetKey && this.state.error) this.setState({ error: undefined });
  }

  override render() {
    if (!this.state.error) return this.props.children;
    return (
      <div className="api-error" role="alert">
        {t('app.pageFailed', { message: this.state.error.message })}{' '}
        <button type="button" className="link" onClick={() => this.setState({ error: undefined })}>
          {t('app.retry')}
        </button>
      </div>
    );
  }
}
