// prune() follows a Reshape whose last axis is a multiple of its input's: row-major order keeps
// an entry's index modulo the channel count, so channel c of the input lands on the output
// features f with f % channels = c, as through Flatten. Its targetShape's last entry then counts
// the features left. Any other Reshape moves entries across channels: refused with advice, or kept
// whole with unknownLayers 'keep'. Before, every Reshape was refused.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { fileSystem } from '@normprune/runtime';
import { exportModel, prune } from '../src/index';
import { BACKENDS, editWeight, outputDiff, randomWeights, zeroInputs, zeroUnits } from './helpers';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'surgery-reshape-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** conv 3 -> 6 filters on [4, 4, 3], then `reshaped` on its [4, 4, 6] output, then the rest. */
function afterConv(target: number[], rest: tfl.layers.Layer[]): tfl.Sequential {
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({ inputShape: [4, 4, 3], filters: 6, kernelSize: 1, activation: 'relu', name: 'c1' }),
      tfl.layers.reshape({ targetShape: target, name: 'reshape' }),
      ...rest,
    ],
  });
}

interface Case {
  name: string;
  build(): tfl.LayersModel;
  /** c1's filters killed (their constants folded where they are read). */
  dead: number[];
  /** The pruned Reshape's targetShape. */
  target: number[];
  /** The kernel shape of the first layer reading the Reshape, after. */
  reader: [string, number[]];
}

const CASES: Case[] = [
  {
    name: '[h, w, c] -> [h * w, c] (channels kept), a Conv1D over the positions',
    build: () =>
      afterConv(
        [16, 6],
        [
          tfl.layers.conv1d({ filters: 4, kernelSize: 3, activation: 'relu', name: 'conv1d' }),
          tfl.layers.globalAveragePooling1d({ name: 'gap' }),
          tfl.layers.dense({ units: 2, name: 'out' }),
        ],
      ),
    dead: [2],
    target: [16, 5],
    reader: ['conv1d', [3, 5, 4]],
  },
  {
    name: '[h, w, c] -> [h * w * c] (a flatten), a Dense',
    build: () => afterConv([96], [tfl.layers.dense({ units: 3, name: 'out' })]),
    dead: [0, 5],
    target: [64],
    reader: ['out', [64, 3]],
  },
  {
    name: '[h, w, c] -> [h, w * c] (positions of a row merged), a Conv1D over the rows',
    build: () =>
      afterConv(
        [4, 24],
        [
          tfl.layers.conv1d({ filters: 3, kernelSize: 2, name: 'conv1d' }),
          tfl.layers.flatten({ name: 'flat' }),
          tfl.layers.dense({ units: 2, name: 'out' }),
        ],
      ),
    dead: [1, 3, 4],
    target: [4, 12],
    reader: ['conv1d', [2, 12, 3]],
  },
];

