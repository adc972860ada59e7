// countModel: the parameters, non-zeros and MACs the report prints. They come from surgery's
// analyze; these tests hold them against counts taken here from the weights themselves, on
// every shipped experiment's model and on layers the shipped models lack.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '@normprune/runtime';
import { decompose } from '@normprune/layers';
import { analyze } from '@normprune/surgery';
import { applyBudget, listExperiments, loadExperiment } from '../src/config';
import { countModel } from '../src/measure';
import { buildModel } from '../src/model';

beforeAll(async () => {
  await initBackend({ prefer: 'cpu', quiet: true });
});

const SHAPES: Record<string, [number, number, number]> = {
  mnist: [28, 28, 1],
  'fashion-mnist': [28, 28, 1],
  cifar10: [32, 32, 3],
};

/** Zeroes about a third of every weight (and whole Dense columns and Conv2D filters), seeded. */
function sparsify(model: tfl.LayersModel, seed: number): void {
  let s = seed;
  const rand = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (const layer of model.layers) {
    const ws = layer.getWeights();
    if (!ws.length) continue;
    layer.setWeights(
      ws.map((w) => {
        const d = Float32Array.from(w.dataSync());
        const last = w.shape[w.shape.length - 1] ?? 1;
        const deadUnit = (i: number) => w.rank > 1 && (i % last) % 4 === 1;
        for (let i = 0; i < d.length; i++) if (rand() < 0.3 || deadUnit(i)) d[i] = 0;
        return tf.tensor(d, w.shape);
      }),
    );
  }
}

function nonzero(t: tf.Tensor): number {
  return Array.from(t.dataSync()).filter((v) => v !== 0).length;
}

/** The reference: non-zeros per weight, and MACs as non-zero kernel weights times output positions. */
function reference(model: tfl.LayersModel) {
  let params = 0;
  let nonzeros = 0;
  let macs = 0;
  for (const layer of model.layers) {
    layer.getWeights().forEach((w, i) => {
      params += w.size;
      const nz = nonzero(w);
      nonzeros += nz;
      const cls = layer.getClassName();
      const out = layer.outputShape as number[];
      if (i === 0 && cls === 'Dense') macs += nz * out.slice(1, -1).reduce((a, b) => a * b, 1);
      if (i === 0 && (cls === 'Conv2D' || cls === 'DepthwiseConv2D')) macs += nz * out[1] * out[2];
    });
  }
  return { params, nonzeros, macs };
}

describe.each(listExperiments())('%s', (name) => {
  test('countModel agrees with counts taken from the weights, and with analyze', () => {
    // VGG-16 at a quarter of its width: the same layers, a sixteenth of the weights to count.
    const shipped = loadExperiment(name);
    const cfg =
      shipped.dataset.name === 'cifar10' ? applyBudget(shipped, { widthMultiplier: 0.25 }) : shipped;
    const model = buildModel(cfg.model.layers, SHAPES[cfg.dataset.name], 1);
    sparsify(model, 7);
    const before = tf.memory().numTensors;
    const c = countModel(model);
    expect(tf.memory().numTensors).toBe(before);
    const ref = reference(model);
    expect({ params: c.params, nonzeros: c.nonzeros, macs: c.macs }).toEqual(ref);
    expect(ref.nonzeros).toBeLessThan(ref.params);
    const total = analyze(model).total;
    expect([c.params, c.nonzeros, c.macs]).toEqual([total.params, total.nonzeros, total.nonzeroMacs]);
    // Every Dense and Conv2D layer is listed with its units.
    const listed = new Map(c.layers.map((l) => [l.name, l]));
    for (const layer of model.layers) {
      const cfgOf = layer.getConfig() as { units?: number; filters?: number };
      const units = cfgOf.units ?? cfgOf.filters;
      if (units !== undefined) expect(listed.get(layer.name)?.units).toBe(units);
      if (layer.countParams() > 0) expect(listed.get(layer.name)?.params).toBe(layer.countParams());
    }
    model.dispose();
  });
});

