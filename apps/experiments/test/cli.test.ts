// Usage errors and failures: clear messages, the documented exit codes, and
// nothing half-written.
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  applyBudget,
  decomposedLayers,
  isReduced,
  layerNames,
  loadExperiment,
  parseBudget,
  parseConfig,
} from '../src/index';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { decompose, magnitudes } from '@normprune/layers';
import { pruneMagnitudes } from '../src/model';
import { fileSystem } from '@normprune/runtime';
import { cli, clone, experimentCopy, tinyRunArgs, writeVariant } from './helpers';

let tmp: string;
beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'normprune-cli-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

test('--help on every command exits 0 and prints usage', async () => {
  for (const c of ['reproduce', 'train', 'sweep', 'prune', 'eval', 'report', 'list']) {
    const r = await cli([c, '--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Usage: normprune/);
  }
  expect((await cli(['--help'])).code).toBe(0);
  const none = await cli([]);
  expect(none.code).toBe(2);
  // A usage error: the help goes to stderr, stdout stays empty for pipes.
  expect(none.out).toBe('');
  expect(none.err).toMatch(/^normprune: compress TensorFlow.js models/);
});

test('list names every shipped experiment', async () => {
  const r = await cli(['list']);
  expect(r.code).toBe(0);
  expect(r.out).toMatch(/^lenet-500-300 /m);
  expect(r.out).toMatch(/^vgg-16 /m);
});

test('an unknown experiment or command is a usage error listing the known ones', async () => {
  const r = await cli(['reproduce', 'lenet-9000']);
  expect(r.code).toBe(2);
  expect(r.err).toMatch(/unknown experiment "lenet-9000"; known experiments: .*lenet-500-300/);
  const typo = await cli(['reproduce', 'lenet-5-cf']);
  expect(typo.code).toBe(2);
  expect(typo.err).toMatch(
    /unknown experiment "lenet-5-cf" \(did you mean "lenet-5-fc"\?\); known experiments: /,
  );
  // A name cut short or written without hyphens means the shortest experiment it begins, not the
  // nearest by edits (lenet-5 is two edits from lenet500).
  for (const [given, meant] of [
    ['lenet500', 'lenet-500-300'],
    ['LeNet5', 'lenet-5'],
    ['vgg16', 'vgg-16'],
    ['fashion-lenet5fc', 'fashion-lenet-5-fc'],
    ['lenet-500-300-in', 'lenet-500-300-input'],
  ]) {
    const short = await cli(['reproduce', given]);
    expect(short.code).toBe(2);
    expect(short.err).toContain(`unknown experiment "${given}" (did you mean "${meant}"?)`);
  }
  const c = await cli(['frobnicate']);
  expect(c.code).toBe(2);
  expect(c.err).toMatch(/unknown command "frobnicate"/);
});

test('unknown flags and bad flag values are usage errors', async () => {
  expect((await cli(['reproduce', 'lenet-5', '--bogus'])).code).toBe(2);
  const b = await cli(['reproduce', 'lenet-5', '--backend', 'gpu']);
  expect(b.code).toBe(2);
  expect(b.err).toMatch(/--backend: got "gpu", allowed: node, wasm, cpu/);
  const s = await cli(['reproduce', 'lenet-5', '--seed', '-1']);
  expect(s.code).toBe(2);
  const u = await cli(['reproduce', 'lenet-5', '--budget', 'huge']);
  expect(u.code).toBe(2);
  expect(u.err).toMatch(/unknown budget "huge"; allowed: tiny, small, full/);
});

test('config validation names each bad field and its allowed values', async () => {
  const good = experimentCopy('lenet-500-300');
  const bad = {
    ...good,
    dataset: { ...good.dataset, name: 'mnist3' },
    decompose: { ...good.decompose, dense: 'rows' },
    extra: 1,
  };
  const file = join(tmp, 'bad.json');
  writeFileSync(file, JSON.stringify(bad));
  const out = join(tmp, 'never');
  const r = await cli(['train', '--config', file, '--out', out]);
  expect(r.code).toBe(2);
  expect(r.err).toMatch(/dataset\.name: got "mnist3", allowed: "mnist", "fashion-mnist", "cifar10"/);
  expect(r.err).toMatch(/decompose\.dense: got "rows", allowed: "output", "input"/);
  expect(r.err).toMatch(/unknown field\(s\) "extra"/);
  expect(existsSync(out)).toBe(false);
  writeFileSync(file, '{ "name": ');
  const j = await cli(['train', '--config', file]);
  expect(j.code).toBe(2);
  expect(j.err).toMatch(/not valid JSON/);
  expect((await cli(['train', '--config', join(tmp, 'missing.json')])).err).toMatch(/config file not found/);
});

test('layer names, decompose.exclude, the layer order and defaultBudget are checked before anything runs', () => {
  const lenet5 = experimentCopy('lenet-5');
  const unnamed = {
    ...lenet5,
    model: { layers: lenet5.model.layers.map(({ name: _n, ...l }: { name?: string }) => l) },
    decompose: { ...lenet5.decompose, exclude: ['dense2'] },
  };
  // Unnamed layers get the names the model will have: conv1, pool1, ..., dense1, dense2.
  const parsed = parseConfig(unnamed);
  expect(layerNames(parsed.model.layers).flat()).toEqual([
    'conv1',
    'pool1',
    'conv2',
    'pool2',
    'flatten',
    'dense1',
    'dense2',
  ]);
  expect(() =>
    parseConfig({ ...unnamed, decompose: { ...unnamed.decompose, exclude: ['logitz'] } }, 'x.json'),
  ).toThrow(
    /invalid x\.json:\n {2}decompose\.exclude: no dense, conv2d or depthwiseConv2d layer named "logitz"; layers: conv1, conv2, dense1, dense2/,
  );
  const layers = unnamed.model.layers;
  const renamed = [...layers.slice(0, -1), { ...layers[layers.length - 1], name: 'dense1' }];
  expect(() =>
    parseConfig({ ...unnamed, model: { layers: renamed }, decompose: { ...unnamed.decompose, exclude: [] } }),
  ).toThrow(/model\.layers: duplicate layer name "dense1"/);
  // A name tfjs would refuse at build time is refused before any training, naming the rule.
  for (const bad of ['dense 1', 'fc|1', '<b>', '_x', 'block/fc', ''])
    expect(() =>
      parseConfig({
        ...unnamed,
        model: { layers: [...layers.slice(0, -1), { ...layers[layers.length - 1], name: bad }] },
      }),
    ).toThrow(/model\.layers\.6\.name: .*a letter or digit, then letters, digits, "\.", "_" or "-"/);
  const noFlatten = layers.filter((l: { type: string }) => l.type !== 'flatten');
  expect(() => parseConfig({ ...unnamed, model: { layers: noFlatten } })).toThrow(
    /model\.layers\[4\]: a dense layer needs a "flatten" layer before it/,
  );
  const convAfterFlatten = [...layers.slice(0, 5), layers[0], ...layers.slice(5)];
  expect(() => parseConfig({ ...unnamed, model: { layers: convAfterFlatten } })).toThrow(
    /model\.layers\[5\]: a conv2d layer cannot follow "flatten"/,
  );
  expect(() => parseConfig({ ...unnamed, defaultBudget: 'nosuch' })).toThrow(
    /defaultBudget: unknown budget "nosuch"/,
  );
  expect(() =>
    parseConfig({
      ...unnamed,
      training: { ...unnamed.training, proximal: { ...unnamed.training.proximal, lambda: Infinity } },
    }),
  ).toThrow(/training\.proximal\.lambda: expected a finite number, got Infinity/);
});

test('proximal.layerMultipliers and distill are checked against the model and their ranges', () => {
  const good = experimentCopy('lenet-500-300');
  const withProximal = (extra: object) => ({
    ...good,
    training: { ...good.training, proximal: { ...good.training.proximal, ...extra } },
  });
  expect(() => parseConfig(withProximal({ layerMultipliers: { dense9: 2 } }), 'x.json')).toThrow(
    /training\.proximal\.layerMultipliers: no dense, conv2d or depthwiseConv2d layer named "dense9"; layers: dense1, dense2, logits/,
  );
  expect(() => parseConfig(withProximal({ layerMultipliers: { dense1: -1 } }))).toThrow(
    /training\.proximal\.layerMultipliers\.dense1/,
  );
  expect(() => parseConfig(withProximal({ distill: { weight: 1.5 } }))).toThrow(
    /training\.proximal\.distill\.weight/,
  );
  expect(() => parseConfig(withProximal({ distill: { weight: 0.5, temperature: 0 } }))).toThrow(
    /training\.proximal\.distill\.temperature/,
  );
  const ok = parseConfig(withProximal({ layerMultipliers: { dense2: 0.5 }, distill: { weight: 0.5 } }));
  expect(ok.training.proximal.layerMultipliers).toEqual({ dense2: 0.5 });
  expect(ok.training.proximal.distill).toEqual({ weight: 0.5, temperature: 4 });
});

test('dataset.augment: a boolean or {padding, flip}, with ranges checked', () => {
  const good = experimentCopy('lenet-500-300');
  const withAugment = (augment: unknown) => ({ ...good, dataset: { ...good.dataset, augment } });
  expect(parseConfig(good).dataset.augment).toEqual({ padding: 1, flip: false });
  expect(parseConfig(withAugment(undefined)).dataset.augment).toBe(false);
  expect(parseConfig(withAugment(true)).dataset.augment).toBe(true);
  expect(parseConfig(withAugment({ padding: 2, flip: false })).dataset.augment).toEqual({
    padding: 2,
    flip: false,
  });
  expect(parseConfig(withAugment({ padding: 1 })).dataset.augment).toEqual({ padding: 1, flip: true });
  expect(() => parseConfig(withAugment({ padding: -1 }))).toThrow(/dataset\.augment/);
  expect(() => parseConfig(withAugment({ padding: 1.5 }))).toThrow(/dataset\.augment/);
  expect(() => parseConfig(withAugment({ shift: 2 }))).toThrow(/dataset\.augment/);
  expect(() => parseConfig(withAugment('yes'))).toThrow(
    /dataset\.augment: got "yes"; expected true, false or \{"padding": 0\.\.16, "flip": true\|false\}/,
  );
});

test('a bad layer type or lambda schedule names the bad value and the allowed ones', () => {
  const good = experimentCopy('lenet-500-300');
  expect(() =>
    parseConfig({ ...good, model: { layers: [{ type: 'conv3d' }, { type: 'dense', units: 3 }] } }),
  ).toThrow(
    /model\.layers\.0\.type: got "conv3d"; allowed: "dense", "conv2d", "depthwiseConv2d", "maxPool2d", "flatten"/,
  );
  const schedule = (s: object) => ({
    ...good,
    training: { ...good.training, proximal: { ...good.training.proximal, schedule: s } },
  });
  expect(() => parseConfig(schedule({ type: 'cosine' }))).toThrow(
    /training\.proximal\.schedule\.type: got "cosine"; allowed: "constant", "warmup"/,
  );
});

test('budgets: presets, JSON, k=v pairs, and their effect on the config', () => {
  const cfg = loadExperiment('vgg-16');
  expect(parseBudget(undefined, cfg).name).toBe('reduced');
  expect(isReduced(parseBudget(undefined, cfg).budget)).toBe(true);
  expect(isReduced(parseBudget('full', cfg).budget)).toBe(false);
  expect(isReduced(parseBudget(undefined, loadExperiment('lenet-500-300')).budget)).toBe(false);
  // A changed validation split or batch size is a run the config does not describe either.
  expect(isReduced(parseBudget('validation=1000', cfg).budget)).toBe(true);
  expect(isReduced(parseBudget('batchSize=32', cfg).budget)).toBe(true);
  const b = parseBudget('tiny,widthMultiplier=0.5,epochs.finetune=2', cfg);
  expect(b.budget.widthMultiplier).toBe(0.5);
  expect(b.budget.epochs).toMatchObject({ baseline: 1, proximal: 1, finetune: 2 });
  expect(parseBudget('{"trainSubset": 10}', cfg).budget.trainSubset).toBe(10);
  // In JSON as in k=v pairs, a number of epochs sets every phase.
  expect(parseBudget('{"epochs": 3}', cfg).budget.epochs).toEqual(parseBudget('epochs=3', cfg).budget.epochs);
  expect(parseBudget('{"epochs": 3}', cfg).budget.epochs).toEqual({ baseline: 3, proximal: 3, finetune: 3 });
  const applied = applyBudget(cfg, parseBudget('epochs=2,widthMultiplier=0.25', cfg).budget);
  expect(applied.training.baseline.epochs).toBe(2);
  // A budget caps epochs: it never adds any, so 0 proximal epochs (norm-based pruning) stays 0.
  const norm = {
    ...clone(cfg),
    training: { ...clone(cfg.training), proximal: { ...cfg.training.proximal, epochs: 0 } },
  };
  const tiny = applyBudget(norm, parseBudget('tiny', norm).budget);
  expect([
    tiny.training.baseline.epochs,
    tiny.training.proximal.epochs,
    tiny.training.finetune.epochs,
  ]).toEqual([1, 0, 1]);
  expect(applyBudget(cfg, parseBudget('epochs=1000', cfg).budget).training.baseline.epochs).toBe(
    cfg.training.baseline.epochs,
  );
  // A lambda warmup the capped proximal phase cannot hold shrinks with it; one that fits stays.
  const lenet = loadExperiment('lenet-500-300');
  expect(lenet.training.proximal).toMatchObject({ epochs: 10, schedule: { type: 'warmup', epochs: 2 } });
  const warm = (spec: string) => applyBudget(lenet, parseBudget(spec, lenet).budget).training.proximal;
  expect(warm('tiny')).toMatchObject({ epochs: 1, schedule: { type: 'warmup', epochs: 0.2 } });
  expect(warm('epochs.proximal=2').schedule).toEqual({ type: 'warmup', epochs: 0.4 });
  expect(warm('epochs.proximal=5').schedule).toEqual({ type: 'warmup', epochs: 2 });
  expect(warm('full').schedule).toEqual({ type: 'warmup', epochs: 2 });
  // vgg-16's reduced budget (12 of 40 proximal epochs) keeps its 1-epoch warmup as committed.
  expect(applyBudget(cfg, parseBudget(undefined, cfg).budget).training.proximal.schedule).toEqual({
    type: 'warmup',
    epochs: 1,
  });
  expect(applied.model.layers.find((l) => l.type === 'conv2d')).toMatchObject({ filters: 16 });
  // The logits layer keeps one unit per class.
  expect(applied.model.layers[applied.model.layers.length - 1]).toMatchObject({ units: 10 });
  expect(() => parseConfig({ ...clone(cfg), model: { layers: [{ type: 'flatten' }] } })).toThrow(
    /last layer must be a dense layer/,
  );
});

test('a data set missing offline fails with exit code 1 and leaves no run directory', async () => {
  const empty = join(tmp, 'empty-data');
  mkdirSync(empty, { recursive: true });
  const out = join(tmp, 'run-missing');
  const r = await cli([
    'reproduce',
    'fashion-lenet-500-300',
    '--budget',
    'tiny',
    '--data-dir',
    empty,
    '--out',
    out,
    '--backend',
    'cpu',
  ]);
  expect(r.code).toBe(1);
  expect(r.err).toMatch(
    /--data-dir .*empty-data is an empty folder; it should hold Fashion-MNIST's four IDX files/,
  );
  expect(r.err).toContain('/usr/share/datasets/fashion-mnist');
  expect(existsSync(out)).toBe(false);
});

test('an unwritable output directory fails with exit code 1 before any work', async () => {
  const file = join(tmp, 'a-file');
  writeFileSync(file, 'x');
  const r = await cli([
    'reproduce',
    'lenet-500-300',
    '--budget',
    'tiny',
    '--out',
    join(file, 'run'),
    '--backend',
    'cpu',
  ]);
  expect(r.code).toBe(1);
  // The file in the way is named, not Node's ENOTDIR from mkdir.
  expect(r.err).toBe(
    `normprune: error: output directory ${join(file, 'run')} is not writable: ${file} is a file, not a folder, ` +
      'so nothing can be created below it; choose another --out\n',
  );
  expect(readdirSync(tmp)).not.toContain('run');
});

test('--resume without a checkpoint is an error', async () => {
  const out = join(tmp, 'no-ckpt');
  const r = await cli([
    'reproduce',
    'lenet-500-300',
    '--budget',
    'tiny',
    '--out',
    out,
    '--resume',
    '--backend',
    'cpu',
  ]);
  expect(r.code).toBe(1);
  expect(r.err).toMatch(/no checkpoint/);
});

test('a diverging run (non-finite loss) stops with exit code 1 and names the learning rate to lower', async () => {
  const file = writeVariant(tmp, 'diverge', (cfg) =>
    Object.assign(cfg.training.baseline, { optimizer: 'sgd', momentum: 0, learningRate: 1e30 }),
  );
  const out = join(tmp, 'run-diverge');
  const r = await cli(['train', '--config', file, '--budget', 'tiny', '--out', out, '--backend', 'cpu']);
  expect(r.code).toBe(1);
  expect(r.err).toMatch(
    /baseline epoch 1, step \d+: the training loss is (NaN|Infinity); lower training\.baseline\.learningRate \(now 1e\+30\)/,
  );
  expect(existsSync(join(out, 'results.json'))).toBe(false);
});

test("a phase that diverges on its last step is named, not the next phase's learning rate", async () => {
  // One step per epoch: its loss is computed before the update that diverges, so no loss shows it.
  const oneStep = (phase: 'baseline' | 'proximal') =>
    writeVariant(tmp, `diverge-last-step-${phase}`, (cfg) => {
      cfg.training.batchSize = 256;
      Object.assign(cfg.training[phase], { optimizer: 'sgd', momentum: 0, learningRate: 3e38 });
    });
  const run = (phase: 'baseline' | 'proximal') =>
    cli([
      'train',
      '--config',
      oneStep(phase),
      '--budget',
      'tiny',
      '--out',
      join(tmp, `run-${phase}-nan`),
      '--backend',
      'cpu',
    ]);
  const baseline = await run('baseline');
  expect(baseline.code).toBe(1);
  // Its weights overflow a group's norm: decompose refuses them, and the run names the phase.
  expect(baseline.err).toMatch(
    /baseline: the trained baseline cannot be decomposed \(layer 'dense1' has a group of weights whose norm overflows float32 \(entries near 1e19 or larger\)\): the baseline training diverged: lower training\.baseline\.learningRate \(its last epoch's: 3e\+38\)/,
  );
  // The decomposed weights stay finite but overflow when folded (the norm of the direction).
  const proximal = await run('proximal');
  expect(proximal.code).toBe(1);
  expect(proximal.err).toMatch(
    /proximal: weight \S+ of the trained model holds NaN or an infinity: the proximal training diverged .*lower training\.proximal\.learningRate \(its last epoch's: 3e\+38\)/,
  );
  expect(proximal.err).not.toMatch(/finetune/);
  expect(existsSync(join(tmp, 'run-proximal-nan', 'results.json'))).toBe(false);
});

test('a run without a validation split (validation=0) finishes and reports its validation error as n/a', async () => {
  const out = join(tmp, 'run-no-validation');
  const r = await cli([
    'reproduce',
    'lenet-500-300',
    '--budget',
    'tiny,validation=0',
    '--out',
    out,
    '--backend',
    'wasm',
  ]);
  expect(r.code).toBe(0);
  expect(r.err).toMatch(/validation error n\/a \(no validation split\)/);
  expect(r.err).not.toMatch(/NaN/);
  const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  expect(results.dataset.validation).toBe(0);
  expect(results.baseline.validationError).toBeNull();
  expect(readFileSync(join(out, 'report.md'), 'utf8')).toMatch(/\| validation error +\| n\/a +\|/);
  // Read back from results.json (where JSON stores it as null), it stays n/a, not 0.00%.
  const again = await cli(['report', out]);
  expect(again.code).toBe(0);
  expect(readFileSync(join(out, 'report.md'), 'utf8')).toMatch(/\| validation error +\| n\/a +\|/);
  const table = await cli(['report', '--table', out]);
  expect(table.out).not.toMatch(/0\.00% -> 0\.00%/);
  expect(table.out).toMatch(/n\/a -> n\/a/);
});

test('a run refuses an --out holding another run or other files, unless --force; a rerun of the same run replaces it', async () => {
  const out = join(tmp, 'taken');
  const run = (...extra: string[]) =>
    cli([
      'reproduce',
      'lenet-500-300',
      ...(extra.includes('--budget') ? [] : ['--budget', 'tiny']),
      '--backend',
      'wasm',
      '--out',
      out,
      ...extra,
    ]);
  expect((await run()).code).toBe(0);
  // The same config, budget and seed: the run repeats itself, so it may replace itself.
  expect((await run()).code).toBe(0);
  const finished = readFileSync(join(out, 'results.json'), 'utf8');
  const other = await run('--seed', '2');
  expect(other.code).toBe(1);
  expect(other.err).toMatch(
    /holds a run of lenet-500-300 \(seed 1, budget tiny\) with another config, budget or seed \(seed: 1 there, 2 here\); choose another --out, or pass --force to replace it/,
  );
  const longer = await run('--budget', 'tiny,epochs=2');
  expect(longer.err).toMatch(
    /\(config\.training\.baseline\.epochs: 1 there, 2 here; .*budget\.epochs\.baseline: 1 there, 2 here; .*and 1 more\)/,
  );
  // Refused before anything was written: the finished run is intact.
  expect(readFileSync(join(out, 'results.json'), 'utf8')).toBe(finished);
  expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).seed).toBe(1);
  expect((await run('--seed', '2', '--force')).code).toBe(0);
  expect(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')).seed).toBe(2);

  const mine = join(tmp, 'mine');
  mkdirSync(join(mine, 'model'), { recursive: true });
  writeFileSync(join(mine, 'notes.txt'), 'my notes');
  const foreign = await cli(tinyRunArgs(mine));
  expect(foreign.code).toBe(1);
  expect(foreign.err).toMatch(/holds files that are not a normprune run \(notes\.txt\)/);
  expect(readdirSync(mine).sort()).toEqual(['model', 'notes.txt']);
  // --force replaces what a run writes and leaves the rest.
  const forced = await cli(tinyRunArgs(mine, '--force'));
  expect(forced.code).toBe(0);
  expect(readFileSync(join(mine, 'notes.txt'), 'utf8')).toBe('my notes');
  // The exported files are named inside the run directory, not by a temporary path.
  const exported = JSON.parse(readFileSync(join(mine, 'results.json'), 'utf8')).exported;
  expect(exported.files).toEqual(['model/model.json', 'model/group1-shard1of1.bin']);
  for (const f of exported.files) expect(existsSync(join(mine, f))).toBe(true);
});

test('budget names say what was combined, and the default --out follows them', () => {
  const cfg = loadExperiment('lenet-500-300');
  expect(parseBudget('tiny', cfg).name).toBe('tiny');
  expect(parseBudget('tiny,trainSubset=1000,epochs=2', cfg).name).toBe('tiny+custom');
  // A preset after settings does not hide them: this is not the full run.
  expect(parseBudget('trainSubset=256,epochs=1,full', cfg).name).toBe('full+custom');
  expect(parseBudget('tiny,small', cfg).name).toBe('tiny+small');
  expect(parseBudget('{"epochs": {"baseline": 1}}', cfg).name).toBe('custom');
  expect(() => parseBudget('epochs=', cfg)).toThrow(/--budget/);
  // A preset's note describes the preset: settings changed after it drop it.
  const vgg = loadExperiment('vgg-16');
  expect(parseBudget('reduced', vgg).budget.note).toMatch(/31\+12\+4 epochs/);
  expect(parseBudget('reduced,epochs.baseline=39', vgg).budget.note).toBeUndefined();
});

test('--seed takes digits only', async () => {
  // ('' is refused as empty, with every other empty value: usage.test.ts.)
  for (const bad of ['1e3', '0x10', ' 7 ', '99999999999999999999', '1.5']) {
    const r = await cli(['reproduce', 'lenet-500-300', '--budget', 'tiny', '--seed', bad]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--seed: expected a non-negative integer/);
  }
});

test('commands refuse options they do not take', async () => {
  expect((await cli(['list', '--seed', '3'])).code).toBe(2);
  expect((await cli(['list', 'extra'])).err).toMatch(/list: unexpected argument "extra"/);
  expect((await cli(['report', 'x', '--budget', 'tiny'])).code).toBe(2);
  expect((await cli(['prune', '--model', 'x', '--out', 'y', '--resume'])).code).toBe(2);
  expect((await cli(['report', 'x', '--seeds-only'])).err).toMatch(
    /--seeds-only goes with --table or --write-readme/,
  );
});

test('report names a folder that does not exist, and one that holds no finished run', async () => {
  const missing = await cli(['report', join(tmp, 'no-such-run')]);
  expect(missing.code).toBe(1);
  expect(missing.err).toMatch(/report: .*no-such-run does not exist/);
  const empty = join(tmp, 'empty-run');
  mkdirSync(empty, { recursive: true });
  const unfinished = await cli(['report', empty]);
  expect(unfinished.code).toBe(1);
  expect(unfinished.err).toMatch(
    /report: .*empty-run is not a run folder \(no results\.json or config\.json\)/,
  );
});

test('report names a malformed or foreign JSON file', async () => {
  const broken = join(tmp, 'broken.json');
  writeFileSync(broken, '{"experiment": "lenet-');
  const r = await cli(['report', '--table', broken]);
  expect(r.code).toBe(1);
  expect(r.err).toMatch(/broken\.json is not valid JSON \(.*\); give results table rows/);
  const empty = join(tmp, 'empty.json');
  writeFileSync(empty, '{}');
  expect((await cli(['report', empty])).err).toMatch(/empty\.json is not a results table row/);
  // report --table skips it with a note (as a folder that holds no run), and has nothing to report.
  const t = await cli(['report', '--table', empty]);
  expect(t.code).toBe(1);
  expect(t.err).toMatch(/note: skipped .*empty\.json: not a results table row/);
});

test("report given a run's results.json names the run folder to give (it crashed in the table)", async () => {
  const run = join(tmp, 'results-json-run');
  expect((await cli(tinyRunArgs(run))).code).toBe(0);
  const results = join(run, 'results.json');
  const r = await cli(['report', results]);
  expect(r.code).toBe(1);
  const what = `not a results table row (written by report --json or --export): it is the results.json of the run in ${run}; give that folder`;
  expect(r.err).toContain(`report: ${results} is ${what}\n`);
  // report --table skips it with the same words, as it skips other files that are not runs.
  const t = await cli(['report', '--table', results]);
  expect(t.code).toBe(1);
  expect(t.err).toContain(`note: skipped ${results}: ${what}\n`);
  expect(t.err).toContain('report: nothing to report: none of the folders or files given is a finished run');
  expect((await cli(['report', '--table', run])).code).toBe(0);
});

test('--backend names a backend that must start: no silent fallback', async () => {
  let nodeInstalled = true;
  try {
    require.resolve('@tensorflow/tfjs-node');
  } catch {
    nodeInstalled = false;
  }
  if (nodeInstalled) return; // nothing to fall back from
  const r = await cli([
    'reproduce',
    'lenet-500-300',
    '--budget',
    'tiny',
    '--backend',
    'node',
    '--out',
    join(tmp, 'node'),
  ]);
  expect(r.code).toBe(1);
  expect(r.err).toMatch(
    /--backend node: not available, \w+ started instead .*install @tensorflow\/tfjs-node/,
  );
  expect(existsSync(join(tmp, 'node'))).toBe(false);
});

test('an --out the system will not let a folder be made in fails at once (no hang on /proc)', async () => {
  if (!existsSync('/proc/self')) return;
  const r = await cli(['reproduce', 'lenet-500-300', '--budget', 'tiny', '--out', '/proc/normprune-run']);
  expect(r.code).toBe(1);
  expect(r.err).toMatch(/output directory \/proc\/normprune-run is not writable/);
});

test('--print-config prints the resolved config a run would use, writes nothing, and round-trips', async () => {
  const out = join(tmp, 'print-out');
  const r = await cli(['reproduce', 'lenet-5-fc-output', '--print-config', '--out', out]);
  expect(r.code).toBe(0);
  const printed = JSON.parse(r.out);
  expect(printed).toEqual(loadExperiment('lenet-5-fc-output')); // extends resolved, defaults filled in
  expect(printed.training.proximal.lambda).toBe(0.016);
  expect(existsSync(out)).toBe(false);
  // The budget applies to the config's fields; its data subsets are named on stderr.
  const tiny = await cli(['reproduce', 'lenet-5-fc', '--print-config', '--budget', 'tiny']);
  const tinyCfg = JSON.parse(tiny.out);
  expect(tinyCfg).toEqual(applyBudget(loadExperiment('lenet-5-fc'), parseBudget('tiny', tinyCfg).budget));
  expect(tinyCfg.training.finetune.epochs).toBe(1);
  expect(tiny.err).toMatch(
    /budget "tiny" also limits the data, which a config cannot: trainSubset 256, testSubset 256/,
  );
  // What it prints is a config file: train and sweep read it back to the same config.
  const file = join(tmp, 'printed.json');
  writeFileSync(file, tiny.out);
  for (const args of [
    ['train', '--config', file],
    ['sweep', '--config', file],
  ]) {
    const again = await cli([...args, '--print-config']);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.out)).toEqual(tinyCfg);
    expect(again.err).toBe('');
  }
  // A config whose default budget shrinks the model (vgg-16: 'reduced', width 1/8) prints the
  // shrunk config with defaultBudget 'full', so reading it back does not shrink it again.
  const vgg = JSON.parse((await cli(['reproduce', 'vgg-16', '--print-config'])).out);
  expect(vgg.defaultBudget).toBe('full');
  expect(vgg.model.layers[0].filters).toBe(8);
  const vggFile = join(tmp, 'printed-vgg.json');
  writeFileSync(vggFile, JSON.stringify(vgg));
  expect(JSON.parse((await cli(['train', '--config', vggFile, '--print-config'])).out)).toEqual(vgg);
  // list and report do not take it.
  expect((await cli(['list', '--print-config'])).code).toBe(2);
});

test('prune.keep caps each named layer at its largest groups; with 0 proximal epochs it is norm-based pruning', async () => {
  const file = writeVariant(
    tmp,
    'keep',
    (cfg) => (cfg.prune = { keep: { dense1: 100, dense2: 40, logits: 30 } }),
  );
  const out = join(tmp, 'run-keep');
  const r = await cli([
    'train',
    '--config',
    file,
    '--budget',
    'tiny,epochs.proximal=0',
    '--out',
    out,
    '--backend',
    'wasm',
  ]);
  expect(r.code).toBe(0);
  const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  // 'input' granularity: dense1 keeps 100 pixels, dense2 40 of dense1's units, logits 30 of dense2's.
  expect(results.groups.map((g: { layer: string; live: number }) => [g.layer, g.live])).toEqual([
    ['dense1', 100],
    ['dense2', 40],
    ['logits', 30],
  ]);
  const units = Object.fromEntries(
    results.compressed.layers.map((l: { name: string; units: number }) => [l.name, l.units]),
  );
  expect(units).toEqual({ dense1: 40, dense2: 30, logits: 10 });
  expect(results.compressed.nonzeros).toBe(100 * 40 + 40 + 40 * 30 + 30 + 30 * 10 + 10);
  // Only decomposed layers have groups to keep.
  expect(decomposedLayers(loadExperiment('lenet-5'))).toEqual(['conv1', 'conv2', 'dense1']);
  expect(decomposedLayers(loadExperiment('lenet-5-fc'))).toEqual(['dense1', 'logits']);
  const bad = (keep: object, decompose?: object) =>
    parseConfig({
      ...experimentCopy('lenet-5'),
      ...(decompose ? { decompose } : {}),
      prune: { keep },
    });
  expect(() => bad({ conv1: 3 })).not.toThrow();
  expect(() => bad({ logits: 3 })).toThrow(
    /prune\.keep: no decomposed layer named "logits"; decomposed layers: conv1, conv2, dense1$/,
  );
  expect(() => bad({ pool1: 3 })).toThrow(/no decomposed layer named "pool1"/);
  expect(() => bad({ conv1: 3 }, { dense: 'output', conv2d: null, exclude: [] })).toThrow(
    /no decomposed layer named "conv1"; decomposed layers: dense1, logits/,
  );
  expect(() => bad({ conv1: -1 })).toThrow(/prune\.keep\.conv1/);
});

test('prune.keepFilters keeps the filters of largest norm; prune.keep then picks kernels inside them', async () => {
  const file = writeVariant(
    tmp,
    'keep-filters',
    (cfg) => (cfg.prune = { keepFilters: { conv2: 6 }, keep: { conv1: 8, conv2: 40, dense1: 30 } }),
    'lenet-5',
  );
  const out = join(tmp, 'run-keep-filters');
  const r = await cli(['train', '--config', file, '--budget', 'tiny,epochs.proximal=0', '--out', out]);
  expect(r.code).toBe(0);
  const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  const live = Object.fromEntries(
    results.groups.map((g: { layer: string; live: number }) => [g.layer, g.live]),
  );
  expect(live).toEqual({ conv1: 8, conv2: 40, dense1: 30 });
  const layers = Object.fromEntries(results.compressed.layers.map((l: { name: string }) => [l.name, l]));
  // The 40 kernels lie inside 6 filters and read only the 8 live channels of conv1 (the kernels
  // on its 12 dead ones were dropped first): every one of them survives surgery.
  expect(layers.conv2.units).toBe(6);
  expect(layers.conv2.nonzeros).toBe(40 * 25 + 6);
  expect(layers.conv2.params).toBe(6 * layers.conv1.units * 25 + 6);
  // dense1 reads 6 channels x 4 x 4 positions.
  expect(layers.dense1.params).toBe(30 * 6 * 16 + 30);
  const bad = (prune: object, decompose?: object) =>
    parseConfig({ ...experimentCopy('lenet-5'), ...(decompose ? { decompose } : {}), prune });
  expect(() => bad({ keepFilters: { conv1: 3 } })).not.toThrow();
  expect(() => bad({ keepFilters: { dense1: 3 } })).toThrow(
    /prune\.keepFilters: no decomposed conv2d layer of granularity 'kernel' named "dense1"; such layers: conv1, conv2$/,
  );
  expect(() =>
    bad({ keepFilters: { conv2: 3 } }, { dense: 'output', conv2d: 'filter', exclude: [] }),
  ).toThrow(/such layers: \(none; decompose\.conv2d is "filter"\)/);
  expect(() => bad({ keepFilters: { conv2: 1.5 } })).toThrow(/prune\.keepFilters\.conv2/);
});

test('pruneMagnitudes changes nothing when any entry is refused, and drops kernels on dead channels only for keepFilters', () => {
  const plain = tfl.sequential({
    layers: [
      tfl.layers.conv2d({ inputShape: [6, 6, 1], filters: 4, kernelSize: 3, name: 'c1' }),
      tfl.layers.maxPooling2d({ poolSize: 2, name: 'p1' }),
      tfl.layers.conv2d({ filters: 3, kernelSize: 2, name: 'c2' }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: 2, name: 'd1' }),
    ],
  });
  const model = decompose(plain);
  const [c1, c2, d1] = magnitudes(model);
  const snapshot = () => [c1, c2, d1].map((m) => m.magnitude.arraySync());
  const before = snapshot();
  const start = tf.memory().numTensors;
  // c1 is changed before d1's entry is refused: c1 is restored.
  // The refusal names the rule's field (the CLI's prune maps it to its flag).
  expect(() => pruneMagnitudes(model, { threshold: 0, keep: { c1: 1 }, keepFilters: { d1: 1 } })).toThrow(
    expect.objectContaining({
      name: 'PruneRuleError',
      field: 'keepFilters',
      message: expect.stringMatching(
        /^prune\.keepFilters: d1: expected a Conv1D, Conv2D, Conv2DTranspose or DepthwiseConv2D layer of granularity 'kernel'/,
      ),
    }),
  );
  expect(() => pruneMagnitudes(model, { threshold: 0, keep: { c1: 1, nope: 2 } })).toThrow(
    expect.objectContaining({
      field: 'keep',
      message: "prune.keep: no decomposed layer named 'nope'; decomposed layers: c1, c2, d1",
    }),
  );
  expect(snapshot()).toEqual(before);
  // A NaN magnitude is the training's fault, not the rule's: it is not a PruneRuleError (which
  // the CLI reports as a usage error, exit 2), and nothing changes either.
  const saved = d1.magnitude.clone();
  tf.tidy(() => d1.magnitude.assign(tf.tensor1d([NaN, 1])));
  expect(() => pruneMagnitudes(model, { threshold: 0, keep: { c1: 1, d1: 1 } })).toThrow(
    expect.objectContaining({
      name: 'Error',
      message: expect.stringMatching(/layer 'd1' has 1 NaN magnitude/),
    }),
  );
  d1.magnitude.assign(saved);
  saved.dispose();
  expect(snapshot()).toEqual(before);
  expect(tf.memory().numTensors).toBe(start);
  // keep alone leaves c2's kernels on c1's dead channels to surgery; keepFilters drops them.
  tf.tidy(() => c1.magnitude.assign(tf.tensor2d([[1, 0, 2, 0]])));
  pruneMagnitudes(model, { threshold: 0, keep: { c2: 12 } });
  expect((c2.magnitude.arraySync() as number[][]).map((row) => row.every((v) => v !== 0))).toEqual([
    true,
    true,
    true,
    true,
  ]);
  pruneMagnitudes(model, { threshold: 0, keepFilters: { c2: 3 } });
  expect((c2.magnitude.arraySync() as number[][]).map((row) => row.map((v) => v !== 0))).toEqual([
    [true, true, true],
    [false, false, false],
    [true, true, true],
    [false, false, false],
  ]);
  expect(tf.memory().numTensors).toBe(start);
  model.dispose();
  plain.dispose();
});

