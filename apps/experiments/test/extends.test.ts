// A config's `extends` field: a shipped experiment or another file as the
// base, this file's fields merged over it, and clear errors for bad bases.
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configsDir, listExperiments, loadConfigFile, loadExperiment, parseConfig } from '../src/index';
import { BUDGET_PRESETS, mergeConfig, parseBudget } from '../src/config';
import { cli, clone, experimentCopy } from './helpers';

let tmp: string;
beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'normprune-extends-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function write(file: string, json: unknown): string {
  const path = join(tmp, file);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, typeof json === 'string' ? json : JSON.stringify(json));
  return path;
}

test('mergeConfig merges objects field by field; arrays, scalars and null replace', () => {
  const base = { a: { b: 1, c: [1, 2, 3], d: { e: 'x' } }, f: 'keep', g: 'v' };
  const copy = clone(base);
  const over = { a: { c: [9], d: { h: true } }, g: null, i: 2 };
  expect(mergeConfig(base, over)).toEqual({
    a: { b: 1, c: [9], d: { e: 'x', h: true } },
    f: 'keep',
    g: null,
    i: 2,
  });
  expect(base).toEqual(copy); // the base is not changed
  expect(mergeConfig([1, 2], [3])).toEqual([3]);
  // An object of another type replaces the base's; one of the same type merges.
  const warmup = { schedule: { type: 'warmup', epochs: 1 } };
  expect(mergeConfig(warmup, { schedule: { type: 'constant' } })).toEqual({ schedule: { type: 'constant' } });
  expect(mergeConfig(warmup, { schedule: { type: 'warmup', epochs: 2 } })).toEqual({
    schedule: { type: 'warmup', epochs: 2 },
  });
  expect(mergeConfig(warmup, { schedule: { epochs: 3 } })).toEqual({
    schedule: { type: 'warmup', epochs: 3 },
  });
  expect(mergeConfig({ a: 1 }, 'x')).toBe('x');
});

test('a file extending a shipped experiment is that experiment with its own fields changed', () => {
  const file = write('mine.json', {
    extends: 'lenet-5-fc',
    name: 'my-fc',
    training: { proximal: { lambda: 0.003 } },
    sweep: { lambda: [0.003] },
  });
  const expected = experimentCopy('lenet-5-fc');
  expected.name = 'my-fc';
  expected.training.proximal.lambda = 0.003;
  expected.sweep = { lambda: [0.003] };
  // The base's description, marked with what this file changes (`normprune list` and reports show it).
  expected.description += ' [changed by mine.json: training.proximal.lambda, sweep.lambda]';
  expect(loadConfigFile(file)).toEqual(expected);
  // A description of its own replaces it; a file that only renames keeps the base's as it is.
  expect(parseConfig({ extends: 'lenet-5-fc', description: 'mine', training: {} }).description).toBe('mine');
  expect(parseConfig({ extends: 'lenet-5-fc', name: 'x' }).description).toBe(
    expected.description.split(' [')[0],
  );
  const many = parseConfig({
    extends: 'lenet-500-300',
    dataset: { validation: 1000 },
    training: { batchSize: 64, baseline: { epochs: 1 }, proximal: { epochs: 2 }, finetune: { epochs: 3 } },
  });
  expect(many.description).toMatch(
    / \[changed by config: dataset\.validation, training\.batchSize, training\.baseline\.epochs, training\.proximal\.epochs, \.\.\.\]$/,
  );
  // Without a name it keeps the base's: the run is the experiment with one field changed.
  const unnamed = write('unnamed.json', { extends: 'lenet-5', decompose: { conv2d: null } });
  const cfg = loadConfigFile(unnamed);
  expect(cfg.name).toBe('lenet-5');
  expect(cfg.decompose).toEqual({ ...loadExperiment('lenet-5').decompose, conv2d: null });
  // lenet-5-fc warms lambda up; a constant schedule over it is valid and constant.
  expect(loadExperiment('lenet-5-fc').training.proximal.schedule.type).toBe('warmup');
  const constant = parseConfig({
    extends: 'lenet-5-fc',
    training: { proximal: { schedule: { type: 'constant' } } },
  });
  expect(constant.training.proximal.schedule).toEqual({ type: 'constant' });
  expect(parseConfig({ extends: 'lenet-5-fc', name: 'my-fc' }).model).toEqual(
    loadExperiment('lenet-5-fc').model,
  );
});

test('a file path in extends is relative to the extending file, and chains resolve in order', () => {
  write('chain/top/base.json', { extends: 'lenet-500-300', training: { batchSize: 64 } });
  write('chain/mid.json', {
    extends: 'top/base.json',
    name: 'mid',
    training: { batchSize: 32, finetune: { epochs: 3 } },
  });
  const leaf = write('chain/leaf/leaf.json', { extends: '../mid.json', name: 'leaf' });
  const cfg = loadConfigFile(leaf);
  expect(cfg.name).toBe('leaf');
  expect(cfg.training.batchSize).toBe(32); // the nearer file wins
  expect(cfg.training.finetune.epochs).toBe(3);
  expect(cfg.training.finetune.learningRate).toBe(
    loadExperiment('lenet-500-300').training.finetune.learningRate,
  );
});

