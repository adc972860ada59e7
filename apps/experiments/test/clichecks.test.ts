// The CLI's checks before anything runs, and its handling of what other tools and
// interrupted sweeps leave (audit 26): a config or grid error is a usage error (exit 2)
// naming the config field, before the baseline trains.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tfl from '@tensorflow/tfjs-layers';
import { fileSystem, initBackend } from '@normprune/runtime';
import { loadExperiment, parseBudget, parseConfig } from '../src/index';
import { effectiveBudget } from '../src/config';
import { defaultOutName } from '../src/cli';
import { PruneRuleError } from '../src/model';
import { cli, experimentCopy } from './helpers';

let tmp: string;
beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'normprune-checks-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Writes `cfg` (JSON) to TMP/<name>.json; returns the file. */
function writeConfig(name: string, cfg: object): string {
  const file = join(tmp, `${name}.json`);
  writeFileSync(file, JSON.stringify(cfg));
  return file;
}

test('layerMultipliers naming a layer that is not decomposed is refused before the baseline trains', async () => {
  // lenet-5-fc leaves its conv2d layers plain: conv1 has no magnitudes to penalise.
  const conv = writeConfig('lm-conv', {
    extends: 'lenet-5-fc',
    name: 'lm-conv',
    training: { proximal: { layerMultipliers: { conv1: 0.5 } } },
  });
  const out = join(tmp, 'lm-conv-run');
  const r = await cli(['train', '--config', conv, '--budget', 'tiny', '--out', out]);
  expect(r.code).toBe(2);
  expect(r.err).toMatch(
    /training\.proximal\.layerMultipliers: layer "conv1" is not decomposed \(decompose\.conv2d is null\)/,
  );
  expect(r.err).not.toMatch(/baseline/);
  expect(existsSync(out)).toBe(false);
  // A layer decompose.exclude lists.
  const good = experimentCopy('lenet-500-300');
  good.decompose.exclude = ['logits'];
  good.training.proximal.layerMultipliers = { dense1: 0.5, logits: 2 };
  expect(() => parseConfig(good, 'x.json')).toThrow(
    /layerMultipliers: layer "logits" is not decomposed \(decompose\.exclude lists it\).*decomposed layers: dense1, dense2/,
  );
});

test('a sweep over granularity is refused when a grid point makes prune.keepFilters invalid, naming the field', async () => {
  const file = writeConfig('kf', { extends: 'lenet-5', name: 'kf', prune: { keepFilters: { conv2: 23 } } });
  const out = join(tmp, 'kf-sweep');
  const r = await cli([
    'sweep',
    '--config',
    file,
    '--budget',
    'tiny',
    '--granularity',
    'kernel,filter',
    '--lambda',
    '0.001',
    '--out',
    out,
  ]);
  expect(r.code).toBe(2);
  expect(r.err).toMatch(/--granularity filter: at this granularity, prune\.keepFilters: .*"conv2"/);
  expect(r.err).toMatch(/give the count in prune\.keep/);
  expect(r.err).not.toMatch(/keepLargest/);
  expect(existsSync(out)).toBe(false);
  // The same grid in the config's own sweep field is refused when the config is read.
  const inConfig = writeConfig('kf-grid', {
    extends: 'lenet-5',
    name: 'kf-grid',
    prune: { keepFilters: { conv2: 23 } },
    sweep: { granularity: ['kernel', 'filter'] },
  });
  const c = await cli(['sweep', '--config', inConfig, '--budget', 'tiny', '--out', out]);
  expect(c.code).toBe(2);
  expect(c.err).toMatch(/sweep\.granularity filter: at this granularity, prune\.keepFilters/);
  expect(existsSync(out)).toBe(false);
});

test("a refused prune rule names the config field (or prune's flag), not the prox function", () => {
  const e = new PruneRuleError(
    'keepFilters',
    new TypeError(
      "keepLargestFilters: conv2: expected a Conv1D, Conv2D, Conv2DTranspose or DepthwiseConv2D layer of granularity 'kernel', got granularity 'filter' (its groups are its filters: use keepLargestGroups)",
    ),
  );
  expect(e.message).toMatch(/^prune\.keepFilters: conv2: .*give its count in prune\.keep\)$/);
  expect(e.reason).toMatch(/give its count in --keep\)$/);
  expect(`${e.message} ${e.reason}`).not.toMatch(/keepLargest/);
});

