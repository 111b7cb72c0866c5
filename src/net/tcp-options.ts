/**
 * TCP options Node.js does not offer, from src/native/tcp-options.c (built by `npm run build` when
 * a C compiler is there). Without the module every call here is a no-op that says so: sockets keep
 * the kernel's defaults, which are correct, only slower for some clients.
 */
import type { Server, Socket } from 'node:net';
import { nativeModule } from '../util/native-module.js';

/** The native module's functions. */
interface TcpOptionsBinding {
  setNotSentLowat(fd: number, bytes: number): boolean;
  /** -1 when the kernel cannot say. */
  getNotSentLowat(fd: number): number;
}

/**
 * Bytes a socket may hold not yet sent before a write waits. 128 KiB: enough to keep a 16-client
 * transfer's sockets busy between two turns of the event loop, little enough that the client reads
 * bytes written a moment before (docs/performance.md, fifteenth round: 64 KiB–1 MiB measured).
 */
export const NOT_SENT_LOWAT = 128 * 1024;

/** The native module, or why it cannot be used. */
export function tcpOptionsBinding(): TcpOptionsBinding | string {
  return nativeModule<TcpOptionsBinding>('tcp-options');
}

/**
 * Caps the bytes `socket` holds unsent at `bytes` (TCP_NOTSENT_LOWAT): a write beyond it waits
 * until the kernel has handed earlier bytes on, as a shallow buffer would. On a listening server,
 * the sockets it accepts from then on start with the cap (Linux copies it into each).
 * @returns whether it was set: false without the native module, for a socket without a descriptor
 *   (not TCP, or already closed; a node:cluster worker's listener), or when the kernel refused it
 */
export function limitNotSent(socket: Socket | Server, bytes = NOT_SENT_LOWAT): boolean {
  const native = tcpOptionsBinding();
  const fd = descriptorOf(socket);
  if (typeof native === 'string' || fd === undefined) return false;
  return native.setNotSentLowat(fd, bytes);
}

/**
 * `socket`'s TCP_NOTSENT_LOWAT as the kernel has it: 0 for a socket never capped (the system's
 * net.ipv4.tcp_notsent_lowat applies, unlimited by default); undefined when it cannot be read.
 */
export function notSentLimit(socket: Socket | Server): number | undefined {
  const native = tcpOptionsBinding();
  const fd = descriptorOf(socket);
  if (typeof native === 'string' || fd === undefined) return undefined;
  const bytes = native.getNotSentLowat(fd);
  return bytes < 0 ? undefined : bytes;
}

/**
 * The descriptor of a socket, or of a listening server's socket; undefined when there is none (not
 * TCP, already closed, or a node:cluster worker's listener).
 */
export function descriptorOf(socket: Socket | Server): number | undefined {
  // Node keeps the descriptor on the socket's libuv handle (internal, but there since Node 0.x).
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}
