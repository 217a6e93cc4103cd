import { t } from '../../i18n';

export default function PushFilePage() {
  return <h1>{t('nav.pushFile')}</h1>;
}
