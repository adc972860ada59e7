// Test fixtures: small models, ways to kill groups by writing zeros, and output comparison.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { fileSystem, initBackend } from '@normprune/runtime';
import { exportModel, loadSparseModel, prune, type PruneReport } from '../src/index';
import { maxDiff } from '../../../tools/testing/leaks';

/** A deterministic generator so fixtures are the same on every run. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** The backends a test runs on with `describe.each`: cpu, and wasm (the one training uses). */
export const BACKENDS = [
  ['cpu', async () => void (await tf.setBackend('cpu'))],
  ['wasm', async () => void (await initBackend({ prefer: 'wasm', quiet: true }))],
] as const;

/** Every weight of `model` drawn from a seeded generator, biases included (a dead unit then emits a constant). */
export function randomWeights(model: tfl.LayersModel, seed: number): void {
  const r = rng(seed);
  for (const layer of model.layers) {
    const values = layer.weights.map((w) => {
      const shape = w.shape as number[];
      return tf.tensor(
        Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r() - 0.5),
        shape,
      );
    });
    layer.setWeights(values);
    tf.dispose(values);
  }
}

/** Sets entries of a layer's bias (unit -> value). */
export function setBias(model: tfl.LayersModel, layer: string, values: Record<number, number>): void {
  editWeight(model, layer, 'bias', (v) => {
    for (const [u, b] of Object.entries(values)) v[Number(u)] = b;
  });
}

/** Rewrites one weight of a layer (by short name) with `edit` applied to a host copy. */
export function editWeight(
  model: tfl.LayersModel,
  layerName: string,
  weight: string,
  edit: (v: Float32Array, shape: number[]) => void,
): void {
  const layer = model.getLayer(layerName);
  const values = layer.getWeights().map((t) => Float32Array.from(t.dataSync() as Float32Array));
  const idx = layer.weights.findIndex(
    (w) =>
      String((w as any).originalName ?? w.name)
        .split('/')
        .pop() === weight,
  );
  if (idx < 0) throw new Error(`no weight ${weight} in ${layerName}`);
  const shape = layer.weights[idx].shape as number[];
  edit(values[idx], shape);
  const tensors = values.map((v, i) => tf.tensor(v, layer.weights[i].shape as number[]));
  layer.setWeights(tensors);
  tf.dispose(tensors);
}

/** Zeroes kernel[..., i, o] for every (i, o) with `pred(i, o)` (the last two axes). */
export function zeroKernelWhere(
  model: tfl.LayersModel,
  layerName: string,
  pred: (i: number, o: number) => boolean,
  weight = 'kernel',
): void {
  editWeight(model, layerName, weight, (v, shape) => {
    const cin = shape[shape.length - 2];
    const cout = shape[shape.length - 1];
    for (let p = 0; p < v.length; p++) {
      const q = p % (cin * cout);
      if (pred(Math.floor(q / cout), q % cout)) v[p] = 0;
    }
  });
}

/** Kills units (Dense columns / Conv2D filters). */
export function zeroUnits(model: tfl.LayersModel, layerName: string, units: number[]): void {
  zeroKernelWhere(model, layerName, (_i, o) => units.includes(o));
}

/** Makes a layer ignore inputs (Dense rows / Conv2D input channels). */
export function zeroInputs(model: tfl.LayersModel, layerName: string, inputs: number[]): void {
  zeroKernelWhere(model, layerName, (i) => inputs.includes(i));
}

/** Fills every weight named `weight` (bias, beta, ...) of every layer that has one with values from `gen`. */
export function fillAll(model: tfl.LayersModel, weight: string, gen: () => number): void {
  for (const l of model.layers) {
    if (
      l.weights.some(
        (w) =>
          String((w as any).originalName ?? w.name)
            .split('/')
            .pop() === weight,
      )
    ) {
      editWeight(model, l.name, weight, (v) => v.forEach((_, k) => (v[k] = gen())));
    }
  }
}

/** Gives BatchNormalization layers non-trivial statistics so their constants matter. */
export function randomizeBatchNorm(model: tfl.LayersModel, seed = 7): void {
  const r = rng(seed);
  fillAll(model, 'gamma', () => 0.5 + r());
  fillAll(model, 'beta', () => r() - 0.5);
  fillAll(model, 'moving_mean', () => r() - 0.5);
  fillAll(model, 'moving_variance', () => 0.5 + r());
}

