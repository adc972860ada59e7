// SparsityCallback reports no compression to the schedule when no layer it measures can be pruned;
// that must also hold after earlier epochs reported one (the decomposed layers frozen since, e.g.
// to train the head alone): a targetLambda holds there rather than chasing the stale compression.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { decomposedDense } from '@normprune/layers';
import { ProximalSGD, SparsityCallback, targetLambda } from '../src/index.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const xs = tf.randomNormal([64, 12], 0, 1, 'float32', 1);
const ys = tf.tidy(() =>
  tf.cast(tf.oneHot(tf.cast(tf.greater(tf.sum(tf.slice(xs, [0, 0], [-1, 2]), 1), 0), 'int32'), 2), 'float32'),
);

it('a targetLambda holds once every decomposed layer is frozen, after epochs that reported a compression', async () => {
  const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  const init = (seed: number) => tfl.initializers.glorotUniform({ seed });
  const model = tfl.sequential({
    layers: [
      decomposedDense({
        inputShape: [12],
        units: 16,
        activation: 'relu',
        name: 'a',
        kernelInitializer: init(61),
      }),
      decomposedDense({ units: 8, activation: 'relu', name: 'b', kernelInitializer: init(62) }),
      tfl.layers.dense({ units: 2, name: 'head', kernelInitializer: init(63) }),
    ],
  });
  const optimizer = new ProximalSGD({
    learningRate: 0.05,
    lambda: targetLambda({ initial: 0.001, targetCompression: 0.9, factor: 2 }),
    magnitudes: model,
  });
  const fitOptions = { epochs: 3, batchSize: 32, shuffle: false, verbose: 0 as const };
  model.compile({ optimizer, loss: 'meanSquaredError' });
  const sparsity = new SparsityCallback();
  await model.fit(xs, ys, { ...fitOptions, callbacks: [sparsity] });
  // Below the target: lambda doubled at each epoch.
  expect(sparsity.history.map((r) => r.nextLambda)).toEqual([0.002, 0.004, 0.008]);
  for (const name of ['a', 'b']) model.getLayer(name).trainable = false;
  model.compile({ optimizer, loss: 'meanSquaredError' });
  await model.fit(xs, ys, { ...fitOptions, callbacks: [sparsity] });
  expect(sparsity.history.slice(3).map((r) => [r.lambda, r.nextLambda])).toEqual(
    Array(3).fill([0.008, 0.008]),
  );
  expect(optimizer.getConfig().progress).toEqual({ epoch: 6 });
  warn.mockRestore();
  model.dispose();
  optimizer.dispose();
});