test('bad bases name the problem: unknown experiment, missing file, cycle, wrong type, invalid JSON', () => {
  expect(() => loadConfigFile(write('u.json', { extends: 'lenet-9000' }))).toThrow(
    /invalid u\.json:\n {2}extends: no shipped experiment "lenet-9000"; known experiments: .*lenet-5-fc/,
  );
  expect(() => loadConfigFile(write('m.json', { extends: './nope.json' }))).toThrow(
    `extends: file not found: ${join(tmp, 'nope.json')}`,
  );
  write('cyc/a.json', { extends: 'b.json' });
  write('cyc/b.json', { extends: './a.json' });
  expect(() => loadConfigFile(join(tmp, 'cyc/a.json'))).toThrow(
    /invalid b\.json:\n {2}extends: a cycle: a\.json -> b\.json -> a\.json/,
  );
  expect(() => loadConfigFile(write('self.json', { extends: 'self.json' }))).toThrow(
    /a cycle: self\.json -> self\.json/,
  );
  expect(() => loadConfigFile(write('t.json', { extends: 3 }))).toThrow(
    /extends: expected a shipped experiment's name or a \.json file's path, got 3/,
  );
  write('broken.json', '{ "name": ');
  expect(() => loadConfigFile(write('onbroken.json', { extends: 'broken.json' }))).toThrow(
    /config file .*broken\.json is not valid JSON/,
  );
});

test('the merged config is validated as a whole: errors name the extending file and the field', () => {
  expect(() =>
    loadConfigFile(write('neg.json', { extends: 'lenet-5-fc', training: { proximal: { lambda: -1 } } })),
  ).toThrow(/invalid neg\.json:\n {2}training\.proximal\.lambda: /);
  expect(() =>
    loadConfigFile(write('excl.json', { extends: 'lenet-5-fc', decompose: { exclude: ['dense9'] } })),
  ).toThrow(/decompose\.exclude: no dense, conv2d or depthwiseConv2d layer named "dense9"/);
  // A base need not be a whole config; only the merged result is checked.
  write('partial.json', { training: { batchSize: 16 } });
  const whole = experimentCopy('lenet-500-300') as Record<string, unknown>;
  const cfg = loadConfigFile(write('whole.json', { ...whole, extends: 'partial.json' }));
  expect(cfg.training.batchSize).toBe(loadExperiment('lenet-500-300').training.batchSize);
  expect(() => loadConfigFile(write('lone.json', { extends: 'partial.json' }))).toThrow(
    /invalid lone\.json:\n {2}name: /,
  );
});

test('the CLI refuses a config whose extends cannot resolve, with exit code 2 and nothing written', async () => {
  write('cli/a.json', { extends: 'b.json' });
  write('cli/b.json', { extends: 'a.json' });
  const out = join(tmp, 'cli-out');
  const r = await cli(['train', '--config', join(tmp, 'cli/a.json'), '--out', out]);
  expect(r.code).toBe(2);
  expect(r.err).toMatch(/extends: a cycle: a\.json -> b\.json -> a\.json/);
  expect(readdirSync(tmp)).not.toContain('cli-out');
});

test('shipped configs: each is named after its file, and each extends only shipped experiments', () => {
  for (const name of listExperiments()) {
    const raw = JSON.parse(readFileSync(join(configsDir(), `${name}.json`), 'utf8'));
    expect(loadExperiment(name).name).toBe(name);
    if ('extends' in raw) expect(listExperiments()).toContain(raw.extends);
  }
  // The variants that extend another config keep what they do not set.
  const output = loadExperiment('lenet-5-fc-output');
  expect(output.model).toEqual(loadExperiment('lenet-5-fc').model);
  expect(output.training.baseline).toEqual(loadExperiment('lenet-5-fc').training.baseline);
  expect(output.decompose).toEqual({ dense: 'output', conv2d: null, exclude: ['logits'] });
});

