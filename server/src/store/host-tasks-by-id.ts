/**
 * A new step's host tasks made from hosts named by id, by the insert itself: the host rows are
 * read and the task rows written inside the database, in the job's own transaction. For a
 * 50,000-host step the rows then never travel to the server and back (reading them out,
 * decoding them, and sending them in again as the insert's values cost several times what
 * storing them does). Used where a target is a plain host id list (fast_execute_script).
 *
 * The insert takes only hosts that exist and belong to one of the scope's businesses; when it
 * stores fewer tasks than ids were named it throws TargetsChanged, the transaction rolls back,
 * and the caller resolves the targets the long way, which names every host it refuses.
 */
import { sql } from 'kysely';
import type { RawBuilder, Transaction } from 'kysely';
import { countByStatus, HostStatus } from '../engine/statuses.js';
import type { EngineCapabilities } from './engines.js';
import type { Database } from './schema.js';
import { ipSetAggregate, ipSetOf, storeIpSet } from './step-ip-sets.js';

/** A new task's status, as target resolution sets it: waiting, or no agent to run it. */
const { WAITING, AGENT_NOT_INSTALLED } = HostStatus;

export interface HostsById {
  /** Distinct host ids: in the order named when the step rolls (it sets the batches), else any order. */
  ids: readonly number[];
  /** The businesses of the job's scope: a host outside them is refused. */
  bizIds: readonly number[];
  /** The rolling batch (1-based) of each id, in the same order; null when the step does not roll. */
  batches: readonly number[] | null;
}

/** Some named host is missing or outside the scope: nothing was stored. */
export class TargetsChanged extends Error {
  constructor(named: number, stored: number) {
    super(`${named} hosts named, ${stored} found in the scope`);
  }
}

/**
 * Up to this many hosts the insert hands the new tasks back, so the step starts from them
 * without reading them again (a round trip between the commit and the first dispatch on
 * PostgreSQL). Larger steps are counted by a read and their tasks read when they start, after
 * the caller has its answer: returning their rows would only lengthen the answer to the submit.
 */
export const TASKS_RETURNED_UP_TO = 1000;

/** A task as stored by the insert: what the engine starts a step from. */
export interface InsertedTask {
  host_id: number;
  status: number;
  batch: number;
}

/**
 * Inserts the tasks; returns how many got each status, and the tasks themselves for a step of
 * at most TASKS_RETURNED_UP_TO hosts.
 */
export async function insertHostTasksById(
  tx: Transaction<Database>,
  stepInstanceId: number,
  targets: HostsById,
  engine: EngineCapabilities['name'],
): Promise<{ counts: Record<string, number>; tasks: InsertedTask[] | undefined }> {
  const ascending = inIdOrder(targets);
  const small = targets.ids.length <= TASKS_RETURNED_UP_TO;
  const returning = small ? sql`returning host_id, status, batch, ip` : undefined;
  const inserted =
    engine === 'postgres'
      ? await onPostgres(tx, stepInstanceId, ascending, returning)
      : await onSqlite(tx, stepInstanceId, ascending, returning);
  let counts: Record<string, number>;
  let tasks: InsertedTask[] | undefined;
  if (small) {
    const rows = inserted as (InsertedTask & { ip: string })[];
    tasks = rows.map((t) => ({ host_id: t.host_id, status: t.status, batch: t.batch }));
    counts = countByStatus(tasks.map((t) => t.status));
    // PostgreSQL stored the set with the tasks (onPostgres).
    if (engine === 'sqlite' && rows.length > 0)
      await storeIpSet(
        tx,
        stepInstanceId,
        ipSetOf(rows, (t) => t.ip),
      );
  } else {
    counts = await countAndStoreIpSet(tx, stepInstanceId, engine);
  }
  const stored = Object.values(counts).reduce((a, b) => a + b, 0);
  if (stored !== targets.ids.length) throw new TargetsChanged(targets.ids.length, stored);
  return { counts, tasks };
}

