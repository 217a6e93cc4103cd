/**
 * Per-scope quotas on what runs at once: running jobs, and hosts in running jobs. Checked when
 * a job is accepted, against the store, so every server of a cluster sees the same counts;
 * submissions racing each other on different servers can pass a limit by the few in flight.
 */
import type { EndpointContext } from './endpoint.js';
import { ApiError } from './error-catalogue.js';

/** What runs in the caller's scope now: jobs, and hosts in them (0 where no limit is set). */
export async function readScopeUsage(ctx: EndpointContext): Promise<[number, number]> {
  const { maxRunningJobsPerScope: maxJobs, maxRunningHostsPerScope: maxHosts } = ctx.services.config;
  const quotas = ctx.services.store.quotas;
  const scopeType = ctx.scope.type;
  const scopeId = String(ctx.scope.id);
  // Both counts at once: one round trip on PostgreSQL on the way to accepting the job.
  return Promise.all([
    maxJobs > 0 ? quotas.runningJobs(scopeType, scopeId) : 0,
    maxHosts > 0 ? quotas.runningHosts(scopeType, scopeId) : 0,
  ]);
}

/** `usage`: readScopeUsage's answer when the caller read it earlier, alongside other reads. */
export async function assertScopeQuota(
  ctx: EndpointContext,
  hostCount: number,
  usage: Promise<[number, number]> = readScopeUsage(ctx),
): Promise<void> {
  const { maxRunningJobsPerScope: maxJobs, maxRunningHostsPerScope: maxHosts } = ctx.services.config;
  const scopeType = ctx.scope.type;
  const scopeId = String(ctx.scope.id);
  const [jobs, hosts] = await usage;
  if (maxJobs > 0 && jobs >= maxJobs) {
    throw new ApiError('RUNNING_JOB_EXCEED_RESOURCE_SCOPE_QUOTA_LIMIT', {
      scopeType,
      scopeId,
      running: jobs,
      limit: maxJobs,
    });
  }
  if (maxHosts > 0 && hosts + hostCount > maxHosts) {
    throw new ApiError('RUNNING_HOSTS_EXCEED_SCOPE_QUOTA', {
      scopeType,
      scopeId,
      running: hosts,
      count: hostCount,
      limit: maxHosts,
    });
  }
}