test('null unsets an optional field of the base; where null has its own meaning it keeps it', () => {
  const fc = loadExperiment('lenet-5-fc');
  expect(fc.target).toBeDefined();
  expect(fc.thesis?.compressionPct).toBe(82.2);
  const cfg = parseConfig({
    extends: 'lenet-5-fc',
    target: null,
    thesis: { compressionPct: null, errorDeltaPp: null },
    sweep: { lambda: null, granularity: ['input', 'output'] },
  });
  expect(cfg.target).toBeUndefined();
  expect(cfg.thesis).toEqual({ note: fc.thesis?.note });
  expect(cfg.sweep).toEqual({ granularity: ['input', 'output'] });
  // Serialised (config.json, the run's hash), an unset field is absent, as if never written.
  expect(JSON.parse(JSON.stringify(cfg))).not.toHaveProperty('target');
  expect(JSON.stringify(cfg.thesis)).toBe(JSON.stringify({ note: fc.thesis?.note }));
  // Distillation set by a base can be switched off.
  const distilled = write('distilled.json', {
    extends: 'lenet-5-fc',
    training: { finetune: { distill: { weight: 0.5 } } },
  });
  expect(loadConfigFile(distilled).training.finetune.distill).toEqual({ weight: 0.5, temperature: 4 });
  const plain = write('plain-again.json', {
    extends: 'distilled.json',
    training: { finetune: { distill: null } },
  });
  expect(loadConfigFile(plain).training.finetune).toEqual(fc.training.finetune);
  // A granularity's null means "layers left plain", not "the default granularity".
  expect(parseConfig({ extends: 'lenet-5', decompose: { conv2d: null } }).decompose.conv2d).toBeNull();
  // A required field cannot be unset.
  expect(() => parseConfig({ extends: 'lenet-5-fc', training: { batchSize: null } })).toThrow(
    /training\.batchSize/,
  );
  expect(() => parseConfig({ extends: 'lenet-5-fc', description: null })).toThrow(/description/);
});

test('lenet-5 and lenet-5-filter extend the configs they vary, unsetting what they do not claim', () => {
  const fc = loadExperiment('lenet-5-fc');
  const lenet5 = loadExperiment('lenet-5');
  const filter = loadExperiment('lenet-5-filter');
  expect(lenet5.model).toEqual(fc.model);
  expect(lenet5.training.baseline).toEqual(fc.training.baseline); // so they can share a baseline
  expect(lenet5.thesis).toEqual({ note: expect.stringMatching(/only the dense layers/) });
  expect(lenet5.target).toEqual({ minCompressionPct: 90, maxErrorDeltaPp: 0.1 });
  expect(filter).toEqual({
    ...lenet5,
    name: 'lenet-5-filter',
    description: filter.description,
    decompose: { ...lenet5.decompose, conv2d: 'filter' },
    target: undefined,
  });
});

test('budgets: null removes a preset of the base or one of its fields', () => {
  const vgg = loadExperiment('vgg-16');
  expect(vgg.budgets?.tiny?.widthMultiplier).toBe(0.0625);
  const cfg = parseConfig({
    extends: 'vgg-16',
    budgets: {
      tiny: null,
      reduced: { widthMultiplier: null, epochs: { finetune: null } },
      half: { widthMultiplier: 0.5 },
    },
  });
  // The base's tiny is gone, so the built-in tiny is back in force.
  expect(cfg.budgets).not.toHaveProperty('tiny');
  expect(parseBudget('tiny', cfg).budget).toEqual(BUDGET_PRESETS.tiny);
  expect(cfg.budgets?.reduced).not.toHaveProperty('widthMultiplier');
  expect(cfg.budgets?.reduced?.epochs).toEqual({ baseline: 31, proximal: 12 });
  expect(cfg.budgets?.reduced?.trainSubset).toBe(20000);
  // A field the preset no longer sets leaves the earlier preset's value alone.
  const both = parseBudget('tiny,half,reduced', cfg).budget;
  expect(both.epochs).toEqual({ baseline: 31, proximal: 12, finetune: 1 });
  expect(both.widthMultiplier).toBe(0.5);
  // A preset cannot be something other than an object or null.
  expect(() => parseConfig({ extends: 'vgg-16', budgets: { tiny: 3 } })).toThrow(/budgets\.tiny/);
});

test("budgets: a preset's epochs may be one number for every phase, as in --budget's JSON", async () => {
  const cfg = parseConfig({
    extends: 'lenet-500-300',
    budgets: { mine: { trainSubset: 128, epochs: 1 } },
    defaultBudget: 'mine',
  });
  expect(cfg.budgets?.mine?.epochs).toEqual({ baseline: 1, proximal: 1, finetune: 1 });
  expect(parseBudget(undefined, cfg).budget).toEqual(
    parseBudget('{"trainSubset": 128, "epochs": 1}', cfg).budget,
  );
  // Over a base preset's object, the number replaces it, as numbers replace objects.
  const over = parseConfig({ extends: 'vgg-16', budgets: { reduced: { epochs: 2 } } });
  expect(over.budgets?.reduced?.epochs).toEqual({ baseline: 2, proximal: 2, finetune: 2 });
  // Still a whole number of epochs, at least 0.
  expect(() => parseConfig({ extends: 'lenet-5', budgets: { mine: { epochs: 1.5 } } })).toThrow(
    /budgets\.mine\.epochs/,
  );
  // And the CLI takes it.
  const tmp = mkdtempSync(join(tmpdir(), 'np-preset-epochs-'));
  try {
    writeFileSync(
      join(tmp, 'c.json'),
      JSON.stringify({ extends: 'lenet-500-300', budgets: { mine: { epochs: 1 } } }),
    );
    const r = await cli(['train', '--config', join(tmp, 'c.json'), '--budget', 'mine', '--print-config']);
    expect(r.code).toBe(0);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
