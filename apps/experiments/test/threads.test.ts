// --threads: the threaded wasm build gives the same bits as the single-threaded
// one (XNNPACK splits the work by output tiles, each summed by one thread).
// --release-saved-tensors-during-backprop: the same bits too (it only frees
// earlier). Each run is its own process: the wasm binary is chosen, and the
// backward pass replaced, once per process.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, spawnCli } from './helpers';

let tmp: string;
beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'normprune-threads-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function run(args: string[]): Promise<{ code: number | null; out: string }> {
  const child = spawnCli(args, { ...process.env, NORMPRUNE_THREADS: '' });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, out })));
}

function weights(dir: string): string[] {
  return readdirSync(join(dir, 'model'))
    .filter((f) => f.endsWith('.bin'))
    .sort()
    .map((f) => readFileSync(join(dir, 'model', f)).toString('base64'));
}

const base = ['reproduce', 'lenet-5', '--budget', 'trainSubset=256,testSubset=128,validation=64,epochs=1'];

/** The single-threaded run both tests compare with: run once, by whichever test asks first. */
let singleThreaded: Promise<{ code: number | null; out: string }> | undefined;
function single(): Promise<{ code: number | null; out: string }> {
  singleThreaded ??= run([...base, '--backend', 'wasm', '--threads', '1', '--out', join(tmp, 't1')]);
  return singleThreaded;
}

test('a run with --threads 2 ends with the same weights as one with a single thread', async () => {
  const [one, two] = await Promise.all([
    single(),
    run([...base, '--backend', 'wasm', '--threads', '2', '--out', join(tmp, 't2')]),
  ]);
  expect(one.code).toBe(0);
  expect(two.code).toBe(0);
  const r1 = JSON.parse(readFileSync(join(tmp, 't1', 'results.json'), 'utf8'));
  const r2 = JSON.parse(readFileSync(join(tmp, 't2', 'results.json'), 'utf8'));
  expect([r1.backend.threads, r2.backend.threads]).toEqual([1, 2]);
  expect(weights(join(tmp, 't2'))).toEqual(weights(join(tmp, 't1')));
  expect(r2.compressed.testError).toBe(r1.compressed.testError);
});

test('a run with --release-saved-tensors-during-backprop ends with the same weights as one without', async () => {
  // The single-threaded run is the run without it (shared with the test above when both run).
  const dir = join(tmp, 'released');
  const [one, r] = await Promise.all([
    single(),
    run([
      ...base,
      '--backend',
      'wasm',
      '--threads',
      '1',
      '--out',
      dir,
      '--release-saved-tensors-during-backprop',
    ]),
  ]);
  expect(one.code).toBe(0);
  expect(r.code).toBe(0);
  expect(r.out).toMatch(/backward pass: frees saved tensors as it goes/);
  const without = JSON.parse(readFileSync(join(tmp, 't1', 'results.json'), 'utf8'));
  const withIt = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8'));
  expect(withIt.command).toMatch(/ --release-saved-tensors-during-backprop$/);
  expect(weights(dir)).toEqual(weights(join(tmp, 't1')));
  expect(withIt.compressed.testError).toBe(without.compressed.testError);
  expect(
    readFileSync(join(dir, 'metrics.jsonl'), 'utf8').replace(/"(seconds|samplesPerSec)":[\d.]+/g, ''),
  ).toBe(
    readFileSync(join(tmp, 't1', 'metrics.jsonl'), 'utf8').replace(/"(seconds|samplesPerSec)":[\d.]+/g, ''),
  );
});

test('--threads takes a whole number from 1 to 64', async () => {
  for (const bad of ['0', '1.5', 'two', '65']) {
    const r = await cli(['reproduce', 'lenet-500-300', '--threads', bad, '--out', join(tmp, 'never')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--threads: expected a whole number from 1 to 64/);
  }
});
