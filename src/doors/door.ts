/**
 * What every door (mirror, TLS, CONNECT, DNS, admin) is to the server that runs it. A door is started by
 * its `start…Door` function, which resolves once it listens; from then on the server drives all
 * doors alike: report where they listen, stop accepting at shutdown, and close them after the drain.
 */

/** The doors, as named under `listen` in the config and in the server's `addresses`. */
export type DoorName = 'mirror' | 'tls' | 'proxy' | 'dns' | 'admin';

/** Where a door listens: the bound address and port (port 0 in the config becomes the real one). */
export interface BoundAddress {
  readonly address: string;
  readonly port: number;
}

/** A started door. */
export interface Door {
  readonly name: DoorName;
  /** Where it listens; null for a door that accepts only connections handed to it (the TLS door behind CONNECT). */
  readonly bound: BoundAddress | null;
  /**
   * Shutdown, first step: no new connections from now on; requests in progress go on (idle
   * keep-alive connections may be closed). Never throws.
   */
  stopAccepting(): void;
  /** Shutdown, last step: drops every connection still open; resolves when the door is closed. */
  close(): Promise<void>;
}
