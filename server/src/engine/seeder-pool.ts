/**
 * The seeders of a file step, grouped by how many downloads each serves. A swarm of a large file
 * grows to one seeder per finished target, and every dispatch wants the least busy one: kept in
 * groups by load, it is found without a scan of every seeder (at 50,000 targets the scan took
 * seconds of the server's CPU).
 */
export interface Seeded {
  active: number;
}

export class SeederPool<S extends Seeded> {
  /** Seeders by load; a group that empties is dropped (the origin alone may serve 100,000). */
  private readonly byLoad: (S[] | undefined)[] = [];
  /** Each seeder's place in its group, so that moving it costs no search. */
  private readonly place = new Map<S, number>();
  /** No group below this one holds a seeder. */
  private lowest = 0;

  constructor(private readonly slotLimit: number) {}

  add(seeder: S): void {
    this.join(seeder, seeder.active);
  }

  /** The least busy seeder with a free slot. */
  pick(): S | undefined {
    while (this.lowest < this.byLoad.length && !this.byLoad[this.lowest]) this.lowest++;
    if (this.lowest >= this.slotLimit) return undefined;
    return this.byLoad[this.lowest]?.at(-1);
  }

  /** A download was sent to `seeder`. */
  take(seeder: S): void {
    this.leave(seeder);
    this.join(seeder, seeder.active + 1);
  }

  /** A download from `seeder` ended (nothing, once the seeder was removed). */
  free(seeder: S): void {
    if (seeder.active === 0 || !this.place.has(seeder)) return;
    this.leave(seeder);
    this.join(seeder, seeder.active - 1);
  }

  /** The seeder can serve no more (its agent restarted, say): it is never picked again. */
  remove(seeder: S): void {
    this.leave(seeder);
    this.place.delete(seeder);
  }

  [Symbol.iterator](): Iterator<S> {
    return this.place.keys();
  }

  private join(seeder: S, active: number): void {
    seeder.active = active;
    let group = this.byLoad[active];
    if (!group) {
      group = [];
      this.byLoad[active] = group;
    }
    this.place.set(seeder, group.length);
    group.push(seeder);
    this.lowest = Math.min(this.lowest, active);
  }

  private leave(seeder: S): void {
    const group = this.byLoad[seeder.active];
    const at = this.place.get(seeder);
    if (!group || at === undefined) return;
    const last = group.pop() as S;
    if (last !== seeder) {
      group[at] = last;
      this.place.set(last, at);
    }
    if (group.length === 0) this.byLoad[seeder.active] = undefined;
  }
}
