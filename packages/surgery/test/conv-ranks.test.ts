// prune() prunes Conv1D and Conv3D filters as it prunes Conv2D ones (a unit layer whose kernel is
// [...positions, cin, cout]), through the 1-D and 3-D pooling layers, Flatten and the joins. A
// constant input channel folds exactly into a 'valid' convolution and into a 'same' one that pads
// nothing; where the padding reaches a position, only the constant 0 folds, and a dead unit
// emitting another constant stays, saying why. Before, a Conv1D or Conv3D was refused.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { decompose } from '@normprune/layers';
import { analyze, prune } from '../src/index';
import {
  describePruneCases,
  editWeight,
  outputDiff,
  randomWeights,
  setBias,
  unitsOf,
  zeroKernelWhere,
  zeroUnits,
} from './helpers';
import type { PruneCase } from './helpers';

const CASES: PruneCase[] = [
  {
    // c1's dead filters emit relu(bias) > 0 or 0; c2 ('same', stride 2 on length 10) pads
    // nothing, so both fold. c2's dead filter folds through MaxPooling1D and Flatten into 'out'.
    name: "Conv1D chain: 'valid', then 'same' padding nothing, MaxPooling1D, Flatten",
    build: () =>
      tfl.sequential({
        layers: [
          tfl.layers.conv1d({
            inputShape: [12, 3],
            filters: 6,
            kernelSize: 3,
            activation: 'relu',
            name: 'c1',
          }),
          tfl.layers.conv1d({
            filters: 5,
            kernelSize: 2,
            strides: 2,
            padding: 'same',
            activation: 'relu',
            name: 'c2',
          }),
          tfl.layers.maxPooling1d({ poolSize: 2, name: 'pool' }),
          tfl.layers.flatten({ name: 'flat' }),
          tfl.layers.dense({ units: 3, name: 'out' }),
        ],
      }),
    kill: (m) => {
      zeroUnits(m, 'c1', [1, 4]);
      setBias(m, 'c1', { 1: 0.4, 4: -0.3 });
      zeroUnits(m, 'c2', [0]);
      setBias(m, 'c2', { 0: 0.25 });
    },
    units: { c1: [6, 4], c2: [5, 4], out: [3, 3] },
    kernels: { c1: [3, 3, 4], c2: [2, 4, 4], out: [8, 3] },
  },
  {
    // 'fc' reads no feature of c1's filters 3 and 5 (Flatten index f % 6): they go unused.
    name: "Conv1D strided 'same' before Flatten and a Dense that reads none of two filters",
    build: () =>
      tfl.sequential({
        layers: [
          tfl.layers.conv1d({
            inputShape: [16, 2],
            filters: 6,
            kernelSize: 5,
            strides: 2,
            padding: 'same',
            activation: 'tanh',
            name: 'c1',
          }),
          tfl.layers.flatten({ name: 'flat' }),
          tfl.layers.dense({ units: 4, activation: 'relu', name: 'fc' }),
          tfl.layers.dense({ units: 2, name: 'out' }),
        ],
      }),
    kill: (m) => zeroKernelWhere(m, 'fc', (i) => i % 6 === 3 || i % 6 === 5),
    units: { c1: [6, 4], fc: [4, 4], out: [2, 2] },
    kernels: { c1: [5, 2, 4], fc: [32, 4] },
  },
  {
    // Dilated, into an Add with a 1x1 Conv1D of the input, then global pooling.
    name: 'dilated Conv1D joined by an Add with a 1x1 Conv1D, GlobalAveragePooling1D',
    build: () => {
      const x = tfl.input({ shape: [14, 3], name: 'x' });
      const a = tfl.layers
        .conv1d({ filters: 5, kernelSize: 3, dilationRate: 2, activation: 'relu', name: 'a' })
        .apply(x) as tfl.SymbolicTensor;
      const b = tfl.layers
        .conv1d({ filters: 5, kernelSize: 1, strides: 1, name: 'b' })
        .apply(x) as tfl.SymbolicTensor;
      const bCut = tfl.layers.maxPooling1d({ poolSize: 5, strides: 1, name: 'cut' }).apply(b);
      const sum = tfl.layers.add({ name: 'sum' }).apply([a, bCut] as tfl.SymbolicTensor[]);
      const gap = tfl.layers.globalAveragePooling1d({ name: 'gap' }).apply(sum);
      const out = tfl.layers.dense({ units: 2, name: 'out' }).apply(gap) as tfl.SymbolicTensor;
      return tfl.model({ inputs: x, outputs: out });
    },
    // Channel 2 of the Add is constant on both sides: a's and b's filter 2 go together.
    kill: (m) => {
      zeroUnits(m, 'a', [2]);
      zeroUnits(m, 'b', [2]);
    },
    units: { a: [5, 4], b: [5, 4], out: [2, 2] },
    kernels: { a: [3, 3, 4], b: [1, 3, 4], out: [4, 2] },
  },
  {
    // c1's dead filter is constant after MaxPooling3D and folds into the 1x1x1 c2; c2's through
    // Flatten into 'out'.
    name: 'Conv3D, MaxPooling3D, 1x1x1 Conv3D, AveragePooling3D, Flatten',
    build: () =>
      tfl.sequential({
        layers: [
          tfl.layers.conv3d({
            inputShape: [5, 6, 6, 2],
            filters: 4,
            kernelSize: [2, 3, 3],
            activation: 'relu',
            name: 'c1',
          }),
          tfl.layers.maxPooling3d({ poolSize: 2, name: 'pool' }),
          tfl.layers.conv3d({ filters: 3, kernelSize: 1, activation: 'relu', name: 'c2' }),
          tfl.layers.averagePooling3d({ poolSize: [1, 2, 2], name: 'avg' }),
          tfl.layers.flatten({ name: 'flat' }),
          tfl.layers.dense({ units: 2, name: 'out' }),
        ],
      }),
    kill: (m) => {
      zeroUnits(m, 'c1', [1]);
      setBias(m, 'c1', { 1: 0.3 });
      zeroUnits(m, 'c2', [0]);
      setBias(m, 'c2', { 0: 0.2 });
    },
    units: { c1: [4, 3], c2: [3, 2], out: [2, 2] },
    kernels: { c1: [2, 3, 3, 2, 3], c2: [1, 1, 1, 3, 2], out: [4, 2] },
  },
];

