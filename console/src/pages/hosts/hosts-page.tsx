/**
 * Hosts and agents of the scope: a fleet table that stays quick at 10,000+ rows (only the rows
 * on screen are drawn), filtered by address or name, agent status and OS, with counts; select
 * hosts (one by one, or everything the filter shows) and "run on selection" opens the run-script
 * page with those hosts as its targets. Platform admins also see the agent trust actions.
 */
import { useVirtualizer } from '@tanstack/react-virtual';
import { useMemo, useRef, useState } from 'react';
import { useNavigate } from 'react-router';
import { api } from '../../api/client';
import { ApiError } from '../../components/api-error';
import { formatNumber, t } from '../../i18n';
import { formatTime } from '../../resources/format';
import { useAction, useLoad } from '../../resources/use-load';
import { useScope } from '../../session/scope';
import { reaches, useSession } from '../../session/session';

export interface FleetHost {
  bk_host_id: number;
  bk_cloud_id: number;
  ip: string;
  ipv6: string;
  hostname: string;
  os_type: string;
  bk_agent_id: string;
  agent_status: number;
  agent_version: string;
  last_heartbeat: number | null;
  agent_revoked_at: number | null;
}

interface FleetPage {
  total: number;
  agent_status_count: { normal: number; abnormal: number };
  data: FleetHost[];
}

const PAGE = 10_000;
const ROW = 34;

/** How the run-script page receives targets: one `ip` or `cloud:ip` per entry. */
export const hostAddress = (h: Pick<FleetHost, 'bk_cloud_id' | 'ip'>) =>
  h.bk_cloud_id ? `${h.bk_cloud_id}:${h.ip}` : h.ip;

