/**
 * Diff between two outputs of the step (get_output_diff): output groups (through their
 * representative host), a host, or one host's attempts. Shown as a unified diff.
 */
import { useState } from 'react';
import { api } from '../../api/client';
import { ApiError } from '../../components/api-error';
import { t } from '../../i18n';
import type { OutputGroupInfo } from './host-summary';

interface DiffReply {
  identical: boolean;
  truncated: boolean;
  diff: string;
  left: { label?: string };
  right: { label?: string };
}

export type DiffSide = { group_id: string } | { host_id: number; execute_count?: number };

export interface DiffChoice {
  label: string;
  side: DiffSide;
}

export function diffChoices(
  groups: OutputGroupInfo[],
  groupLabel: (g: OutputGroupInfo) => string,
  host: { id: number; ip: string } | undefined,
  attempts: number,
): DiffChoice[] {
  const out: DiffChoice[] = groups
    .filter((g) => g.fingerprint !== null)
    .map((g) => ({ label: groupLabel(g), side: { group_id: g.group_id } }));
  if (host)
    for (let a = 0; a <= attempts; a++)
      out.push({
        label: t('diff.hostAttempt', { ip: host.ip, n: a + 1 }),
        side: { host_id: host.id, execute_count: a },
      });
  return out;
}

function sideParams(prefix: 'left' | 'right', s: DiffSide) {
  return 'group_id' in s
    ? { [`${prefix}_group_id`]: s.group_id }
    : {
        [`${prefix}_host_id`]: s.host_id,
        ...(s.execute_count !== undefined ? { [`${prefix}_execute_count`]: s.execute_count } : {}),
      };
}

/** One side of the comparison: a choice by its index in `choices`. */
function ChoiceSelect(props: {
  label: string;
  choices: DiffChoice[];
  value: number;
  onChange: (index: number) => void;
}) {
  return (
    <label>
      {props.label}
      <select value={props.value} onChange={(e) => props.onChange(Number(e.target.value))}>
        {props.choices.map((c, i) => (
          <option key={i} value={i}>
            {c.label}
          </option>
        ))}
      </select>
    </label>
  );
}

export function DiffPanel({
  scopeParams,
  jobId,
  stepId,
  executeCount,
  choices,
  onClose,
}: {
  scopeParams: { bk_scope_type: string; bk_scope_id: string };
  jobId: number;
  stepId: number;
  executeCount: number;
  choices: DiffChoice[];
  onClose: () => void;
}) {
  const [left, setLeft] = useState(0);
  const [right, setRight] = useState(Math.min(1, choices.length - 1));
  const [reply, setReply] = useState<DiffReply>();
  const [error, setError] = useState<unknown>();

  async function compare() {
    const l = choices[left];
    const r = choices[right];
    if (!l || !r) return;
    setError(undefined);
    try {
      setReply(
        await api.read<DiffReply>('get_output_diff', {
          ...scopeParams,
          job_instance_id: jobId,
          step_instance_id: stepId,
          execute_count: executeCount,
          ...sideParams('left', l.side),
          ...sideParams('right', r.side),
        }),
      );
    } catch (err) {
      setError(err);
    }
  }

  return (
    <section className="diff-panel card" aria-labelledby="diff-title">
      <div className="row">
        <h2 id="diff-title">{t('diff.title')}</h2>
        <button type="button" className="link" onClick={onClose}>
          {t('common.close')}
        </button>
      </div>
      <div className="row">
        <ChoiceSelect label={t('diff.left')} choices={choices} value={left} onChange={setLeft} />
        <ChoiceSelect label={t('diff.right')} choices={choices} value={right} onChange={setRight} />
        <button type="button" className="primary" onClick={() => void compare()}>
          {t('diff.compare')}
        </button>
      </div>
      <ApiError error={error} />
      {reply ? (
        reply.identical ? (
          <p role="status">{t('diff.identical')}</p>
        ) : (
          <pre className="diff mono" aria-label={t('diff.result')}>
            {reply.diff.split('\n').map((line, i) => (
              <span
                key={i}
                className={
                  line.startsWith('+') && !line.startsWith('+++')
                    ? 'diff-add'
                    : line.startsWith('-') && !line.startsWith('---')
                      ? 'diff-del'
                      : line.startsWith('@@')
                        ? 'diff-hunk'
                        : undefined
                }
              >
                {line}
                {'\n'}
              </span>
            ))}
          </pre>
        )
      ) : null}
      {reply?.truncated ? <p className="small muted">{t('diff.truncated')}</p> : null}
    </section>
  );
}
