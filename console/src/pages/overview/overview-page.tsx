import { t } from '../../i18n';

export default function OverviewPage() {
  return <h1>{t('nav.overview')}</h1>;
}
