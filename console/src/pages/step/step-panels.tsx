/**
 * The step page's side panels, as BK-JOB's step view offers them: a file step's transfers of the
 * selected host (source, target, size, speed, progress, status), the job's global variables at
 * launch (ciphers masked by the server), the job's operation records (who launched, retried,
 * skipped, confirmed or terminated), and the export of every host's log of the attempt. The job
 * page shows the job's own two (variables, records).
 */
import { useEffect, useState } from 'react';
import type { ReactNode } from 'react';
import { api } from '../../api/client';
import type { Params } from '../../api/client';
import { ApiError } from '../../components/api-error';
import { formatNumber, t } from '../../i18n';
import type { MessageKey } from '../../i18n';
import { formatBytes } from '../../model/bytes';
import { formatTime } from '../../model/statuses';
import { useLoad } from '../../resources/use-load';
import './step-panels.css';

type Panel = 'files' | 'variables' | 'records' | 'export';

interface IpOf {
  bk_cloud_id: number | null;
  ip: string | null;
}

interface FileLog {
  mode: number;
  src_ip: IpOf;
  src_path: string;
  dest_ip?: IpOf;
  dest_path?: string;
  status: number;
  size: string | null;
  speed: string | null;
  process: string | null;
  log_content: string;
}

interface Variable {
  name: string;
  type: number;
  value: string;
  host_values?: Record<string, string>;
  server?: { host_id_list?: { bk_host_id: number }[]; ip_list?: unknown[] };
}

interface OperationRecord {
  time: number;
  operator: string;
  app_code: string;
  operation: string;
  launch_mode: number;
  step_instance_id: number | null;
  result: boolean;
  code: number;
}

/** What the job's own panels need (variables, operation records): the job page has no step. */
export interface JobPanelProps {
  scopeParams: { bk_scope_type: string; bk_scope_id: string };
  jobId: number;
  /** Changes while the job or step runs, so the open panel reads again. */
  version: number;
}

export interface StepPanelsProps extends JobPanelProps {
  stepId: number;
  /** 1 script, 2 file, 3 confirmation, 4 SQL */
  stepType: number;
  executeCount: number;
  hostCount: number;
  /** The host whose file transfers are shown. */
  host: { id: number; ip: string } | undefined;
  /** While the step runs, the transfers are read again every two seconds (progress, speed). */
  running: boolean;
}

/** The agent's words after `Detail:` in a file log line (why a transfer failed). */
const detailOf = (log: string) => /Detail: (.*)$/s.exec(log)?.[1]?.trim() ?? '';

const ipText = (ip: IpOf | undefined) => (ip ? `${ip.bk_cloud_id ?? 0}:${ip.ip ?? ''}` : '');

const LABELS: Record<Panel, MessageKey> = {
  files: 'panel.files',
  variables: 'panel.variables',
  records: 'panel.records',
  export: 'panel.export',
};

/** A row of toggle buttons, each opening one panel below it (one open at a time). */
function PanelSet(props: {
  panels: Panel[];
  initial?: Panel | undefined;
  render: (panel: Panel) => ReactNode;
}) {
  const [open, setOpen] = useState<Panel | undefined>(props.initial);
  return (
    <div className="step-panels">
      <div className="panel-buttons" role="group" aria-label={t('panel.group')}>
        {props.panels.map((panel) => (
          <button
            key={panel}
            type="button"
            aria-expanded={open === panel}
            onClick={() => setOpen((o) => (o === panel ? undefined : panel))}
          >
            {t(LABELS[panel])}
          </button>
        ))}
      </div>
      {open ? (
        <section className="step-panel" aria-label={t(LABELS[open])}>
          <button type="button" className="link panel-close" onClick={() => setOpen(undefined)}>
            {t('panel.close')}
          </button>
          {props.render(open)}
        </section>
      ) : null}
    </div>
  );
}

