/**
 * Dangerous-command rules (every business): a regular expression per script language that
 * either records a hit (scan) or refuses the script (intercept). Everyone may read them and try
 * a script against the enabled rules; platform admins add, change, switch and delete them.
 */
import { useState } from 'react';
import { api } from '../../api/client';
import { ApiError } from '../../components/api-error';
import { t } from '../../i18n';
import { CodeEditor } from '../../resources/code-editor';
import { LanguageOptions } from '../../resources/language-options';
import { formatTime, LANGUAGES, languageName } from '../../resources/format';
import { Findings, useScriptCheck } from '../../resources/script-check';
import { useAction, useLoad } from '../../resources/use-load';
import { useSession } from '../../session/session';

interface Rule {
  id: number;
  expression: string;
  script_language_list: number[];
  description: string;
  action: 1 | 2;
  status: 0 | 1;
  last_modify_user: string;
  last_modify_time: number;
}

interface Draft {
  id?: number;
  expression: string;
  languages: number[];
  description: string;
  action: 1 | 2;
}

const EMPTY: Draft = { expression: '', languages: [1], description: '', action: 1 };

export default function DangerousRulesPage() {
  const { me } = useSession();
  const manage = me?.platform_admin ?? false;
  const rules = useLoad((signal) => api.read<Rule[]>('get_dangerous_rule_list', {}, signal), []);
  const action = useAction();
  const [draft, setDraft] = useState<Draft>(EMPTY);
  const [tryLanguage, setTryLanguage] = useState(1);
  const [tryContent, setTryContent] = useState('');
  const check = useScriptCheck(tryLanguage, tryContent);

  const save = async (e: React.FormEvent) => {
    e.preventDefault();
    const body = {
      expression: draft.expression,
      script_language_list: draft.languages,
      description: draft.description,
      action: draft.action,
    };
    const r = await action.run(async () => {
      if (draft.id) return api.call('update_dangerous_rule', { ...body, id: draft.id });
      const created = await api.call<{ id: number }>('create_dangerous_rule', body);
      // A new rule starts disabled (BK-JOB); the form's purpose is a rule that works.
      return api.call('enable_dangerous_rule', { id: created.id });
    });
    if (r === undefined) return;
    setDraft(EMPTY);
    rules.reload();
  };
  const act = async (name: string, id: number) => {
    if (name === 'delete_dangerous_rule' && !window.confirm(t('rules.deleteConfirm', { id }))) return;
    const r = await action.run(() => api.call(name, { id }));
    if (r !== undefined) rules.reload();
  };

  return (
    <section aria-labelledby="rules-title">
      <h1 id="rules-title">{t('rules.title')}</h1>
      <p className="muted">{t('rules.intro')}</p>
      <ApiError error={rules.error} onRetry={rules.reload} />
      <ApiError error={action.error} />
      <table className="data-table">
        <thead>
          <tr>
            <th scope="col">{t('rules.expression')}</th>
            <th scope="col">{t('rules.languages')}</th>
            <th scope="col">{t('rules.description')}</th>
            <th scope="col">{t('rules.action')}</th>
            <th scope="col">{t('rules.state')}</th>
            <th scope="col">{t('common.modifiedAt')}</th>
            {manage ? <th scope="col">{t('common.actions')}</th> : null}
          </tr>
        </thead>
        <tbody>
          {rules.data?.map((r) => (
            <tr key={r.id}>
              <td>
                <code>{r.expression}</code>
              </td>
              <td>{r.script_language_list.map(languageName).join(', ')}</td>
              <td>{r.description}</td>
              <td>{r.action === 2 ? t('rules.intercept') : t('rules.scan')}</td>
              <td>{r.status === 1 ? t('rules.enabled') : t('rules.disabled')}</td>
              <td>{formatTime(r.last_modify_time)}</td>
              {manage ? (
                <td className="row-actions">
                  <button
                    type="button"
                    onClick={() =>
                      setDraft({
                        id: r.id,
                        expression: r.expression,
                        languages: r.script_language_list,
                        description: r.description,
                        action: r.action,
                      })
                    }
                    aria-label={t('rules.editOf', { id: r.id })}
                  >
                    {t('common.edit')}
                  </button>
                  <button
                    type="button"
                    disabled={action.busy}
                    onClick={() =>
                      void act(r.status === 1 ? 'disable_dangerous_rule' : 'enable_dangerous_rule', r.id)
                    }
                  >
                    {r.status === 1 ? t('rules.disable') : t('rules.enable')}
                  </button>
                  <button
                    type="button"
                    className="danger"
                    disabled={action.busy}
                    onClick={() => void act('delete_dangerous_rule', r.id)}
                    aria-label={t('rules.deleteOf', { id: r.id })}
                  >
                    {t('common.delete')}
                  </button>
                </td>
              ) : null}
            </tr>
          ))}
        </tbody>
      </table>
      {rules.data && rules.data.length === 0 ? <p className="muted">{t('rules.empty')}</p> : null}

      {manage ? (
        <form className="form" onSubmit={(e) => void save(e)} aria-labelledby="rule-form-title">
          <h2 id="rule-form-title">{draft.id ? t('rules.editTitle', { id: draft.id }) : t('rules.new')}</h2>
          <label>
            {t('rules.expression')}
            <input
              required
              spellCheck={false}
              value={draft.expression}
              onChange={(e) => setDraft((d) => ({ ...d, expression: e.target.value }))}
            />
          </label>
          <fieldset className="row">
            <legend>{t('rules.languages')}</legend>
            {LANGUAGES.map((l) => (
              <label className="check" key={l.id}>
                <input
                  type="checkbox"
                  checked={draft.languages.includes(l.id)}
                  onChange={(e) =>
                    setDraft((d) => ({
                      ...d,
                      languages: e.target.checked
                        ? [...d.languages, l.id]
                        : d.languages.filter((x) => x !== l.id),
                    }))
                  }
                />
                {l.name}
              </label>
            ))}
          </fieldset>
          <label>
            {t('rules.description')}
            <input
              value={draft.description}
              onChange={(e) => setDraft((d) => ({ ...d, description: e.target.value }))}
            />
          </label>
          <label>
            {t('rules.action')}
            <select
              value={draft.action}
              onChange={(e) => setDraft((d) => ({ ...d, action: e.target.value === '2' ? 2 : 1 }))}
            >
              <option value={1}>{t('rules.scan')}</option>
              <option value={2}>{t('rules.intercept')}</option>
            </select>
          </label>
          <div className="actions">
            <button type="submit" className="primary" disabled={action.busy}>
              {draft.id ? t('rules.save') : t('rules.create')}
            </button>
            {draft.id ? (
              <button type="button" onClick={() => setDraft(EMPTY)}>
                {t('common.cancel')}
              </button>
            ) : null}
          </div>
        </form>
      ) : null}

      <section aria-labelledby="rules-try-title" className="panel">
        <h2 id="rules-try-title">{t('rules.try')}</h2>
        <p className="muted">{t('rules.tryIntro')}</p>
        <label>
          {t('scripts.language')}
          <select value={tryLanguage} onChange={(e) => setTryLanguage(Number(e.target.value))}>
            <LanguageOptions />
          </select>
        </label>
        <CodeEditor
          value={tryContent}
          onChange={setTryContent}
          language={tryLanguage}
          label={t('rules.tryScript')}
        />
        <Findings findings={check.findings} error={check.error} />
      </section>
    </section>
  );
}