describe.each(BACKENDS)('prune follows a Reshape that keeps the channels last, on %s', (backend, init) => {
  beforeAll(init);

  it.each(CASES.map((c) => [c.name, c] as const))('%s', async (_, c) => {
    const model = c.build();
    randomWeights(model, 21);
    zeroUnits(model, 'c1', c.dead);
    const before = tf.memory().numTensors;
    const { model: pruned, report } = prune(model);
    expect(report.layers.find((l) => l.name === 'c1')).toMatchObject({ removed: c.dead, keptConstant: [] });
    expect(pruned.getLayer('reshape').getConfig().targetShape).toEqual(c.target);
    expect(pruned.getLayer(c.reader[0]).weights[0].shape).toEqual(c.reader[1]);
    const diff = outputDiff(model, pruned, 3, 4);
    expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
    const dir = path.join(tmp, `${backend}-${c.name.replace(/\W+/g, '-')}`);
    await exportModel(pruned, dir);
    const loaded = await tfl.loadLayersModel(fileSystem(dir));
    expect(outputDiff(model, loaded, 3, 5).abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
    loaded.dispose();
    pruned.dispose();
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
});

describe('a Reshape that moves entries across channels', () => {
  beforeAll(async () => void (await tf.setBackend('cpu')));

  // [4, 4, 6] -> [24, 4]: 4 is no multiple of 6, so an output channel holds entries of several.
  const mixing = () =>
    afterConv([24, 4], [tfl.layers.flatten({ name: 'flat' }), tfl.layers.dense({ units: 2, name: 'out' })]);

  it('is refused, naming it and what surgery follows', () => {
    const model = mixing();
    expect(() => prune(model)).toThrow(
      /layer 'reshape' has class Reshape, .*keeps the channels on the last axis, its last axis a multiple of its input's/,
    );
    model.dispose();
  });

  it("is kept whole with unknownLayers 'keep': the channels it reads stay, the layers after it prune", () => {
    const model = mixing();
    randomWeights(model, 22);
    zeroUnits(model, 'c1', [1]);
    // c1's dead filter 1 emits a constant, but the Reshape mixes it into channels that vary:
    // nothing before the Reshape goes.
    const { model: pruned, report } = prune(model, { unknownLayers: 'keep' });
    expect(report.keptWhole.map((k) => k.name)).toEqual(['reshape']);
    expect(report.layers.find((l) => l.name === 'c1')).toMatchObject({ removed: [] });
    expect(pruned.getLayer('reshape').getConfig().targetShape).toEqual([24, 4]);
    const diff = outputDiff(model, pruned, 3, 6);
    expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
    pruned.dispose();
    model.dispose();
  });

  it("kept whole with unknownLayers 'keep', its -1 before the last axis is written as the count it stands for", () => {
    // [4, 4, 6] -> [-1, 8] = [12, 8]: tfjs wrote [null, 8], the Dense's positions unknown after.
    const model = afterConv([-1, 8], [tfl.layers.dense({ units: 2, name: 'out' })]);
    randomWeights(model, 24);
    zeroUnits(model, 'c1', [4]);
    const before = tf.memory().numTensors;
    const { model: pruned, report } = prune(model, { unknownLayers: 'keep' });
    expect(report.keptWhole.map((k) => k.name)).toEqual(['reshape']);
    expect(pruned.getLayer('reshape').getConfig().targetShape).toEqual([12, 8]);
    expect(pruned.getLayer('out').outputShape).toEqual([null, 12, 2]);
    for (const seed of [6, 7]) {
      const diff = outputDiff(model, pruned, 3, seed);
      expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
    }
    pruned.dispose();
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it('a Reshape of a gate after a Dense whose units die: the gate [c] -> [1, 1, c] loses them too', () => {
    // The squeeze-and-excitation block, reduced: the gate Dense's unit 2 is dead (a constant,
    // sigmoid of its bias), the Multiply joins it with c1's channel 2, and nothing reads that.
    const x = tfl.input({ shape: [5, 5, 3], name: 'x' });
    const c1 = tfl.layers
      .conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1' })
      .apply(x);
    const sq = tfl.layers.globalAveragePooling2d({ name: 'sq' }).apply(c1);
    const gate = tfl.layers.dense({ units: 4, activation: 'sigmoid', name: 'gate' }).apply(sq);
    const g3 = tfl.layers.reshape({ targetShape: [1, 1, 4], name: 'reshape' }).apply(gate);
    const scaled = tfl.layers.multiply({ name: 'scale' }).apply([c1, g3] as tfl.SymbolicTensor[]);
    const c2 = tfl.layers.conv2d({ filters: 3, kernelSize: 1, name: 'c2' }).apply(scaled);
    const out = tfl.layers
      .dense({ units: 2, name: 'out' })
      .apply(tfl.layers.flatten().apply(c2)) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: x, outputs: out });
    randomWeights(model, 23);
    // Nothing reads channel 2 of the scaled image, nor the gate that of the squeezed one.
    zeroInputs(model, 'c2', [2]);
    zeroInputs(model, 'gate', [2]);
    editWeight(model, 'gate', 'kernel', (v, shape) => {
      for (let p = 0; p < v.length; p++) if (p % shape[1] === 2) v[p] = 0;
    });
    const { model: pruned, report } = prune(model);
    expect(Object.fromEntries(report.layers.map((l) => [l.name, l.removed]))).toMatchObject({
      c1: [2],
      gate: [2],
    });
    expect(pruned.getLayer('reshape').getConfig().targetShape).toEqual([1, 1, 3]);
    const diff = outputDiff(model, pruned, 3, 7);
    expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
    pruned.dispose();
    model.dispose();
  });
});

// tfjs 4.22 leaves a Reshape's -1 unknown (null) in the model's shapes, and those of the layers
// after it, even where the input's shape is fully known: prune refused it. It resolves the -1 from
// that shape, follows the Reshape where the rule above holds, and writes the count in its place.
interface MinusOneCase {
  name: string;
  build(): tfl.LayersModel;
  /** A layer and its filters killed. */
  dead: [string, number[]];
  /** Each Reshape's targetShape after pruning. */
  targets: [string, number[]][];
  /** The kernel shape of a layer reading what the dead filters fed, after. */
  reader: [string, number[]];
  /** Output shapes (without the batch) of layers after a -1, known in the pruned and loaded model. */
  known?: [string, number[]][];
}

const MINUS_ONE: MinusOneCase[] = [
  {
    name: '[h, w, c] -> [h * w, -1], then [h * w * c], a Dense',
    build: () =>
      afterConv(
        [16, -1],
        [
          tfl.layers.reshape({ targetShape: [96], name: 'flat' }),
          tfl.layers.dense({ units: 2, name: 'out' }),
        ],
      ),
    dead: ['c1', [2]],
    targets: [
      ['reshape', [16, 5]],
      ['flat', [80]],
    ],
    reader: ['out', [80, 2]],
  },
  {
    name: '[h, w, c] -> [h, -1] (-1 = w * c), an activation, then [h * w * c], a Dense',
    build: () =>
      afterConv(
        [4, -1],
        [
          tfl.layers.activation({ activation: 'tanh', name: 'act' }),
          tfl.layers.reshape({ targetShape: [96], name: 'flat' }),
          tfl.layers.dense({ units: 3, name: 'out' }),
        ],
      ),
    dead: ['c1', [0, 4, 5]],
    targets: [
      ['reshape', [4, 12]],
      ['flat', [48]],
    ],
    reader: ['out', [48, 3]],
  },
  {
    // The model output: c2's filters stay, c1's dead ones fold into c2 ('valid').
    name: '[h, w, c] -> [-1] before a softmax, the model output',
    build: () =>
      tfl.sequential({
        layers: [
          tfl.layers.conv2d({
            inputShape: [5, 5, 2],
            filters: 4,
            kernelSize: 1,
            activation: 'relu',
            name: 'c1',
          }),
          tfl.layers.conv2d({ filters: 6, kernelSize: 3, name: 'c2' }),
          tfl.layers.reshape({ targetShape: [-1], name: 'reshape' }),
          tfl.layers.activation({ activation: 'softmax', name: 'sm' }),
        ],
      }),
    dead: ['c1', [1, 3]],
    targets: [['reshape', [54]]],
    reader: ['c2', [3, 3, 2, 6]],
  },
  {
    // A -1 before the last axis, which tfjs knows: followed before, resolved now, the same.
    name: '[h, w, c] -> [-1, c], a Conv1D over the positions',
    build: () =>
      afterConv(
        [-1, 6],
        [
          tfl.layers.conv1d({ filters: 4, kernelSize: 3, activation: 'relu', name: 'conv1d' }),
          tfl.layers.globalAveragePooling1d({ name: 'gap' }),
          tfl.layers.dense({ units: 2, name: 'out' }),
        ],
      ),
    dead: ['c1', [3]],
    // tfjs's Reshape holds a -1 as null, and wrote it so in the pruned config (the Conv1D's
    // length unknown again in the pruned model and the export): the count it resolves to.
    targets: [['reshape', [16, 5]]],
    reader: ['conv1d', [3, 5, 4]],
    known: [['conv1d', [14, 4]]],
  },
  {
    name: '[h, w, c] -> [2, -1, c] (-1 = h * w / 2), a Conv2D of kernel 2',
    build: () =>
      afterConv(
        [2, -1, 6],
        [
          tfl.layers.conv2d({ filters: 3, kernelSize: 2, activation: 'relu', name: 'c2' }),
          tfl.layers.globalMaxPooling2d({ name: 'gmp' }),
          tfl.layers.dense({ units: 2, name: 'out' }),
        ],
      ),
    dead: ['c1', [0, 5]],
    targets: [['reshape', [2, 8, 4]]],
    reader: ['c2', [2, 2, 4, 3]],
    known: [['c2', [1, 7, 3]]],
  },
  {
    // Two -1s in a row: the second Reshape's input known only once the first's -1 is resolved.
    name: '[h, w, c] -> [-1, c], then [-1, 2, c] (-1 = h * w / 2), a Conv2D of kernel 1',
    build: () =>
      afterConv(
        [-1, 6],
        [
          tfl.layers.reshape({ targetShape: [-1, 2, 6], name: 'again' }),
          tfl.layers.conv2d({ filters: 2, kernelSize: 1, name: 'c2' }),
          tfl.layers.globalAveragePooling2d({ name: 'gap' }),
        ],
      ),
    dead: ['c1', [1]],
    targets: [
      ['reshape', [16, 5]],
      ['again', [8, 2, 5]],
    ],
    reader: ['c2', [1, 1, 5, 2]],
    known: [['c2', [8, 2, 2]]],
  },
];

describe.each(BACKENDS)(
  'prune follows a Reshape whose -1 its known input shape resolves, on %s',
  (backend, init) => {
    beforeAll(init);

    it.each(MINUS_ONE.map((c) => [c.name, c] as const))('%s', async (_, c) => {
      const model = c.build();
      randomWeights(model, 31);
      zeroUnits(model, c.dead[0], c.dead[1]);
      const before = tf.memory().numTensors;
      const { model: pruned, report } = prune(model);
      expect(report.layers.find((l) => l.name === c.dead[0])).toMatchObject({
        removed: c.dead[1],
        keptConstant: [],
      });
      for (const [name, target] of c.targets)
        expect([name, pruned.getLayer(name).getConfig().targetShape]).toEqual([name, target]);
      expect(pruned.getLayer(c.reader[0]).weights[0].shape).toEqual(c.reader[1]);
      for (const seed of [4, 5]) {
        const diff = outputDiff(model, pruned, 3, seed);
        expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
      }
      const dir = path.join(tmp, `${backend}-minus-one-${c.name.replace(/\W+/g, '-')}`);
      await exportModel(pruned, dir);
      const loaded = await tfl.loadLayersModel(fileSystem(dir));
      for (const [name, shape] of c.known ?? [])
        for (const m of [pruned, loaded])
          expect([name, m.getLayer(name).outputShape]).toEqual([name, [null, ...shape]]);
      const again = outputDiff(model, loaded, 3, 6);
      expect(again.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, again.scale));
      loaded.dispose();
      pruned.dispose();
      expect(tf.memory().numTensors).toBe(before);
      model.dispose();
    });
  },
);

describe('a Reshape with a -1 that surgery does not follow', () => {
  beforeAll(async () => void (await tf.setBackend('cpu')));

  it('is refused where the resolved last axis is no multiple of its input channels', () => {
    // [4, 4, 6] -> [24, -1] = [24, 4].
    const model = afterConv([24, -1], [tfl.layers.activation({ activation: 'relu', name: 'act' })]);
    expect(() => prune(model)).toThrow(
      /layer 'reshape' has class Reshape, .*keeps the channels on the last axis, its last axis a multiple of its input's/,
    );
    model.dispose();
  });

  it("is refused where its input's shape is not fully known", () => {
    // An image of any size: the -1 of [-1] cannot be resolved.
    const model = tfl.sequential({
      layers: [
        tfl.layers.conv2d({ inputShape: [null, null, 3], filters: 4, kernelSize: 1, name: 'c1' }),
        tfl.layers.reshape({ targetShape: [-1], name: 'reshape' }),
      ],
    });
    expect(() => prune(model)).toThrow(
      /layer 'reshape' has class Reshape, .*its last axis is -1 and its input's shape not fully known/,
    );
    model.dispose();
  });
});