/** A panel: its title, the failure of its read, and a table (or the words for none). */
function PanelTable(props: {
  title: string;
  error: unknown;
  loaded: boolean;
  empty: MessageKey;
  head: MessageKey[];
  rows: { key: string | number; cells: ReactNode[] }[];
}) {
  return (
    <>
      <h2>{props.title}</h2>
      <ApiError error={props.error} />
      {props.loaded && props.rows.length === 0 ? <p className="muted">{t(props.empty)}</p> : null}
      {props.rows.length > 0 ? (
        <table className="panel-table">
          <thead>
            <tr>
              {props.head.map((h) => (
                <th key={h}>{t(h)}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {props.rows.map((r) => (
              <tr key={r.key}>
                {r.cells.map((c, i) => (
                  <td key={i}>{c}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </>
  );
}

export function StepPanels(props: StepPanelsProps) {
  const file = props.stepType === 2;
  const script = props.stepType === 1 || props.stepType === 4;
  return (
    <PanelSet
      panels={[
        ...(file ? (['files'] as const) : []),
        'variables',
        'records',
        ...(script ? (['export'] as const) : []),
      ]}
      // A file step has no script output: its transfers are what there is to see.
      initial={file ? 'files' : undefined}
      render={(panel) =>
        panel === 'files' ? (
          <FileTransfers {...props} />
        ) : panel === 'variables' ? (
          <Variables {...props} />
        ) : panel === 'records' ? (
          <Records {...props} />
        ) : (
          <ExportLogs {...props} />
        )
      }
    />
  );
}

/** The job page's panels: its variables at launch and its operation records. */
export function JobPanels(props: JobPanelProps) {
  return (
    <PanelSet
      panels={['variables', 'records']}
      render={(panel) => (panel === 'variables' ? <Variables {...props} /> : <Records {...props} />)}
    />
  );
}

function FileTransfers(props: StepPanelsProps) {
  const { bk_scope_type, bk_scope_id } = props.scopeParams;
  const hostId = props.host?.id;
  const loaded = useLoad(
    () =>
      hostId === undefined
        ? Promise.resolve(undefined)
        : api.call<{ file_task_logs: { file_logs: FileLog[] }[] | null }>('batch_get_job_instance_ip_log', {
            bk_scope_type,
            bk_scope_id,
            job_instance_id: props.jobId,
            step_instance_id: props.stepId,
            execute_count: props.executeCount,
            host_id_list: [hostId],
          } satisfies Params),
    [bk_scope_type, bk_scope_id, props.jobId, props.stepId, props.executeCount, hostId, props.version],
  );
  const { reload } = loaded;
  const { running } = props;
  useEffect(() => {
    if (!running) return undefined;
    const timer = setInterval(reload, 2000);
    return () => clearInterval(timer);
  }, [running, reload]);
  const logs = loaded.data?.file_task_logs?.flatMap((h) => h.file_logs) ?? [];
  return (
    <PanelTable
      title={t('files.title', { ip: props.host?.ip ?? '' })}
      error={loaded.error}
      loaded={loaded.data !== undefined}
      empty="files.empty"
      head={[
        'files.direction',
        'files.source',
        'files.target',
        'files.size',
        'files.speed',
        'files.progress',
        'files.status',
        'files.detail',
      ]}
      rows={logs.map((l, i) => ({
        key: i,
        cells: [
          t(l.mode === 0 ? 'files.upload' : 'files.download'),
          <span className="mono">
            {l.src_ip.ip === null
              ? t('files.localUpload', { name: l.src_path.split('/').pop() ?? l.src_path })
              : `${ipText(l.src_ip)} ${l.src_path}`}
          </span>,
          <span className="mono">{l.dest_ip ? `${ipText(l.dest_ip)} ${l.dest_path ?? ''}` : '—'}</span>,
          l.size ?? '—',
          l.speed ?? '—',
          l.process ?? '—',
          t(`files.status${l.status}` as MessageKey),
          <span className="small">{detailOf(l.log_content)}</span>,
        ],
      }))}
    />
  );
}

function variableValue(v: Variable): string {
  if (v.host_values) return t('jobvars.hosts', { n: formatNumber(Object.keys(v.host_values).length) });
  if (v.server) {
    const n = (v.server.host_id_list?.length ?? 0) + (v.server.ip_list?.length ?? 0);
    return t('jobvars.hosts', { n: formatNumber(n) });
  }
  return v.value;
}

function Variables(props: JobPanelProps) {
  const { bk_scope_type, bk_scope_id } = props.scopeParams;
  const loaded = useLoad(
    (signal) =>
      api.read<{ global_var_list: Variable[] }>(
        'get_job_instance_variable_list',
        { bk_scope_type, bk_scope_id, job_instance_id: props.jobId },
        signal,
      ),
    [bk_scope_type, bk_scope_id, props.jobId],
  );
  const vars = loaded.data?.global_var_list ?? [];
  return (
    <PanelTable
      title={t('jobvars.title')}
      error={loaded.error}
      loaded={loaded.data !== undefined}
      empty="jobvars.empty"
      head={['jobvars.name', 'jobvars.type', 'jobvars.value']}
      rows={vars.map((v) => ({
        key: v.name,
        cells: [
          <span className="mono">{v.name}</span>,
          t(`jobvars.type${v.type}` as MessageKey),
          <span className="mono">{variableValue(v)}</span>,
        ],
      }))}
    />
  );
}

function Records(props: JobPanelProps) {
  const { bk_scope_type, bk_scope_id } = props.scopeParams;
  const loaded = useLoad(
    (signal) =>
      api.read<{ operation_list: OperationRecord[] }>(
        'get_job_instance_operation_list',
        { bk_scope_type, bk_scope_id, job_instance_id: props.jobId },
        signal,
      ),
    [bk_scope_type, bk_scope_id, props.jobId, props.version],
  );
  const list = loaded.data?.operation_list ?? [];
  const what = (r: OperationRecord) =>
    r.operation === 'launch'
      ? t('records.launch', { mode: t(`records.mode${r.launch_mode}` as MessageKey) })
      : `records.op.${r.operation}` in OPERATION_KEYS
        ? t(`records.op.${r.operation}` as MessageKey)
        : r.operation;
  return (
    <PanelTable
      title={t('records.title', { id: props.jobId })}
      error={loaded.error}
      loaded={loaded.data !== undefined}
      empty="records.empty"
      head={['records.when', 'records.who', 'records.what', 'records.step', 'records.outcome']}
      rows={list.map((r, i) => ({
        key: i,
        cells: [
          formatTime(r.time),
          r.operator || r.app_code,
          what(r),
          r.step_instance_id ?? '—',
          r.result ? t('records.ok') : t('records.refused', { code: r.code }),
        ],
      }))}
    />
  );
}

const OPERATION_KEYS: Record<string, true> = Object.fromEntries(
  [
    'start',
    'terminate',
    'retry_failed',
    'ignore_error',
    'confirm_continue',
    'retry_all',
    'confirm_terminate',
    'confirm_restart',
    'next_step',
    'force_skip',
    'rolling_continue',
  ].map((k) => [`records.op.${k}`, true]),
);

function ExportLogs(props: StepPanelsProps) {
  const [started, setStarted] = useState(false);
  const query = {
    ...props.scopeParams,
    job_instance_id: props.jobId,
    step_instance_id: props.stepId,
    execute_count: props.executeCount,
  };
  // Asked first, so a refusal (too large, not a script step) shows with its code instead of
  // being saved as a file.
  const check = useLoad(
    (signal) =>
      api.get<{ host_count: number; log_bytes: number }>(EXPORT_PATH, { ...query, check: 1 }, signal),
    [JSON.stringify(query), props.version],
  );
  const href = `${EXPORT_PATH}?${new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)])).toString()}`;
  return (
    <>
      <h2>{t('export.title')}</h2>
      <ApiError error={check.error} />
      {check.data ? (
        <>
          <p className="small">
            {t('export.hint', {
              hosts: formatNumber(check.data.host_count),
              size: formatBytes(check.data.log_bytes),
            })}
          </p>
          <a className="button primary" href={href} download onClick={() => setStarted(true)}>
            {t('export.start')}
          </a>{' '}
          {started ? (
            <span className="small muted" role="status">
              {t('export.started')}
            </span>
          ) : null}
        </>
      ) : null}
    </>
  );
}

const EXPORT_PATH = '/api/console/step-log-export';
