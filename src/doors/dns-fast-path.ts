/**
 * The DNS door's UDP fast path: src/native/dns-fast-path.c, built into dist/native by `npm run
 * build` when a C compiler is there. A thread answers served names from the socket in batches and
 * hands every other datagram to the door's JavaScript; without it the door answers through dgram.
 */
import type { CidrRange } from '../net/cidr-list.js';
import { nativeModule } from '../util/native-module.js';

/** What the door gives the native side: the answers for served names and who gets RA. */
export interface FastPathAnswers {
  /** Served names, lowercase, dot-joined, no trailing dot. */
  names: readonly string[];
  /** The A and AAAA answer records (owner 0xC00C) and how many each holds. */
  a: Buffer;
  aCount: number;
  aaaa: Buffer;
  aaaaCount: number;
  /** dns.allow's ranges (CidrList.ranges); the native side sets RA for these sources as CidrList does. */
  allow: readonly CidrRange[];
}

interface Handle {
  readonly __brand: 'dns-fast-path';
}

/** The native module's functions (src/native/dns-fast-path.c). */
export interface FastPathBinding {
  open(options: FastPathAnswers & { host: string; port: number; reusePort: boolean; onQuery: (msg: Buffer, address: string, port: number) => void }): Handle;
  port(h: Handle): number;
  /** False once closed, or for an address the kernel refuses. */
  send(h: Handle, msg: Buffer, address: string, port: number): boolean;
  stats(h: Handle): { answered: number; dropped: number };
  /** Idempotent. */
  close(h: Handle): void;
}

/** The native module, or why it cannot be used ("is not built …", "failed to load: …"). */
export function fastPathBinding(): FastPathBinding | string {
  return nativeModule<FastPathBinding>('dns-fast-path');
}

/** A UDP socket served by the native thread. */
export class FastPathSocket {
  private constructor(
    private readonly native: FastPathBinding,
    private readonly handle: Handle,
    readonly port: number,
  ) {}

  /**
   * Binds `host`:`port` (0: the OS picks) and starts answering.
   * @param onQuery every datagram the native side does not answer itself, with its source
   * @throws Error with the errno name as code (EADDRINUSE, EACCES, …) when the bind fails
   */
  static open(
    native: FastPathBinding,
    host: string,
    port: number,
    answers: FastPathAnswers,
    onQuery: (msg: Buffer, address: string, port: number) => void,
    reusePort = false,
  ): FastPathSocket {
    const handle = native.open({ host, port, reusePort, ...answers, onQuery });
    return new FastPathSocket(native, handle, native.port(handle));
  }

  /** Sends one datagram; false when it could not go out (closed, or refused by the kernel). */
  send(msg: Buffer, address: string, port: number): boolean {
    return this.native.send(this.handle, msg, address, port);
  }

  /** Since open: queries the native thread answered, and datagrams it dropped because the
   * JavaScript side had more than 4096 waiting. */
  stats(): { answered: number; dropped: number } {
    return this.native.stats(this.handle);
  }

  /** Stops the thread and closes the socket (idempotent). */
  close(): void {
    this.native.close(this.handle);
  }
}
