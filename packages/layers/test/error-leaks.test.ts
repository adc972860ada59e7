// A refused call leaves tf.memory().numTensors where it was: a long-running process that catches
// the error and goes on must not grow. On cpu and on wasm.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '@normprune/runtime';
import { decomposedConv1d, decomposedConv2d, decomposedDense } from '../src/index.js';

/** numTensors after `fn` throws, minus before. */
function leakedByRefusal(fn: () => unknown, message: RegExp): number {
  const before = tf.memory().numTensors;
  expect(fn).toThrow(message);
  return tf.memory().numTensors - before;
}

describe.each([
  ['cpu', async () => void (await tf.setBackend('cpu'))],
  ['wasm', async () => void (await initBackend({ prefer: 'wasm', quiet: true }))],
])('on %s', (_, init) => {
  beforeAll(init);

  const refused = /its magnitudeInitializer cannot initialise the magnitude/;

  it.each([
    ['DecomposedDense', () => decomposedDense({ units: 3, magnitudeInitializer: 'identity' }), [4]],
    [
      'DecomposedConv1D',
      () =>
        decomposedConv1d({
          filters: 3,
          kernelSize: 1,
          granularity: 'filter',
          magnitudeInitializer: 'identity',
        }),
      [5, 2],
    ],
    [
      'DecomposedConv2D',
      () =>
        decomposedConv2d({
          filters: 3,
          kernelSize: 1,
          granularity: 'filter',
          magnitudeInitializer: 'identity',
        }),
      [4, 4, 2],
    ],
  ] as const)(
    '%s: a build refusing the magnitudeInitializer frees the direction it made',
    (_, make, shape) => {
      const input = tfl.input({ shape: [...shape] });
      expect(leakedByRefusal(() => make().apply(input), refused)).toBe(0);
      // As the only layer of a model being built: the model leaves nothing behind either.
      expect(
        leakedByRefusal(
          () => tfl.sequential({ layers: [tfl.layers.inputLayer({ inputShape: [...shape] }), make()] }),
          refused,
        ),
      ).toBe(0);
      // A magnitudeInitializer that fills the shape builds the layer and its three weights.
      const before = tf.memory().numTensors;
      const layer = decomposedDense({ units: 3, magnitudeInitializer: 'ones' });
      layer.apply(tfl.input({ shape: [4] }));
      expect(tf.memory().numTensors).toBe(before + 3);
      layer.dispose();
      expect(tf.memory().numTensors).toBe(before);
    },
  );
});
