import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { fileSystem } from '../src/index.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';

let root: string;

beforeAll(async () => {
  await tf.setBackend('cpu');
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-fs-'));
});

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

afterEach(() => {
  jest.restoreAllMocks();
});

let counter = 0;
function freshDir(): string {
  return path.join(root, `m${counter++}`);
}

function sequential(inputs: number, hidden: number, seed: number): tfl.Sequential {
  const init = (s: number) => tfl.initializers.glorotUniform({ seed: s });
  return tfl.sequential({
    layers: [
      tfl.layers.dense({
        inputShape: [inputs],
        units: hidden,
        activation: 'relu',
        kernelInitializer: init(seed),
      }),
      tfl.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: init(seed + 1) }),
    ],
  });
}

function functional(): tfl.LayersModel {
  const input = tfl.input({ shape: [6] });
  const a = tfl.layers
    .dense({ units: 4, activation: 'tanh', name: 'left' })
    .apply(input) as tfl.SymbolicTensor;
  const b = tfl.layers
    .dense({ units: 5, activation: 'relu', name: 'right' })
    .apply(input) as tfl.SymbolicTensor;
  const joined = tfl.layers.concatenate().apply([a, b]) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: 2, name: 'out' }).apply(joined) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

async function predict(model: tfl.LayersModel, x: tf.Tensor): Promise<Float32Array> {
  const y = model.predict(x) as tf.Tensor;
  const data = (await y.data()) as Float32Array;
  y.dispose();
  return data;
}

function listDir(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}

describe('fileSystem round trip', () => {
  it('saves a Sequential model in the standard tfjs format and loads it back exactly', async () => {
    const dir = freshDir();
    const model = sequential(8, 16, 1);
    const x = tf.randomNormal([5, 8], 0, 1, 'float32', 7);
    const result = await expectNoLeak(() => model.save(fileSystem(dir)));
    expect(result.modelArtifactsInfo.weightDataBytes).toBe((8 * 16 + 16 + 16 * 3 + 3) * 4);

    expect(listDir(dir)).toEqual(['group1-shard1of1.bin', 'model.json']);
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
    expect(Object.keys(json)).toEqual(
      expect.arrayContaining(['modelTopology', 'weightsManifest', 'format', 'generatedBy', 'convertedBy']),
    );
    expect(json.format).toBe('layers-model');
    expect(json.weightsManifest).toHaveLength(1);
    expect(json.weightsManifest[0].paths).toEqual(['group1-shard1of1.bin']);
    expect(json.weightsManifest[0].weights.map((w: { shape: number[] }) => w.shape)).toEqual([
      [8, 16],
      [16],
      [16, 3],
      [3],
    ]);

    const loaded = await tfl.loadLayersModel(fileSystem(dir));
    expect(Array.from(await predict(loaded, x))).toEqual(Array.from(await predict(model, x)));
    x.dispose();
    model.dispose();
    loaded.dispose();
  });

  it('round-trips a functional model with branches', async () => {
    const dir = freshDir();
    const model = functional();
    const x = tf.randomUniform([3, 6], -1, 1, 'float32', 3);
    await model.save(fileSystem(dir));
    const loaded = await tfl.loadLayersModel(fileSystem(dir));
    expect(loaded.layers.map((l) => l.name)).toEqual(model.layers.map((l) => l.name));
    expect(Array.from(await predict(loaded, x))).toEqual(Array.from(await predict(model, x)));
    x.dispose();
    model.dispose();
    loaded.dispose();
  });

  it('keeps the optimizer state and user metadata when asked to', async () => {
    const dir = freshDir();
    const model = sequential(4, 4, 2);
    model.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
    const xs = tf.randomNormal([8, 4], 0, 1, 'float32', 5);
    const ys = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], 'int32'), 3);
    await model.fit(xs, ys, { epochs: 1, batchSize: 8, verbose: 0 });
    model.setUserDefinedMetadata({ compression: 3.5 });
    await model.save(fileSystem(dir), { includeOptimizer: true });
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
    expect(json.trainingConfig.loss).toBe('categorical_crossentropy');
    expect(json.userDefinedMetadata).toEqual({ compression: 3.5 });
    const loaded = await tfl.loadLayersModel(fileSystem(dir));
    expect(loaded.getUserDefinedMetadata()).toEqual({ compression: 3.5 });
    const [a, b] = [await model.optimizer.getWeights(), await loaded.optimizer.getWeights()];
    expect(b.map((w) => w.name)).toEqual(a.map((w) => w.name));
    for (let i = 0; i < a.length; i++)
      expect(Array.from(b[i].tensor.dataSync())).toEqual(Array.from(a[i].tensor.dataSync()));
    tf.dispose([xs, ys]);
    model.dispose();
    loaded.dispose();
  });

  it('splits weights into 4 MB shards named like tfjs', async () => {
    const dir = freshDir();
    // 1100 * 1000 float32 = 4.4 MB: two shards.
    const model = tfl.sequential({ layers: [tfl.layers.dense({ inputShape: [1100], units: 1000 })] });
    await model.save(fileSystem(dir));
    expect(listDir(dir)).toEqual(['group1-shard1of2.bin', 'group1-shard2of2.bin', 'model.json']);
    expect(fs.statSync(path.join(dir, 'group1-shard1of2.bin')).size).toBe(4 * 1024 * 1024);
    const artifacts = await fileSystem(dir).load!();
    expect(artifacts.weightData).toBeInstanceOf(ArrayBuffer);
    expect((artifacts.weightData as ArrayBuffer).byteLength).toBe((1100 * 1000 + 1000) * 4);
    const loaded = await tfl.loadLayersModel(fileSystem(dir));
    const [a, b] = [model.getWeights()[0], loaded.getWeights()[0]];
    expect(tf.util.arraysEqual(a.dataSync(), b.dataSync())).toBe(true);

    // Overwriting with a smaller model removes the shard it no longer needs.
    const small = sequential(3, 2, 5);
    await small.save(fileSystem(dir));
    expect(listDir(dir)).toEqual(['group1-shard1of1.bin', 'model.json']);
    const reloaded = await tfl.loadLayersModel(fileSystem(dir));
    expect(reloaded.countParams()).toBe(small.countParams());
    for (const m of [model, loaded, small, reloaded]) m.dispose();
  });

  it('round-trips a model without weights', async () => {
    const dir = freshDir();
    const model = tfl.sequential({ layers: [tfl.layers.flatten({ inputShape: [2, 3] })] });
    await model.save(fileSystem(dir));
    expect(listDir(dir)).toEqual(['model.json']);
    const loaded = await tfl.loadLayersModel(fileSystem(dir));
    expect(loaded.outputs[0].shape).toEqual([null, 6]);
    model.dispose();
    loaded.dispose();
  });

  it('accepts a file:// URL and a path to model.json', async () => {
    const dir = freshDir();
    const model = sequential(2, 2, 3);
    await model.save(fileSystem(pathToFileURL(dir).href));
    const a = await tfl.loadLayersModel(fileSystem(path.join(dir, 'model.json')));
    expect(a.countParams()).toBe(model.countParams());
    model.dispose();
    a.dispose();
  });

  it('creates missing parent directories and rejects a file in the way', async () => {
    const dir = path.join(freshDir(), 'a', 'b');
    const model = sequential(2, 2, 3);
    await model.save(fileSystem(dir));
    expect(fs.existsSync(path.join(dir, 'model.json'))).toBe(true);
    const file = path.join(root, 'not-a-dir');
    fs.writeFileSync(file, 'x');
    await expect(model.save(fileSystem(file))).rejects.toThrow(/not-a-dir/);
    model.dispose();
  });
});

