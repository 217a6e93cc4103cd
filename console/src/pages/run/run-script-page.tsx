import { t } from '../../i18n';

export default function RunScriptPage() {
  return <h1>{t('nav.runScript')}</h1>;
}
