import * as tf from '@tensorflow/tfjs-core';
// tfjs-layers registers the gradients (tfjs-core alone has none).
import '@tensorflow/tfjs-layers';
import { registerWasmTrainingKernels } from '../src/kernels/index.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';
import { initWasm, relError, rng, values, wasmDataIds } from './kernels-helpers.js';

beforeAll(async () => {
  // Registered before the backend starts (the other suites register after):
  // the engine must then run the upstream setupFuncs our kernels keep.
  registerWasmTrainingKernels();
  await initWasm();
});

afterAll(async () => {
  await tf.setBackend('cpu');
});

// A small conv net exercising every training kernel: strided and 'same'
// convolutions, max pooling, batch normalisation, ReLU, a dense head.
const SHAPES: Record<string, number[]> = {
  k1: [3, 3, 3, 8],
  k2: [5, 5, 8, 12],
  k3: [3, 3, 12, 16],
  gamma: [16],
  beta: [16],
  w: [3 * 1 * 16, 10],
  b: [10],
};

function initialValues(seed: number): Record<string, Float32Array> {
  const r = rng(seed);
  const out: Record<string, Float32Array> = {};
  for (const [k, s] of Object.entries(SHAPES)) {
    const n = s.reduce((a, b) => a * b, 1);
    out[k] = values(r, n).map((v) => (k === 'gamma' ? 1 + 0.1 * v : 0.5 * v));
  }
  return out;
}

function loss(p: Record<string, tf.Tensor>, x: tf.Tensor4D, labels: tf.Tensor2D): tf.Scalar {
  let h: tf.Tensor4D = tf.relu(tf.conv2d(x, p.k1 as tf.Tensor4D, 1, 'same'));
  h = tf.relu(tf.conv2d(h, p.k2 as tf.Tensor4D, 2, 'valid'));
  h = tf.maxPool(h, 2, 2, 'same');
  h = tf.conv2d(h, p.k3 as tf.Tensor4D, [1, 2], 'same');
  const { mean, variance } = tf.moments(h, [0, 1, 2]);
  h = tf.relu(
    tf.batchNorm4d(
      h,
      mean as tf.Tensor1D,
      variance as tf.Tensor1D,
      p.beta as tf.Tensor1D,
      p.gamma as tf.Tensor1D,
      1e-3,
    ),
  );
  const flat = tf.reshape(h, [x.shape[0], -1]) as tf.Tensor2D;
  const logits = tf.add(tf.matMul(flat, p.w as tf.Tensor2D), p.b);
  return tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
}

async function gradients(backend: 'cpu' | 'wasm'): Promise<Record<string, Float32Array>> {
  await tf.setBackend(backend);
  const init = initialValues(3);
  const r = rng(5);
  const n = 4;
  const x = tf.tensor4d(values(r, n * 13 * 11 * 3), [n, 13, 11, 3]);
  const labels = tf.oneHot(tf.tensor1d([1, 7, 3, 9], 'int32'), 10) as tf.Tensor2D;
  const p: Record<string, tf.Tensor> = {};
  for (const k of Object.keys(SHAPES)) p[k] = tf.tensor(init[k], SHAPES[k]);
  const names = Object.keys(p);
  const g = tf.grads((...ts: tf.Tensor[]) =>
    loss(Object.fromEntries(names.map((k, i) => [k, ts[i]])), x, labels),
  )(names.map((k) => p[k]));
  const out: Record<string, Float32Array> = {};
  names.forEach((k, i) => (out[k] = g[i].dataSync() as Float32Array));
  tf.dispose([...g, x, labels, ...Object.values(p)]);
  return out;
}

describe('training on wasm', () => {
  it('gives the same gradients as cpu for a small conv net', async () => {
    const ref = await gradients('cpu');
    const got = await gradients('wasm');
    const errors = Object.keys(SHAPES).map((k) => ({ k, err: relError(got[k], ref[k]) }));
    // Error relative to each gradient's largest entry, as in kernels.test.ts: measured at
    // most 5.8e-7 over the 7 gradients (k3; 4.7e-7 k1, 4.4e-7 k2, 4.0e-7 w, 2.6e-7 gamma).
    expect(errors.filter((e) => !(e.err < 1e-5))).toEqual([]);
  });

  it('keeps tensors and wasm buffers flat over SGD steps', async () => {
    await tf.setBackend('wasm');
    const init = initialValues(9);
    const vars: Record<string, tf.Variable> = {};
    for (const k of Object.keys(SHAPES)) vars[k] = tf.variable(tf.tensor(init[k], SHAPES[k]));
    const r = rng(1);
    const x = tf.tensor4d(values(r, 8 * 13 * 11 * 3), [8, 13, 11, 3]);
    const labels = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7], 'int32'), 10) as tf.Tensor2D;
    const opt = tf.train.sgd(0.05);
    const step = () => {
      const cost = opt.minimize(() => loss(vars, x, labels), true)!;
      const v = cost.dataSync()[0];
      cost.dispose();
      return v;
    };
    const first = step();
    const ids = wasmDataIds();
    let last = first;
    await expectNoLeak(() => {
      for (let i = 0; i < 5; i++) last = step();
    });
    expect(wasmDataIds()).toBe(ids);
    expect(last).toBeLessThan(first);
    opt.dispose();
    tf.dispose([x, labels, ...Object.values(vars)]);
  });
});
