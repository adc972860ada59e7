// A new run that fails before its first checkpoint (here its baseline diverges at once: a learning
// rate of 1e30) leaves nothing of it: the folder it made goes, and one that was there is left as it
// was, so that the command with the config fixed as the error says (a lower learning rate) runs
// there, rather than being refused as "another config" by the failed run's config.json.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, writeVariant } from './helpers';

let tmp: string;
let diverging: string;
let fixed: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'normprune-failed-before-checkpoint-'));
  const config = (name: string, learningRate: number) =>
    writeVariant(tmp, name, (cfg) =>
      Object.assign(cfg.training.baseline, { optimizer: 'sgd', momentum: 0, learningRate }),
    );
  diverging = config('diverging', 1e30);
  fixed = config('fixed', 0.01);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const train = (file: string, out: string, ...extra: string[]) =>
  cli(['train', '--config', file, '--budget', 'tiny', '--backend', 'wasm', '--out', out, ...extra]);

test('the folder it made goes, and the fixed config then runs there', async () => {
  const out = join(tmp, 'runs', 'a');
  const failed = await train(diverging, out);
  expect(failed.code).toBe(1);
  expect(failed.err).toMatch(/the training loss is (NaN|Infinity); lower training\.baseline\.learningRate/);
  expect(existsSync(join(tmp, 'runs'))).toBe(false);
  const again = await train(fixed, out);
  expect(again.err).not.toMatch(/another config/);
  expect(again.code).toBe(0);
  expect(existsSync(join(out, 'results.json'))).toBe(true);
});

test('a folder that was there keeps only what it held', async () => {
  const out = join(tmp, 'given');
  mkdirSync(out);
  writeFileSync(join(out, 'notes.txt'), 'mine');
  const failed = await train(diverging, out, '--force');
  expect(failed.code).toBe(1);
  expect(readdirSync(out)).toEqual(['notes.txt']);
});

test('an interrupted run is left for --resume', async () => {
  const out = join(tmp, 'interrupted');
  expect((await train(fixed, out, '--stop-after-steps', '1')).code).toBe(130);
  expect(existsSync(join(out, 'config.json'))).toBe(true);
});
