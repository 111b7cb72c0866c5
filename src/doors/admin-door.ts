/**
 * The admin door (listen.admin, default 127.0.0.1:5001): the admin API, the CLI's subcommands and
 * the status page. Never a registry door: it serves no /v2 and registry doors serve none of it.
 */
import type { Config } from '../config/index.js';
import { startPlainHttpDoor, type PlainHttpDoor } from './plain-http-door.js';
import type { RequestHandler } from './request-handler.js';

/** A running admin door. */
export type AdminDoor = PlainHttpDoor<'admin'>;

/**
 * Starts the admin door on listen.admin.
 * @throws Error when listen.admin is off; Error `listen.admin: cannot listen on HOST:PORT: …`.
 */
export async function startAdminDoor(listen: Config['listen']['admin'], handler: RequestHandler): Promise<AdminDoor> {
  if (!listen) throw new Error('listen.admin is off');
  return startPlainHttpDoor('admin', listen, handler);
}
