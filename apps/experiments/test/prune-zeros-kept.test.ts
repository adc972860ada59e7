// prune's line gave "removed" (1 - non-zero after / parameters before) and the export's bytes,
// but not that the export still holds zeros: a decomposed Dense 'input' first layer whose dead
// groups are model inputs (pixels) keeps their rows as zeros, so a model reported 43.58% removed
// exported a file only 25% smaller. The line now says how many parameters the export holds and
// how many of them are zeros left in place.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { decomposedDense, magnitudes } from '@normprune/layers';
import { fileSystem, initBackend } from '@normprune/runtime';
import { cli } from './helpers';

test("prune says how many zeros its export keeps in place (a Dense 'input' layer's dead model inputs)", async () => {
  await initBackend({ prefer: 'cpu', quiet: true });
  const tmp = mkdtempSync(join(tmpdir(), 'prune-zeros-kept-'));
  const model = tfl.sequential({
    layers: [
      decomposedDense({ inputShape: [6], units: 4, name: 'd1', activation: 'relu', granularity: 'input' }),
      tfl.layers.dense({ units: 3, name: 'd2', biasInitializer: 'ones' }),
    ],
  });
  model
    .getLayer('d1')
    .setWeights([tf.ones([6, 4]), tf.tensor1d([1, 0, 1, 0, 1, 1]), tf.tensor1d([0.5, 0.5, 0.5, 0.5])]);
  expect(Array.from(magnitudes(model)[0].magnitude.dataSync())).toEqual([1, 0, 1, 0, 1, 1]);
  const src = join(tmp, 'model');
  await model.save(fileSystem(src));
  model.dispose();
  const out = join(tmp, 'out');
  const r = await cli(['prune', '--model', src, '--out', out, '--backend', 'cpu']);
  expect(r.code).toBe(0);
  // Before: 6 x 4 + 4 + 4 x 3 + 3 = 43. Inputs 1 and 3 are dead: their rows of d1 (2 x 4 = 8
  // weights) stay as zeros, as model inputs are never removed; nothing else is zero.
  expect(r.out).toBe(
    `43 parameters -> 35 non-zero (18.60% removed); exported ${r.out.match(/exported (\d+) bytes/)![1]} bytes to ${out}; ` +
      'the export holds 43 parameters, 8 of them zeros left in place (zero biases, dead 2-D kernels, ' +
      'weights from model inputs: surgery removes whole units and channels only)',
  );
});

test('with no zeros in the export the line ends at the export', async () => {
  await initBackend({ prefer: 'cpu', quiet: true });
  const tmp = mkdtempSync(join(tmpdir(), 'prune-zeros-kept-'));
  const model = tfl.sequential({
    layers: [
      decomposedDense({ inputShape: [6], units: 4, name: 'd1', activation: 'relu', biasInitializer: 'ones' }),
      tfl.layers.dense({ units: 3, name: 'd2', biasInitializer: 'ones' }),
    ],
  });
  const m = magnitudes(model)[0].magnitude;
  m.assign(tf.mul(m, tf.tensor1d([1, 0, 1, 1])));
  const src = join(tmp, 'model');
  await model.save(fileSystem(src));
  model.dispose();
  const out = join(tmp, 'out');
  const r = await cli(['prune', '--model', src, '--out', out, '--backend', 'cpu']);
  expect(r.code).toBe(0);
  // d1 loses unit 1 (6 + 1) and d2 its row (3): 43 - 10 = 33, all non-zero.
  expect(r.out).toMatch(/^43 parameters -> 33 non-zero \(23\.26% removed\); exported \d+ bytes to \S+$/);
});
