/** What a scope has running now, for the per-scope quotas checked before a job is accepted. */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

/** Job statuses that hold hosts: running and stopping (as the engine's active set). */
const ACTIVE = [2, 10];

export interface RunningLoad {
  jobs: number;
  /** Host tasks of the current attempt of every step of those jobs. */
  hosts: number;
}

export class QuotaStore {
  constructor(private readonly db: Kysely<Database>) {}

  async runningJobs(scopeType: string, scopeId: string): Promise<number> {
    const r = await this.db
      .selectFrom('job_instance')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('status', 'in', ACTIVE)
      .where('scope_type', '=', scopeType)
      .where('scope_id', '=', scopeId)
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  /** Counts host tasks of every step's current attempt: what a job's hosts are counted from. */
  private countCurrentTasks() {
    return this.db
      .selectFrom('host_task')
      .innerJoin('step_instance', (j) =>
        j
          .onRef('step_instance.id', '=', 'host_task.step_instance_id')
          .onRef('step_instance.execute_count', '=', 'host_task.execute_count'),
      )
      .select((eb) => eb.fn.countAll().as('n'));
  }

  /** The hosts a job counts for once it runs, as runningHosts counts them. */
  async hostsOfJob(jobInstanceId: number): Promise<number> {
    const r = await this.countCurrentTasks()
      .where('step_instance.job_instance_id', '=', jobInstanceId)
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  async runningHosts(scopeType: string, scopeId: string): Promise<number> {
    const r = await this.countCurrentTasks()
      .innerJoin('job_instance', 'job_instance.id', 'step_instance.job_instance_id')
      .where('job_instance.status', 'in', ACTIVE)
      .where('job_instance.scope_type', '=', scopeType)
      .where('job_instance.scope_id', '=', scopeId)
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }
}
