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
  /**
   * [layer path, class, option, constraint class, cell of stacked cells] left out of the export,
   * in model order.
   */
  dropped: [string, string, string, string, number?][];
  /** [layer path, option, cell of stacked cells] kept in the export. */
  kept: [string, string, number?][];
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
  {
    // The wrapper's config carries the LSTM's (its cell's options), but computes with a forward
    // and a backward LSTM built from it, whose weights hold copies of its constraints. The bias
    // (zeros, and ones for the forget gate) holds nonNeg.
    name: 'a maxNorm kernel of an LSTM inside Bidirectional',
    build: () =>
      tfl.sequential({
        layers: [
          tfl.layers.bidirectional({
            inputShape: [4, 5],
            layer: tfl.layers.lstm({
              units: 3,
              kernelInitializer: k(10),
              recurrentInitializer: k(11),
              kernelConstraint: tfl.constraints.maxNorm({ maxValue: 0.1 }),
              biasConstraint: 'nonNeg',
              name: 'inner',
            }) as tfl.RNN,
            name: 'bi',
          }),
          tfl.layers.dense({ units: 2, kernelInitializer: k(12), name: 'out' }),
        ],
      }),
    dropped: [['bi', 'Bidirectional', 'kernelConstraint', 'MaxNorm']],
    kept: [['bi', 'biasConstraint']],
  },
  {
    // Sequences out, summed; the forward layer's bias holds nonNeg, the backward one's does not.
    name: 'a SimpleRNN inside Bidirectional whose backward layer alone breaks a nonNeg bias',
    build() {
      const model = tfl.sequential({
        layers: [
          tfl.layers.bidirectional({
            inputShape: [6, 3],
            layer: tfl.layers.simpleRNN({
              units: 4,
              returnSequences: true,
              kernelInitializer: k(13),
              recurrentInitializer: k(14),
              recurrentConstraint: tfl.constraints.maxNorm({ maxValue: 0.1 }),
              biasConstraint: 'nonNeg',
              name: 'inner',
            }) as tfl.RNN,
            mergeMode: 'sum',
            name: 'bi',
          }),
        ],
      });
      const [forward, backward] = model.getLayer('bi').weights.filter((w) => w.originalName.endsWith('bias'));
      forward.write(tf.tensor([0.1, 0.2, 0.3, 0.4]));
      tf.tidy(() => (backward.read() as tf.Variable).assign(tf.tensor([0.5, -0.5, 0.25, -0.25])));
      return model;
    },
    dropped: [
      ['bi', 'Bidirectional', 'recurrentConstraint', 'MaxNorm'],
      ['bi', 'Bidirectional', 'biasConstraint', 'NonNeg'],
    ],
    kept: [],
  },
  {
    // A recurrent layer's constraints are its cell's.
    name: 'a maxNorm kernel of a GRU',
    build: () =>
      tfl.sequential({
        layers: [
          tfl.layers.gru({
            inputShape: [5, 2],
            units: 3,
            kernelInitializer: k(15),
            recurrentInitializer: k(16),
            kernelConstraint: tfl.constraints.maxNorm({ maxValue: 0.1 }),
            name: 'gru',
          }),
        ],
      }),
    dropped: [['gru', 'GRU', 'kernelConstraint', 'MaxNorm']],
    kept: [],
  },
  {
    // Each cell's options, named by cell; cell 1's nonNeg bias (zeros) holds.
    name: 'maxNorm kernels of stacked SimpleRNN cells',
    build: () =>
      tfl.sequential({
        layers: [
          tfl.layers.rnn({
            inputShape: [4, 3],
            cell: [0, 1].map((c) =>
              tfl.layers.simpleRNNCell({
                units: 3 + c,
                kernelInitializer: k(17 + c),
                recurrentInitializer: k(19 + c),
                kernelConstraint: tfl.constraints.maxNorm({ maxValue: 0.1 }),
                ...(c === 1 ? { biasConstraint: 'nonNeg' as const } : {}),
              }),
            ),
            name: 'stack',
          }),
        ],
      }),
    dropped: [
      ['stack', 'RNN', 'kernelConstraint', 'MaxNorm', 0],
      ['stack', 'RNN', 'kernelConstraint', 'MaxNorm', 1],
    ],
    kept: [['stack', 'biasConstraint', 1]],
  },
];

/** exportModel's warnings for the constraints case `c` leaves out. */
const exportWarnings = (c: ExportCase): string[] =>
  c.dropped.map(
    ([layer, className, option, constraint, cell]) =>
      `${className} '${layer}': its ${option}${cell === undefined ? '' : ` of cell ${cell}`} (${constraint}) does not hold for its weights, so the export ` +
      'has none: tfjs applies a constraint when it loads weights, and the model loaded from it would compute ' +
      'something else',
  );

