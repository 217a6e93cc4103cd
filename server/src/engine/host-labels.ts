/**
 * Hosts' labels ("cloud:ip") both ways: file logs name hosts by id, and agents name the host a
 * download came from by its label. A step may have 100,000 targets, each reporting progress
 * several times: a label is looked up in a map, not by a scan of every host.
 */
export class HostLabels {
  private readonly byId = new Map<number, string>();
  private readonly byLabel = new Map<string, number>();

  set(hostId: number, label: string): void {
    this.byId.set(hostId, label);
    if (!this.byLabel.has(label)) this.byLabel.set(label, hostId);
  }

  get(hostId: number): string | undefined {
    return this.byId.get(hostId);
  }

  has(hostId: number): boolean {
    return this.byId.has(hostId);
  }

  /** The host of a label; the first one given it, should two hosts share one. */
  hostOf(label: string): number | undefined {
    return this.byLabel.get(label);
  }
}
