// prune and the constraints of the layers it rewrites (kernelConstraint, biasConstraint,
// gammaConstraint, ...). tfjs applies a constraint when weights are written through
// LayerVariable.write (setWeights, and loading a saved model), not while training. The pruned model
// computes what the input model does; a constraint that its rewritten weights break is left out of
// it, and said, so that its export loads into the same function. One they still satisfy is kept.
// One the input model's weights broke already is left out too (keeping it would not make the pruned
// model load as the input model does). exportModel leaves a constraint the model's weights break
// out of the files, and says so alike: the input model's own export loads into the model itself.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileSystem } from '@normprune/runtime';
import { decompose, layerPaths } from '@normprune/layers';
import { exportModel, loadSparseModel, prune } from '../src/index';
import { expectNoLeak } from '../../../tools/testing/leaks';
import { editWeight, fillAll, outputDiff, randomizeBatchNorm, rng, unitsOf, zeroUnits } from './helpers';

let tmp: string;

beforeAll(async () => {
  await tf.setBackend('cpu');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-constraints-'));
});

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const k = (seed: number) => tfl.initializers.glorotNormal({ seed });

/** x [5] -> Dense 'a' (4, relu) -> Dense 'b' (3, with `b`'s options). */
function twoDense(b: Partial<Parameters<typeof tfl.layers.dense>[0]>): tfl.Sequential {
  return tfl.sequential({
    layers: [
      tfl.layers.dense({ inputShape: [5], units: 4, activation: 'relu', kernelInitializer: k(1), name: 'a' }),
      tfl.layers.dense({ units: 3, kernelInitializer: k(2), name: 'b', ...b }),
    ],
  });
}

/** Rewrites a weight unchanged through setWeights, which applies its constraint. */
const constrain = (model: tfl.LayersModel, layer: string, weight: string) =>
  editWeight(model, layer, weight, () => undefined);

interface Case {
  name: string;
  build(): tfl.LayersModel;
  /** Weights written, and units zeroed, before pruning. */
  prepare(model: tfl.LayersModel): void;
  /** The units left in a layer, to show the pruning happened. */
  units: [string, number];
  /** [layer, option, constraint class] left out of the pruned model. */
  dropped: [string, string, string][];
  /** [layer, option] kept in the pruned model. */
  kept: [string, string][];
  /** The input model's weights break a constraint already (tfjs applies it when they are loaded). */
  brokenBefore?: true;
}

const CASES: Case[] = [
  {
    // a's unit 0 is dead with a positive bias: it emits relu(bias) > 0, which b's negative row 0
    // folds into b's bias, to 0.5 - 2 x 0.5 < 0.
    name: "a nonNeg bias that a removed unit's constant makes negative",
    build: () => twoDense({ biasConstraint: 'nonNeg' }),
    prepare(model) {
      fillAll(model, 'bias', () => 0.5);
      zeroUnits(model, 'a', [0]);
      editWeight(model, 'b', 'kernel', (v) => v.fill(-2, 0, 3));
    },
    units: ['a', 3],
    dropped: [['b', 'biasConstraint', 'NonNeg']],
    kept: [],
  },
  {
    // b's columns have norm 1 over a's 4 units; a's unit 1 goes, and with it a row of b.
    name: 'a unitNorm kernel that loses an input row',
    build: () => twoDense({ kernelConstraint: 'unitNorm' }),
    prepare(model) {
      zeroUnits(model, 'a', [1]);
      constrain(model, 'b', 'kernel');
    },
    units: ['a', 3],
    dropped: [['b', 'kernelConstraint', 'UnitNorm']],
    kept: [],
  },
  {
    // gamma has norm 1 over the conv's 4 filters; filter 2 goes, and its BN channel with it.
    name: 'a unitNorm gamma of a BatchNormalization that loses a channel',
    build: () =>
      tfl.sequential({
        layers: [
          tfl.layers.conv2d({
            inputShape: [6, 6, 2],
            filters: 4,
            kernelSize: 3,
            kernelInitializer: k(3),
            name: 'c',
          }),
          tfl.layers.batchNormalization({ gammaConstraint: 'unitNorm', name: 'bn' }),
          tfl.layers.flatten({ name: 'flat' }),
          tfl.layers.dense({ units: 3, kernelInitializer: k(4), name: 'out' }),
        ],
      }),
    prepare(model) {
      randomizeBatchNorm(model);
      zeroUnits(model, 'c', [2]);
    },
    units: ['c', 3],
    dropped: [['bn', 'gammaConstraint', 'UnitNorm']],
    kept: [],
  },
  {
    // Fewer rows only lower the column norms, and b's positive row 0 raises its bias.
    name: 'a maxNorm kernel and a nonNeg bias that still hold',
    build: () =>
      twoDense({ kernelConstraint: tfl.constraints.maxNorm({ maxValue: 2 }), biasConstraint: 'nonNeg' }),
    prepare(model) {
      fillAll(model, 'bias', () => 0.5);
      zeroUnits(model, 'a', [0]);
      editWeight(model, 'b', 'kernel', (v) => v.fill(0.5, 0, 3));
    },
    units: ['a', 3],
    dropped: [],
    kept: [
      ['b', 'kernelConstraint'],
      ['b', 'biasConstraint'],
    ],
  },
  {
    // tfjs applies no constraint while training: b's glorot columns have norms above 0.1 before
    // pruning, and still do after.
    name: 'a maxNorm kernel that the input model already breaks',
    build: () => twoDense({ kernelConstraint: tfl.constraints.maxNorm({ maxValue: 0.1 }) }),
    prepare(model) {
      zeroUnits(model, 'a', [3]);
    },
    units: ['a', 3],
    dropped: [['b', 'kernelConstraint', 'MaxNorm']],
    kept: [],
    brokenBefore: true,
  },
];

