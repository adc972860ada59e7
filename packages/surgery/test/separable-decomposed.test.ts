// A model whose SeparableConv2D layers @normprune/layers decomposed (DecomposedSeparableConv2D: a
// depthwise and a pointwise magnitude), trained with a group-lasso proximal step until groups of
// both parts are exactly zero, then folded and pruned: the pruned model computes what the trained
// one does, its dead pointwise filters and dead depthwise channels are gone, and analyze counts
// the groups each part's magnitudes stand for.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { type ConvGranularity, decompose, fold, magnitudes, type MagnitudeInfo } from '@normprune/layers';
import { analyze, prune } from '../src/index';
import { outputDiff, randomWeights } from './helpers';

beforeAll(() => tf.setBackend('cpu'));

/** conv 'c1' 3 -> 4, SeparableConv2D 's1' 4 -> 6 (multiplier 2, 'same', stride 2), 's2' 6 -> 5, pooling, dense 3. */
function net(): tfl.LayersModel {
  const model = tfl.sequential({
    layers: [
      tfl.layers.conv2d({ inputShape: [9, 9, 3], filters: 4, kernelSize: 3, activation: 'relu', name: 'c1' }),
      tfl.layers.separableConv2d({
        filters: 6,
        kernelSize: 3,
        depthMultiplier: 2,
        padding: 'same',
        strides: 2,
        activation: 'relu',
        name: 's1',
      }),
      tfl.layers.separableConv2d({ filters: 5, kernelSize: 2, activation: 'relu', name: 's2' }),
      tfl.layers.globalAveragePooling2d({ name: 'gap' }),
      tfl.layers.dense({ units: 3, name: 'out' }),
    ],
  });
  randomWeights(model, 11);
  return model;
}

const zerosOf = (m: MagnitudeInfo): boolean[] => Array.from(m.magnitude.dataSync(), (v) => v === 0);
const count = (b: boolean[]): number => b.filter(Boolean).length;

/**
 * Adam on a regression loss, each step followed by the group-lasso proximal step on s1's two
 * magnitudes (g <- max(g - 0.01 * lambda, 0), the step @normprune/prox's ProximalSGD takes on a
 * magnitude; s2 is left unpenalised), until each of s1's parts has a zero group. Adam for the
 * smooth part, with a fixed shrink: deterministic, and a few dozen steps (ProximalSGD at the same
 * sizes either kills every single-weight pointwise group of a 'kernel' layer or none).
 */
function train(model: tfl.LayersModel, lambda: number): MagnitudeInfo[] {
  const infos = magnitudes(model).filter((m) => m.part != null);
  const s1 = infos.filter((m) => m.layerName.startsWith('s1:'));
  const opt = tf.train.adam(0.01);
  const xs = tf.randomNormal([8, 9, 9, 3], 0, 1, 'float32', 1);
  const ys = tf.randomNormal([8, 3], 0, 1, 'float32', 2);
  for (let step = 0; step < 200 && !s1.every((m) => zerosOf(m).some(Boolean)); step++) {
    opt.minimize(() => tf.losses.meanSquaredError(ys, model.apply(xs) as tf.Tensor) as tf.Scalar);
    for (const m of s1) tf.tidy(() => m.magnitude.assign(tf.relu(tf.sub(m.magnitude, 0.01 * lambda))));
  }
  tf.dispose([xs, ys]);
  opt.dispose();
  return infos;
}

