// What a run does when it is told to stop: Ctrl-C (SIGINT), SIGTERM (timeout, docker stop,
// systemd, a cancelled CI job) and SIGHUP (a closed terminal) alike.

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** How soon after the signal that asked for a stop another one is taken for the same stop. */
export const DUPLICATE_MS = 1000;

/**
 * Where a run is, for what a stop signal does there ('between': a sweep between its points;
 * 'pruning' and 'exporting': `normprune prune` before and while it writes its export).
 */
export type RunStage = 'setup' | 'training' | 'finishing' | 'between' | 'pruning' | 'exporting';

/**
 * Installs one handler for the stop signals while a run writes its folder.
 * In training, the first signal asks for a checkpoint after the current step
 * ({@link requested}); a second one quits at once. Before training (loading
 * data) and after it (evaluation, export, report: redone by `--resume`) there
 * is nothing a checkpoint would save, so the first signal quits at once. A
 * quit says how to go on, runs `beforeExit` (the folder's unlock) and exits
 * with 130.
 *
 * A signal within {@link DUPLICATE_MS} of the one that asked for the stop is the same stop,
 * delivered twice: Ctrl-C reaches every process of the terminal's group, and a wrapper that
 * forwards it to its child (`nx run`, measured 13 ms after the terminal's) delivers it again.
 * Counted as a second signal, it quit without the checkpoint the first one asked for.
 */
export class StopSignals {
  /**
   * A stop was asked for: the training loop writes a checkpoint after this step and stops; a
   * prune stops once its export is written.
   */
  requested = false;
  /** Set by the run as it goes. */
  stage: RunStage = 'setup';
  /** When the stop was asked for (Date.now()). */
  private requestedAt = 0;
  private readonly handler = (signal: NodeJS.Signals) => this.receive(signal);

  constructor(
    private readonly log: (line: string) => void,
    /** How to go on after a quit: a line such as "continue from the last checkpoint with: ...". */
    private readonly goOn: () => string,
    private readonly beforeExit: () => void,
  ) {
    for (const s of SIGNALS) process.on(s, this.handler);
  }

  /** Removes the handlers (the run has written its folder, or failed). */
  dispose(): void {
    for (const s of SIGNALS) process.off(s, this.handler);
  }

  private receive(signal: NodeJS.Signals): void {
    const name = signal === 'SIGINT' ? 'Ctrl-C' : signal;
    const again = signal === 'SIGINT' ? 'Ctrl-C again' : `a second ${signal}`;
    if (this.requested && Date.now() - this.requestedAt < DUPLICATE_MS) return;
    // Training and an export stop where they choose (after a step, once written); elsewhere a stop quits.
    const deferred: Partial<Record<RunStage, string>> = {
      training: `writing a checkpoint after this step (${again} quits without one)`,
      exporting: `stopping once the export is written (${again} quits without it)`,
    };
    const stopping = deferred[this.stage];
    if (stopping && !this.requested) {
      this.requested = true;
      this.requestedAt = Date.now();
      this.log(`\n${name}: ${stopping}`);
      return;
    }
    const when = {
      setup: 'before training starts',
      finishing: 'after training, before the results are written',
      between: 'between two sweep points',
      training: 'without a checkpoint',
      pruning: 'before anything was exported',
      exporting: 'during the export',
    }[this.stage];
    try {
      try {
        this.log(`\n${name}: quitting ${when}; ${this.goOn()}`);
      } catch {
        /* the terminal is gone (SIGHUP): the clean-up still runs */
      }
      this.beforeExit();
    } finally {
      process.exit(130);
    }
  }
}
