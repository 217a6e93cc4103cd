/**
 * The target picker: paste addresses (ip, cloud:ip, host ids, ranges like 10.0.1.[1-40]); they
 * are resolved in one request (resolve_hosts) to the scope's hosts with their agent status, and
 * what is unknown, of another scope or not an address is listed apart. Typing is never blocked:
 * resolution runs 400 ms after the last change, and a newer paste cancels an older request.
 *
 * The hosts handed to the page always belong to the text on screen: from the first keystroke
 * until the new text is resolved, and after a failed resolution or over-long list, the page gets
 * `null`, so it cannot launch on a host the person has just taken out of the list.
 */
import { useEffect, useRef, useState } from 'react';
import { api } from '../api/client';
import { formatNumber, t } from '../i18n';
import { MAX_ENTRIES, parseTargets } from '../model/targets';
import { ApiError } from './api-error';
import { VirtualRows } from './virtual-rows';

export interface ResolvedHost {
  bk_host_id: number;
  bk_cloud_id: number;
  ip: string;
  hostname: string;
  agent_status: number;
  agent_version: string;
  last_heartbeat: number | null;
}

interface Resolution {
  hosts: ResolvedHost[];
  unknown: string[];
  other_scope: string[];
  invalid: string[];
  duplicates: string[];
}

export function TargetPicker({
  scopeParams,
  value,
  onText,
  onHosts,
}: {
  scopeParams: { bk_scope_type: string; bk_scope_id: string };
  value: string;
  onText: (text: string) => void;
  /** The resolved hosts of `value`, or null while there are none to launch on yet (see above). */
  onHosts: (hosts: ResolvedHost[] | null) => void;
}) {
  const [res, setRes] = useState<Resolution>();
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const [tooMany, setTooMany] = useState(false);
  const [attempt, setAttempt] = useState(0);
  const seq = useRef(0);
  const hostsCallback = useRef(onHosts);
  hostsCallback.current = onHosts;
  const { bk_scope_type, bk_scope_id } = scopeParams;

  useEffect(() => {
    const mine = ++seq.current;
    const settle = (r: Resolution | undefined, err: unknown, over: boolean, hosts: ResolvedHost[] | null) => {
      setRes(r);
      setError(err);
      setTooMany(over);
      setBusy(false);
      hostsCallback.current(hosts);
    };
    if (!value.trim()) {
      settle(undefined, undefined, false, []);
      return undefined;
    }
    hostsCallback.current(null);
    setBusy(true);
    const timer = setTimeout(() => {
      const { entries, tooMany: over } = parseTargets(value);
      // Running on the first 50,000 of a longer list would leave the rest out unannounced.
      if (over) settle(undefined, undefined, true, null);
      else if (entries.length === 0) settle(undefined, undefined, false, []);
      else
        api.call<Resolution>('resolve_hosts', { bk_scope_type, bk_scope_id, entries }).then(
          (r) => {
            if (mine === seq.current) settle(r, undefined, false, r.hosts);
          },
          (err: unknown) => {
            if (mine === seq.current) settle(undefined, err, false, null);
          },
        );
    }, 400);
    return () => clearTimeout(timer);
  }, [value, bk_scope_type, bk_scope_id, attempt]);

  const abnormal = res ? res.hosts.filter((h) => h.agent_status !== 1).length : 0;
  const problems = res ? [...res.unknown, ...res.other_scope, ...res.invalid] : [];
  return (
    <div className="target-picker">
      <label>
        {t('targets.label')}
        <textarea
          className="mono"
          rows={5}
          value={value}
          spellCheck={false}
          placeholder={t('targets.placeholder')}
          onChange={(e) => {
            // Withdrawn in the same update as the text: no render shows new text with the old hosts.
            hostsCallback.current(null);
            onText(e.target.value);
          }}
          aria-describedby="target-summary"
        />
      </label>
      <p id="target-summary" className="small" aria-live="polite">
        {busy ? t('targets.resolving') : null}
        {tooMany && !busy ? (
          <span className="status-fail-text">{t('targets.tooMany', { max: formatNumber(MAX_ENTRIES) })}</span>
        ) : null}
        {error !== undefined && !busy ? t('targets.failed') : null}
        {res && !busy
          ? t('targets.summary', {
              hosts: res.hosts.length,
              ok: res.hosts.length - abnormal,
              abnormal,
              unknown: res.unknown.length,
              other: res.other_scope.length,
              invalid: res.invalid.length,
              duplicates: res.duplicates.length,
            })
          : null}
      </p>
      <ApiError error={busy ? undefined : error} onRetry={() => setAttempt((n) => n + 1)} />
      {res && res.hosts.length > 0 ? (
        <VirtualRows
          label={t('targets.resolved')}
          count={res.hosts.length}
          rowHeight={26}
          height={`${Math.min(res.hosts.length, 8) * 26 + 2}px`}
          className={busy ? 'target-list stale' : 'target-list'}
          row={(i) => {
            const h = res.hosts[i] as ResolvedHost;
            return (
              <div className="target-row">
                <span className="mono">
                  {h.bk_cloud_id}:{h.ip}
                </span>
                <span className="muted">{h.hostname}</span>
                <span className={`status status-${h.agent_status === 1 ? 'ok' : 'fail'}`}>
                  {h.agent_status === 1 ? t('targets.agentOk') : t('targets.agentAbnormal')}
                </span>
              </div>
            );
          }}
        />
      ) : null}
      {problems.length > 0 ? (
        <div className={busy ? 'target-problems stale' : 'target-problems'} role="status">
          <strong>{t('targets.problems', { n: problems.length })}</strong>
          <VirtualRows
            label={t('targets.problemList')}
            count={problems.length}
            rowHeight={24}
            height={`${Math.min(problems.length, 5) * 24 + 2}px`}
            row={(i) => {
              const e = problems[i] ?? '';
              const why = res?.unknown.includes(e)
                ? t('targets.unknown')
                : res?.other_scope.includes(e)
                  ? t('targets.otherScope')
                  : t('targets.invalid');
              return (
                <div className="target-row">
                  <span className="mono">{e}</span>
                  <span className="status status-fail">{why}</span>
                </div>
              );
            }}
          />
        </div>
      ) : null}
    </div>
  );
}
