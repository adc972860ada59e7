// Configs the run cannot train are refused at validation (exit 2), naming the field,
// before any data is loaded or any phase trains.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../src/index';
import { cli, experimentCopy, writeVariant } from './helpers';

let tmp: string;
beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'np-config-checks-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("the last layer's units are the data set's class count", () => {
  test('parseConfig refuses logits of another width, naming the field and the count', () => {
    const cfg = experimentCopy('lenet-5');
    const last = cfg.model.layers.length - 1;
    cfg.model.layers[last].units = 5;
    expect(() => parseConfig(cfg, 'x.json')).toThrow(
      `invalid x.json:\n  model.layers[${last}].units: the last layer (the logits) must have 10 units, one per class of mnist (dataset.name), got 5`,
    );
    // cifar10 too (vgg-16).
    const vgg = experimentCopy('vgg-16');
    vgg.model.layers[vgg.model.layers.length - 1].units = 100;
    expect(() => parseConfig(vgg)).toThrow(
      /units: the last layer \(the logits\) must have 10 units, one per class of cifar10/,
    );
  });

  test('train --print-config exits 2 with that message', async () => {
    const file = writeVariant(tmp, 'units5', (cfg) => {
      cfg.model.layers = [{ type: 'flatten' }, { type: 'dense', units: 5, name: 'logits' }];
    });
    const r = await cli(['train', '--config', file, '--print-config']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(
      /model\.layers\[1\]\.units: the last layer \(the logits\) must have 10 units, one per class of mnist/,
    );
  });
});

describe('a config that decomposes no layer', () => {
  const lenet = (edit: (cfg: any) => void) => {
    const cfg = experimentCopy('lenet-500-300');
    edit(cfg);
    return cfg;
  };
  const advice =
    'the method needs at least one decomposed layer: training.proximal.lambda 0.0015 has no magnitudes to act on. Decompose a layer (set decompose.dense or decompose.conv2d, or take the layer out of decompose.exclude), or set training.proximal.lambda to 0 (or training.proximal.epochs to 0) to train without pruning';

  test('is refused with a lambda > 0, naming the decompose fields', () => {
    expect(() =>
      parseConfig(
        lenet((c) => (c.decompose.dense = null)),
        'x.json',
      ),
    ).toThrow(
      `invalid x.json:\n  decompose: no layer is decomposed (decompose.dense is null; the model has no conv2d layer), and ${advice}`,
    );
    expect(() => parseConfig(lenet((c) => (c.decompose.exclude = ['dense1', 'dense2', 'logits'])))).toThrow(
      'decompose: no layer is decomposed (decompose.exclude lists every dense layer (dense1, dense2, logits); the model has no conv2d layer)',
    );
    const lenet5 = experimentCopy('lenet-5');
    lenet5.decompose = { dense: null, conv2d: null, exclude: [] };
    expect(() => parseConfig(lenet5)).toThrow(
      'decompose: no layer is decomposed (decompose.dense is null; decompose.conv2d is null)',
    );
  });

  test('runs as plain training with lambda 0 or no proximal epochs', () => {
    expect(() =>
      parseConfig(
        lenet((c) => {
          c.decompose.dense = null;
          c.training.proximal.lambda = 0;
          c.sweep = null;
        }),
      ),
    ).not.toThrow();
    expect(() =>
      parseConfig(
        lenet((c) => {
          c.decompose.dense = null;
          c.training.proximal.epochs = 0;
        }),
      ),
    ).not.toThrow();
  });

  test('train, and a sweep of lambdas > 0 or a bisection, exit 2 before anything trains', async () => {
    const nodec = writeVariant(tmp, 'nodec', (c) => (c.decompose.dense = null));
    const r = await cli(['train', '--config', nodec, '--print-config']);
    expect(r.code).toBe(2);
    expect(r.err).toContain(advice);
    const plain = writeVariant(tmp, 'plain', (c) => {
      c.decompose.dense = null;
      c.training.proximal.lambda = 0;
      c.sweep = null;
    });
    expect((await cli(['train', '--config', plain, '--print-config'])).code).toBe(0);
    const sweep = await cli(['sweep', '--config', plain, '--lambda', '0,0.01', '--print-config']);
    expect(sweep.code).toBe(2);
    expect(sweep.err).toMatch(
      /--lambda 0\.01: no layer is decomposed \(decompose\.dense is null; the model has no conv2d layer\), and the method needs at least one decomposed layer/,
    );
    // At a granularity that decomposes the dense layers, the points have a layer to prune.
    expect(
      (
        await cli([
          'sweep',
          '--config',
          plain,
          '--lambda',
          '0.01',
          '--granularity',
          'output',
          '--print-config',
        ])
      ).code,
    ).toBe(0);
    const bisect = await cli(['sweep', '--config', plain, '--target-compression', '50', '--print-config']);
    expect(bisect.code).toBe(2);
    expect(bisect.err).toMatch(
      /--target-compression: lenet-500-300: no layer is decomposed \(decompose\.dense is null; the model has no conv2d layer\), and the method needs at least one decomposed layer/,
    );
  });
});

