/**
 * Applies a batch's changes to host tasks with one UPDATE … FROM (VALUES …) per shape (the
 * columns a change sets, and whether it applies only to an unfinished task) and 500 rows,
 * instead of one statement per task: a batch of results costs a few statements to build and
 * run, not one per host. RETURNING says which rows changed. Both engines take this form.
 */
import { sql } from 'kysely';
import type { Selectable, Transaction } from 'kysely';
import type { Database, HostTaskTable } from './schema.js';
import { integerValues } from './values-list.js';

/** The columns a task write may set, in the order their values follow the key in a row. */
const COLUMNS = [
  'version',
  'log_bytes',
  'dropped_bytes',
  'start_time',
  'status',
  'exit_code',
  'error_code',
  'end_time',
] as const;
type Column = (typeof COLUMNS)[number];

export interface HostTaskChange {
  stepInstanceId: number;
  executeCount: number;
  hostId: number;
  set: Partial<Pick<Selectable<HostTaskTable>, Column>>;
  /** Applied only while the task's status is one of these (a result is recorded once). */
  onlyFrom?: readonly number[];
}

/** Rows per statement: (3 + 8) values each stays far below both engines' parameter limits. */
const ROWS = 500;

const keyOf = (s: number, e: number, h: number) => `${s}:${e}:${h}`;

/**
 * Applies each change to its task; returns those that changed a row. Changes of one task are
 * applied in the order given (a task that appears twice goes into a later round of statements).
 */
export async function updateHostTasks(
  tx: Transaction<Database>,
  changes: readonly HostTaskChange[],
): Promise<Set<HostTaskChange>> {
  const rounds: Map<string, { columns: Column[]; changes: HostTaskChange[] }>[] = [];
  const seen = new Map<string, number>();
  for (const c of changes) {
    const key = keyOf(c.stepInstanceId, c.executeCount, c.hostId);
    const round = seen.get(key) ?? 0;
    seen.set(key, round + 1);
    const columns = COLUMNS.filter((col) => c.set[col] !== undefined);
    if (columns.length === 0) continue;
    const shape = `${c.onlyFrom?.join(',') ?? ''}|${columns.join(',')}`;
    const shapes = (rounds[round] ??= new Map());
    let group = shapes.get(shape);
    if (!group) shapes.set(shape, (group = { columns, changes: [] }));
    group.changes.push(c);
  }
  const changed = new Set<HostTaskChange>();
  for (const shapes of rounds) {
    for (const { columns, changes: group } of shapes.values()) {
      const onlyFrom = group[0]?.onlyFrom;
      const assignments = sql.join(
        columns.map((col, i) => sql`${sql.ref(col)} = v.${sql.raw(`column${i + 4}`)}`),
      );
      const condition = onlyFrom ? sql`and host_task.status in (${sql.join(onlyFrom)})` : sql``;
      for (let i = 0; i < group.length; i += ROWS) {
        const part = group.slice(i, i + ROWS);
        const byKey = new Map(part.map((c) => [keyOf(c.stepInstanceId, c.executeCount, c.hostId), c]));
        const rows = part.map((c) => [
          c.stepInstanceId,
          c.executeCount,
          c.hostId,
          ...columns.map((col) => c.set[col] ?? null),
        ]);
        const r = await sql<{ step_instance_id: number; execute_count: number; host_id: number }>`
          update host_task set ${assignments}
          from (${integerValues(rows)}) as v
          where host_task.step_instance_id = v.column1 and host_task.execute_count = v.column2
            and host_task.host_id = v.column3 ${condition}
          returning host_task.step_instance_id, host_task.execute_count, host_task.host_id`.execute(tx);
        for (const row of r.rows) {
          const c = byKey.get(
            keyOf(Number(row.step_instance_id), Number(row.execute_count), Number(row.host_id)),
          );
          if (c) changed.add(c);
        }
      }
    }
  }
  return changed;
}
