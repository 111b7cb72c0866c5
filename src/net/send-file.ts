/**
 * A response body sent from a file with sendfile(2), by src/native/send-file.c (built by
 * `npm run build` when a C compiler is there): the kernel hands the page cache's pages to the
 * socket, where streaming would read every chunk into a buffer and write it out again (two copies,
 * and two hops between threads per chunk). Plain TCP only: a TLS socket must encrypt in Node.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { getSystemErrorName } from 'node:util';
import type { FileSpan } from '../util/file-span.js';
import { nativeModule } from '../util/native-module.js';
import { descriptorOf } from './tcp-options.js';

/** The native module's functions. */
interface SendFileBinding {
  /** Starts the transfer on a thread; `done(errno, sent)` runs on this thread when it has ended. */
  sendFile(socketFd: number, fileFd: number, position: number, length: number, done: (errno: number, sent: number) => void): object;
  /** Ends a transfer early: its `done` gets ECANCELED (a no-op once `done` has run). */
  cancel(handle: object): void;
}

/** The native module, or why it cannot be used. */
export function sendFileBinding(): SendFileBinding | string {
  return nativeModule<SendFileBinding>('send-file');
}

/**
 * Errors sendfile gives before any byte when the file or socket does not support it (some FUSE
 * and network filesystems): the body is then streamed instead, with no harm done.
 */
const UNSUPPORTED = new Set(['EINVAL', 'ENOSYS', 'EOPNOTSUPP']);

/**
 * Transfers by sendfile at once in this process, each on a thread; beyond it bodies are streamed.
 * A thread waiting on a slow client costs little (a 64 KiB stack), but threads count against a
 * container's pids limit (often 1024–4096 a pod), which the process's other threads need too.
 */
export const MAX_TRANSFERS = 256;
let transfers = 0;

/** Whether a failed sendFileBody left the body to be streamed instead (nothing of it was sent). */
export function unsupportedBySendfile(err: NodeJS.ErrnoException, sent: number): boolean {
  return sent === 0 && UNSUPPORTED.has(err.code ?? '');
}

/**
 * Sends `length` bytes of `span` as the body of `res`, whose head is set (writeHead) and whose
 * body has not begun. The head goes out first; the socket is left alone by Node while the bytes go.
 * @returns false when sendfile cannot be used here: no native module, a TLS or descriptor-less
 *   socket, {@link MAX_TRANSFERS} under way, or bytes still queued on the socket after the head.
 *   The head may have been sent; the caller streams the body, and `done` is never called.
 *   true when the transfer started: `done(sent, err)` is called once it has ended, with `err`
 *   unset when every byte went, or the error (ECANCELED when the response closed first; see
 *   {@link unsupportedBySendfile} for the one kind that leaves the body to stream).
 * @param maxTransfers the cap on transfers under way in this process (a test lowers it)
 */
export function sendFileBody(
  res: ServerResponse,
  socket: Socket,
  span: FileSpan,
  length: number,
  done: (sent: number, err?: NodeJS.ErrnoException) => void,
  maxTransfers = MAX_TRANSFERS,
): boolean {
  const native = sendFileBinding();
  if (typeof native === 'string' || (socket as TLSSocket).encrypted) return false;
  const fd = descriptorOf(socket);
  if (fd === undefined || length > span.end - span.start || transfers >= maxTransfers) return false;
  res.flushHeaders();
  // The head must be in the kernel before the body: a write Node still holds (the socket was
  // full) would land behind bytes the thread sends.
  const queued = (socket as unknown as { _handle?: { writeQueueSize?: number } })._handle?.writeQueueSize;
  if (socket.writableLength !== 0 || queued !== 0) return false;
  let handle: object;
  const cancel = (): void => native.cancel(handle);
  try {
    handle = native.sendFile(fd, span.fd, span.start, length, (errno, sent) => {
      transfers--;
      res.off('close', cancel);
      done(sent, errno === 0 ? undefined : errnoError(errno));
    });
  } catch {
    return false; // no descriptor or thread to spare right now: stream it
  }
  transfers++;
  res.once('close', cancel);
  return true;
}

function errnoError(errno: number): NodeJS.ErrnoException {
  const code = getSystemErrorName(-errno);
  const err: NodeJS.ErrnoException = new Error(`sendfile: ${code}`);
  err.code = code;
  err.errno = -errno;
  err.syscall = 'sendfile';
  return err;
}
