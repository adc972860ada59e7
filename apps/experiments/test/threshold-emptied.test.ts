// prune --threshold T that leaves a layer nothing live (every group magnitude, or in a plain model
// every kernel weight, at or below T) was refused with surgery's advice to train again with a
// smaller lambda or a layerMultipliers entry, which blamed the penalty for what the flag did
// (exit 1). It is a usage error (exit 2) naming --threshold, the layers it empties with their
// largest value, and the threshold below which they keep something.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { decomposedDense, magnitudes } from '@normprune/layers';
import { fileSystem, initBackend } from '@normprune/runtime';
import { cli } from './helpers';

beforeAll(async () => {
  await initBackend({ prefer: 'cpu', quiet: true });
});

test('prune --threshold that empties a decomposed layer names the flag and the largest magnitude (exit 2)', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'threshold-emptied-'));
  const model = tfl.sequential({
    layers: [
      decomposedDense({ inputShape: [6], units: 4, name: 'dense1', activation: 'relu' }),
      decomposedDense({ units: 3, name: 'dense2' }),
    ],
  });
  const [m1, m2] = magnitudes(model);
  m1.magnitude.assign(tf.tensor1d([0.25, 0.5, 0, 0.375]));
  m2.magnitude.assign(tf.tensor1d([2, 3, 4]));
  const src = join(tmp, 'model');
  await model.save(fileSystem(src));
  model.dispose();
  const out = join(tmp, 'out');
  const r = await cli(['prune', '--model', src, '--out', out, '--backend', 'cpu', '--threshold', '0.5']);
  expect(r.code).toBe(2);
  expect(r.err).toBe(
    'normprune: --threshold 0.5 leaves no live group in layer dense1 (its largest group magnitude is 0.5): ' +
      "the model's output no longer depends on its input, and removing them would disconnect the model " +
      "(layers left without a live unit: 'dense1'); give a --threshold below 0.5\n",
  );
  expect(existsSync(out)).toBe(false);
  // Below it, dense1's unit of magnitude 0.5 stays.
  const ok = await cli(['prune', '--model', src, '--out', out, '--backend', 'cpu', '--threshold', '0.4']);
  expect(ok.code).toBe(0);
  // 6 x 4 + 4 + 4 x 3 + 3 = 43 parameters; non-zero after: dense1's one unit's 6 weights and
  // dense2's 1 x 3 (the biases are the initialiser's zeros): 9, 1 - 9 / 43 = 79.07% removed.
  expect(ok.out).toMatch(/^43 parameters -> 9 non-zero \(79\.07% removed\)/m);
});

test('prune --threshold that zeroes every kernel weight of a plain layer names the flag and the largest |w| (exit 2)', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'threshold-emptied-'));
  const model = tfl.sequential({
    layers: [
      tfl.layers.dense({ inputShape: [2], units: 2, name: 'fc1', activation: 'relu' }),
      tfl.layers.dense({ units: 2, name: 'fc2' }),
    ],
  });
  model.getLayer('fc1').setWeights([tf.tensor2d([0.125, -0.25, 0.0625, 0.1875], [2, 2]), tf.zeros([2])]);
  model.getLayer('fc2').setWeights([tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.zeros([2])]);
  const src = join(tmp, 'model');
  await model.save(fileSystem(src));
  model.dispose();
  const out = join(tmp, 'out');
  const r = await cli(['prune', '--model', src, '--out', out, '--backend', 'cpu', '--threshold', '0.3']);
  expect(r.code).toBe(2);
  expect(r.err).toMatch(
    /^normprune: --threshold 0\.3 leaves no live weight in layer fc1 \(its largest \|kernel weight\| is 0\.25\): .*; give a --threshold below 0\.25\n$/,
  );
  expect(r.err).not.toMatch(/lambda|layerMultipliers/);
  expect(existsSync(out)).toBe(false);
});

