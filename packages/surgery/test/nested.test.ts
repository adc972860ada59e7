// prune() of a model built from blocks (nested models: a model used as a layer), as Keras users
// and tensorflowjs_converter build them: the blocks are unnested first, so the pruned model is
// flat, its layers named by path (`block/fc`, as analyze names them), and computes what the
// model computes.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { fileSystem } from '@normprune/runtime';
import { decompose, layerPaths, magnitudes } from '@normprune/layers';
import {
  analyze,
  DisconnectedModelError,
  exportModel,
  type LayerAnalysis,
  NonFiniteWeightError,
  prune,
} from '../src/index';
import { randomizeBatchNorm, zeroInputs, zeroUnits } from './helpers';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Loads a model topology in the snake_case JSON that Keras and tensorflowjs_converter write. */
function fromKerasJSON(artifacts: { modelTopology: object }): Promise<tfl.LayersModel> {
  return tfl.models.modelFromJSON(artifacts as unknown as Parameters<typeof tfl.models.modelFromJSON>[0]);
}

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'surgery-nested-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A Sequential block inside a functional model: 8 -> [6 relu, 5 relu] -> 3; two dead units per hidden layer. */
function seqBlock(): tfl.LayersModel {
  const inner = tfl.sequential({
    name: 'inner',
    layers: [
      tfl.layers.dense({ inputShape: [8], units: 6, activation: 'relu', name: 'h1' }),
      tfl.layers.dense({ units: 5, activation: 'relu', name: 'h2' }),
    ],
  });
  const x = tfl.input({ shape: [8] });
  const y = tfl.layers.dense({ units: 3, name: 'head' }).apply(inner.apply(x)) as tfl.SymbolicTensor;
  const model = tfl.model({ inputs: x, outputs: y, name: 'net' });
  zeroUnits(inner, 'h1', [1, 4]);
  zeroUnits(inner, 'h2', [0, 3]);
  return model;
}

/** A functional conv block (conv, BatchNormalization) as the first layer of a Sequential; two dead filters. */
function convBlock(): tfl.LayersModel {
  const x = tfl.input({ shape: [7, 6, 2] });
  let h = tfl.layers.conv2d({ filters: 4, kernelSize: 3, activation: 'relu', name: 'conv' }).apply(x);
  h = tfl.layers.batchNormalization({ name: 'bn' }).apply(h);
  const features = tfl.model({ inputs: x, outputs: h as tfl.SymbolicTensor, name: 'features' });
  const model = tfl.sequential({
    layers: [features, tfl.layers.flatten({ name: 'flat' }), tfl.layers.dense({ units: 3, name: 'out' })],
  });
  randomizeBatchNorm(features);
  zeroUnits(features, 'conv', [0, 2]);
  return model;
}

/** Two levels: a Sequential block inside a residual block inside a functional model; one channel unused. */
function residualBlock(): tfl.LayersModel {
  const inner = tfl.sequential({
    name: 'branch',
    layers: [tfl.layers.dense({ inputShape: [6], units: 6, activation: 'relu', name: 'fc' })],
  });
  const bx = tfl.input({ shape: [6] });
  const sum = tfl.layers.add({ name: 'sum' }).apply([bx, inner.apply(bx) as tfl.SymbolicTensor]);
  const res = tfl.model({ inputs: bx, outputs: sum as tfl.SymbolicTensor, name: 'res' });
  const x = tfl.input({ shape: [6] });
  const h = tfl.layers.dense({ units: 6, activation: 'relu', name: 'fc' }).apply(x) as tfl.SymbolicTensor;
  const y = tfl.layers.dense({ units: 2, name: 'out' }).apply(res.apply(h)) as tfl.SymbolicTensor;
  const model = tfl.model({ inputs: x, outputs: y });
  // Channel 2 of the sum is read by nothing: the outer fc's unit 2 and the branch's go.
  zeroInputs(model, 'out', [2]);
  zeroInputs(inner, 'fc', [2]);
  return model;
}

function expectSameOutputs(a: tfl.LayersModel, b: tfl.LayersModel, seed: number): void {
  tf.tidy(() => {
    const x = tf.randomNormal([5, ...(a.inputs[0].shape.slice(1) as number[])], 0, 1, 'float32', seed);
    const ya = (a.predict(x) as tf.Tensor).dataSync();
    const yb = (b.predict(x) as tf.Tensor).dataSync();
    expect(yb.length).toBe(ya.length);
    for (let i = 0; i < ya.length; i++) expect(Math.abs(ya[i] - yb[i])).toBeLessThan(1e-5);
  });
}

