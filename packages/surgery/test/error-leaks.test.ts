// A refused call leaves tf.memory().numTensors where it was: a long-running process that catches
// the error and goes on must not grow. On cpu and on wasm.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { decomposedDense, magnitudes } from '@normprune/layers';
import { analyze, exportModel, kernelMask, loadSparseModel, prune } from '../src/index';
import { constrainedModel } from '../../../tools/testing/leaks';
import { BACKENDS } from './helpers';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-surgery-leaks-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** numTensors after `fn` throws (or rejects), minus before. */
async function leakedByRefusal(fn: () => unknown, message: RegExp): Promise<number> {
  const before = tf.memory().numTensors;
  await expect((async () => fn())()).rejects.toThrow(message);
  return tf.memory().numTensors - before;
}

/** A plain Dense whose kernel holds zeros, then a decomposed one (or the given second layer). */
function plainThenDecomposed(): tfl.Sequential {
  return tfl.sequential({
    layers: [
      tfl.layers.dense({ inputShape: [4], units: 3, kernelInitializer: 'zeros', name: 'plain' }),
      tfl.layers.dense({ units: 3, kernelInitializer: 'zeros', name: 'plain2' }),
      decomposedDense({ units: 2, name: 'dec' }),
    ],
  });
}

describe.each(BACKENDS)('on %s', (_, init) => {
  beforeAll(init);

  it('kernelMask refusing a decomposed layer frees the masks it made of the layers before it', async () => {
    const model = plainThenDecomposed();
    // Two masks (one per zero kernel of the plain layers) were made before the refusal, and kept.
    expect(await leakedByRefusal(() => kernelMask(model), /layer 'dec' is a DecomposedDense/)).toBe(0);
    // Inside a wrapper: refused as well, nothing kept.
    const wrapped = tfl.sequential({
      layers: [
        tfl.layers.dense({ inputShape: [2, 4], units: 3, kernelInitializer: 'zeros', name: 'plain' }),
        tfl.layers.timeDistributed({ layer: decomposedDense({ units: 2, name: 'inner' }) }),
      ],
    });
    expect(await leakedByRefusal(() => kernelMask(wrapped), /wraps the decomposed layer 'inner'/)).toBe(0);
    // The accepted model keeps exactly its masks, and dispose() frees them.
    const plain = tfl.sequential({ layers: [model.layers[0], model.layers[1]] });
    const before = tf.memory().numTensors;
    const mask = kernelMask(plain);
    expect(mask.layers.map((l) => l.name)).toEqual(['plain', 'plain2']);
    mask.apply();
    mask.dispose();
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
    wrapped.dispose();
  });

  it('prune, analyze and exportModel refusing a NaN or a disconnected model leave nothing behind', async () => {
    const model = tfl.sequential({
      layers: [
        decomposedDense({ inputShape: [4], units: 3, name: 'd1' }),
        decomposedDense({ units: 2, name: 'd2' }),
      ],
    });
    const [, d2] = magnitudes(model);
    const kept = d2.magnitude.clone();
    d2.magnitude.assign(tf.tensor([1, NaN]));
    const nonFinite = /non-finite value in weight 'd2\/magnitude'/;
    expect(await leakedByRefusal(() => prune(model), nonFinite)).toBe(0);
    expect(await leakedByRefusal(() => analyze(model), nonFinite)).toBe(0);
    expect(await leakedByRefusal(() => exportModel(model, path.join(tmp, 'nan')), nonFinite)).toBe(0);
    expect(
      await leakedByRefusal(
        () => exportModel(model, path.join(tmp, 'nan-sparse'), { format: 'sparse' }),
        nonFinite,
      ),
    ).toBe(0);
    d2.magnitude.assign(tf.zeros([2]));
    expect(await leakedByRefusal(() => prune(model), /removing them would disconnect the model/)).toBe(0);
    // The same calls that go through stay flat.
    d2.magnitude.assign(kept);
    const before = tf.memory().numTensors;
    prune(model).model.dispose();
    analyze(model);
    const dir = path.join(tmp, `ok-${tf.getBackend()}`);
    await exportModel(model, dir, { format: 'sparse' });
    (await loadSparseModel(dir)).dispose();
    expect(tf.memory().numTensors).toBe(before);
    kept.dispose();
    model.dispose();
  });

  it('loadSparseModel of a model with constrained weights holds exactly its weights, and dispose() frees them', async () => {
    const model = constrainedModel();
    const dir = path.join(tmp, `constrained-${tf.getBackend()}`);
    await exportModel(model, dir, { format: 'sparse' });
    const before = tf.memory().numTensors;
    const loaded = await loadSparseModel(dir);
    // tfjs's write of a constrained weight left the constraint's output behind: 6, 2 of them leaked.
    expect(tf.memory().numTensors - before).toBe(loaded.weights.length);
    loaded.dispose();
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it('loadSparseModel refusing a layer class tfjs does not know frees the layers built before it', async () => {
    const dir = path.join(tmp, `unknown-class-${tf.getBackend()}`);
    const model = tfl.sequential({
      layers: [
        tfl.layers.dense({ inputShape: [4], units: 3, name: 'a' }),
        tfl.layers.dense({ units: 3, name: 'b' }),
        tfl.layers.dense({ units: 2, name: 'c' }),
      ],
    });
    await exportModel(model, dir, { format: 'sparse' });
    model.dispose();
    const file = path.join(dir, 'model.json');
    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    const config = json.modelTopology.config;
    // The last layer's class, as a model using a custom layer whose module was not imported.
    (config.layers ?? config)[2].class_name = 'MysteryLayer';
    fs.writeFileSync(file, JSON.stringify(json));
    // 'a' and 'b' were built, 4 weights left behind.
    expect(await leakedByRefusal(() => loadSparseModel(dir), /Unknown layer: MysteryLayer/)).toBe(0);
    // Within a functional model too (the nested layers' order of building differs).
    const x = tfl.input({ shape: [4] });
    const y = tfl.layers
      .dense({ units: 2, name: 'c' })
      .apply(tfl.layers.dense({ units: 3, name: 'a' }).apply(x));
    const functional = tfl.model({ inputs: x, outputs: y as tfl.SymbolicTensor });
    const fdir = path.join(tmp, `unknown-class-functional-${tf.getBackend()}`);
    await exportModel(functional, fdir, { format: 'sparse' });
    functional.dispose();
    const ffile = path.join(fdir, 'model.json');
    const fjson = JSON.parse(fs.readFileSync(ffile, 'utf8'));
    const layers = fjson.modelTopology.config.layers as { class_name: string; name: string }[];
    layers.find((l) => l.name === 'c')!.class_name = 'MysteryLayer';
    fs.writeFileSync(ffile, JSON.stringify(fjson));
    expect(await leakedByRefusal(() => loadSparseModel(fdir), /Unknown layer: MysteryLayer/)).toBe(0);
  });

  it('loadSparseModel of a model applying a block and a Dense twice: dispose() frees every weight', async () => {
    const block = tfl.sequential({
      name: 'block',
      layers: [tfl.layers.dense({ inputShape: [4], units: 4, name: 'fc' })],
    });
    const shared = tfl.layers.dense({ units: 4, name: 'shared' });
    const x = tfl.input({ shape: [4] });
    const twice = (l: tfl.layers.Layer) => l.apply(l.apply(x)) as tfl.SymbolicTensor;
    const y = tfl.layers
      .dense({ units: 2, name: 'out' })
      .apply(tfl.layers.add().apply([twice(block), twice(shared)]));
    const model = tfl.model({ inputs: x, outputs: y as tfl.SymbolicTensor });
    const dir = path.join(tmp, `applied-twice-${tf.getBackend()}`);
    await exportModel(model, dir, { format: 'sparse' });
    const before = tf.memory().numTensors;
    const loaded = await loadSparseModel(dir);
    expect(tf.memory().numTensors - before).toBe(6);
    // tfjs's dispose() left block/fc's and shared's weights allocated: 4 tensors.
    expect(loaded.dispose().numDisposedVariables).toBe(6);
    expect(tf.memory().numTensors).toBe(before);
    model.getLayer('block').dispose();
    shared.dispose();
    model.dispose();
  });
});
