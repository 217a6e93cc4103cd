/** The operations a step's status allows (operate_step_instance), and terminating its job. */
import { useState } from 'react';
import { api } from '../../api/client';
import { ApiError } from '../../components/api-error';
import { t } from '../../i18n';
import type { MessageKey } from '../../i18n';

interface Op {
  code: number;
  label: MessageKey;
  danger?: boolean;
}

function opsFor(status: number, type: number, rolling: boolean): Op[] {
  const ops: Op[] = [];
  if (status === 4 || status === 9 || status === 11) {
    ops.push({ code: 2, label: 'op.retryFailed' }, { code: 8, label: 'op.retryAll' });
  }
  if (status === 4 || status === 9) ops.push({ code: 3, label: 'op.ignoreError' });
  if (status === 11) ops.push({ code: 11, label: 'op.nextStep' });
  if (status === 10) ops.push({ code: 12, label: 'op.forceSkip', danger: true });
  if (status === 7 && type === 3)
    ops.push(
      { code: 6, label: 'op.confirmContinue' },
      { code: 9, label: 'op.confirmTerminate', danger: true },
    );
  if (status === 7 && rolling && type !== 3) ops.push({ code: 13, label: 'op.rollingContinue' });
  return ops;
}

export function StepOperations({
  scopeParams,
  jobId,
  stepId,
  status,
  type,
  rolling,
  jobRunning,
  onDone,
}: {
  scopeParams: { bk_scope_type: string; bk_scope_id: string };
  jobId: number;
  stepId: number;
  status: number;
  type: number;
  rolling: boolean;
  jobRunning: boolean;
  onDone: () => void;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const [notice, setNotice] = useState('');

  async function run(label: string, call: () => Promise<unknown>) {
    setBusy(true);
    setError(undefined);
    try {
      await call();
      setNotice(t('op.done', { op: label }));
      onDone();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  const ops = opsFor(status, type, rolling);
  return (
    <div className="step-ops">
      {ops.map((op) => (
        <button
          key={op.code}
          type="button"
          className={op.danger ? 'danger' : undefined}
          disabled={busy}
          onClick={() =>
            void run(t(op.label), () =>
              api.call('operate_step_instance', {
                ...scopeParams,
                job_instance_id: jobId,
                step_instance_id: stepId,
                operation_code: op.code,
              }),
            )
          }
        >
          {t(op.label)}
        </button>
      ))}
      {jobRunning ? (
        <button
          type="button"
          className="danger"
          disabled={busy}
          onClick={() =>
            void run(t('op.terminate'), () =>
              api.call('operate_job_instance', { ...scopeParams, job_instance_id: jobId, operation_code: 1 }),
            )
          }
        >
          {t('op.terminate')}
        </button>
      ) : null}
      <span className="small muted" role="status">
        {notice}
      </span>
      <ApiError error={error} />
    </div>
  );
}
