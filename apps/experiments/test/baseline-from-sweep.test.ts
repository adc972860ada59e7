// --baseline-from given a sweep's folder: a sweep keeps its shared baseline (with --keep-baseline)
// in a point's folder, so the error names that folder as the --baseline-from to give, or says
// that the sweep kept none, rather than that "sweeps keep theirs" in the folder given.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSweepFile } from '../src/sweep-file';
import { reproduceTiny } from './helpers';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'normprune-baseline-from-sweep-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const point = (lambda: number) => ({
  label: `lambda-${lambda}`,
  dir: `lambda-${lambda}`,
  lambda,
  compressionPct: 50,
  validationErrorPct: 2,
  testErrorPct: 2,
  baselineValidationErrorPct: 1,
  baselineTestErrorPct: 1,
});

/** A finished sweep's folder of two points; with `kept`, its first point holds a kept baseline. */
function sweepDir(name: string, kept: boolean): string {
  const dir = join(tmp, name);
  const points = [point(0.001), point(0.002)];
  for (const pt of points) mkdirSync(join(dir, pt.dir), { recursive: true });
  if (kept) {
    mkdirSync(join(dir, 'lambda-0.001', '.work', 'baseline'), { recursive: true });
    writeFileSync(join(dir, 'lambda-0.001', '.work', 'baseline', 'baseline.json'), '{}');
  }
  writeSweepFile(dir, { experiment: 'lenet-500-300', note: 'a sweep', points });
  return dir;
}

test("a sweep that kept its baseline: the point's folder to give", async () => {
  const dir = sweepDir('kept', true);
  const out = join(tmp, 'run-kept');
  const r = await reproduceTiny(out, '--baseline-from', dir);
  expect(r.code).toBe(1);
  expect(r.err).toContain(
    `--baseline-from ${dir}: a sweep's folder; the baseline it kept is in its point ${join(dir, 'lambda-0.001')}: ` +
      `give --baseline-from ${join(dir, 'lambda-0.001')}\n`,
  );
  expect(existsSync(out)).toBe(false);
});

test('a sweep that kept none: run it again with --keep-baseline', async () => {
  const dir = sweepDir('none', false);
  const r = await reproduceTiny(join(tmp, 'run-none'), '--baseline-from', dir);
  expect(r.code).toBe(1);
  expect(r.err).toContain(
    `--baseline-from ${dir}: a sweep's folder, and none of its points holds a kept baseline (a sweep keeps its ` +
      "shared baseline only with --keep-baseline, in its first point's folder); run the sweep again with " +
      '--keep-baseline, or drop --baseline-from\n',
  );
});

test('a run folder without a kept baseline is told where a sweep keeps one', async () => {
  const dir = join(tmp, 'plain-run');
  mkdirSync(dir);
  const r = await reproduceTiny(join(tmp, 'run-plain'), '--baseline-from', dir);
  expect(r.code).toBe(1);
  expect(r.err).toContain(
    "train that run with --keep-baseline (a sweep's: in its first point's folder), or drop --baseline-from\n",
  );
});
