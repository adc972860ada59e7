// prune(model, { unknownLayers: 'keep' }): layers of classes surgery does not know (an LSTM, a
// Reshape, a SeparableConv2D, a Bidirectional, custom layers) are kept whole, and the rest of the
// model is pruned exactly: the units feeding them stay, units elsewhere go, and the outputs do not
// change.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileSystem } from '@normprune/runtime';
import { exportModel, prune } from '../src/index';
import { expectNoLeak } from '../../../tools/testing/leaks';
import { fillAll, outputDiff, rng, unitsOf, zeroUnits } from './helpers';

/** A layer tfjs-layers does not ship: doubles its input. */
class TimesTwo extends tfl.layers.Layer {
  static className = 'TimesTwo';
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.mul(Array.isArray(inputs) ? inputs[0] : inputs, 2);
  }
}
tf.serialization.registerClass(TimesTwo);

/** A layer tfjs-layers does not ship, with two weights of one short name ('w_1' and 'w_2' are both 'w'): x * w_1 + w_2. */
class ScaleShift extends tfl.layers.Layer {
  static className = 'ScaleShift';
  private scale?: tfl.LayerVariable;
  private shift?: tfl.LayerVariable;
  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    const n = shape[shape.length - 1] as number;
    this.scale = this.addWeight('w_1', [n], 'float32', tfl.initializers.randomNormal({ seed: 13 }));
    this.shift = this.addWeight('w_2', [n], 'float32', tfl.initializers.randomNormal({ seed: 14 }));
    this.built = true;
  }
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    return tf.add(tf.mul(x, this.scale!.read()), this.shift!.read());
  }
}
tf.serialization.registerClass(ScaleShift);

let tmp: string;

beforeAll(async () => {
  await tf.setBackend('cpu');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-unknown-'));
});

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const k = (seed: number) => tfl.initializers.glorotNormal({ seed });

interface Case {
  name: string;
  build(): tfl.LayersModel;
  /** The layer surgery does not know. */
  unknown: { name: string; className: string };
  /** Units zeroed by hand: [layer, units]. */
  zero: [string, number[]][];
  /** Units of each Dense/Conv2D layer after pruning. */
  after: Record<string, number>;
}

const CASES: Case[] = [
  {
    name: 'LSTM between Dense layers',
    build: () =>
      tfl.sequential({
        layers: [
          tfl.layers.dense({
            inputShape: [5, 3],
            units: 8,
            activation: 'relu',
            kernelInitializer: k(1),
            name: 'd1',
          }),
          tfl.layers.lstm({
            units: 6,
            recurrentInitializer: 'glorotUniform',
            kernelInitializer: k(2),
            name: 'lstm',
          }),
          tfl.layers.dense({ units: 7, activation: 'relu', kernelInitializer: k(3), name: 'd2' }),
          tfl.layers.dense({ units: 3, kernelInitializer: k(4), name: 'out' }),
        ],
      }),
    unknown: { name: 'lstm', className: 'LSTM' },
    zero: [
      ['d1', [1, 4]], // read by the LSTM: kept
      ['d2', [2, 5]], // read by 'out': removed
    ],
    after: { d1: 8, d2: 5, out: 3 },
  },
  {
    name: 'Reshape of the model input',
    build: () =>
      tfl.sequential({
        layers: [
          tfl.layers.reshape({ inputShape: [48], targetShape: [4, 4, 3], name: 'reshape' }),
          tfl.layers.conv2d({
            filters: 5,
            kernelSize: 3,
            activation: 'relu',
            kernelInitializer: k(5),
            name: 'c1',
          }),
          tfl.layers.flatten({ name: 'flat' }),
          tfl.layers.dense({ units: 3, kernelInitializer: k(6), name: 'out' }),
        ],
      }),
    unknown: { name: 'reshape', className: 'Reshape' },
    zero: [['c1', [1, 3]]],
    after: { c1: 3, out: 3 },
  },
  {
    name: 'SeparableConv2D (dilation rate 2, depthMultiplier 2) after a Conv2D',
    build: () =>
      tfl.sequential({
        layers: [
          tfl.layers.conv2d({
            inputShape: [8, 8, 3],
            filters: 4,
            kernelSize: 3,
            activation: 'relu',
            kernelInitializer: k(7),
            name: 'c1',
          }),
          // Dilation rate 2: one of 1 prune splits into a DepthwiseConv2D and a 1x1 Conv2D itself.
          tfl.layers.separableConv2d({
            filters: 6,
            kernelSize: 3,
            depthMultiplier: 2,
            dilationRate: 2,
            name: 'sep',
          }),
          tfl.layers.globalAveragePooling2d({ name: 'gap' }),
          tfl.layers.dense({ units: 5, activation: 'relu', kernelInitializer: k(8), name: 'd' }),
          tfl.layers.dense({ units: 3, kernelInitializer: k(9), name: 'out' }),
        ],
      }),
    unknown: { name: 'sep', className: 'SeparableConv2D' },
    zero: [
      ['c1', [2]],
      ['d', [0, 3]],
    ],
    after: { c1: 4, d: 3, out: 3 },
  },
  {
    name: 'a custom layer in a functional model',
    build: () => {
      const x = tfl.input({ shape: [6], name: 'x' });
      const a = tfl.layers
        .dense({ units: 5, activation: 'relu', kernelInitializer: k(10), name: 'a' })
        .apply(x) as tfl.SymbolicTensor;
      const t = new TimesTwo({ name: 'twice' }).apply(a) as tfl.SymbolicTensor;
      const b = tfl.layers
        .dense({ units: 4, activation: 'relu', kernelInitializer: k(11), name: 'b' })
        .apply(t) as tfl.SymbolicTensor;
      const out = tfl.layers
        .dense({ units: 2, kernelInitializer: k(12), name: 'out' })
        .apply(b) as tfl.SymbolicTensor;
      return tfl.model({ inputs: x, outputs: out });
    },
    unknown: { name: 'twice', className: 'TimesTwo' },
    zero: [
      ['a', [2]],
      ['b', [1]],
    ],
    after: { a: 5, b: 3, out: 2 },
  },
  {
    // Its forward and backward halves have weights of the same short names ('kernel',
    // 'recurrent_kernel', 'bias'): each must get its own values back.
    name: 'a Bidirectional SimpleRNN',
    build: () =>
      tfl.sequential({
        layers: [
          tfl.layers.dense({
            inputShape: [5, 3],
            units: 6,
            activation: 'relu',
            kernelInitializer: k(15),
            name: 'd1',
          }),
          tfl.layers.bidirectional({
            layer: tfl.layers.simpleRNN({
              units: 4,
              recurrentInitializer: 'glorotUniform',
              kernelInitializer: k(16),
            }) as tfl.RNN,
            name: 'bi',
          }),
          tfl.layers.dense({ units: 5, activation: 'relu', kernelInitializer: k(17), name: 'd2' }),
          tfl.layers.dense({ units: 3, kernelInitializer: k(18), name: 'out' }),
        ],
      }),
    unknown: { name: 'bi', className: 'Bidirectional' },
    zero: [
      ['d1', [0, 3]], // read by the Bidirectional: kept
      ['d2', [1]], // read by 'out': removed
    ],
    after: { d1: 6, d2: 4, out: 3 },
  },
  {
    name: 'a custom layer with two weights of one short name',
    build: () =>
      tfl.sequential({
        layers: [
          tfl.layers.dense({
            inputShape: [6],
            units: 5,
            activation: 'relu',
            kernelInitializer: k(19),
            name: 'a',
          }),
          new ScaleShift({ name: 'scaled' }),
          tfl.layers.dense({ units: 4, activation: 'relu', kernelInitializer: k(20), name: 'b' }),
          tfl.layers.dense({ units: 2, kernelInitializer: k(21), name: 'out' }),
        ],
      }),
    unknown: { name: 'scaled', className: 'ScaleShift' },
    zero: [
      ['a', [1]],
      ['b', [0, 2]],
    ],
    after: { a: 5, b: 2, out: 2 },
  },
];

