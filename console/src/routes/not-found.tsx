import { useLocation } from 'react-router';
import { t } from '../i18n';

export function NotFound() {
  const location = useLocation();
  return <p className="notice">{t('app.notFound', { path: location.pathname })}</p>;
}