/** Max absolute difference of the two models' predictions on the same random batch. */
export function outputDiff(
  a: tfl.LayersModel,
  b: tfl.LayersModel,
  batch = 4,
  seed = 1,
): { abs: number; scale: number } {
  return tf.tidy(() => {
    const shape = [batch, ...(a.inputs[0].shape.slice(1) as number[])];
    const x = tf.randomNormal(shape, 0, 1, 'float32', seed);
    const ya = (a.predict(x) as tf.Tensor).dataSync();
    const yb = (b.predict(x) as tf.Tensor).dataSync();
    const scale = Math.max(...Array.from(ya, Math.abs));
    return { abs: maxDiff(ya, yb).abs, scale };
  });
}

/** A model that prune() must shrink while computing the same (a row of a test's table of cases). */
export interface PruneCase {
  name: string;
  build(): tfl.LayersModel;
  /** Kills groups (after the weights are randomised). */
  kill(model: tfl.LayersModel): void;
  /** Units before -> after of each unit layer, or the units removed by layer (the others remove none). */
  units?: Record<string, [number, number]>;
  removed?: Record<string, number[]>;
  /** The first weight's shape after pruning, by layer. */
  kernels: Record<string, number[]>;
}

/**
 * Builds `c`'s model with seeded weights, kills its groups and prunes it: the units and kernels are
 * `c`'s, no unit stays as a constant, there is no warning, and the pruned model computes what the
 * model does, as it is, after a plain tfjs save and load, and exported in both formats (to `dir`,
 * then `dir`-sparse) and loaded back; no tensor is left behind. `more` checks what else the
 * caller's table is about, before the models are disposed.
 */
export async function expectPrunedAlike(
  c: PruneCase,
  seed: number,
  dir: string,
  more?: (model: tfl.LayersModel, pruned: tfl.LayersModel, report: PruneReport) => void,
): Promise<void> {
  const model = c.build();
  randomWeights(model, seed);
  c.kill(model);
  const before = tf.memory().numTensors;
  const { model: pruned, report } = prune(model);
  if (c.units)
    expect(Object.fromEntries(report.layers.map((l) => [l.name, [l.unitsBefore, l.unitsAfter]]))).toEqual(
      c.units,
    );
  if (c.removed)
    expect(
      Object.fromEntries(report.layers.filter((l) => l.removed.length).map((l) => [l.name, l.removed])),
    ).toEqual(c.removed);
  for (const [name, shape] of Object.entries(c.kernels))
    expect([name, pruned.getLayer(name).weights[0].shape]).toEqual([name, shape]);
  expect(report.layers.flatMap((l) => l.keptConstant)).toEqual([]);
  expect(report.warnings).toEqual([]);
  const diff = outputDiff(model, pruned, 3, 5);
  const close = (d: { abs: number }) => d.abs <= 1e-5 * Math.max(1, diff.scale);
  expect(close(diff)).toBe(true);
  more?.(model, pruned, report);
  // Plain tfjs saves the pruned model and loads it back (no normprune code in between).
  let saved: tf.io.ModelArtifacts | undefined;
  await pruned.save(
    tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  const loaded = [await tfl.loadLayersModel(tf.io.fromMemory(saved!))];
  expect(loaded[0].layers.map((l) => l.getClassName())).toEqual(pruned.layers.map((l) => l.getClassName()));
  await exportModel(pruned, dir);
  loaded.push(await tfl.loadLayersModel(fileSystem(dir)));
  await exportModel(pruned, `${dir}-sparse`, { format: 'sparse' });
  loaded.push(await loadSparseModel(`${dir}-sparse`));
  for (const [i, format] of ['tfjs in memory', 'tfjs', 'sparse'].entries())
    expect([format, close(outputDiff(model, loaded[i], 3, 6 + i))]).toEqual([format, true]);
  for (const m of [...loaded, pruned]) m.dispose();
  expect(tf.memory().numTensors).toBe(before);
  model.dispose();
}

/**
 * One test per case of `cases` on each of the BACKENDS, titled `title, on <backend>`: each runs
 * expectPrunedAlike with `seed` and `more`, exporting into a temporary folder removed afterwards.
 */
export function describePruneCases(
  title: string,
  cases: PruneCase[],
  seed: number,
  more?: Parameters<typeof expectPrunedAlike>[3],
): void {
  describe.each(BACKENDS)(`${title}, on %s`, (backend, init) => {
    let tmp: string;
    beforeAll(async () => {
      await init();
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), `surgery-${backend}-`));
    });
    afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

    it.each(cases.map((c) => [c.name, c] as const))('%s', (_, c) =>
      expectPrunedAlike(c, seed, path.join(tmp, c.name.replace(/\W+/g, '-')), more),
    );
  });
}

/** Units (Dense) or filters (Conv2D) of a layer. */
export function unitsOf(model: tfl.LayersModel, name: string): number {
  const shape = model.getLayer(name).outputShape as number[];
  return shape[shape.length - 1];
}