describe.each(CASES)('unknownLayers: $name', (c) => {
  it("refused by default, naming the layer and the 'keep' option", () => {
    const model = c.build();
    expect(() => prune(model)).toThrow(
      new RegExp(
        `'${c.unknown.name}' has class ${c.unknown.className}.*prune\\(model, \\{ unknownLayers: 'keep' \\}\\)`,
      ),
    );
    model.dispose();
  });

  it("kept whole with 'keep': the rest is pruned, the outputs unchanged, the export loads", async () => {
    const model = c.build();
    const r = rng(3);
    // Non-zero biases: a zeroed unit emits a constant, which pruning must fold or keep exactly.
    fillAll(model, 'bias', () => r() * 0.5 + 0.1);
    for (const [layer, units] of c.zero) zeroUnits(model, layer, units);
    // The pruned model's weights are its new tensors, and nothing else is left behind.
    const { model: pruned, report } = await expectNoLeak(
      () => prune(model, { unknownLayers: 'keep' }),
      model.weights.length,
    );
    expect(report.keptWhole).toEqual([c.unknown]);
    // Its warning comes first (the CLI says it in its own words and prints the rest).
    expect(report.warnings[0]).toMatch(
      new RegExp(`^${c.unknown.className} '${c.unknown.name}' was kept whole`),
    );
    expect(report.warnings.slice(1).some((w) => w.includes('was kept whole'))).toBe(false);
    for (const [layer, units] of Object.entries(c.after))
      expect([layer, unitsOf(pruned, layer)]).toEqual([layer, units]);
    const diff = outputDiff(model, pruned);
    expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
    // The unknown layer's weights are copied unchanged.
    const before = model.getLayer(c.unknown.name).getWeights();
    const after = pruned.getLayer(c.unknown.name).getWeights();
    expect(after.map((w) => w.shape)).toEqual(before.map((w) => w.shape));
    after.forEach((w, j) => expect(Array.from(w.dataSync())).toEqual(Array.from(before[j].dataSync())));
    const dir = path.join(tmp, c.unknown.name);
    await exportModel(pruned, dir);
    const loaded = await tfl.loadLayersModel(fileSystem(dir));
    expect(outputDiff(pruned, loaded).abs).toBe(0);
    [model, pruned, loaded].forEach((m) => m.dispose());
  });
});

it('unknownLayers takes only refuse or keep', () => {
  const model = CASES[0].build();
  expect(() => prune(model, { unknownLayers: 'skip' as 'keep' })).toThrow(
    `prune: unknownLayers must be 'refuse' or 'keep', got "skip"`,
  );
  model.dispose();
});
