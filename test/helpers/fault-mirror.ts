/**
 * The fixture several test files share: a fault upstream (a real server on a socket, see
 * fault-upstream.ts) as registry `fault.test`, the default one, of a real pullthrough process.
 */
import { after, before } from 'node:test';
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

/**
 * A fault mirror for a whole test file: started in node:test's `before` hook, which hands it to
 * `started` (the file keeps `up` and `pt` from it), and stopped in `after`.
 */
export function useFaultMirror(started: (mirror: FaultMirror) => void): void {
  let mirror: FaultMirror | undefined;
  before(async () => {
    mirror = await startFaultMirror();
    started(mirror);
  });
  after(() => mirror?.stop());
}
