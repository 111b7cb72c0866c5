/**
 * The fixture several test files share: a fault upstream (a real server on a socket, see
 * fault-upstream.ts) as registry `fault.test`, the default one, of a real pullthrough process.
 */
import { startFaultUpstream, type FaultUpstream } from './fault-upstream.js';
import { startPullthrough, type Pullthrough } from './pullthrough.js';

export interface FaultMirror {
  readonly up: FaultUpstream;
  readonly pt: Pullthrough;
  /** Stops pullthrough (and removes its temp dir), then the upstream. */
  stop(): Promise<void>;
}

/** Starts both; if pullthrough does not start, the upstream is closed before the error is thrown. */
export async function startFaultMirror(): Promise<FaultMirror> {
  const up = await startFaultUpstream();
  let pt: Pullthrough;
  try {
    pt = await startPullthrough({ registries: { 'fault.test': { upstream: up.url } }, defaultRegistry: 'fault.test' });
  } catch (err) {
    await up.close();
    throw err;
  }
  return {
    up,
    pt,
    async stop() {
      await pt.cleanup();
      await up.close();
    },
  };
}
