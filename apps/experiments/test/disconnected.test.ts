// A run whose penalty (or prune.threshold) leaves no path from input to output: surgery refuses
// the model, and the run says so in its config's terms, naming the field to change, rather than
// with surgery's advice for the package's API (layerMultipliers of @normprune/prox).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, writeVariant } from './helpers';

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
