// Models with fixed weights (not initializers, which a tfjs version may change)
// whose exported files test/export-bytes.test.ts compares with those of the
// previous exportModel.
import * as tfl from '@tensorflow/tfjs-layers';
import * as tf from '@tensorflow/tfjs-core';

/** Sets every weight from a linear congruential generator, in [-1, 1); `dead` zeroes kernel groups (i + 2o) % 3 == 0. */
function fixWeights(model: tfl.LayersModel, seed: number, dead: boolean): tfl.LayersModel {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
  for (const layer of model.layers) {
    const ws = layer.getWeights();
    if (ws.length === 0) continue;
    const values = ws.map((w) => {
      const v = Float32Array.from({ length: w.size }, next);
      if (dead && w.rank >= 2) {
        const [cin, cout] = w.shape.slice(-2);
        for (let i = 0; i < v.length; i++) {
          const g = i % (cin * cout);
          if ((Math.floor(g / cout) + 2 * (g % cout)) % 3 === 0) v[i] = 0;
        }
      }
      // Variances must stay positive.
      return tf.tensor(layer.name.startsWith('bn') ? v.map(Math.abs) : v, w.shape);
    });
    // getWeights() gives the variables themselves: only the new values are disposed.
    layer.setWeights(values);
    tf.dispose(values);
  }
  return model;
}

/** A 2-shard dense model (4.4 MB + 40 KB) with dead groups, and a small conv net with batch norm. */
export function goldenModels(): [string, tfl.LayersModel][] {
  const dense = tfl.sequential({
    layers: [
      tfl.layers.dense({ inputShape: [1100], units: 1000, activation: 'relu', name: 'fc1' }),
      tfl.layers.dense({ units: 10, name: 'fc2' }),
    ],
  });
  const conv = tfl.sequential({
    layers: [
      tfl.layers.conv2d({ inputShape: [8, 8, 3], filters: 8, kernelSize: 3, name: 'conv1' }),
      tfl.layers.batchNormalization({ name: 'bn1' }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: 5, name: 'fc' }),
    ],
  });
  return [
    ['dense', fixWeights(dense, 1, true)],
    ['conv', fixWeights(conv, 2, true)],
  ];
}
