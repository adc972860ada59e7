// --resume --keep-baseline on a run stopped past its baseline phase keeps the baseline, as the
// uninterrupted run keeps it, when RUN_DIR/.work/baseline is missing (the run began without the
// flag, or the folder was removed since). It finished exit 0 and kept nothing, without a word.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, reproduceTiny } from './helpers';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'normprune-resume-keep-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const kept = (run: string) => join(run, '.work', 'baseline');
const keptJson = (run: string) => readFileSync(join(kept(run), 'baseline.json'), 'utf8');
/** A kept baseline less its timings (a process's, not the run's). */
const keptRun = (run: string) => {
  const { seconds: _s, metrics, ...rest } = JSON.parse(keptJson(run));
  return {
    ...rest,
    metrics: (metrics as string[]).map((l) => {
      const { seconds: _t, samplesPerSec: _p, numTensors: _n, ...line } = JSON.parse(l);
      return line;
    }),
  };
};
const phase = (run: string) =>
  JSON.parse(readFileSync(join(run, '.work', 'checkpoint', 'state.json'), 'utf8')).phase;

/**
 * A tiny run stopped in its proximal phase (after the baseline's 2 steps and 1 more, or 1 step
 * when the baseline is reused): the baseline is trained.
 */
async function stoppedPastBaseline(out: string, ...extra: string[]): Promise<void> {
  const steps = extra.includes('--baseline-from') ? '1' : '3';
  expect((await reproduceTiny(out, '--stop-after-steps', steps, ...extra)).code).toBe(130);
  expect(phase(out)).toBe('proximal');
}

test('the kept baseline, removed while the run was stopped, is kept again by --resume --keep-baseline', async () => {
  const whole = join(tmp, 'whole');
  expect((await reproduceTiny(whole, '--keep-baseline')).code).toBe(0);
  const out = join(tmp, 'removed');
  await stoppedPastBaseline(out, '--keep-baseline');
  const before = keptJson(out);
  // Same seed, same backend: the stopped run kept what the uninterrupted one kept.
  expect(keptRun(out)).toEqual(keptRun(whole));
  rmSync(kept(out), { recursive: true });
  const resumed = await reproduceTiny(out, '--keep-baseline', '--resume');
  expect(resumed.code).toBe(0);
  // Kept again from the run's copy of its trained baseline: timings too.
  expect(keptJson(out)).toBe(before);
  expect(keptRun(out).metrics).toEqual([expect.objectContaining({ phase: 'baseline', epoch: 1 })]);
  // It is a baseline another run reuses, and eval compares against.
  const again = await reproduceTiny(join(tmp, 'reuse'), '--baseline-from', out);
  expect(again.code).toBe(0);
  expect(again.err).toContain(`baseline reused from ${out}`);
  const compare = await cli(['eval', '--model', out, '--compare', kept(out), '--backend', 'wasm']);
  expect(compare.code).toBe(0);
});

test('a run begun without --keep-baseline keeps its baseline when resumed with it', async () => {
  const out = join(tmp, 'late');
  await stoppedPastBaseline(out);
  expect(existsSync(kept(out))).toBe(false);
  expect((await reproduceTiny(out, '--keep-baseline', '--resume')).code).toBe(0);
  expect(keptRun(out)).toEqual(keptRun(join(tmp, 'whole')));
  // Without the flag, a resumed run keeps none.
  const none = join(tmp, 'none');
  await stoppedPastBaseline(none);
  expect((await reproduceTiny(none, '--resume')).code).toBe(0);
  expect(existsSync(join(none, '.work'))).toBe(false);
});

test('a run that reused a baseline keeps that one when resumed with --keep-baseline', async () => {
  const out = join(tmp, 'reused');
  const from = join(tmp, 'whole');
  await stoppedPastBaseline(out, '--baseline-from', from);
  expect((await reproduceTiny(out, '--baseline-from', from, '--keep-baseline', '--resume')).code).toBe(0);
  expect(keptJson(out)).toBe(keptJson(from));
});

test('with its copy of the trained baseline gone too, --resume --keep-baseline says so and changes nothing', async () => {
  const out = join(tmp, 'gone');
  await stoppedPastBaseline(out);
  rmSync(join(out, '.work', 'baseline-model'), { recursive: true });
  const r = await reproduceTiny(out, '--keep-baseline', '--resume');
  expect(r.code).toBe(1);
  expect(r.err).toContain(
    `--keep-baseline: the copy of the trained baseline this run holds in ${join(out, '.work', 'baseline-model')} is missing`,
  );
  expect(r.err).toContain('drop --keep-baseline to continue the run');
  expect(existsSync(kept(out))).toBe(false);
  expect(phase(out)).toBe('proximal');
  // Continued without the flag, it finishes.
  expect((await reproduceTiny(out, '--resume')).code).toBe(0);
});
