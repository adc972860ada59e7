// prune() prunes through a Conv2DTranspose as through a Conv2D: as a consumer it loses the input
// channels it no longer reads (its kernel is [kh, kw, filters, inChannels], the input channels on
// the last axis), as a producer its dead filters go, their constants folded into the layers after
// it. A constant input channel folds exactly into a Conv2DTranspose only with a 1x1 kernel and
// strides 1 (otherwise output positions receive different numbers of kernel taps): elsewhere only
// the constant 0 folds, and a dead unit emitting another constant stays, saying why.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { decompose, fold } from '@normprune/layers';
import { analyze, prune } from '../src/index';
import { describePruneCases, editWeight, outputDiff, randomWeights, setBias, zeroUnits } from './helpers';
import type { PruneCase } from './helpers';
import { expectSameWeights, pruneTheOldWay } from './same-plan';

const L = tfl.layers;
const seq = (...layers: tfl.layers.Layer[]) => tfl.sequential({ layers });

/** Zeroes a Conv2DTranspose's kernel [..., o, i] (filter o, input channel i) where `pred(i, o)`. */
function zeroTransposed(model: tfl.LayersModel, name: string, pred: (i: number, o: number) => boolean): void {
  editWeight(model, name, 'kernel', (v, shape) => {
    const [cout, cin] = shape.slice(-2);
    for (let p = 0; p < v.length; p++) if (pred(p % cin, Math.floor(p / cin) % cout)) v[p] = 0;
  });
}

/**
 * MACs per sample from the layers' shapes alone: a Conv2DTranspose's kernel once per input
 * position, a Dense's or Conv2D's once per output position.
 */
function macsOf(model: tfl.LayersModel): number {
  const prod = (s: readonly (number | null)[]) => s.reduce((a: number, b) => a * (b as number), 1);
  let macs = 0;
  for (const layer of model.layers) {
    const kernel = layer.weights.find((w) => /kernel(_\d+)?$/.test(w.originalName ?? w.name));
    if (!kernel) continue;
    const inShape = layer.inboundNodes[0].inputTensors[0].shape;
    const at = layer.getClassName() === 'Conv2DTranspose' ? inShape : (layer.outputShape as number[]);
    macs += prod(kernel.shape) * prod(at.slice(1, -1));
  }
  return macs;
}

