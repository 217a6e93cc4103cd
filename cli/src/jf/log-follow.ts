/**
 * Following host logs by byte offset: each host attempt (step, execute count, host) keeps the
 * offset it has printed up to, and a read asks only for what lies after it (`log_offset`,
 * answered with `log_next_offset` and `log_complete`). The event stream's `log` notices say
 * which hosts have new output; when polling, every host not complete is asked. Hosts at the
 * same offset share batch calls (`ApiClient.logBatches`). Lines are printed whole: a line still
 * being written waits for its end, or for its host to finish.
 */
import type { ApiClient, HostResult, JobStatus } from './api-client.js';
import type { JobEvent } from './job-events.js';
import { hostLabel } from './render.js';
import { isRunFinished } from './statuses.js';

interface HostLog {
  stepId: number;
  executeCount: number;
  hostId: number;
  next: number;
  partial: string;
  complete: boolean;
}

interface LogReply {
  script_task_logs:
    | {
        bk_host_id: number;
        log_content: string | null;
        log_next_offset?: number;
        log_total_bytes?: number;
        log_complete?: boolean;
      }[]
    | null;
}

const READ_BYTES = 4 * 1024 * 1024;

export class LogFollower {
  private readonly logs = new Map<string, HostLog>();
  private readonly dirty = new Set<string>();
  private readonly hosts = new Map<number, HostResult>();
  /** Hosts of each step, to mark when a coalesced message only counts log notices. */
  private readonly stepHosts = new Map<number, number[]>();
  /** File steps have no output to follow: their file lines are printed once the step is over. */
  private readonly fileSteps = new Map<number, 'running' | 'due' | 'printed'>();

  constructor(
    private readonly client: ApiClient,
    private readonly jobId: number,
    private readonly opts: {
      /** Only this step (else every step of the job). */
      stepId?: number | undefined;
      /** Which hosts to print. */
      include: (h: HostResult) => boolean;
      /** Whole lines of one host, joined by "\n" (no trailing newline). */
      emit: (host: string, text: string) => void;
    },
  ) {}

  private wanted(stepId: number, hostId: number): boolean {
    if (this.opts.stepId !== undefined && stepId !== this.opts.stepId) return false;
    const h = this.hosts.get(hostId);
    return h !== undefined && this.opts.include(h);
  }

  private mark(stepId: number, executeCount: number, hostId: number): void {
    if (!this.wanted(stepId, hostId)) return;
    const key = `${stepId}:${executeCount}:${hostId}`;
    let l = this.logs.get(key);
    if (!l) this.logs.set(key, (l = { stepId, executeCount, hostId, next: 0, partial: '', complete: false }));
    if (!l.complete) this.dirty.add(key);
  }

  /** Learns the hosts of the job (names and the steps they run in). */
  learn(st: JobStatus): void {
    for (const s of st.step_instance_list) {
      const list = s.step_ip_result_list ?? [];
      this.stepHosts.set(
        s.step_instance_id,
        list.map((h) => h.bk_host_id),
      );
      for (const h of list) this.hosts.set(h.bk_host_id, h);
      if (s.type === 2 && !this.fileSteps.has(s.step_instance_id))
        this.fileSteps.set(s.step_instance_id, 'running');
    }
  }

  private fileStepEnded(stepId: number, status: number): void {
    if (this.fileSteps.get(stepId) === 'running' && isRunFinished(status)) this.fileSteps.set(stepId, 'due');
  }

  /** Every started host of the snapshot that may have output not yet read. */
  markSnapshot(st: JobStatus): void {
    this.learn(st);
    for (const s of st.step_instance_list) {
      this.fileStepEnded(s.step_instance_id, s.status);
      if (s.status === 1) continue;
      for (const h of s.step_ip_result_list ?? [])
        if (h.status !== 5) this.mark(s.step_instance_id, s.execute_count, h.bk_host_id);
    }
  }

  async markEvents(events: JobEvent[]): Promise<void> {
    const unknown = events.some(
      (e) => e.event === 'log' && typeof e.data.bk_host_id === 'number' && !this.hosts.has(e.data.bk_host_id),
    );
    if (unknown) this.learn(await this.client.jobStatus(this.jobId));
    for (const e of events) {
      const d = e.data;
      if (e.event === 'step') this.fileStepEnded(Number(d.step_instance_id), Number(d.status));
      else if (e.event === 'log')
        this.mark(Number(d.step_instance_id), Number(d.execute_count), Number(d.bk_host_id));
      else if (e.event === 'coalesced' && Array.isArray(d.steps))
        for (const c of d.steps as Record<string, unknown>[]) {
          if (!c.log_notices) continue;
          for (const hostId of this.stepHosts.get(Number(c.step_instance_id)) ?? [])
            this.mark(Number(c.step_instance_id), Number(c.execute_count), hostId);
        }
    }
  }

  /** Reads every marked host from its offset and prints its new whole lines. */
  async flush(): Promise<void> {
    for (const [stepId, state] of this.fileSteps) {
      if (state !== 'due') continue;
      this.fileSteps.set(stepId, 'printed');
      const hostIds = (this.stepHosts.get(stepId) ?? []).filter((h) => this.wanted(stepId, h));
      for (const [hostId, text] of await this.client.hostLogs(this.jobId, stepId, hostIds)) {
        const h = this.hosts.get(hostId);
        if (h && text) this.opts.emit(hostLabel(h), text.replace(/\n$/, ''));
      }
    }
    while (this.dirty.size > 0) {
      const groups = new Map<string, HostLog[]>();
      for (const key of this.dirty) {
        const l = this.logs.get(key);
        if (!l) continue;
        const g = `${l.stepId}:${l.executeCount}:${l.next}`;
        groups.set(g, [...(groups.get(g) ?? []), l]);
      }
      this.dirty.clear();
      for (const group of groups.values()) {
        const first = group[0] as HostLog;
        const byHost = new Map(group.map((l) => [l.hostId, l]));
        const replies = this.client.logBatches<LogReply>(
          {
            job_instance_id: this.jobId,
            step_instance_id: first.stepId,
            execute_count: first.executeCount,
            log_offset: first.next,
            log_length: READ_BYTES,
          },
          group.map((l) => l.hostId),
        );
        for await (const reply of replies) {
          for (const r of reply.script_task_logs ?? []) {
            const l = byHost.get(r.bk_host_id);
            if (!l) continue;
            const from = l.next;
            l.next = r.log_next_offset ?? l.next;
            l.complete = r.log_complete === true;
            this.print(l, r.log_content ?? '');
            // More than one read's worth is waiting: read on from the new offset. Not when the
            // read moved nothing (the server holds back a character cut short until the rest
            // comes): the next event or poll reads it.
            if (r.log_total_bytes !== undefined && l.next > from && l.next < r.log_total_bytes)
              this.dirty.add(`${l.stepId}:${l.executeCount}:${l.hostId}`);
          }
        }
      }
    }
  }

  private print(l: HostLog, text: string): void {
    const all = l.partial + text;
    const cut = l.complete ? all.length : all.lastIndexOf('\n') + 1;
    l.partial = all.slice(cut);
    const lines = all.slice(0, cut).replace(/\n$/, '');
    const h = this.hosts.get(l.hostId);
    if (lines && h) this.opts.emit(hostLabel(h), lines);
  }

  /** The end of the job: what is left of unfinished lines is printed. */
  finish(): void {
    for (const l of this.logs.values())
      if (l.partial) {
        l.complete = true;
        this.print(l, '');
      }
  }
}
