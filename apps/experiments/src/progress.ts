// Progress for long runs: a redrawn bar on a terminal, and on anything else
// (CI logs, files) a plain line at most every 15 seconds.

/** Progress reporter for a training loop. */
export class Progress {
  private lastPlain = 0;
  private lastDraw = 0;
  private drawn = false;
  private readonly tty: boolean;
  private t0 = performance.now();
  private label = '';

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly plainEveryMs = 15000,
  ) {
    this.tty = !!stream.isTTY && process.env.CI !== 'true';
  }

  /** Reports `done` of `total` steps of `label`. */
  update(label: string, done: number, total: number, info: string): void {
    if (label !== this.label) {
      this.label = label;
      this.t0 = performance.now();
      this.lastPlain = this.t0;
    }
    const now = performance.now();
    if (this.tty) {
      if (now - this.lastDraw < 100 && done < total) return;
      this.lastDraw = now;
      const width = 24;
      const filled = Math.round((done / total) * width);
      const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
      this.stream.write(`\r${label} [${bar}] ${done}/${total} ${info}\x1b[K`);
      this.drawn = true;
    } else if (now - this.lastPlain >= this.plainEveryMs) {
      this.lastPlain = now;
      this.stream.write(`${label} step ${done}/${total} ${info}\n`);
    }
  }

  /** Ends the current bar (moves to a fresh line on a terminal). */
  done(): void {
    if (this.tty && this.drawn) this.stream.write('\r\x1b[K');
    this.drawn = false;
  }
}