test("the config's sweep grid gets the checks of the flags: no empty list, no conv2d granularity on a dense model", async () => {
  const empty = writeConfig('sg-empty', {
    extends: 'lenet-500-300',
    name: 'sg-empty',
    sweep: { lambda: [] },
  });
  const out = join(tmp, 'sg');
  const e = await cli(['sweep', '--config', empty, '--budget', 'tiny', '--out', out]);
  expect(e.code).toBe(2);
  expect(e.err).toMatch(/sweep\.lambda: empty; give one or more values/);
  const kernel = writeConfig('sg-kernel', {
    extends: 'lenet-500-300',
    name: 'sg-kernel',
    sweep: { granularity: ['kernel'] },
  });
  const k = await cli(['sweep', '--config', kernel, '--budget', 'tiny', '--out', out]);
  expect(k.code).toBe(2);
  expect(k.err).toMatch(
    /sweep\.granularity kernel: sg-kernel has no conv2d layer; allowed here: output, input/,
  );
  expect(existsSync(out)).toBe(false);
  // The flags say the same, in their own names.
  const f = await cli(['sweep', 'lenet-500-300', '--granularity', 'kernel', '--out', out]);
  expect(f.code).toBe(2);
  expect(f.err).toMatch(/--granularity kernel: lenet-500-300 has no conv2d layer/);
});

test('report and report --table treat an interrupted sweep as unfinished, naming the command that continues it', async () => {
  const sweep = join(tmp, 'stopped-sweep');
  const s = await cli([
    'sweep',
    'lenet-500-300',
    '--budget',
    'tiny',
    '--lambda',
    '0.001,0.01',
    '--out',
    sweep,
    '--stop-after-steps',
    '3',
  ]);
  expect(s.code).toBe(130);
  expect(existsSync(join(sweep, '.sweep-plan.json'))).toBe(true);
  // The table of the other sources is printed; the sweep is skipped with a note.
  const row = join(__dirname, '..', 'results', 'lenet-500-300.json');
  const t = await cli(['report', '--table', row, sweep]);
  expect(t.code).toBe(0);
  expect(t.out).toMatch(/lenet-500-300/);
  expect(t.err).toContain(`note: skipped ${sweep}: an interrupted sweep (no point finished`);
  expect(t.err).toMatch(
    /continue it with: normprune sweep lenet-500-300 --budget tiny --lambda 0\.001,0\.01 --resume --out \S*stopped-sweep/,
  );
  expect(t.err).not.toMatch(/not a run folder/);
  const r = await cli(['report', sweep]);
  expect(r.code).toBe(1);
  expect(r.err).toMatch(/is an interrupted sweep .*; continue it with: normprune sweep .* --resume/);
  // Its unfinished point is continued by the sweep, in the sweep's folder: a sweep given the
  // point's folder as --out is refused ("holds a run, not a sweep"; --force would replace it).
  const point = join(sweep, 'lambda-0.001');
  for (const args of [
    ['report', point],
    ['eval', '--model', point],
  ]) {
    const p = await cli(args);
    expect(p.code).toBe(1);
    expect(p.err).toContain(
      `continue it with: normprune sweep lenet-500-300 --budget tiny --lambda 0.001,0.01 --resume --out ${sweep}`,
    );
    expect(p.err).not.toContain(`--out ${point}`);
  }
  // A run's --resume given the sweep's folder says it is a sweep's, not "run it without --resume",
  // which refuses it as a sweep.
  const run = await cli(['reproduce', 'lenet-500-300', '--budget', 'tiny', '--out', sweep, '--resume']);
  expect(run.code).toBe(1);
  expect(run.err).toContain(
    `holds a sweep, not a run (an interrupted sweep is continued by \`normprune sweep\` with --resume); choose another --out for this run`,
  );
  expect(run.err).not.toMatch(/run the command without --resume/);
});

