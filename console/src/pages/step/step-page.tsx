/**
 * A step's result: BK-JOB's status-and-tag groups with counts, Jobfleet's output groups inside
 * them, the group's hosts (virtualised, sortable by duration, exit code, IP or host id, filtered
 * by IP, copyable), one host's log followed by offset, the attempt selector, the rolling batch
 * strip, the step's operations and diffs between groups, hosts and attempts.
 *
 * The whole host table comes in one request (get_step_host_table) and is kept current from the
 * job's event stream: host events update rows at once, and the table (with output groups) is
 * re-read at most once a second while events arrive. Logs are never fetched whole again.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { Link, useParams, useSearchParams } from 'react-router';
import { api } from '../../api/client';
import { throttle, useJobStream } from '../../api/job-stream';
import type { JobEventData, JobEventType } from '../../api/job-stream';
import { ApiError } from '../../components/api-error';
import { copyText } from '../../components/copy';
import { HostStatusBadge, RunStatusBadge } from '../../components/status';
import { VirtualRows } from '../../components/virtual-rows';
import { formatNumber, t } from '../../i18n';
import { STEP_TYPES, formatDuration, hostStatus, isHostFinished, isRunFinished } from '../../model/statuses';
import { useScope } from '../../session/scope';
import { reaches } from '../../session/session';
import { DiffPanel, diffChoices } from './diff-panel';
import { batchCounts, duration, groupRows, statusGroups } from './host-table';
import type { HostTable, OutputGroupInfo, SortKey, StatusGroup } from './host-table';
import { useJobSummary } from './job-summary';
import { LogPanel } from './log-panel';
import { StepOperations } from './step-operations';
import { StepPanels } from './step-panels';

const ROW = 30;

function statusGroupLabel(g: StatusGroup): string {
  return `${hostStatus(g.status).label}${g.tag ? ` (${g.tag})` : ''}`;
}

export default function StepPage() {
  const scope = useScope();
  const params = useParams();
  const jobId = Number(params.jobId);
  const stepId = Number(params.stepId);
  const [search, setSearch] = useSearchParams();
  const attemptParam = search.get('attempt');
  const attempt = attemptParam === null ? undefined : Number(attemptParam);
  const { job, error: jobError, reload: reloadJob } = useJobSummary(scope.params, jobId);
  const [table, setTable] = useState<HostTable>();
  const [error, setError] = useState<unknown>();
  const [groupKey, setGroupKey] = useState<string>();
  const [outputGroup, setOutputGroup] = useState<number>();
  const [batch, setBatch] = useState(0);
  const [ipFilter, setIpFilter] = useState('');
  const [sort, setSort] = useState<{ key: SortKey; descending: boolean }>({ key: 'host', descending: false });
  const [selectedHost, setSelectedHost] = useState<number>();
  const [logBump, setLogBump] = useState(0);
  const [copied, setCopied] = useState('');
  const [showDiff, setShowDiff] = useState(false);
  const { bk_scope_type, bk_scope_id } = scope.params;

  const load = useCallback(async () => {
    try {
      const tbl = await api.read<HostTable>('get_step_host_table', {
        bk_scope_type,
        bk_scope_id,
        job_instance_id: jobId,
        step_instance_id: stepId,
        ...(attempt !== undefined ? { execute_count: attempt } : {}),
      });
      setTable(tbl);
      setError(undefined);
    } catch (err) {
      setError(err);
    }
  }, [bk_scope_type, bk_scope_id, jobId, stepId, attempt]);
  useEffect(() => {
    setTable(undefined);
    void load();
  }, [load]);

  const reloader = useRef(throttle(() => void load(), 1000));
  useEffect(() => {
    reloader.current.cancel();
    reloader.current = throttle(() => void load(), 1000);
    return () => reloader.current.cancel();
  }, [load]);

  const indexOfHost = useMemo(() => {
    const m = new Map<number, number>();
    table?.hosts.bk_host_id.forEach((id, i) => m.set(id, i));
    return m;
  }, [table]);

  const onEvent = useCallback(
    (type: JobEventType, data: JobEventData) => {
      if (type === 'job' || type === 'end') reloadJob();
      if (type === 'end') {
        reloader.current.call();
        return;
      }
      if (data.step_instance_id !== undefined && data.step_instance_id !== stepId) return;
      const following = attempt === undefined;
      if (type === 'step' || type === 'batch') {
        reloadJob();
        if (following) reloader.current.call();
      } else if (type === 'host' && following) {
        const i = indexOfHost.get(Number(data.bk_host_id));
        if (table && i !== undefined && data.execute_count === table.execute_count) {
          // Applied at once, so counts move as hosts finish; output groups follow with the reload.
          const h = table.hosts;
          h.status[i] = Number(data.status);
          if (data.exit_code !== undefined) h.exit_code[i] = data.exit_code as number | null;
          if (data.start_time !== undefined) h.start_time[i] = data.start_time as number | null;
          if (data.end_time !== undefined) h.end_time[i] = data.end_time as number | null;
          setTable({ ...table });
        }
        reloader.current.call();
      } else if (type === 'log' && following) {
        if (Number(data.bk_host_id) === selectedHost) setLogBump((n) => n + 1);
      } else if (type === 'coalesced' && following) {
        reloader.current.call();
        setLogBump((n) => n + 1);
      }
    },
    [stepId, attempt, indexOfHost, table, selectedHost, reloadJob],
  );
  const jobRunning = job ? !job.finished : true;
  // Opened once the job is known to be unfinished: a finished job's stream would only replay history.
  useJobStream(scope.params, jobId, onEvent, job !== undefined && !job.finished);

  const groups = useMemo(() => (table ? statusGroups(table) : []), [table]);
  const group = groups.find((g) => g.key === groupKey) ?? groups[0];
  // A group that disappeared while the step runs falls back to the first one (as BK-JOB does).
  useEffect(() => {
    if (group && group.key !== groupKey) setGroupKey(group.key);
  }, [group, groupKey]);
  useEffect(() => {
    if (outputGroup !== undefined && group && !group.outputGroups.includes(outputGroup))
      setOutputGroup(undefined);
  }, [group, outputGroup]);

  const rows = useMemo(
    () =>
      table
        ? groupRows(table, group, outputGroup, {
            batch,
            search: ipFilter,
            sort: sort.key,
            descending: sort.descending,
          })
        : [],
    [table, group, outputGroup, batch, ipFilter, sort],
  );
  const selectedIndex = selectedHost !== undefined ? indexOfHost.get(selectedHost) : undefined;
  useEffect(() => {
    if (!table || rows.length === 0) return;
    if (selectedIndex === undefined || !rows.includes(selectedIndex))
      setSelectedHost(table.hosts.bk_host_id[rows[0] ?? 0]);
  }, [table, rows, selectedIndex]);

  const stepSummary = job?.step_instance_list.find((s) => s.step_instance_id === stepId);
  const stepIndex = job ? job.step_instance_list.findIndex((s) => s.step_instance_id === stepId) : -1;
  const canOperate = reaches(scope.role, 'operator');
  const batches = useMemo(() => (table ? batchCounts(table) : new Map()), [table]);

  function outputGroupLabel(og: OutputGroupInfo, i: number) {
    return t('step.outputGroup', {
      n: i + 1,
      status: hostStatus(og.status).label,
      exit: og.exit_code ?? '—',
      hosts: formatNumber(og.host_count),
    });
  }

  async function copyIps(withCloud: boolean) {
    if (!table) return;
    const h = table.hosts;
    const text = rows.map((i) => (withCloud ? `${h.bk_cloud_id[i]}:${h.ip[i]}` : (h.ip[i] ?? ''))).join('\n');
    await copyText(text);
    setCopied(t('common.copied', { n: formatNumber(rows.length) }));
  }

  function setAttempt(n: number | undefined) {
    const next = new URLSearchParams(search);
    if (n === undefined) next.delete('attempt');
    else next.set('attempt', String(n));
    setSearch(next, { replace: true });
  }

  const h = table?.hosts;
  const sortButton = (key: SortKey, label: string) => (
    <button
      type="button"
      className="sort"
      aria-pressed={sort.key === key}
      onClick={() =>
        setSort((s) => ({ key, descending: s.key === key ? !s.descending : key === 'duration' }))
      }
    >
      {label}
      {sort.key === key ? (sort.descending ? ' ▼' : ' ▲') : ''}
    </button>
  );

  return (
    <div className="step-page">
      <nav className="breadcrumb small" aria-label={t('step.breadcrumb')}>
        <Link to={scope.path('jobs')}>{t('nav.history')}</Link> ›{' '}
        <Link to={scope.path(`jobs/${jobId}`)}>
          {job?.job_instance.name ?? t('job.title', { id: jobId })}
        </Link>
      </nav>
      <header className="step-header">
        <h1>
          {stepIndex >= 0 && job
            ? t('step.position', { i: stepIndex + 1, n: job.step_instance_list.length })
            : ''}{' '}
          {stepSummary?.name ?? t('step.title', { id: stepId })}
        </h1>
        {table ? <RunStatusBadge status={table.status} /> : null}
        {stepSummary ? <span className="muted">{STEP_TYPES[stepSummary.type] ?? ''}</span> : null}
        {stepSummary ? (
          <span className="muted">
            {formatDuration(
              stepSummary.total_time ?? (stepSummary.start_time ? Date.now() - stepSummary.start_time : null),
            )}
          </span>
        ) : null}
        {table && table.step_execute_count > 0 ? (
          <label className="inline">
            {t('step.attempt')}
            <select
              value={attempt === undefined ? 'latest' : String(attempt)}
              onChange={(e) => setAttempt(e.target.value === 'latest' ? undefined : Number(e.target.value))}
            >
              <option value="latest">{t('step.attemptLatest', { n: table.step_execute_count + 1 })}</option>
              {Array.from({ length: table.step_execute_count + 1 }, (_, i) => (
                <option key={i} value={i}>
                  {t('step.attemptN', { n: i + 1 })}
                </option>
              ))}
            </select>
          </label>
        ) : null}
      </header>
      <ApiError error={jobError ?? error} onRetry={() => void load()} />
      {table && canOperate ? (
        <StepOperations
          scopeParams={scope.params}
          jobId={jobId}
          stepId={stepId}
          status={table.status}
          type={stepSummary?.type ?? 1}
          rolling={table.current_batch > 0}
          jobRunning={jobRunning && !isRunFinished(job?.job_instance.status ?? 2)}
          onDone={() => {
            setAttempt(undefined);
            reloadJob();
            void load();
          }}
        />
      ) : null}
      {table && stepSummary ? (
        <StepPanels
          scopeParams={scope.params}
          jobId={jobId}
          stepId={stepId}
          stepType={stepSummary.type}
          executeCount={table.execute_count}
          hostCount={table.hosts.bk_host_id.length}
          host={
            selectedIndex !== undefined
              ? { id: selectedHost ?? 0, ip: table.hosts.ip[selectedIndex] ?? '' }
              : undefined
          }
          version={table.status}
          running={!isRunFinished(table.status)}
        />
      ) : null}
      {batches.size > 0 ? (
        <div className="batch-strip" role="group" aria-label={t('step.batches')}>
          <button type="button" aria-pressed={batch === 0} onClick={() => setBatch(0)}>
            {t('common.all')}
          </button>
          {[...batches.entries()].map(([b, c]) => (
            <button
              key={b}
              type="button"
              aria-pressed={batch === b}
              className={`batch ${c.failed > 0 ? 'status-fail' : c.finished === c.total ? 'status-ok' : b === table?.current_batch ? 'status-run' : 'status-wait'}`}
              onClick={() => setBatch(b)}
              title={t('step.batchTitle', { b, finished: c.finished, total: c.total, failed: c.failed })}
            >
              {t('step.batch', { b })}{' '}
              <span className="small">
                {c.finished}/{c.total}
              </span>
            </button>
          ))}
        </div>
      ) : null}
      {!table && !error ? <p className="muted">{t('app.loading')}</p> : null}
      {table && h ? (
        <>
          <div className="group-tabs" role="tablist" aria-label={t('step.groups')}>
            {groups.map((g) => (
              <button
                key={g.key}
                type="button"
                role="tab"
                aria-selected={g.key === group?.key}
                className={`group-tab status-${hostStatus(g.status).tone}`}
                onClick={() => {
                  setGroupKey(g.key);
                  setOutputGroup(undefined);
                }}
              >
                {statusGroupLabel(g)} <span className="count">{formatNumber(g.count)}</span>
              </button>
            ))}
          </div>
          {group && group.outputGroups.length > 1 ? (
            <div className="output-groups" role="group" aria-label={t('step.outputGroups')}>
              <button
                type="button"
                aria-pressed={outputGroup === undefined}
                onClick={() => setOutputGroup(undefined)}
              >
                {t('step.allOutputs', { n: group.outputGroups.length })}
              </button>
              {group.outputGroups.map((i) => {
                const og = table.output_groups[i] as OutputGroupInfo;
                return (
                  <button
                    key={og.group_id}
                    type="button"
                    aria-pressed={outputGroup === i}
                    onClick={() => setOutputGroup(i)}
                  >
                    {t('step.outputN', { n: group.outputGroups.indexOf(i) + 1 })}{' '}
                    <span className="count">{formatNumber(og.host_count)}</span>
                  </button>
                );
              })}
            </div>
          ) : null}
          <div className="step-body">
            <section className="host-pane" aria-label={t('step.hosts')}>
              <div className="host-tools">
                <input
                  type="search"
                  value={ipFilter}
                  onChange={(e) => setIpFilter(e.target.value)}
                  placeholder={t('step.searchIp')}
                  aria-label={t('step.searchIp')}
                />
                <button type="button" onClick={() => void copyIps(false)}>
                  {t('step.copyIps')}
                </button>
                <button type="button" onClick={() => void copyIps(true)}>
                  {t('step.copyCloudIps')}
                </button>
                <button type="button" onClick={() => setShowDiff((d) => !d)} aria-expanded={showDiff}>
                  {t('diff.title')}
                </button>
                <span className="small muted" role="status">
                  {copied}
                </span>
              </div>
              <div className="host-head" role="presentation">
                {sortButton('ip', t('step.colIp'))}
                <span>{t('step.colStatus')}</span>
                {sortButton('exit_code', t('step.colExit'))}
                {sortButton('duration', t('step.colDuration'))}
                {sortButton('host', t('step.colHost'))}
              </div>
              <VirtualRows
                label={t('step.hostList', { n: rows.length })}
                count={rows.length}
                rowHeight={ROW}
                height="min(60vh, 520px)"
                className="host-list"
                row={(r) => {
                  const i = rows[r] ?? 0;
                  const id = h.bk_host_id[i] ?? 0;
                  return (
                    <button
                      type="button"
                      className={`host-row${id === selectedHost ? ' selected' : ''}`}
                      aria-current={id === selectedHost}
                      onClick={() => setSelectedHost(id)}
                    >
                      <span className="mono">{h.ip[i]}</span>
                      <HostStatusBadge status={h.status[i] ?? 0} />
                      <span>{isHostFinished(h.status[i] ?? 0) ? (h.exit_code[i] ?? '—') : '…'}</span>
                      <span>{formatDuration(duration(table, i))}</span>
                      <span className="muted">{id}</span>
                    </button>
                  );
                }}
              />
              <p className="small muted">
                {t('step.showing', {
                  n: formatNumber(rows.length),
                  total: formatNumber(h.bk_host_id.length),
                })}
              </p>
            </section>
            <div className="log-pane">
              {showDiff ? (
                <DiffPanel
                  scopeParams={scope.params}
                  jobId={jobId}
                  stepId={stepId}
                  executeCount={table.execute_count}
                  choices={diffChoices(
                    table.output_groups,
                    (og) => outputGroupLabel(og, table.output_groups.indexOf(og)),
                    selectedIndex !== undefined
                      ? { id: selectedHost ?? 0, ip: h.ip[selectedIndex] ?? '' }
                      : undefined,
                    table.step_execute_count,
                  )}
                  onClose={() => setShowDiff(false)}
                />
              ) : null}
              {selectedHost !== undefined && selectedIndex !== undefined ? (
                <LogPanel
                  scopeParams={scope.params}
                  target={{
                    jobId,
                    stepId,
                    executeCount: table.execute_count,
                    hostId: selectedHost,
                    ip: h.ip[selectedIndex] ?? '',
                  }}
                  running={!isHostFinished(h.status[selectedIndex] ?? 0)}
                  bump={logBump}
                />
              ) : (
                <p className="muted">{t('step.noHost')}</p>
              )}
            </div>
          </div>
        </>
      ) : null}
    </div>
  );
}
