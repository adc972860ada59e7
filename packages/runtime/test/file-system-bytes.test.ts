// fileSystem writes its shards from views of the buffers tfjs hands over and
// reads them into their place in the buffer it returns: no copy of all the
// weights either way. The files are byte for byte those of the previous
// version (which joined the buffers, then cut the shards from the join), and
// loads return the same bytes.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { fileSystem, fileSystemLimits } from '../src/file-system.js';

const SHARD = 4 * 1024 * 1024;
let root: string;
let counter = 0;
const freshDir = () => path.join(root, `m${counter++}`);

beforeAll(async () => {
  await tf.setBackend('cpu');
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-fs-bytes-'));
});

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

afterEach(() => {
  jest.restoreAllMocks();
  fileSystemLimits.joinBytes = 1 << 30;
});

/** `n` deterministic bytes (a linear congruential generator's top bytes). */
function bytes(n: number, seed: number): ArrayBuffer {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out.buffer;
}

function join(parts: ArrayBuffer[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(new Uint8Array(p), at);
    at += p.byteLength;
  }
  return out;
}

/** What the previous version wrote: the joined weights, cut every 4 MB. */
function expectedShards(all: Uint8Array, prefix = ''): Map<string, Uint8Array> {
  const n = Math.ceil(all.length / SHARD);
  const out = new Map<string, Uint8Array>();
  for (let i = 0; i < n; i++) {
    out.set(`${prefix}group1-shard${i + 1}of${n}.bin`, all.subarray(i * SHARD, (i + 1) * SHARD));
  }
  return out;
}

function expectFiles(dir: string, shards: Map<string, Uint8Array>, json = 'model.json'): void {
  expect(fs.readdirSync(dir).sort()).toEqual([...shards.keys(), json].sort());
  for (const [name, want] of shards) {
    const got = fs.readFileSync(path.join(dir, name));
    expect(got.length).toBe(want.length);
    expect(Buffer.compare(got, Buffer.from(want.buffer, want.byteOffset, want.length))).toBe(0);
  }
}

/** Byte equality without Jest's element-by-element diff (slow on megabytes). */
function sameBytes(a: ArrayBuffer | Uint8Array, b: ArrayBuffer | Uint8Array): boolean {
  const [x, y] = [a, b].map((v) =>
    v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.length) : Buffer.from(v),
  );
  return Buffer.compare(x, y) === 0;
}

const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

const SPECS: tf.io.WeightsManifestEntry[] = [
  { name: 'dense/kernel', shape: [1100, 1000], dtype: 'float32' },
  { name: 'dense/bias', shape: [1000], dtype: 'float32' },
  { name: 'steps', shape: [3], dtype: 'int32' },
];
const PARTS = () => [bytes(4 * 1100 * 1000, 1), bytes(4000, 2), bytes(12, 3)];
const BASE: tf.io.ModelArtifacts = {
  modelTopology: { class_name: 'Sequential', config: { name: 'golden', layers: [] } },
  format: 'layers-model',
  generatedBy: 'golden',
  convertedBy: null,
  weightSpecs: SPECS,
};

