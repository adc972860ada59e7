// prune() follows a DepthwiseConv2D of depthMultiplier m above 1: output channel c * m + j reads
// input channel c alone (depthwise_kernel [:, :, c, j]), so the m outputs of a channel carry its id.
// The channel, its producer's unit and its m outputs go together when every output is unused or a
// constant its readers fold (a dead unit, or all m 2-D kernels zero), and only then, so the
// multiplier stays m. Before, such a layer was refused.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { decompose, fold } from '@normprune/layers';
import { analyze, prune } from '../src/index';
import {
  describePruneCases,
  editWeight,
  outputDiff,
  randomWeights,
  setBias,
  zeroInputs,
  zeroKernelWhere,
  zeroUnits,
} from './helpers';
import type { PruneCase } from './helpers';

/** x [7, 7, 3] -> conv 'c1' (4 filters, 3x3 'valid', relu) -> DepthwiseConv2D 'dw' -> `rest`. */
function chain(
  dw: { depthMultiplier: number; padding: 'same' | 'valid'; activation?: 'relu' | 'linear' },
  rest: tfl.layers.Layer[],
): tfl.Sequential {
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({ inputShape: [7, 7, 3], filters: 4, kernelSize: 3, activation: 'relu', name: 'c1' }),
      tfl.layers.depthwiseConv2d({ kernelSize: 3, name: 'dw', ...dw }),
      ...rest,
    ],
  });
}

const gapDense = () => [
  tfl.layers.globalAveragePooling2d({ name: 'gap' }),
  tfl.layers.dense({ units: 3, name: 'out' }),
];
const pointwise = () => [
  tfl.layers.conv2d({ filters: 5, kernelSize: 1, activation: 'relu', name: 'pw' }),
  tfl.layers.flatten({ name: 'flat' }),
  tfl.layers.dense({ units: 2, name: 'out' }),
];

