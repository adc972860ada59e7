// The proximal optimisers on DecomposedSeparableConv2D layers: they find both of a layer's
// magnitudes through magnitudes() ('sep:depthwise', 'sep:pointwise'), drive groups of each to
// exactly 0, keep magnitudes >= 0 and directions of unit norm over each part's groups, and
// keepLargestFilters keeps input channels along the depthwise part's [inChannels, depthMultiplier]
// magnitude and output filters along the pointwise part's [inChannels * depthMultiplier, filters].
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { decompose, magnitudes } from '@normprune/layers';
import { keepLargestFilters, keepLargestGroups } from '../src/index.js';
import { proximal, tenSteps } from './proximal-run.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Two SeparableConv2D layers (multiplier 2, then 1) around a 1x1 Conv2D, left plain by decompose. */
function block(): tfl.LayersModel {
  const seeded = (seed: number) => tfl.initializers.glorotUniform({ seed });
  return tfl.sequential({
    layers: [
      tfl.layers.separableConv2d({
        inputShape: [6, 6, 4],
        filters: 6,
        kernelSize: 3,
        depthMultiplier: 2,
        strides: 2,
        padding: 'same',
        activation: 'relu',
        depthwiseInitializer: seeded(1),
        name: 'sep1',
      }),
      tfl.layers.conv2d({ filters: 4, kernelSize: 1, kernelInitializer: seeded(2), name: 'pw' }),
      tfl.layers.separableConv2d({
        filters: 3,
        kernelSize: 2,
        depthwiseInitializer: seeded(3),
        name: 'sep2',
      }),
    ],
  });
}

const separableOnly = (l: tfl.layers.Layer) => l.getClassName() === 'SeparableConv2D';

