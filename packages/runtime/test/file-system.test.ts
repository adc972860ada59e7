import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  fileSystem,
  isSaveFile,
  killedSaveTemp,
  makeDirs,
  ModelFileError,
  syncDir,
  writeFileDurably,
  type ModelFileErrorCode,
} from '../src/index.js';
import { constrainedModel, expectNoLeak } from '../../../tools/testing/leaks.js';

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
    // The extension in any case names the JSON file, not a folder to make.
    await model.save(fileSystem(path.join(dir, 'Upper.JSON')));
    expect(fs.statSync(path.join(dir, 'Upper.JSON')).isFile()).toBe(true);
    const b = await tfl.loadLayersModel(fileSystem(path.join(dir, 'Upper.JSON')));
    expect(b.countParams()).toBe(model.countParams());
    model.dispose();
    a.dispose();
    b.dispose();
  });

  it("accepts tfjs-node's relative file:// forms (file://./m, file://m) as paths from the cwd", async () => {
    // tfjs-node strips the scheme, so code written for it uses these; fileURLToPath throws on them.
    const dir = freshDir();
    makeDirs(dir);
    const cwd = process.cwd();
    const model = sequential(2, 2, 3);
    try {
      process.chdir(dir);
      await model.save(fileSystem('file://./dot-model'));
      await model.save(fileSystem('file://plain model'));
      expect(fs.existsSync(path.join(dir, 'dot-model', 'model.json'))).toBe(true);
      expect(fs.existsSync(path.join(dir, 'plain model', 'model.json'))).toBe(true);
      const a = await tfl.loadLayersModel(fileSystem('file://./dot-model/model.json'));
      expect(a.countParams()).toBe(model.countParams());
      a.dispose();
    } finally {
      process.chdir(cwd);
    }
    model.dispose();
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

describe('fileSystem: several models in one directory', () => {
  async function expectLoadsExactly(target: string, model: tfl.LayersModel): Promise<void> {
    const loaded = await tfl.loadLayersModel(fileSystem(target));
    const [a, b] = [model.getWeights(), loaded.getWeights()];
    expect(b.map((t) => t.shape)).toEqual(a.map((t) => t.shape));
    a.forEach((t, i) => expect(tf.util.arraysEqual(t.dataSync(), b[i].dataSync())).toBe(true));
    const x = tf.randomNormal([2, model.inputs[0].shape[1] as number], 0, 1, 'float32', 3);
    expect(Array.from(await predict(loaded, x))).toEqual(Array.from(await predict(model, x)));
    x.dispose();
    loaded.dispose();
  }

  function manifestOf(file: string): string[] {
    return JSON.parse(fs.readFileSync(file, 'utf8')).weightsManifest.flatMap((g: any) => g.paths);
  }

  /** 1100 * 1000 float32 = 4.4 MB: two shards. */
  const twoShards = (seed: number) =>
    tfl.sequential({
      layers: [
        tfl.layers.dense({
          inputShape: [1100],
          units: 1000,
          kernelInitializer: tfl.initializers.glorotUniform({ seed }),
        }),
      ],
    });

  it('a.json and b.json get their own shards, model.json keeps the tfjs names; all load back exactly', async () => {
    const dir = freshDir();
    const [a, b, m, v2] = [sequential(3, 2, 1), sequential(7, 5, 2), sequential(4, 6, 3), functional()];
    await expectNoLeak(async () => {
      await a.save(fileSystem(path.join(dir, 'a.json')));
      await b.save(fileSystem(path.join(dir, 'b.json')));
      await m.save(fileSystem(dir));
      await v2.save(fileSystem(pathToFileURL(path.join(dir, 'lenet.v2.json')).href));
    });
    expect(listDir(dir)).toEqual([
      'a.group1-shard1of1.bin',
      'a.json',
      'b.group1-shard1of1.bin',
      'b.json',
      'group1-shard1of1.bin',
      'lenet.v2.group1-shard1of1.bin',
      'lenet.v2.json',
      'model.json',
    ]);
    expect(manifestOf(path.join(dir, 'a.json'))).toEqual(['a.group1-shard1of1.bin']);
    expect(manifestOf(path.join(dir, 'model.json'))).toEqual(['group1-shard1of1.bin']);
    await expectLoadsExactly(path.join(dir, 'a.json'), a);
    await expectLoadsExactly(path.join(dir, 'b.json'), b);
    await expectLoadsExactly(dir, m);
    await expectLoadsExactly(path.join(dir, 'lenet.v2.json'), v2);
    for (const x of [a, b, m, v2]) x.dispose();
  });

  it("re-saving a.json with fewer shards removes only a's stale shards", async () => {
    const dir = freshDir();
    const [bigA, bigB, m] = [twoShards(1), twoShards(2), sequential(4, 6, 3)];
    await bigA.save(fileSystem(path.join(dir, 'a.json')));
    await bigB.save(fileSystem(path.join(dir, 'b.json')));
    await m.save(fileSystem(dir));
    // Left by an interrupted save of each JSON file: only a's goes with a's save.
    fs.writeFileSync(path.join(dir, 'a.group1-shard1of3.bin'), Buffer.alloc(8));
    fs.writeFileSync(path.join(dir, 'b.group1-shard1of3.bin'), Buffer.alloc(8));
    const smallA = sequential(5, 3, 4);
    await smallA.save(fileSystem(path.join(dir, 'a.json')));
    expect(listDir(dir)).toEqual(
      [
        'a.group1-shard1of1.bin',
        'a.json',
        'b.group1-shard1of2.bin',
        'b.group1-shard2of2.bin',
        'b.group1-shard1of3.bin',
        'b.json',
        'group1-shard1of1.bin',
        'model.json',
      ].sort(),
    );
    await expectLoadsExactly(path.join(dir, 'a.json'), smallA);
    await expectLoadsExactly(path.join(dir, 'b.json'), bigB);
    await expectLoadsExactly(dir, m);
    for (const x of [bigA, bigB, m, smallA]) x.dispose();
  });

  it('never deletes a shard another JSON file lists (models saved with the old shared names)', async () => {
    const dir = freshDir();
    const legacy = sequential(3, 4, 6);
    // What an older version wrote for fileSystem('dir/legacy.json'): unprefixed shard names.
    await legacy.save(fileSystem(dir));
    fs.renameSync(path.join(dir, 'model.json'), path.join(dir, 'legacy.json'));
    expect(manifestOf(path.join(dir, 'legacy.json'))).toEqual(['group1-shard1of1.bin']);
    // model.json now takes two shards: its clean-up must leave legacy.json's group1-shard1of1.bin.
    const big = twoShards(7);
    await big.save(fileSystem(dir));
    expect(listDir(dir)).toEqual([
      'group1-shard1of1.bin',
      'group1-shard1of2.bin',
      'group1-shard2of2.bin',
      'legacy.json',
      'model.json',
    ]);
    await expectLoadsExactly(path.join(dir, 'legacy.json'), legacy);
    // Re-saving legacy.json moves it to its own names and drops the old shard, which nothing else lists.
    await legacy.save(fileSystem(path.join(dir, 'legacy.json')));
    expect(listDir(dir)).toEqual([
      'group1-shard1of2.bin',
      'group1-shard2of2.bin',
      'legacy.group1-shard1of1.bin',
      'legacy.json',
      'model.json',
    ]);
    await expectLoadsExactly(path.join(dir, 'legacy.json'), legacy);
    await expectLoadsExactly(dir, big);
    legacy.dispose();
    big.dispose();
  });

  it("refuses a save whose shard names another JSON file lists, rather than replace that model's weights", async () => {
    const dir = freshDir();
    const kept = sequential(3, 4, 8);
    await kept.save(fileSystem(dir));
    // A user keeps the first model under another name; its manifest still lists group1-shard1of1.bin.
    fs.renameSync(path.join(dir, 'model.json'), path.join(dir, 'v1.json'));
    const next = sequential(3, 4, 9);
    await expect(next.save(fileSystem(dir))).rejects.toThrow(
      `fileSystem: cannot save ${path.join(dir, 'model.json')}: its weight file group1-shard1of1.bin is listed by ${path.join(dir, 'v1.json')}, another model in ${dir}, whose weights it would replace`,
    );
    expect(listDir(dir)).toEqual(['group1-shard1of1.bin', 'v1.json']);
    await expectLoadsExactly(path.join(dir, 'v1.json'), kept);
    // Under a name of its own, the save goes ahead beside it.
    await next.save(fileSystem(path.join(dir, 'v2.json')));
    await expectLoadsExactly(path.join(dir, 'v1.json'), kept);
    await expectLoadsExactly(path.join(dir, 'v2.json'), next);
    kept.dispose();
    next.dispose();
  });

  // fileSystem('dir/V1.JSON') saves and loads a model JSON file whatever the case of its
  // extension; the other models of the folder were looked for among '.json' names only, so a
  // model.json renamed to V1.JSON had its shard replaced by the next save, silently.
  it.each(['V1.JSON', 'v1.Json', 'Model.JSON'])(
    'refuses the same clash with %s, a JSON file whose extension is not lower case',
    async (name) => {
      const dir = freshDir();
      const kept = sequential(3, 4, 8);
      await kept.save(fileSystem(dir));
      fs.renameSync(path.join(dir, 'model.json'), path.join(dir, name));
      const next = sequential(3, 4, 9);
      await expect(next.save(fileSystem(dir))).rejects.toMatchObject({
        code: 'shard-clash',
        file: path.join(dir, 'group1-shard1of1.bin'),
      });
      expect(listDir(dir)).toEqual(['group1-shard1of1.bin', name].sort());
      await expectLoadsExactly(path.join(dir, name), kept);
      // A later save of model.json never deletes a shard the other file lists either.
      const big = twoShards(7);
      await big.save(fileSystem(dir));
      await expectLoadsExactly(path.join(dir, name), kept);
      await expectLoadsExactly(dir, big);
      kept.dispose();
      next.dispose();
      big.dispose();
    },
  );

  it('names a model JSON file whose extension is not lower case when model.json is missing', async () => {
    const dir = freshDir();
    const m = sequential(3, 4, 8);
    await m.save(fileSystem(path.join(dir, 'Best.JSON')));
    await expect(tfl.loadLayersModel(fileSystem(dir))).rejects.toThrow(
      `fileSystem('${path.join(dir, 'Best.JSON')}')`,
    );
    m.dispose();
  });
});

describe('fileSystem atomic saves', () => {
  async function savedPair(jsonName = 'model.json'): Promise<{
    dir: string;
    x: tf.Tensor;
    before: number[];
    model: tfl.LayersModel;
  }> {
    const dir = freshDir();
    const model = sequential(6, 5, 11);
    await model.save(fileSystem(path.join(dir, jsonName)));
    const x = tf.randomNormal([4, 6], 0, 1, 'float32', 1);
    return { dir, x, before: Array.from(await predict(model, x)), model };
  }

  async function expectPreviousIntact(target: string, x: tf.Tensor, before: number[]): Promise<void> {
    const dir = target.endsWith('.json') ? path.dirname(target) : target;
    const names = listDir(dir);
    expect(names.filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const loaded = await tfl.loadLayersModel(fileSystem(target));
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

  it.each([
    ['model.json', ['group1-shard1of1.bin', 'model.json']],
    ['a.json', ['a.group1-shard1of1.bin', 'a.json', 'b.group1-shard1of1.bin', 'b.json']],
  ])('an interruption at any rename leaves a complete %s: the previous model', async (jsonName, files) => {
    // a.json shares its directory with b.json, which must come through every interruption untouched.
    const target = (dir: string) => (jsonName === 'model.json' ? dir : path.join(dir, jsonName));
    const neighbour = sequential(4, 3, 21);
    const savedWithNeighbour = async () => {
      const pair = await savedPair(jsonName);
      if (jsonName !== 'model.json') await neighbour.save(fileSystem(path.join(pair.dir, 'b.json')));
      return pair;
    };
    // Count the renames of one overwrite, then fail each of them in turn.
    const probe = await savedWithNeighbour();
    const realRename = fs.promises.rename;
    let total = 0;
    jest.spyOn(fs.promises, 'rename').mockImplementation(async (a, b) => {
      total++;
      return realRename(a, b);
    });
    await sequential(6, 5, 12).save(fileSystem(target(probe.dir)));
    jest.restoreAllMocks();
    probe.x.dispose();
    probe.model.dispose();
    // repoint previous JSON file, new shard, new JSON file
    expect(total).toBe(3);

    for (let failAt = 1; failAt <= total; failAt++) {
      const { dir, x, before, model } = await savedWithNeighbour();
      const other = sequential(6, 5, 100 + failAt);
      let n = 0;
      jest.spyOn(fs.promises, 'rename').mockImplementation(async (a, b) => {
        if (++n === failAt) throw new Error(`simulated crash at rename ${failAt}`);
        return realRename(a, b);
      });
      await expect(other.save(fileSystem(target(dir)))).rejects.toThrow(/simulated crash/);
      jest.restoreAllMocks();
      await expectPreviousIntact(target(dir), x, before);
      // A later save still succeeds and cleans up what the interrupted one left.
      await other.save(fileSystem(target(dir)));
      expect(listDir(dir)).toEqual(files);
      const loaded = await tfl.loadLayersModel(fileSystem(target(dir)));
      expect(Array.from(await predict(loaded, x))).toEqual(Array.from(await predict(other, x)));
      if (jsonName !== 'model.json') {
        const b = await tfl.loadLayersModel(fileSystem(path.join(dir, 'b.json')));
        const xb = tf.ones([1, 4]);
        expect(Array.from(await predict(b, xb))).toEqual(Array.from(await predict(neighbour, xb)));
        xb.dispose();
        b.dispose();
      }
      for (const m of [model, other, loaded]) m.dispose();
      x.dispose();
    }
    neighbour.dispose();
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

  it("the next save deletes a dead process's leftovers, not a live one's or what a model lists", async () => {
    const { dir, x, model } = await savedPair();
    // pid 4999999 is above Linux's pid limit: that process is gone.
    const dead = [
      '.model.json.4999999-0123abcd.tmp',
      '.group1-shard1of1.bin.4999999-0123abcd.tmp',
      '.prev-4999999-0123abcd-group1-shard1of1.bin',
    ];
    const live = `.group1-shard1of1.bin.${process.pid}-0123abcd.tmp`;
    // A killed save's backup that a model JSON was repointed at stays: that model reads it.
    const listed = '.prev-4999998-0123abcd-group1-shard1of1.bin';
    for (const f of [...dead, live]) fs.writeFileSync(path.join(dir, f), Buffer.alloc(3));
    fs.copyFileSync(path.join(dir, 'group1-shard1of1.bin'), path.join(dir, listed));
    const old = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
    old.weightsManifest[0].paths = [listed];
    fs.writeFileSync(path.join(dir, 'old.json'), JSON.stringify(old));
    await model.save(fileSystem(dir));
    const names = listDir(dir);
    for (const f of dead) expect(names).not.toContain(f);
    expect(names).toContain(live);
    expect(names).toContain(listed);
    const kept = await tfl.loadLayersModel(fileSystem(path.join(dir, 'old.json')));
    expect(Array.from(await predict(kept, x))).toEqual(Array.from(await predict(model, x)));
    kept.dispose();
    model.dispose();
    x.dispose();
  });
});

describe('fileSystem errors carry a code and the file', () => {
  const json = (dir: string) => path.join(dir, 'model.json');
  const shard = (dir: string) => path.join(dir, 'group1-shard1of1.bin');
  const edit = (dir: string, change: (m: Record<string, unknown>) => void) => {
    const m = JSON.parse(fs.readFileSync(json(dir), 'utf8'));
    change(m);
    fs.writeFileSync(json(dir), JSON.stringify(m));
  };
  // [case, how the saved folder is damaged, code, the file the error names]
  const cases: [string, (dir: string) => void, ModelFileErrorCode, (dir: string) => string][] = [
    ['no folder', (dir) => fs.rmSync(dir, { recursive: true }), 'missing', (dir) => dir],
    [
      'a file where the folder should be',
      (dir) => {
        fs.rmSync(dir, { recursive: true });
        fs.writeFileSync(dir, '');
      },
      'missing',
      (dir) => dir,
    ],
    ['no model.json', (dir) => fs.unlinkSync(json(dir)), 'missing', json],
    ['model.json cut short', (dir) => fs.truncateSync(json(dir), 20), 'damaged', json],
    ['model.json a JSON array', (dir) => fs.writeFileSync(json(dir), '[]'), 'damaged', json],
    ['no modelTopology', (dir) => edit(dir, (m) => delete m.modelTopology), 'damaged', json],
    [
      'a manifest group without paths',
      (dir) => edit(dir, (m) => (m.weightsManifest = [{ weights: [] }])),
      'damaged',
      json,
    ],
    [
      'a weight entry without a shape',
      (dir) =>
        edit(
          dir,
          (m) => delete (m.weightsManifest as { weights: { shape?: number[] }[] }[])[0].weights[0].shape,
        ),
      'damaged',
      json,
    ],
    ['no shard', (dir) => fs.unlinkSync(shard(dir)), 'damaged', shard],
    ['a truncated shard', (dir) => fs.truncateSync(shard(dir), 8), 'damaged', shard],
    [
      'a folder in place of the shard',
      (dir) => {
        fs.unlinkSync(shard(dir));
        fs.mkdirSync(shard(dir));
      },
      'damaged',
      shard,
    ],
    [
      'a shard path outside the folder',
      (dir) => edit(dir, (m) => ((m.weightsManifest as { paths: string[] }[])[0].paths = ['../x.bin'])),
      'unsafe-path',
      json,
    ],
  ];

  it.each(cases)('%s', async (_, damage, code, file) => {
    const dir = freshDir();
    const model = sequential(3, 2, 4);
    await model.save(fileSystem(dir));
    model.dispose();
    damage(dir);
    const err = await tfl.loadLayersModel(fileSystem(dir)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelFileError);
    expect(err).toMatchObject({ name: 'ModelFileError', code, file: file(dir) });
    expect((err as Error).message).toContain(file(dir));
  });

  it('a folder without model.json but with a model saved as a.json names it and how to load it', async () => {
    const dir = freshDir();
    const model = sequential(3, 2, 4);
    await model.save(fileSystem(path.join(dir, 'a.json')));
    const err = await tfl.loadLayersModel(fileSystem(dir)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'missing', file: json(dir) });
    expect((err as Error).message).toBe(
      `Cannot load model: ${json(dir)} does not exist (no model has been saved in ${dir} under that name); ` +
        `${dir} holds 'a.json': to load a model saved as one of them, pass its path, ` +
        `fileSystem('${path.join(dir, 'a.json')}')`,
    );
    const loaded = await tfl.loadLayersModel(fileSystem(path.join(dir, 'a.json')));
    expect(tf.tidy(() => (loaded.predict(tf.ones([1, 3])) as tf.Tensor).shape)).toEqual([1, 3]);
    loaded.dispose();
    model.dispose();
  });

  it('an unreadable model.json is read-failed, with the fs error as its cause', async () => {
    const dir = freshDir();
    const model = sequential(3, 2, 4);
    await model.save(fileSystem(dir));
    model.dispose();
    const denied = Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
    jest.spyOn(fs.promises, 'readFile').mockRejectedValueOnce(denied);
    const err = await tfl.loadLayersModel(fileSystem(dir)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'read-failed', file: json(dir), cause: denied });
  });

  it('saves: a clash with another model, a folder that cannot be made, no path', async () => {
    const dir = freshDir();
    const model = sequential(3, 2, 4);
    await model.save(fileSystem(path.join(dir, 'a.json')));
    // b.json listing model.json's shard name, as a model saved by an old version would.
    const a = JSON.parse(fs.readFileSync(path.join(dir, 'a.json'), 'utf8'));
    a.weightsManifest[0].paths = ['group1-shard1of1.bin'];
    fs.copyFileSync(path.join(dir, 'a.group1-shard1of1.bin'), shard(dir));
    fs.writeFileSync(path.join(dir, 'b.json'), JSON.stringify(a));
    await expect(model.save(fileSystem(dir))).rejects.toMatchObject({
      code: 'shard-clash',
      file: shard(dir),
    });
    const blocker = path.join(dir, 'blocker');
    fs.writeFileSync(blocker, '');
    await expect(model.save(fileSystem(path.join(blocker, 'm')))).rejects.toMatchObject({
      code: 'save-failed',
      file: path.join(blocker, 'm'),
    });
    expect(() => fileSystem('')).toThrow(expect.objectContaining({ code: 'invalid-argument' }));
    model.dispose();
  });
});

describe('fileSystem save refuses what its load would refuse, writing nothing', () => {
  // Each of these saved "successfully" before, replacing a loadable model with one that load refused
  // (no modelTopology: "damaged"; short data: "truncated", blaming the disk for a bad save call).
  const f32 = (...v: number[]) => new Float32Array(v).buffer;
  const spec = (name: string, shape: number[], dtype: tf.DataType = 'float32') => ({ name, shape, dtype });

  /** A folder holding a saved model, its files' bytes, and a check that both are unchanged and it loads. */
  async function existingModel(): Promise<{ dir: string; unchanged: () => Promise<void> }> {
    const dir = freshDir();
    const model = sequential(3, 2, 11);
    await model.save(fileSystem(dir));
    const weights = model.getWeights().map((w) => Array.from(w.dataSync()));
    model.dispose();
    const snapshot = () =>
      Object.fromEntries(
        fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f)).toString('hex')]),
      );
    const before = snapshot();
    return {
      dir,
      unchanged: async () => {
        expect(snapshot()).toEqual(before);
        const loaded = await tfl.loadLayersModel(fileSystem(dir));
        expect(loaded.getWeights().map((w) => Array.from(w.dataSync()))).toEqual(weights);
        loaded.dispose();
      },
    };
  }

  async function saveError(dir: string, artifacts: tf.io.ModelArtifacts): Promise<ModelFileError> {
    const err = await fileSystem(dir).save!(artifacts).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ModelFileError);
    expect(err).toMatchObject({ code: 'invalid-argument', file: path.join(dir, 'model.json') });
    expect((err as Error).message).toMatch(/; nothing was written \(a model already there is unchanged\)$/);
    return err as ModelFileError;
  }

  it('weights without a modelTopology', async () => {
    const { dir, unchanged } = await existingModel();
    const err = await saveError(dir, { weightSpecs: [spec('w', [3])], weightData: f32(1, 2, 3) });
    expect(err.message).toMatch(/: the artifacts have no modelTopology \(weights alone\)/);
    await unchanged();
    // Into a folder that does not exist: nothing is created.
    const fresh = freshDir();
    await saveError(fresh, { modelTopology: null as unknown as object, weightSpecs: [], weightData: f32() });
    expect(fs.existsSync(fresh)).toBe(false);
  });

  it('weight data shorter or longer than the specs need', async () => {
    const { dir, unchanged } = await existingModel();
    const short = await saveError(dir, {
      modelTopology: {},
      weightSpecs: [spec('w', [5])],
      weightData: f32(1, 2),
    });
    expect(short.message).toContain('weightData has 8 bytes, but weightSpecs (1 weight) need 20');
    const long = await saveError(dir, {
      modelTopology: {},
      weightSpecs: [spec('w', [2]), spec('b', [1], 'int32')],
      weightData: [f32(1, 2), f32(3, 4)],
    });
    expect(long.message).toContain('weightData has 16 bytes, but weightSpecs (2 weights) need 12');
    const none = await saveError(dir, { modelTopology: {}, weightSpecs: [spec('w', [1])] });
    expect(none.message).toContain('weightData has 0 bytes, but weightSpecs (1 weight) need 4');
    await unchanged();
  });

  it('string weights whose length prefixes do not match the data, and a weight spec load rejects', async () => {
    const { dir, unchanged } = await existingModel();
    // One string of length 10 announced, 3 bytes given.
    const data = new Uint8Array([10, 0, 0, 0, 97, 98, 99]);
    const err = await saveError(dir, {
      modelTopology: {},
      weightSpecs: [spec('s', [1], 'string')],
      weightData: data.buffer,
    });
    expect(err.message).toMatch(
      /its string weights do not match weightData \(the string weight "s" in weightData runs past the end/,
    );
    const bad = await saveError(dir, {
      modelTopology: {},
      weightSpecs: [{ name: 'w', shape: [1], dtype: 'float64' as tf.DataType }],
      weightData: f32(1, 2),
    });
    expect(bad.message).toMatch(
      /weightSpecs\[0\] \("w"\) is not a valid weight entry: "dtype" must be one of/,
    );
    const notBytes = await saveError(dir, {
      modelTopology: {},
      weightSpecs: [spec('w', [2])],
      weightData: [1, 2] as unknown as ArrayBuffer,
    });
    expect(notBytes.message).toContain('weightData[0] is number, not an ArrayBuffer');
    await unchanged();
  });

  it("takes typed arrays, as tfjs's own savers do, each as the bytes it views", async () => {
    const dir = freshDir();
    const big = new Float32Array([9, 1.5, 2.5, 9]);
    const artifacts: tf.io.ModelArtifacts = {
      modelTopology: {},
      weightSpecs: [spec('a', [2]), spec('b', [1]), spec('c', [1], 'int32')],
      // A view of part of a buffer, a whole Float32Array, an Int32Array: 8 + 4 + 4 bytes.
      weightData: [
        big.subarray(1, 3),
        new Float32Array([3.5]),
        new Int32Array([-7]),
      ] as unknown as ArrayBuffer[],
    };
    const result = await fileSystem(dir).save!(artifacts);
    expect(result.modelArtifactsInfo.weightDataBytes).toBe(16);
    expect(fs.statSync(path.join(dir, 'group1-shard1of1.bin')).size).toBe(16);
    const loaded = await fileSystem(dir).load!();
    const bytes = loaded.weightData as ArrayBuffer;
    expect(Array.from(new Float32Array(bytes, 0, 3))).toEqual([1.5, 2.5, 3.5]);
    expect(Array.from(new Int32Array(bytes, 12, 1))).toEqual([-7]);
    // A single Float32Array (the repro: it was written as 2 bytes, which load called truncated).
    const one = freshDir();
    await fileSystem(one).save!({
      modelTopology: {},
      weightSpecs: [spec('w', [2])],
      weightData: new Float32Array([1.5, 2.5]) as unknown as ArrayBuffer,
    });
    expect(Array.from(new Float32Array((await fileSystem(one).load!()).weightData as ArrayBuffer))).toEqual([
      1.5, 2.5,
    ]);
  });
});

