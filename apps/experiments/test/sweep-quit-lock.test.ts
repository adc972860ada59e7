// A stop signal that quits the process inside a sweep's point (before its training, after it, or
// a second Ctrl-C) exits at once, past the sweep's own clean-up: the sweep's folder lock goes with
// the point's (it was left behind, naming a dead process, until the next command took it over).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyBudget, BUDGET_PRESETS } from '../src/config';
import { LOCK_FILE } from '../src/fsutil';
import { loadExperiment, runSweep } from '../src/index';
import { DUPLICATE_MS } from '../src/signals';

let tmp: string;
beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'normprune-sweep-quit-lock-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

test.each([
  ['before its training', /^backend: /, 1],
  ['in its training (a second Ctrl-C)', /^baseline epoch 1\/1/, 2],
])('a quit %s releases the sweep folder lock and the point folder lock', async (_when, at, count) => {
  const out = join(tmp, _when.replace(/\W+/g, '-'));
  const point = join(out, 'lambda-0.001');
  let locks: { sweep: boolean; point: boolean } | undefined;
  let sent = false;
  // process.exit, which a quit calls, is stood in for by a throw that records the locks left.
  const exit = jest.spyOn(process, 'exit').mockImplementation(((code: number) => {
    locks = { sweep: existsSync(join(out, LOCK_FILE)), point: existsSync(join(point, LOCK_FILE)) };
    throw new Error(`exit ${code}`);
  }) as never);
  try {
    await expect(
      runSweep({
        config: applyBudget(loadExperiment('lenet-500-300'), BUDGET_PRESETS.tiny),
        budgetName: 'tiny',
        budget: BUDGET_PRESETS.tiny,
        seed: 1,
        out,
        backend: 'wasm',
        lambdas: [0.001, 0.002],
        log: (line) => {
          if (!sent && at.test(line)) {
            sent = true;
            // Each DUPLICATE_MS after the last as Date.now tells: sooner, a second is the same stop.
            const start = Date.now();
            for (let i = 0; i < count; i++) {
              const now = jest.spyOn(Date, 'now').mockReturnValue(start + i * DUPLICATE_MS);
              process.emit('SIGINT', 'SIGINT');
              now.mockRestore();
            }
          }
        },
      }),
    ).rejects.toThrow('exit 130');
  } finally {
    exit.mockRestore();
  }
  expect(sent).toBe(true);
  expect(locks).toEqual({ sweep: false, point: false });
});