/** The cells of the row of the Markdown table whose first cell is `first`. */
function tableRow(out: string, first: string): string[] {
  const line = out.split('\n').find((l) => l.startsWith(`| ${first} `));
  if (!line) throw new Error(`no row ${first} in:\n${out}`);
  return line
    .split('|')
    .slice(1, -1)
    .map((c) => c.trim());
}

test('eval --compare feeds each model the inputs its own run normalised; --experiment over a run says what it changes', async () => {
  const std = writeConfig('std-mlp', {
    extends: 'lenet-500-300',
    name: 'std-mlp',
    dataset: { normalize: 'standardize' },
  });
  const [a, b] = [join(tmp, 'unit-run'), join(tmp, 'std-run')];
  expect((await cli(['reproduce', 'lenet-500-300', '--budget', 'tiny', '--out', a])).code).toBe(0);
  expect((await cli(['train', '--config', std, '--budget', 'tiny', '--out', b])).code).toBe(0);
  const alone = await cli(['eval', '--model', b]);
  expect(alone.code).toBe(0);
  const stdError = tableRow(alone.out, join(b, 'model'))[4];
  // Compared from the unit run, the standardising run's model scores its own error: the images
  // it gets wrong are those only it gets wrong plus those both do.
  const c = await cli(['eval', '--model', a, '--compare', b]);
  expect(c.code).toBe(0);
  const [, n, onlyThere, , both] = tableRow(c.out, join(b, 'model')).map((x) => Number(x.replace(/,/g, '')));
  expect(`${((100 * (onlyThere + both)) / n).toFixed(2)}%`).toBe(stdError);
  expect(c.err).toMatch(
    /differ in dataset\.normalize .*each model is fed the test images as its own run normalised them/,
  );
  // And the other way round: the standardising model's own error is unchanged by --compare.
  const d = await cli(['eval', '--model', b, '--compare', a]);
  expect(tableRow(d.out, join(b, 'model'))[4]).toBe(stdError);
  // An explicit experiment over a run's own config is named, with what it changes.
  const e = await cli(['eval', '--model', b, '--experiment', 'lenet-500-300']);
  expect(e.code).toBe(0);
  expect(e.err).toMatch(
    /note: \S+ is the model of a run of std-mlp .*--experiment lenet-500-300 .*differs in dataset\.normalize \("standardize" in the run's, "unit" in lenet-500-300\)/,
  );
  // A run of another data set is refused, naming both.
  const other = join(tmp, 'other-data');
  cpSync(b, other, { recursive: true });
  const rec = JSON.parse(readFileSync(join(other, 'config.json'), 'utf8'));
  rec.config.dataset.name = 'fashion-mnist';
  writeFileSync(join(other, 'config.json'), JSON.stringify(rec));
  const f = await cli(['eval', '--model', a, '--compare', other]);
  expect(f.code).toBe(1);
  expect(f.err).toMatch(
    /--compare: \S+ is the model of a run of std-mlp on fashion-mnist, but \S+ is evaluated on mnist/,
  );
});

test('default --out folders: each custom budget its own, stably; a sweep names its budget; full-budget names unchanged', () => {
  const cfg = loadExperiment('lenet-500-300');
  const name = (spec: string | undefined, sweep = false) => {
    const { name: budgetName, budget } = parseBudget(spec, cfg);
    return defaultOutName(cfg.name, cfg, budgetName, effectiveBudget(cfg, budget), sweep);
  };
  expect(name(undefined)).toBe('lenet-500-300');
  expect(name('full')).toBe('lenet-500-300');
  expect(name('tiny')).toBe('lenet-500-300-tiny');
  // (The audit's JSON budget is tiny's, typed out: it goes where tiny goes.)
  expect(name('{"trainSubset":256,"testSubset":256,"validation":64,"epochs":1}')).toBe('lenet-500-300-tiny');
  const json = name('{"trainSubset":256,"testSubset":512,"validation":64,"epochs":1}');
  const kv = name('trainSubset=256,epochs=1');
  expect(json).toMatch(/^lenet-500-300-custom-[0-9a-f]{4}$/);
  expect(kv).toMatch(/^lenet-500-300-custom-[0-9a-f]{4}$/);
  expect(kv).not.toBe(json);
  // The same budget, typed otherwise, is the same folder; one that resolves to a preset is the preset's.
  expect(name('epochs=1,trainSubset=256')).toBe(kv);
  expect(name('{"epochs":{"baseline":1,"proximal":1,"finetune":1},"trainSubset":256}')).toBe(kv);
  expect(name('tiny,epochs=1')).toBe('lenet-500-300-tiny');
  expect(name('tiny,widthMultiplier=0.5')).toMatch(/^lenet-500-300-tiny\+custom-[0-9a-f]{4}$/);
  // Sweeps: the budget too, so that a smoke sweep and the real one do not share a folder.
  expect(name(undefined, true)).toBe('sweep-lenet-500-300');
  expect(name('tiny', true)).toBe('sweep-lenet-500-300-tiny');
  expect(name('trainSubset=256,epochs=1', true)).toBe(`sweep-${kv}`);
  // A bisection its own, apart from the grid's of the same experiment and budget.
  const bisection = (spec: string | undefined, target: number) => {
    const { name: budgetName, budget } = parseBudget(spec, cfg);
    return defaultOutName(cfg.name, cfg, budgetName, effectiveBudget(cfg, budget), true, target);
  };
  expect(bisection(undefined, 95)).toBe('sweep-lenet-500-300-target-95');
  expect(bisection('tiny', 99.5)).toBe('sweep-lenet-500-300-target-99.5-tiny');
});

test('--target-compression: one range (1 up to, not including, 100) in one message, the words of --help and the README; below 1 says what the fraction would mean', async () => {
  const out = join(tmp, 'tcx');
  const r = await cli([
    'sweep',
    'lenet-500-300',
    '--budget',
    'tiny',
    '--target-compression=0.5',
    '--out',
    out,
  ]);
  expect(r.code).toBe(2);
  // One range, in the words of --help and the README, and what the fraction would mean.
  const range = 'a percentage from 1 up to, not including, 100 (50 for half), not a fraction';
  expect(r.err).toBe(
    `normprune: --target-compression: expected ${range}, got "0.5" ` +
      '(0.5 would mean 0.5% of the parameters removed; for 50%, give 50)\n',
  );
  expect(existsSync(out)).toBe(false);
  for (const x of ['100', '0', '-5', 'abc']) {
    const bad = await cli(['sweep', 'lenet-500-300', '--target-compression', x, '--print-config']);
    expect(bad.code).toBe(2);
    expect(bad.err).toBe(`normprune: --target-compression: expected ${range}, got "${x}"\n`);
  }
  const help = await cli(['sweep', '--help']);
  expect(help.out.replace(/\s+/g, ' ')).toContain(range);
  expect(readFileSync(join(__dirname, '..', 'README.md'), 'utf8').replace(/\s+/g, ' ')).toContain(
    'a percentage from 1 up to, not including, 100 (50 for half), not a fraction',
  );
  // 1 up to 99.99 are percentages, as before.
  for (const x of ['1', '99.5']) {
    const ok = await cli(['sweep', 'lenet-500-300', '--target-compression', x, '--print-config']);
    expect(ok.code).toBe(0);
  }
});

test('eval refuses a model of two outputs (or inputs) by name, also as --compare', async () => {
  await initBackend({ prefer: 'wasm', quiet: true });
  const input = tfl.input({ shape: [28, 28, 1] });
  const flat = tfl.layers.flatten().apply(input) as tfl.SymbolicTensor;
  const scores = tfl.layers.dense({ units: 10, activation: 'softmax' }).apply(flat) as tfl.SymbolicTensor;
  const box = tfl.layers.dense({ units: 4 }).apply(flat) as tfl.SymbolicTensor;
  const two = tfl.model({ inputs: input, outputs: [scores, box] });
  const dir = join(tmp, 'two-outputs');
  await two.save(fileSystem(dir));
  two.dispose();
  const args = ['--experiment', 'lenet-500-300', '--budget', 'testSubset=64'];
  const e = await cli(['eval', '--model', dir, ...args]);
  expect(e.code).toBe(1);
  expect(e.err).toContain(
    `eval: ${dir} has 1 input and 2 outputs; eval measures a classifier with one input (the images) and one output (the class scores)`,
  );
  // And what to do: the outputs to choose from, and how to make a model of one of them.
  expect(e.err).toContain(
    '; its outputs are outputs[0] [10], outputs[1] [4]: save the one of class scores as a model of its own, ' +
      'tf.model({inputs: model.inputs, outputs: model.outputs[i]}), and give that\n',
  );
  expect(e.err).not.toMatch(/typed array/);
  // A model of two inputs cannot be cut down to one: said so.
  const [a, b] = [tfl.input({ shape: [28, 28, 1] }), tfl.input({ shape: [28, 28, 1] })];
  const joined = tfl.layers
    .concatenate()
    .apply([a, b].map((x) => tfl.layers.flatten().apply(x) as tfl.SymbolicTensor)) as tfl.SymbolicTensor;
  const twoIn = tfl.model({
    inputs: [a, b],
    outputs: tfl.layers.dense({ units: 10 }).apply(joined) as tfl.SymbolicTensor,
  });
  const dirIn = join(tmp, 'two-inputs');
  await twoIn.save(fileSystem(dirIn));
  twoIn.dispose();
  const i2 = await cli(['eval', '--model', dirIn, ...args]);
  expect(i2.code).toBe(1);
  expect(i2.err).toContain(
    `eval: ${dirIn} has 2 inputs and 1 output; eval measures a classifier with one input (the images) and one output ` +
      '(the class scores); eval feeds a model one tensor of images, so a model of several inputs cannot be measured here\n',
  );
  const plain = tfl.sequential({
    layers: [
      tfl.layers.flatten({ inputShape: [28, 28, 1] }),
      tfl.layers.dense({ units: 10, activation: 'softmax' }),
    ],
  });
  const one = join(tmp, 'one-output');
  await plain.save(fileSystem(one));
  plain.dispose();
  const c = await cli(['eval', '--model', one, '--compare', dir, ...args]);
  expect(c.code).toBe(1);
  expect(c.err).toContain(`eval: --compare: ${dir} has 1 input and 2 outputs`);
});

test("models from other tools: a model.json path, an input shape no experiment feeds, a graph model, a project's config.json", async () => {
  await initBackend({ prefer: 'wasm', quiet: true });
  const save = async (dir: string, inputShape: number[]) => {
    const m = tfl.sequential({
      layers: [
        tfl.layers.flatten({ inputShape }),
        tfl.layers.dense({ units: 16, activation: 'relu' }),
        tfl.layers.dense({ units: 10, activation: 'softmax' }),
      ],
    });
    await m.save(fileSystem(dir));
    m.dispose();
    return dir;
  };
  // The path tf.loadLayersModel takes: the model.json itself.
  const mlp = await save(join(tmp, 'mine', 'mlp'), [28, 28, 1]);
  const e = await cli([
    'eval',
    '--model',
    join(mlp, 'model.json'),
    '--experiment',
    'lenet-500-300',
    '--budget',
    'testSubset=64',
  ]);
  expect(e.code).toBe(0);
  expect(e.out).toMatch(/\| 64 +\|/);
  const p = await cli(['prune', '--model', join(mlp, 'model.json'), '--out', join(tmp, 'mine', 'pruned')]);
  expect(p.code).toBe(0);
  // A Keras-style [28, 28] input fits no experiment: the model must be rebuilt, not another experiment given.
  const keras = await save(join(tmp, 'mine', 'keras'), [28, 28]);
  const k = await cli([
    'eval',
    '--model',
    keras,
    '--experiment',
    'lenet-500-300',
    '--budget',
    'testSubset=64',
  ]);
  expect(k.code).toBe(1);
  expect(k.err).toMatch(
    /takes input \[28,28\] .*no normprune experiment feeds \[28,28\]: its mnist experiments feed \[28,28,1\]; rebuild the model with input shape \[28,28,1\]/,
  );
  expect(k.err).not.toMatch(/give the experiment/);
  // A graph model is named as one, not as damaged.
  const graph = join(tmp, 'mine', 'graph');
  mkdirSync(graph);
  writeFileSync(
    join(graph, 'model.json'),
    JSON.stringify({
      format: 'graph-model',
      generatedBy: '2.x',
      convertedBy: 'TensorFlow.js Converter v4',
      modelTopology: { node: [], library: {}, versions: {} },
      weightsManifest: [{ paths: [], weights: [] }],
    }),
  );
  for (const args of [
    ['eval', '--model', graph, '--experiment', 'lenet-500-300'],
    ['prune', '--model', graph, '--out', join(tmp, 'mine', 'graph-pruned')],
  ]) {
    const g = await cli(args);
    expect(g.code).toBe(1);
    expect(g.err).toMatch(/is a tfjs graph model .*Layers models only/);
    expect(g.err).not.toMatch(/damaged|edited by hand/);
  }
  // A project's own config.json above the model is not a run's: eval asks for the experiment.
  writeFileSync(join(tmp, 'mine', 'config.json'), JSON.stringify({ lr: 0.01, epochs: 5 }));
  const c = await cli(['eval', '--model', mlp]);
  expect(c.code).toBe(2);
  expect(c.err).toMatch(
    /give --experiment NAME or --config FILE: .*config\.json is not a normprune run's config\.json/,
  );
  expect(c.err).not.toMatch(/invalid/);
});

test('a bad NORMPRUNE_BACKEND or NORMPRUNE_THREADS is a usage error (exit 2), as the flags are', async () => {
  const saved = { ...process.env };
  try {
    process.env.NORMPRUNE_BACKEND = 'gpu';
    const b = await cli(['reproduce', 'lenet-500-300', '--budget', 'tiny', '--out', join(tmp, 'env-gpu')]);
    expect(b.code).toBe(2);
    expect(b.err).toMatch(
      /NORMPRUNE_BACKEND="gpu" is not a backend normprune knows: use one of node, wasm, cpu/,
    );
    expect((await cli(['reproduce', 'lenet-500-300', '--backend', 'gpu'])).code).toBe(2);
    delete process.env.NORMPRUNE_BACKEND;
    process.env.NORMPRUNE_THREADS = 'many';
    const t = await cli(['eval', '--model', join(tmp, 'nothing'), '--experiment', 'lenet-500-300']);
    expect(t.code).toBe(2);
    expect(t.err).toMatch(/NORMPRUNE_THREADS="many" is not a thread count/);
  } finally {
    process.env = saved;
  }
  expect(existsSync(join(tmp, 'env-gpu'))).toBe(false);
});

test('NORMPRUNE_BACKEND / NORMPRUNE_THREADS overriding a flag of another value say so in a note', async () => {
  const saved = { ...process.env };
  try {
    process.env.NORMPRUNE_BACKEND = 'wasm';
    process.env.NORMPRUNE_THREADS = '1';
    const dir = join(tmp, 'override', 'model');
    const m = tfl.sequential({ layers: [tfl.layers.dense({ inputShape: [4], units: 2 })] });
    await m.save(fileSystem(dir));
    m.dispose();
    const prune = (out: string, flags: string[]) =>
      cli(['prune', '--model', dir, '--out', join(tmp, 'override', out), ...flags]);
    const differ = await prune('a', ['--backend', 'cpu', '--threads', '2']);
    expect(differ.code).toBe(0);
    expect(differ.err.match(/overrides --backend/g)).toHaveLength(1);
    expect(differ.err).toContain(
      'note: NORMPRUNE_BACKEND=wasm overrides --backend cpu (unset NORMPRUNE_BACKEND to use the flag)',
    );
    expect(differ.err).toContain(
      'note: NORMPRUNE_THREADS=1 overrides --threads 2 (unset NORMPRUNE_THREADS to use the flag)',
    );
    const same = await prune('b', ['--backend', 'wasm', '--threads', '1']);
    expect(same.code).toBe(0);
    expect(same.err).not.toMatch(/overrides --/);
  } finally {
    process.env = saved;
  }
});

test('the summary of a reduced-budget run without a target says it is not a reproduction', async () => {
  const file = writeConfig('no-target', { extends: 'lenet-500-300', name: 'no-target', target: null });
  const r = await cli(['train', '--config', file, '--budget', 'tiny', '--out', join(tmp, 'no-target')]);
  expect(r.code).toBe(0);
  expect(r.out).toMatch(/^no-target: .* \(at a reduced budget: not a reproduction\)$/m);
  expect(r.out).not.toMatch(/target (met|MISSED)/);
});
