/**
 * The dangerous-command rules' verdict on a script while it is typed: check_script 300 ms after
 * the last change (as BK-JOB's editor does), each finding with its line and the rule's text.
 */
import { useEffect, useState } from 'react';
import { api } from '../api/client';
import { ApiError } from '../components/api-error';
import { t } from '../i18n';
import { toBase64 } from './format';

export interface Finding {
  line: number;
  line_content: string;
  match_content: string;
  level: number;
  description: string;
}

export function useScriptCheck(language: number, content: string): { findings: Finding[]; error: unknown } {
  const [findings, setFindings] = useState<Finding[]>([]);
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    if (content.trim() === '') {
      setFindings([]);
      return;
    }
    let live = true;
    const timer = setTimeout(() => {
      api.call<Finding[]>('check_script', { script_language: language, content: toBase64(content) }).then(
        (f) => {
          if (!live) return;
          setFindings(f);
          setError(undefined);
        },
        (err: unknown) => live && setError(err),
      );
    }, 300);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [language, content]);
  return { findings, error };
}

export function Findings({ findings, error }: { findings: Finding[]; error?: unknown }) {
  if (error) return <ApiError error={error} />;
  if (findings.length === 0)
    return (
      <p className="muted findings-none" aria-live="polite">
        {t('check.clean')}
      </p>
    );
  return (
    <div className="findings" role="status" aria-live="polite">
      <strong>{t('check.found', { n: findings.length })}</strong>
      <ul>
        {findings.map((f, i) => (
          <li key={i}>
            {t('check.line', { line: f.line })} <code>{f.match_content}</code> —{' '}
            {f.description || t('check.noDescription')}
          </li>
        ))}
      </ul>
    </div>
  );
}
