import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decompose, magnitudes } from '@normprune/layers';
import { fileSystem } from '@normprune/runtime';
import { exportModel, loadSparseModel, ModelFileError, prune } from '../src/index';
import { toFloat16, fromFloat16 } from '../src/export';
import { expectNoLeak, maxDiff } from '../../../tools/testing/leaks';
import { fillAll, lenet5, rng, zeroKernelWhere, zeroUnits } from './helpers';

const root = path.join(__dirname, '..', '..', '..');
let tmp: string;

beforeAll(async () => {
  await tf.setBackend('cpu');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-surgery-export-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function prunedLenet(): tfl.LayersModel {
  const m = lenet5(true);
  const r = rng(9);
  fillAll(m, 'bias', () => r() - 0.5);
  zeroUnits(m, 'conv2', [0, 3]);
  zeroUnits(m, 'fc1', [1, 2, 3, 5, 8, 13]);
  // Kernel granularity: 60% of conv2's 2-D kernels and most fc1 weights dead.
  zeroKernelWhere(m, 'conv2', (i, o) => (i * 7 + o * 3) % 5 < 3);
  zeroKernelWhere(m, 'fc1', (i, o) => (i + 2 * o) % 5 !== 0);
  return prune(m).model;
}

const input = () => tf.randomNormal([3, 28, 28, 1], 0, 1, 'float32', 5);

function predict(m: tfl.LayersModel): Float32Array {
  return tf.tidy(() => (m.predict(input()) as tf.Tensor).dataSync() as Float32Array);
}

/** Loads `dir` in a fresh Node process that has only tfjs (no normprune code, no custom classes) and predicts `x`. */
function predictInPlainTfjs(dir: string, x?: tf.Tensor): number[] {
  const t = x ?? input();
  const shape = t.shape;
  const values = Array.from(t.dataSync());
  if (x == null) t.dispose();
  const script = `
    const tf = require('@tensorflow/tfjs-core');
    require('@tensorflow/tfjs-backend-cpu');
    const tfl = require('@tensorflow/tfjs-layers');
    const fs = require('fs'), path = require('path');
    (async () => {
      await tf.setBackend('cpu');
      const dir = process.argv[1];
      const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
      const specs = json.weightsManifest.flatMap((g) => g.weights);
      const data = Buffer.concat(json.weightsManifest.flatMap((g) => g.paths.map((p) => fs.readFileSync(path.join(dir, p)))));
      const buf = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
      const model = await tfl.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: specs, weightData: buf }));
      const x = tf.tensor(JSON.parse(process.argv[2]), JSON.parse(process.argv[3]));
      process.stdout.write(JSON.stringify(Array.from(model.predict(x).dataSync())));
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const out = execFileSync(
    process.execPath,
    ['-e', script, dir, JSON.stringify(values), JSON.stringify(shape)],
    {
      cwd: root,
      encoding: 'utf8',
    },
  );
  return JSON.parse(out);
}

/** A functional model whose hidden Dense sits in a nested Sequential; only that Dense decomposed. */
function nestedDense(): { model: tfl.LayersModel; x: tf.Tensor } {
  const inner = tfl.sequential({
    name: 'inner',
    layers: [tfl.layers.dense({ inputShape: [8], units: 6, activation: 'relu', name: 'ih' })],
  });
  const x = tfl.input({ shape: [8] });
  const y = tfl.layers.dense({ units: 3, name: 'head' }).apply(inner.apply(x)) as tfl.SymbolicTensor;
  const model = decompose(tfl.model({ inputs: x, outputs: y }), { include: ['ih'] });
  return { model, x: tf.randomNormal([4, 8], 0, 1, 'float32', 11) };
}

/** A Sequential block inside a functional model inside a Sequential; the nested layers decomposed, some groups dead. */
function nestedConv(): { model: tfl.LayersModel; x: tf.Tensor } {
  const block = tfl.sequential({
    name: 'block',
    layers: [
      tfl.layers.conv2d({
        inputShape: [6, 5, 2],
        filters: 3,
        kernelSize: 3,
        activation: 'relu',
        name: 'b_conv',
      }),
      tfl.layers.flatten({ name: 'b_flat' }),
      tfl.layers.dense({ units: 4, activation: 'tanh', name: 'b_dense' }),
    ],
  });
  const input = tfl.input({ shape: [6, 5, 2] });
  const features = block.apply(input) as tfl.SymbolicTensor;
  const head = tfl.layers.dense({ units: 5, name: 'head' }).apply(features) as tfl.SymbolicTensor;
  const middle = tfl.model({ inputs: input, outputs: head, name: 'middle' });
  const outer = tfl.sequential({ layers: [middle, tfl.layers.dense({ units: 2, name: 'top' })] });
  const model = decompose(outer, {
    granularity: { conv2d: 'filter', dense: 'input' },
    include: ['b_conv', 'b_dense', 'head'],
  });
  for (const m of magnitudes(model)) {
    tf.tidy(() => {
      const keep = tf.cast(tf.notEqual(tf.mod(tf.range(0, m.groups, 1, 'int32'), 3), 0), 'float32');
      m.magnitude.assign(tf.mul(m.magnitude, tf.reshape(keep, m.magnitude.shape)));
    });
  }
  return { model, x: tf.randomNormal([3, 6, 5, 2], 0, 1, 'float32', 12) };
}

describe('exportModel with nested models (a model used as a layer)', () => {
  it.each([
    ['a decomposed Dense in a nested Sequential', nestedDense],
    ['decomposed Conv2D and Dense one and two levels deep, some groups dead', nestedConv],
  ])("'tfjs' folds %s: plain tfjs loads it and predicts the same", async (_name, make) => {
    const { model, x } = make();
    const dir = path.join(tmp, `nested-${model.name}`);
    await expectNoLeak(() => exportModel(model, dir));
    const json = fs.readFileSync(path.join(dir, 'model.json'), 'utf8');
    expect(json).not.toMatch(/Decomposed/);
    const ours = tf.tidy(() => (model.predict(x) as tf.Tensor).dataSync() as Float32Array);
    const scale = Math.max(1, ...Array.from(ours, Math.abs));
    expect(maxDiff(ours, predictInPlainTfjs(dir, x)).abs).toBeLessThan(1e-5 * scale);
    x.dispose();
  });

  it("'sparse' folds them too and loadSparseModel predicts the same", async () => {
    const { model, x } = nestedConv();
    const dir = path.join(tmp, 'nested-sparse');
    await exportModel(model, dir, { format: 'sparse' });
    expect(fs.readFileSync(path.join(dir, 'model.json'), 'utf8')).not.toMatch(/Decomposed/);
    const loaded = await loadSparseModel(dir);
    const [ours, theirs] = tf.tidy(() =>
      [model, loaded].map((m) => (m.predict(x) as tf.Tensor).dataSync() as Float32Array),
    );
    expect(maxDiff(ours, theirs).abs).toBeLessThan(1e-5 * Math.max(1, ...Array.from(ours, Math.abs)));
    x.dispose();
  });
});

describe('float16', () => {
  it('rounds like IEEE half precision', () => {
    for (const v of [0, 1, -2.5, 65504, 1e-7, 6.1e-5, 0.1, -3.14159]) {
      const back = fromFloat16(toFloat16(v));
      expect(Math.abs(back - v)).toBeLessThanOrEqual(Math.max(Math.abs(v) * 2 ** -11, 2 ** -25));
    }
    expect(toFloat16(1)).toBe(0x3c00);
    expect(toFloat16(-2)).toBe(0xc000);
    expect(toFloat16(1e6)).toBe(0x7c00);
  });
});

describe('exportModel', () => {
  it("'tfjs' loads in a plain TensorFlow.js process and predicts the same", async () => {
    const model = prunedLenet();
    const dir = path.join(tmp, 'tfjs');
    const { bytes, files } = await exportModel(model, dir);
    expect(files.map((f) => path.basename(f))).toEqual(['model.json', 'group1-shard1of1.bin']);
    expect(bytes).toBe(files.reduce((a, f) => a + fs.statSync(f).size, 0));
    const ours = predict(model);
    expect(maxDiff(ours, predictInPlainTfjs(dir)).abs).toBeLessThan(1e-6);
  });

  it("'tfjs' with float16 halves the weight bytes and still loads in plain TensorFlow.js", async () => {
    const model = prunedLenet();
    const full = await exportModel(model, path.join(tmp, 'f32'));
    const dir = path.join(tmp, 'f16');
    const half = await exportModel(model, dir, { float16: true });
    const shard = (r: { files: string[] }) => fs.statSync(r.files[1]).size;
    expect(shard(half)).toBe(shard(full) / 2);
    const ours = predict(model);
    const { abs } = maxDiff(ours, predictInPlainTfjs(dir));
    expect(abs).toBeLessThan(2e-2 * Math.max(1, ...Array.from(ours, Math.abs)));
  });

  it("'sparse' round-trips exactly and is smaller than 'tfjs'", async () => {
    const model = prunedLenet();
    const dense = await exportModel(model, path.join(tmp, 'dense-ref'));
    const dir = path.join(tmp, 'sparse');
    const sparse = await exportModel(model, dir, { format: 'sparse' });
    expect(sparse.files.map((f) => path.basename(f))).toEqual(['model.json', 'sparse.json', 'sparse.bin']);
    expect(sparse.bytes).toBeLessThan(dense.bytes);
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'sparse.json'), 'utf8'));
    expect(manifest.weights.find((w: any) => w.name.startsWith('conv2/kernel')).encoding).toBe('bitmask');
    const loaded = await loadSparseModel(dir);
    for (const layer of model.layers) {
      const a = layer.getWeights();
      const b = loaded.getLayer(layer.name).getWeights();
      a.forEach((t, i) => expect(Array.from(b[i].dataSync())).toEqual(Array.from(t.dataSync())));
    }
    expect(maxDiff(predict(model), predict(loaded)).abs).toBe(0);
  });

  it("plain tfjs refuses a 'sparse' directory instead of loading random weights", async () => {
    const model = prunedLenet();
    const dir = path.join(tmp, 'sparse-plain');
    await exportModel(model, dir, { format: 'sparse' });
    await expect(tfl.loadLayersModel(fileSystem(dir))).rejects.toThrow(/not set/);
  });

  it("'sparse' with float16", async () => {
    const model = prunedLenet();
    const dir = path.join(tmp, 'sparse16');
    const r32 = await exportModel(model, path.join(tmp, 'sparse32'), { format: 'sparse' });
    const r16 = await exportModel(model, dir, { format: 'sparse', float16: true });
    const bin = (r: { files: string[] }) => fs.statSync(r.files[2]).size;
    expect(r16.bytes).toBeLessThan(r32.bytes);
    expect(bin(r16)).toBeLessThan(bin(r32) * 0.6);
    const loaded = await loadSparseModel(dir);
    const ours = predict(model);
    expect(maxDiff(ours, predict(loaded)).abs).toBeLessThan(
      2e-2 * Math.max(1, ...Array.from(ours, Math.abs)),
    );
  });

  it('leaves no tensor behind', async () => {
    const model = prunedLenet();
    await expectNoLeak(async () => {
      await exportModel(model, path.join(tmp, 'leak-tfjs'), { float16: true });
      await exportModel(model, path.join(tmp, 'leak-sparse'), { format: 'sparse' });
    });
  });

  it('refuses float16 for weights outside its range', async () => {
    const m = tfl.sequential({
      layers: [
        tfl.layers.dense({
          units: 2,
          inputShape: [2],
          name: 'd',
          biasInitializer: tfl.initializers.constant({ value: 1e5 }),
        }),
      ],
    });
    await expect(exportModel(m, path.join(tmp, 'range'), { float16: true })).rejects.toThrow(
      /'d\/bias.*float16 range/,
    );
  });

  it('a second export into the same directory replaces the first, in either format', async () => {
    const a = prunedLenet();
    const b = prunedLenet();
    const r = rng(99);
    fillAll(b, 'bias', () => r() - 0.5);
    expect(maxDiff(predict(a), predict(b)).abs).toBeGreaterThan(1e-3);
    const dir = path.join(tmp, 'switch');
    const mine = path.join(dir, 'notes.txt');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(mine, 'kept');
    await exportModel(a, dir, { format: 'sparse' });
    const tfjs = await exportModel(b, dir);
    // The sparse files are gone, so nothing can load a's weights into b's topology.
    expect(fs.readdirSync(dir).sort()).toEqual(['group1-shard1of1.bin', 'model.json', 'notes.txt']);
    expect(maxDiff(predict(b), predictInPlainTfjs(dir)).abs).toBeLessThan(1e-6);
    await expect(loadSparseModel(dir)).rejects.toThrow(/is a 'tfjs' export .*loadLayersModel/);
    await exportModel(a, dir, { format: 'sparse' });
    expect(fs.readdirSync(dir).sort()).toEqual(['model.json', 'notes.txt', 'sparse.bin', 'sparse.json']);
    expect(fs.existsSync(tfjs.files[1])).toBe(false);
    expect(maxDiff(predict(a), predict(await loadSparseModel(dir))).abs).toBe(0);
    expect(fs.readFileSync(mine, 'utf8')).toBe('kept');
  });

  it("a 'sparse' export flushes each file before its rename and the folder after the renames", async () => {
    const a = prunedLenet();
    const dir = path.join(tmp, 'durable');
    await exportModel(a, dir, { format: 'sparse' });
    const events: string[] = [];
    const open = fs.promises.open;
    const rename = fs.promises.rename;
    const spies = [
      jest.spyOn(fs.promises, 'open').mockImplementation(async (...args: Parameters<typeof open>) => {
        const handle = await open(...args);
        const sync = handle.sync.bind(handle);
        const name = path.resolve(String(args[0])) === dir ? 'the folder' : 'a file';
        handle.sync = async () => {
          events.push(`sync ${name}`);
          return sync();
        };
        return handle;
      }),
      jest.spyOn(fs.promises, 'rename').mockImplementation(async (...args: Parameters<typeof rename>) => {
        events.push(`rename to ${path.basename(String(args[1]))}`);
        return rename(...args);
      }),
    ];
    try {
      // Over an earlier export: its model.json is first repointed at backups, then the new files go in.
      await exportModel(a, dir, { format: 'sparse' });
    } finally {
      spies.forEach((s) => s.mockRestore());
    }
    expect(events).toEqual([
      ...Array(5).fill('sync a file'),
      'rename to model.json',
      'sync the folder',
      'rename to sparse.bin',
      'rename to sparse.json',
      'rename to model.json',
      'sync the folder',
    ]);
    expect(maxDiff(predict(a), predict(await loadSparseModel(dir))).abs).toBe(0);
  });

  it("a 'sparse' export over another loads the one or the other whole, wherever a kill stops it", async () => {
    // Two pruned models of different shapes: a model.json of one beside the other's
    // sparse.json would not load (or would load wrong weights).
    const a = prunedLenet();
    const bigger = lenet5(true);
    const r = rng(5);
    fillAll(bigger, 'bias', () => r() - 0.5);
    zeroUnits(bigger, 'fc1', [4]);
    const b = prune(bigger).model;
    bigger.dispose();
    expect(b.countParams()).not.toBe(a.countParams());
    const [pa, pb] = [predict(a), predict(b)];
    const writes = ['rename', 'link', 'copyFile', 'unlink'] as const;
    // Stop the export of b after each of its file-system changes in turn, as a kill would.
    const stops: number[] = [];
    for (let stopAt = 1; ; stopAt++) {
      const dir = path.join(tmp, `killed-${stopAt}`);
      await exportModel(a, dir, { format: 'sparse' });
      let n = 0;
      let reached!: () => void;
      const stopped = new Promise<void>((res) => (reached = res));
      const spies = writes.map((w) => {
        const real = fs.promises[w] as (...args: any[]) => Promise<any>;
        return jest.spyOn(fs.promises, w).mockImplementation(((...args: any[]) => {
          if (++n < stopAt) return real.apply(fs.promises, args);
          reached();
          return new Promise(() => undefined); // the process is gone: nothing more happens
        }) as any);
      });
      let finished = false;
      try {
        // Whichever comes first: the stop, or the end of an export that made
        // fewer changes than stopAt (no timer: a slow machine must not decide).
        const done = exportModel(b, dir, { format: 'sparse' }).then(() => (finished = true));
        await Promise.race([stopped, done]);
      } finally {
        spies.forEach((s) => s.mockRestore());
      }
      if (finished || n < stopAt) break; // b's export completed before the stop
      const loaded = await loadSparseModel(dir);
      const got = predict(loaded);
      loaded.dispose();
      expect([maxDiff(pa, got).abs, maxDiff(pb, got).abs]).toContain(0);
      // The next export (another process, after the kill) puts things right and leaves no leftovers.
      await exportModel(b, dir, { format: 'sparse' });
      expect(maxDiff(pb, predict(await loadSparseModel(dir))).abs).toBe(0);
      // What is left beside the export is the stopped one's (this process's, which looks alive).
      const others = fs
        .readdirSync(dir)
        .filter((f) => !f.includes(`.${process.pid}-`) && !f.includes(`-${process.pid}-`));
      expect(others.sort()).toEqual(['model.json', 'sparse.bin', 'sparse.json']);
      stops.push(stopAt);
      if (stopAt > 40) throw new Error('the export never finished');
    }
    // The backup link, model.json repointed, the three renames into place, the two backups removed.
    expect(stops.length).toBeGreaterThanOrEqual(7);
    a.dispose();
    b.dispose();
  });

  it('takes a file:// URL like fileSystem does, and refuses a .json path, a file, or no model', async () => {
    const model = prunedLenet();
    const dir = path.join(tmp, 'url');
    const cwd = process.cwd();
    process.chdir(tmp);
    try {
      const r = await exportModel(model, `file://${dir}`, { format: 'sparse' });
      expect(r.files[0]).toBe(path.join(dir, 'model.json'));
      expect(maxDiff(predict(model), predict(await loadSparseModel(`file://${dir}`))).abs).toBe(0);
      await exportModel(model, `file://${dir}`);
      expect(maxDiff(predict(model), predictInPlainTfjs(dir)).abs).toBeLessThan(1e-6);
      // Nothing lands in the working directory under a literal "file:" folder.
      expect(fs.existsSync(path.join(tmp, 'file:'))).toBe(false);
    } finally {
      process.chdir(cwd);
    }
    await expect(exportModel(model, path.join(tmp, 'x', 'model.json'))).rejects.toThrow(
      /names a \.json file; exportModel takes the directory that holds model\.json: pass '.*x'/,
    );
    expect(fs.existsSync(path.join(tmp, 'x'))).toBe(false);
    const file = path.join(tmp, 'a-file');
    fs.writeFileSync(file, '');
    await expect(exportModel(model, file)).rejects.toThrow(/a-file' exists and is not a directory/);
    if (fs.existsSync('/proc/self'))
      await expect(exportModel(model, '/proc/normprune-test/x')).rejects.toThrow(
        /exportModel: cannot create folder \/proc\/normprune-test\/x: ENOENT/,
      );
    await expect(exportModel(model, 42 as never)).rejects.toThrow(/dir must be a directory path .*got 42/);
    await expect(exportModel(null as never, dir)).rejects.toThrow(/exportModel: expected a tfjs LayersModel/);
    // Options are checked before anything is written.
    const unwritten = path.join(tmp, 'never-written');
    await expect(exportModel(model, unwritten, { format: 'dense' as never })).rejects.toThrow(
      /exportModel: unknown format 'dense' \(use 'tfjs' or 'sparse'\)/,
    );
    await expect(exportModel(model, unwritten, 'sparse' as never)).rejects.toThrow(
      /exportModel: options must be an object such as \{ format: 'sparse', float16: true \}, got "sparse" \(a string\)/,
    );
    await expect(exportModel(model, unwritten, null as never)).rejects.toThrow(
      /options must be an object .*got null/,
    );
    for (const float16 of ['false', 'yes', 1])
      await expect(exportModel(model, unwritten, { float16: float16 as never })).rejects.toThrow(
        /exportModel: float16 must be true \(weights stored as float16, half the bytes\) or false, got/,
      );
    expect(fs.existsSync(unwritten)).toBe(false);
    await expect(loadSparseModel(path.join(dir, 'model.json'))).rejects.toThrow(
      /loadSparseModel: .*names a \.json file/,
    );
  });

  it('reports a truncated sparse file by name', async () => {
    const model = prunedLenet();
    const dir = path.join(tmp, 'broken');
    await exportModel(model, dir, { format: 'sparse' });
    const bin = path.join(dir, 'sparse.bin');
    fs.truncateSync(bin, 100);
    await expect(loadSparseModel(dir)).rejects.toThrow(
      /loadSparseModel: .*broken\/sparse.bin is truncated \(weight '.*' needs bytes up to \d+, file has 100\): copy or export the model again/,
    );
    const manifestFile = path.join(dir, 'sparse.json');
    const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8'));
    // A manifest is not trusted to name a file outside the folder.
    fs.writeFileSync(manifestFile, JSON.stringify({ ...manifest, data: '../outside.bin' }));
    await expect(loadSparseModel(dir)).rejects.toThrow(
      /sparse.json names the data file "..\/outside.bin", not a file in/,
    );
    fs.writeFileSync(manifestFile, '{"format": "normprune-sparse", ');
    await expect(loadSparseModel(dir)).rejects.toThrow(
      /sparse.json is not valid JSON \(.*\); export the model again/,
    );
  });
});

