// latencyMs: one median per model from alternating calls, whole batches, no tensor left behind.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '@normprune/runtime';
import { latencyMs } from '../src/measure';

beforeAll(async () => {
  await initBackend({ prefer: 'wasm', quiet: true });
});

function mlp(units: number): tfl.LayersModel {
  const m = tfl.sequential();
  m.add(tfl.layers.flatten({ inputShape: [6, 5, 1] }));
  m.add(tfl.layers.dense({ units, activation: 'relu' }));
  m.add(tfl.layers.dense({ units: 3 }));
  return m;
}

test.each([1, 7, 64])(
  'times each model alternately at batch %i, in one predict call per timing',
  async (n) => {
    const models = [mlp(4), mlp(40)];
    const calls: string[] = [];
    models.forEach((m, k) => {
      const predict = m.predict.bind(m);
      m.predict = (x, args) => {
        calls.push(`${k}:${(x as tf.Tensor).shape[0]}:${args?.batchSize}`);
        return predict(x, args);
      };
    });
    const before = tf.memory().numTensors;
    const t = await latencyMs(models, [6, 5, 1], n, 3);
    expect(tf.memory().numTensors).toBe(before);
    expect(t).toHaveLength(2);
    for (const ms of t) expect(ms).toBeGreaterThan(0);
    // 2 warm-up rounds and 3 timed rounds, each calling model 0 then model 1 on the whole batch.
    expect(calls).toEqual(Array.from({ length: 10 }, (_, i) => `${i % 2}:${n}:${n}`));
    models.forEach((m) => m.dispose());
  },
);
