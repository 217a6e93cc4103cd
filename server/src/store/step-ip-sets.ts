/**
 * The addresses of a step's host tasks, kept as one text per step (table step_ip_set, migration
 * 0052), for get_job_instance_list's ip filter: "jobs with a task on this ip".
 *
 * host_task has no index on ip, and one would cost every accept: at 50,000 hosts an index on
 * host_task(ip) doubled the insert of the step's tasks on PostgreSQL (89 -> 180 ms), most of
 * fast_execute_script's accept. Without one the filter read every task of every job in the
 * time range (2.5 million tasks: seconds). A set per step is written with the step's tasks,
 * in their transaction, from a pass the accept makes anyway (the read that counts the tasks,
 * the values it sends, or the rows RETURNING hands back): at 50,000 hosts one text of ~600 KB,
 * a few milliseconds of the step's accept. The filter then searches 500 such texts instead of
 * 2.5 million rows (~0.5 s -> 60-80 ms on either engine where measured). Written in the same
 * transaction rather than after it: every committed step has its set, and no job needs a
 * second write (a second commit per job on SQLite's single writer).
 *
 * The text is `,ip1,ip2,...,ipN,` (a step of no tasks has none), in no particular order, an
 * address repeated when two hosts share it. A task's ip is among them exactly when the text
 * holds `,ip,`: a plain substring search (strpos, instr), so nothing in the ip is a pattern.
 * That holds while no stored ip has a comma. Addresses are checked as IPv4 where hosts are
 * made (admin API, agent registration) and where ip lists are taken; only hosts registered
 * before agent registration checked them could hold other text. Migration 0052 looks for such
 * addresses, and if it finds one, every match found in a set is confirmed against the tasks
 * (IP_SETS_CONFIRMED_KEY), so that `,a,b,` never counts as holding `b` for a task on "a,b".
 *
 * A retry gives the same hosts new tasks (beginRetry), so it adds no address and leaves the
 * set as it is. A step without a set (stored by a server of the version before, during a
 * rolling upgrade) is searched through its tasks as before.
 */
import { sql } from 'kysely';
import type { Kysely, RawBuilder } from 'kysely';
import type { EngineCapabilities } from './engines.js';
import type { Database } from './schema.js';

/** server_setting key whose presence says some stored address may hold a comma. */
export const IP_SETS_CONFIRMED_KEY = 'step_ip_set.confirm_matches';

/**
 * A step's set made from its tasks (at least one), `ip` giving each one's address. Appended one
 * by one: at 50,000 addresses, mapping them to an array and joining it took ~1.6 times as long.
 */
export function ipSetOf<T>(tasks: readonly T[], ip: (task: T) => string): string {
  let set = ',';
  for (const task of tasks) {
    set += ip(task);
    set += ',';
  }
  return set;
}

/**
 * Stores a step's set where the engine's insert does not make it in the same statement (SQLite):
 * `ips` as ipSetOf or ipSetAggregate made it; none for a step of no tasks.
 */
export async function storeIpSet(
  tx: Kysely<Database>,
  stepInstanceId: number,
  ips: string | null | undefined,
): Promise<void> {
  if (ips) await tx.insertInto('step_ip_set').values({ step_instance_id: stepInstanceId, ips }).execute();
}

/** The aggregate making a set from the addresses in `column`: null over no rows (no set is stored). */
export function ipSetAggregate(
  column: RawBuilder<unknown>,
  engine: EngineCapabilities['name'],
): RawBuilder<string> {
  return engine === 'postgres'
    ? sql<string>`',' || string_agg(${column}, ',') || ','`
    : sql<string>`',' || group_concat(${column}, ',') || ','`;
}

/**
 * Whether the job `jobId` names (a column reference) has a task on `ip`. `confirm`: check each
 * match in a set against the step's tasks (some stored address may hold a comma). On
 * PostgreSQL a set holding the ip costs more to search than one without (strpos counts the
 * characters before a match): an ip in every job of the range lists in ~140 ms, not ~60.
 */
export function jobHasTaskOn(
  jobId: RawBuilder<unknown>,
  ip: string,
  engine: EngineCapabilities['name'],
  confirm: boolean,
): RawBuilder<boolean> {
  const onTasks = sql`exists (select 1 from host_task t where t.step_instance_id = s.id and t.ip = ${ip})`;
  const needle = `,${ip},`;
  const inSet = engine === 'postgres' ? sql`strpos(x.ips, ${needle}) > 0` : sql`instr(x.ips, ${needle}) > 0`;
  // An ip with a comma could only match across two entries of a set: its matches are confirmed.
  const matched = confirm || ip.includes(',') ? sql`${inSet} and ${onTasks}` : inSet;
  return sql<boolean>`exists (select 1 from step_instance s
    left join step_ip_set x on x.step_instance_id = s.id
    where s.job_instance_id = ${jobId}
      and case when x.ips is null then ${onTasks} else ${matched} end)`;
}
