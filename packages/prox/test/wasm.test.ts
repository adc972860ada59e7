// The wasm backend takes a different path for the group norms (an average pool
// instead of a transposing sum): check the renormalisation there too.
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import * as tfl from '@tensorflow/tfjs-layers';
import { decomposedConv2d, decomposedDense, effectiveKernel, magnitudes } from '@normprune/layers';
import { ProximalSGD } from '../src/index.js';
import { groupSumSquares } from '../src/operators.js';
import { maxDiff } from '../../../tools/testing/leaks.js';

beforeAll(async () => {
  setWasmPaths(
    path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + path.sep,
  );
  expect(await tf.setBackend('wasm')).toBe(true);
});

describe('on the wasm backend', () => {
  it('groupSumSquares picks the pool for leading axes and agrees with tf.sum', async () => {
    const x = tf.randomNormal([30, 7], 0, 1, 'float32', 2);
    const profile = await tf.profile(() => groupSumSquares(x, [0]));
    expect(profile.kernelNames).toContain('AvgPool');
    expect(profile.kernelNames).not.toContain('Sum');
    tf.dispose(profile.result as tf.Tensor);
    const auto = groupSumSquares(x, [0]);
    const sum = groupSumSquares(x, [0], 'sum');
    expect(auto.shape).toEqual([1, 7]);
    const r = sum.dataSync();
    auto.dataSync().forEach((v, i) => expect(Math.abs(v - r[i]) / r[i]).toBeLessThan(1e-5));
    tf.dispose([x, auto, sum]);
  });

  it.each([
    ['dense output', () => decomposedDense({ inputShape: [9], units: 6 })],
    [
      'conv filter',
      () => decomposedConv2d({ inputShape: [5, 5, 3], filters: 4, kernelSize: 3, granularity: 'filter' }),
    ],
  ])('%s: directions rescaled to unit norm, effective kernel unchanged', (_n, make) => {
    const model = tfl.sequential({ layers: [make()] });
    const [info] = magnitudes(model);
    tf.tidy(() => {
      const scale = tf.randomUniform(info.magnitude.shape, 0.2, 4, 'float32', 6);
      const bshape = info.direction.shape.map((d, a) => (info.normAxes.includes(a) ? 1 : d));
      info.direction.assign(tf.mul(info.direction, tf.reshape(scale, bshape)));
    });
    const before = effectiveKernel(info.layer);
    const opt = new ProximalSGD({ learningRate: 0.1, lambda: 0, magnitudes: [info] });
    const grads = tf.tidy(() =>
      [info.magnitude, info.direction].map((v) => ({ name: v.name, tensor: tf.zerosLike(v) })),
    );
    opt.applyGradients(grads);
    tf.dispose(grads.map((g) => g.tensor));
    const after = effectiveKernel(info.layer);
    expect(maxDiff(before.dataSync(), after.dataSync()).abs).toBeLessThan(1e-6);
    const norms = tf.tidy(() =>
      Array.from(tf.sqrt(tf.sum(tf.square(info.direction), info.normAxes)).dataSync()),
    );
    norms.forEach((n) => expect(Math.abs(n - 1)).toBeLessThan(1e-5));
    tf.dispose([before, after]);
    opt.dispose();
    model.dispose();
  });
});
