/**
 * Log lines gathered in an array and handed on together: once `maxChars` are waiting, or
 * `flushMs` after the first line of a batch, or when {@link LineBatch.handOver} is called (before
 * a deliberate exit, and at process exit). Joining an array once per batch is linear; appending
 * each line to the destination's pending string was not: SonicBoom measures that string's byte
 * length on every write, which flattens it, so each line copied the whole batch before it (~6 KB
 * of garbage and ~3 µs per request line at 8 KiB batches; docs/performance.md, eighth round).
 */
export class LineBatch {
  private lines: string[] = [];
  private chars = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly send: (text: string) => void,
    private readonly maxChars: number,
    private readonly flushMs: number,
  ) {}

  add(line: string): void {
    this.lines.push(line);
    this.chars += line.length;
    if (this.chars >= this.maxChars) this.handOver();
    else if (!this.timer) {
      // One timer per batch, none while nothing waits: an idle process is not woken for the log.
      // It keeps the process alive until the batch is handed on: a process that ends by running
      // out of work must not reach pino's beforeExit hook, which ends the destination, first.
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.handOver();
      }, this.flushMs);
    }
  }

  /** Hands what waits to `send` now. */
  handOver(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.lines.length === 0) return;
    const text = this.lines.length === 1 ? this.lines[0]! : this.lines.join('');
    this.lines = [];
    this.chars = 0;
    this.send(text);
  }
}