describe.each(CASES)('prune: $name', (c) => {
  it('computes what the model does, and so does its export, loaded in either format', async () => {
    const model = c.build();
    c.prepare(model);
    const { model: pruned, report } = await expectNoLeak(() => prune(model), model.weights.length);
    expect(unitsOf(pruned, c.units[0])).toBe(c.units[1]);
    const diff = outputDiff(model, pruned);
    expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));

    const said = report.warnings.filter((w) => w.includes('Constraint'));
    expect(said).toEqual(
      c.dropped.map(
        ([layer, option, constraint]) =>
          `${pruned.getLayer(layer).getClassName()} '${layer}': its ${option} (${constraint}) does not hold ` +
          'for its pruned weights, so the pruned model has none: tfjs applies a constraint when it loads ' +
          'weights, and the exported model would compute something else',
      ),
    );
    const option = (layer: string, name: string) =>
      (pruned.getLayer(layer).getConfig() as Record<string, unknown>)[name];
    for (const [layer, name] of c.dropped)
      expect([layer, name, option(layer, name)]).toEqual([layer, name, null]);
    for (const [layer, name] of c.kept) expect(option(layer, name)).toEqual(expect.objectContaining({}));

    // Nor does writing a layer's own weights back through setWeights change it.
    for (const [layer] of c.dropped) {
      // copies: LayerVariable.write skips a tensor that is already the weight's
      const ws = pruned
        .getLayer(layer)
        .getWeights()
        .map((w) => w.clone());
      pruned.getLayer(layer).setWeights(ws);
      tf.dispose(ws);
    }
    const rewritten = outputDiff(model, pruned);
    expect(rewritten.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, rewritten.scale));

    // The input model saved and loaded (which applies the constraints the export keeps) loads into
    // the model itself: a constraint its weights broke already is left out of its export, and said.
    const name = c.name.replace(/\W+/g, '-');
    const { warnings } = await exportModel(model, path.join(tmp, name, 'input'));
    expect(warnings).toEqual(
      c.brokenBefore
        ? c.dropped.map(
            ([layer, option, constraint]) =>
              `${model.getLayer(layer).getClassName()} '${layer}': its ${option} (${constraint}) does not hold ` +
              'for its weights, so the export has none: tfjs applies a constraint when it loads weights, and ' +
              'the model loaded from it would compute something else',
          )
        : [],
    );
    const reference = await tfl.loadLayersModel(fileSystem(path.join(tmp, name, 'input')));
    const loadsAsIs = outputDiff(model, reference);
    expect(loadsAsIs.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, loadsAsIs.scale));
    for (const format of ['tfjs', 'sparse'] as const) {
      const dir = path.join(tmp, name, format);
      // prune left the broken ones out already: the export has none to leave out, nor to say.
      expect((await exportModel(pruned, dir, { format })).warnings).toEqual([]);
      const loaded =
        format === 'tfjs' ? await tfl.loadLayersModel(fileSystem(dir)) : await loadSparseModel(dir);
      const again = outputDiff(model, loaded);
      expect([format, again.abs <= 1e-5 * Math.max(1, again.scale)]).toEqual([format, true]);
      loaded.dispose();
    }
    [pruned, model, reference].forEach((m) => m.dispose());
  });
});

