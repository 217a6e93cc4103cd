/**
 * Agent sessions opened together. Every hello in cluster mode opens a session (a new epoch for
 * the host, committed before the agent is welcomed, since results are fenced by it); after a
 * server restart or a failover the whole fleet says hello at once, and one synced commit per
 * agent made the roll-out as slow as the database's commit rate. Hellos share commits
 * (group-commit.ts): one statement, one commit, each agent answered only after the commit that
 * holds its session. A host appears at most once in a commit (a second hello of the same host,
 * from a newer connection, goes in the next one and gets the higher epoch).
 */
import { GroupCommit } from '../group-commit.js';

/** Keeps one statement, and the row locks it holds, small. */
const MAX_BATCH = 500;

export class SessionBatch {
  private readonly commits: GroupCommit<number, number>;

  constructor(
    /** Opens the hosts' sessions in one commit; answers each host's new epoch. */
    openMany: (hostIds: number[]) => Promise<Map<number, number>>,
    /** Called with the sessions of each commit, once it is durable. */
    opened: (epochs: Map<number, number>) => void,
  ) {
    this.commits = new GroupCommit(
      async (hostIds) => {
        const epochs = await openMany(hostIds);
        opened(epochs);
        return hostIds.map((hostId) => {
          const epoch = epochs.get(hostId);
          if (epoch === undefined) throw new Error(`no session stored for host ${hostId}`);
          return epoch;
        });
      },
      MAX_BATCH,
      (hostId) => hostId,
    );
  }

  /** The host's new epoch, once the commit that holds it is durable. */
  open(hostId: number): Promise<number> {
    return this.commits.add(hostId);
  }
}