const CASES: PruneCase[] = [
  {
    // c1's filter 0 emits relu(-0.5) = 0, which folds into t whatever its strides; t reads none of
    // c1's filter 4. t's dead filters emit relu(0.3) and 0, which fold into the 1x1 c2.
    name: "Conv2D -> Conv2DTranspose (3x3, strides 2, 'same') -> 1x1 Conv2D -> GlobalAveragePooling2D",
    build: () =>
      seq(
        L.conv2d({
          inputShape: [5, 5, 2],
          filters: 6,
          kernelSize: 3,
          padding: 'same',
          activation: 'relu',
          name: 'c1',
        }),
        L.conv2dTranspose({
          filters: 5,
          kernelSize: 3,
          strides: 2,
          padding: 'same',
          dataFormat: 'channelsLast',
          activation: 'relu',
          name: 't',
        }),
        L.conv2d({ filters: 4, kernelSize: 1, activation: 'relu', name: 'c2' }),
        L.globalAveragePooling2d({ name: 'gap' }),
        L.dense({ units: 3, name: 'out' }),
      ),
    kill: (m) => {
      zeroUnits(m, 'c1', [0]);
      setBias(m, 'c1', { 0: -0.5 });
      zeroTransposed(m, 't', (i, o) => i === 4 || o === 1 || o === 3);
      setBias(m, 't', { 1: 0.3, 3: -0.2 });
    },
    units: { c1: [6, 4], t: [5, 3], c2: [4, 4], out: [3, 3] },
    kernels: { c1: [3, 3, 2, 4], t: [3, 3, 3, 4], c2: [1, 1, 3, 4] },
  },
  {
    // The first layer: its dead filters' tanh(bias) fold into the 'valid' c2, c2's dead filter
    // through Flatten into 'out'.
    name: "Conv2DTranspose first (3x3, strides 1, 'valid') -> 'valid' Conv2D -> Flatten -> Dense",
    build: () =>
      seq(
        L.conv2dTranspose({
          inputShape: [4, 4, 3],
          filters: 6,
          kernelSize: 3,
          padding: 'valid',
          activation: 'tanh',
          name: 't1',
        }),
        L.conv2d({ filters: 4, kernelSize: 3, activation: 'relu', name: 'c2' }),
        L.flatten({ name: 'flat' }),
        L.dense({ units: 2, name: 'out' }),
      ),
    kill: (m) => {
      zeroTransposed(m, 't1', (_i, o) => o === 2 || o === 5);
      setBias(m, 't1', { 2: 0.4, 5: -0.1 });
      zeroUnits(m, 'c2', [1]);
      setBias(m, 'c2', { 1: 0.2 });
    },
    units: { t1: [6, 4], c2: [4, 3], out: [2, 2] },
    kernels: { t1: [3, 3, 4, 3], c2: [3, 3, 4, 3], out: [48, 2] },
  },
  {
    // A 1x1 Conv2DTranspose of strides 1 adds each input position into one output position: c1's
    // dead filters fold into it whatever they emit (relu(0.6) and 0).
    name: "Conv2D -> 1x1 Conv2DTranspose (strides 1, 'same') -> GlobalAveragePooling2D -> Dense",
    build: () =>
      seq(
        L.conv2d({
          inputShape: [4, 4, 3],
          filters: 5,
          kernelSize: 3,
          padding: 'same',
          activation: 'relu',
          name: 'c1',
        }),
        L.conv2dTranspose({ filters: 4, kernelSize: 1, padding: 'same', name: 't' }),
        L.globalAveragePooling2d({ name: 'gap' }),
        L.dense({ units: 2, name: 'out' }),
      ),
    kill: (m) => {
      zeroUnits(m, 'c1', [1, 3]);
      setBias(m, 'c1', { 1: 0.6, 3: -1 });
      zeroTransposed(m, 't', (_i, o) => o === 2);
      setBias(m, 't', { 2: 0.5 });
    },
    units: { c1: [5, 3], t: [4, 3], out: [2, 2] },
    kernels: { c1: [3, 3, 3, 3], t: [1, 1, 3, 3] },
  },
  {
    // Two Conv2DTranspose layers, the second of a non-square kernel and strides: t1's filter 0
    // emits relu(-0.3) = 0 into t2, which reads none of t1's filter 3; t2's dead filter folds
    // through Flatten.
    name: "Conv2DTranspose (2x2, strides 2, 'valid') -> Conv2DTranspose ([3, 2], strides [2, 1], 'valid') -> Flatten",
    build: () =>
      seq(
        L.conv2dTranspose({
          inputShape: [3, 3, 2],
          filters: 5,
          kernelSize: 2,
          strides: 2,
          activation: 'relu',
          name: 't1',
        }),
        L.conv2dTranspose({ filters: 3, kernelSize: [3, 2], strides: [2, 1], name: 't2' }),
        L.flatten({ name: 'flat' }),
        L.dense({ units: 2, name: 'out' }),
      ),
    kill: (m) => {
      zeroTransposed(m, 't1', (_i, o) => o === 0);
      setBias(m, 't1', { 0: -0.3 });
      zeroTransposed(m, 't2', (i, o) => i === 3 || o === 1);
      setBias(m, 't2', { 1: 0.25 });
    },
    units: { t1: [5, 3], t2: [3, 2], out: [2, 2] },
    kernels: { t1: [2, 2, 3, 2], t2: [3, 2, 2, 3], out: [13 * 7 * 2, 2] },
  },
];