describe('loadSparseModel: damaged sparse.json / sparse.bin / model.json', () => {
  // A Dense kernel [4, 6] with every other weight dead (stored 'bitmask'), and its bias ('dense').
  let dir: string;
  let manifestFile: string;
  let modelFile: string;
  let manifest: { weights: Record<string, unknown>[] } & Record<string, unknown>;
  let modelJson: string;
  let model: tfl.Sequential;

  beforeAll(async () => {
    model = tfl.sequential({ layers: [tfl.layers.dense({ inputShape: [4], units: 6, name: 'd' })] });
    zeroKernelWhere(model, 'd', (i, o) => (i + o) % 2 === 0);
    dir = path.join(tmp, 'damaged');
    await exportModel(model, dir, { format: 'sparse' });
    manifestFile = path.join(dir, 'sparse.json');
    modelFile = path.join(dir, 'model.json');
    manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8'));
    modelJson = fs.readFileSync(modelFile, 'utf8');
    expect(manifest.weights.map((w) => w.encoding)).toEqual(['bitmask', 'dense']);
  });
  afterAll(() => model.dispose());
  afterEach(() => {
    fs.writeFileSync(manifestFile, JSON.stringify(manifest));
    fs.writeFileSync(modelFile, modelJson);
  });

  it('loads the undamaged export exactly', async () => {
    const again = await loadSparseModel(dir);
    const x = tf.ones([1, 4]);
    expect(maxDiff(predict1(model, x), predict1(again, x)).abs).toBe(0);
    x.dispose();
    again.dispose();
  });

  function predict1(m: tfl.LayersModel, x: tf.Tensor): Float32Array {
    return tf.tidy(() => (m.predict(x) as tf.Tensor).dataSync() as Float32Array);
  }

  const kernel = (edit: Record<string, unknown>) => (m: typeof manifest) => ({
    ...m,
    weights: [{ ...m.weights[0], ...edit }, m.weights[1]],
  });
  const bias = (edit: Record<string, unknown>) => (m: typeof manifest) => ({
    ...m,
    weights: [m.weights[0], { ...m.weights[1], ...edit }],
  });

  it.each<[string, (m: typeof manifest) => unknown, string]>([
    ['weights that is not an array', (m) => ({ ...m, weights: {} }), '"weights" must be an array'],
    [
      'a weight that is null',
      (m) => ({ ...m, weights: [null, m.weights[1]] }),
      'weights[0]: it is not an object',
    ],
    ['a weight without a name', kernel({ name: 7 }), 'weights[0]: "name" must be a non-empty string'],
    [
      'a negative dimension',
      bias({ shape: [-6] }),
      'weights[1] ("d/bias"): "shape" must be an array of non-negative integers',
    ],
    [
      'a value dtype other than float32/float16',
      bias({ valueDtype: 'int32' }),
      'weights[1] ("d/bias"): "valueDtype" must be "float32" or "float16"',
    ],
    [
      'an unknown encoding',
      bias({ encoding: 'rle' }),
      'weights[1] ("d/bias"): "encoding" must be "dense" or "bitmask"',
    ],
    [
      'a negative offset',
      bias({ offset: -24 }),
      'weights[1] ("d/bias"): "offset", "maskBytes" and "values" must be non-negative integers',
    ],
    [
      'a fractional value count',
      bias({ values: 5.5 }),
      'weights[1] ("d/bias"): "offset", "maskBytes" and "values" must be non-negative integers',
    ],
    [
      'a dense weight with fewer values than its shape',
      bias({ values: 5 }),
      'weights[1] ("d/bias"): a \'dense\' weight of shape [6] stores 6 values and no bitmask, not 5 values and 0 bitmask bytes',
    ],
    [
      'a dense weight with a bitmask',
      bias({ maskBytes: 1 }),
      'weights[1] ("d/bias"): a \'dense\' weight of shape [6] stores 6 values and no bitmask, not 6 values and 1 bitmask bytes',
    ],
    [
      'a bitmask shorter than its shape needs',
      kernel({ maskBytes: 2 }),
      'weights[0] ("d/kernel"): a \'bitmask\' weight of shape [4,6] has a bitmask of 3 bytes (a bit per group of its last two axes), not 2',
    ],
    [
      'a bitmask longer than its shape needs',
      kernel({ maskBytes: 4 }),
      'weights[0] ("d/kernel"): a \'bitmask\' weight of shape [4,6] has a bitmask of 3 bytes (a bit per group of its last two axes), not 4',
    ],
    [
      'a bitmask weight of rank 1',
      kernel({ shape: [24] }),
      'weights[0] ("d/kernel"): a \'bitmask\' weight needs at least 2 axes, shape is [24]',
    ],
    [
      'more values than the set bits',
      kernel({ values: 13 }),
      'weights[0] ("d/kernel"): its bitmask stores 12 groups of 1 values (12 values), but "values" says 13',
    ],
    [
      'fewer values than the set bits',
      kernel({ values: 11 }),
      'weights[0] ("d/kernel"): its bitmask stores 12 groups of 1 values (12 values), but "values" says 11',
    ],
    [
      'a huge shape behind a small bitmask',
      kernel({ shape: [1e6, 1e6, 4, 6] }),
      'weights[0] ("d/kernel"): its shape [1000000,1000000,4,6] has 24000000000000 elements, more than loadSparseModel holds (268435456)',
    ],
    [
      'a duplicated name',
      bias({ name: 'd/kernel' }),
      'weights[1] ("d/kernel"): the name is also weights[0]\'s',
    ],
  ])('refuses %s, naming sparse.json', async (_, damage, why) => {
    fs.writeFileSync(manifestFile, JSON.stringify(damage(manifest)));
    const err = (await loadSparseModel(dir).catch((e: Error) => e)) as Error;
    expect(err.message).toBe(`loadSparseModel: ${manifestFile}: ${why}; export the model again`);
    expect(err).toBeInstanceOf(ModelFileError);
    expect(err).toMatchObject({ code: 'damaged', file: manifestFile });
  });

  it('tells its failures apart by code, as fileSystem does, naming the file', async () => {
    const codeOf = async (d: string) => {
      const e = await loadSparseModel(d).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(ModelFileError);
      return { code: (e as ModelFileError).code, file: (e as ModelFileError).file };
    };
    const nowhere = path.join(tmp, 'nothing-exported');
    expect(await codeOf(nowhere)).toEqual({ code: 'missing', file: path.join(nowhere, 'model.json') });
    expect(await codeOf(path.join(dir, 'model.json'))).toEqual({
      code: 'invalid-argument',
      file: path.join(dir, 'model.json'),
    });
    fs.writeFileSync(manifestFile, JSON.stringify({ ...manifest, data: '../outside.bin' }));
    expect(await codeOf(dir)).toEqual({ code: 'unsafe-path', file: manifestFile });
    fs.writeFileSync(manifestFile, JSON.stringify({ ...manifest, data: 'gone.bin' }));
    expect(await codeOf(dir)).toEqual({ code: 'damaged', file: path.join(dir, 'gone.bin') });
    fs.writeFileSync(modelFile, '{"modelTopology": ');
    expect(await codeOf(dir)).toEqual({ code: 'damaged', file: modelFile });
    const tfjs = path.join(tmp, 'a-tfjs-export');
    await exportModel(model, tfjs);
    expect(await codeOf(tfjs)).toEqual({ code: 'unsupported', file: path.join(tfjs, 'model.json') });
  });

  it('refuses a weight the topology lacks or misses, naming both files', async () => {
    fs.writeFileSync(manifestFile, JSON.stringify({ ...manifest, weights: [manifest.weights[0]] }));
    await expect(loadSparseModel(dir)).rejects.toThrow(
      `loadSparseModel: the weights of ${manifestFile} do not fit the model in ${modelFile} ` +
        '(1 of 2 weights are not set: d/bias); export the model again',
    );
    fs.writeFileSync(manifestFile, JSON.stringify(kernel({ name: 'other' })(manifest)));
    await expect(loadSparseModel(dir)).rejects.toThrow(
      `loadSparseModel: the weights of ${manifestFile} do not fit the model in ${modelFile} (`,
    );
  });

  it.each([
    ['null', 'null'],
    ['an array', '[]'],
    ['without modelTopology', '{"weightsManifest": []}'],
  ])('refuses a model.json that is %s', async (_, text) => {
    fs.writeFileSync(modelFile, text);
    await expect(loadSparseModel(dir)).rejects.toThrow(
      `loadSparseModel: ${modelFile} is not a model.json (a JSON object with "modelTopology"); export the model again`,
    );
  });

  it.each([
    ['null', 'null'],
    ['an array', '[]'],
  ])('refuses a sparse.json that is %s', async (_, text) => {
    fs.writeFileSync(manifestFile, text);
    await expect(loadSparseModel(dir)).rejects.toThrow(
      `loadSparseModel: ${manifestFile} is not a normprune-sparse v1 manifest`,
    );
  });

  it.each(['../sparse.json', '/etc/passwd', 'sub/../../x.json'])(
    'refuses a sparseManifest outside the folder (%s)',
    async (name) => {
      fs.writeFileSync(modelFile, JSON.stringify({ ...JSON.parse(modelJson), sparseManifest: name }));
      await expect(loadSparseModel(dir)).rejects.toThrow(
        `names the manifest ${JSON.stringify(name)}, not a file in ${dir}`,
      );
    },
  );
});
