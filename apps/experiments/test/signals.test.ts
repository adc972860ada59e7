// What a run does on Ctrl-C, SIGTERM and SIGHUP at each stage (the class the pipeline installs;
// resume.test.ts sends real signals to a real run).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DUPLICATE_MS, StopSignals, type RunStage } from '../src/signals';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * StopSignals at `stage` (its own default without one), with process.exit mocked; `out` replaces
 * the writer that collects `lines`.
 */
function harness(stage?: RunStage, out?: (line: string) => void) {
  const lines: string[] = [];
  const exits: number[] = [];
  const unlocked: number[] = [];
  const exit = jest.spyOn(process, 'exit').mockImplementation(((code: number) => {
    exits.push(code);
  }) as never);
  const stop = new StopSignals(
    out ?? ((l) => lines.push(l)),
    () => 'continue with: normprune reproduce x --resume',
    () => unlocked.push(1),
  );
  if (stage) stop.stage = stage;
  return { stop, lines, exits, unlocked, restore: () => (stop.dispose(), exit.mockRestore()) };
}

afterEach(() => jest.restoreAllMocks());

test.each([
  // In training, the first signal asks for a checkpoint; in a prune's export, to stop after it.
  ['training', 'writing a checkpoint after this step', 'quits without one', 'without a checkpoint'],
  ['exporting', 'stopping once the export is written', 'quits without it', 'during the export'],
] as const)(
  'in %s, the first signal asks to stop at a safe point and the second quits, saying how to go on',
  (stage, first, again2, when) => {
    for (const signal of SIGNALS) {
      const h = harness(stage);
      const now = jest.spyOn(Date, 'now').mockReturnValue(5_000);
      process.emit(signal, signal);
      expect(h.stop.requested).toBe(true);
      expect(h.exits).toEqual([]);
      expect(h.unlocked).toEqual([]);
      const name = signal === 'SIGINT' ? 'Ctrl-C' : signal;
      const again = signal === 'SIGINT' ? 'Ctrl-C again' : `a second ${signal}`;
      expect(h.lines).toEqual([`\n${name}: ${first} (${again} ${again2})`]);
      now.mockReturnValue(5_000 + DUPLICATE_MS);
      process.emit(signal, signal);
      expect(h.lines[1]).toBe(`\n${name}: quitting ${when}; continue with: normprune reproduce x --resume`);
      expect(h.unlocked).toEqual([1]);
      expect(h.exits).toEqual([130]);
      h.restore();
    }
  },
);

test.each(['training', 'exporting'] as const)(
  'in %s, a signal delivered twice (the terminal, then a wrapper such as nx forwarding it) is one stop',
  (stage) => {
    const h = harness(stage);
    try {
      const now = jest.spyOn(Date, 'now').mockReturnValue(5_000);
      process.emit('SIGINT', 'SIGINT');
      // nx forwarded Ctrl-C 13 ms after the terminal delivered it; as SIGTERM too, from other wrappers.
      now.mockReturnValue(5_013);
      process.emit('SIGINT', 'SIGINT');
      now.mockReturnValue(5_000 + DUPLICATE_MS - 1);
      process.emit('SIGTERM', 'SIGTERM');
      expect(h.stop.requested).toBe(true);
      expect(h.lines).toHaveLength(1);
      expect(h.exits).toEqual([]);
      expect(h.unlocked).toEqual([]);
      // A signal sent later is the user's second: it quits.
      now.mockReturnValue(5_000 + DUPLICATE_MS);
      process.emit('SIGINT', 'SIGINT');
      expect(h.lines[1]).toMatch(/^\nCtrl-C: quitting /);
      expect(h.exits).toEqual([130]);
    } finally {
      h.restore();
    }
  },
);

test('before and after training, and between sweep points, there is nothing to checkpoint: the first signal quits', () => {
  for (const [stage, when] of [
    ['setup', 'before training starts'],
    ['finishing', 'after training, before the results are written'],
    ['between', 'between two sweep points'],
    ['pruning', 'before anything was exported'],
  ] as const) {
    const h = harness(stage);
    process.emit('SIGTERM', 'SIGTERM');
    expect(h.stop.requested).toBe(false);
    expect(h.lines).toEqual([`\nSIGTERM: quitting ${when}; continue with: normprune reproduce x --resume`]);
    expect(h.unlocked).toEqual([1]);
    expect(h.exits).toEqual([130]);
    h.restore();
  }
});

test('dispose removes every handler it installed', () => {
  const before = SIGNALS.map((s) => process.listenerCount(s));
  const stop = new StopSignals(
    () => undefined,
    () => '',
    () => undefined,
  );
  expect(SIGNALS.map((s) => process.listenerCount(s))).toEqual(before.map((n) => n + 1));
  stop.dispose();
  expect(SIGNALS.map((s) => process.listenerCount(s))).toEqual(before);
});

test('a closed terminal (SIGHUP, writes failing) still gets the clean-up and the exit', () => {
  // The quit's own line failing to write does not stop the clean-up.
  const h = harness(undefined, () => {
    throw new Error('write EIO');
  });
  try {
    process.emit('SIGHUP', 'SIGHUP');
    expect(h.unlocked).toEqual([1]);
    expect(h.exits).toEqual([130]);
  } finally {
    h.restore();
  }
});

test("the CLI's output to a terminal closed under it (EIO) or a reader gone (EPIPE) ends that output, not the command", () => {
  // Nx builds the project before its tests (nx.json: test dependsOn build).
  const bin = join(__dirname, '..', 'bin', 'normprune.js');
  const dir = mkdtempSync(join(tmpdir(), 'normprune-eio-'));
  try {
    for (const code of ['EIO', 'EPIPE']) {
      // Every write fails as a closed terminal's does: an 'error' event after the write returns.
      const preload = join(dir, `${code}.js`);
      writeFileSync(
        preload,
        `for (const s of [process.stdout, process.stderr]) s.write = () => {
          process.nextTick(() => s.emit('error', Object.assign(new Error('write ${code}'), { code: '${code}' })));
          return true;
        };`,
      );
      const r = spawnSync(process.execPath, ['-r', preload, bin, 'list'], { encoding: 'utf8' });
      expect([code, r.status, r.signal]).toEqual([code, 0, null]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
