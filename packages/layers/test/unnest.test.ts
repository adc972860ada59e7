// unnest(): a copy of a model built from blocks (nested models) with the blocks' layers applied
// directly, named by path; it computes what the model computes and keeps what is frozen.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { decompose, hasNested, layerPaths, magnitudes, unnest } from '../src/index.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';
import { saveInMemory } from '../../../tools/testing/memory-io.js';
import { randn, useCpu } from './helpers.js';

beforeAll(useCpu);

/** Loads a model topology in the snake_case JSON that Keras and tensorflowjs_converter write. */
function fromKerasJSON(artifacts: { modelTopology: object }): Promise<tfl.LayersModel> {
  return tfl.models.modelFromJSON(artifacts as unknown as Parameters<typeof tfl.models.modelFromJSON>[0]);
}

/** Gives every weight of `model` seeded random values, so that outputs differ across layers. */
function randomize(model: tfl.LayersModel, seed: number): tfl.LayersModel {
  model.weights.forEach((w, i) => {
    const v = randn(w.shape as number[], seed + i);
    (w.read() as tf.Variable).assign(v);
    v.dispose();
  });
  return model;
}

/** A Sequential block inside a Sequential, first and in the middle. */
function seqInSeq(): tfl.LayersModel {
  const first = tfl.sequential({
    name: 'stem',
    layers: [tfl.layers.dense({ inputShape: [6], units: 5, activation: 'relu', name: 'fc' })],
  });
  const middle = tfl.sequential({
    name: 'mid',
    layers: [
      tfl.layers.dense({ inputShape: [5], units: 4, activation: 'tanh', name: 'fc' }),
      tfl.layers.dense({ units: 4, name: 'fc2' }),
    ],
  });
  return tfl.sequential({ layers: [first, middle, tfl.layers.dense({ units: 3, name: 'head' })] });
}

/** A functional conv block inside a Sequential. */
function convBlockInSeq(): tfl.LayersModel {
  const x = tfl.input({ shape: [7, 7, 2] });
  let h = tfl.layers.conv2d({ filters: 3, kernelSize: 3, activation: 'relu', name: 'conv' }).apply(x);
  h = tfl.layers.batchNormalization({ name: 'bn' }).apply(h);
  const block = tfl.model({ inputs: x, outputs: h as tfl.SymbolicTensor, name: 'block' });
  return tfl.sequential({
    layers: [block, tfl.layers.flatten({ name: 'flat' }), tfl.layers.dense({ units: 2, name: 'out' })],
  });
}

/** A Sequential block inside a functional block inside a functional model, with a skip around it. */
function twoLevels(): tfl.LayersModel {
  const inner = tfl.sequential({
    name: 'inner',
    layers: [tfl.layers.dense({ inputShape: [4], units: 4, activation: 'relu', name: 'fc' })],
  });
  const bx = tfl.input({ shape: [4] });
  const by = tfl.layers.add({ name: 'sum' }).apply([bx, inner.apply(bx) as tfl.SymbolicTensor]);
  const block = tfl.model({ inputs: bx, outputs: by as tfl.SymbolicTensor, name: 'res' });
  const x = tfl.input({ shape: [4], name: 'x' });
  const y = tfl.layers.dense({ units: 3, name: 'fc' }).apply(block.apply(x) as tfl.SymbolicTensor);
  return tfl.model({ inputs: x, outputs: y as tfl.SymbolicTensor, name: 'outer' });
}

/** A nested model of two inputs and two outputs, each output read by its own head. */
function twoInTwoOut(): tfl.LayersModel {
  const a = tfl.input({ shape: [3] });
  const b = tfl.input({ shape: [2] });
  const joined = tfl.layers.concatenate({ name: 'cat' }).apply([a, b]) as tfl.SymbolicTensor;
  const p = tfl.layers.dense({ units: 4, name: 'p' }).apply(joined) as tfl.SymbolicTensor;
  const q = tfl.layers.dense({ units: 2, name: 'q' }).apply(b) as tfl.SymbolicTensor;
  const block = tfl.model({ inputs: [a, b], outputs: [p, q], name: 'pair' });
  const x1 = tfl.input({ shape: [3], name: 'x1' });
  const x2 = tfl.input({ shape: [2], name: 'x2' });
  const [u, v] = block.apply([x1, x2]) as tfl.SymbolicTensor[];
  const y1 = tfl.layers.dense({ units: 2, name: 'h1' }).apply(v) as tfl.SymbolicTensor;
  const y2 = tfl.layers.dense({ units: 1, name: 'h2' }).apply(u) as tfl.SymbolicTensor;
  return tfl.model({ inputs: [x1, x2], outputs: [y1, y2] });
}