describe('fileSystem: unsupported saves and failed shard reads', () => {
  it('refuses to save a GraphDef (binary modelTopology) as unsupported, before creating anything', async () => {
    const dir = path.join(freshDir(), 'graph');
    const err = await fileSystem(dir).save!({
      modelTopology: new ArrayBuffer(16),
      weightSpecs: [],
      weightData: new ArrayBuffer(0),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelFileError);
    expect(err).toMatchObject({ name: 'ModelFileError', code: 'unsupported', file: dir });
    expect((err as Error).message).toBe(
      'fileSystem: saving a binary (GraphDef) topology is not supported; save a LayersModel.',
    );
    expect(fs.existsSync(path.dirname(dir))).toBe(false);
  });

  /**
   * A saved model whose one shard is split into a.bin and b.bin (both listed by
   * model.json), so that an error must name the second shard, not the first.
   */
  async function twoShards(): Promise<{ dir: string; a: string; b: string; sizes: number[] }> {
    const dir = freshDir();
    const model = sequential(3, 2, 4);
    await model.save(fileSystem(dir));
    model.dispose();
    const bytes = fs.readFileSync(path.join(dir, 'group1-shard1of1.bin'));
    fs.unlinkSync(path.join(dir, 'group1-shard1of1.bin'));
    const [a, b] = [path.join(dir, 'a.bin'), path.join(dir, 'b.bin')];
    fs.writeFileSync(a, bytes.subarray(0, 12));
    fs.writeFileSync(b, bytes.subarray(12));
    const file = path.join(dir, 'model.json');
    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    json.weightsManifest[0].paths = ['a.bin', 'b.bin'];
    fs.writeFileSync(file, JSON.stringify(json));
    // Both halves load as the whole did.
    const loaded = await tfl.loadLayersModel(fileSystem(dir));
    loaded.dispose();
    return { dir, a, b, sizes: [12, bytes.length - 12] };
  }

  async function loadError(dir: string): Promise<ModelFileError> {
    const err = await expectNoLeak(() => fileSystem(dir).load!().catch((e: unknown) => e));
    expect(err).toBeInstanceOf(ModelFileError);
    return err as ModelFileError;
  }

  const errno = (code: string, message: string) => Object.assign(new Error(message), { code });

  it('a shard whose stat fails other than with ENOENT is read-failed, not damaged', async () => {
    const { dir, b } = await twoShards();
    const denied = errno('EACCES', `EACCES: permission denied, stat '${b}'`);
    const stat = fs.promises.stat;
    const statted: string[] = [];
    jest.spyOn(fs.promises, 'stat').mockImplementation((async (...args: Parameters<typeof stat>) => {
      statted.push(String(args[0]));
      if (args[0] === b) throw denied;
      return stat(...args);
    }) as typeof stat);
    const opened = jest.spyOn(fs.promises, 'open');
    const err = await loadError(dir);
    expect(err).toMatchObject({ name: 'ModelFileError', code: 'read-failed', file: b, cause: denied });
    expect(err.message).toBe(
      `Cannot load model: reading weight shard ${b} failed: EACCES: permission denied, stat '${b}'`,
    );
    // Every shard is stat-ed before any is opened.
    expect(statted.slice(-2)).toEqual([path.join(dir, 'a.bin'), b]);
    expect(opened).not.toHaveBeenCalled();
  });

  it.each([
    ['opening it fails (EACCES)', 'open', 'EACCES', 'EACCES: permission denied, open'],
    ['reading it fails (EIO)', 'read', 'EIO', 'EIO: i/o error, read'],
  ])('a shard whose %s is read-failed, with the fs error as its cause', async (_, where, code, text) => {
    const { dir, a, b } = await twoShards();
    const cause = errno(code, text);
    const open = fs.promises.open;
    const opened: string[] = [];
    let closed = 0;
    jest.spyOn(fs.promises, 'open').mockImplementation(async (...args: Parameters<typeof open>) => {
      opened.push(String(args[0]));
      if (args[0] === b && where === 'open') throw cause;
      const handle = await open(...args);
      const close = handle.close.bind(handle);
      handle.close = async () => {
        closed++;
        return close();
      };
      if (args[0] === b) handle.read = (async () => Promise.reject(cause)) as typeof handle.read;
      return handle;
    });
    const err = await loadError(dir);
    expect(err).toMatchObject({ name: 'ModelFileError', code: 'read-failed', file: b, cause });
    expect(err.message).toBe(`Cannot load model: reading weight shard ${b} failed: ${text}`);
    expect(opened).toEqual([a, b]);
    // Every handle opened was closed, the failing one included.
    expect(closed).toBe(opened.length - (where === 'open' ? 1 : 0));
  });

  it('a shard that shrinks between its stat and its read is read-failed: load again', async () => {
    const { dir, b, sizes } = await twoShards();
    const open = fs.promises.open;
    jest.spyOn(fs.promises, 'open').mockImplementation(async (...args: Parameters<typeof open>) => {
      // Another process cuts the shard short after load stat-ed it.
      if (args[0] === b) fs.truncateSync(b, sizes[1] - 5);
      return open(...args);
    });
    const err = await loadError(dir);
    expect(err).toMatchObject({ name: 'ModelFileError', code: 'read-failed', file: b });
    expect(err.cause).toBeUndefined();
    expect(err.message).toBe(
      `Cannot load model: weight shard ${b} shrank from ${sizes[1]} to ${sizes[1] - 5} bytes while it was read; load again`,
    );
    // Loaded again, the shard now short from the start is refused from its stat, as damaged.
    jest.restoreAllMocks();
    expect(await loadError(dir)).toMatchObject({ code: 'damaged', file: b });
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

  it("makeDirs creates missing parents, and fails at once where Node's recursive mkdir hangs", async () => {
    const dir = path.join(freshDir(), 'a', 'b', 'c');
    makeDirs(dir);
    makeDirs(dir); // an existing folder is fine
    expect(fs.statSync(dir).isDirectory()).toBe(true);
    const file = path.join(dir, 'f');
    fs.writeFileSync(file, '');
    expect(() => makeDirs(path.join(file, 'x'))).toThrow(/ENOTDIR/);
    expect(() => makeDirs(file)).toThrow(`EEXIST: ${file} exists and is not a directory`);
    // Under /proc, fs.mkdirSync(..., { recursive: true }) never returns on Node 20.
    if (fs.existsSync('/proc/self')) {
      expect(() => makeDirs('/proc/normprune-test/x')).toThrow(/ENOENT/);
      const model = sequential(3, 2, 4);
      await expect(model.save(fileSystem('/proc/normprune-test/x'))).rejects.toThrow(
        /fileSystem: cannot create model directory \/proc\/normprune-test\/x: ENOENT/,
      );
      model.dispose();
    }
  });

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

  // SECRET stands for the absolute path of a 32-byte file next to the model
  // folder: exactly what the model's manifest needs, so only the path check can stop it.
  it.each([
    ['a relative path that climbs out', '../secret.bin', "it leads outside the model's folder"],
    ['a climb through a subfolder', 'sub/../../secret.bin', "it leads outside the model's folder"],
    ['a deep climb to /etc/passwd', '../../../../../etc/passwd', "it leads outside the model's folder"],
    ['an absolute path', 'SECRET', 'it is absolute'],
    ['the folder itself', '.', "it leads outside the model's folder"],
    ['an empty path', '', 'it is empty'],
  ])('refuses a weight path outside the folder (%s) before reading anything', async (_, given, why) => {
    const dir = await saved();
    const file = path.join(dir, 'model.json');
    const secret = path.join(path.dirname(dir), 'secret.bin');
    fs.writeFileSync(secret, Buffer.alloc(32, 7));
    const p = given === 'SECRET' ? secret : given;
    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    json.weightsManifest[0].paths = [p];
    fs.writeFileSync(file, JSON.stringify(json));
    const opened = jest.spyOn(fs.promises, 'open');
    const read = jest.spyOn(fs.promises, 'readFile');
    const stat = jest.spyOn(fs.promises, 'stat');
    const err = (await tfl.loadLayersModel(fileSystem(dir)).catch((e: Error) => e)) as Error;
    expect(err.message).toBe(
      `${file}: weightsManifest[0] lists the weight path ${JSON.stringify(p)}, ` +
        `which is not allowed: ${why}. Weight shards must be files inside ${dir}, named relative to it ` +
        `(e.g. "group1-shard1of1.bin").`,
    );
    expect(opened).not.toHaveBeenCalled();
    expect(read.mock.calls.map((c) => c[0])).toEqual([file]);
    expect(stat.mock.calls.map((c) => c[0])).toEqual([dir]);
  });

  it('loads shards from a subfolder of the model folder, as the tfjs converter may write them', async () => {
    const dir = await saved();
    const file = path.join(dir, 'model.json');
    fs.mkdirSync(path.join(dir, 'sub'));
    fs.renameSync(path.join(dir, 'group1-shard1of1.bin'), path.join(dir, 'sub', 'group1-shard1of1.bin'));
    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    json.weightsManifest[0].paths = ['sub/group1-shard1of1.bin'];
    fs.writeFileSync(file, JSON.stringify(json));
    const reference = sequential(3, 2, 4);
    const loaded = await tfl.loadLayersModel(fileSystem(dir));
    const x = tf.tensor2d([[1, -2, 3]]);
    expect(Array.from(await predict(loaded, x))).toEqual(Array.from(await predict(reference, x)));
    tf.dispose(x);
    loaded.dispose();
    reference.dispose();
  });

  it.each([
    [
      'without shape',
      { name: 'dense_x/kernel', dtype: 'float32' },
      '"shape" must be an array of non-negative integers',
    ],
    [
      'with a negative dimension',
      { name: 'k', shape: [3, -2], dtype: 'float32' },
      '"shape" must be an array of non-negative integers',
    ],
    [
      'with a fractional dimension',
      { name: 'k', shape: [1.5], dtype: 'float32' },
      '"shape" must be an array of non-negative integers',
    ],
    ['without name', { shape: [3, 2], dtype: 'float32' }, '"name" must be a non-empty string'],
    [
      'with an unknown dtype',
      { name: 'k', shape: [3, 2], dtype: 'float64' },
      '"dtype" must be one of float32, int32, bool, string, complex64',
    ],
    [
      'with an unknown quantization dtype',
      { name: 'k', shape: [3, 2], dtype: 'float32', quantization: { dtype: 'int4' } },
      '"quantization.dtype" must be one of uint8, uint16, float16',
    ],
    ['that is not an object', 7, 'it is not an object'],
    // tfjs decodes uint8/uint16 as v * scale + min: a string or missing scale gave NaN or
    // string-concatenated weights without an error, or a tfjs error naming no file.
    [
      'quantized to uint8 without scale and min',
      { name: 'k', shape: [3, 2], dtype: 'float32', quantization: { dtype: 'uint8' } },
      '"quantization" (uint8) needs finite numbers "scale" and "min"',
    ],
    [
      'quantized to uint8 with a string scale',
      { name: 'k', shape: [3, 2], dtype: 'float32', quantization: { dtype: 'uint8', scale: 'x', min: 0 } },
      '"quantization" (uint8) needs finite numbers "scale" and "min"',
    ],
    [
      'quantized to uint16 with a string min',
      { name: 'k', shape: [3, 2], dtype: 'float32', quantization: { dtype: 'uint16', scale: 1, min: '5' } },
      '"quantization" (uint16) needs finite numbers "scale" and "min"',
    ],
    [
      'of dtype int32 quantized to float16',
      { name: 'k', shape: [3, 2], dtype: 'int32', quantization: { dtype: 'float16' } },
      '"quantization.dtype" float16 is only for "dtype" float32',
    ],
    [
      'of dtype bool quantized to uint8',
      { name: 'k', shape: [3, 2], dtype: 'bool', quantization: { dtype: 'uint8', scale: 1, min: 0 } },
      '"quantization.dtype" uint8 is only for "dtype" float32 or int32',
    ],
  ])('names the JSON file and a weight entry %s', async (_, entry, why) => {
    const dir = await saved();
    const file = path.join(dir, 'model.json');
    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    json.weightsManifest[0].weights[1] = entry;
    fs.writeFileSync(file, JSON.stringify(json));
    const name = (entry as { name?: string }).name;
    const err = (await tfl.loadLayersModel(fileSystem(dir)).catch((e: Error) => e)) as Error;
    expect(err.message).toBe(
      `${file}: weightsManifest[0].weights[1]${name ? ` ("${name}")` : ''} is not a valid weight entry: ${why}. ` +
        'Each entry needs {"name": string, "shape": [non-negative integers], "dtype": "float32" | ...}; ' +
        're-save or re-convert the model.',
    );
  });

  it('refuses a shard larger than the manifest says without reading it', async () => {
    const dir = await saved();
    const shard = path.join(dir, 'group1-shard1of1.bin');
    const size = fs.statSync(shard).size;
    fs.truncateSync(shard, 64 * 1024 * 1024); // sparse: large on paper, cheap on disk
    const opened = jest.spyOn(fs.promises, 'open');
    const read = jest.spyOn(fs.promises, 'readFile');
    const err = (await tfl.loadLayersModel(fileSystem(dir)).catch((e: Error) => e)) as Error;
    expect(err.message).toBe(
      `Cannot load model: weight shard ${shard} has ${64 * 1024 * 1024} bytes, but ${path.join(dir, 'model.json')} ` +
        `(weightsManifest[0]) needs ${size} bytes (does not belong to this model.json)`,
    );
    expect(opened).not.toHaveBeenCalled();
    expect(read.mock.calls.map((c) => c[0])).toEqual([path.join(dir, 'model.json')]);
  });

  // A string weight's size is known only from the 4-byte length before each
  // string. tfjs walks them without bounds: a huge claimed shape made it loop
  // for minutes, a length past the end gave a tfjs error naming no file.
  describe('string weights', () => {
    async function stringModel(shape: number[], bytes: Uint8Array): Promise<string> {
      const dir = freshDir();
      fs.mkdirSync(dir, { recursive: true });
      const weights = [
        { name: 'bias', shape: [1], dtype: 'float32' },
        { name: 'words', shape, dtype: 'string' },
      ];
      fs.writeFileSync(
        path.join(dir, 'model.json'),
        JSON.stringify({ modelTopology: {}, weightsManifest: [{ paths: ['w.bin'], weights }] }),
      );
      fs.writeFileSync(path.join(dir, 'w.bin'), bytes);
      return dir;
    }
    function loadArtifacts(dir: string): Promise<tf.io.ModelArtifacts> {
      const { load } = fileSystem(dir);
      if (load === undefined) throw new Error('fileSystem has no load');
      return load();
    }
    // float32 1.5, then the strings "ab" and "" with their little-endian uint32 lengths.
    const good = Uint8Array.from([0, 0, 0xc0, 0x3f, 2, 0, 0, 0, 97, 98, 0, 0, 0, 0]);

    it('loads well-formed string weights', async () => {
      const dir = await stringModel([2], good);
      const artifacts = await loadArtifacts(dir);
      const decoded = tf.io.decodeWeights(artifacts.weightData ?? [], artifacts.weightSpecs ?? []);
      expect(Array.from(decoded.bias.dataSync())).toEqual([1.5]);
      expect(decoded.words.dataSync()).toEqual(['ab', '']);
      tf.dispose(Object.values(decoded));
    });

    it('refuses a huge string shape from the shard size alone, without walking it', async () => {
      const dir = await stringModel([1e8], good);
      const err = (await loadArtifacts(dir).catch((e: Error) => e)) as Error;
      expect(err.message).toBe(
        `Cannot load model: weight shard ${path.join(dir, 'w.bin')} has ${good.length} bytes, but ` +
          `${path.join(dir, 'model.json')} (weightsManifest[0]) needs at least ${4 + 4 * 1e8} bytes (truncated)`,
      );
    });

    it.each([
      [
        'a string length past the end',
        [2],
        Uint8Array.from([0, 0, 0xc0, 0x3f, 200, 0, 0, 0, 97, 98, 0, 0, 0, 0]),
      ],
      ['bytes left after the last string', [1], good],
    ])('refuses %s, naming the shard', async (_, shape, bytes) => {
      const dir = await stringModel(shape, bytes);
      const err = (await loadArtifacts(dir).catch((e: Error) => e)) as Error;
      expect(err.message).toMatch(
        new RegExp(
          `^Cannot load model: the string weight "words" in weight shard ${path.join(dir, 'w.bin')} ` +
            `\\(${path.join(dir, 'model.json')}, weightsManifest\\[0\\]\\) `,
        ),
      );
    });
  });

  it('refuses a shard path that names a folder', async () => {
    const dir = await saved();
    const shard = path.join(dir, 'group1-shard1of1.bin');
    fs.unlinkSync(shard);
    fs.mkdirSync(shard);
    await expect(tfl.loadLayersModel(fileSystem(dir))).rejects.toThrow(
      `weight shard ${shard}, listed in ${path.join(dir, 'model.json')}, is not a regular file`,
    );
  });

  it('rejects an empty path', () => {
    expect(() => fileSystem('')).toThrow(/expected a directory path/);
  });

  it('names a URL object as one, with the string to pass, instead of showing it as the string it stands for', () => {
    // Before: 'expected a directory path, got "file:///models/m"', as if that string were refused.
    const err = (() => {
      try {
        fileSystem(new URL('file:///models/m') as never);
      } catch (e) {
        return e as ModelFileError;
      }
    })();
    expect(err).toBeInstanceOf(ModelFileError);
    expect(err!.code).toBe('invalid-argument');
    expect(err!.message).toBe(
      "fileSystem(dir): expected a directory path or a file:// URL string, got a URL object ('file:///models/m'): pass its string, url.href",
    );
    expect(() => fileSystem(5 as never)).toThrow(
      'fileSystem(dir): expected a directory path or a file:// URL string, got 5',
    );
  });

  it("refuses a file:// URL that names no local path, and a bare 'file://', as invalid-argument", () => {
    for (const url of ['file:///models/a%2Fb', 'file://localhost/x%2F']) {
      const err = (() => {
        try {
          fileSystem(url);
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(ModelFileError);
      expect(err).toMatchObject({ code: 'invalid-argument', file: url });
      expect((err as Error).message).toContain(
        `fileSystem(dir): '${url}' is not a file:// URL of a local path`,
      );
      expect((err as Error).message).toContain('encoded / characters');
    }
    // tfjs-node would save into the working directory; here it names the two forms to use.
    expect(() => fileSystem('file://')).toThrow(
      expect.objectContaining({ code: 'invalid-argument', message: expect.stringContaining('file://./dir') }),
    );
  });
});

describe('fileSystem: a file:// URL with a fragment or a query', () => {
  // Both were dropped: file:///B/run#1 and file:///B/run#2 saved into one folder, run, the second
  // replacing the first, and file:///B/ckpt?epoch=3 into ckpt.
  const refusal = (url: string) => {
    try {
      fileSystem(url);
    } catch (e) {
      return e;
    }
    return undefined;
  };

  it('is refused as invalid-argument, naming the part, the %23 / %3F form and the plain path', () => {
    const dir = path.join(root, 'hash');
    const cases: [string, string, string][] = [
      [`${pathToFileURL(dir).href}/run#1`, "fragment ('#1')", `${pathToFileURL(dir).href}/run%231`],
      [`${pathToFileURL(dir).href}/run#`, "fragment ('#')", `${pathToFileURL(dir).href}/run%23`],
      [
        `${pathToFileURL(dir).href}/ckpt?epoch=3`,
        "query ('?epoch=3')",
        `${pathToFileURL(dir).href}/ckpt%3Fepoch=3`,
      ],
      [
        `${pathToFileURL(dir).href}/a?b#c/model.json`,
        "query ('?b#c/model.json')",
        `${pathToFileURL(dir).href}/a%3Fb%23c/model.json`,
      ],
      ['file://localhost/tmp/x#2', "fragment ('#2')", 'file://localhost/tmp/x%232'],
    ];
    for (const [url, part, encoded] of cases) {
      const err = refusal(url);
      expect(err).toBeInstanceOf(ModelFileError);
      expect(err).toMatchObject({ code: 'invalid-argument', file: url });
      expect((err as Error).message).toContain(`fileSystem(dir): '${url}' has a URL ${part}`);
      expect((err as Error).message).toContain(`('${encoded}')`);
    }
    expect((refusal(`${pathToFileURL(dir).href}/run#1`) as Error).message).toContain(
      `or pass the path itself ('${path.join(dir, 'run#1')}')`,
    );
    expect(fs.existsSync(dir)).toBe(false);
    // tfjs-node's relative forms are paths taken literally, # included.
    expect(refusal('file://./rel#1')).toBeUndefined();
  });

  it('written with %23, it names the folder with the #; the file:// router keeps # literally', async () => {
    const dir = path.join(root, 'hash-ok');
    const model = (v: number): tf.io.ModelArtifacts => ({
      modelTopology: { v },
      weightSpecs: [{ name: 'w', shape: [1], dtype: 'float32' }],
      weightData: new Float32Array([v]).buffer,
    });
    await fileSystem(pathToFileURL(path.join(dir, 'run#1')).href).save!(model(1));
    await fileSystem(`${pathToFileURL(dir).href}/run%232`).save!(model(2));
    await tf.io.getSaveHandlers(`file://${dir}/run#3`)[0].save!(model(3));
    expect(fs.readdirSync(dir).sort()).toEqual(['run#1', 'run#2', 'run#3']);
    for (const v of [1, 2, 3]) {
      const loaded = await fileSystem(path.join(dir, `run#${v}`)).load!();
      expect(loaded.modelTopology).toEqual({ v });
    }
  });
});

describe('writeFileDurably and syncDir', () => {
  it('write a string, bytes, or parts one after another, each flushed before the close', async () => {
    const dir = freshDir();
    makeDirs(dir);
    const synced: string[] = [];
    const open = fs.promises.open;
    jest.spyOn(fs.promises, 'open').mockImplementation(async (...args: Parameters<typeof open>) => {
      const handle = await open(...args);
      const sync = handle.sync.bind(handle);
      handle.sync = async () => {
        synced.push(path.basename(String(args[0])));
        return sync();
      };
      return handle;
    });
    const parts = [Uint8Array.of(1, 2, 3), new Uint8Array(0), Uint8Array.of(4, 5)];
    await writeFileDurably(path.join(dir, 'text'), 'héllo');
    await writeFileDurably(path.join(dir, 'bytes'), Uint8Array.of(9, 8, 7));
    await writeFileDurably(path.join(dir, 'parts'), parts);
    await syncDir(dir);
    expect(fs.readFileSync(path.join(dir, 'text'), 'utf8')).toBe('héllo');
    expect([...fs.readFileSync(path.join(dir, 'bytes'))]).toEqual([9, 8, 7]);
    expect([...fs.readFileSync(path.join(dir, 'parts'))]).toEqual([1, 2, 3, 4, 5]);
    expect(synced).toEqual(['text', 'bytes', 'parts', path.basename(dir)]);
  });

  it('writeFileDurably writes a typed array of any type as its bytes, and refuses other data before creating the file', async () => {
    const dir = freshDir();
    makeDirs(dir);
    const floats = Float32Array.of(1, -2);
    // Before: a lone Float32Array was iterated as a list of numbers, the first write failed and the
    // file stayed behind empty, so a retry under the same name failed with EEXIST.
    await writeFileDurably(path.join(dir, 'floats'), floats);
    expect([...fs.readFileSync(path.join(dir, 'floats'))]).toEqual([...new Uint8Array(floats.buffer)]);
    await writeFileDurably(path.join(dir, 'mixed'), [Int16Array.of(258), Uint8Array.of(7)]);
    expect([...fs.readFileSync(path.join(dir, 'mixed'))]).toEqual([
      ...new Uint8Array(Int16Array.of(258).buffer),
      7,
    ]);
    for (const [data, shown] of [
      [5, 'got 5'],
      [{ a: 1 }, 'got an object (Object)'],
      [[Uint8Array.of(1), 7], 'got a list whose part 1 is 7'],
      [undefined, 'got undefined'],
    ] as const) {
      const file = path.join(dir, 'refused');
      await expect(writeFileDurably(file, data as never)).rejects.toThrow(TypeError);
      await expect(writeFileDurably(file, data as never)).rejects.toThrow(
        `data must be a string, a typed array (its bytes) or a list of them, ${shown}; nothing was written`,
      );
      expect(fs.existsSync(file)).toBe(false);
    }
  });

  it('writeFileDurably refuses a file that exists and leaves it as it was', async () => {
    const dir = freshDir();
    makeDirs(dir);
    const file = path.join(dir, 'kept');
    fs.writeFileSync(file, 'mine');
    await expect(writeFileDurably(file, 'other')).rejects.toThrow(/EEXIST/);
    expect(fs.readFileSync(file, 'utf8')).toBe('mine');
    await expect(writeFileDurably(path.join(dir, 'no', 'such'), 'x')).rejects.toThrow(/ENOENT/);
  });

  it('syncDir never throws, even for a folder that does not exist', async () => {
    await expect(syncDir(path.join(root, 'nowhere-to-sync'))).resolves.toBeUndefined();
  });
});

describe('isSaveFile', () => {
  it("names a save's shards, its backups and temporary files, not other files", () => {
    for (const f of [
      'group1-shard1of1.bin',
      'group2-shard3of4.bin',
      '.prev-25648-b500d3d3-group1-shard1of1.bin',
      '.model.json.25648-b500d3d3.tmp',
      '.group1-shard1of1.bin.25648-b500d3d3.tmp',
    ])
      expect([f, isSaveFile(f)]).toEqual([f, true]);
    for (const f of ['weights.bin', 'a.group1-shard1of1.bin', 'group1-shard1of1.bin.bak', 'model.json'])
      expect([f, isSaveFile(f)]).toEqual([f, false]);
    expect(isSaveFile('a.group1-shard1of1.bin', 'a.json')).toBe(true);
    expect(isSaveFile('group1-shard1of1.bin', 'a.json')).toBe(false);
  });
});

describe('killedSaveTemp', () => {
  // A pid no process has: above Linux's pid_max limit (2^22).
  const gone = 4_194_305;
  it("names the JSON file's temporary copy of a killed save, not a running save's or other files", () => {
    expect(killedSaveTemp(`.model.json.${gone}-b500d3d3.tmp`)).toBe(true);
    expect(killedSaveTemp(`.a.json.${gone}-b500d3d3.tmp`, 'a.json')).toBe(true);
    // This process is running: its save may yet rename the file into place.
    expect(killedSaveTemp(`.model.json.${process.pid}-b500d3d3.tmp`)).toBe(false);
    for (const f of [
      `.a.json.${gone}-b500d3d3.tmp`, // another JSON file's
      `.group1-shard1of1.bin.${gone}-b500d3d3.tmp`, // a shard's
      `.prev-${gone}-b500d3d3-group1-shard1of1.bin`, // a backup link
      `.model.json.${gone}-b500d3d.tmp`, // not a save's token
      `model.json.${gone}-b500d3d3.tmp`,
      'model.json',
    ])
      expect([f, killedSaveTemp(f)]).toEqual([f, false]);
    expect(killedSaveTemp(`.model.json.${gone}-b500d3d3.tmp`, 'a.json')).toBe(false);
  });

  it('is true of the name a real save gives its model.json before the rename, once that process is gone', async () => {
    const dir = path.join(root, 'killed-save-temp');
    const model = tfl.sequential({ layers: [tfl.layers.dense({ inputShape: [3], units: 2 })] });
    // The save fails where a kill would stop it: at the rename of its model.json into place.
    const realRename = fs.promises.rename;
    let temp = '';
    jest.spyOn(fs.promises, 'rename').mockImplementation(async (a, b) => {
      if (path.basename(String(b)) === 'model.json') {
        temp = path.basename(String(a));
        throw new Error('simulated kill');
      }
      return realRename(a, b);
    });
    await expect(model.save(fileSystem(dir))).rejects.toThrow(/simulated kill/);
    jest.restoreAllMocks();
    model.dispose();
    expect(temp).toMatch(new RegExp(`^\\.model\\.json\\.${process.pid}-`));
    // While the saving process runs, its file is no leftover; as another, dead process's it is.
    expect(killedSaveTemp(temp)).toBe(false);
    expect(killedSaveTemp(temp.replace(`.${process.pid}-`, `.${gone}-`))).toBe(true);
  });
});

describe('loading a model with constrained weights', () => {
  it("tfjs's loader leaves the constraints' outputs behind, and the README's scope frees them", async () => {
    const model = constrainedModel();
    const dir = path.join(root, 'constrained');
    await model.save(fileSystem(dir));
    const x = tf.ones([1, 4]);
    // tfjs 4.22's LayerVariable.write keeps no reference to a constraint's output: 3 are left,
    // one per constrained weight. If this fails, tfjs frees them now: update the README.
    let before = tf.memory().numTensors;
    const plain = await tfl.loadLayersModel(fileSystem(dir));
    // Loaded, the weights hold their constraints (maxNorm moves the saved kernel).
    const expected = tf.tidy(() => Array.from((plain.predict(x) as tf.Tensor).dataSync()));
    plain.dispose();
    expect(tf.memory().numTensors - before).toBe(3);
    // The README's workaround: the load between startScope and endScope.
    before = tf.memory().numTensors;
    tf.engine().startScope();
    let loaded: tfl.LayersModel;
    try {
      loaded = await tfl.loadLayersModel(fileSystem(dir));
    } finally {
      tf.engine().endScope();
    }
    expect(tf.memory().numTensors - before).toBe(loaded.weights.length);
    const out = tf.tidy(() => Array.from((loaded.predict(x) as tf.Tensor).dataSync()));
    expect(out).toEqual(expected);
    loaded.dispose();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    model.dispose();
  });
});