describePruneCases('prune prunes through Conv2DTranspose', CASES, 3, (model, pruned, report) => {
  // MACs: analyze, the report and a count from the layers' shapes agree, before and after.
  const a = analyze(model).total;
  expect([report.before.params, report.before.macs]).toEqual([a.params, macsOf(model)]);
  expect(a.macs).toBe(macsOf(model));
  const b = analyze(pruned).total;
  expect([b.params, b.macs, b.nonzeroMacs]).toEqual([
    pruned.countParams(),
    macsOf(pruned),
    report.after.nonzeroMacs,
  ]);
  expect([report.after.params, report.after.macs]).toEqual([b.params, b.macs]);
  expect(b.macs).toBeLessThan(a.macs);
  // The incremental analysis finds the plan the round-by-round one finds, and the same weights.
  const { model: old } = pruneTheOldWay(model);
  expectSameWeights(pruned, old);
  old.dispose();
});

describe('Conv2DTranspose: what folds and what stays', () => {
  beforeAll(async () => void (await tf.setBackend('cpu')));

  /** x [4, 4, 3] -> c1 (5 relu filters, 3x3 'same') -> t (4 filters, `kernelSize`, `strides`, `padding`) -> GAP -> dense 2. */
  function net(kernelSize: number, strides: number, padding: 'same' | 'valid'): tfl.LayersModel {
    return seq(
      L.conv2d({
        inputShape: [4, 4, 3],
        filters: 5,
        kernelSize: 3,
        padding: 'same',
        activation: 'relu',
        name: 'c1',
      }),
      L.conv2dTranspose({ filters: 4, kernelSize, strides, padding, activation: 'relu', name: 't' }),
      L.globalAveragePooling2d({ name: 'gap' }),
      L.dense({ units: 2, name: 'out' }),
    );
  }

  it.each([
    [3, 1, 'same'],
    [3, 1, 'valid'],
    [3, 2, 'same'],
    [2, 2, 'valid'],
    [1, 2, 'valid'],
  ] as const)(
    "a dead filter emitting 0 folds into a Conv2DTranspose of kernel %d, strides %d, '%s'; one emitting another constant stays, saying why",
    (k, s, padding) => {
      const model = net(k, s, padding);
      randomWeights(model, 8);
      zeroUnits(model, 'c1', [0, 2]);
      // relu(-1) = 0 adds nothing anywhere; relu(0.7) would reach output positions through
      // different numbers of kernel taps (or none, between the strides).
      setBias(model, 'c1', { 0: -1, 2: 0.7 });
      const { model: pruned, report } = prune(model);
      const c1 = report.layers.find((l) => l.name === 'c1')!;
      expect(c1.removed).toEqual([0]);
      expect(c1.keptConstant.map((u) => [u.unit, u.value])).toEqual([[2, expect.closeTo(0.7, 6)]]);
      expect(c1.keptConstant[0].reason).toMatch(
        /read by 't' as a constant other than 0 .*its transposed convolution \(kernel \dx\d, strides \dx\d\) adds a different number of kernel taps/,
      );
      expect(pruned.getLayer('t').weights[0].shape).toEqual([k, k, 4, 4]);
      const diff = outputDiff(model, pruned, 4, 2);
      expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
      pruned.dispose();
      model.dispose();
    },
  );

  it.each(['same', 'valid'] as const)(
    "a constant folds into a 1x1 Conv2DTranspose of strides 1 ('%s') without a bias, which then gets one",
    (padding) => {
      const model = seq(
        L.conv2d({ inputShape: [3, 5, 2], filters: 4, kernelSize: 3, activation: 'relu', name: 'c1' }),
        L.conv2dTranspose({ filters: 3, kernelSize: 1, padding, useBias: false, name: 't' }),
        L.flatten({ name: 'flat' }),
        L.dense({ units: 2, name: 'out' }),
      );
      randomWeights(model, 11);
      zeroUnits(model, 'c1', [1]);
      setBias(model, 'c1', { 1: 0.8 });
      const before = tf.memory().numTensors;
      const { model: pruned, report } = prune(model);
      expect(report.layers.find((l) => l.name === 'c1')).toMatchObject({ removed: [1], removedConstant: 1 });
      const t = pruned.getLayer('t');
      expect(t.weights.map((w) => w.shape)).toEqual([[1, 1, 3, 3], [3]]);
      // The bias is 0.8 times the kernel entries that read the removed channel.
      const kernel = model.getLayer('t').getWeights()[0].dataSync();
      const bias = Array.from(t.getWeights()[1].dataSync());
      bias.forEach((v, o) => expect(v).toBeCloseTo(0.8 * kernel[o * 4 + 1], 6));
      const diff = outputDiff(model, pruned, 4, 9);
      expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
      pruned.dispose();
      expect(tf.memory().numTensors).toBe(before);
      model.dispose();
    },
  );

  it('a threshold zeroes whole 2-D kernels of a Conv2DTranspose: a filter left with none goes, an input channel read through none goes', () => {
    const model = net(3, 2, 'same');
    randomWeights(model, 10);
    // t's filter 3 all below the threshold; t reads c1's channel 1 only through tiny kernels.
    const small = (i: number, o: number) => o === 3 || i === 1;
    const tiny = (v: Float32Array, shape: number[], value: (p: number) => number) => {
      const [cout, cin] = shape.slice(-2);
      for (let p = 0; p < v.length; p++) if (small(p % cin, Math.floor(p / cin) % cout)) v[p] = value(p);
    };
    editWeight(model, 't', 'kernel', (v, shape) => tiny(v, shape, (p) => 5e-4 * (p % 2 ? 1 : -1)));
    const { model: pruned, report } = prune(model, { threshold: 1e-3 });
    expect(report.layers.find((l) => l.name === 't')).toMatchObject({ removed: [3], inputsRemoved: 1 });
    expect(report.layers.find((l) => l.name === 'c1')).toMatchObject({ removed: [1], removedUnused: 1 });
    expect(pruned.getLayer('t').weights[0].shape).toEqual([3, 3, 3, 4]);
    // The same as the model with those groups written as zeros.
    editWeight(model, 't', 'kernel', (v, shape) => tiny(v, shape, () => 0));
    const diff = outputDiff(model, pruned, 4, 4);
    expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
    // analyze at the threshold counts what prune removed.
    const t = analyze(model).layers.find((l) => l.name === 't')!;
    expect(t.groups).toEqual([
      { kind: 'filter', total: 4, dead: 1 },
      { kind: 'kernel', total: 20, dead: 8 },
    ]);
    pruned.dispose();
    model.dispose();
  });

  it('refuses a channelsFirst Conv2DTranspose by name, saying to build it channelsLast', () => {
    const model = seq(
      L.conv2dTranspose({
        inputShape: [3, 4, 4],
        filters: 2,
        kernelSize: 3,
        dataFormat: 'channelsFirst',
        name: 't',
      }),
    );
    expect(() => prune(model)).toThrow(
      /layer 't' \(Conv2DTranspose\) uses dataFormat 'channelsFirst'; only channelsLast is supported: build the model with dataFormat 'channelsLast'/,
    );
    model.dispose();
  });

  it('a Conv2DTranspose left plain by decompose (include); prune then removes the filters of a decomposed Conv2D it no longer reads', () => {
    const model = net(3, 2, 'valid');
    randomWeights(model, 12);
    zeroTransposed(model, 't', (i) => i === 2 || i === 4);
    const dec = decompose(model, {
      granularity: { conv2d: 'filter' },
      include: (layer) => layer.getClassName() !== 'Conv2DTranspose',
    });
    expect(dec.getLayer('t').getClassName()).toBe('Conv2DTranspose');
    const { model: pruned, report } = prune(dec);
    expect(report.layers.find((l) => l.name === 'c1')).toMatchObject({ removed: [2, 4], removedUnused: 2 });
    expect(pruned.getLayer('t').weights[0].shape).toEqual([3, 3, 4, 3]);
    const diff = outputDiff(dec, pruned, 4, 5);
    expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
    for (const m of [pruned, dec, model]) m.dispose();
  });
});

