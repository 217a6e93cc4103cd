/**
 * A step's result: BK-JOB's status-and-tag groups with counts, Jobfleet's output groups inside
 * them, the group's hosts (virtualised, sorted by duration, exit code, IP or host id, filtered by
 * IP, copyable), one host's log followed by offset, the attempt selector, the rolling batch
 * strip, the step's operations and diffs between groups, hosts and attempts.
 *
 * The page paints from get_step_host_summary: the groups with their counts and the first rows of
 * each group, filtered and sorted by the server, so a 10,000-host step costs a reply of a few
 * dozen rows. The rest of a group is read page by page as it is scrolled to. The job's event
 * stream moves the counts at once (each host event's from_status → status, a coalesced message's
 * status_delta) and patches the rows on screen; the summary is read again at most once a second
 * while events arrive, to file hosts into tag and output groups. Logs are never fetched whole.
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
import { useReadOrder } from '../../resources/use-load';
import { useScope } from '../../session/scope';
import { reaches } from '../../session/session';
import { DiffPanel, diffChoices } from './diff-panel';
import { duration, groupKey } from './host-summary';
import type { HostRow, OutputGroupInfo, SortKey, StepHostSummary, SummaryGroup } from './host-summary';
import { useJobSummary } from './job-summary';
import { LogPanel } from './log-panel';
import { StepOperations } from './step-operations';
import { StepPanels } from './step-panels';
import { useHostPages } from './use-host-pages';

const ROW = 30;
/** Rows of each group that come with the summary: more than a tall window shows. */
const FIRST_ROWS = 60;

