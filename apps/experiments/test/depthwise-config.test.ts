// A config's depthwiseConv2d layers (MobileNet-style depthwise-separable blocks): the schema and
// its defaults, the refusals naming field and allowed values, a tiny run end to end whose export
// plain tfjs loads, and prune.keepFilters on a depthwise layer (its input channels).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { decompose, magnitudes } from '@normprune/layers';
import { fileSystem } from '@normprune/runtime';
import {
  applyBudget,
  decomposedLayers,
  layerNames,
  listExperiments,
  loadExperiment,
  parseBudget,
  parseConfig,
} from '../src/index';
import { pruneMagnitudes } from '../src/model';
import { cli, loadInPlainTfjs, tinyWasm } from './helpers';

let tmp: string;
beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'normprune-depthwise-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/**
 * The README's tiny MobileNet-like net on MNIST: a strided 3x3 conv, a depthwise-separable block
 * (3x3 depthwise with batch normalisation, then a 1x1 conv), pooling and the logits. Only the
 * depthwise layer is decomposed, so lambda acts on its channels alone.
 */
const mobileNet = (): any => ({
  extends: 'lenet-5',
  name: 'tiny-mobilenet',
  description: 'A tiny MobileNet-style net on MNIST: a depthwise-separable block after a strided conv.',
  model: {
    layers: [
      { type: 'conv2d', filters: 8, kernelSize: 3, strides: 2, name: 'conv1' },
      { type: 'depthwiseConv2d', kernelSize: 3, batchNorm: true, name: 'dw1' },
      { type: 'conv2d', filters: 16, kernelSize: 1, name: 'pw1' },
      { type: 'maxPool2d', poolSize: 2 },
      { type: 'flatten' },
      { type: 'dense', units: 10, activation: 'linear', name: 'logits' },
    ],
  },
  decompose: { dense: null, conv2d: null, depthwiseConv2d: 'kernel', exclude: [] },
  training: { proximal: { optimizer: 'sgd', momentum: 0, learningRate: 0.1, lambda: 4.5 } },
  thesis: null,
  target: null,
  sweep: null,
});

test("the README's MobileNet-style example is this test's config", () => {
  const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### A MobileNet-style config'));
  const json = /```json\n([\s\S]*?)\n```/.exec(section)?.[1];
  expect(JSON.parse(json ?? 'null')).toEqual(mobileNet());
});

/** Writes `cfg` to DIR/<file>; returns its path. */
const write = (file: string, cfg: unknown): string => {
  const path = join(tmp, file);
  writeFileSync(path, JSON.stringify(cfg, null, 2));
  return path;
};

/** The mobileNet config with its depthwise layer's spec changed by `edit`. */
const withDepthwise = (edit: (spec: any) => void): any => {
  const cfg = mobileNet();
  edit(cfg.model.layers[1]);
  return cfg;
};

test('a depthwiseConv2d layer parses with its defaults, is named dwconv1 unnamed, and is decomposed at kernel unless decompose says otherwise', () => {
  const cfg = parseConfig(mobileNet());
  const plain = withDepthwise((s) => {
    delete s.batchNorm;
    delete s.name;
  });
  const parsed = parseConfig(plain);
  expect(parsed.model.layers[1]).toEqual({
    type: 'depthwiseConv2d',
    kernelSize: 3,
    strides: 1,
    padding: 'same',
    depthMultiplier: 1,
    activation: 'relu',
    batchNorm: false,
  });
  expect(layerNames(parsed.model.layers).flat()).toEqual([
    'conv1',
    'dwconv1',
    'pw1',
    'pool1',
    'flatten',
    'logits',
  ]);
  // With batchNorm, as a conv2d: the BatchNormalization and the activation layers follow it.
  expect(layerNames(cfg.model.layers)[1]).toEqual(['dw1', 'dw1_bn', 'dw1_act']);
  expect(decomposedLayers(cfg)).toEqual(['dw1']);
  // decompose.depthwiseConv2d unset decomposes at 'kernel'; null leaves the layer plain.
  const unset = mobileNet();
  delete unset.decompose.depthwiseConv2d;
  expect(parseConfig(unset).decompose.depthwiseConv2d).toBeUndefined();
  expect(decomposedLayers(parseConfig(unset))).toEqual(['dw1']);
  unset.decompose.depthwiseConv2d = null;
  unset.training.proximal.lambda = 0;
  expect(decomposedLayers(parseConfig(unset))).toEqual([]);
  // The shipped configs, which have no depthwise layer, parse without the field (so their runs'
  // config hashes are what they were before the layer type came).
  for (const name of listExperiments())
    expect(loadExperiment(name).decompose).not.toHaveProperty('depthwiseConv2d');
});

