// A run whose penalty (or prune.threshold) leaves no path from input to output: surgery refuses
// the model, and the run says so in its config's terms, naming the field to change, rather than
// with surgery's advice for the package's API (layerMultipliers of @normprune/prox). Such a run
// fails after its last checkpoint, every time it is resumed: report, eval and reruns say it failed.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, tinyWasm, writeVariant } from './helpers';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'normprune-disconnected-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const train = (config: string, name: string) =>
  cli(['train', '--config', config, '--budget', 'tiny', '--out', join(tmp, name), '--backend', 'wasm']);

test('a lambda that kills every group names training.proximal.lambda and layerMultipliers', async () => {
  const config = writeVariant(tmp, 'lambda-50', (cfg) => {
    cfg.training.proximal.lambda = 50;
    cfg.training.proximal.schedule = { type: 'constant' };
  });
  const r = await train(config, 'lambda');
  expect(r.code).toBe(1);
  expect(r.err).toMatch(
    /proximal: surgery cannot prune the trained model: every unit of layer 'dense1' is dead: the model's output no longer depends on its input/,
  );
  expect(r.err).toMatch(
    /proximal training at lambda 50 left no live group in decomposed layers 'dense1', 'dense2', 'logits': lower training\.proximal\.lambda \(this run's: 50; in a sweep, --lambda\), or exempt a layer from the penalty with training\.proximal\.layerMultipliers \(e\.g\. \{"dense1": 0\}\)/,
  );
  expect(r.err).not.toMatch(/@normprune\/prox|prune\.threshold/);
});

test('a prune.threshold that kills every group live after proximal training names prune.threshold', async () => {
  const config = writeVariant(tmp, 'threshold-100', (cfg) => {
    cfg.prune = { ...cfg.prune, threshold: 100 };
  });
  const r = await train(config, 'threshold');
  expect(r.code).toBe(1);
  expect(r.err).toMatch(
    /prune\.threshold 100 left no live group in decomposed layers 'dense1', 'dense2', 'logits' \(\d+, \d+, \d+ live after proximal training\): lower prune\.threshold/,
  );
  expect(r.err).not.toMatch(/@normprune\/prox|training\.proximal\.lambda/);
});

test('a failed run is reported as failed, not as interrupted, and --resume says it retries', async () => {
  const config = writeVariant(tmp, 'lambda-50-again', (cfg) => {
    cfg.training.proximal.lambda = 50;
    cfg.training.proximal.schedule = { type: 'constant' };
  });
  const dir = join(tmp, 'failed');
  expect((await train(config, 'failed')).code).toBe(1);
  const failed = JSON.parse(readFileSync(join(dir, '.work', 'checkpoint', 'failed.json'), 'utf8'));
  expect(failed.message).toMatch(/^proximal: surgery cannot prune the trained model/);
  const shown =
    /is an unfinished run that failed \(\d{4}-\d\d-\d\dT[^ ]+: proximal: surgery cannot prune the trained model/;
  for (const args of [
    ['report', dir],
    ['eval', '--model', dir],
  ]) {
    const r = await cli(args);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(shown);
    expect(r.err).toMatch(/a changed config is another run \(start it with --force, or in another --out\)/);
    expect(r.err).not.toMatch(/\(interrupted\)/);
  }
  const again = await train(config, 'failed');
  expect(again.code).toBe(1);
  expect(again.err).toMatch(/holds an unfinished run that failed \(.*surgery cannot prune/);
  const retried = await cli([
    'train',
    '--config',
    config,
    '--budget',
    'tiny',
    '--out',
    dir,
    '--backend',
    'wasm',
    '--resume',
  ]);
  expect(retried.code).toBe(1);
  expect(retried.err).toMatch(
    /note: this run failed after this checkpoint \(.*\): proximal: surgery cannot prune/,
  );
  expect(existsSync(join(dir, '.work', 'checkpoint', 'failed.json'))).toBe(true);
});

test('a failure whose cause is gone: --resume goes on, and its next checkpoint drops the record', async () => {
  const config = writeVariant(tmp, 'plain', () => undefined);
  const dir = join(tmp, 'cause-gone');
  const args = ['train', '--config', config, '--budget', 'tiny', '--out', dir, '--backend', 'wasm'];
  expect((await cli([...args, '--stop-after-steps', '1'])).code).toBe(130);
  // As a full disk would have left it: the checkpoint, and the failure recorded after it.
  const record = join(dir, '.work', 'checkpoint', 'failed.json');
  writeFileSync(
    record,
    JSON.stringify({ message: 'ENOSPC: no space left on device', at: '2026-12-02T18:00:00.000Z' }),
  );
  const report = await cli(['report', dir]);
  expect(report.err).toMatch(
    /is an unfinished run that failed \(2026-12-02T18:00:00\.000Z: ENOSPC: no space left on device\)/,
  );
  expect(report.err).toMatch(
    /if the cause lay outside the run \(disk space, memory\) and is gone, continue it with: normprune train .* --resume/,
  );
  const resumed = await cli([...args, '--resume', '--stop-after-steps', '1']);
  expect(resumed.code).toBe(130);
  expect(resumed.err).toMatch(
    /note: this run failed after this checkpoint \(2026-12-02T18:00:00\.000Z\): ENOSPC/,
  );
  expect(existsSync(record)).toBe(false);
  expect((await cli(['report', dir])).err).toMatch(/is an unfinished run \(interrupted\)/);
});

test('a grid runs on past a failed point; --resume retries it, or drops it from a grid without it', async () => {
  const out = join(tmp, 'sweep');
  const sweep = (lambdas: string, ...extra: string[]) =>
    cli(['sweep', 'lenet-500-300', '--lambda', lambdas, ...tinyWasm(out), ...extra]);
  const first = await sweep('50,0.001');
  expect(first.code).toBe(1);
  expect(first.err).toMatch(
    /^sweep point lambda-50 failed: proximal: surgery cannot prune the trained model/m,
  );
  expect(first.err).toMatch(
    /sweep: 1 of 2 points failed \(lambda-50: proximal: surgery cannot prune the trained model.*\); the others finished\. Once the cause is gone, continue the sweep with: .*--resume/,
  );
  expect(existsSync(join(out, 'lambda-0.001', 'results.json'))).toBe(true);
  expect(existsSync(join(out, 'sweep.json'))).toBe(false);
  const plan = JSON.parse(readFileSync(join(out, '.sweep-plan.json'), 'utf8'));
  expect(Object.keys(plan.failed)).toEqual(['lambda-50']);

  // Run again without --resume: named as failed.
  const again = await sweep('50,0.001');
  expect(again.code).toBe(1);
  expect(again.err).toMatch(
    /holds an interrupted sweep \(unfinished: lambda-50 that failed \(\d{4}-[^ ]+: proximal: surgery cannot prune the trained model/,
  );
  // A grid without the failed point, without --resume: refused, saying what --resume would do.
  const without = await sweep('0.001');
  expect(without.code).toBe(1);
  expect(without.err).toMatch(
    /continue it with --resume \(points that failed run again; a grid without them, given --resume, drops them and their folders\)/,
  );
  // --resume retries it (and it fails again); the finished point is reused.
  const retried = await sweep('50,0.001', '--resume');
  expect(retried.code).toBe(1);
  expect(retried.err).toMatch(/^sweep point lambda-0\.001: finished before, reused$/m);
  expect(retried.err).toMatch(/^sweep point lambda-50 failed: /m);
  // With --resume, a grid without it drops it and finishes.
  const dropped = await sweep('0.001', '--resume');
  expect(dropped.code).toBe(0);
  expect(dropped.err).toMatch(
    /^sweep point lambda-50 failed before \(proximal: .*\) and is not in this grid: its folder is removed$/m,
  );
  expect(existsSync(join(out, 'lambda-50'))).toBe(false);
  expect(existsSync(join(out, '.sweep-plan.json'))).toBe(false);
  const done = JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8'));
  expect(done.points.map((p: { label: string }) => p.label)).toEqual(['lambda-0.001']);
});
