// The layers on the backend training actually uses: wasm (with
// @normprune/runtime's training kernels) must agree with the cpu reference,
// forward and backward, for every granularity.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { initBackend } from '@normprune/runtime';
import { decompose } from '../src/index.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';
import { scaledError } from './helpers.js';

function model(): tfl.LayersModel {
  const seeded = (seed: number) => tfl.initializers.glorotNormal({ seed });
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        inputShape: [10, 10, 2],
        filters: 4,
        kernelSize: 3,
        activation: 'relu',
        kernelInitializer: seeded(1),
      }),
      tfl.layers.conv2d({
        filters: 3,
        kernelSize: 3,
        strides: 2,
        padding: 'same',
        kernelInitializer: seeded(2),
      }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: 8, activation: 'relu', kernelInitializer: seeded(3) }),
      tfl.layers.dense({ units: 3, kernelInitializer: seeded(4) }),
    ],
  });
}

/** Output and the gradients of a fixed loss with respect to every weight, read back as arrays. */
function outputsAndGrads(m: tfl.LayersModel, xv: Float32Array, rv: Float32Array): Float32Array[] {
  return tf.tidy(() => {
    const x = tf.tensor(xv, [4, 10, 10, 2]);
    const r = tf.tensor(rv, [4, 3]);
    const loss = () => tf.sum(tf.mul(tf.tanh(m.apply(x) as tf.Tensor), r)) as tf.Scalar;
    const vars = m.trainableWeights.map((w) => w.read() as tf.Variable);
    const { grads } = tf.variableGrads(loss, vars);
    return [
      (m.apply(x) as tf.Tensor).dataSync() as Float32Array,
      ...vars.map((v) => grads[v.name].dataSync() as Float32Array),
    ];
  });
}

describe('on the wasm backend', () => {
  beforeAll(async () => {
    const info = await initBackend({ prefer: 'wasm', quiet: true });
    expect(info.backend).toBe('wasm');
  });

  it.each([
    ['output', 'kernel'],
    ['input', 'filter'],
  ] as const)('outputs and gradients equal the cpu backend (dense %s, conv2d %s)', async (dense, conv2d) => {
    const m = decompose(model(), { granularity: { dense, conv2d } });
    const xv = tf.tidy(() => tf.randomNormal([4, 10, 10, 2], 0, 1, 'float32', 5).dataSync() as Float32Array);
    const rv = tf.tidy(() => tf.randomNormal([4, 3], 0, 1, 'float32', 6).dataSync() as Float32Array);
    await tf.setBackend('wasm');
    const onWasm = await expectNoLeak(() => outputsAndGrads(m, xv, rv));
    await tf.setBackend('cpu');
    const onCpu = outputsAndGrads(m, xv, rv);
    await tf.setBackend('wasm');
    expect(onWasm.length).toBe(onCpu.length);
    onWasm.forEach((w, i) => expect(scaledError(tf.tensor(w), tf.tensor(onCpu[i]))).toBeLessThan(1e-4));
  });
});