describe('fileSystem atomic saves', () => {
  async function savedPair(): Promise<{
    dir: string;
    x: tf.Tensor;
    before: number[];
    model: tfl.LayersModel;
  }> {
    const dir = freshDir();
    const model = sequential(6, 5, 11);
    await model.save(fileSystem(dir));
    const x = tf.randomNormal([4, 6], 0, 1, 'float32', 1);
    return { dir, x, before: Array.from(await predict(model, x)), model };
  }

  async function expectPreviousIntact(dir: string, x: tf.Tensor, before: number[]): Promise<void> {
    const names = listDir(dir);
    expect(names.filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const loaded = await tfl.loadLayersModel(fileSystem(dir));
    expect(Array.from(await predict(loaded, x))).toEqual(before);
    loaded.dispose();
  }

  it('a failure while writing leaves the previous model intact and no temporary files', async () => {
    const { dir, x, before, model } = await savedPair();
    const other = sequential(6, 5, 99);
    const realOpen = fs.promises.open;
    let opens = 0;
    jest.spyOn(fs.promises, 'open').mockImplementation(async (...args: Parameters<typeof realOpen>) => {
      // The second file written is the new model.json (after the shard).
      if (String(args[0]).endsWith('.tmp') && ++opens === 2) throw new Error('ENOSPC: simulated full disk');
      return realOpen(...args);
    });
    await expect(other.save(fileSystem(dir))).rejects.toThrow(/simulated full disk/);
    jest.restoreAllMocks();
    await expectPreviousIntact(dir, x, before);
    x.dispose();
    model.dispose();
    other.dispose();
  });

  it('an interruption at any rename leaves a complete model.json: the previous model', async () => {
    // Count the renames of one overwrite, then fail each of them in turn.
    const probe = await savedPair();
    const realRename = fs.promises.rename;
    let total = 0;
    jest.spyOn(fs.promises, 'rename').mockImplementation(async (a, b) => {
      total++;
      return realRename(a, b);
    });
    await sequential(6, 5, 12).save(fileSystem(probe.dir));
    jest.restoreAllMocks();
    probe.x.dispose();
    probe.model.dispose();
    // repoint previous model.json, new shard, new model.json
    expect(total).toBe(3);

    for (let failAt = 1; failAt <= total; failAt++) {
      const { dir, x, before, model } = await savedPair();
      const other = sequential(6, 5, 100 + failAt);
      let n = 0;
      jest.spyOn(fs.promises, 'rename').mockImplementation(async (a, b) => {
        if (++n === failAt) throw new Error(`simulated crash at rename ${failAt}`);
        return realRename(a, b);
      });
      await expect(other.save(fileSystem(dir))).rejects.toThrow(/simulated crash/);
      jest.restoreAllMocks();
      await expectPreviousIntact(dir, x, before);
      // A later save still succeeds and cleans up what the interrupted one left.
      await other.save(fileSystem(dir));
      expect(listDir(dir)).toEqual(['group1-shard1of1.bin', 'model.json']);
      const loaded = await tfl.loadLayersModel(fileSystem(dir));
      expect(Array.from(await predict(loaded, x))).toEqual(Array.from(await predict(other, x)));
      for (const m of [model, other, loaded]) m.dispose();
      x.dispose();
    }
  });

  it('ignores stale temporary files left by a crashed process', async () => {
    const { dir, x, before, model } = await savedPair();
    fs.writeFileSync(path.join(dir, '.model.json.123-dead.tmp'), '{"modelTopology":');
    fs.writeFileSync(path.join(dir, '.group1-shard1of1.bin.123-dead.tmp'), Buffer.alloc(3));
    const loaded = await tfl.loadLayersModel(fileSystem(dir));
    expect(Array.from(await predict(loaded, x))).toEqual(before);
    await model.save(fileSystem(dir));
    const again = await tfl.loadLayersModel(fileSystem(dir));
    expect(Array.from(await predict(again, x))).toEqual(before);
    for (const m of [model, loaded, again]) m.dispose();
    x.dispose();
  });
});

describe('fileSystem errors name the file', () => {
  async function saved(): Promise<string> {
    const dir = freshDir();
    const model = sequential(3, 2, 4);
    await model.save(fileSystem(dir));
    model.dispose();
    return dir;
  }

  it('missing directory', async () => {
    const dir = path.join(root, 'nowhere');
    await expect(tfl.loadLayersModel(fileSystem(dir))).rejects.toThrow(`the directory ${dir} does not exist`);
  });

  it('missing model.json', async () => {
    const dir = await saved();
    fs.unlinkSync(path.join(dir, 'model.json'));
    await expect(tfl.loadLayersModel(fileSystem(dir))).rejects.toThrow(
      `${path.join(dir, 'model.json')} does not exist`,
    );
  });

  it('model.json that is not JSON', async () => {
    const dir = await saved();
    fs.writeFileSync(path.join(dir, 'model.json'), '{"modelTopology": {');
    await expect(tfl.loadLayersModel(fileSystem(dir))).rejects.toThrow(
      `${path.join(dir, 'model.json')} is not valid JSON`,
    );
  });

  it.each([
    ['modelTopology', /the key "modelTopology" is missing/],
    ['weightsManifest', /the key "weightsManifest" is missing/],
  ])('model.json without %s', async (key, message) => {
    const dir = await saved();
    const file = path.join(dir, 'model.json');
    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    delete json[key];
    fs.writeFileSync(file, JSON.stringify(json));
    const err = await tfl.loadLayersModel(fileSystem(dir)).catch((e: Error) => e);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).toContain(file);
  });

  it('model.json with a malformed manifest group', async () => {
    const dir = await saved();
    const file = path.join(dir, 'model.json');
    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    json.weightsManifest = [{ weights: [] }];
    fs.writeFileSync(file, JSON.stringify(json));
    await expect(tfl.loadLayersModel(fileSystem(dir))).rejects.toThrow(
      /weightsManifest\[0\] must have "paths"/,
    );
  });

  it('missing shard', async () => {
    const dir = await saved();
    const shard = path.join(dir, 'group1-shard1of1.bin');
    fs.unlinkSync(shard);
    await expect(tfl.loadLayersModel(fileSystem(dir))).rejects.toThrow(`weight shard ${shard}, listed in`);
  });

  it('truncated shard', async () => {
    const dir = await saved();
    const shard = path.join(dir, 'group1-shard1of1.bin');
    const size = fs.statSync(shard).size;
    fs.truncateSync(shard, size - 4);
    const err = (await tfl.loadLayersModel(fileSystem(dir)).catch((e: Error) => e)) as Error;
    expect(err.message).toContain(`weight shard ${shard} has ${size - 4} bytes`);
    expect(err.message).toContain(`needs ${size} bytes`);
    expect(err.message).toContain('truncated');
  });

  it('rejects an empty path', () => {
    expect(() => fileSystem('')).toThrow(/expected a directory path/);
  });
});
