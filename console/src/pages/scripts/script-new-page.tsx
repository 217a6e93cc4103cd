/** A new script: name, language, first version and its content, checked against the rules while typed. */
import { useState } from 'react';
import { useNavigate } from 'react-router';
import { api } from '../../api/client';
import { ApiError } from '../../components/api-error';
import { t } from '../../i18n';
import { CodeEditor } from '../../resources/code-editor';
import { LanguageOptions } from '../../resources/language-options';
import { toBase64 } from '../../resources/format';
import { Findings, useScriptCheck } from '../../resources/script-check';
import { useAction } from '../../resources/use-load';
import { useScope } from '../../session/scope';

export const STARTER: Record<number, string> = {
  1: '#!/bin/bash\n\n',
  2: '@echo off\n\n',
  3: '#!/usr/bin/perl\nuse strict;\n\n',
  4: '#!/usr/bin/env python3\n\n',
  5: '',
  6: '',
};

export default function ScriptNewPage() {
  const scope = useScope();
  const navigate = useNavigate();
  const [name, setName] = useState('');
  const [language, setLanguage] = useState(1);
  const [version, setVersion] = useState('1.0');
  const [description, setDescription] = useState('');
  const [content, setContent] = useState(STARTER[1] ?? '');
  const check = useScriptCheck(language, content);
  const save = useAction();

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const created = await save.run(() =>
      api.call<{ script_id: string }>('create_script', {
        ...scope.params,
        name,
        script_language: language,
        version,
        description,
        content: toBase64(content),
      }),
    );
    if (created) void navigate(scope.path(`scripts/${created.script_id}`));
  };

  return (
    <section aria-labelledby="script-new-title">
      <h1 id="script-new-title">{t('scripts.new')}</h1>
      <form className="form" onSubmit={(e) => void submit(e)}>
        <label>
          {t('scripts.name')}
          <input required maxLength={60} value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <label>
          {t('scripts.language')}
          <select
            value={language}
            onChange={(e) => {
              const next = Number(e.target.value);
              if (content === (STARTER[language] ?? '')) setContent(STARTER[next] ?? '');
              setLanguage(next);
            }}
          >
            <LanguageOptions />
          </select>
        </label>
        <label>
          {t('scripts.version')}
          <input
            required
            maxLength={60}
            pattern="[A-Za-z0-9_\-#@.]+"
            value={version}
            onChange={(e) => setVersion(e.target.value)}
          />
        </label>
        <label>
          {t('scripts.description')}
          <input maxLength={1000} value={description} onChange={(e) => setDescription(e.target.value)} />
        </label>
        <div className="field">
          <span id="script-new-content">{t('scripts.content')}</span>
          <CodeEditor
            value={content}
            onChange={setContent}
            language={language}
            label={t('scripts.content')}
          />
        </div>
        <Findings findings={check.findings} error={check.error} />
        <ApiError error={save.error} />
        <div className="actions">
          <button type="submit" className="primary" disabled={save.busy}>
            {t('scripts.create')}
          </button>
        </div>
      </form>
    </section>
  );
}