/**
 * A layer's option as the layer holds it: for a wrapper (`TimeDistributed`, `Bidirectional`), as
 * the layer it wraps does; for a recurrent layer, as its cell (or cell `cell` of stacked cells)
 * does. Not getConfig, which writes a DepthwiseConv2D's depthwiseRegularizer as its
 * depthwiseConstraint.
 */
function optionOf(model: tfl.LayersModel, p: string, option: string, cell?: number): unknown {
  type Fields = Record<string, unknown>;
  let o = at(model, p) as unknown as Fields;
  if (o.layer) o = o.layer as Fields;
  if (o.cell) o = o.cell as Fields;
  if (cell !== undefined) o = (o.cells as Fields[])[cell];
  return o[option];
}

describe.each(EXPORT_CASES)('exportModel: $name', (c) => {
  it('leaves the broken constraints out of the export, says so, and loads into the model, in either format', async () => {
    const model = c.build();
    const before = c.dropped.map(([p, , option, , cell]) => optionOf(model, p, option, cell));
    expect(before.every((b) => b != null)).toBe(true);
    // What LayerVariable.write applies (for a Bidirectional, copies of the options).
    const applied = model.weights.map((w) => w.constraint);
    for (const format of ['tfjs', 'sparse'] as const) {
      const dir = path.join(tmp, 'export', c.name.replace(/\W+/g, '-'), format);
      const { warnings } = await expectNoLeak(() => exportModel(model, dir, { format }));
      expect(warnings).toEqual(exportWarnings(c));
      const loaded =
        format === 'tfjs' ? await tfl.loadLayersModel(fileSystem(dir)) : await loadSparseModel(dir);
      const diff = outputDiff(model, loaded);
      expect([format, diff.abs <= 1e-5 * Math.max(1, diff.scale)]).toEqual([format, true]);
      for (const [p, , option, , cell] of c.dropped)
        expect([p, option, optionOf(loaded, p, option, cell) ?? null]).toEqual([p, option, null]);
      for (const [p, option, cell] of c.kept)
        expect([p, option, optionOf(loaded, p, option, cell) != null]).toEqual([p, option, true]);
      loaded.dispose();
    }
    // The model keeps its constraints (the same objects).
    c.dropped.forEach(([p, , option, , cell], j) => expect(optionOf(model, p, option, cell)).toBe(before[j]));
    model.weights.forEach((w, j) => expect(w.constraint).toBe(applied[j]));
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

it('prune keeps a Bidirectional whole with its constraints, and its export leaves out those its weights break', async () => {
  // x [4, 5] -> Bidirectional(LSTM, maxNorm kernel broken) -> Dense 'h' (6, relu) -> Dense 'out'.
  const model = tfl.sequential({
    layers: [
      tfl.layers.bidirectional({
        inputShape: [4, 5],
        layer: tfl.layers.lstm({
          units: 3,
          kernelInitializer: k(21),
          recurrentInitializer: k(22),
          kernelConstraint: tfl.constraints.maxNorm({ maxValue: 0.1 }),
          name: 'inner',
        }) as tfl.RNN,
        name: 'bi',
      }),
      tfl.layers.dense({ units: 6, activation: 'relu', kernelInitializer: k(23), name: 'h' }),
      tfl.layers.dense({ units: 2, kernelInitializer: k(24), name: 'out' }),
    ],
  });
  zeroUnits(model, 'h', [2, 4]);
  const { model: pruned, report } = await expectNoLeak(
    () => prune(model, { unknownLayers: 'keep' }),
    model.weights.length,
  );
  expect(report.keptWhole.map((l) => l.name)).toEqual(['bi']);
  expect(unitsOf(pruned, 'h')).toBe(4);
  expect(report.warnings.filter((w) => w.includes('Constraint'))).toEqual([]);
  expect(optionOf(pruned, 'bi', 'kernelConstraint')).toEqual(expect.objectContaining({ maxValue: 0.1 }));
  const diff = outputDiff(model, pruned);
  expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
  for (const format of ['tfjs', 'sparse'] as const) {
    const dir = path.join(tmp, 'kept-bidirectional', format);
    const { warnings } = await exportModel(pruned, dir, { format });
    expect(warnings).toEqual([
      "Bidirectional 'bi': its kernelConstraint (MaxNorm) does not hold for its weights, so the export has none: " +
        'tfjs applies a constraint when it loads weights, and the model loaded from it would compute something else',
    ]);
    const loaded =
      format === 'tfjs' ? await tfl.loadLayersModel(fileSystem(dir)) : await loadSparseModel(dir);
    const again = outputDiff(model, loaded);
    expect([format, again.abs <= 1e-5 * Math.max(1, again.scale)]).toEqual([format, true]);
    expect(unitsOf(loaded, 'h')).toBe(4);
    loaded.dispose();
  }
  [pruned, model].forEach((m) => m.dispose());
});
