/**
 * The mirror door (listen.mirror): plain HTTP for clients configured with pullthrough as a
 * registry mirror (`registry-mirrors`, `hosts.toml`, `registries.conf`). Every request goes to the
 * handler; the core picks the registry from the path or `?ns=`.
 */
import type { Config } from '../config/index.js';
import { startPlainHttpDoor, type PlainHttpDoor } from './plain-http-door.js';
import type { RequestHandler } from './request-handler.js';

/** A running mirror door. */
export type MirrorDoor = PlainHttpDoor<'mirror'>;

/** What the mirror door reads: `listen.mirror`. */
export type MirrorDoorSettings = Pick<Config, 'listen'>;

/**
 * Starts the mirror door on listen.mirror.
 * @throws Error when listen.mirror is off; Error `listen.mirror: cannot listen on HOST:PORT: …`
 *   when it cannot bind (EADDRINUSE, EACCES for a low port without the capability, …).
 */
export async function startMirrorDoor(config: MirrorDoorSettings, handler: RequestHandler): Promise<MirrorDoor> {
  const listen = config.listen.mirror;
  if (!listen) throw new Error('listen.mirror is off');
  return startPlainHttpDoor('mirror', listen, handler);
}
