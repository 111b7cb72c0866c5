import type { LookupFunction } from 'node:net';
import type { RegistryConfig } from '../config/index.js';
import type { Metrics } from '../observability/metrics.js';
import type { Logger } from '../observability/logger.js';
import { RegistryUpstream, type UpstreamSettings } from './registry-client.js';

/** One RegistryUpstream per configured registry, created on first use. */
export class UpstreamPool {
  private readonly clients = new Map<string, RegistryUpstream>();

  constructor(
    private readonly config: UpstreamSettings,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly lookup?: LookupFunction,
  ) {}

  /** The client for a configured registry name. */
  for(registry: RegistryConfig): RegistryUpstream {
    let c = this.clients.get(registry.name);
    if (!c) {
      c = new RegistryUpstream(registry, this.config, this.metrics, this.log, this.lookup);
      this.clients.set(registry.name, c);
    }
    return c;
  }

  async close(): Promise<void> {
    await Promise.all([...this.clients.values()].map((c) => c.close()));
  }
}
