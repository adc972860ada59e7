// The convolution gradients of an empty dy (an output with no rows or columns: a filter larger
// than the input, 'valid') are zeros, as on cpu. With more than 8 input channels
// Conv2DBackpropFilter went through a convolution taking dy as its filter, and with a 1x1 input
// Conv2DBackpropInput through the flipped-filter convolution: both returned the heap's leftovers
// (up to 9.99 after the heap held values 3 to 10) or 1s where cpu gives 0.
import * as tf from '@tensorflow/tfjs-core';
// tfjs-layers registers the gradients (tfjs-core alone has none).
import '@tensorflow/tfjs-layers';
import { registerWasmTrainingKernels } from '../src/kernels/index.js';
import { initWasm, rng, values, wasmDataIds } from './kernels-helpers.js';

beforeAll(async () => {
  await initWasm();
  registerWasmTrainingKernels();
});

afterAll(async () => {
  await tf.setBackend('cpu');
});

const CASES: [number[], number[], number, string][] = [
  [[1, 5, 3, 16], [1, 4, 16, 4], 1, 'no columns, 16 channels'],
  [[2, 2, 2, 12], [3, 3, 12, 5], 1, 'no rows or columns, 12 channels'],
  [[2, 1, 1, 16], [2, 2, 16, 4], 1, '1x1 input, 16 channels'],
  [[1, 3, 3, 16], [4, 1, 16, 8], 2, 'no rows, stride 2'],
  [[2, 2, 2, 4], [3, 3, 4, 5], 1, 'no rows or columns, 4 channels'],
  [[0, 5, 5, 16], [3, 3, 16, 4], 1, 'an empty batch'],
];

/** dW and dx of sum(conv2d(x, w, stride, 'valid')), values of both. */
function gradients(xShape: number[], wShape: number[], stride: number): Float32Array[] {
  return tf
    .tidy(() => {
      const x = tf.tensor4d(
        values(rng(1), tf.util.sizeFromShape(xShape)),
        xShape as [number, number, number, number],
      );
      const w = tf.tensor4d(
        values(rng(2), tf.util.sizeFromShape(wShape)),
        wShape as [number, number, number, number],
      );
      const f = (a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, 'valid'));
      return tf.grads(f)([x, w]);
    })
    .map((t) => {
      const v = t.dataSync() as Float32Array;
      t.dispose();
      return v;
    });
}

describe('conv2d gradients of an empty dy on wasm', () => {
  for (const [xShape, wShape, stride, what] of CASES) {
    it(`are zeros, as on cpu: ${what} (x ${xShape}, filter ${wShape})`, async () => {
      await tf.setBackend('cpu');
      const ref = gradients(xShape, wShape, stride);
      await tf.setBackend('wasm');
      // Leave values in the heap that an unwritten output would show.
      tf.tidy(() => tf.randomUniform([20000], 3, 10).dataSync());
      const tensors = tf.memory().numTensors;
      const ids = wasmDataIds();
      const got = gradients(xShape, wShape, stride);
      expect(tf.memory().numTensors).toBe(tensors);
      expect(wasmDataIds()).toBe(ids);
      expect(got.map((g) => g.length)).toEqual(ref.map((r) => r.length));
      expect(got.map((g) => Array.from(g))).toEqual(ref.map((r) => Array.from(r)));
      expect(ref.every((r) => r.every((v) => v === 0))).toBe(true);
    });
  }
});
