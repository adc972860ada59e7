// Sweeps recorded by normprune before 2026-12-02, whose keys took in the config's name and
// description, are still the same sweeps; sweeps recorded since are the same sweep when only the
// config file's name changed. The points are stand-ins (runExperiment replaced, no training): what
// is under test is which sweep a folder is taken to hold. (A run's checkpoint: outdir.test.ts.)
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pipeline from '../src/pipeline';
import { configHashes, type RunResults } from '../src/pipeline';
import { loadExperiment, runSweep } from '../src/index';
import { cli } from './helpers';

jest.mock('../src/pipeline', () => {
  const actual = jest.requireActual('../src/pipeline');
  return { __esModule: true, ...actual, runExperiment: jest.fn() };
});
const runExperiment = pipeline.runExperiment as jest.MockedFunction<typeof pipeline.runExperiment>;

let tmp: string;
beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'normprune-earlier-hash-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeEach(() => {
  runExperiment.mockReset();
  runExperiment.mockImplementation(async (o) => {
    const errors = { testError: 0.02, validationError: 0.02 };
    const compressionPct = 100 * (1 - Math.exp(-o.config.training.proximal.lambda / 0.01));
    return { compressionPct, baseline: errors, compressed: errors } as RunResults;
  });
});

const sweepFile = (out: string) => join(out, 'sweep.json');
const readSweep = (out: string) => JSON.parse(readFileSync(sweepFile(out), 'utf8'));
const rewrite = (out: string, change: (s: any) => void) => {
  const s = readSweep(out);
  change(s);
  writeFileSync(sweepFile(out), JSON.stringify(s, null, 2));
};

test("a sweep.json keyed as before 2026-12-02 is this sweep's; another key is another sweep's", async () => {
  const out = join(tmp, 'grid');
  const args = ['sweep', 'lenet-500-300', '--lambda', '0.001', '--budget', 'tiny', '--seed', '1'];
  expect((await cli([...args, '--out', out])).code).toBe(0);
  // The key normprune 455a925 wrote in sweep.json for this command (run with it, 2026-12-02).
  const earlier = 'a41ac1123ddbc440';
  expect(readSweep(out).key).not.toBe(earlier);
  rewrite(out, (s) => (s.key = earlier));
  runExperiment.mockClear();
  const again = await cli([...args, '--out', out]);
  expect(again.err).not.toMatch(/another sweep/);
  expect(again.code).toBe(0);
  expect(runExperiment).toHaveBeenCalledTimes(1);
  // Written again, it records this version's key.
  expect(readSweep(out).key).not.toBe(earlier);

  rewrite(out, (s) => (s.key = '0123456789abcdef'));
  const other = await cli([...args, '--out', out]);
  expect(other.code).toBe(1);
  expect(other.err).toMatch(/holds another sweep \(of lenet-500-300: lambda-0\.001/);
});

test('a bisection recorded with the earlier run hash is extended by --resume with more steps', async () => {
  const out = join(tmp, 'bisect');
  const config = loadExperiment('lenet-500-300');
  const sweep = (bisectSteps: number, resume = true) =>
    runSweep({
      config,
      budgetName: 'full',
      budget: {},
      seed: 1,
      out,
      targetCompression: 50,
      bisectSteps,
      resume,
    });
  const first = await sweep(1, false);
  // What normprune recorded as the bisection's run before 2026-12-02: the hash with name and description.
  const [current, earlier] = configHashes(config, {}, 1);
  expect(readSweep(out).bisection.run).toBe(current);
  expect(earlier).not.toBe(current);
  rewrite(out, (s) => (s.bisection.run = earlier));
  expect((await sweep(2)).length).toBe(first.length + 1);
  // Another run's bisection is not extended.
  rewrite(out, (s) => (s.bisection.run = '0123456789abcdef'));
  await expect(sweep(3)).rejects.toThrow(/holds another sweep/);
});

test('a sweep whose config file was renamed since is the same sweep', async () => {
  const out = join(tmp, 'renamed');
  const [first, second] = [join(tmp, 'first.json'), join(tmp, 'second.json')];
  writeFileSync(first, JSON.stringify({ extends: 'lenet-500-300', sweep: { lambda: [0.001, 0.002] } }));
  const args = (config: string) => ['sweep', '--config', config, '--budget', 'tiny', '--out', out];
  expect((await cli(args(first))).code).toBe(0);
  const key = readSweep(out).key;
  renameSync(first, second);
  runExperiment.mockClear();
  const again = await cli(args(second));
  expect(again.err).not.toMatch(/another sweep/);
  expect(again.code).toBe(0);
  expect(readSweep(out).key).toBe(key);
});