const CASES: PruneCase[] = [
  {
    name: "every output of a channel unread (m = 2, 'same', relu): it goes, with its filter",
    build: () => chain({ depthMultiplier: 2, padding: 'same', activation: 'relu' }, gapDense()),
    kill: (m) => zeroInputs(m, 'out', [2, 3]),
    removed: { c1: [1] },
    kernels: { c1: [3, 3, 3, 3], dw: [3, 3, 3, 2], out: [6, 3] },
  },
  {
    name: "one of a channel's outputs still read: nothing goes (the multiplier stays 2)",
    build: () => chain({ depthMultiplier: 2, padding: 'same', activation: 'relu' }, gapDense()),
    kill: (m) => zeroInputs(m, 'out', [2, 5, 7]),
    removed: {},
    kernels: { c1: [3, 3, 3, 4], dw: [3, 3, 4, 2], out: [8, 3] },
  },
  {
    // relu(-0.5) = 0 survives the zero padding: the 3 outputs are the constants act(bias).
    name: "a dead filter emitting 0, through a 'same' multiplier 3, folded into a 1x1 conv",
    build: () => chain({ depthMultiplier: 3, padding: 'same', activation: 'relu' }, pointwise()),
    kill: (m) => {
      setBias(m, 'c1', { 2: -0.5 });
      zeroUnits(m, 'c1', [2]);
    },
    removed: { c1: [2] },
    kernels: { c1: [3, 3, 3, 3], dw: [3, 3, 3, 3], pw: [1, 1, 9, 5] },
  },
  {
    name: "a dead filter emitting 0.4, through a 'valid' multiplier 2, folded into a 1x1 conv",
    build: () => chain({ depthMultiplier: 2, padding: 'valid' }, pointwise()),
    kill: (m) => {
      setBias(m, 'c1', { 0: 0.4 });
      zeroUnits(m, 'c1', [0]);
    },
    removed: { c1: [0] },
    kernels: { c1: [3, 3, 3, 3], dw: [3, 3, 3, 2], pw: [1, 1, 6, 5] },
  },
  {
    name: 'all m 2-D kernels of a channel zero: its outputs are constants whatever it reads, and it goes',
    build: () => chain({ depthMultiplier: 2, padding: 'same', activation: 'relu' }, pointwise()),
    kill: (m) => zeroKernelWhere(m, 'dw', (c) => c === 3, 'depthwise_kernel'),
    removed: { c1: [3] },
    kernels: { c1: [3, 3, 3, 3], dw: [3, 3, 3, 2], pw: [1, 1, 6, 5] },
  },
  {
    name: "one of a channel's 2-D kernels zero, the other live: nothing goes",
    build: () => chain({ depthMultiplier: 2, padding: 'same', activation: 'relu' }, pointwise()),
    kill: (m) => zeroKernelWhere(m, 'dw', (c, j) => c === 3 && j === 0, 'depthwise_kernel'),
    removed: {},
    kernels: { c1: [3, 3, 3, 4], dw: [3, 3, 4, 2], pw: [1, 1, 8, 5] },
  },
  {
    // An Add couples outputs 2 and 3 (c1's channel 1) with filters 2 and 3 of 'b': all four go.
    name: "an Add coupling a channel's outputs with a conv's filters",
    build: () => {
      const x = tfl.input({ shape: [6, 6, 2], name: 'x' });
      const c1 = tfl.layers
        .conv2d({ filters: 3, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1' })
        .apply(x) as tfl.SymbolicTensor;
      const dw = tfl.layers
        .depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'same', name: 'dw' })
        .apply(c1) as tfl.SymbolicTensor;
      const b = tfl.layers
        .conv2d({ filters: 6, kernelSize: 3, padding: 'same', name: 'b' })
        .apply(x) as tfl.SymbolicTensor;
      const sum = tfl.layers.add({ name: 'add' }).apply([dw, b]) as tfl.SymbolicTensor;
      const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(sum) as tfl.SymbolicTensor;
      const out = tfl.layers.dense({ units: 3, name: 'out' }).apply(gap) as tfl.SymbolicTensor;
      return tfl.model({ inputs: x, outputs: out });
    },
    kill: (m) => zeroInputs(m, 'out', [2, 3]),
    removed: { c1: [1], b: [2, 3] },
    kernels: { c1: [3, 3, 2, 2], dw: [3, 3, 2, 2], b: [3, 3, 2, 4], out: [4, 3] },
  },
];

describePruneCases(
  'prune follows a DepthwiseConv2D of depthMultiplier above 1',
  CASES,
  41,
  (model, pruned) => {
    // The multiplier is the model's.
    expect(pruned.getLayer('dw').getConfig().depthMultiplier).toBe(
      model.getLayer('dw').getConfig().depthMultiplier,
    );
    const diff = outputDiff(model, pruned, 3, 4);
    expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
  },
);

it("with a threshold, each of a channel's m 2-D kernels at or below it counts as zero, as analyze counts it", async () => {
  await tf.setBackend('cpu');
  const model = chain({ depthMultiplier: 2, padding: 'valid', activation: 'relu' }, pointwise());
  randomWeights(model, 42);
  // No other weight at or below the threshold (prune would drop those too).
  for (const [layer, weight] of [
    ['c1', 'kernel'],
    ['dw', 'depthwise_kernel'],
    ['pw', 'kernel'],
    ['out', 'kernel'],
  ])
    editWeight(model, layer, weight, (v) => v.forEach((x, q) => (v[q] = x + Math.sign(x || 1) * 0.01)));
  // Channel 2's two kernels below 1e-3, channel 0's first only.
  editWeight(model, 'dw', 'depthwise_kernel', (v, s) =>
    v.forEach((_, q) => {
      const g = q % (s[2] * s[3]);
      if (g === 4 || g === 5 || g === 0) v[q] *= 1e-5;
    }),
  );
  const threshold = 1e-3;
  // A filter of a DepthwiseConv2D is an input channel's m kernels (a 'filter' decomposition's group).
  expect(analyze(model, { threshold }).layers.find((l) => l.name === 'dw')!.groups).toEqual([
    { kind: 'filter', total: 4, dead: 1 },
    { kind: 'kernel', total: 8, dead: 3 },
  ]);
  const { model: pruned, report } = prune(model, { threshold });
  expect(report.layers.find((l) => l.name === 'c1')!.removed).toEqual([2]);
  expect(pruned.getLayer('dw').weights[0].shape).toEqual([3, 3, 3, 2]);
  // The model with those kernels zero computes what the pruned model does.
  zeroKernelWhere(model, 'dw', (c, j) => c === 2 || (c === 0 && j === 0), 'depthwise_kernel');
  const diff = outputDiff(model, pruned, 3, 7);
  expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
  pruned.dispose();
  model.dispose();
});