/**
 * The same targets with the ids ascending (each id keeping its batch). The insert then adds each
 * task at the right edge of the key (step, execute count, host id); in the order a client names
 * them (a fleet's ids interleaved from several lists, say) most rows go into the middle of the
 * key's pages instead: a descent and, often, a page split each. PostgreSQL, 50,000 hosts named
 * as six interleaved runs: ~340 ms for the insert vs ~275 ms sorted. Tasks are a set: every read
 * orders them by host id, and a task's rolling batch is a column, not its place.
 */
export function inIdOrder(t: HostsById): HostsById {
  const { ids, batches } = t;
  let sorted = true;
  for (let i = 1; i < ids.length && sorted; i++) sorted = (ids[i - 1] as number) < (ids[i] as number);
  if (sorted) return t;
  if (!batches) return { ...t, ids: Array.from(Float64Array.from(ids).sort()) };
  const order = ids.map((_, i) => i).sort((a, b) => (ids[a] as number) - (ids[b] as number));
  return { ...t, ids: order.map((i) => ids[i] as number), batches: order.map((i) => batches[i] as number) };
}

/**
 * Distinct ids ascending, for a step that does not roll. One numeric sort of a typed copy and
 * one pass: at 50,000 ids a third of the CPU of a Set, a spread and inIdOrder's sort after it.
 */
export function distinctAscending(list: readonly number[]): number[] {
  const sorted = Float64Array.from(list).sort();
  const out: number[] = [];
  for (let i = 0; i < sorted.length; i++) {
    const id = sorted[i] as number;
    if (i === 0 || id !== sorted[i - 1]) out.push(id);
  }
  return out;
}

/** A large step's new tasks, counted by the two statuses the insert sets. */
interface TaskCounts {
  waiting: number | string;
  no_agent: number | string;
}

/**
 * A large step's new tasks counted by a read of them (the key's prefix), not by RETURNING from
 * the insert: on PostgreSQL handing 50,000 returned rows through a CTE to a grouping took longer
 * (~40-50 ms at 50,000 hosts) than reading them back. The same pass makes the step's set of
 * addresses (step-ip-sets.ts). It counts the two statuses the insert sets rather than grouping
 * by status: a grouping sorts the rows, and sorting 50,000 addresses with them took longer than
 * the read itself (PostgreSQL ~25 against ~9 ms, SQLite ~10 against ~6); in one pass the set
 * adds ~1-2 ms to the read.
 */
async function countAndStoreIpSet(
  tx: Transaction<Database>,
  stepInstanceId: number,
  engine: EngineCapabilities['name'],
): Promise<Record<string, number>> {
  const counted = sql`count(*) filter (where status = ${WAITING}) as waiting,
      count(*) filter (where status = ${AGENT_NOT_INSTALLED}) as no_agent`;
  const tasks = sql`from host_task where step_instance_id = ${stepInstanceId} and execute_count = 0`;
  let row: TaskCounts | undefined;
  if (engine === 'postgres') {
    const { rows } =
      await sql<TaskCounts>`with c as (select ${counted}, ${ipSetAggregate(sql`ip`, engine)} as ips ${tasks}),
      ip_set as (insert into step_ip_set (step_instance_id, ips)
        select ${stepInstanceId}::bigint, ips from c where ips is not null)
      select waiting, no_agent from c`.execute(tx);
    row = rows[0];
  } else {
    const { rows } = await sql<TaskCounts & { ips: string | null }>`select ${counted},
        ${ipSetAggregate(sql`ip`, engine)} as ips ${tasks}`.execute(tx);
    await storeIpSet(tx, stepInstanceId, rows[0]?.ips);
    row = rows[0];
  }
  const counts: Record<string, number> = {};
  const waiting = Number(row?.waiting ?? 0);
  const noAgent = Number(row?.no_agent ?? 0);
  if (waiting > 0) counts[WAITING] = waiting;
  if (noAgent > 0) counts[AGENT_NOT_INSTALLED] = noAgent;
  // Were the insert ever to set another status and this not count it, its tasks would be
  // missing from the sum: the step would be refused as changed (TargetsChanged), not shown
  // with wrong counts.
  return counts;
}

