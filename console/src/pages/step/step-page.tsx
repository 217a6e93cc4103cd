import { t } from '../../i18n';

export default function StepPage() {
  return <h1>{t('nav.history')}</h1>;
}