export default function HostsPage() {
  const scope = useScope();
  const { me } = useSession();
  const navigate = useNavigate();
  const [keyword, setKeyword] = useState('');
  const [status, setStatus] = useState('');
  const [os, setOs] = useState('');
  const fleet = useLoad(
    async (signal) => {
      const params = { ...scope.params, keyword, agent_status: status, os_type: os, length: PAGE };
      const first = await api.read<FleetPage>('get_host_list', params, signal);
      const rows = [...first.data];
      while (rows.length < first.total) {
        const next = await api.read<FleetPage>('get_host_list', { ...params, start: rows.length }, signal);
        if (next.data.length === 0) break;
        rows.push(...next.data);
      }
      return { ...first, data: rows };
    },
    [scope.type, scope.id, keyword, status, os],
  );
  const hosts = useMemo(() => fleet.data?.data ?? [], [fleet.data]);
  const [selected, setSelected] = useState<Set<number>>(new Set());
  const scroller = useRef<HTMLDivElement>(null);
  const rows = useVirtualizer({
    count: hosts.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW,
    overscan: 12,
  });
  const action = useAction();
  const canRun = reaches(scope.role, 'operator');
  const platformAdmin = me?.platform_admin ?? false;

  const toggle = (id: number, on: boolean) =>
    setSelected((s) => {
      const n = new Set(s);
      if (on) n.add(id);
      else n.delete(id);
      return n;
    });
  const allShown = hosts.length > 0 && hosts.every((h) => selected.has(h.bk_host_id));
  // What a filter hides stays selected but is not run on: the button counts what it hands over.
  const shownSelected = useMemo(() => hosts.filter((h) => selected.has(h.bk_host_id)), [hosts, selected]);
  const runOnSelection = () => {
    void navigate(scope.path('run/script'), { state: { targets: shownSelected.map(hostAddress) } });
  };
  const trust = async (h: FleetHost, act: 'revoke' | 'readmit') => {
    if (act === 'revoke' && !window.confirm(t('hosts.revokeConfirm', { ip: h.ip }))) return;
    const r = await action.run(() => api.post(`/api/admin/agents/${h.bk_host_id}/${act}`));
    if (r !== undefined) fleet.reload();
  };
  const counts = fleet.data?.agent_status_count;

  return (
    <section aria-labelledby="hosts-title" className="hosts-page">
      <div className="page-head">
        <h1 id="hosts-title">{t('hosts.title')}</h1>
        {canRun ? (
          <button
            type="button"
            className="primary"
            disabled={shownSelected.length === 0}
            onClick={runOnSelection}
          >
            {t('hosts.runOnSelection', { n: formatNumber(shownSelected.length) })}
          </button>
        ) : null}
      </div>
      {counts ? (
        <p className="fleet-counts" aria-live="polite">
          <span className="state state-ok">{t('hosts.normal', { n: formatNumber(counts.normal) })}</span>{' '}
          <span className="state state-bad">{t('hosts.abnormal', { n: formatNumber(counts.abnormal) })}</span>{' '}
          <span className="muted">{t('hosts.shown', { n: formatNumber(hosts.length) })}</span>
        </p>
      ) : null}
      <form className="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <label>
          {t('hosts.keyword')}
          <input type="search" value={keyword} onChange={(e) => setKeyword(e.target.value)} />
        </label>
        <label>
          {t('hosts.agent')}
          <select value={status} onChange={(e) => setStatus(e.target.value)}>
            <option value="">{t('common.all')}</option>
            <option value="1">{t('hosts.agentOk')}</option>
            <option value="0">{t('hosts.agentBad')}</option>
          </select>
        </label>
        <label>
          {t('hosts.os')}
          <select value={os} onChange={(e) => setOs(e.target.value)}>
            <option value="">{t('common.all')}</option>
            <option value="linux">Linux</option>
            <option value="windows">Windows</option>
          </select>
        </label>
      </form>
      <ApiError error={fleet.error} onRetry={fleet.reload} />
      <ApiError error={action.error} />
      <div
        className="fleet-table"
        role="table"
        aria-label={t('hosts.table')}
        aria-rowcount={hosts.length + 1}
      >
        <div className="fleet-row fleet-head" role="row">
          <span role="columnheader">
            <input
              type="checkbox"
              aria-label={t('hosts.selectAll')}
              checked={allShown}
              onChange={(e) =>
                setSelected((s) => {
                  const n = new Set(s);
                  for (const h of hosts) {
                    if (e.target.checked) n.add(h.bk_host_id);
                    else n.delete(h.bk_host_id);
                  }
                  return n;
                })
              }
            />
          </span>
          <span role="columnheader">{t('hosts.address')}</span>
          <span role="columnheader">{t('hosts.hostname')}</span>
          <span role="columnheader">{t('hosts.os')}</span>
          <span role="columnheader">{t('hosts.agent')}</span>
          <span role="columnheader">{t('hosts.version')}</span>
          <span role="columnheader">{t('hosts.heartbeat')}</span>
          <span role="columnheader">{platformAdmin ? t('common.actions') : ''}</span>
        </div>
        <div className="fleet-body" ref={scroller}>
          <div style={{ height: rows.getTotalSize(), position: 'relative' }}>
            {rows.getVirtualItems().map((v) => {
              const h = hosts[v.index];
              if (!h) return null;
              return (
                <div
                  key={h.bk_host_id}
                  className="fleet-row"
                  role="row"
                  aria-rowindex={v.index + 2}
                  style={{
                    position: 'absolute',
                    top: 0,
                    left: 0,
                    right: 0,
                    height: ROW,
                    transform: `translateY(${v.start}px)`,
                  }}
                >
                  <span role="cell">
                    <input
                      type="checkbox"
                      aria-label={t('hosts.select', { ip: h.ip })}
                      checked={selected.has(h.bk_host_id)}
                      onChange={(e) => toggle(h.bk_host_id, e.target.checked)}
                    />
                  </span>
                  <span role="cell" className="mono">
                    {hostAddress(h)}
                  </span>
                  <span role="cell">{h.hostname}</span>
                  <span role="cell">{h.os_type}</span>
                  <span role="cell">
                    {h.agent_revoked_at ? (
                      <span className="state state-bad">{t('hosts.revoked')}</span>
                    ) : h.agent_status === 1 ? (
                      <span className="state state-ok">{t('hosts.agentOk')}</span>
                    ) : (
                      <span className="state state-bad">
                        {h.bk_agent_id ? t('hosts.agentBad') : t('hosts.noAgent')}
                      </span>
                    )}
                  </span>
                  <span role="cell">{h.agent_version}</span>
                  <span role="cell">{formatTime(h.last_heartbeat)}</span>
                  <span role="cell">
                    {platformAdmin && h.bk_agent_id ? (
                      h.agent_revoked_at ? (
                        <button type="button" onClick={() => void trust(h, 'readmit')}>
                          {t('hosts.readmit')}
                        </button>
                      ) : (
                        <button type="button" className="danger" onClick={() => void trust(h, 'revoke')}>
                          {t('hosts.revoke')}
                        </button>
                      )
                    ) : null}
                  </span>
                </div>
              );
            })}
          </div>
        </div>
      </div>
      {fleet.data && hosts.length === 0 ? <p className="muted">{t('hosts.empty')}</p> : null}
    </section>
  );
}