function inputsFor(model: tfl.LayersModel, seed: number): tf.Tensor[] {
  return model.inputs.map((t, i) => randn([3, ...(t.shape.slice(1) as number[])], seed + i));
}

function outputs(model: tfl.LayersModel, xs: tf.Tensor[]): tf.Tensor[] {
  const y = model.predict(xs.length === 1 ? xs[0] : xs);
  return Array.isArray(y) ? y : [y];
}

function expectSameOutputs(a: tfl.LayersModel, b: tfl.LayersModel, seed: number): void {
  const xs = inputsFor(a, seed);
  const ya = outputs(a, xs);
  const yb = outputs(b, xs);
  expect(yb.length).toBe(ya.length);
  ya.forEach((t, i) => {
    expect(yb[i].shape).toEqual(t.shape);
    // The same kernels on the same inputs: the same floats.
    expect(Array.from(yb[i].dataSync())).toEqual(Array.from(t.dataSync()));
  });
  tf.dispose([...xs, ...ya, ...yb]);
}

describe('unnest', () => {
  it.each<[string, () => tfl.LayersModel, string, string[]]>([
    ['a Sequential in a Sequential', seqInSeq, 'Sequential', ['stem/fc', 'mid/fc', 'mid/fc2', 'head']],
    [
      'a functional conv block in a Sequential',
      convBlockInSeq,
      'Model',
      ['block/conv', 'block/bn', 'flat', 'out'],
    ],
    [
      'a Sequential in a functional block in a functional model',
      twoLevels,
      'Model',
      ['res/inner/fc', 'res/sum', 'fc'],
    ],
    [
      'a block of two inputs and two outputs',
      twoInTwoOut,
      'Model',
      ['pair/cat', 'pair/q', 'pair/p', 'h1', 'h2'],
    ],
  ])('%s: the same outputs, no nested model left, layers named by path', async (_, build, cls, names) => {
    const model = randomize(build(), 11);
    expect(hasNested(model)).toBe(true);
    const flat = unnest(model);
    expect(hasNested(flat)).toBe(false);
    expect(flat.getClassName()).toBe(cls);
    expect(flat.layers.map((l) => l.name).filter((n) => names.includes(n))).toEqual(names);
    // Every layer but the inputs is the layer layerPaths names by the same path.
    const named = (m: tfl.LayersModel): string[] =>
      layerPaths(m)
        .filter((l) => l.layer.getClassName() !== 'InputLayer')
        .map((l) => `${l.path}:${l.layer.getClassName()}`)
        .sort();
    expect(named(flat)).toEqual(named(model));
    expect(flat.countParams()).toBe(model.countParams());
    expectSameOutputs(model, flat, 5);
    // Its own weights: disposing it leaves the model whole, and neither leaks.
    await expectNoLeak(() => {
      const again = unnest(model);
      again.dispose();
    });
    flat.dispose();
    expectSameOutputs(model, randomize(build(), 11), 6);
    model.dispose();
  });

  it('takes a Keras model as tensorflowjs_converter writes it: InputLayer entries in Sequentials, a nested Functional', async () => {
    const dense = (name: string, units: number): object => ({
      class_name: 'Dense',
      config: { name, units, activation: 'relu', use_bias: true },
    });
    const input = (name: string, shape: number[]): object => ({
      class_name: 'InputLayer',
      config: { batch_input_shape: [null, ...shape], dtype: 'float32', sparse: false, name },
    });
    const base = {
      class_name: 'Sequential',
      config: { name: 'base', layers: [input('base_in', [4]), dense('d1', 3)] },
    };
    const seq = await fromKerasJSON({
      modelTopology: {
        class_name: 'Sequential',
        config: { name: 'top', layers: [input('top_in', [4]), base, dense('d2', 2)] },
        keras_version: '2.15.0',
      },
    });
    const functional = await fromKerasJSON({
      modelTopology: {
        class_name: 'Functional',
        config: {
          name: 'outer',
          layers: [
            { ...input('x', [4]), name: 'x', inbound_nodes: [] },
            {
              class_name: 'Functional',
              name: 'block',
              config: {
                name: 'block',
                layers: [
                  { ...input('bx', [4]), name: 'bx', inbound_nodes: [] },
                  { ...dense('d1', 3), name: 'd1', inbound_nodes: [[['bx', 0, 0, {}]]] },
                ],
                input_layers: [['bx', 0, 0]],
                output_layers: [['d1', 0, 0]],
              },
              inbound_nodes: [[['x', 0, 0, {}]]],
            },
            { ...dense('d2', 2), name: 'd2', inbound_nodes: [[['block', 1, 0, {}]]] },
          ],
          input_layers: [['x', 0, 0]],
          output_layers: [['d2', 0, 0]],
        },
        keras_version: '2.15.0',
      },
    });
    for (const [model, cls] of [
      [seq, 'Sequential'],
      [functional, 'Model'],
    ] as const) {
      randomize(model, 9);
      const flat = unnest(model);
      expect(flat.getClassName()).toBe(cls);
      expect(flat.layers.map((l) => l.name).filter((n) => !n.endsWith('_in') && n !== 'x')).toEqual([
        `${model === seq ? 'base' : 'block'}/d1`,
        'd2',
      ]);
      expectSameOutputs(model, flat, 4);
      flat.dispose();
      model.dispose();
    }
  });

  it('keeps an int32 input (a Keras InputLayer) apart from the float32 Embedding of a nested Sequential', async () => {
    const model = await fromKerasJSON({
      modelTopology: {
        class_name: 'Sequential',
        config: {
          name: 'top',
          layers: [
            {
              class_name: 'InputLayer',
              config: { batch_input_shape: [null, 5], dtype: 'int32', sparse: false, name: 'ids' },
            },
            {
              class_name: 'Sequential',
              config: {
                name: 'text',
                layers: [
                  {
                    class_name: 'InputLayer',
                    config: { batch_input_shape: [null, 5], dtype: 'int32', sparse: false, name: 'text_ids' },
                  },
                  { class_name: 'Embedding', config: { name: 'emb', input_dim: 10, output_dim: 3 } },
                  { class_name: 'Flatten', config: { name: 'flat' } },
                ],
              },
            },
            { class_name: 'Dense', config: { name: 'd', units: 2 } },
          ],
        },
        keras_version: '2.15.0',
      },
    });
    randomize(model, 3);
    // The Embedding's dtype was set to the input's, int32: copying its float32 weights threw.
    const flat = unnest(model);
    expect(flat.getClassName()).toBe('Sequential');
    expect(flat.inputs[0].dtype).toBe('int32');
    expect(flat.getLayer('text/emb').weights[0].dtype).toBe('float32');
    const ids = tf.tensor2d([1, 2, 3, 4, 5, 0, 9, 8, 7, 6], [2, 5], 'int32');
    const [a, b] = [model, flat].map((m) => m.predict(ids) as tf.Tensor);
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    tf.dispose([ids, a, b]);
    flat.dispose();
    model.dispose();
  });

  it("names the input of a Sequential holding a functional block as the model's input", async () => {
    const model = await fromKerasJSON({
      modelTopology: {
        class_name: 'Sequential',
        config: {
          name: 'top',
          layers: [
            {
              class_name: 'InputLayer',
              config: { batch_input_shape: [null, 4], dtype: 'float32', sparse: false, name: 'image' },
            },
            {
              class_name: 'Functional',
              config: {
                name: 'block',
                layers: [
                  {
                    class_name: 'InputLayer',
                    config: { batch_input_shape: [null, 4], dtype: 'float32', sparse: false, name: 'bx' },
                    name: 'bx',
                    inbound_nodes: [],
                  },
                  {
                    class_name: 'Dense',
                    config: { name: 'd1', units: 3 },
                    name: 'd1',
                    inbound_nodes: [[['bx', 0, 0, {}]]],
                  },
                ],
                input_layers: [['bx', 0, 0]],
                output_layers: [['d1', 0, 0]],
              },
            },
          ],
        },
        keras_version: '2.15.0',
      },
    });
    const flat = unnest(model);
    // It was 'top_input'.
    expect(flat.inputLayers.map((l) => l.name)).toEqual(['image']);
    expectSameOutputs(randomize(model, 2), randomize(flat, 2), 1);
    flat.dispose();
    model.dispose();
  });

  it('saves and loads back in plain tfjs with its path names', async () => {
    const model = randomize(twoLevels(), 3);
    const flat = unnest(model);
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(await saveInMemory(flat)));
    expect(loaded.layers.map((l) => l.name)).toEqual(flat.layers.map((l) => l.name));
    expectSameOutputs(flat, loaded, 7);
    tf.dispose([model, flat, loaded].flatMap((m) => m.weights.map((w) => w.read())));
  });

  it('copies decomposed layers of nested models as they are, magnitudes included', () => {
    const model = decompose(randomize(convBlockInSeq(), 21), { granularity: { conv2d: 'filter' } });
    const flat = unnest(model);
    expect(magnitudes(flat).map((m) => [m.layerName, m.granularity, m.groups])).toEqual(
      magnitudes(model).map((m) => [
        m.layerName === 'conv' ? 'block/conv' : m.layerName,
        m.granularity,
        m.groups,
      ]),
    );
    expectSameOutputs(model, flat, 8);
    flat.dispose();
    model.dispose();
  });

  it('keeps a block frozen as a whole (the transfer-learning idiom) frozen, and a frozen layer of a block', () => {
    const model = convBlockInSeq();
    (model.layers[0] as tfl.LayersModel).trainable = false;
    const flat = unnest(model);
    const trainable = (m: tfl.LayersModel): string[] => m.trainableWeights.map((w) => w.originalName).sort();
    expect(trainable(flat)).toEqual(['out/bias', 'out/kernel']);
    expect(trainable(model)).toEqual(['out/bias', 'out/kernel']);
    flat.dispose();
    const two = twoLevels();
    ((two.getLayer('res') as tfl.LayersModel).getLayer('inner') as tfl.LayersModel).getLayer('fc').trainable =
      false;
    const flatTwo = unnest(two);
    expect(trainable(flatTwo)).toEqual(['fc/bias', 'fc/kernel']);
    expect(flatTwo.getLayer('res/inner/fc').trainable).toBe(false);
    flatTwo.dispose();
  });

  it('keeps a model frozen as a whole frozen', () => {
    // The model's flag is not in its config: the copy came back trainable, and so did the model
    // surgery's prune rebuilds from it, every weight of it.
    const model = convBlockInSeq();
    model.trainable = false;
    const flat = unnest(model);
    expect(flat.trainable).toBe(false);
    expect(flat.trainableWeights).toEqual([]);
    flat.dispose();
  });

  it('copies a model without nested models, and its metadata', () => {
    const model = randomize(
      tfl.sequential({ layers: [tfl.layers.dense({ inputShape: [3], units: 2, name: 'd' })] }),
      1,
    );
    model.setUserDefinedMetadata({ labels: ['a', 'b'] });
    const flat = unnest(model);
    expect(flat).not.toBe(model);
    expect(flat.getUserDefinedMetadata()).toEqual({ labels: ['a', 'b'] });
    expectSameOutputs(model, flat, 2);
  });

  it('leaves out the layers of a block output that nothing reads, and disposes all it built', async () => {
    // Output 'q' of the block is unused: tfjs would build its layer and leave it out of the copy.
    const a = tfl.input({ shape: [3] });
    const p = tfl.layers.dense({ units: 4, name: 'p' }).apply(a) as tfl.SymbolicTensor;
    const q = tfl.layers.dense({ units: 2, name: 'q' }).apply(a) as tfl.SymbolicTensor;
    const block = tfl.model({ inputs: a, outputs: [p, q], name: 'pair' });
    const x = tfl.input({ shape: [3] });
    const [u] = block.apply(x) as tfl.SymbolicTensor[];
    const model = randomize(
      tfl.model({
        inputs: x,
        outputs: tfl.layers.dense({ units: 1, name: 'h' }).apply(u) as tfl.SymbolicTensor,
      }),
      4,
    );
    await expectNoLeak(() => {
      const flat = unnest(model);
      expect(flat.layers.map((l) => l.name).slice(1)).toEqual(['pair/p', 'h']);
      expectSameOutputs(model, flat, 3);
      flat.dispose();
    });
    model.dispose();
  });

  it('keeps a layer shared inside a block shared, the same floats out', () => {
    const shared = tfl.layers.dense({ units: 4, activation: 'tanh', name: 'sh' });
    const bx = tfl.input({ shape: [4] });
    const block = tfl.model({
      inputs: bx,
      outputs: shared.apply(shared.apply(bx)) as tfl.SymbolicTensor,
      name: 'blk',
    });
    const x = tfl.input({ shape: [4] });
    const model = randomize(tfl.model({ inputs: x, outputs: block.apply(x) as tfl.SymbolicTensor }), 5);
    const flat = unnest(model);
    expect(flat.getLayer('blk/sh').inboundNodes.length).toBe(2);
    expectSameOutputs(model, flat, 6);
    flat.dispose();
    model.dispose();
  });

  it('freezes the layers of a block frozen whole in their config too, so that a saved copy keeps them frozen', async () => {
    const model = convBlockInSeq();
    (model.layers[0] as tfl.LayersModel).trainable = false;
    const flat = unnest(model);
    expect(flat.getLayer('block/conv').getConfig().trainable).toBe(false);
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(await saveInMemory(flat)));
    expect(loaded.trainableWeights.map((w) => w.originalName).sort()).toEqual(['out/bias', 'out/kernel']);
    tf.dispose([model, flat, loaded].flatMap((m) => m.weights.map((w) => w.read())));
  });

  it('refuses a block applied twice, naming it', () => {
    const block = tfl.sequential({
      name: 'tower',
      layers: [tfl.layers.dense({ inputShape: [4], units: 3, name: 'fc' })],
    });
    const a = tfl.input({ shape: [4] });
    const b = tfl.input({ shape: [4] });
    const sum = tfl.layers.add().apply([block.apply(a), block.apply(b)] as tfl.SymbolicTensor[]);
    const model = tfl.model({ inputs: [a, b], outputs: sum as tfl.SymbolicTensor });
    expect(() => unnest(model)).toThrow(
      "unnest: nested model 'tower' (a Sequential used as a layer) is applied 2 times, so its weights are shared",
    );
    // Applied to its own output: the second call reads the block itself.
    const square = tfl.sequential({
      name: 'square',
      layers: [tfl.layers.dense({ inputShape: [4], units: 4, name: 'fc' })],
    });
    const x = tfl.input({ shape: [4] });
    const chained = tfl.model({
      inputs: x,
      outputs: tfl.layers.dense({ units: 2 }).apply(square.apply(square.apply(x))) as tfl.SymbolicTensor,
    });
    expect(() => unnest(chained)).toThrow(
      "unnest: nested model 'square' (a Sequential used as a layer) is applied 2 times, so its weights are shared",
    );
  });

  it('refuses a layer both inside a block and applied around it, and a name equal to a path', () => {
    const fc = tfl.layers.dense({ units: 4, name: 'fc' });
    const bx = tfl.input({ shape: [4] });
    const block = tfl.model({ inputs: bx, outputs: fc.apply(bx) as tfl.SymbolicTensor, name: 'inner' });
    const x = tfl.input({ shape: [4] });
    const twice = tfl.model({ inputs: x, outputs: fc.apply(block.apply(x)) as tfl.SymbolicTensor });
    expect(() => unnest(twice)).toThrow(
      "unnest: layer 'fc' is at 'inner/fc' and 'fc': one layer inside a nested model and applied around it too",
    );
    const inner = tfl.sequential({
      name: 'blk',
      layers: [tfl.layers.dense({ inputShape: [4], units: 4, name: 'd' })],
    });
    const y = tfl.input({ shape: [4] });
    const clash = tfl.model({
      inputs: y,
      outputs: tfl.layers.dense({ units: 2, name: 'blk/d' }).apply(inner.apply(y)) as tfl.SymbolicTensor,
    });
    expect(() => unnest(clash)).toThrow("unnest: two layers of model '" + clash.name + "' go by 'blk/d'");
  });

  it('refuses what is not a model, and a model without layers', () => {
    expect(() => unnest(tfl.layers.dense({ units: 2 }) as unknown as tfl.LayersModel)).toThrow(
      'unnest: expected a tfjs LayersModel',
    );
    expect(() => unnest(tfl.sequential())).toThrow('has no layers yet');
  });

  it('hasNested and layerPaths refuse what is not a model, as unnest does', () => {
    // Before: "Cannot read properties of undefined (reading 'layers')", and "(reading 'some')" for {}.
    expect(() => hasNested(undefined as never)).toThrow(
      'hasNested: expected a tfjs LayersModel, got undefined',
    );
    expect(() => layerPaths({} as never)).toThrow(
      'layerPaths: expected a tfjs LayersModel, got an object (Object)',
    );
    expect(() => layerPaths(tfl.layers.dense({ units: 2 }) as never)).toThrow(
      /layerPaths: expected a tfjs LayersModel, got an object \(Dense\) \(a single layer: wrap it/,
    );
    expect(hasNested(tfl.sequential())).toBe(false);
    expect(layerPaths(tfl.sequential())).toEqual([]);
  });
});