test('the width multiplier scales the conv2d layers around a depthwise layer and leaves it, which has no filters, as written', () => {
  const cfg = parseConfig(mobileNet());
  const narrow = applyBudget(cfg, parseBudget('tiny,widthMultiplier=0.5', cfg).budget);
  expect(narrow.model.layers.map((l) => ('filters' in l ? l.filters : l.type))).toEqual([
    4,
    'depthwiseConv2d',
    8,
    'maxPool2d',
    'flatten',
    'dense',
  ]);
  expect(narrow.model.layers[1]).toEqual(cfg.model.layers[1]);
});

test('train --config refuses a bad depthwiseConv2d field or granularity, naming the field and what it allows (exit 2)', async () => {
  const refused = async (cfg: unknown, message: RegExp) => {
    const r = await cli(['train', '--config', write('bad.json', cfg), ...tinyWasm(join(tmp, 'never'))]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
  };
  await refused(
    withDepthwise((s) => (s.depthMultiplier = 0)),
    /model\.layers\.1\.depthMultiplier: must be > 0, got 0/,
  );
  await refused(
    withDepthwise((s) => (s.padding = 'causal')),
    /model\.layers\.1\.padding: got "causal", allowed: "same", "valid"/,
  );
  await refused(
    withDepthwise((s) => (s.activation = 'relu6')),
    /model\.layers\.1\.activation: got "relu6", allowed: "relu", "linear", "tanh", "sigmoid"/,
  );
  // No filters: its channels follow its input.
  await refused(
    withDepthwise((s) => (s.filters = 8)),
    /model\.layers\.1: unknown field\(s\) "filters"; the fields here: type, kernelSize, strides, padding, depthMultiplier, activation, batchNorm, name/,
  );
  await refused(
    withDepthwise((s) => (s.type = 'depthwise')),
    /model\.layers\.1\.type: got "depthwise"; allowed: "dense", "conv2d", "depthwiseConv2d", "maxPool2d", "flatten"/,
  );
  const granularity = mobileNet();
  granularity.decompose.depthwiseConv2d = 'output';
  await refused(granularity, /decompose\.depthwiseConv2d: got "output", allowed: "kernel", "filter"/);
  const afterFlatten = mobileNet();
  afterFlatten.model.layers.splice(5, 0, { type: 'depthwiseConv2d', kernelSize: 3 });
  await refused(afterFlatten, /model\.layers\[5\]: a depthwiseConv2d layer cannot follow "flatten"/);
  // Left plain, with lambda above 0, nothing is decomposed: the message names the depthwise layers.
  const plain = mobileNet();
  plain.decompose.depthwiseConv2d = null;
  await refused(
    plain,
    /decompose: no layer is decomposed \(decompose\.dense is null; decompose\.conv2d is null; decompose\.depthwiseConv2d is null\).*set decompose\.dense, decompose\.conv2d or decompose\.depthwiseConv2d/,
  );
  const excluded = mobileNet();
  excluded.decompose.exclude = ['dw2'];
  await refused(
    excluded,
    /decompose\.exclude: no dense, conv2d or depthwiseConv2d layer named "dw2"; layers: conv1, dw1, pw1, logits/,
  );
});

test('prune.keepFilters on a depthwise layer of granularity kernel is accepted; at filter or plain it is refused, saying why', async () => {
  const keep = (decompose: string | null) => {
    const cfg = mobileNet();
    cfg.decompose.depthwiseConv2d = decompose;
    cfg.decompose.conv2d = 'kernel';
    cfg.prune = { keepFilters: { dw1: 3 } };
    return cfg;
  };
  expect(parseConfig(keep('kernel')).prune.keepFilters).toEqual({ dw1: 3 });
  expect(() => parseConfig(keep('filter'), 'x.json')).toThrow(
    /prune\.keepFilters: no decomposed conv2d or depthwiseConv2d layer of granularity 'kernel' named "dw1"; such layers: conv1, pw1; under 'filter' a layer's groups are its filters \(a depthwiseConv2d layer's, its input channels\): give the count in prune\.keep/,
  );
  const plain = keep(null);
  plain.decompose.conv2d = null;
  plain.training.proximal.lambda = 0;
  expect(() => parseConfig(plain, 'x.json')).toThrow(
    /prune\.keepFilters: no decomposed conv2d or depthwiseConv2d layer of granularity 'kernel' named "dw1"; such layers: \(none; decompose\.conv2d is null, decompose\.depthwiseConv2d is null\)/,
  );
  expect(() => parseConfig({ ...keep('kernel'), prune: { keepFilters: { dw1: 0 } } })).toThrow(
    /prune\.keepFilters\.dw1: 0 would remove the whole layer/,
  );
});

