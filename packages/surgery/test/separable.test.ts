// prune() splits a SeparableConv2D (dilation rate 1) into the DepthwiseConv2D (no bias, its
// depthMultiplier) and the 1x1 Conv2D it computes (tfjs computes it as exactly those two ops) and
// prunes through them: its pointwise filters are units, and the depthwise channels reading a
// removed unit go (with their m outputs, for a depthMultiplier m). Before, it was refused as a
// layer surgery does not know (or kept whole with unknownLayers 'keep'); one of depthMultiplier
// above 1 was, until surgery followed a DepthwiseConv2D of any multiplier.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { fileSystem } from '@normprune/runtime';
import { analyze, DisconnectedModelError, exportModel, prune } from '../src/index';
import { BACKENDS, editWeight, randomWeights, zeroKernelWhere, zeroUnits } from './helpers';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'surgery-separable-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Kills filters of a SeparableConv2D: its pointwise kernel's columns. */
function killPointwise(model: tfl.LayersModel, layer: string, filters: number[]): void {
  zeroKernelWhere(model, layer, (_i, o) => filters.includes(o), 'pointwise_kernel');
}

/**
 * A chain: conv 3 -> 4, SeparableConv2D 4 -> 6 ('same', strides 2, relu), another 6 -> 5, pooling,
 * dense 3; both separable layers of depthMultiplier `m`.
 */
function chain(m = 1): tfl.LayersModel {
  const model = tfl.sequential({
    layers: [
      tfl.layers.conv2d({ inputShape: [9, 9, 3], filters: 4, kernelSize: 3, activation: 'relu', name: 'c1' }),
      tfl.layers.separableConv2d({
        filters: 6,
        kernelSize: 3,
        padding: 'same',
        strides: 2,
        activation: 'relu',
        depthMultiplier: m,
        name: 's1',
      }),
      tfl.layers.separableConv2d({
        filters: 5,
        kernelSize: 2,
        activation: 'relu',
        depthMultiplier: m,
        name: 's2',
      }),
      tfl.layers.globalAveragePooling2d({ name: 'gap' }),
      tfl.layers.dense({ units: 3, name: 'out' }),
    ],
  });
  randomWeights(model, 1);
  // c1's filter 1 dead, and emitting 0 (its bias below 0 before the relu): a constant that 'same'
  // padding keeps exact, so it goes (one emitting another constant stays, as for a Conv2D).
  zeroUnits(model, 'c1', [1]);
  editWeight(model, 'c1', 'bias', (v) => (v[1] = -1));
  killPointwise(model, 's1', [0, 4]);
  killPointwise(model, 's2', [3]);
  return model;
}

/**
 * Functional: a SeparableConv2D (of depthMultiplier `m`) first on the input, its output read by a
 * residual Add and by a Conv2D.
 */
function branching(m = 1): tfl.LayersModel {
  const x = tfl.input({ shape: [6, 6, 2] });
  const s = tfl.layers
    .separableConv2d({
      filters: 4,
      kernelSize: 3,
      padding: 'same',
      activation: 'relu',
      depthMultiplier: m,
      name: 'sep',
    })
    .apply(x) as tfl.SymbolicTensor;
  const c = tfl.layers
    .conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'conv' })
    .apply(s) as tfl.SymbolicTensor;
  const sum = tfl.layers.add({ name: 'sum' }).apply([s, c]) as tfl.SymbolicTensor;
  const flat = tfl.layers.flatten({ name: 'flat' }).apply(sum) as tfl.SymbolicTensor;
  const y = tfl.layers.dense({ units: 2, name: 'out' }).apply(flat) as tfl.SymbolicTensor;
  const model = tfl.model({ inputs: x, outputs: y });
  randomWeights(model, 2);
  // Channel 1 of the sum: sep's filter 1 and conv's filter 1 both dead, and out reads none of it.
  // sep's emits relu(-0.5) = 0, which conv's 'same' zero padding keeps exact.
  killPointwise(model, 'sep', [1]);
  editWeight(model, 'sep', 'bias', (v) => (v[1] = -0.5));
  zeroUnits(model, 'conv', [1]);
  zeroKernelWhere(model, 'out', (i) => i % 4 === 1);
  return model;
}

function maxDiff(a: tfl.LayersModel, b: tfl.LayersModel, seed: number): number {
  return tf.tidy(() => {
    const x = tf.randomNormal([3, ...(a.inputs[0].shape.slice(1) as number[])], 0, 1, 'float32', seed);
    return tf.max(tf.abs(tf.sub(a.predict(x) as tf.Tensor, b.predict(x) as tf.Tensor))).dataSync()[0];
  });
}