// Lambdas large enough that ten steps zero some groups and small enough that they do not zero all.
describe.each([
  ['ProximalAdam', 'kernel', 0.2],
  ['ProximalAdam', 'filter', 0.2],
  ['ProximalSGD', 'kernel', 0.5],
  ['ProximalSGD', 'filter', 0.7],
] as const)(
  '%s on DecomposedSeparableConv2D layers, granularity %s, lambda %d',
  (name, granularity, lambda) => {
    it('zeroes groups of both parts exactly, keeps magnitudes >= 0 and directions unit-norm, and leaks nothing', async () => {
      const model = decompose(block(), {
        granularity: { separableConv2d: granularity },
        include: separableOnly,
      });
      const infos = magnitudes(model);
      const kernel = granularity === 'kernel';
      expect(infos.map((m) => [m.layerName, m.part, m.layer.getClassName(), m.magnitude.shape])).toEqual([
        ['sep1:depthwise', 'depthwise', 'DecomposedSeparableConv2D', kernel ? [4, 2] : [4]],
        ['sep1:pointwise', 'pointwise', 'DecomposedSeparableConv2D', kernel ? [8, 6] : [6]],
        ['sep2:depthwise', 'depthwise', 'DecomposedSeparableConv2D', kernel ? [4, 1] : [4]],
        ['sep2:pointwise', 'pointwise', 'DecomposedSeparableConv2D', kernel ? [4, 3] : [3]],
      ]);
      // A 'kernel' pointwise part has single-weight groups (a 1x1 kernel): the optimiser says so.
      const warn = jest.spyOn(console, 'warn').mockImplementation(() => {});
      let opt: ReturnType<typeof proximal>;
      try {
        opt = proximal(name, lambda, infos);
        expect(warn).toHaveBeenCalledTimes(kernel ? 1 : 0);
        if (kernel)
          expect(warn.mock.calls[0][0]).toContain(
            "every group of 'sep1:pointwise' (SeparableConv2D's pointwise kernel (1x1), granularity 'kernel': use 'filter') " +
              "and of 'sep2:pointwise' (SeparableConv2D's pointwise kernel (1x1), granularity 'kernel': use 'filter') is a single weight",
          );
      } finally {
        warn.mockRestore();
      }
      const xs = tf.randomNormal([4, 6, 6, 4], 0, 1, 'float32', 3);
      const ys = tf.randomNormal([4, 2, 2, 3], 0, 1, 'float32', 4);
      const zeros = await tenSteps(opt, model, infos, xs, ys);
      // The penalty's zeros are exact, in some groups and not all, in both kinds of part.
      for (const part of ['depthwise', 'pointwise'])
        expect(zeros.filter((_, i) => infos[i].part === part).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
      expect(infos.some((m, i) => zeros[i] < m.groups)).toBe(true);
      tf.dispose([xs, ys]);
      opt!.dispose();
      model.dispose();
    });
  },
);

it("keepLargestFilters keeps a 'kernel' DecomposedSeparableConv2D's input channels (depthwise part) and output filters (pointwise part) with the largest norms", () => {
  const model = decompose(block(), { include: separableOnly });
  const infos = magnitudes(model);
  const depthwise = infos.find((m) => m.layerName === 'sep1:depthwise')!;
  const pointwise = infos.find((m) => m.layerName === 'sep1:pointwise')!;
  expect(depthwise.magnitude.shape).toEqual([4, 2]); // [inChannels, depthMultiplier]
  expect(pointwise.magnitude.shape).toEqual([8, 6]); // [inChannels * depthMultiplier, filters]
  // Channel c gets magnitudes (c + 1) on both kernels but channel 1, which gets 10 on one.
  tf.tidy(() =>
    depthwise.magnitude.assign(
      tf.tensor2d(Array.from({ length: 4 }, (_, c) => [c === 1 ? 10 : c + 1, c + 1])),
    ),
  );
  // Filter f gets magnitudes (f + 1) from every channel but filter 0, which gets 20 from one.
  tf.tidy(() =>
    pointwise.magnitude.assign(
      tf.tensor2d(
        Array.from({ length: 8 }, (_, i) =>
          Array.from({ length: 6 }, (_, f) => (f === 0 && i === 3 ? 20 : f + 1)),
        ),
      ),
    ),
  );
  keepLargestFilters(model, { 'sep1:depthwise': 2, 'sep1:pointwise': 3 });
  // Channels: norms (c + 1) * sqrt(2), but sqrt(104) for 1: kept are 1 and 3.
  const rows = depthwise.magnitude.arraySync() as number[][];
  expect(rows.map((row) => row.every((v) => v !== 0))).toEqual([false, true, false, true]);
  expect(rows.map((row) => row.every((v) => v === 0))).toEqual([true, false, true, false]);
  // Filters: norms (f + 1) * sqrt(8), but sqrt(400 + 7) for 0: kept are 0, 4 and 5.
  const columns = tf.tidy(() => tf.transpose(pointwise.magnitude).arraySync() as number[][]);
  expect(columns.map((col) => col.every((v) => v !== 0))).toEqual([true, false, false, false, true, true]);
  expect(columns.map((col) => col.every((v) => v === 0))).toEqual([false, true, true, true, false, false]);
  // keepLargestGroups takes the parts' names too: the largest kernel of sep2's depthwise part.
  keepLargestGroups(model, { 'sep2:depthwise': 1 });
  expect(
    Array.from(infos.find((m) => m.layerName === 'sep2:depthwise')!.magnitude.dataSync()).filter(
      (v) => v !== 0,
    ).length,
  ).toBe(1);
  // The layer's own name is no decomposed layer's: its parts are.
  expect(() => keepLargestFilters(model, { sep1: 2 })).toThrow(/sep1:depthwise/);
  model.dispose();
});

it("keepLargestFilters refuses a 'filter' DecomposedSeparableConv2D's parts (their groups are the filters)", () => {
  const model = decompose(block(), { include: separableOnly, granularity: { separableConv2d: 'filter' } });
  expect(() => keepLargestFilters(model, { 'sep1:pointwise': 2 })).toThrow(
    /keepLargestFilters: sep1:pointwise: .*got granularity 'filter' \(its groups are its filters: use keepLargestGroups\)/,
  );
  // Its depthwise part's groups are input channels, as a DepthwiseConv2D's are.
  expect(() => keepLargestFilters(model, { 'sep1:depthwise': 2 })).toThrow(
    /keepLargestFilters: sep1:depthwise: .*got granularity 'filter' \(its groups are its input channels, each with its depthMultiplier kernels, which keepLargestFilters keeps of a DepthwiseConv2D: use keepLargestGroups\)/,
  );
  model.dispose();
});
