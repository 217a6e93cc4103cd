import { hostStatus, runStatus } from '../model/statuses';

export function RunStatusBadge({ status }: { status: number }) {
  const s = runStatus(status);
  return <span className={`status status-${s.tone}`}>{s.label}</span>;
}

export function HostStatusBadge({ status }: { status: number }) {
  const s = hostStatus(status);
  return <span className={`status status-${s.tone}`}>{s.label}</span>;
}