describe.each(BACKENDS)('prune splits a SeparableConv2D, on %s', (backend, init) => {
  beforeAll(init);

  it.each<[string, () => tfl.LayersModel, Record<string, [number, number]>, Record<string, number[]>]>([
    [
      'in a chain, strided and padded, two in a row',
      chain,
      { c1: [4, 3], 's1/pointwise': [6, 4], 's2/pointwise': [5, 4], out: [3, 3] },
      { 's1/depthwise': [3, 3, 3, 1], 's1/pointwise': [1, 1, 3, 4], 's2/depthwise': [2, 2, 4, 1] },
    ],
    [
      'first on the input, read by an Add and a Conv2D',
      branching,
      { 'sep/pointwise': [4, 3], conv: [4, 3], out: [2, 2] },
      { 'sep/depthwise': [3, 3, 2, 1], 'sep/pointwise': [1, 1, 2, 3], conv: [3, 3, 3, 3] },
    ],
    [
      'of depthMultiplier 2, in a chain: a removed channel takes its 2 depthwise outputs',
      () => chain(2),
      { c1: [4, 3], 's1/pointwise': [6, 4], 's2/pointwise': [5, 4], out: [3, 3] },
      {
        's1/depthwise': [3, 3, 3, 2],
        's1/pointwise': [1, 1, 6, 4],
        's2/depthwise': [2, 2, 4, 2],
        's2/pointwise': [1, 1, 8, 4],
      },
    ],
    [
      'of depthMultiplier 3, first on the input, read by an Add and a Conv2D',
      () => branching(3),
      { 'sep/pointwise': [4, 3], conv: [4, 3], out: [2, 2] },
      { 'sep/depthwise': [3, 3, 2, 3], 'sep/pointwise': [1, 1, 6, 3], conv: [3, 3, 3, 3] },
    ],
  ])('%s: the same outputs, its filters pruned', async (_, build, units, kernels) => {
    const model = build();
    const before = tf.memory().numTensors;
    const { model: pruned, report } = prune(model);
    expect(Object.fromEntries(report.layers.map((l) => [l.name, [l.unitsBefore, l.unitsAfter]]))).toEqual(
      units,
    );
    for (const [name, shape] of Object.entries(kernels))
      expect(pruned.getLayer(name).weights[0].shape).toEqual(shape);
    expect(pruned.layers.some((l) => l.getClassName() === 'SeparableConv2D')).toBe(false);
    // The printed table: the SeparableConv2D's row, its filters, and its two layers' counts after.
    const table = report.table();
    for (const sep of report.layersBefore.filter((l) => l.className === 'SeparableConv2D')) {
      const [d, pw] = ['depthwise', 'pointwise'].map((part) =>
        pruned.getLayer(`${sep.name}/${part}`).countParams(),
      );
      const u = units[`${sep.name}/pointwise`];
      expect(table).toMatch(
        new RegExp(
          `^${sep.name}\\s+SeparableConv2D\\s+${u[0]} -> ${u[1]}\\s+${sep.params} -> ${d + pw}\\s`,
          'm',
        ),
      );
    }
    expect(maxDiff(model, pruned, 3)).toBeLessThan(1e-5);
    // The input model counted as analyze counts it: the same parameters and MACs.
    const a = analyze(model);
    expect([report.before.params, report.before.macs]).toEqual([a.total.params, a.total.macs]);
    // The export loads in plain tfjs and computes the same.
    const dir = path.join(tmp, `${backend}-${model.name}`);
    await exportModel(pruned, dir);
    const loaded = await tfl.loadLayersModel(fileSystem(dir));
    expect(maxDiff(model, loaded, 4)).toBeLessThan(1e-5);
    loaded.dispose();
    pruned.dispose();
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
});

describe('SeparableConv2D split: what it keeps and what it refuses', () => {
  beforeAll(async () => void (await tf.setBackend('cpu')));

  it('keeps a frozen SeparableConv2D frozen in both layers, and its constraints', () => {
    const model = tfl.sequential({
      layers: [
        tfl.layers.separableConv2d({
          inputShape: [5, 5, 2],
          filters: 3,
          kernelSize: 3,
          name: 'sep',
          pointwiseConstraint: 'nonNeg',
        }),
        tfl.layers.flatten(),
        tfl.layers.dense({ units: 2, name: 'out' }),
      ],
    });
    model.getLayer('sep').trainable = false;
    // Weights that satisfy the constraint (tfjs applies none while training): it is kept.
    editWeight(model, 'sep', 'pointwise_kernel', (v) => v.forEach((x, i) => (v[i] = Math.abs(x))));
    const { model: pruned } = prune(model);
    expect(pruned.getLayer('sep/depthwise').trainable).toBe(false);
    expect(pruned.getLayer('sep/pointwise').trainable).toBe(false);
    expect(pruned.trainableWeights.map((w) => w.originalName).sort()).toEqual(['out/bias', 'out/kernel']);
    expect(
      (pruned.getLayer('sep/pointwise').getConfig().kernelConstraint as { className: string }).className,
    ).toBe('NonNeg');
    pruned.dispose();
    model.dispose();
  });

  it('keeps a model frozen as a whole (model.trainable = false) frozen', () => {
    // The model's flag is not in its config: the split copy came back trainable, and the pruned
    // model rebuilt from it, every weight of it.
    const model = chain();
    model.trainable = false;
    const { model: pruned } = prune(model);
    expect(pruned.trainable).toBe(false);
    expect(pruned.trainableWeights).toEqual([]);
    expect(maxDiff(model, pruned, 7)).toBeLessThan(1e-5);
    pruned.dispose();
    model.dispose();
  });

  it('keeps a depthwiseRegularizer and depthwiseConstraint in the DepthwiseConv2D, and its export loads', async () => {
    // tfjs 4.22's DepthwiseConv2D.getConfig() writes its regularizer as its constraint: the pruned
    // model took the L1L2 regularizer as the constraint of 'sep/depthwise', and tfjs, loading its
    // export, applied it to the kernel: "shape of the new value () and previous value (3,3,4,1)".
    for (const depthwiseConstraint of [undefined, 'maxNorm'] as const) {
      const model = tfl.sequential({
        layers: [
          tfl.layers.conv2d({
            inputShape: [6, 6, 3],
            filters: 4,
            kernelSize: 1,
            name: 'c',
            activation: 'relu',
          }),
          tfl.layers.separableConv2d({
            filters: 3,
            kernelSize: 3,
            padding: 'same',
            name: 'sep',
            depthwiseRegularizer: 'l1l2',
            depthwiseConstraint,
          }),
          tfl.layers.flatten(),
        ],
      });
      randomWeights(model, 8);
      // Depthwise weights the max norm (2) holds for: it is kept.
      editWeight(model, 'sep', 'depthwise_kernel', (v) => v.forEach((x, i) => (v[i] = x / 4)));
      // c's filter 2 dead and emitting 0: it goes, and the depthwise channel reading it.
      zeroUnits(model, 'c', [2]);
      editWeight(model, 'c', 'bias', (v) => (v[2] = -1));
      const { model: pruned, report } = prune(model);
      expect(report.warnings).toEqual([]);
      expect(pruned.getLayer('sep/depthwise').weights[0].shape).toEqual([3, 3, 3, 1]);
      const dw = pruned.getLayer('sep/depthwise') as any;
      expect(dw.depthwiseConstraint?.getClassName() ?? null).toBe(depthwiseConstraint ? 'MaxNorm' : null);
      expect(dw.depthwiseRegularizer.getClassName()).toBe('L1L2');
      const dir = path.join(tmp, `depthwise-regularizer-${depthwiseConstraint}`);
      await exportModel(pruned, dir);
      const loaded = await tfl.loadLayersModel(fileSystem(dir));
      expect((loaded.getLayer('sep/depthwise') as any).depthwiseConstraint?.getClassName() ?? null).toBe(
        depthwiseConstraint ? 'MaxNorm' : null,
      );
      expect(maxDiff(model, loaded, 9)).toBeLessThan(1e-5);
      tf.dispose([loaded, pruned, model].flatMap((m) => m.weights.map((w) => w.read())));
    }
  });

  it('leaves a dilated one of depthMultiplier 2 to unknownLayers: refused with advice, or kept whole and exported', async () => {
    const model = tfl.sequential({
      layers: [
        tfl.layers.separableConv2d({
          inputShape: [7, 7, 2],
          filters: 3,
          kernelSize: 3,
          depthMultiplier: 2,
          dilationRate: 2,
          name: 'sep',
        }),
        tfl.layers.flatten(),
        tfl.layers.dense({ units: 2, name: 'out' }),
      ],
    });
    expect(() => prune(model)).toThrow(
      /layer 'sep' has class SeparableConv2D.*this one is not such a layer.*With a dilation rate above 1 it computes a Conv2D with m filters per input channel \(m its depthMultiplier/,
    );
    // Kept whole, it keeps its multiplier, which tfjs 4.22 leaves out of the layer's config: the
    // rebuild took 1 and failed on its weights ("shape ... (3,3,2,2) and previous value (3,3,2,1)"),
    // and tfjs's own save writes a model.json its loader reads with 1; exportModel's states it.
    const { model: pruned, report } = prune(model, { unknownLayers: 'keep' });
    expect(report.keptWhole).toEqual([{ name: 'sep', className: 'SeparableConv2D' }]);
    expect(maxDiff(model, pruned, 1)).toBeLessThan(1e-5);
    const dir = path.join(tmp, 'depth-multiplier-2');
    await exportModel(pruned, dir);
    const loaded = await tfl.loadLayersModel(fileSystem(dir));
    expect(loaded.getLayer('sep').weights[0].shape).toEqual([3, 3, 2, 2]);
    expect(maxDiff(model, loaded, 2)).toBeLessThan(1e-5);
    loaded.dispose();
    pruned.dispose();
    model.dispose();
  });

  it('leaves a dilated one to unknownLayers: the DepthwiseConv2D of tfjs 4.22 ignores its dilationRate', () => {
    // Split, it computed an undilated depthwise convolution: outputs off by 0.02 to 0.06 (valid
    // padding: another output shape, read by a global pooling).
    for (const padding of ['same', 'valid'] as const) {
      const model = tfl.sequential({
        layers: [
          tfl.layers.separableConv2d({
            inputShape: [8, 8, 2],
            filters: 3,
            kernelSize: 3,
            dilationRate: 2,
            padding,
            name: 'sep',
          }),
          tfl.layers.globalAveragePooling2d({}),
          tfl.layers.dense({ units: 2, name: 'out' }),
        ],
      });
      randomWeights(model, 5);
      killPointwise(model, 'sep', [1]);
      const before = tf.memory().numTensors;
      expect(() => prune(model)).toThrow(
        /layer 'sep' has class SeparableConv2D.*this one is not such a layer \(tfjs 4.22's DepthwiseConv2D ignores a dilationRate\). With a dilation rate above 1/,
      );
      expect(tf.memory().numTensors).toBe(before);
      const { model: pruned, report } = prune(model, { unknownLayers: 'keep' });
      expect(report.keptWhole).toEqual([{ name: 'sep', className: 'SeparableConv2D' }]);
      expect(maxDiff(model, pruned, 6)).toBeLessThan(1e-5);
      pruned.dispose();
      expect(tf.memory().numTensors).toBe(before);
      model.dispose();
    }
  });

  it('names the SeparableConv2D in a refusal, not the layers it is split into', () => {
    // They named 's1/pointwise (Conv2D, 6 units)', which the model does not hold, with
    // layerMultipliers: { 's1/pointwise': 0 }, and the NaN in weight 's2/depthwise/depthwise_kernel'.
    const dead = chain();
    killPointwise(dead, 's1', [0, 1, 2, 3, 4, 5]);
    const before = tf.memory().numTensors;
    let e: unknown;
    try {
      prune(dead);
    } catch (err) {
      e = err;
    }
    expect(e).toBeInstanceOf(DisconnectedModelError);
    const d = e as DisconnectedModelError;
    expect([d.layer, d.emptied]).toEqual(['s1', ['c1', 's1', 's2']]);
    expect(d.message).toMatch(/^surgery: every unit of layer 's1' \(SeparableConv2D, 6 units\) is dead: /);
    expect(d.message).toContain("(layers left without a live unit: 'c1', 's1', 's2')");
    expect(d.message).toContain("(layerMultipliers: { 's1': 0 } leaves it unpenalised)");
    expect(d.message + d.detail).not.toMatch(/pointwise|depthwise/);
    dead.dispose();
    const diverged = chain();
    editWeight(diverged, 's2', 'depthwise_kernel', (v) => (v[5] = NaN));
    expect(() => prune(diverged)).toThrow(
      "surgery: layer 's2' (SeparableConv2D) has 1 non-finite value in weight 's2/depthwise_kernel' (the first, at [0,0,5,0], is NaN)",
    );
    expect(tf.memory().numTensors).toBe(before);
    diverged.dispose();
  });

  it('refuses when a layer already has the name a part would take', () => {
    const x = tfl.input({ shape: [5, 5, 2] });
    const s = tfl.layers
      .separableConv2d({ filters: 3, kernelSize: 3, name: 'sep' })
      .apply(x) as tfl.SymbolicTensor;
    const c = tfl.layers
      .conv2d({ filters: 2, kernelSize: 1, name: 'sep/pointwise' })
      .apply(s) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: x, outputs: tfl.layers.flatten().apply(c) as tfl.SymbolicTensor });
    const before = tf.memory().numTensors;
    expect(() => prune(model)).toThrow(
      "surgery: SeparableConv2D 'sep' is pruned as a DepthwiseConv2D 'sep/depthwise' and a 1x1 Conv2D " +
        "'sep/pointwise', but the model has a layer named 'sep/pointwise': rename it, then prune",
    );
    expect(tf.memory().numTensors).toBe(before);
  });
});
