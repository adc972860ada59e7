// fitDataset's initialEpoch reaches SparsityCallback only as the first epoch's number (tfjs
// leaves params.initialEpoch null there): an epoch-based schedule must still train that first
// epoch at the lambda of the epoch it resumes from, as model.fit does.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { decomposedDense } from '@normprune/layers';
import { ProximalSGD, SparsityCallback, stepLambda } from '../src/index.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const xs = tf.randomNormal([32, 6], 0, 1, 'float32', 1);
const ys = tf.sum(tf.slice(xs, [0, 0], [-1, 2]), 1, true);

/** A tf.data-like dataset of two `{ xs, ys }` batches, all fitDataset needs. */
const dataset = {
  size: 2,
  iterator: async () => {
    let i = 0;
    return {
      next: async () => {
        if (i >= 32) return { done: true, value: null };
        const value = { xs: tf.slice(xs, [i, 0], [16, -1]), ys: tf.slice(ys, [i, 0], [16, -1]) };
        i += 16;
        return { done: false, value };
      },
    };
  },
};

async function resumeAtEpoch3(how: 'fit' | 'fitDataset') {
  const model = tfl.sequential({
    layers: [
      decomposedDense({ inputShape: [6], units: 8, activation: 'relu', name: 'h' }),
      decomposedDense({ units: 1, name: 'o' }),
    ],
  });
  // lambda 1e-3 * 10^epoch: 1 at epoch 3, 10 at epoch 4.
  const optimizer = new ProximalSGD({
    learningRate: 0.01,
    lambda: stepLambda({ initial: 0.001, factor: 10, every: 1 }),
    magnitudes: model,
  });
  model.compile({ optimizer, loss: 'meanSquaredError' });
  const perBatch: number[] = [];
  const probe = new tfl.CustomCallback({
    onBatchEnd: async () => {
      perBatch.push(optimizer.lambda);
    },
  });
  const sparsity = new SparsityCallback();
  const callbacks = [sparsity, probe];
  if (how === 'fit')
    await model.fit(xs, ys, {
      epochs: 5,
      initialEpoch: 3,
      batchSize: 16,
      shuffle: false,
      verbose: 0,
      callbacks,
    });
  else await model.fitDataset(dataset as never, { epochs: 5, initialEpoch: 3, verbose: 0, callbacks });
  const records = sparsity.history.map((r) => [r.epoch, r.lambda, r.nextLambda]);
  return { perBatch, records };
}

describe('SparsityCallback with initialEpoch', () => {
  it.each(['fit', 'fitDataset'] as const)(
    '%s trains its first epoch at the lambda of the epoch it resumes from',
    async (how) => {
      const { perBatch, records } = await resumeAtEpoch3(how);
      expect(perBatch.map((v) => +v.toPrecision(6))).toEqual([1, 1, 10, 10]);
      expect(records.map((r) => r.map((v) => +v!.toPrecision(6)))).toEqual([
        [3, 1, 10],
        [4, 10, 100],
      ]);
    },
  );
});
