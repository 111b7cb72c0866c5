/**
 * Messages between the primary and its workers over the cluster IPC channel (serialization
 * 'advanced': structured clone, so the config arrives with its undefined keys and Buffers intact).
 */
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { Config } from '../config/index.js';

/** One process's metrics as prom-client's `getMetricsAsJSON()` gives them. */
export type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

/** Worker → primary. */
export type FromWorker =
  /** Listening for messages: send the start message. */
  | { type: 'pullthrough:hello' }
  /** Serving on every door. */
  | { type: 'pullthrough:ready' }
  /** A scrape reached this worker: all workers' metrics, please. */
  | { type: 'pullthrough:metrics'; id: number }
  /** This worker's metrics, for collection round `id`. */
  | { type: 'pullthrough:metrics-collected'; id: number; metrics: MetricsJson }
  /** The admin API switched a registry's offline mode here: switch the other workers too. */
  | { type: 'pullthrough:offline'; registry: string; offline: boolean };

/** Primary → worker. */
export type FromPrimary =
  /** `offline`: the registries offline now (the config's, as switched since by the admin API). */
  | { type: 'pullthrough:start'; slot: number; config: Config; ticketKeys: Uint8Array; offline: string[] }
  /** Another worker's admin API switched a registry's offline mode. */
  | { type: 'pullthrough:offline'; registry: string; offline: boolean }
  /** Send your metrics for collection round `id`. */
  | { type: 'pullthrough:metrics-collect'; id: number }
  /** The answer to this worker's request `id`: the combined text, or why there is none. */
  | { type: 'pullthrough:metrics-text'; id: number; text?: string; error?: string };

export function isMessage<T extends { type: string }>(m: unknown): m is T {
  return typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string' && (m as { type: string }).type.startsWith('pullthrough:');
}