function statusGroupLabel(g: SummaryGroup): string {
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
  const [summary, setSummary] = useState<StepHostSummary>();
  const [generation, setGeneration] = useState(0);
  const [error, setError] = useState<unknown>();
  const [selectedGroup, setSelectedGroup] = useState<string>();
  const [outputGroup, setOutputGroup] = useState<string>();
  const [batch, setBatch] = useState(0);
  const [ipFilter, setIpFilter] = useState('');
  const [sort, setSort] = useState<{ key: SortKey; descending: boolean }>({ key: 'host', descending: false });
  const [selected, setSelected] = useState<HostRow>();
  const [logBump, setLogBump] = useState(0);
  const [copied, setCopied] = useState('');
  const [showDiff, setShowDiff] = useState(false);
  const { bk_scope_type, bk_scope_id } = scope.params;

  const stepParams = useMemo(
    () => ({
      bk_scope_type,
      bk_scope_id,
      job_instance_id: jobId,
      step_instance_id: stepId,
      ...(attempt !== undefined ? { execute_count: attempt } : {}),
      ...(batch > 0 ? { batch } : {}),
      ...(ipFilter.trim() ? { ip: ipFilter.trim() } : {}),
      sort: sort.key,
      order: sort.descending ? 'desc' : 'asc',
    }),
    [bk_scope_type, bk_scope_id, jobId, stepId, attempt, batch, ipFilter, sort],
  );

  // A reply for an older IP filter (or sort, batch, attempt) is dropped, and so is a live
  // reload's reply that a later read overtook (ReadOrder).
  const reads = useReadOrder();
  const load = useCallback(async () => {
    const got = await reads.read((signal) =>
      api.read<StepHostSummary>('get_step_host_summary', { ...stepParams, limit: FIRST_ROWS }, signal),
    );
    if (!got) return;
    if ('error' in got) {
      setError(got.error);
      return;
    }
    setSummary(got.value);
    setGeneration((n) => n + 1);
    setError(undefined);
  }, [stepParams, reads]);
  useEffect(() => {
    void load();
    return () => reads.abortAll();
  }, [load, reads]);
  // Another attempt is another set of groups: nothing of the old one is shown meanwhile.
  useEffect(() => setSummary(undefined), [attempt]);

  const reloader = useRef(throttle(() => void load(), 1000));
  useEffect(() => {
    reloader.current.cancel();
    reloader.current = throttle(() => void load(), 1000);
    return () => reloader.current.cancel();
  }, [load]);

  const groups = summary?.groups ?? [];
  // Until a person picks a group the first one shows (failures come first, so a failure that
  // appears while the step runs takes the view); a picked group that disappeared falls back to
  // the first one too, as BK-JOB does.
  const group = groups.find((g) => groupKey(g) === selectedGroup) ?? groups[0];
  useEffect(() => {
    if (outputGroup !== undefined && group && !group.output_groups.includes(outputGroup))
      setOutputGroup(undefined);
  }, [group, outputGroup]);

  const listParams = useMemo(
    () =>
      group
        ? {
            ...stepParams,
            status: group.status,
            tag: group.tag,
            ...(outputGroup !== undefined ? { output_group_id: outputGroup } : {}),
          }
        : stepParams,
    [stepParams, group?.status, group?.tag, outputGroup],
  );
  const listKey = JSON.stringify(listParams);
  const list = useHostPages({
    key: listKey,
    params: listParams,
    generation,
    ready: group !== undefined,
    first:
      group && outputGroup === undefined && group.matched_count !== null
        ? { rows: group.hosts, total: group.matched_count }
        : undefined,
  });
  const rowCount = list.total ?? 0;

  // A new list selects its first host; a refresh of the same list keeps the selection.
  const selectedFor = useRef('');
  const firstRow = list.rows[0];
  useEffect(() => {
    if (firstRow && selectedFor.current !== listKey) {
      selectedFor.current = listKey;
      setSelected(firstRow);
    }
  }, [firstRow, listKey]);

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
        if (summary && data.execute_count === summary.execute_count) {
          const to = Number(data.status);
          // The row changes at once; the group counts come with the next summary (read just
          // after): the stream replays the job's events from its start, so moving counts here
          // counted again changes the summary already held.
          const change: Partial<HostRow> = { status: to };
          if (data.exit_code !== undefined) change.exit_code = data.exit_code as number | null;
          if (data.start_time !== undefined) change.start_time = data.start_time as number | null;
          if (data.end_time !== undefined) change.end_time = data.end_time as number | null;
          const hostId = Number(data.bk_host_id);
          list.patch(hostId, change);
          if (selected?.bk_host_id === hostId) setSelected({ ...selected, ...change });
        }
        reloader.current.call();
      } else if (type === 'log' && following) {
        if (Number(data.bk_host_id) === selected?.bk_host_id) setLogBump((n) => n + 1);
      } else if (type === 'coalesced' && following) {
        // As for host events: the counts come with the summary read next.
        reloader.current.call();
        setLogBump((n) => n + 1);
      }
    },
    [stepId, attempt, summary, list, selected, reloadJob],
  );
  const jobRunning = job ? !job.finished : true;
  // Opened once the job is known to be unfinished: a finished job's stream would only replay history.
  const onPoll = useCallback(() => {
    reloadJob();
    void load();
  }, [reloadJob, load]);
  useJobStream(scope.params, jobId, onEvent, job !== undefined && !job.finished, onPoll);

  const stepSummary = job?.step_instance_list.find((s) => s.step_instance_id === stepId);
  const stepIndex = job ? job.step_instance_list.findIndex((s) => s.step_instance_id === stepId) : -1;
  const canOperate = reaches(scope.role, 'operator');
  const outputById = useMemo(
    () => new Map((summary?.output_groups ?? []).map((og) => [og.group_id, og])),
    [summary],
  );

  function outputGroupLabel(og: OutputGroupInfo, i: number) {
    return t('step.outputGroup', {
      n: i + 1,
      status: hostStatus(og.status).label,
      exit: og.exit_code ?? '—',
      hosts: formatNumber(og.host_count),
    });
  }

  // The whole list (every page of it) in one read: copying is rare and wants every host.
  async function copyIps(withCloud: boolean) {
    if (!group) return;
    try {
      const reply = await api.read<StepHostSummary>('get_step_host_summary', {
        ...listParams,
        limit: Math.max(1, group.host_count),
      });
      const rows = reply.groups.find((g) => g.matched_count !== null)?.hosts ?? [];
      await copyText(rows.map((r) => (withCloud ? `${r.bk_cloud_id}:${r.ip}` : r.ip)).join('\n'));
      setCopied(t('common.copied', { n: formatNumber(rows.length) }));
    } catch (err) {
      setError(err);
    }
  }

  function setAttempt(n: number | undefined) {
    const next = new URLSearchParams(search);
    if (n === undefined) next.delete('attempt');
    else next.set('attempt', String(n));
    setSearch(next, { replace: true });
  }

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
        {summary ? <RunStatusBadge status={summary.status} /> : null}
        {stepSummary ? <span className="muted">{STEP_TYPES[stepSummary.type] ?? ''}</span> : null}
        {stepSummary ? (
          <span className="muted">
            {formatDuration(
              stepSummary.total_time ?? (stepSummary.start_time ? Date.now() - stepSummary.start_time : null),
            )}
          </span>
        ) : null}
        {summary && summary.step_execute_count > 0 ? (
          <label className="inline">
            {t('step.attempt')}
            <select
              value={attempt === undefined ? 'latest' : String(attempt)}
              onChange={(e) => setAttempt(e.target.value === 'latest' ? undefined : Number(e.target.value))}
            >
              <option value="latest">{t('step.attemptLatest', { n: summary.step_execute_count + 1 })}</option>
              {Array.from({ length: summary.step_execute_count + 1 }, (_, i) => (
                <option key={i} value={i}>
                  {t('step.attemptN', { n: i + 1 })}
                </option>
              ))}
            </select>
          </label>
        ) : null}
      </header>
      <ApiError error={jobError ?? error ?? list.error} onRetry={() => void load()} />
      {summary && canOperate ? (
        <StepOperations
          scopeParams={scope.params}
          jobId={jobId}
          stepId={stepId}
          status={summary.status}
          type={stepSummary?.type ?? 1}
          rolling={summary.current_batch > 0}
          jobRunning={jobRunning && !isRunFinished(job?.job_instance.status ?? 2)}
          onDone={() => {
            setAttempt(undefined);
            reloadJob();
            void load();
          }}
        />
      ) : null}
      {summary && stepSummary ? (
        <StepPanels
          scopeParams={scope.params}
          jobId={jobId}
          stepId={stepId}
          stepType={stepSummary.type}
          executeCount={summary.execute_count}
          hostCount={summary.host_count}
          host={selected ? { id: selected.bk_host_id, ip: selected.ip } : undefined}
          version={summary.status}
          running={!isRunFinished(summary.status)}
        />
      ) : null}
      {summary && summary.batches.length > 0 ? (
        <div className="batch-strip" role="group" aria-label={t('step.batches')}>
          <button type="button" aria-pressed={batch === 0} onClick={() => setBatch(0)}>
            {t('common.all')}
          </button>
          {summary.batches.map(({ batch: b, host_count: total, finished, failed }) => (
            <button
              key={b}
              type="button"
              aria-pressed={batch === b}
              className={`batch ${failed > 0 ? 'status-fail' : finished === total ? 'status-ok' : b === summary.current_batch ? 'status-run' : 'status-wait'}`}
              onClick={() => setBatch(b)}
              title={t('step.batchTitle', { b, finished, total, failed })}
            >
              {t('step.batch', { b })}{' '}
              <span className="small">
                {finished}/{total}
              </span>
            </button>
          ))}
        </div>
      ) : null}
      {!summary && !error ? <p className="muted">{t('app.loading')}</p> : null}
      {summary ? (
        <>
          <div className="group-tabs" role="tablist" aria-label={t('step.groups')}>
            {groups.map((g) => (
              <button
                key={groupKey(g)}
                type="button"
                role="tab"
                aria-selected={g === group}
                className={`group-tab status-${hostStatus(g.status).tone}`}
                onClick={() => {
                  setSelectedGroup(groupKey(g));
                  setOutputGroup(undefined);
                }}
              >
                {statusGroupLabel(g)} <span className="count">{formatNumber(g.host_count)}</span>
              </button>
            ))}
          </div>
          {group && group.output_groups.length > 1 ? (
            <div className="output-groups" role="group" aria-label={t('step.outputGroups')}>
              <button
                type="button"
                aria-pressed={outputGroup === undefined}
                onClick={() => setOutputGroup(undefined)}
              >
                {t('step.allOutputs', { n: group.output_group_count ?? group.output_groups.length })}
              </button>
              {group.output_groups.map((id, n) => {
                const og = outputById.get(id);
                return (
                  <button
                    key={id}
                    type="button"
                    aria-pressed={outputGroup === id}
                    onClick={() => setOutputGroup(id)}
                  >
                    {t('step.outputN', { n: n + 1 })}{' '}
                    <span className="count">{formatNumber(og?.host_count ?? 0)}</span>
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
                label={t('step.hostList', { n: rowCount })}
                count={rowCount}
                onRange={list.want}
                rowHeight={ROW}
                height="min(60vh, 520px)"
                className="host-list"
                row={(r) => {
                  const row = list.rows[r];
                  if (!row) return <div className="host-row pending" aria-busy="true" />;
                  const id = row.bk_host_id;
                  return (
                    <button
                      type="button"
                      className={`host-row${id === selected?.bk_host_id ? ' selected' : ''}`}
                      aria-current={id === selected?.bk_host_id}
                      onClick={() => setSelected(row)}
                    >
                      <span className="mono">{row.ip}</span>
                      <HostStatusBadge status={row.status} />
                      <span>{isHostFinished(row.status) ? (row.exit_code ?? '—') : '…'}</span>
                      <span>{formatDuration(duration(row))}</span>
                      <span className="muted">{id}</span>
                    </button>
                  );
                }}
              />
              <p className="small muted">
                {t('step.showing', {
                  n: formatNumber(rowCount),
                  total: formatNumber(summary.host_count),
                })}
              </p>
            </section>
            <div className="log-pane">
              {showDiff ? (
                <DiffPanel
                  scopeParams={scope.params}
                  jobId={jobId}
                  stepId={stepId}
                  executeCount={summary.execute_count}
                  choices={diffChoices(
                    summary.output_groups,
                    (og) => outputGroupLabel(og, summary.output_groups.indexOf(og)),
                    selected ? { id: selected.bk_host_id, ip: selected.ip } : undefined,
                    summary.step_execute_count,
                  )}
                  onClose={() => setShowDiff(false)}
                />
              ) : null}
              {selected ? (
                <LogPanel
                  scopeParams={scope.params}
                  target={{
                    jobId,
                    stepId,
                    executeCount: summary.execute_count,
                    hostId: selected.bk_host_id,
                    ip: selected.ip,
                  }}
                  running={!isHostFinished(selected.status)}
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