it('a branch whose filters all die before a multiplier 2 keeps a placeholder, read with zero weights', async () => {
  await tf.setBackend('cpu');
  // x -> c1 (3 filters, relu) -> dw (m = 2, 'valid') -> pw (1x1, 4 filters); x -> skip (3x3 'valid', 4 filters); add.
  const x = tfl.input({ shape: [6, 6, 2], name: 'x' });
  const c1 = tfl.layers.conv2d({ filters: 3, kernelSize: 1, activation: 'relu', name: 'c1' }).apply(x);
  const dw = tfl.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, name: 'dw' }).apply(c1);
  const pw = tfl.layers.conv2d({ filters: 4, kernelSize: 1, name: 'pw' }).apply(dw) as tfl.SymbolicTensor;
  const skip = tfl.layers.conv2d({ filters: 4, kernelSize: 3, name: 'skip' }).apply(x) as tfl.SymbolicTensor;
  const sum = tfl.layers.add({ name: 'add' }).apply([pw, skip]) as tfl.SymbolicTensor;
  const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(sum) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: 3, name: 'out' }).apply(gap) as tfl.SymbolicTensor;
  const model = tfl.model({ inputs: x, outputs: out });
  randomWeights(model, 43);
  zeroUnits(model, 'c1', [0, 1, 2]);
  const before = tf.memory().numTensors;
  const { model: pruned, report } = prune(model);
  const c1Report = report.layers.find((l) => l.name === 'c1')!;
  expect([c1Report.unitsAfter, c1Report.placeholders.map((p) => p.unit)]).toEqual([1, [0]]);
  expect(pruned.getLayer('dw').weights[0].shape).toEqual([3, 3, 1, 2]);
  expect(pruned.getLayer('pw').weights[0].shape).toEqual([1, 1, 2, 4]);
  for (const seed of [4, 5]) {
    const diff = outputDiff(model, pruned, 3, seed);
    expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
  }
  pruned.dispose();
  expect(tf.memory().numTensors).toBe(before);
  model.dispose();
});