/** One engine's form of the insert; `returning`: what it hands back (no rows without). */
type EngineInsert = (
  tx: Transaction<Database>,
  stepInstanceId: number,
  t: HostsById,
  returning: RawBuilder<unknown> | undefined,
) => Promise<unknown[]>;

/**
 * PostgreSQL: the named hosts that exist in the scope, as the columns of their new tasks
 * (host_id, cloud_id, ip, ipv6, agent_id, status, batch). Array literals made here in one
 * join: node-postgres prepares an array element by element.
 */
export function namedHostsOnPostgres(t: HostsById): RawBuilder<unknown> {
  return sql`select h.id as host_id, h.cloud_id, h.ip, h.ipv6, h.agent_id,
      case when coalesce(h.agent_id, '') = '' then ${AGENT_NOT_INSTALLED}::integer else ${WAITING}::integer end as status,
      coalesce(w.batch, 0) as batch
    from unnest(${`{${t.ids.join(',')}}`}::bigint[], ${`{${(t.batches ?? []).join(',')}}`}::integer[])
      as w(id, batch)
    join host h on h.id = w.id
    where h.biz_id = any(${`{${t.bizIds.join(',')}}`}::bigint[])`;
}

/**
 * PostgreSQL: the insert of a step's first tasks from namedHostsOnPostgres's rows, named `n` in
 * `from` (which also names the step, whose id is `stepId`).
 */
export function insertNamedOnPostgres(
  stepId: RawBuilder<unknown>,
  from: RawBuilder<unknown>,
): RawBuilder<unknown> {
  return sql`insert into host_task (step_instance_id, execute_count, host_id, cloud_id, ip, ipv6, agent_id, status, batch)
    select ${stepId}, 0, n.host_id, n.cloud_id, n.ip, n.ipv6, n.agent_id, n.status, n.batch
    from ${from}`;
}

const onPostgres: EngineInsert = async (tx, stepInstanceId, t, returning) => {
  const insert = insertNamedOnPostgres(
    sql`${stepInstanceId}::bigint`,
    sql`(${namedHostsOnPostgres(t)}) as n`,
  );
  if (!returning) return (await insert.execute(tx)).rows;
  // The returned tasks make the step's set in the same statement (a larger step's is made by
  // the read that counts its tasks).
  const r = await sql`with new_tasks as (${insert} ${returning}),
      ip_set as (insert into step_ip_set (step_instance_id, ips)
        select ${stepInstanceId}::bigint, ${ipSetAggregate(sql`ip`, 'postgres')} from new_tasks having count(*) > 0)
    select * from new_tasks`.execute(tx);
  return r.rows;
};

const onSqlite: EngineInsert = async (tx, stepInstanceId, t, returning) => {
  // One statement in SQLite's own code instead of a hundred 500-row inserts built here. The
  // ids go in as a JSON array ([id, batch] pairs when the step rolls).
  const named = t.batches
    ? JSON.stringify(t.ids.map((id, i) => [id, t.batches?.[i] ?? 0]))
    : JSON.stringify(t.ids);
  const id = t.batches ? sql`json_extract(w.value, '$[0]')` : sql`w.value`;
  const batch = t.batches ? sql`json_extract(w.value, '$[1]')` : sql`0`;
  const r =
    await sql`insert into host_task (step_instance_id, execute_count, host_id, cloud_id, ip, ipv6, agent_id, status, batch)
    select ${stepInstanceId}, 0, h.id, h.cloud_id, h.ip, h.ipv6, h.agent_id,
      case when coalesce(h.agent_id, '') = '' then ${AGENT_NOT_INSTALLED} else ${WAITING} end, ${batch}
    from json_each(${named}) as w
    join host h on h.id = ${id}
    where h.biz_id in (select value from json_each(${JSON.stringify(t.bizIds)}))
    ${returning ?? sql``}`.execute(tx);
  return r.rows;
};