/** The exported model's depthwise layer `name`: its class and depthwise kernel shape, loaded by tfjs. */
async function exportedDepthwise(
  dir: string,
  name: string,
): Promise<{ className: string; kernel: number[] }> {
  const model = await tfl.loadLayersModel(fileSystem(dir));
  const layer = model.getLayer(name);
  const out = { className: layer.getClassName(), kernel: layer.getWeights()[0].shape };
  model.dispose();
  return out;
}

test('a tiny MobileNet-like run trains, prunes the depthwise channels lambda kills, reports them, and exports a model plain tfjs loads', async () => {
  const out = join(tmp, 'run');
  // Lambda 4.5 at lr 0.1 shrinks each magnitude by 0.9 over tiny's two proximal steps, about
  // the size of a fresh 3x3 kernel's norm: some of the 8 channels die, not all (seed 1 on wasm).
  const r = await cli([
    'train',
    '--config',
    write('tiny-mobilenet.json', mobileNet()),
    ...tinyWasm(out),
    '--seed',
    '1',
  ]);
  expect(r.err).not.toMatch(/normprune: error/);
  expect(r.code).toBe(0);
  const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  expect(results.backend.tfBackend).toBe('wasm');
  const [group] = results.groups;
  expect(group).toMatchObject({ layer: 'dw1', granularity: 'kernel', groups: 8 });
  expect(group.live).toBeGreaterThan(0);
  expect(group.live).toBeLessThan(8);
  const layer = (side: string, name: string) =>
    results[side].layers.find((l: { name: string }) => l.name === name);
  expect(layer('baseline', 'dw1')).toMatchObject({ className: 'DepthwiseConv2D', units: 8 });
  // Its surviving channels, and the filters of conv1 that fed only the dead ones, removed with them.
  expect(layer('compressed', 'dw1').units).toBe(group.live);
  expect(layer('compressed', 'conv1').units).toBe(group.live);
  const report = readFileSync(join(out, 'report.md'), 'utf8');
  expect(report).toMatch(
    new RegExp(`\\| dw1 +\\| 8 +\\| ${group.live} +\\| ${group.live}/8 \\(kernel\\) +\\|`),
  );
  // The export: plain tfjs loads it (no normprune class in it) and predicts 10 logits.
  const dir = join(out, 'model');
  const topology = readFileSync(join(dir, 'model.json'), 'utf8');
  expect(topology).not.toMatch(/Decomposed/);
  expect(loadInPlainTfjs([dir])[0].shape).toEqual([2, 10]);
  expect(await exportedDepthwise(dir, 'dw1')).toEqual({
    className: 'DepthwiseConv2D',
    kernel: [3, 3, group.live, 1],
  });
});

