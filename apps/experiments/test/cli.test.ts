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
import { applyBudget, isReduced, loadExperiment, parseBudget, parseConfig } from '../src/index';
import { cli, writeVariant } from './helpers';

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
  expect((await cli([])).code).toBe(2);
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
  const good = JSON.parse(JSON.stringify(loadExperiment('lenet-500-300')));
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

test('proximal.layerMultipliers and distill are checked against the model and their ranges', () => {
  const good = JSON.parse(JSON.stringify(loadExperiment('lenet-500-300')));
  const withProximal = (extra: object) => ({
    ...good,
    training: { ...good.training, proximal: { ...good.training.proximal, ...extra } },
  });
  expect(() => parseConfig(withProximal({ layerMultipliers: { dense9: 2 } }), 'x.json')).toThrow(
    /training\.proximal\.layerMultipliers: no layer named "dense9"; named layers: dense1, dense2, logits/,
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
  const good = JSON.parse(JSON.stringify(loadExperiment('lenet-500-300')));
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
  const good = JSON.parse(JSON.stringify(loadExperiment('lenet-500-300')));
  expect(() =>
    parseConfig({ ...good, model: { layers: [{ type: 'conv3d' }, { type: 'dense', units: 3 }] } }),
  ).toThrow(/model\.layers\.0\.type: got "conv3d"; allowed: "dense", "conv2d", "maxPool2d", "flatten"/);
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
  const b = parseBudget('tiny,widthMultiplier=0.5,epochs.finetune=2', cfg);
  expect(b.budget.widthMultiplier).toBe(0.5);
  expect(b.budget.epochs).toMatchObject({ baseline: 1, proximal: 1, finetune: 2 });
  expect(parseBudget('{"trainSubset": 10}', cfg).budget.trainSubset).toBe(10);
  const applied = applyBudget(cfg, parseBudget('epochs=2,widthMultiplier=0.25', cfg).budget);
  expect(applied.training.baseline.epochs).toBe(2);
  expect(applied.model.layers.find((l) => l.type === 'conv2d')).toMatchObject({ filters: 16 });
  // The logits layer keeps one unit per class.
  expect(applied.model.layers[applied.model.layers.length - 1]).toMatchObject({ units: 10 });
  expect(() =>
    parseConfig({ ...JSON.parse(JSON.stringify(cfg)), model: { layers: [{ type: 'flatten' }] } }),
  ).toThrow(/last layer must be a dense layer/);
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
  expect(r.err).toMatch(/could not load data set fashion-mnist .*missing/);
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
  expect(r.err).toMatch(/output directory .* is not writable/);
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
});
