/**
 * Which registries are in offline mode (issue 18): served only from the cache, no connection
 * upstream. Set from `registries.<name>.offline` at start and switched at run time through the
 * admin API (`offline REGISTRY on|off`). Per process: each replica is switched on its own, which
 * the admin API says in its answer.
 *
 * The remote layer (src/upstream/) consults it before every upstream call; the admin API flips it.
 * It is the only shared state between the two, so neither imports the other.
 */
export class OfflineSwitch {
  private readonly offline = new Set<string>();
  private readonly listeners = new Set<(registry: string, offline: boolean) => void>();

  /** @param initial registry names configured with `offline: true`. */
  constructor(initial: Iterable<string> = []) {
    for (const r of initial) this.offline.add(r);
  }

  /** Whether `registry` (its configured name) is offline now. */
  isOffline(registry: string): boolean {
    return this.offline.has(registry);
  }

  /** Switches `registry` on or off line; returns whether anything changed. Never throws. */
  set(registry: string, offline: boolean): boolean {
    if (this.offline.has(registry) === offline) return false;
    if (offline) this.offline.add(registry);
    else this.offline.delete(registry);
    for (const l of this.listeners) l(registry, offline);
    return true;
  }

  /** Registries offline now, sorted. */
  list(): string[] {
    return [...this.offline].sort();
  }

  /** Calls `listener` on every change (for logs and metrics). */
  onChange(listener: (registry: string, offline: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