describe('prune of a model with nested models', () => {
  it.each<[string, () => tfl.LayersModel, Record<string, [number, number]>]>([
    [
      'a Sequential block in a functional model',
      seqBlock,
      { 'inner/h1': [6, 4], 'inner/h2': [5, 3], head: [3, 3] },
    ],
    ['a functional conv block first in a Sequential', convBlock, { 'features/conv': [4, 2], out: [3, 3] }],
    ['a Sequential in a residual block', residualBlock, { fc: [6, 5], 'res/branch/fc': [6, 5], out: [2, 2] }],
  ])('%s: prunes through the blocks, names layers by path, computes the same', async (_, build, units) => {
    const model = build();
    const before = tf.memory().numTensors;
    const { model: pruned, report } = prune(model);
    expect(Object.fromEntries(report.layers.map((l) => [l.name, [l.unitsBefore, l.unitsAfter]]))).toEqual(
      units,
    );
    // The input model's rows are analyze's (paths for the blocks' layers), the pruned model's the same names.
    // (The nested models' input layers, which hold nothing, are not layers of the unnested model.)
    const rows = (layers: LayerAnalysis[]): string[] =>
      layers
        .filter((l) => l.className !== 'InputLayer')
        .map((l) => `${l.name} ${l.params} ${l.nonzeros} ${l.macs}`);
    expect(rows(report.layersBefore)).toEqual(rows(analyze(model).layers));
    expect(report.layersAfter.map((l) => l.name).filter((n) => n in units)).toEqual(Object.keys(units));
    expect(report.paramsBefore).toBe(model.countParams());
    expect(pruned.layers.some((l) => l instanceof tfl.LayersModel)).toBe(false);
    expectSameOutputs(model, pruned, 3);
    // The export loads in plain tfjs and computes the same.
    const dir = path.join(tmp, model.name);
    await exportModel(pruned, dir);
    const loaded = await tfl.loadLayersModel(fileSystem(dir));
    expectSameOutputs(model, loaded, 4);
    loaded.dispose();
    pruned.dispose();
    // Neither the unnested copy nor the folded one is left behind.
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it('prunes a Keras Sequential as tensorflowjs_converter writes it: InputLayer entries, a nested Sequential', async () => {
    const dense = (name: string, units: number): object => ({
      class_name: 'Dense',
      config: { name, units, activation: 'relu', use_bias: true },
    });
    const input = (name: string): object => ({
      class_name: 'InputLayer',
      config: { batch_input_shape: [null, 4], dtype: 'float32', sparse: false, name },
    });
    const base = {
      class_name: 'Sequential',
      config: { name: 'base', layers: [input('base_in'), dense('d1', 5)] },
    };
    const model = await fromKerasJSON({
      modelTopology: {
        class_name: 'Sequential',
        config: { name: 'top', layers: [input('top_in'), base, dense('d2', 2)] },
        keras_version: '2.15.0',
      },
    });
    zeroUnits(model.getLayer('base') as tfl.LayersModel, 'd1', [1, 3]);
    const { model: pruned, report } = prune(model);
    expect(pruned.getClassName()).toBe('Sequential');
    expect(report.layers.map((l) => [l.name, l.unitsBefore, l.unitsAfter])).toEqual([
      ['base/d1', 5, 3],
      ['d2', 2, 2],
    ]);
    expectSameOutputs(model, pruned, 6);
    pruned.dispose();
    model.dispose();
  });

  it('folds decomposed layers of the blocks first, and the report counts what training left', () => {
    const model = decompose(convBlock(), { granularity: { conv2d: 'filter', dense: 'input' } });
    const conv = magnitudes(model).find((m) => m.layerName === 'conv')!;
    // Filters 0 and 2 were dead in the plain model already; 1 dies by its magnitude.
    tf.tidy(() => conv.magnitude.assign(tf.mul(conv.magnitude, tf.tensor1d([1, 0, 1, 1]))));
    const before = tf.memory().numTensors;
    const { model: pruned, report } = prune(model);
    const features = report.layers.find((l) => l.name === 'features/conv')!;
    expect([features.unitsBefore, features.unitsAfter]).toEqual([4, 1]);
    expectSameOutputs(model, pruned, 5);
    pruned.dispose();
    expect(tf.memory().numTensors).toBe(before);
    // Every filter dead: refused, the layer named by path, and the advice naming it as
    // layerMultipliers of @normprune/prox takes it (as magnitudes() names it).
    tf.tidy(() => conv.magnitude.assign(tf.zerosLike(conv.magnitude)));
    const e = (() => {
      try {
        prune(model);
      } catch (err) {
        return err as DisconnectedModelError;
      }
      throw new Error('expected a refusal');
    })();
    expect(e).toBeInstanceOf(DisconnectedModelError);
    expect(e.layer).toBe('features/conv');
    expect(e.message).toMatch(/^surgery: every unit of layer 'features\/conv' \(Conv2D, 4 units\) is dead/);
    expect(e.message).toContain("(layerMultipliers: { 'conv': 0 } leaves it unpenalised)");
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it('counts what analyze counts for a block with an output that nothing reads, whose layer the pruned model drops', () => {
    const a = tfl.input({ shape: [4] });
    const p = tfl.layers.dense({ units: 5, activation: 'relu', name: 'p' }).apply(a) as tfl.SymbolicTensor;
    const q = tfl.layers.dense({ units: 3, name: 'q' }).apply(a) as tfl.SymbolicTensor;
    const block = tfl.model({ inputs: a, outputs: [p, q], name: 'pair' });
    const x = tfl.input({ shape: [4], name: 'x' });
    const [u] = block.apply(x) as tfl.SymbolicTensor[];
    const model = tfl.model({
      inputs: x,
      outputs: tfl.layers.dense({ units: 2, name: 'out' }).apply(u) as tfl.SymbolicTensor,
    });
    zeroUnits(block, 'p', [1]);
    const before = tf.memory().numTensors;
    const { model: pruned, report } = prune(model);
    // q (4 * 3 + 3 = 15 parameters) is in the model and in analyze's rows, in analyze's order.
    const rows = (layers: LayerAnalysis[]): string[] =>
      layers.map((l) => `${l.name} ${l.params} ${l.nonzeros}`);
    const analysis = analyze(model);
    expect(rows(report.layersBefore)).toEqual(rows(analysis.layers));
    expect(report.before).toEqual(analysis.total);
    expect(report.paramsBefore).toBe(model.countParams());
    expect(pruned.layers.map((l) => l.name)).toEqual(['x', 'pair/p', 'out']);
    // p loses a unit (4 + 1 weights), out an input (2), q goes whole.
    expect(report.paramsAfter).toBe(model.countParams() - 15 - 5 - 2);
    // The printed table gives q a row going to nothing (it threw, finding no row after for q).
    expect(report.table()).toMatch(/^pair\/q\s+Dense\s+15 -> 0\s+12 -> 0\s+12 -> 0$/m);
    expectSameOutputs(model, pruned, 2);
    pruned.dispose();
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it("refuses a NaN in a block's layer, naming the layer by path and the weight as the model holds it", () => {
    const model = seqBlock();
    const h2 = (model.getLayer('inner') as tfl.LayersModel).getLayer('h2');
    const [kernel, bias] = h2.getWeights();
    const values = Float32Array.from(kernel.dataSync());
    values[7] = NaN; // [1, 2] of the [6, 5] kernel
    const bad = tf.tensor(values, kernel.shape);
    h2.setWeights([bad, bias]);
    bad.dispose();
    const before = tf.memory().numTensors;
    let e: NonFiniteWeightError | undefined;
    try {
      prune(model);
    } catch (err) {
      e = err as NonFiniteWeightError;
    }
    expect(e).toBeInstanceOf(NonFiniteWeightError);
    // The unnested copy's weight is 'inner/h2/kernel', which the model has none of.
    expect([e!.layer, e!.weight, e!.index]).toEqual(['inner/h2', 'h2/kernel', [1, 2]]);
    expect(e!.message).toMatch(
      /^surgery: layer 'inner\/h2' \(Dense\) has 1 non-finite value in weight 'h2\/kernel' \(the first, at \[1,2\], is NaN\)/,
    );
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  // analyze named the layer by its own name ('fc', which res/branch/fc shares with the outer fc),
  // and so did exportModel, and prune for a decomposed layer; prune of a plain one, by path.
  it.each<[string, () => tfl.LayersModel, string, string]>([
    ['a Sequential block', seqBlock, 'inner/h2', 'Dense'],
    ['a functional conv block', convBlock, 'features/conv', 'Conv2D'],
    ['a Sequential in a residual block, beside a layer of its name', residualBlock, 'res/branch/fc', 'Dense'],
  ])(
    '%s: analyze, prune and exportModel name a NaN in the block by path, the model plain or decomposed',
    async (_, build, at, className) => {
      for (const decomposed of [false, true]) {
        const plain = build();
        const model = decomposed ? decompose(plain) : plain;
        const layer = layerPaths(model).find((l) => l.path === at)!.layer;
        const short = decomposed ? 'magnitude' : 'kernel';
        const w = layer.weights.find((v) => v.originalName.endsWith(`/${short}`))!;
        const values = Float32Array.from(w.read().dataSync());
        values[1] = NaN;
        tf.tidy(() => (w.read() as tf.Variable).assign(tf.tensor(values, w.shape as number[])));
        const weight = `${layer.name}/${short}`;
        const cls = decomposed ? `Decomposed${className}` : className;
        const before = tf.memory().numTensors;
        const dir = path.join(tmp, `nan-${decomposed}-${at.replace(/\//g, '-')}`);
        const errors: [string, unknown][] = [];
        for (const [caller, run] of [
          ['surgery', () => analyze(model)],
          ['surgery', () => prune(model)],
          ['exportModel', () => exportModel(model, dir)],
        ] as const) {
          try {
            await run();
          } catch (e) {
            errors.push([caller, e]);
          }
        }
        expect(errors.length).toBe(3);
        for (const [caller, e] of errors) {
          expect(e).toBeInstanceOf(NonFiniteWeightError);
          const { layer: named, className: c, weight: ww, count } = e as NonFiniteWeightError;
          expect([caller, named, c, ww, count]).toEqual([caller, at, cls, weight, 1]);
          expect((e as Error).message).toMatch(
            new RegExp(`^${caller}: layer '${at}' \\(${cls}\\) has 1 non-finite value in weight '${weight}'`),
          );
        }
        expect(fs.existsSync(dir)).toBe(false);
        expect(tf.memory().numTensors).toBe(before);
        model.dispose();
        if (decomposed) plain.dispose();
      }
    },
  );

  it('keeps the layers of a block frozen whole (the transfer-learning idiom) frozen', () => {
    const model = convBlock();
    (model.getLayer('features') as tfl.LayersModel).trainable = false;
    const { model: pruned } = prune(model);
    expect(pruned.trainableWeights.map((w) => w.originalName).sort()).toEqual(['out/bias', 'out/kernel']);
    expect(pruned.getLayer('features/conv').getConfig().trainable).toBe(false);
    pruned.dispose();
    model.dispose();
  });

  it('keeps a model frozen as a whole (model.trainable = false) frozen', () => {
    // The model's flag is not in its config: unnest's copy came back trainable, and the pruned
    // model with it, every weight of it.
    const model = convBlock();
    model.trainable = false;
    const { model: pruned } = prune(model);
    expect(pruned.trainable).toBe(false);
    expect(pruned.trainableWeights).toEqual([]);
    expectSameOutputs(model, pruned, 6);
    pruned.dispose();
    model.dispose();
  });

  it('refuses a block applied twice (shared weights), naming it and what to do', () => {
    const tower = tfl.sequential({
      name: 'tower',
      layers: [tfl.layers.dense({ inputShape: [4], units: 3, name: 'fc' })],
    });
    const a = tfl.input({ shape: [4] });
    const b = tfl.input({ shape: [4] });
    const sum = tfl.layers.add().apply([tower.apply(a), tower.apply(b)] as tfl.SymbolicTensor[]);
    const model = tfl.model({ inputs: [a, b], outputs: sum as tfl.SymbolicTensor });
    const before = tf.memory().numTensors;
    expect(() => prune(model)).toThrow(
      "surgery: nested model 'tower' (a Sequential used as a layer) is applied 2 times, so its weights are shared " +
        'between the calls; build the model with one copy of it per call, each holding its weights, then prune. ' +
        "Without pruning, exportModel(model, dir, { format: 'sparse' })",
    );
    expect(tf.memory().numTensors).toBe(before);
    // Applied to its own output, and a layer applied twice inside a block: each refused, named.
    const square = tfl.sequential({
      name: 'square',
      layers: [tfl.layers.dense({ inputShape: [4], units: 4, name: 'fc' })],
    });
    const x = tfl.input({ shape: [4] });
    const chained = tfl.model({ inputs: x, outputs: square.apply(square.apply(x)) as tfl.SymbolicTensor });
    expect(() => prune(chained)).toThrow(
      "surgery: nested model 'square' (a Sequential used as a layer) is applied 2 times",
    );
    const shared = tfl.layers.dense({ units: 4, name: 'sh' });
    const bx = tfl.input({ shape: [4] });
    const block = tfl.model({
      inputs: bx,
      outputs: shared.apply(shared.apply(bx)) as tfl.SymbolicTensor,
      name: 'blk',
    });
    const y = tfl.input({ shape: [4] });
    const inside = tfl.model({ inputs: y, outputs: block.apply(y) as tfl.SymbolicTensor });
    const built = tf.memory().numTensors;
    expect(() => prune(inside)).toThrow(
      "surgery: layer 'blk/sh' (Dense) is called more than once (shared weights); shared layers are not supported",
    );
    expect(tf.memory().numTensors).toBe(built);
  });
});
