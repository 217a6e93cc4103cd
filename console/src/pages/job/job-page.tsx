import { t } from '../../i18n';

export default function JobPage() {
  return <h1>{t('nav.history')}</h1>;
}
