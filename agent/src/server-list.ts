/**
 * The servers an agent may connect to: one URL (a single server, or a load balancer in front
 * of several) or a list of the servers of a cluster. The agent starts at a random entry, so a
 * fleet started at once spreads over the list, and moves to the next entry whenever a
 * connection fails or a server falls silent. Every server of a cluster shares one database,
 * so any entry accepts the agent's token and takes its spooled results.
 * The entry it started at is its home: an agent that moved on goes back once home answers
 * again (see Agent), so a cluster whose servers restarted one by one is not left with the
 * whole fleet on one of them.
 */
export class ServerList {
  private index: number;
  private readonly home: number;

  private constructor(
    readonly urls: readonly string[],
    random: () => number,
  ) {
    this.index = Math.floor(random() * urls.length) % urls.length;
    this.home = this.index;
  }

  /** `spec` is one base URL or several separated by commas. */
  static parse(spec: string | readonly string[], random: () => number = Math.random): ServerList {
    const given = typeof spec === 'string' ? spec.split(',') : spec;
    const urls = given.map((s) => s.trim()).filter((s) => s.length > 0);
    if (urls.length === 0) throw new Error('no server URL given');
    for (const u of urls) {
      let parsed: URL;
      try {
        parsed = new URL(u);
      } catch {
        throw new Error(`server URL "${u}" is not a URL`);
      }
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
        throw new Error(`server URL "${u}" must start with http:// or https://`);
    }
    if (new Set(urls).size !== urls.length) throw new Error('a server URL appears twice in the list');
    return new ServerList(urls, random);
  }

  current(): string {
    return this.urls[this.index] as string;
  }

  /** Every entry, from the current one on in the order they are tried. */
  fromCurrent(): string[] {
    return [...this.urls.slice(this.index), ...this.urls.slice(0, this.index)];
  }

  /** The entry the agent started at; undefined while it is the current one, or the only one. */
  awayFrom(): string | undefined {
    return this.index === this.home ? undefined : this.urls[this.home];
  }

  /** Makes home the current entry again. */
  goHome(): void {
    this.index = this.home;
  }

  /** Gives up on the current entry; returns the one tried next. */
  advance(): string {
    this.index = (this.index + 1) % this.urls.length;
    return this.current();
  }
}