describe('a DecomposedDepthwiseConv2D, folded and pruned', () => {
  const model = () => chain({ depthMultiplier: 2, padding: 'same', activation: 'relu' }, pointwise());

  /** Units removed, by layer, and the first weight's shape of each layer, of a pruned model. */
  function outcome(report: { layers: { name: string; removed: number[] }[] }, pruned: tfl.LayersModel) {
    return {
      removed: Object.fromEntries(
        report.layers.filter((l) => l.removed.length).map((l) => [l.name, l.removed]),
      ),
      shapes: Object.fromEntries(
        pruned.layers.filter((l) => l.weights.length).map((l) => [l.name, l.weights[0].shape]),
      ),
    };
  }

  /**
   * Prunes `dec` (directly and after fold) and the plain model whose depthwise kernels are zero where
   * `dead(c, j)`, and checks that they remove the same, keep the same zeros and compute the same.
   */
  function expectSameAsPlain(
    dec: tfl.LayersModel,
    plain: tfl.LayersModel,
    dead: (c: number, j: number) => boolean,
    expected: { removed: Record<string, number[]>; dw: number[] },
  ): void {
    zeroKernelWhere(plain, 'dw', dead, 'depthwise_kernel');
    const reference = prune(plain);
    const want = outcome(reference.report, reference.model);
    expect(want.removed).toEqual(expected.removed);
    expect(want.shapes.dw).toEqual(expected.dw);
    const before = outputDiff(dec, plain, 3, 7);
    expect(before.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, before.scale));
    const folded = fold(dec);
    expect(folded.getLayer('dw').getClassName()).toBe('DepthwiseConv2D');
    for (const input of [dec, folded]) {
      const { model: pruned, report } = prune(input);
      expect(outcome(report, pruned)).toEqual(want);
      expect(report.warnings).toEqual([]);
      const kernels = [pruned, reference.model].map((m) => m.getLayer('dw').getWeights()[0].dataSync());
      // The same zeros: a lone dead kernel stays, as zeros.
      expect(Array.from(kernels[0], (v) => v === 0)).toEqual(Array.from(kernels[1], (v) => v === 0));
      for (const seed of [4, 5]) {
        const diff = outputDiff(dec, pruned, 3, seed);
        expect(diff.scale).toBeGreaterThan(0);
        expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
        const same = outputDiff(reference.model, pruned, 3, seed);
        expect(same.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, same.scale));
      }
      pruned.dispose();
    }
    expect(analyze(dec).total).toEqual(analyze(plain).total);
    expect(analyze(folded).total).toEqual(analyze(plain).total);
    for (const m of [folded, reference.model]) m.dispose();
  }

  beforeAll(() => tf.setBackend('cpu'));

  it("'kernel': zero magnitudes [inChannels, depthMultiplier] remove a channel whose kernels all died, with its producer's filter; a lone dead kernel stays zeros", () => {
    const plain = model();
    randomWeights(plain, 43);
    const dec = decompose(plain, { granularity: { conv2d: 'filter' } });
    expect(dec.getLayer('dw').getClassName()).toBe('DecomposedDepthwiseConv2D');
    const dead = (c: number, j: number) => c === 3 || (c === 0 && j === 0);
    editWeight(dec, 'dw', 'magnitude', (v, shape) => {
      expect(shape).toEqual([4, 2]);
      for (let q = 0; q < v.length; q++) if (dead(Math.floor(q / 2), q % 2)) v[q] = 0;
    });
    expectSameAsPlain(dec, plain, dead, { removed: { c1: [3] }, dw: [3, 3, 3, 2] });
    expect(analyze(dec).layers.find((l) => l.name === 'dw')!.groups).toEqual([
      { kind: 'filter', total: 4, dead: 1 },
      { kind: 'kernel', total: 8, dead: 3 },
    ]);
    for (const m of [dec, plain]) m.dispose();
  });

  it("'filter': a zero magnitude [inChannels] removes that channel, its outputs and its producer's filter", () => {
    const plain = model();
    randomWeights(plain, 44);
    const dec = decompose(plain, { granularity: { depthwiseConv2d: 'filter' } });
    editWeight(dec, 'dw', 'magnitude', (v, shape) => {
      expect(shape).toEqual([4]);
      v[1] = 0;
    });
    expectSameAsPlain(dec, plain, (c) => c === 1, { removed: { c1: [1] }, dw: [3, 3, 3, 2] });
    // analyze counts the groups the layer was trained with: 1 dead of magnitudes()'s 4.
    expect(analyze(dec).layers.find((l) => l.name === 'dw')!.groups).toEqual([
      { kind: 'filter', total: 4, dead: 1 },
      { kind: 'kernel', total: 8, dead: 2 },
    ]);
    for (const m of [dec, plain]) m.dispose();
  });
});
