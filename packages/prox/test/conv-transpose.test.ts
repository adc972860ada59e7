// The proximal optimisers on a decoder of DecomposedConv2DTranspose layers: they find its
// magnitudes through magnitudes(), drive groups to exactly 0, keep magnitudes >= 0 and directions
// of unit norm over its groups (axes [0, 1] or [0, 1, 3] of its [kh, kw, filters, inChannels]
// kernel), and keepLargestFilters picks filters along its [filters, inChannels] magnitude.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { decompose, magnitudes, type MagnitudeInfo } from '@normprune/layers';
import { keepLargestFilters, ProximalAdam, ProximalSGD } from '../src/index.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function decoder(): tfl.LayersModel {
  const seeded = (seed: number) => tfl.initializers.glorotUniform({ seed });
  return tfl.sequential({
    layers: [
      tfl.layers.conv2dTranspose({
        inputShape: [3, 3, 4],
        filters: 6,
        kernelSize: 3,
        strides: 2,
        padding: 'same',
        activation: 'relu',
        kernelInitializer: seeded(1),
        name: 'up1',
      }),
      tfl.layers.conv2dTranspose({ filters: 2, kernelSize: 2, kernelInitializer: seeded(2), name: 'up2' }),
    ],
  });
}

function groupNorms(m: MagnitudeInfo): Float32Array {
  return tf.tidy(() => tf.sqrt(tf.sum(tf.square(m.direction), m.normAxes)).dataSync() as Float32Array);
}

// Lambdas large enough that ten steps zero some groups and small enough that they do not zero all
// (a 'filter' group, 27 or 24 weights, has a larger norm than a 3x3 or 2x2 kernel).
describe.each([
  ['ProximalAdam', 'kernel', 0.05],
  ['ProximalAdam', 'filter', 0.2],
  ['ProximalSGD', 'kernel', 0.5],
  ['ProximalSGD', 'filter', 1],
] as const)(
  '%s on DecomposedConv2DTranspose layers, granularity %s, lambda %d',
  (name, granularity, lambda) => {
    it('zeroes groups exactly, keeps magnitudes >= 0 and directions unit-norm, and leaks nothing', async () => {
      const model = decompose(decoder(), { granularity: { conv2dTranspose: granularity } });
      const infos = magnitudes(model);
      expect(infos.map((m) => [m.layerName, m.layer.getClassName()])).toEqual([
        ['up1', 'DecomposedConv2DTranspose'],
        ['up2', 'DecomposedConv2DTranspose'],
      ]);
      const opt =
        name === 'ProximalAdam'
          ? new ProximalAdam({ learningRate: 0.01, lambda, magnitudes: infos })
          : new ProximalSGD({ learningRate: 0.1, lambda, magnitudes: infos });
      const xs = tf.randomNormal([4, 3, 3, 4], 0, 1, 'float32', 3);
      const ys = tf.randomNormal([4, 7, 7, 2], 0, 1, 'float32', 4);
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

it('keepLargestFilters keeps the filters of a kernel-granularity DecomposedConv2DTranspose with the largest norms', () => {
  const model = decompose(decoder());
  const up1 = magnitudes(model).find((m) => m.layerName === 'up1')!;
  expect(up1.magnitude.shape).toEqual([6, 4]); // [filters, inChannels]
  // Filter o gets magnitudes (o + 1) on every kernel but filters 2 and 4, which get 10 on one kernel.
  const g = Array.from({ length: 6 }, (_, o) =>
    Array.from({ length: 4 }, (_, i) => ((o === 2 || o === 4) && i === 1 ? 10 : o + 1)),
  );
  tf.tidy(() => up1.magnitude.assign(tf.tensor2d(g)));
  keepLargestFilters(model, { up1: 3 });
  // Norms: (o + 1) * 2 for filter o, but sqrt(100 + 3 (o + 1)^2) for 2 and 4: kept are 4 (13.2), 5 (12) and 2 (11.3).
  const kept = (up1.magnitude.arraySync() as number[][]).map((row) => row.some((v) => v !== 0));
  expect(kept).toEqual([false, false, true, false, true, true]);
  model.dispose();
});

it("keepLargestFilters refuses a 'filter' DecomposedConv2DTranspose as a convolution it knows, changing nothing", () => {
  const model = decompose(decoder(), { granularity: { conv2dTranspose: 'filter' } });
  const up1 = magnitudes(model).find((m) => m.layerName === 'up1')!;
  const before = up1.magnitude.arraySync();
  expect(() => keepLargestFilters(model, { up1: 3 })).toThrow(
    "keepLargestFilters: up1: expected a Conv1D, Conv2D, Conv2DTranspose or DepthwiseConv2D layer of granularity 'kernel', " +
      "got granularity 'filter' (its groups are its filters: use keepLargestGroups)",
  );
  expect(up1.magnitude.arraySync()).toEqual(before);
  model.dispose();
});

it("warns that a 1x1 DecomposedConv2DTranspose of granularity 'kernel' has single-weight groups, naming it", () => {
  const model = decompose(
    tfl.sequential({
      layers: [
        tfl.layers.conv2dTranspose({
          inputShape: [3, 3, 4],
          filters: 2,
          kernelSize: 1,
          strides: 2,
          name: 'up',
        }),
      ],
    }),
  );
  const warn = jest.spyOn(console, 'warn').mockImplementation(() => {});
  try {
    const opt = new ProximalSGD({ learningRate: 0.1, lambda: 0.1, magnitudes: magnitudes(model) });
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0][0]).toContain(
      "every group of 'up' (Conv2DTranspose with 1x1 kernels, granularity 'kernel': use 'filter')",
    );
    opt.dispose();
  } finally {
    warn.mockRestore();
    model.dispose();
  }
});
