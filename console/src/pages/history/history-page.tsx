import { t } from '../../i18n';

export default function HistoryPage() {
  return <h1>{t('nav.history')}</h1>;
}