/** A small MLP: 20 -> 16 relu -> 12 relu -> 5. */
export function mlp(): tfl.Sequential {
  return tfl.sequential({
    layers: [
      tfl.layers.dense({
        units: 16,
        inputShape: [20],
        activation: 'relu',
        name: 'd1',
        kernelInitializer: tfl.initializers.glorotNormal({ seed: 1 }),
      }),
      tfl.layers.dense({
        units: 12,
        activation: 'relu',
        name: 'd2',
        kernelInitializer: tfl.initializers.glorotNormal({ seed: 2 }),
      }),
      tfl.layers.dense({
        units: 5,
        name: 'd3',
        kernelInitializer: tfl.initializers.glorotNormal({ seed: 3 }),
      }),
    ],
  });
}

/** LeNet-5 for 28x28x1 (first conv 'same', second 'valid'), at a reduced width when `narrow`. */
export function lenet5(narrow = false): tfl.Sequential {
  const k = (seed: number) => tfl.initializers.glorotNormal({ seed });
  const [f1, f2, u1, u2] = narrow ? [4, 8, 24, 16] : [6, 16, 120, 84];
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        inputShape: [28, 28, 1],
        filters: f1,
        kernelSize: 5,
        padding: 'same',
        activation: 'relu',
        name: 'conv1',
        kernelInitializer: k(1),
      }),
      tfl.layers.maxPooling2d({ poolSize: 2, name: 'pool1' }),
      tfl.layers.conv2d({
        filters: f2,
        kernelSize: 5,
        padding: 'valid',
        activation: 'relu',
        name: 'conv2',
        kernelInitializer: k(2),
      }),
      tfl.layers.maxPooling2d({ poolSize: 2, name: 'pool2' }),
      tfl.layers.flatten({ name: 'flatten' }),
      tfl.layers.dense({ units: u1, activation: 'relu', name: 'fc1', kernelInitializer: k(3) }),
      tfl.layers.dense({ units: u2, activation: 'relu', name: 'fc2', kernelInitializer: k(4) }),
      tfl.layers.dense({ units: 10, name: 'fc3', kernelInitializer: k(5) }),
    ],
  });
}

/** A VGG-style block net with BatchNormalization on 12x12x3 inputs. */
export function vggBn(): tfl.Sequential {
  const k = (seed: number) => tfl.initializers.glorotNormal({ seed });
  const block = (name: string, filters: number, seed: number, first = false) => [
    tfl.layers.conv2d({
      ...(first ? { inputShape: [12, 12, 3] } : {}),
      filters,
      kernelSize: 3,
      padding: 'same',
      useBias: false,
      name,
      kernelInitializer: k(seed),
    }),
    tfl.layers.batchNormalization({ name: `${name}_bn` }),
    tfl.layers.activation({ activation: 'relu', name: `${name}_relu` }),
  ];
  return tfl.sequential({
    layers: [
      ...block('c1', 8, 1, true),
      ...block('c2', 8, 2),
      tfl.layers.maxPooling2d({ poolSize: 2, name: 'p1' }),
      ...block('c3', 12, 3),
      ...block('c4', 12, 4),
      tfl.layers.maxPooling2d({ poolSize: 2, name: 'p2' }),
      tfl.layers.flatten({ name: 'flat' }),
      tfl.layers.dense({ units: 16, activation: 'relu', name: 'fc1', kernelInitializer: k(5) }),
      tfl.layers.dropout({ rate: 0.5, name: 'drop' }),
      tfl.layers.dense({ units: 10, name: 'fc2', kernelInitializer: k(6) }),
    ],
  });
}

/** Functional net with a residual Add: conv a -> conv b, add(a, b), relu, global pool, dense. */
export function residual(): tfl.LayersModel {
  const k = (seed: number) => tfl.initializers.glorotNormal({ seed });
  const input = tfl.input({ shape: [8, 8, 3], name: 'x' });
  const a = tfl.layers
    .conv2d({
      filters: 6,
      kernelSize: 3,
      padding: 'same',
      activation: 'relu',
      name: 'a',
      kernelInitializer: k(1),
    })
    .apply(input) as tfl.SymbolicTensor;
  const b = tfl.layers
    .conv2d({ filters: 6, kernelSize: 3, padding: 'same', name: 'b', kernelInitializer: k(2) })
    .apply(a) as tfl.SymbolicTensor;
  const sum = tfl.layers.add({ name: 'add' }).apply([a, b]) as tfl.SymbolicTensor;
  const act = tfl.layers.reLU({ name: 'relu' }).apply(sum) as tfl.SymbolicTensor;
  const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(act) as tfl.SymbolicTensor;
  const out = tfl.layers
    .dense({ units: 4, name: 'out', kernelInitializer: k(3) })
    .apply(gap) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}