describe.each([
  ['kernel', 1],
  ['filter', 2],
] as [ConvGranularity, number][])(
  'DecomposedSeparableConv2D at %s, trained until groups are zero, folded and pruned',
  (granularity, lambda) => {
    let model: tfl.LayersModel;
    let infos: MagnitudeInfo[];
    beforeAll(() => {
      model = decompose(net(), { granularity: { conv2d: 'filter', separableConv2d: granularity } });
      infos = train(model, lambda);
    });
    afterAll(() => model.dispose());

    const part = (name: string) => infos.find((m) => m.layerName === name)!;

    it('has zero groups in both parts of s1', () => {
      expect(infos.map((m) => m.layerName)).toEqual([
        's1:depthwise',
        's1:pointwise',
        's2:depthwise',
        's2:pointwise',
      ]);
      for (const name of ['s1:depthwise', 's1:pointwise']) {
        const zeros = count(zerosOf(part(name)));
        expect(zeros).toBeGreaterThan(0);
        expect(zeros).toBeLessThan(part(name).groups);
      }
    });

    it('analyze counts the groups of each part that its magnitudes stand for', () => {
      const groups = analyze(model).layers.find((l) => l.name === 's1')!.groups;
      const [dw, pw] = [part('s1:depthwise'), part('s1:pointwise')].map(zerosOf);
      // [inChannels, depthMultiplier] = [4, 2], [inChannels * depthMultiplier, filters] = [8, 6] at
      // 'kernel'; [4] and [6] at 'filter'. A channel is dead when its 2 kernels are, a filter when
      // its 8 weights are.
      const deadChannels =
        granularity === 'filter' ? count(dw) : [0, 1, 2, 3].filter((c) => dw[2 * c] && dw[2 * c + 1]).length;
      const deadFilters =
        granularity === 'filter'
          ? count(pw)
          : [0, 1, 2, 3, 4, 5].filter((f) => [0, 1, 2, 3, 4, 5, 6, 7].every((i) => pw[6 * i + f])).length;
      const groupsOf = (p: 'depthwise' | 'pointwise', kind: 'filter' | 'kernel') =>
        groups.find((g) => g.part === p && g.kind === kind);
      expect(groupsOf('depthwise', 'filter')).toEqual({
        kind: 'filter',
        part: 'depthwise',
        total: 4,
        dead: deadChannels,
      });
      expect(groupsOf('pointwise', 'filter')).toEqual({
        kind: 'filter',
        part: 'pointwise',
        total: 6,
        dead: deadFilters,
      });
      if (granularity === 'kernel') {
        expect(groupsOf('depthwise', 'kernel')).toEqual({
          kind: 'kernel',
          part: 'depthwise',
          total: 8,
          dead: count(dw),
        });
        expect(groupsOf('pointwise', 'kernel')).toEqual({
          kind: 'kernel',
          part: 'pointwise',
          total: 48,
          dead: count(pw),
        });
      }
      expect(groups).toHaveLength(4);
      expect(analyze(model).table()).toMatch(
        /^s1\s+SeparableConv2D\s.*depthwise filters \d\/4, depthwise kernels \d\/8, pointwise filters \d\/6, pointwise kernels \d+\/48$/m,
      );
    });

    it('fold then prune keeps the outputs and removes the dead filters and channels', () => {
      const folded = fold(model);
      expect(folded.getLayer('s1').getClassName()).toBe('SeparableConv2D');
      const before = tf.memory().numTensors;
      const { model: pruned, report } = prune(folded);
      for (const seed of [4, 5]) {
        const diff = outputDiff(model, pruned, 3, seed);
        expect(diff.scale).toBeGreaterThan(0);
        expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
      }
      const s1 = analyze(model).layers.find((l) => l.name === 's1')!.groups;
      const dead = (p: string) => s1.find((g) => g.part === p && g.kind === 'filter')!.dead;
      const units = Object.fromEntries(report.layers.map((l) => [l.name, [l.unitsBefore, l.unitsAfter]]));
      // s1's dead filters go, and so does each dead depthwise channel of s1, with the filter of c1
      // that feeds it; s2 and out, unpenalised, keep theirs.
      expect(dead('pointwise')).toBeGreaterThan(0);
      if (granularity === 'filter') expect(dead('depthwise')).toBeGreaterThan(0);
      expect(units).toEqual({
        c1: [4, 4 - dead('depthwise')],
        's1/pointwise': [6, 6 - dead('pointwise')],
        's2/pointwise': [5, 5],
        out: [3, 3],
      });
      expect(pruned.getLayer('s1/pointwise').getWeights()[0].shape[3]).toBe(units['s1/pointwise'][1]);
      expect(pruned.getLayer('s1/depthwise').getWeights()[0].shape).toEqual([3, 3, units.c1[1], 2]);
      // Pruning the decomposed model directly (prune folds it) removes the same.
      const direct = prune(model);
      expect(direct.report.layers.map((l) => [l.name, l.unitsAfter])).toEqual(
        report.layers.map((l) => [l.name, l.unitsAfter]),
      );
      direct.model.dispose();
      pruned.dispose();
      expect(tf.memory().numTensors).toBe(before);
      folded.dispose();
    });
  },
);

it("a refusal for a DecomposedSeparableConv2D whose filters all died names its multiplier key, 'sep:pointwise'", () => {
  const model = decompose(net(), { granularity: { separableConv2d: 'filter' } });
  const pointwise = magnitudes(model).find((m) => m.layerName === 's2:pointwise')!;
  tf.tidy(() => pointwise.magnitude.assign(tf.zerosLike(pointwise.magnitude)));
  expect(() => prune(model)).toThrow(
    /^surgery: every unit of layer 's2' \(SeparableConv2D, 5 units\) is dead: .*layerMultipliers: \{ 's2:pointwise': 0 \} leaves it unpenalised\)$/,
  );
  model.dispose();
});

it("a refusal for a DecomposedSeparableConv2D whose depthwise channels all died names 'sep:depthwise', the part that killed it", () => {
  const model = decompose(net(), { granularity: { separableConv2d: 'filter' } });
  const depthwise = magnitudes(model).find((m) => m.layerName === 's2:depthwise')!;
  tf.tidy(() => depthwise.magnitude.assign(tf.zerosLike(depthwise.magnitude)));
  // Its pointwise magnitudes are all alive: leaving them unpenalised would not have kept the layer.
  expect(() => prune(model)).toThrow(
    /^surgery: every unit of layer 's2' \(SeparableConv2D, 5 units\) is dead: .*layerMultipliers: \{ 's2:depthwise': 0 \} leaves it unpenalised\)$/,
  );
  // Both parts with dead groups: both are named.
  const pointwise = magnitudes(model).find((m) => m.layerName === 's2:pointwise')!;
  tf.tidy(() => pointwise.magnitude.assign(tf.mul(pointwise.magnitude, tf.tensor1d([0, 1, 1, 1, 1]))));
  expect(() => prune(model)).toThrow(
    /layerMultipliers: \{ 's2:depthwise': 0, 's2:pointwise': 0 \} leaves it unpenalised\)$/,
  );
  model.dispose();
});