test('prune.keepFilters keeps that many input channels of a depthwise layer, and the export has them', async () => {
  const out = join(tmp, 'keep');
  const cfg = mobileNet();
  // No penalty: every magnitude stays above 0, so exactly the kept channels survive.
  cfg.training.proximal.lambda = 0;
  cfg.decompose.conv2d = 'kernel';
  cfg.prune = { keepFilters: { dw1: 3 } };
  const r = await cli(['train', '--config', write('keep.json', cfg), ...tinyWasm(out), '--seed', '1']);
  expect(r.err).not.toMatch(/normprune: error/);
  expect(r.code).toBe(0);
  const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  expect(results.groups.find((g: { layer: string }) => g.layer === 'dw1')).toMatchObject({
    groups: 8,
    live: 3,
  });
  expect(await exportedDepthwise(join(out, 'model'), 'dw1')).toEqual({
    className: 'DepthwiseConv2D',
    kernel: [3, 3, 3, 1],
  });
  expect(loadInPlainTfjs([join(out, 'model')])[0].shape).toEqual([2, 10]);
});

test('keepFilters drops the kernels reading channels a depthwise layer leaves dead (through batch normalisation and its activation), and those of a depthwise layer on channels the conv before it leaves dead', () => {
  const build = () =>
    tfl.sequential({
      layers: [
        tfl.layers.conv2d({ inputShape: [6, 6, 1], filters: 4, kernelSize: 3, name: 'c1' }),
        tfl.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'same', name: 'dw' }),
        tfl.layers.batchNormalization({ name: 'dw_bn' }),
        tfl.layers.activation({ activation: 'relu', name: 'dw_act' }),
        tfl.layers.conv2d({ filters: 3, kernelSize: 1, name: 'pw' }),
        tfl.layers.flatten(),
        tfl.layers.dense({ units: 2, name: 'd1' }),
      ],
    });
  const liveRows = (m: tf.Variable) => (m.arraySync() as number[][]).map((row) => row.some((v) => v !== 0));
  const plain = build();
  for (const [granularity, dwMagnitude, live] of [
    // Output channel c * 2 + m reads kernel [c, m].
    [
      'kernel',
      tf.tensor2d([
        [1, 0],
        [0, 0],
        [2, 3],
        [0, 4],
      ]),
      [true, false, false, false, true, true, false, true],
    ],
    // At 'filter' a channel's magnitude is its input channel's.
    ['filter', tf.tensor1d([1, 0, 2, 0]), [true, true, false, false, true, true, false, false]],
  ] as const) {
    const model = decompose(plain, { granularity: { conv2d: 'kernel', depthwiseConv2d: granularity } });
    const [c1, dw, pw] = magnitudes(model);
    dw.magnitude.assign(dwMagnitude);
    pruneMagnitudes(model, { threshold: 0, keepFilters: { pw: 3 } });
    expect(liveRows(pw.magnitude)).toEqual(live);
    if (granularity === 'kernel') {
      // And a depthwise target: its input channels the 'kernel' conv before it leaves dead.
      c1.magnitude.assign(tf.tensor2d([[1, 0, 2, 3]]));
      dw.magnitude.assign(tf.ones([4, 2]));
      pruneMagnitudes(model, { threshold: 0, keepFilters: { dw: 4 } });
      expect(liveRows(dw.magnitude)).toEqual([true, false, true, true]);
      // At most that many input channels survive, those of largest norm.
      dw.magnitude.assign(
        tf.tensor2d([
          [1, 1],
          [5, 0],
          [2, 2],
          [0, 3],
        ]),
      );
      c1.magnitude.assign(tf.ones([1, 4]));
      pruneMagnitudes(model, { threshold: 0, keepFilters: { dw: 2 } });
      expect(liveRows(dw.magnitude)).toEqual([false, true, false, true]);
    }
    dwMagnitude.dispose();
    model.dispose();
  }
  plain.dispose();
});