describePruneCases('prune prunes Conv1D and Conv3D filters', CASES, 3, (model, pruned, report) => {
  // Counted as analyze counts the model, and smaller after.
  const a = analyze(model);
  expect([report.before.params, report.before.macs]).toEqual([a.total.params, a.total.macs]);
  expect(report.after.params).toBe(analyze(pruned).total.params);
  expect(report.after.params).toBeLessThan(report.before.params);
});

describe('Conv1D padding: what folds and what stays', () => {
  beforeAll(async () => void (await tf.setBackend('cpu')));

  /** x [10, 4] -> c1 (5 filters, k 3, `padding`) -> c2 (4 filters, k `k2`, dilation 2, `padding`) -> GAP -> dense 2. */
  function net1d(padding: 'causal' | 'same' | 'valid', k2 = 3): tfl.LayersModel {
    return tfl.sequential({
      layers: [
        tfl.layers.conv1d({
          inputShape: [10, 4],
          filters: 5,
          kernelSize: 3,
          padding,
          activation: 'relu',
          name: 'c1',
        }),
        tfl.layers.conv1d({
          filters: 4,
          kernelSize: k2,
          dilationRate: 2,
          padding,
          activation: 'relu',
          name: 'c2',
        }),
        tfl.layers.globalAveragePooling1d({ name: 'gap' }),
        tfl.layers.dense({ units: 2, name: 'out' }),
      ],
    });
  }

  it.each([3, 5])(
    "a dead filter emitting 0 folds into a 'same' Conv1D of kernel size %d; one emitting another constant stays, saying why",
    (k) => {
      const model = net1d('same', k);
      randomWeights(model, 8);
      zeroUnits(model, 'c1', [0, 2]);
      // relu(-1) = 0: folds whatever the padding; relu(0.7) = 0.7 would meet c2's zero padding.
      setBias(model, 'c1', { 0: -1, 2: 0.7 });
      const { model: pruned, report } = prune(model);
      const c1 = report.layers.find((l) => l.name === 'c1')!;
      expect(c1.removed).toEqual([0]);
      expect(c1.keptConstant.map((k) => [k.unit, k.value])).toEqual([[2, expect.closeTo(0.7, 6)]]);
      expect(c1.keptConstant[0].reason).toMatch(/'c2'.*its 'same' zero padding/);
      expect(unitsOf(pruned, 'c1')).toBe(4);
      const diff = outputDiff(model, pruned, 4, 2);
      expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
      pruned.dispose();
      model.dispose();
    },
  );

  it.each([
    ['valid', 3],
    ['same', 1],
  ] as const)(
    "a dead filter emitting any constant folds into a '%s' Conv1D of kernel size %d (it pads nothing)",
    (padding, k) => {
      const model = net1d(padding, k);
      randomWeights(model, 9);
      zeroUnits(model, 'c1', [0, 2]);
      setBias(model, 'c1', { 0: -1, 2: 0.7 });
      const { model: pruned, report } = prune(model);
      const c1 = report.layers.find((l) => l.name === 'c1')!;
      expect([c1.removed, c1.keptConstant]).toEqual([[0, 2], []]);
      const diff = outputDiff(model, pruned, 4, 3);
      expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
      pruned.dispose();
      model.dispose();
    },
  );

  it('a threshold zeroes whole 1-D kernels: a filter left with none goes, the small kernels of the others are exact zeros', () => {
    const model = net1d('valid');
    randomWeights(model, 10);
    // c1 filter 3 entirely below the threshold; c2 reads c1's channel 1 only through tiny kernels.
    editWeight(model, 'c1', 'kernel', (v, shape) => {
      for (let p = 0; p < v.length; p++) if (p % shape[2] === 3) v[p] = 1e-4 * (p % 2 ? 1 : -1);
    });
    editWeight(model, 'c2', 'kernel', (v, shape) => {
      const [cin, cout] = shape.slice(1);
      for (let p = 0; p < v.length; p++) if (Math.floor((p % (cin * cout)) / cout) === 1) v[p] = 5e-4;
    });
    const { model: pruned, report } = prune(model, { threshold: 1e-3 });
    const c1 = report.layers.find((l) => l.name === 'c1')!;
    // Filter 3 emits relu(bias), folded; filter 1 is read by nothing live: both go.
    expect(c1.removed).toEqual([1, 3]);
    expect(c1.removedUnused).toBe(1);
    expect(pruned.getLayer('c2').weights[0].shape).toEqual([3, 3, 4]);
    // The same as the model with those groups written as zeros.
    editWeight(model, 'c1', 'kernel', (v, shape) => {
      for (let p = 0; p < v.length; p++) if (p % shape[2] === 3) v[p] = 0;
    });
    editWeight(model, 'c2', 'kernel', (v, shape) => {
      const [cin, cout] = shape.slice(1);
      for (let p = 0; p < v.length; p++) if (Math.floor((p % (cin * cout)) / cout) === 1) v[p] = 0;
    });
    const diff = outputDiff(model, pruned, 4, 4);
    expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
    pruned.dispose();
    model.dispose();
  });

  it('refuses causal padding, which tfjs builds but cannot compute, saying what computes the same', () => {
    const model = net1d('causal');
    expect(() => prune(model)).toThrow(
      /layer 'c1' \(Conv1D\) uses causal padding, which tfjs cannot compute .*\(kernelSize - 1\) \* dilationRate zeros at its start/,
    );
    model.dispose();
  });

  it.each(['kernel', 'filter'] as const)(
    "a decomposed Conv1D ('%s'): the filters whose magnitudes are 0 go, and the outputs stay",
    (granularity) => {
      const model = net1d('same');
      randomWeights(model, 12);
      const dec = decompose(model, { granularity: { conv1d: granularity } });
      // What the proximal step leaves: every group of c1's filters 1 and 3 at exactly 0.
      editWeight(dec, 'c1', 'magnitude', (v, shape) => {
        const cout = shape[shape.length - 1];
        for (let p = 0; p < v.length; p++) if (p % cout === 1 || p % cout === 3) v[p] = 0;
      });
      setBias(dec, 'c1', { 1: -0.2, 3: -0.4 });
      const { model: pruned, report } = prune(dec);
      expect(report.layers.find((l) => l.name === 'c1')).toMatchObject({
        removed: [1, 3],
        removedConstant: 2,
      });
      expect(pruned.getLayer('c1').getClassName()).toBe('Conv1D');
      expect(pruned.getLayer('c2').weights[0].shape).toEqual([3, 3, 4]);
      const diff = outputDiff(dec, pruned, 4, 5);
      expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
      for (const m of [pruned, dec, model]) m.dispose();
    },
  );

  it('a Conv1D before decomposed Dense layers: the head reads no feature of a filter, which goes', () => {
    // The usual path: decompose the model (its Dense layers), train, prune. When the head's input
    // groups from a filter's features are zero, the plain Conv1D before it loses that filter.
    const model = CASES[1].build();
    randomWeights(model, 4);
    zeroKernelWhere(model, 'fc', (i) => i % 6 === 1);
    const dec = decompose(model, { granularity: { dense: 'input' } });
    const { model: pruned, report } = prune(dec);
    expect(report.layers.find((l) => l.name === 'c1')).toMatchObject({ removed: [1], removedUnused: 1 });
    const diff = outputDiff(model, pruned, 4, 3);
    expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
    for (const m of [pruned, dec, model]) m.dispose();
  });
});