test('prune --threshold that zeroes every kernel weight of a plain Conv2DTranspose names the flag and the largest |w| (exit 2)', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'threshold-emptied-'));
  const model = tfl.sequential({
    layers: [
      tfl.layers.conv2d({ inputShape: [3, 3, 1], filters: 2, kernelSize: 1, name: 'c', activation: 'relu' }),
      tfl.layers.conv2dTranspose({ filters: 2, kernelSize: 2, strides: 2, name: 'up' }),
      tfl.layers.flatten({ name: 'flat' }),
      tfl.layers.dense({ units: 2, name: 'out' }),
    ],
  });
  model.getLayer('c').setWeights([tf.tensor4d([1, -1], [1, 1, 1, 2]), tf.zeros([2])]);
  // up's kernel [2, 2, 2, 2]: every |w| at or below 0.25.
  const small = Array.from({ length: 16 }, (_, i) => ((i % 5) - 2) / 8);
  model.getLayer('up').setWeights([tf.tensor4d(small, [2, 2, 2, 2]), tf.zeros([2])]);
  const src = join(tmp, 'model');
  await model.save(fileSystem(src));
  model.dispose();
  const out = join(tmp, 'out');
  const r = await cli(['prune', '--model', src, '--out', out, '--backend', 'cpu', '--threshold', '0.3']);
  expect(r.code).toBe(2);
  expect(r.err).toMatch(
    /^normprune: --threshold 0\.3 leaves no live weight in layer up \(its largest \|kernel weight\| is 0\.25\): .*; give a --threshold below 0\.25\n$/,
  );
  expect(existsSync(out)).toBe(false);
});

test('prune --threshold that zeroes every pointwise weight of a plain SeparableConv2D names that kernel and its largest |w| (exit 2)', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'threshold-emptied-'));
  const model = tfl.sequential({
    layers: [
      tfl.layers.separableConv2d({
        inputShape: [4, 4, 2],
        filters: 2,
        kernelSize: 3,
        name: 'sep',
        activation: 'relu',
      }),
      tfl.layers.flatten({ name: 'flat' }),
      tfl.layers.dense({ units: 2, name: 'out' }),
    ],
  });
  // depthwise [3, 3, 2, 1] of |w| up to 1, pointwise [1, 1, 2, 2] of |w| at or below 0.25.
  const depthwise = Array.from({ length: 18 }, (_, i) => ((i % 5) - 2) / 2);
  model
    .getLayer('sep')
    .setWeights([
      tf.tensor4d(depthwise, [3, 3, 2, 1]),
      tf.tensor4d([0.25, -0.125, 0.0625, -0.25], [1, 1, 2, 2]),
      tf.zeros([2]),
    ]);
  const src = join(tmp, 'model');
  await model.save(fileSystem(src));
  model.dispose();
  const out = join(tmp, 'out');
  const r = await cli(['prune', '--model', src, '--out', out, '--backend', 'cpu', '--threshold', '0.3']);
  expect(r.code).toBe(2);
  expect(r.err).toMatch(
    /^normprune: --threshold 0\.3 leaves no live weight in layer sep:pointwise \(its largest \|kernel weight\| is 0\.25\): .*; give a --threshold below 0\.25\n$/,
  );
  expect(existsSync(out)).toBe(false);
});

test("a model already disconnected before the threshold keeps surgery's own error", async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'threshold-emptied-'));
  const model = tfl.sequential({
    layers: [
      decomposedDense({ inputShape: [6], units: 4, name: 'dense1', activation: 'relu' }),
      decomposedDense({ units: 3, name: 'dense2' }),
    ],
  });
  magnitudes(model)[0].magnitude.assign(tf.zeros([4]));
  const src = join(tmp, 'model');
  await model.save(fileSystem(src));
  model.dispose();
  const r = await cli([
    'prune',
    '--model',
    src,
    '--out',
    join(tmp, 'out'),
    '--backend',
    'cpu',
    '--threshold',
    '0.001',
  ]);
  expect(r.code).toBe(1);
  expect(r.err).toMatch(/every unit of layer 'dense1' \(Dense, 4 units\) is dead/);
});