test('prune prints what surgery warns of: here the placeholder of a residual branch that died whole', async () => {
  const x = tfl.input({ shape: [4] });
  const a = tfl.layers.dense({ units: 3, activation: 'relu', name: 'a' }).apply(x) as tfl.SymbolicTensor;
  const b1 = tfl.layers
    .dense({ units: 2, activation: 'relu', name: 'b1', kernelInitializer: 'zeros' })
    .apply(a) as tfl.SymbolicTensor;
  const b2 = tfl.layers.dense({ units: 3, name: 'b2' }).apply(b1) as tfl.SymbolicTensor;
  const sum = tfl.layers.add().apply([a, b2]) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: 2, name: 'out' }).apply(sum) as tfl.SymbolicTensor;
  const m = tfl.model({ inputs: x, outputs: out });
  const dir = join(tmp, 'residual-model');
  await m.save(fileSystem(dir));
  m.dispose();
  const r = await cli(['prune', '--model', dir, '--out', join(tmp, 'residual-pruned'), '--backend', 'cpu']);
  expect(r.code).toBe(0);
  expect(r.err).toMatch(
    /^note: Dense 'b1' unit 0 was kept as a placeholder with zero weights, .*: every unit of 'b1' is dead or unused/m,
  );
  expect(r.err).toMatch(
    /^note: Dense 'b2' units 0, 1, 2 \(3 of 3\) are dead \(each emits a constant\) but were kept: coupled by an elementwise join with a varying unit of 'a'$/m,
  );
});
