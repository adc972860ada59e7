// The proximal optimisers on a MobileNet-style block of DecomposedDepthwiseConv2D layers: they find
// its magnitudes through magnitudes(), drive groups to exactly 0, keep magnitudes >= 0 and
// directions of unit norm over its groups (axes [0, 1] or [0, 1, 3] of its [kh, kw, inChannels,
// depthMultiplier] kernel), and keepLargestFilters keeps input channels along its
// [inChannels, depthMultiplier] magnitude.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { decompose, magnitudes, type MagnitudeInfo } from '@normprune/layers';
import { keepLargestFilters, ProximalAdam, ProximalSGD } from '../src/index.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Two DepthwiseConv2D layers (multiplier 2, then 1) around a 1x1 Conv2D, left plain by decompose. */
function block(): tfl.LayersModel {
  const seeded = (seed: number) => tfl.initializers.glorotUniform({ seed });
  return tfl.sequential({
    layers: [
      tfl.layers.depthwiseConv2d({
        inputShape: [6, 6, 4],
        kernelSize: 3,
        depthMultiplier: 2,
        strides: 2,
        padding: 'same',
        activation: 'relu',
        depthwiseInitializer: seeded(1),
        name: 'dw1',
      }),
      tfl.layers.conv2d({ filters: 4, kernelSize: 1, kernelInitializer: seeded(2), name: 'pw' }),
      tfl.layers.depthwiseConv2d({ kernelSize: 2, depthwiseInitializer: seeded(3), name: 'dw2' }),
    ],
  });
}

const depthwiseOnly = (l: tfl.layers.Layer) => l.getClassName() === 'DepthwiseConv2D';

function groupNorms(m: MagnitudeInfo): Float32Array {
  return tf.tidy(() => tf.sqrt(tf.sum(tf.square(m.direction), m.normAxes)).dataSync() as Float32Array);
}

// Lambdas large enough that ten steps zero some groups and small enough that they do not zero all.
describe.each([
  ['ProximalAdam', 'kernel', 0.2],
  ['ProximalAdam', 'filter', 0.1],
  ['ProximalSGD', 'kernel', 0.5],
  ['ProximalSGD', 'filter', 0.7],
] as const)(
  '%s on DecomposedDepthwiseConv2D layers, granularity %s, lambda %d',
  (name, granularity, lambda) => {
    it('zeroes groups exactly, keeps magnitudes >= 0 and directions unit-norm, and leaks nothing', async () => {
      const model = decompose(block(), {
        granularity: { depthwiseConv2d: granularity },
        include: depthwiseOnly,
      });
      const infos = magnitudes(model);
      expect(infos.map((m) => [m.layerName, m.layer.getClassName(), m.magnitude.shape])).toEqual([
        ['dw1', 'DecomposedDepthwiseConv2D', granularity === 'kernel' ? [4, 2] : [4]],
        ['dw2', 'DecomposedDepthwiseConv2D', granularity === 'kernel' ? [4, 1] : [4]],
      ]);
      const opt =
        name === 'ProximalAdam'
          ? new ProximalAdam({ learningRate: 0.01, lambda, magnitudes: infos })
          : new ProximalSGD({ learningRate: 0.1, lambda, magnitudes: infos });
      const xs = tf.randomNormal([4, 6, 6, 4], 0, 1, 'float32', 3);
      const ys = tf.randomNormal([4, 2, 2, 4], 0, 1, 'float32', 4);
      const step = () =>
        opt.minimize(() => tf.losses.meanSquaredError(ys, model.apply(xs) as tf.Tensor) as tf.Scalar);
      step();
      await expectNoLeak(() => {
        for (let i = 0; i < 9; i++) step();
      });
      for (const m of infos) {
        const g = m.magnitude.dataSync();
        g.forEach((v) => expect(v).toBeGreaterThanOrEqual(0));
        const norms = groupNorms(m);
        norms.forEach((n, i) => {
          if (g[i] > 0) expect(Math.abs(n - 1)).toBeLessThan(1e-5);
        });
      }
      // The penalty's zeros are exact, in some groups and not all.
      const zeros = infos.map((m) => m.magnitude.dataSync().filter((v) => v === 0).length);
      expect(zeros.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
      expect(infos.some((m, i) => zeros[i] < m.groups)).toBe(true);
      tf.dispose([xs, ys]);
      opt.dispose();
      model.dispose();
    });
  },
);

it('keepLargestFilters keeps the input channels of a kernel-granularity DecomposedDepthwiseConv2D with the largest norms', () => {
  const model = decompose(block(), { include: depthwiseOnly });
  const dw1 = magnitudes(model).find((m) => m.layerName === 'dw1')!;
  expect(dw1.magnitude.shape).toEqual([4, 2]); // [inChannels, depthMultiplier]
  // Channel c gets magnitudes (c + 1) on both kernels but channel 1, which gets 10 on one.
  const g = Array.from({ length: 4 }, (_, c) =>
    Array.from({ length: 2 }, (_, j) => (c === 1 && j === 0 ? 10 : c + 1)),
  );
  tf.tidy(() => dw1.magnitude.assign(tf.tensor2d(g)));
  keepLargestFilters(model, { dw1: 2 });
  // Norms: (c + 1) * sqrt(2) for channel c, but sqrt(104) for 1: kept are 1 (10.2) and 3 (5.7).
  const kept = (dw1.magnitude.arraySync() as number[][]).map((row) => row.every((v) => v !== 0));
  const dead = (dw1.magnitude.arraySync() as number[][]).map((row) => row.every((v) => v === 0));
  expect(kept).toEqual([false, true, false, true]);
  expect(dead).toEqual([true, false, true, false]);
  model.dispose();
});

it.each([
  [
    1,
    'kernel',
    "'dw' (DepthwiseConv2D with 1x1 kernels and depthMultiplier 1, granularity 'kernel': no granularity groups several of its weights; keep it plain)",
  ],
  [2, 'kernel', "'dw' (DepthwiseConv2D with 1x1 kernels, granularity 'kernel': use 'filter')"],
  [
    1,
    'filter',
    "'dw' (DepthwiseConv2D with 1x1 kernels and depthMultiplier 1, granularity 'filter': no granularity groups several of its weights; keep it plain)",
  ],
] as const)(
  'warns that a 1x1 DecomposedDepthwiseConv2D of multiplier %i, granularity %s, has single-weight groups, naming it',
  (depthMultiplier, granularity, named) => {
    const model = decompose(
      tfl.sequential({
        layers: [
          tfl.layers.depthwiseConv2d({ inputShape: [3, 3, 4], kernelSize: 1, depthMultiplier, name: 'dw' }),
        ],
      }),
      { granularity: { depthwiseConv2d: granularity } },
    );
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      const opt = new ProximalSGD({ learningRate: 0.1, lambda: 0.1, magnitudes: magnitudes(model) });
      expect(warn).toHaveBeenCalledTimes(1);
      expect(warn.mock.calls[0][0]).toContain(`every group of ${named}`);
      opt.dispose();
    } finally {
      warn.mockRestore();
      model.dispose();
    }
  },
);
