// Arguments as an npm user passes them: misspelled option keys are refused
// (naming the key, the options and the one it likely misspells) instead of
// silently giving the default; exportModel's and loadSparseModel's argument
// errors are ModelFileErrors with code 'invalid-argument', as a bad dir is;
// loadSparseModel takes the path of a sparse export's model.json, as tfjs and
// fileSystem take a tfjs model's; a refusal of an unknown layer names the API
// option before the CLI flag.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { analyze, exportModel, loadSparseModel, ModelFileError, prune } from '../src/index';
import * as browser from '../src/browser';
import { maxDiff } from '../../../tools/testing/leaks';
import { rng, zeroKernelWhere } from './helpers';

let tmp: string;

beforeAll(async () => {
  await tf.setBackend('cpu');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-surgery-arguments-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A Dense model with small weights: a threshold of 0.3 zeroes some of them. */
function small(): tfl.Sequential {
  const m = tfl.sequential({
    layers: [
      tfl.layers.dense({ inputShape: [8], units: 6, name: 'd' }),
      tfl.layers.dense({ units: 2, name: 'o' }),
    ],
  });
  const r = rng(3);
  for (const l of m.layers)
    l.setWeights(
      l.getWeights().map((w) =>
        tf.tensor(
          w.dataSync().map(() => r() - 0.5),
          w.shape,
        ),
      ),
    );
  return m;
}

const errorOf = async (f: () => unknown): Promise<Error> => {
  try {
    await f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a throw');
};

describe('analyze and prune refuse options they do not take, as a bad threshold (a plain Error)', () => {
  let m: tfl.Sequential;
  beforeAll(() => {
    m = small();
  });
  afterAll(() => m.dispose());

  it.each<[string, 'analyze' | 'prune', unknown, string]>([
    [
      'a misspelled threshold',
      'analyze',
      { treshold: 0.3 },
      'analyze: unknown option `treshold` (did you mean `threshold`?); the options are `threshold`',
    ],
    [
      'a misspelled threshold',
      'prune',
      { treshold: 0.3 },
      'prune: unknown option `treshold` (did you mean `threshold`?); the options are `threshold`, `unknownLayers`',
    ],
    [
      'a misspelled unknownLayers',
      'prune',
      { unknownLayer: 'keep' },
      'prune: unknown option `unknownLayer` (did you mean `unknownLayers`?); the options are `threshold`, `unknownLayers`',
    ],
    [
      'a null threshold (JSON has no undefined)',
      'analyze',
      { threshold: null },
      'analyze: option `threshold` is null: leave it out for the default, or give a value',
    ],
    [
      'a null threshold (JSON has no undefined)',
      'prune',
      { threshold: null },
      'prune: option `threshold` is null: leave it out for the default, or give a value',
    ],
    [
      'a null unknownLayers',
      'prune',
      { unknownLayers: null },
      'prune: option `unknownLayers` is null: leave it out for the default, or give a value',
    ],
    [
      'a key like no option, with a good one',
      'prune',
      { threshold: 0.1, granularity: 'kernel' },
      'prune: unknown option `granularity`; the options are `threshold`, `unknownLayers`',
    ],
    [
      'two unknown keys',
      'analyze',
      { Threshold: 0.1, verbose: true },
      'analyze: unknown options `Threshold` (did you mean `threshold`?), `verbose`; the options are `threshold`',
    ],
    [
      'a key whose value is undefined',
      'analyze',
      { treshold: undefined },
      'analyze: unknown option `treshold` (did you mean `threshold`?)',
    ],
    [
      'a number for options',
      'prune',
      0.3,
      "prune: options must be an object such as { threshold: 0.001, unknownLayers: 'keep' }, got 0.3",
    ],
    [
      'null for options',
      'analyze',
      null,
      'analyze: options must be an object such as { threshold: 0.001 }, got null',
    ],
  ])('%s (%s)', async (_, who, options, message) => {
    const before = tf.memory().numTensors;
    const run = () => (who === 'prune' ? prune(m, options as never) : analyze(m, options as never));
    expect(run).toThrow(Error);
    const err = await errorOf(run);
    expect(err.constructor).toBe(Error);
    expect(err.message).toContain(message);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('the same options spelled right are taken (the threshold counts)', () => {
    const before = tf.memory().numTensors;
    expect(analyze(m, { threshold: 0.3 }).total.nonzeros).toBeLessThan(analyze(m).total.nonzeros);
    const { model } = prune(m, { threshold: 0.3, unknownLayers: 'keep' });
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('the browser build refuses them the same way', () => {
    expect(() => browser.prune(m, { treshold: 0.3 } as never)).toThrow('did you mean `threshold`?');
    expect(() => browser.analyze(m, { treshold: 0.3 } as never)).toThrow('did you mean `threshold`?');
  });
});

describe('exportModel: every argument error is a ModelFileError invalid-argument, before a file is written', () => {
  let m: tfl.Sequential;
  beforeAll(() => {
    m = small();
  });
  afterAll(() => m.dispose());

  it.each<[string, unknown, string]>([
    [
      'misspelled keys',
      { fp16: true, formats: 'sparse' },
      'exportModel: unknown options `fp16`, `formats` (did you mean `format`?); the options are `format`, `float16`',
    ],
    [
      'a misspelled float16',
      { format: 'sparse', flaot16: true },
      'exportModel: unknown option `flaot16` (did you mean `float16`?); the options are `format`, `float16`',
    ],
    ['an unknown format', { format: 'onnx' }, "exportModel: unknown format 'onnx' (use 'tfjs' or 'sparse')"],
    [
      'a null format',
      { format: null },
      'exportModel: option `format` is null: leave it out for the default, or give a value',
    ],
    [
      'a null float16',
      { float16: null },
      'exportModel: option `float16` is null: leave it out for the default, or give a value',
    ],
    [
      'a float16 that is a string',
      { float16: 'true' },
      'exportModel: float16 must be true (weights stored as float16, half the bytes) or false, got "true" (a string)',
    ],
    [
      'options that are a string',
      'sparse',
      'exportModel: options must be an object such as { format: \'sparse\', float16: true }, got "sparse" (a string)',
    ],
    ['options that are null', null, 'exportModel: options must be an object such as'],
    ['options that are an array', ['sparse'], 'exportModel: options must be an object such as'],
  ])('%s', async (_, options, message) => {
    const dir = path.join(tmp, 'never-written');
    const before = tf.memory().numTensors;
    const err = await errorOf(() => exportModel(m, dir, options as never));
    expect(err).toBeInstanceOf(ModelFileError);
    expect(err).toMatchObject({ code: 'invalid-argument', file: dir });
    expect(err.message).toContain(message);
    expect(fs.existsSync(dir)).toBe(false);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('loadSparseModel: options and the model.json path', () => {
  // A Dense kernel with most weights dead (stored 'bitmask') and a conv net's dead 2-D kernels.
  let dir: string;
  let model: tfl.LayersModel;

  beforeAll(async () => {
    const m = tfl.sequential({
      layers: [
        tfl.layers.conv2d({ inputShape: [6, 6, 2], filters: 4, kernelSize: 3, name: 'c' }),
        tfl.layers.flatten(),
        tfl.layers.dense({ units: 5, name: 'd' }),
      ],
    });
    zeroKernelWhere(m, 'c', (i, o) => (i + o) % 2 === 0);
    zeroKernelWhere(m, 'd', (i, o) => (i + o) % 3 !== 0);
    model = prune(m).model;
    m.dispose();
    dir = path.join(tmp, 'sparse');
    await exportModel(model, dir, { format: 'sparse' });
  });
  afterAll(() => model.dispose());

  const weightsOf = (m: tfl.LayersModel) => m.getWeights().map((w) => Array.from(w.dataSync()));

  it.each<[string, () => string]>([
    ['a path', () => path.join(dir, 'model.json')],
    ['a relative path', () => path.relative(process.cwd(), path.join(dir, 'model.json'))],
    ['a file:// URL', () => pathToFileURL(path.join(dir, 'model.json')).href],
  ])("loads the model.json given as %s, as the folder's", async (_, where) => {
    const before = tf.memory().numTensors;
    const byFolder = await loadSparseModel(dir);
    const byFile = await loadSparseModel(where());
    expect(weightsOf(byFile)).toEqual(weightsOf(byFolder));
    const x = tf.randomNormal([2, 6, 6, 2], 0, 1, 'float32', 1);
    const [a, b] = [model, byFile].map((k) => tf.tidy(() => (k.predict(x) as tf.Tensor).dataSync()));
    expect(maxDiff(a, b).abs).toBe(0);
    x.dispose();
    byFolder.dispose();
    byFile.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('loads a folder whose name ends in .json', async () => {
    const odd = path.join(tmp, 'odd.json');
    fs.cpSync(dir, odd, { recursive: true });
    const before = tf.memory().numTensors;
    const m = await loadSparseModel(odd);
    expect(weightsOf(m)).toEqual(weightsOf(model));
    m.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it.each<[string, () => string, string, string]>([
    [
      "the export's sparse.json",
      () => path.join(dir, 'sparse.json'),
      'invalid-argument',
      "is a sparse export's manifest, not its model.json: pass the folder that holds them",
    ],
    [
      'a .json that is no model',
      () => {
        const f = path.join(tmp, 'settings.json');
        fs.writeFileSync(f, JSON.stringify({ lr: 0.1 }));
        return f;
      },
      'invalid-argument',
      'is not a model.json (a JSON object with "modelTopology"): pass the model.json that exportModel wrote, or its folder',
    ],
    ['a .json that does not exist', () => path.join(tmp, 'nowhere', 'model.json'), 'missing', 'cannot read'],
    [
      "a 'tfjs' export's model.json",
      () => {
        const d = path.join(tmp, 'tfjs');
        fs.mkdirSync(d, { recursive: true });
        fs.writeFileSync(
          path.join(d, 'model.json'),
          JSON.stringify({ modelTopology: {}, weightsManifest: [{ paths: ['a.bin'], weights: [] }] }),
        );
        return path.join(d, 'model.json');
      },
      'unsupported',
      "is a 'tfjs' export (its weights are in its manifest): load it with tfl.loadLayersModel(fileSystem(dir))",
    ],
  ])(
    'a path to %s gets a ModelFileError naming the file and what to pass',
    async (_, where, code, message) => {
      const file = where();
      const before = tf.memory().numTensors;
      const err = await errorOf(() => loadSparseModel(file));
      expect(err).toBeInstanceOf(ModelFileError);
      expect(err).toMatchObject({ code, file });
      expect(err.message).toContain(`loadSparseModel: `);
      expect(err.message).toContain(file);
      expect(err.message).toContain(message);
      expect(tf.memory().numTensors).toBe(before);
    },
  );

  it.each([
    ['its folder', (d: string) => d],
    ['its model.json', (d: string) => path.join(d, 'model.json')],
  ])(
    "a damaged model.json in a folder named with '#' and '?' is 'damaged' when the caller names %s",
    async (_, named) => {
      // '#' and '?' end a URL's path, not a file path: the folder is not read as a file 'run'.
      const d = path.join(tmp, process.platform === 'win32' ? 'run#1' : 'run#1?x');
      fs.mkdirSync(d, { recursive: true });
      fs.writeFileSync(path.join(d, 'model.json'), '{}');
      const err = await errorOf(() => loadSparseModel(named(d)));
      expect(err).toBeInstanceOf(ModelFileError);
      expect(err).toMatchObject({ code: 'damaged', file: path.join(d, 'model.json') });
      expect(err.message).toContain('export the model again');
    },
  );

  it.each([
    ['loadSparseModel', (u: string) => loadSparseModel(u)],
    ['exportModel', (u: string) => exportModel(model, u)],
  ])('%s refuses a file:// URL that names no local path as invalid-argument', async (who, call) => {
    for (const url of ['file://host/x/model.json', 'file:///x/%2Fmodel.json']) {
      const err = await errorOf(() => call(url));
      expect(err).toBeInstanceOf(ModelFileError);
      expect(err).toMatchObject({ code: 'invalid-argument', file: url });
      expect(err.message).toContain(`${who}: '${url}' is not a file:// URL of a local path`);
    }
  });

  it('exportModel still refuses a .json path: the export owns its file names', async () => {
    const err = await errorOf(() => exportModel(model, path.join(tmp, 'x', 'model.json')));
    expect(err).toBeInstanceOf(ModelFileError);
    expect(err).toMatchObject({ code: 'invalid-argument' });
    expect(err.message).toContain('takes the directory that holds model.json');
  });

  const badOptions: [string, unknown, string][] = [
    [
      'a misspelled requestInit',
      { requestinit: { headers: {} } },
      'unknown option `requestinit` (did you mean `requestInit`?); the options are `requestInit`, `fetchFunc`',
    ],
    ['a misspelled fetchFunc', { fetchFn: fetch }, 'unknown option `fetchFn` (did you mean `fetchFunc`?)'],
    [
      'options that are a string',
      'x',
      'options must be an object such as { requestInit: { headers } }, got "x" (a string)',
    ],
    ['a fetchFunc that is not a function', { fetchFunc: 'fetch' }, 'options.fetchFunc must be a function'],
    [
      'a requestInit that is not an object',
      { requestInit: 'no-cache' },
      'options.requestInit must be an object',
    ],
  ];

  it.each(badOptions)('refuses %s from disk (Node), though it reads no URL', async (_, options, message) => {
    for (const where of [dir, path.join(dir, 'model.json')]) {
      const err = await errorOf(() => loadSparseModel(where, options as never));
      expect(err).toBeInstanceOf(ModelFileError);
      expect(err).toMatchObject({ code: 'invalid-argument' });
      expect(err.message).toContain(`loadSparseModel: ${message}`);
    }
  });

  it.each(badOptions)(
    'refuses %s for a URL, before any request (both builds)',
    async (_, options, message) => {
      let requests = 0;
      const counting = async () => {
        requests++;
        return new Response('not found', { status: 404 });
      };
      for (const load of [loadSparseModel, browser.loadSparseModel]) {
        const opts =
          options !== null && typeof options === 'object' && !('fetchFunc' in options)
            ? { ...options, fetchFunc: counting }
            : options;
        const err = await errorOf(() => load('http://models.test/pruned/model.json', opts as never));
        expect(err).toBeInstanceOf(ModelFileError);
        expect(err).toMatchObject({ code: 'invalid-argument', file: 'http://models.test/pruned/model.json' });
        expect(err.message).toContain(`loadSparseModel: ${message}`);
      }
      expect(requests).toBe(0);
    },
  );
});

describe('a refusal of an unknown layer names the API option, then the CLI flag as the CLI', () => {
  it.each<[string, () => tfl.LayersModel]>([
    [
      'Reshape',
      () =>
        tfl.sequential({
          layers: [
            tfl.layers.dense({ inputShape: [4], units: 6, name: 'd' }),
            tfl.layers.reshape({ targetShape: [2, 3], name: 'r' }),
            tfl.layers.flatten(),
            tfl.layers.dense({ units: 2, name: 'o' }),
          ],
        }),
    ],
    [
      'LSTM',
      () =>
        tfl.sequential({
          layers: [
            tfl.layers.dense({ inputShape: [3, 4], units: 5, name: 'd' }),
            tfl.layers.lstm({ units: 3, recurrentInitializer: 'glorotNormal', name: 'l' }),
            tfl.layers.dense({ units: 2, name: 'o' }),
          ],
        }),
    ],
  ])('%s', (cls, build) => {
    const m = build();
    const err = (() => {
      try {
        prune(m);
      } catch (e) {
        return e as Error;
      }
      throw new Error('expected a refusal');
    })();
    expect(err.message).toContain(`has class ${cls}`);
    const api = err.message.indexOf("prune(model, { unknownLayers: 'keep' })");
    const cli = err.message.indexOf('(in the normprune CLI: --unknown-layers keep)');
    expect(api).toBeGreaterThan(0);
    expect(cli).toBeGreaterThan(api);
    // The CLI is not an npm package: no message tells an npm user to run it.
    expect(err.message).not.toMatch(/normprune prune|\(normprune /);
    expect(err.message.match(/--[a-z]/g)).toHaveLength(1);
    m.dispose();
  });
});
