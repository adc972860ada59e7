// fileSystem at its edges: saving over a model whose shard is gone, the folder flushes around
// each rename onto model.json, weight paths that name the parent folder, and the single buffer
// up to joinBytes. (Found unpinned by mutation testing: each fails on its mutant.)
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileSystem } from '../src/index.js';
import { fileSystemLimits } from '../src/file-system.js';

let root: string;
let counter = 0;
const freshDir = () => path.join(root, `g${counter++}`);

beforeAll(async () => {
  await tf.setBackend('cpu');
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-gaps-'));
});

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function dense(seed: number): tfl.Sequential {
  return tfl.sequential({
    layers: [
      tfl.layers.dense({
        inputShape: [3],
        units: 2,
        kernelInitializer: tfl.initializers.glorotUniform({ seed }),
      }),
    ],
  });
}

describe('fileSystem save over a damaged previous model', () => {
  it('saves when the previous model.json lists a shard that no longer exists, and the new model loads', async () => {
    const dir = freshDir();
    const first = dense(1);
    await first.save(fileSystem(dir));
    first.dispose();
    fs.unlinkSync(path.join(dir, 'group1-shard1of1.bin'));
    const second = dense(2);
    await second.save(fileSystem(dir));
    const loaded = await tfl.loadLayersModel(fileSystem(dir));
    expect(Array.from((loaded.getWeights()[0] as tf.Tensor).dataSync())).toEqual(
      Array.from((second.getWeights()[0] as tf.Tensor).dataSync()),
    );
    second.dispose();
    loaded.dispose();
  });
});

describe('fileSystem save: folder flushes around the model.json renames', () => {
  afterEach(() => {
    jest.restoreAllMocks();
  });

  it('flushes the folder right before and after each rename onto model.json (repoint and final)', async () => {
    const dir = freshDir();
    const first = dense(1);
    await first.save(fileSystem(dir));
    first.dispose();
    const events: string[] = [];
    const open = fs.promises.open;
    const rename = fs.promises.rename;
    jest.spyOn(fs.promises, 'open').mockImplementation((async (p: fs.PathLike, flags?: string | number) => {
      if (flags === 'r' && path.resolve(String(p)) === path.resolve(dir)) events.push('sync-dir');
      return open(p, flags as string);
    }) as typeof fs.promises.open);
    jest.spyOn(fs.promises, 'rename').mockImplementation(async (from: fs.PathLike, to: fs.PathLike) => {
      events.push(`rename:${path.basename(String(to))}`);
      return rename(from, to);
    });
    const second = dense(2);
    await second.save(fileSystem(dir));
    second.dispose();
    // Overwriting: model.json is first repointed at backups of the shards, then replaced.
    const at = events.flatMap((e, i) => (e === 'rename:model.json' ? [i] : []));
    expect(at.length).toBe(2);
    for (const i of at) {
      expect(events[i - 1]).toBe('sync-dir');
      expect(events[i + 1]).toBe('sync-dir');
    }
  });
});

describe('fileSystem load: weight paths naming the folder itself or its parent', () => {
  it.each(['..'])('refuses the weight path %j as unsafe-path', async (p) => {
    const dir = freshDir();
    const m = dense(1);
    await m.save(fileSystem(dir));
    m.dispose();
    const file = path.join(dir, 'model.json');
    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    json.weightsManifest[0].paths = [p];
    fs.writeFileSync(file, JSON.stringify(json));
    const err = await tfl.loadLayersModel(fileSystem(dir)).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'ModelFileError', code: 'unsafe-path', file });
  });
});

describe('fileSystem load: one buffer up to joinBytes', () => {
  it('hands tfjs one ArrayBuffer when two shards total exactly fileSystemLimits.joinBytes', async () => {
    const dir = freshDir();
    const m = dense(1);
    await m.save(fileSystem(dir));
    m.dispose();
    // Two shard files, as the tfjs converter writes for larger models.
    const bytes = fs.readFileSync(path.join(dir, 'group1-shard1of1.bin'));
    fs.unlinkSync(path.join(dir, 'group1-shard1of1.bin'));
    fs.writeFileSync(path.join(dir, 'a.bin'), bytes.subarray(0, 12));
    fs.writeFileSync(path.join(dir, 'b.bin'), bytes.subarray(12));
    const file = path.join(dir, 'model.json');
    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    json.weightsManifest[0].paths = ['a.bin', 'b.bin'];
    fs.writeFileSync(file, JSON.stringify(json));
    const size = bytes.length;
    const saved = fileSystemLimits.joinBytes;
    fileSystemLimits.joinBytes = size;
    try {
      const artifacts = await fileSystem(dir).load!();
      expect(artifacts.weightData).toBeInstanceOf(ArrayBuffer);
      expect((artifacts.weightData as ArrayBuffer).byteLength).toBe(size);
    } finally {
      fileSystemLimits.joinBytes = saved;
    }
  });
});
