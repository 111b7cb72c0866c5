/**
 * A body that is a span of an open file can offer that span instead of its chunks, so a sender
 * that copies no bytes (sendfile, src/net/send-file.ts) can serve it; the stream stays the body's
 * owner and closes the file when destroyed.
 */

/** Bytes [start, end) of the file open as `fd`; `end` is Infinity for "to the end of the file". */
export interface FileSpan {
  readonly fd: number;
  readonly start: number;
  readonly end: number;
}

interface FileBacked {
  /** The span, while none of it has been read (undefined once reading started or destroyed). */
  fileSpan(): FileSpan | undefined;
}

/** `stream`'s span when it is a file-backed body that has not started reading. */
export function fileSpanOf(stream: object): FileSpan | undefined {
  const span = (stream as Partial<FileBacked>).fileSpan;
  return typeof span === 'function' ? span.call(stream) : undefined;
}
