/** The fields every quick launch starts with: its name, the execution account and the timeout. */
import { ApiError } from '../../components/api-error';
import { t } from '../../i18n';
import type { Account } from './accounts';

export function JobBasics(props: {
  name: string;
  onName: (name: string) => void;
  account: string;
  onAccount: (alias: string) => void;
  accounts: Account[];
  accountError: unknown;
  timeout: number;
  onTimeout: (seconds: number) => void;
}) {
  return (
    <>
      <div className="row">
        <label className="grow">
          {t('run.name')}
          <input
            value={props.name}
            onChange={(e) => props.onName(e.target.value)}
            placeholder={t('run.namePlaceholder')}
          />
        </label>
        <label>
          {t('run.account')}
          <select value={props.account} onChange={(e) => props.onAccount(e.target.value)} required>
            {props.accounts.map((a) => (
              <option key={a.id} value={a.alias}>
                {a.alias} ({a.account})
              </option>
            ))}
          </select>
        </label>
        <label>
          {t('run.timeout')}
          <input
            type="number"
            min={1}
            max={259200}
            value={props.timeout}
            onChange={(e) => props.onTimeout(Number(e.target.value))}
          />
        </label>
      </div>
      <ApiError error={props.accountError} />
    </>
  );
}