describe('a DecomposedConv2DTranspose, folded and pruned', () => {
  function net(): tfl.LayersModel {
    return seq(
      L.conv2d({
        inputShape: [4, 4, 3],
        filters: 5,
        kernelSize: 3,
        padding: 'same',
        activation: 'relu',
        name: 'c1',
      }),
      L.conv2dTranspose({
        filters: 4,
        kernelSize: 3,
        strides: 2,
        padding: 'same',
        activation: 'relu',
        name: 't',
      }),
      L.conv2dTranspose({ filters: 2, kernelSize: 2, name: 't2' }),
    );
  }

  it("'kernel': zero magnitudes [filters, inChannels] remove a filter whose kernels are all dead and the input channel no kernel reads; a lone dead kernel stays zeros", () => {
    const model = net();
    randomWeights(model, 21);
    // A dead filter emits relu(bias): 0 folds into the 2x2 Conv2DTranspose after it, another constant would not.
    setBias(model, 't', { 1: -1 });
    const dec = decompose(model, { granularity: { conv2d: 'filter', conv2dTranspose: 'kernel' } });
    expect(dec.getLayer('t').getClassName()).toBe('DecomposedConv2DTranspose');
    // Filter 1's kernels, input channel 3's kernels, and the kernel from channel 0 to filter 0.
    editWeight(dec, 't', 'magnitude', (v, shape) => {
      expect(shape).toEqual([4, 5]);
      for (let q = 0; q < v.length; q++) {
        const [o, i] = [Math.floor(q / 5), q % 5];
        if (o === 1 || i === 3 || (o === 0 && i === 0)) v[q] = 0;
      }
    });
    for (const input of [dec, fold(dec)]) {
      const { model: pruned, report } = prune(input);
      expect(report.layers.find((l) => l.name === 'c1')).toMatchObject({ removed: [3] });
      expect(report.layers.find((l) => l.name === 't')).toMatchObject({ removed: [1] });
      const kernel = pruned.getLayer('t').getWeights()[0];
      expect(kernel.shape).toEqual([3, 3, 3, 4]); // [kh, kw, filters, inChannels]
      const k = kernel.arraySync() as number[][][][];
      for (const row of k) for (const col of row) expect(Math.abs(col[0][0])).toBe(0);
      expect(pruned.getLayer('t2').getWeights()[0].shape).toEqual([2, 2, 2, 3]);
      const diff = outputDiff(dec, pruned, 4, 5);
      expect(diff.scale).toBeGreaterThan(0);
      expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
      pruned.dispose();
      if (input !== dec) input.dispose();
    }
    expect(analyze(dec).total).toEqual(analyze(fold(dec)).total);
    for (const m of [dec, model]) m.dispose();
  });

  it("'filter': a zero magnitude removes that filter, and the next Conv2DTranspose's input channel", () => {
    const model = net();
    randomWeights(model, 22);
    setBias(model, 't', { 2: -1 });
    const dec = decompose(model, { granularity: { conv2dTranspose: 'filter' } });
    editWeight(dec, 't', 'magnitude', (v) => {
      v[2] = 0;
    });
    const { model: pruned, report } = prune(dec);
    expect(report.layers.find((l) => l.name === 't')).toMatchObject({ removed: [2] });
    expect(pruned.getLayer('t').getWeights()[0].shape).toEqual([3, 3, 3, 5]);
    expect(pruned.getLayer('t2').getWeights()[0].shape).toEqual([2, 2, 2, 3]);
    const diff = outputDiff(dec, pruned, 4, 6);
    expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
    for (const m of [pruned, dec, model]) m.dispose();
  });
});