describe('fileSystem save writes the same bytes as before', () => {
  it('matches the files the previous version wrote (sha-256), from one buffer or a list', async () => {
    // Hashes of the files written by the version that joined the buffers
    // (commit 195b707), for these artifacts.
    const golden: Record<string, string> = {
      'group1-shard1of2.bin': '33c3342bacc8ffa626e4f30007ebc2fb92320a363dcd8551e634d648fe6b4926',
      'group1-shard2of2.bin': '2cde8f53cbf91171a67171cf66645d958c7449d7844d3c5869f2aeacc70528dd',
      'model.json': '650c6632d4aa12627ff402f5d9cfc646da5be2d4d3db15cc8dcd1d7a10cbd449',
    };
    for (const weightData of [PARTS(), join(PARTS()).buffer as ArrayBuffer]) {
      const dir = freshDir();
      await fileSystem(dir).save!({ ...BASE, weightData });
      expect(fs.readdirSync(dir).sort()).toEqual(Object.keys(golden));
      for (const [name, hash] of Object.entries(golden)) expect(sha256(path.join(dir, name))).toBe(hash);
    }
  });

  it.each([
    ['one buffer of 10 bytes', [10]],
    ['one buffer of exactly 4 MB', [SHARD]],
    ['one buffer of 4 MB + 1', [SHARD + 1]],
    ['parts that straddle shard boundaries', [3 * 1024 * 1024, 2 * 1024 * 1024 + 7, 5, 4 * 1024 * 1024 - 3]],
    ['empty parts among others', [0, SHARD - 1, 0, 1, 0, 2]],
    ['many small parts', Array.from({ length: 300 }, (_, i) => 4 * (i + 1) * 97)],
    ['only empty parts', [0, 0]],
  ])('%s', async (_label, sizes) => {
    const parts = sizes.map((n, i) => bytes(n, 10 + i));
    const all = join(parts);
    const specs: tf.io.WeightsManifestEntry[] = [{ name: 'w', shape: [all.length], dtype: 'bool' }];
    const a = freshDir();
    const b = freshDir();
    await fileSystem(a).save!({ ...BASE, weightSpecs: specs, weightData: parts });
    await fileSystem(b).save!({ ...BASE, weightSpecs: specs, weightData: all.buffer as ArrayBuffer });
    expectFiles(a, expectedShards(all));
    expectFiles(b, expectedShards(all));
    expect(fs.readFileSync(path.join(a, 'model.json'), 'utf8')).toBe(
      fs.readFileSync(path.join(b, 'model.json'), 'utf8'),
    );
    // And it loads back as the same bytes.
    const loaded = await fileSystem(a).load!();
    expect(sameBytes(loaded.weightData as ArrayBuffer, all)).toBe(true);
  });

  it('models saved through tfjs (one shard, two, a.json prefix) are their joined weights cut every 4 MB', async () => {
    const models = [
      tfl.sequential({ layers: [tfl.layers.dense({ inputShape: [7], units: 5 })] }),
      tfl.sequential({
        layers: [
          tfl.layers.dense({ inputShape: [1100], units: 1000 }),
          tfl.layers.dense({ units: 300, activation: 'relu' }),
          tfl.layers.dense({ units: 10 }),
        ],
      }),
    ];
    for (const model of models) {
      let captured: tf.io.ModelArtifacts | undefined;
      await model.save(
        tf.io.withSaveHandler(async (a) => ((captured = a), { modelArtifactsInfo: {} as never })),
      );
      const weightData = captured!.weightData!;
      const all = join(Array.isArray(weightData) ? weightData : [weightData]);
      for (const json of ['model.json', 'a.json']) {
        const dir = freshDir();
        await model.save(fileSystem(path.join(dir, json)));
        expectFiles(dir, expectedShards(all, json === 'model.json' ? '' : 'a.'), json);
      }
      model.dispose();
    }
  });

  it('writes views of the buffers it was given, never a copy of them', async () => {
    const parts = PARTS();
    const written: ArrayBufferLike[] = [];
    const handle = await fs.promises.open(path.join(root, 'probe'), 'w');
    const proto = Object.getPrototypeOf(handle) as { writeFile: (...args: unknown[]) => Promise<void> };
    await handle.close();
    const writeFile = proto.writeFile;
    jest.spyOn(proto, 'writeFile').mockImplementation(function (this: unknown, ...args: unknown[]) {
      if (args[0] instanceof Uint8Array) written.push(args[0].buffer);
      return writeFile.apply(this, args);
    });
    await fileSystem(freshDir()).save!({ ...BASE, weightData: parts });
    // Part 0 (4.4 MB) gives shard 1 its first 4 MB; shard 2 is its rest, then parts 1 and 2.
    const expected = [parts[0], parts[0], parts[1], parts[2]];
    expect(written).toHaveLength(expected.length);
    for (const [i, b] of written.entries()) expect(b).toBe(expected[i]);
  });
});