it('leaves the input model its constraints', () => {
  const model = twoDense({ biasConstraint: 'nonNeg' });
  CASES[0].prepare(model);
  const { model: pruned } = prune(model);
  expect((model.getLayer('b').getConfig() as Record<string, unknown>).biasConstraint).toEqual({
    className: 'NonNeg',
    config: {},
  });
  const r = rng(5);
  // and it still applies them: a negative bias written through setWeights comes out as 0
  editWeight(model, 'b', 'bias', (v) => v.forEach((_, j) => (v[j] = -1 - r())));
  expect(Array.from(model.getLayer('b').getWeights()[1].dataSync())).toEqual([0, 0, 0]);
  pruned.dispose();
  model.dispose();
});

/** Writes `values(shape)` into the weight of `layer` named `weight`, as it is (no constraint applied). */
function put(layer: tfl.layers.Layer, weight: string, values: (n: number) => number): void {
  const w = layer.weights.find((v) => v.originalName.split('/').pop() === weight)!;
  const size = w.read().size;
  tf.tidy(() =>
    (w.read() as tf.Variable).assign(
      tf.tensor(
        Float32Array.from({ length: size }, (_, j) => values(j)),
        w.shape as number[],
      ),
    ),
  );
}

/** The layer at `path` (`block/bn`) of a model, through its nested models. */
const at = (model: tfl.LayersModel, p: string): tfl.layers.Layer =>
  layerPaths(model).find((l) => l.path === p)!.layer;

interface ExportCase {
  name: string;
  /** The model, its weights written (tfjs applies no constraint while training, nor assign). */
  build(): tfl.LayersModel;
  /** [layer path, class, option, constraint class] left out of the export, in model order. */
  dropped: [string, string, string, string][];
  /** [layer path, option] kept in the export. */
  kept: [string, string][];
}

const EXPORT_CASES: ExportCase[] = [
  {
    // Glorot columns have norms above 0.1.
    name: 'a Dense maxNorm kernel',
    build: () => twoDense({ kernelConstraint: tfl.constraints.maxNorm({ maxValue: 0.1 }) }),
    dropped: [['b', 'Dense', 'kernelConstraint', 'MaxNorm']],
    kept: [],
  },
  {
    // Two options of one layer, and a DepthwiseConv2D's depthwiseConstraint (which tfjs writes
    // wrongly, and the export restores from the layer); a nonNeg bias that holds stays.
    name: 'a Conv2D maxNorm kernel and nonNeg bias, a DepthwiseConv2D nonNeg kernel',
    build() {
      const model = tfl.sequential({
        layers: [
          tfl.layers.conv2d({
            inputShape: [6, 6, 2],
            filters: 3,
            kernelSize: 3,
            kernelInitializer: k(5),
            kernelConstraint: tfl.constraints.maxNorm({ maxValue: 0.2 }),
            biasConstraint: 'nonNeg',
            name: 'c',
          }),
          tfl.layers.depthwiseConv2d({
            kernelSize: 2,
            depthwiseInitializer: k(6),
            depthwiseConstraint: 'nonNeg',
            biasConstraint: 'nonNeg',
            name: 'dw',
          }),
          tfl.layers.flatten({ name: 'flat' }),
        ],
      });
      put(model.getLayer('c'), 'bias', (j) => j - 1);
      put(model.getLayer('dw'), 'bias', (j) => j + 0.5);
      return model;
    },
    dropped: [
      ['c', 'Conv2D', 'kernelConstraint', 'MaxNorm'],
      ['c', 'Conv2D', 'biasConstraint', 'NonNeg'],
      ['dw', 'DepthwiseConv2D', 'depthwiseConstraint', 'NonNeg'],
    ],
    kept: [['dw', 'biasConstraint']],
  },
  {
    // Named by path; a unitNorm kernel that holds (written through setWeights) stays.
    name: 'a BatchNormalization nonNeg gamma inside a nested model',
    build() {
      const block = tfl.sequential({
        name: 'block',
        layers: [
          tfl.layers.dense({ inputShape: [5], units: 4, kernelInitializer: k(7), name: 'fc' }),
          tfl.layers.batchNormalization({ gammaConstraint: 'nonNeg', name: 'bn' }),
        ],
      });
      const x = tfl.input({ shape: [5] });
      const y = tfl.layers
        .dense({ units: 2, kernelConstraint: 'unitNorm', kernelInitializer: k(8), name: 'out' })
        .apply(block.apply(x)) as tfl.SymbolicTensor;
      const model = tfl.model({ inputs: x, outputs: y });
      randomizeBatchNorm(block);
      put(block.getLayer('bn'), 'gamma', (j) => (j % 2 ? -0.5 - j : 0.5 + j));
      constrain(model, 'out', 'kernel');
      return model;
    },
    dropped: [['block/bn', 'BatchNormalization', 'gammaConstraint', 'NonNeg']],
    kept: [['out', 'kernelConstraint']],
  },
  {
    // The wrapper's config carries the Dense's.
    name: 'a maxNorm kernel of a Dense inside TimeDistributed',
    build: () =>
      tfl.sequential({
        layers: [
          tfl.layers.timeDistributed({
            inputShape: [3, 5],
            layer: tfl.layers.dense({
              units: 4,
              kernelInitializer: k(9),
              kernelConstraint: tfl.constraints.maxNorm({ maxValue: 0.1 }),
              name: 'inner',
            }),
            name: 'td',
          }),
        ],
      }),
    dropped: [['td', 'TimeDistributed', 'kernelConstraint', 'MaxNorm']],
    kept: [],
  },
];

