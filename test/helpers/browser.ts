/**
 * A real headless browser for page tests: Debian's chromium, started by us (temp profile, DevTools
 * on a loopback port the browser picks, stopped by its PID) and driven with puppeteer-core, which
 * never downloads a browser of its own.
 */
import puppeteer, { type Browser } from 'puppeteer-core';
import { existsSync } from 'node:fs';
import { startProcess, tempDir, type Proc } from './process.js';

/** Where Debian's chromium package puts the browser (test/setup/install-deps.sh installs it). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export interface TestBrowser {
  readonly browser: Browser;
  readonly proc: Proc;
  /** Disconnects, stops the browser by PID and removes its profile. */
  close(): Promise<void>;
}

/**
 * Starts headless chromium and connects to it.
 * @throws Error when chromium is missing or does not announce its DevTools endpoint within 30 s.
 */
export async function startBrowser(): Promise<TestBrowser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run test/setup/install-deps.sh (Debian package chromium)`);
  const profile = await tempDir('pullthrough-chromium-');
  // HOME and TMPDIR in the profile: chromium also keeps its singleton socket in a dir of its own
  // under TMPDIR, which would stay in /tmp after the test.
  const proc = startProcess(CHROMIUM, [
    '--headless=new',
    // As root (the suite runs as root) chromium refuses to start inside its sandbox.
    '--no-sandbox',
    '--disable-gpu',
    '--disable-dev-shm-usage',
    '--remote-debugging-address=127.0.0.1',
    '--remote-debugging-port=0',
    `--user-data-dir=${profile.path}`,
    '--no-first-run',
    '--no-default-browser-check',
    // Nothing but the page under test: no update checks, sync, or other traffic leaving the machine.
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-extensions',
    '--disable-default-apps',
    '--mute-audio',
    'about:blank',
  ], { env: { ...process.env, HOME: profile.path, TMPDIR: profile.path } });
  const deadline = Date.now() + 30_000;
  let endpoint: string | undefined;
  while (!endpoint) {
    endpoint = /DevTools listening on (ws:\/\/\S+)/.exec(proc.output())?.[1];
    if (endpoint) break;
    if (proc.child.exitCode !== null || Date.now() > deadline) {
      await proc.kill9();
      await profile.cleanup();
      throw new Error(`chromium did not start:\n${proc.output().slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const browser = await puppeteer.connect({ browserWSEndpoint: endpoint, defaultViewport: null, protocolTimeout: 60_000 });
  return {
    browser,
    proc,
    async close() {
      await browser.disconnect().catch(() => {});
      await proc.stop(5000);
      // Chromium's helper processes may still be writing the profile for a moment after the main
      // process is gone (ENOTEMPTY): try again once they had time to exit.
      await profile.cleanup().catch(async () => {
        await new Promise((r) => setTimeout(r, 1000));
        await profile.cleanup();
      });
    },
  };
}
