// What a sweep runs when no flag says: a grid over the config's `sweep` lists (its lambdas, the
// granularities it gives), else the config's own lambda; and a bisection (--target-compression)
// takes 4 steps after its expansion. Every sweep in the tests gave --lambda or --bisect-steps, so
// a changed default went unnoticed (audit M215, M216). The points are stand-ins (runExperiment
// replaced, no training): what is under test is which points the sweep runs and records.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import * as pipeline from '../src/pipeline';
import { loadExperiment, runSweep, type RunResults } from '../src/index';
import { cli, writeVariant } from './helpers';

jest.mock('../src/pipeline', () => {
  const actual = jest.requireActual('../src/pipeline');
  return { __esModule: true, ...actual, runExperiment: jest.fn() };
});
const runExperiment = pipeline.runExperiment as jest.MockedFunction<typeof pipeline.runExperiment>;

/** A stand-in point's compression at `lambda`: monotone, 50% removed at lambda 0.01 ln 2 = 0.00693. */
const monotone = (lambda: number) => 100 * (1 - Math.exp(-lambda / 0.01));

let tmp: string;
beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'normprune-sweep-defaults-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeEach(() => {
  runExperiment.mockReset();
  runExperiment.mockImplementation(async (o) => {
    const errors = { testError: 0.02, validationError: 0.02 };
    return {
      compressionPct: monotone(o.config.training.proximal.lambda),
      baseline: errors,
      compressed: errors,
    } as RunResults;
  });
});

/** Each point the sweep ran: its folder, and the lambda and dense granularity of its config. */
const pointsRun = () =>
  runExperiment.mock.calls.map(([o]) => ({
    dir: basename(o.out),
    lambda: o.config.training.proximal.lambda,
    dense: o.config.decompose.dense,
  }));
const sweepFile = (out: string) => JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8'));

/**
 * The path of a 4-step bisection for 50% from lenet-500-300's lambda 0.0015: x4 until reached (0.006
 * misses with 45.12%, 0.024 reaches), then the geometric middles of the bracket, to 4 digits.
 */
const PATH = [0.0015, 0.006, 0.024, 0.012, 0.008485, 0.007135, 0.006543];

describe('--target-compression without --bisect-steps', () => {
  test('runs 4 bisection steps after the expansion, and is the same sweep as --bisect-steps 4', async () => {
    // Audit M215: a default of 3 or 5 steps passed every test.
    const out = join(tmp, 'bisect');
    const bisect = (...extra: string[]) =>
      cli(['sweep', 'lenet-500-300', '--target-compression', '50', ...extra, '--out', out]);
    const r = await bisect();
    expect(r.code).toBe(0);
    expect(pointsRun().map((p) => p.lambda)).toEqual(PATH);
    const sweep = sweepFile(out);
    expect(sweep.points.map((p: { label: string }) => p.label)).toEqual(PATH.map((l) => `lambda-${l}`));
    expect(sweep.bisection).toEqual({ run: expect.any(String), target: 50, steps: 4 });
    // The answer is the smallest lambda reaching 50%; the last step, below it, is the bracket's bottom.
    expect(r.out).toMatch(
      /^target 50% removed: smallest lambda reaching it 0\.007135 \(51\.01%\); the largest below it, 0\.006543, missed it \(48\.02%\)$/m,
    );
    // Given as --bisect-steps 4, it is this sweep: run again along the same path, not refused as
    // another sweep in its folder.
    runExperiment.mockClear();
    expect((await bisect('--bisect-steps', '4')).code).toBe(0);
    expect(sweepFile(out).key).toBe(sweep.key);
    expect(pointsRun().map((p) => p.lambda)).toEqual(PATH);
  });

  test('runSweep without bisectSteps takes 4, as the CLI does', async () => {
    const config = loadExperiment('lenet-500-300');
    const sweep = (name: string, bisectSteps?: number) =>
      runSweep({
        config,
        budgetName: 'full',
        budget: {},
        seed: 1,
        out: join(tmp, name),
        targetCompression: 50,
        bisectSteps,
      });
    expect((await sweep('api-default')).map((p) => p.lambda)).toEqual(PATH);
    expect(sweepFile(join(tmp, 'api-default')).bisection.steps).toBe(4);
    // The sweep's key (what makes two sweeps the same) is that of 4 steps given, not of 3 or 5.
    await sweep('api-4', 4);
    await sweep('api-5', 5);
    expect(sweepFile(join(tmp, 'api-default')).key).toBe(sweepFile(join(tmp, 'api-4')).key);
    expect(sweepFile(join(tmp, 'api-default')).key).not.toBe(sweepFile(join(tmp, 'api-5')).key);
  });
});

describe('a grid without --lambda', () => {
  test("runs the config's sweep.lambda, each point named by its lambda", async () => {
    // Audit M216: a sweep that ignored sweep.lambda (and ran the config's one lambda) passed every test.
    const cfg = loadExperiment('lenet-500-300');
    expect([cfg.sweep?.lambda, cfg.sweep?.granularity, cfg.decompose.dense]).toEqual([
      [0.001, 0.0015, 0.002, 0.003],
      undefined,
      'input',
    ]);
    const out = join(tmp, 'grid');
    const r = await cli(['sweep', 'lenet-500-300', '--out', out]);
    expect(r.code).toBe(0);
    expect(pointsRun()).toEqual(
      [0.001, 0.0015, 0.002, 0.003].map((lambda) => ({ dir: `lambda-${lambda}`, lambda, dense: 'input' })),
    );
    const sweep = sweepFile(out);
    expect(sweep.points.map((p: { label: string }) => p.label)).toEqual([
      'lambda-0.001',
      'lambda-0.0015',
      'lambda-0.002',
      'lambda-0.003',
    ]);
    expect(sweep.note).toMatch(
      /^Grid over lambda \[0\.001,0\.0015,0\.002,0\.003\]; the baseline is trained once/,
    );
  });

  test('a config without a sweep field runs its own lambda; one with sweep.granularity alone, that lambda at each', async () => {
    const none = writeVariant(tmp, 'no-grid', (cfg) => {
      delete cfg.sweep;
      cfg.training.proximal.lambda = 0.0025;
    });
    expect((await cli(['sweep', '--config', none, '--out', join(tmp, 'no-grid-sweep')])).code).toBe(0);
    expect(pointsRun()).toEqual([{ dir: 'lambda-0.0025', lambda: 0.0025, dense: 'input' }]);
    runExperiment.mockClear();
    const grans = writeVariant(tmp, 'granularity-grid', (cfg) => {
      cfg.sweep = { granularity: ['output', 'input'] };
    });
    expect((await cli(['sweep', '--config', grans, '--out', join(tmp, 'granularity-sweep')])).code).toBe(0);
    expect(pointsRun()).toEqual([
      { dir: 'lambda-0.0015-output', lambda: 0.0015, dense: 'output' },
      { dir: 'lambda-0.0015-input', lambda: 0.0015, dense: 'input' },
    ]);
  });
});