/** exportModel's warnings for the constraints case `c` leaves out. */
const exportWarnings = (c: ExportCase): string[] =>
  c.dropped.map(
    ([layer, className, option, constraint]) =>
      `${className} '${layer}': its ${option} (${constraint}) does not hold for its weights, so the export ` +
      'has none: tfjs applies a constraint when it loads weights, and the model loaded from it would compute ' +
      'something else',
  );

/**
 * A layer's option as the layer holds it (for a TimeDistributed, as the Dense inside does); not
 * getConfig, which writes a DepthwiseConv2D's depthwiseRegularizer as its depthwiseConstraint.
 */
function optionOf(model: tfl.LayersModel, p: string, option: string): unknown {
  const layer = at(model, p) as unknown as Record<string, unknown> & { layer?: Record<string, unknown> };
  return (layer.getClassName as () => string)() === 'TimeDistributed' ? layer.layer![option] : layer[option];
}

describe.each(EXPORT_CASES)('exportModel: $name', (c) => {
  it('leaves the broken constraints out of the export, says so, and loads into the model, in either format', async () => {
    const model = c.build();
    const before = c.dropped.map(([p, , option]) => optionOf(model, p, option));
    expect(before.every((b) => b != null)).toBe(true);
    for (const format of ['tfjs', 'sparse'] as const) {
      const dir = path.join(tmp, 'export', c.name.replace(/\W+/g, '-'), format);
      const { warnings } = await expectNoLeak(() => exportModel(model, dir, { format }));
      expect(warnings).toEqual(exportWarnings(c));
      const loaded =
        format === 'tfjs' ? await tfl.loadLayersModel(fileSystem(dir)) : await loadSparseModel(dir);
      const diff = outputDiff(model, loaded);
      expect([format, diff.abs <= 1e-5 * Math.max(1, diff.scale)]).toEqual([format, true]);
      for (const [p, , option] of c.dropped)
        expect([p, option, optionOf(loaded, p, option) ?? null]).toEqual([p, option, null]);
      for (const [p, option] of c.kept)
        expect([p, option, optionOf(loaded, p, option) != null]).toEqual([p, option, true]);
      loaded.dispose();
    }
    // The model keeps its constraints (the same objects).
    c.dropped.forEach(([p, , option], j) => expect(optionOf(model, p, option)).toBe(before[j]));
    model.dispose();
  });
});

it.each(EXPORT_CASES.filter((c) => !c.name.includes('TimeDistributed')))(
  'exportModel of a decomposed model, folded: $name',
  async (c) => {
    const model = c.build();
    const decomposed = decompose(model);
    const dir = path.join(tmp, 'export-decomposed', c.name.replace(/\W+/g, '-'));
    const { warnings } = await exportModel(decomposed, dir);
    expect(warnings).toEqual(exportWarnings(c));
    const loaded = await tfl.loadLayersModel(fileSystem(dir));
    const diff = outputDiff(model, loaded);
    expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
    [loaded, decomposed, model].forEach((m) => m.dispose());
  },
);