describe('fileSystem load returns the same bytes as before', () => {
  it('reads every shard straight into its place in the one buffer it returns', async () => {
    const dir = freshDir();
    const parts = PARTS();
    await fileSystem(dir).save!({ ...BASE, weightData: parts });
    const targets: ArrayBufferLike[] = [];
    const handle = await fs.promises.open(path.join(root, 'probe'), 'w');
    const proto = Object.getPrototypeOf(handle) as { read: (...args: unknown[]) => Promise<unknown> };
    await handle.close();
    const read = proto.read;
    jest.spyOn(proto, 'read').mockImplementation(function (this: unknown, ...args: unknown[]) {
      if (args[0] instanceof Uint8Array) targets.push(args[0].buffer);
      return read.apply(this, args);
    });
    const artifacts = await fileSystem(dir).load!();
    expect(artifacts.weightData).toBeInstanceOf(ArrayBuffer);
    expect(sameBytes(artifacts.weightData as ArrayBuffer, join(parts))).toBe(true);
    expect(targets.length).toBeGreaterThanOrEqual(2);
    for (const t of targets) expect(t).toBe(artifacts.weightData);
    expect(artifacts.weightSpecs).toEqual(SPECS);
  });

  it('above fileSystemLimits.joinBytes returns one buffer per shard, the same bytes, and tfjs loads it', async () => {
    const model = tfl.sequential({
      layers: [tfl.layers.dense({ inputShape: [1100], units: 1000 }), tfl.layers.dense({ units: 4 })],
    });
    const dir = freshDir();
    await model.save(fileSystem(dir));
    const whole = await fileSystem(dir).load!();
    fileSystemLimits.joinBytes = 1024;
    const listed = await fileSystem(dir).load!();
    expect(Array.isArray(listed.weightData)).toBe(true);
    const list = listed.weightData as ArrayBuffer[];
    expect(list.map((b) => b.byteLength)).toEqual([SHARD, (1100 * 1000 + 1000 + 1000 * 4 + 4) * 4 - SHARD]);
    expect(sameBytes(join(list), whole.weightData as ArrayBuffer)).toBe(true);
    const loaded = await tfl.loadLayersModel(fileSystem(dir));
    const [a, b] = [model.getWeights(), loaded.getWeights()];
    for (let i = 0; i < a.length; i++)
      expect(tf.util.arraysEqual(a[i].dataSync(), b[i].dataSync())).toBe(true);
    model.dispose();
    loaded.dispose();
  });

  it('string weights load the same whole or listed, and a damaged string group is still refused', async () => {
    const dir = freshDir();
    const encoded = tf.io.encodeWeights({
      s: tf.tensor(['a', 'bcd', ''], [3], 'string'),
      f: tf.tensor([1.5, -2], [2], 'float32'),
    });
    const { data, specs } = await encoded;
    await fileSystem(dir).save!({ ...BASE, weightSpecs: specs, weightData: data });
    const whole = await fileSystem(dir).load!();
    fileSystemLimits.joinBytes = 0;
    const listed = await fileSystem(dir).load!();
    expect(listed.weightData).toBeInstanceOf(ArrayBuffer);
    expect(new Uint8Array(listed.weightData as ArrayBuffer)).toEqual(
      new Uint8Array(whole.weightData as ArrayBuffer),
    );
    const decoded = tf.io.decodeWeights(listed.weightData!, listed.weightSpecs!);
    expect(decoded.s.arraySync()).toEqual(['a', 'bcd', '']);
    expect(Array.from(decoded.f.dataSync())).toEqual([1.5, -2]);
    tf.dispose(Object.values(decoded));
    // The last string's length (after 'a' and 'bcd' with theirs) made to run past the end.
    const shard = path.join(dir, 'group1-shard1of1.bin');
    const bytesOnDisk = fs.readFileSync(shard);
    bytesOnDisk.writeUInt32LE(100, 4 + 1 + 4 + 3);
    fs.writeFileSync(shard, bytesOnDisk);
    await expect(fileSystem(dir).load!()).rejects.toThrow('runs past the end');
  });
});
