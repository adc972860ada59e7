// `eval --model` / `prune --model` given a sweep folder, which holds no model of its own: the error
// says it is a sweep and names the folders of its points that hold a model (a bisection's answer
// first), rather than only "no model.json" there.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSweepFile } from '../src/sweep-file';
import { cli } from './helpers';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'normprune-sweep-hint-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const point = (lambda: number, compressionPct: number) => ({
  label: `lambda-${lambda}`,
  dir: `lambda-${lambda}`,
  lambda,
  compressionPct,
  validationErrorPct: 2,
  testErrorPct: 2,
  baselineValidationErrorPct: 1,
  baselineTestErrorPct: 1,
});

/** A sweep folder of three points; `withModel` says which of them hold model/model.json. */
function sweepDir(name: string, withModel: boolean[], bisection?: { target: number }): string {
  const dir = join(tmp, name);
  const points = [point(0.001, 20), point(0.004, 60), point(0.002, 45)];
  points.forEach((pt, i) => {
    mkdirSync(join(dir, pt.dir, 'model'), { recursive: true });
    if (withModel[i]) writeFileSync(join(dir, pt.dir, 'model', 'model.json'), '{}');
  });
  writeSweepFile(dir, {
    experiment: 'lenet-500-300',
    note: 'a sweep',
    points,
    ...(bisection ? { bisection: { run: 'abc', steps: 4, ...bisection } } : {}),
  });
  return dir;
}

test('eval of a grid sweep names its points', async () => {
  const dir = sweepDir('grid', [true, true, true]);
  const r = await cli(['eval', '--model', dir]);
  expect(r.code).toBe(1);
  expect(r.err).toContain(
    `${dir} is a sweep of lenet-500-300: give the folder of one of its points, each a run with its model/: ` +
      `${join(dir, 'lambda-0.001')}, ${join(dir, 'lambda-0.004')}, ${join(dir, 'lambda-0.002')}\n`,
  );
});

test('prune of a bisection names the answer first, and only points that hold a model', async () => {
  const dir = sweepDir('bisection', [false, true, true], { target: 40 });
  const r = await cli(['prune', '--model', dir, '--out', join(tmp, 'out')]);
  expect(r.code).toBe(1);
  expect(r.err).toContain(
    `give the folder of one of its points, each a run with its model/: ${join(dir, 'lambda-0.002')} (the answer), ${join(dir, 'lambda-0.004')}\n`,
  );
});

test('an exported sweep, whose points hold no model, gets no list', async () => {
  const dir = sweepDir('exported', [false, false, false]);
  const r = await cli(['eval', '--model', dir]);
  expect(r.code).toBe(1);
  expect(r.err).toContain(`no model.json in ${dir} (nor in ${join(dir, 'model')})\n`);
});
