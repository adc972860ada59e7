// A grid sweep whose point fails runs its other points, records the failure in its plan and
// exits 1; --resume runs the failed point again, and with --resume a grid without it drops it.
// A signal or a failure in a point's setup (its data, backend, folder) still stops the sweep at
// once, and a bisection (whose next step needs the point's compression) still stops at the
// failure. The points are stand-ins (runExperiment replaced, no training; the real thing:
// disconnected.test.ts).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import * as pipeline from '../src/pipeline';
import { Interrupted, markFailedDuringTraining, type RunResults } from '../src/pipeline';
import { cli, writeVariant } from './helpers';

jest.mock('../src/pipeline', () => {
  const actual = jest.requireActual('../src/pipeline');
  return { __esModule: true, ...actual, runExperiment: jest.fn() };
});
const runExperiment = pipeline.runExperiment as jest.MockedFunction<typeof pipeline.runExperiment>;

let tmp: string;
beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'normprune-sweep-failed-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/**
 * Stand-in points: lambda 50 fails once trained (as a lambda killing every layer does), lambda 60
 * in its setup (as a missing data set does); `interrupt` is Ctrl-C.
 */
const points = (interrupt?: number) =>
  runExperiment.mockImplementation(async (o) => {
    const lambda = o.config.training.proximal.lambda;
    // Every point writes its folder, as a run does.
    mkdirSync(o.out, { recursive: true });
    writeFileSync(join(o.out, 'notes.txt'), 'a file of the point');
    if (lambda === interrupt) throw new Interrupted(join(o.out, '.work', 'checkpoint'));
    if (lambda === 60) throw new Error('data: mnist is not available offline');
    if (lambda === 50) {
      const e = new Error('proximal: surgery cannot prune the trained model');
      markFailedDuringTraining(e);
      throw e;
    }
    const errors = { testError: 0.02, validationError: 0.02 };
    return { compressionPct: lambda, baseline: errors, compressed: errors } as RunResults;
  });
beforeEach(() => {
  runExperiment.mockReset();
  points();
});
const ran = () => runExperiment.mock.calls.map(([o]) => basename(o.out));
const plan = (out: string) => JSON.parse(readFileSync(join(out, '.sweep-plan.json'), 'utf8'));

test('the other points run; the plan records the failure; a grid without it drops it', async () => {
  const out = join(tmp, 'grid');
  const sweep = (lambdas: string, ...extra: string[]) =>
    cli(['sweep', 'lenet-500-300', '--lambda', lambdas, '--out', out, ...extra]);
  const r = await sweep('0.001,50,0.002');
  expect(r.code).toBe(1);
  expect(ran()).toEqual(['lambda-0.001', 'lambda-50', 'lambda-0.002']);
  expect(r.err).toMatch(/sweep: 1 of 3 points failed \(lambda-50: proximal: surgery cannot prune/);
  expect(plan(out).failed).toEqual({ 'lambda-50': 'proximal: surgery cannot prune the trained model' });
  expect(existsSync(join(out, 'sweep.json'))).toBe(false);
  // (The stand-in points write no results.json: none counts as finished.)
  const report = await cli(['report', out]);
  expect(report.code).toBe(1);
  expect(report.err).toMatch(
    /is an interrupted sweep \(no point finished; failed: lambda-50; .*continue it with: normprune sweep .*--resume .*\(failed points run again; with a grid without them, they are dropped\)/,
  );

  // The failed point has no checkpoint (it failed before one): another grid is another plan,
  // unless --resume drops the failed point.
  const without = await sweep('0.001,0.002');
  expect(without.code).toBe(1);
  expect(without.err).toMatch(
    /holds an interrupted sweep of another plan .*or with --resume a grid holding its points but those that failed \(lambda-50\), whose folders go/,
  );
  runExperiment.mockClear();
  const dropped = await sweep('0.001,0.002', '--resume');
  expect(dropped.code).toBe(0);
  expect(dropped.err).toMatch(
    /sweep point lambda-50 failed before \(proximal: .*\) and is not in this grid: its folder is removed/,
  );
  expect(ran()).toEqual(['lambda-0.001', 'lambda-0.002']);
  // A run's files go with the point; files of the user's stay (removeRun's rule).
  expect(readFileSync(join(out, 'lambda-50', 'notes.txt'), 'utf8')).toBe('a file of the point');
  expect(existsSync(join(out, '.sweep-plan.json'))).toBe(false);
  expect(JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8')).points.length).toBe(2);
});

test('--resume with the same grid runs the failed point again; one that succeeds clears the record', async () => {
  const out = join(tmp, 'retry');
  const sweep = (...extra: string[]) =>
    cli(['sweep', 'lenet-500-300', '--lambda', '50,0.001', '--out', out, ...extra]);
  expect((await sweep()).code).toBe(1);
  runExperiment.mockClear();
  expect((await sweep('--resume')).code).toBe(1);
  expect(ran()).toEqual(['lambda-50', 'lambda-0.001']);
  // The cause gone, it finishes.
  runExperiment.mockImplementation(async () => {
    const errors = { testError: 0.02, validationError: 0.02 };
    return { compressionPct: 1, baseline: errors, compressed: errors } as RunResults;
  });
  const done = await sweep('--resume');
  expect(done.code).toBe(0);
  expect(existsSync(join(out, '.sweep-plan.json'))).toBe(false);
});

test("a signal, or a failure in a point's setup, stops the grid at once; a bisection stops at a failed point", async () => {
  points(0.001);
  const grid = join(tmp, 'signal');
  const r = await cli(['sweep', 'lenet-500-300', '--lambda', '0.001,0.002', '--out', grid]);
  expect(r.code).toBe(130);
  expect(ran()).toEqual(['lambda-0.001']);
  expect(plan(grid).failed).toBeUndefined();

  runExperiment.mockReset();
  points();
  const setup = join(tmp, 'setup');
  const d = await cli(['sweep', 'lenet-500-300', '--lambda', '60,0.001', '--out', setup]);
  expect(d.code).toBe(1);
  expect(ran()).toEqual(['lambda-60']);
  expect(d.err).toMatch(/data: mnist is not available offline/);
  expect(d.err).not.toMatch(/points failed/);

  runExperiment.mockReset();
  points();
  const bisect = join(tmp, 'bisect');
  const config = writeVariant(tmp, 'lambda-50', (cfg) => (cfg.training.proximal.lambda = 50));
  const b = await cli(['sweep', '--config', config, '--target-compression', '99', '--out', bisect]);
  expect(b.code).toBe(1);
  expect(ran()).toEqual(['lambda-50']);
  expect(b.err).toMatch(/proximal: surgery cannot prune the trained model/);
  expect(b.err).not.toMatch(/points failed/);
});
