import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as layers from '@normprune/layers';
import { decompose, fold } from '@normprune/layers';
import { analyze, exportModel, kernelMask, prune } from '../src/index';
import {
  editWeight,
  fillAll,
  lenet5,
  mlp,
  outputDiff,
  randomizeBatchNorm,
  rng,
  unitsOf,
  vggBn,
} from './helpers';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function expectSame(a: tfl.LayersModel, b: tfl.LayersModel): void {
  const { abs, scale } = outputDiff(a, b);
  expect(scale).toBeGreaterThan(0);
  expect(abs).toBeLessThanOrEqual(1e-5 * Math.max(1, scale));
}

/** Zeroes magnitude entries: `pred(index)` over the flattened magnitude. */
function zeroMagnitudes(
  m: tfl.LayersModel,
  layer: string,
  pred: (q: number, shape: number[]) => boolean,
): void {
  editWeight(m, layer, 'magnitude', (v, shape) => v.forEach((_, q) => pred(q, shape) && (v[q] = 0)));
}

describe('prune on decomposed models', () => {
  it("MLP, granularity 'output': zero magnitudes remove neurons; outputs equal the decomposed model's", () => {
    const base = mlp();
    const r = rng(1);
    fillAll(base, 'bias', () => r() - 0.3);
    const m = decompose(base);
    zeroMagnitudes(m, 'd1', (q) => [2, 4, 9, 10].includes(q));
    zeroMagnitudes(m, 'd2', (q) => q === 0);
    const { model, report } = prune(m);
    expectSame(m, model);
    expect(model.layers.map((l) => l.getClassName())).toEqual(['Dense', 'Dense', 'Dense']);
    expect([unitsOf(model, 'd1'), unitsOf(model, 'd2')]).toEqual([12, 11]);
    expect(report.paramsBefore).toBe(analyze(fold(m)).total.params);
    expect(analyze(m).total).toEqual(analyze(fold(m)).total);
  });

  it("LeNet-5, conv granularity 'kernel': dead 2-D kernels stay zeros, a filter with all kernels dead goes", () => {
    const m = decompose(lenet5(true), { granularity: { conv2d: 'kernel', dense: 'output' } });
    const r = rng(4);
    fillAll(m, 'bias', () => r() - 0.5);
    // conv2 magnitude [cin=4, cout=8]: kill 2-D kernels where (i + o) % 3 == 0, and all of filter 5.
    zeroMagnitudes(
      m,
      'conv2',
      (q, [, cout]) => (Math.floor(q / cout) + (q % cout)) % 3 === 0 || q % cout === 5,
    );
    zeroMagnitudes(m, 'fc1', (q) => q % 4 === 1);
    const { model, report } = prune(m);
    expectSame(m, model);
    expect(unitsOf(model, 'conv2')).toBe(7);
    expect(unitsOf(model, 'fc1')).toBe(18);
    const conv2 = report.layersAfter.find((l) => l.name === 'conv2')!;
    const deadKernels = [0, 1, 2, 3].flatMap((i) =>
      [0, 1, 2, 3, 4, 6, 7].filter((o) => (i + o) % 3 === 0),
    ).length;
    expect(conv2.groups.find((g) => g.kind === 'kernel')).toEqual({
      kind: 'kernel',
      total: 28,
      dead: deadKernels,
    });
    expect(conv2.zeroGroupParams).toBe(25 * deadKernels);
  });

  it("VGG-style with BatchNormalization, conv granularity 'filter'", () => {
    const m = decompose(vggBn(), { granularity: { conv2d: 'filter' } });
    randomizeBatchNorm(m, 5);
    zeroMagnitudes(m, 'c2', (q) => q === 1 || q === 6);
    zeroMagnitudes(m, 'c4', (q) => q % 3 === 0);
    zeroMagnitudes(m, 'fc1', (q) => q < 4);
    const { model, report } = prune(m);
    expectSame(m, model);
    expect(unitsOf(model, 'c4')).toBe(8);
    expect(unitsOf(model, 'fc1')).toBe(12);
    // c2's dead filters feed c3 through BN + relu with 'same' padding: removed if their constant is 0, else kept and reported.
    const c2 = report.layers.find((l) => l.name === 'c2')!;
    expect(c2.removed.length + c2.keptConstant.length).toBe(2);
    expect(report.warnings.length).toBe(c2.keptConstant.length);
  });

  it("Dense granularity 'input': dead inputs of the first layer stay zero rows, dead rows further on remove the producer's unit", () => {
    const m = decompose(mlp(), { granularity: { dense: 'input' } });
    zeroMagnitudes(m, 'd1', (q) => q < 3); // model inputs 0..2: ignored, but the input shape stays
    zeroMagnitudes(m, 'd2', (q) => q === 7 || q === 8); // d1 units 7, 8 unused
    const { model, report } = prune(m);
    expectSame(m, model);
    expect(unitsOf(model, 'd1')).toBe(14);
    const d1 = report.layersAfter.find((l) => l.name === 'd1')!;
    expect(d1.groups.find((g) => g.kind === 'input')).toEqual({ kind: 'input', total: 20, dead: 3 });
    expect(d1.zeroGroupParams).toBe(3 * 14);
  });

  it('exports a decomposed model as plain layers', async () => {
    const m = decompose(mlp());
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-surgery-dec-'));
    try {
      await exportModel(m, dir);
      const json = fs.readFileSync(path.join(dir, 'model.json'), 'utf8');
      expect(json).not.toMatch(/Decomposed/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a decomposed layer inside a wrapper, which fold cannot make plain, naming the wrapper', async () => {
    // Built by hand: decompose() leaves a wrapped Dense plain. prune with unknownLayers 'keep' kept
    // the TimeDistributed whole and returned it holding a DecomposedDense, and exportModel wrote
    // one into model.json, which plain tfjs cannot load.
    const m = tfl.sequential({
      layers: [
        tfl.layers.dense({ inputShape: [4, 6], units: 8, activation: 'relu', name: 'fc1' }),
        tfl.layers.timeDistributed({
          layer: layers.decomposedDense({ units: 5, name: 'inner' }),
          name: 'td',
        }),
        tfl.layers.flatten(),
        tfl.layers.dense({ units: 3, name: 'out' }),
      ],
    });
    const wraps = /layer 'td' \(TimeDistributed\) wraps the decomposed layer 'inner' \(DecomposedDense\)/;
    const before = tf.memory().numTensors;
    expect(() => prune(m, { unknownLayers: 'keep' })).toThrow(wraps);
    expect(() => prune(m)).toThrow(wraps);
    expect(() => analyze(m)).toThrow(wraps);
    expect(() => kernelMask(m)).toThrow(
      /^kernelMask: layer 'td' \(TimeDistributed\) wraps the decomposed layer 'inner'/,
    );
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-surgery-wrapped-'));
    try {
      await expect(exportModel(m, path.join(dir, 'm'))).rejects.toThrow(wraps);
      expect(fs.existsSync(path.join(dir, 'm'))).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    expect(tf.memory().numTensors).toBe(before);
    m.dispose();
  });
});

/** A second copy of @normprune/layers (as the ESM and CommonJS builds are), sharing this copy's TensorFlow.js. */
function otherLayersCopy(): typeof layers {
  let copy: typeof layers | undefined;
  jest.isolateModules(() => {
    jest.doMock('@tensorflow/tfjs-core', () => tf);
    jest.doMock('@tensorflow/tfjs-layers', () => tfl);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    copy = require('@normprune/layers') as typeof layers;
  });
  return copy!;
}

describe('decomposed layers from another copy of @normprune/layers', () => {
  it.each([
    ['output', 'kernel'],
    ['input', 'filter'],
  ] as const)('analyze, prune and exportModel fold them (dense %s, conv2d %s)', async (dense, conv2d) => {
    const other = otherLayersCopy();
    expect(other.DecomposedDense).not.toBe(layers.DecomposedDense);
    const m = other.decompose(lenet5(true), { granularity: { dense, conv2d } });
    expect(m.getLayer('fc1')).not.toBeInstanceOf(layers.DecomposedDense);
    zeroMagnitudes(m, 'conv2', (q) => q % 3 === 0);
    zeroMagnitudes(m, 'fc1', (q) => q % 2 === 0);
    const { model } = prune(m);
    expectSame(m, model);
    expect(model.layers.map((l) => l.getClassName())).not.toContain('DecomposedDense');
    expect(analyze(m).total).toEqual(analyze(other.fold(m)).total);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-surgery-copy-'));
    try {
      await exportModel(m, dir);
      expect(fs.readFileSync(path.join(dir, 'model.json'), 'utf8')).not.toMatch(/Decomposed/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