test('a decomposed model counts as the plain model it folds into: magnitudes are not parameters', () => {
  const plain = tfl.sequential({
    layers: [
      tfl.layers.conv2d({ inputShape: [9, 7, 2], filters: 4, kernelSize: 3, name: 'conv' }),
      tfl.layers.flatten({ name: 'flat' }),
      tfl.layers.dense({ units: 5, name: 'fc' }),
    ],
  });
  sparsify(plain, 3);
  const expected = countModel(plain);
  const d = decompose(plain, { granularity: { conv2d: 'kernel', dense: 'output' } });
  const c = countModel(d);
  expect({ params: c.params, nonzeros: c.nonzeros, macs: c.macs }).toEqual({
    params: expected.params,
    nonzeros: expected.nonzeros,
    macs: expected.macs,
  });
  expect(c.layers.map((l) => [l.name, l.units])).toEqual([
    ['conv', 4],
    ['fc', 5],
  ]);
  plain.dispose();
  d.dispose();
});

test('layers the shipped models lack: DepthwiseConv2D, rank-3 Dense and a nested model', () => {
  const inner = tfl.sequential({
    name: 'block',
    layers: [tfl.layers.dense({ inputShape: [6, 3], units: 4, name: 'fc' })],
  });
  const input = tfl.input({ shape: [8, 6, 2] });
  const dw = tfl.layers
    .depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'same', strides: 2, name: 'dw' })
    .apply(input) as tfl.SymbolicTensor;
  const pooled = tfl.layers.reshape({ targetShape: [6, 4], name: 'rows' }).apply(dw) as tfl.SymbolicTensor;
  const cut = tfl.layers.dense({ units: 3, name: 'seq' }).apply(pooled) as tfl.SymbolicTensor;
  const out = inner.apply(cut) as tfl.SymbolicTensor;
  const model = tfl.model({ inputs: input, outputs: out });
  sparsify(model, 11);
  sparsify(inner, 13);
  const c = countModel(model);
  const byName = new Map(c.layers.map((l) => [l.name, l]));
  const [dwKernel] = model.getLayer('dw').getWeights();
  const [seqKernel] = model.getLayer('seq').getWeights();
  const [fcKernel] = inner.getLayer('fc').getWeights();
  // DepthwiseConv2D: 4 x 3 output positions; rank-3 Dense: 6 rows.
  expect(byName.get('dw')?.macs).toBe(nonzero(dwKernel) * 4 * 3);
  expect(byName.get('seq')?.macs).toBe(nonzero(seqKernel) * 6);
  // The nested model's layer is listed by its path, with its units.
  expect(byName.get('block/fc')).toMatchObject({ units: 4, macs: nonzero(fcKernel) * 6 });
  expect(byName.has('rows')).toBe(false);
  expect(c.params).toBe(model.countParams());
  model.dispose();
});

test("units per layer: a DepthwiseConv2D's output channels, a Conv1D's and a Conv2DTranspose's filters, plain or decomposed", () => {
  const image = tfl.input({ shape: [6, 6, 3] });
  const dw = tfl.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, name: 'dw' }).apply(image);
  const up = tfl.layers.conv2dTranspose({ filters: 5, kernelSize: 2, name: 'up' }).apply(dw);
  const sequence = tfl.input({ shape: [8, 3] });
  const c1 = tfl.layers.conv1d({ filters: 4, kernelSize: 3, name: 'c1' }).apply(sequence);
  const model = tfl.model({
    inputs: [image, sequence],
    outputs: [up as tfl.SymbolicTensor, c1 as tfl.SymbolicTensor],
  });
  const units = (m: tfl.LayersModel) => countModel(m).layers.map((l) => [l.name, l.units]);
  const expected = [
    ['dw', 6],
    ['up', 5],
    ['c1', 4],
  ];
  expect(units(model)).toEqual(expect.arrayContaining(expected));
  const d = decompose(model);
  expect(units(d)).toEqual(expect.arrayContaining(expected));
  model.dispose();
  d.dispose();
});