describe('--print-config refuses the arguments the run refuses', () => {
  const cases: [string[], RegExp][] = [
    [['--seed', 'abc'], /--seed: expected a non-negative integer, got "abc"/],
    [['--seed', '-1'], /--seed: expected a non-negative integer, got "-1"/],
    [['--seed', '1.5'], /--seed: expected a non-negative integer, got "1\.5"/],
    [
      ['--seed', '1,2,3'],
      /--seed: one seed per command, got "1,2,3": run the command once per seed, each with its own --out/,
    ],
    [['--backend', 'gpu'], /--backend: got "gpu", allowed: node, wasm, cpu/],
    [['--threads', '0'], /--threads: expected a whole number from 1 to 64, got "0"/],
  ];

  test.each(cases)('reproduce %j', async (extra, message) => {
    const run = await cli([
      'reproduce',
      'lenet-500-300',
      ...extra,
      '--budget',
      'tiny',
      '--out',
      join(tmp, 'x'),
    ]);
    const dry = await cli(['reproduce', 'lenet-500-300', ...extra, '--print-config']);
    expect([run.code, dry.code]).toEqual([2, 2]);
    expect(run.err).toMatch(message);
    expect(dry.err).toBe(run.err);
    expect(dry.out).toBe('');
  });

  test('train and sweep too', async () => {
    const file = writeVariant(tmp, 'print', () => {});
    const train = await cli(['train', '--config', file, '--seed', 'abc', '--print-config']);
    expect(train.code).toBe(2);
    expect(train.err).toMatch(/--seed: expected a non-negative integer, got "abc"/);
    for (const extra of [
      ['--seed', 'abc'],
      ['--backend', 'gpu'],
      ['--target-compression', '50', '--bisect-steps', 'x'],
    ]) {
      const sweep = await cli(['sweep', 'lenet-500-300', ...extra, '--print-config']);
      expect(sweep.code).toBe(2);
      expect(sweep.out).toBe('');
    }
    // Good arguments still print the config.
    expect(
      (await cli(['reproduce', 'lenet-500-300', '--seed', '3', '--backend', 'cpu', '--print-config'])).code,
    ).toBe(0);
  });
});

test("a value of the wrong type or out of bounds is named in normprune words, not the validator's", async () => {
  for (const [edit, message] of [
    [{ training: { batchSize: 'big' } }, 'training.batchSize: expected a number, got "big"'],
    [{ training: { batchSize: 1.5 } }, 'training.batchSize: expected a whole number, got 1.5'],
    [{ training: { batchSize: 0 } }, 'training.batchSize: must be > 0, got 0'],
    [{ training: { proximal: { lambda: -1 } } }, 'training.proximal.lambda: must be >= 0, got -1'],
    [{ budgets: { x: { widthMultiplier: 9 } } }, 'budgets.x.widthMultiplier: must be <= 4, got 9'],
    [{ budgets: { x: { epochs: 'x' } } }, 'budgets.x.epochs: expected a number or an object, got "x"'],
    [{ model: [] }, 'model: expected an object, got a list'],
  ] as const) {
    const run = () => parseConfig({ extends: 'lenet-5', ...edit }, 'x.json');
    expect(run).toThrow(message);
    expect(run).not.toThrow(/Invalid input|Too small|Too big|received/);
  }
  // --budget's own settings alike.
  for (const [budget, message] of [
    ['widthMultiplier=9', 'widthMultiplier: must be <= 4, got 9'],
    ['{"epochs": "x"}', 'epochs: expected an object, got "x"'],
  ]) {
    const r = await cli(['reproduce', 'lenet-5', '--budget', budget, '--print-config']);
    expect(r.code).toBe(2);
    expect(r.err).toContain(message);
    expect(r.err).not.toMatch(/Invalid input|Too small|Too big|received/);
  }
});
