// Integration on the real CIFAR-10 image-folder archive (facts: ../shared/data/README.md).
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import jpeg from 'jpeg-js';
import { loadCifar10 } from '../src/index';
import * as decodedCache from '../src/decoded-cache';
import * as idx from '../src/idx';
import * as tar from '../src/tar';
import { makeTar } from './fixtures';

const { readTarFile } = tar;

afterEach(() => {
  jest.restoreAllMocks();
});

const WORKSPACE = resolve(__dirname, '../../..');
const ARCHIVE = resolve(WORKSPACE, '../shared/data/cifar-10-images.tar.gz');
const CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

describe('real CIFAR-10 (cifar-10-images.tar.gz)', () => {
  it('exists where CI and a developer checkout put it', () => {
    expect(existsSync(ARCHIVE)).toBe(true);
  });

  it('has the sha256 the data README gives', () => {
    expect(createHash('sha256').update(readFileSync(ARCHIVE)).digest('hex')).toBe(
      '2a5bd73b1565629ebc31d613507a7f814b8a07ab2dd2b26177fa8b5353e62af4',
    );
  });

  it('holds 5,000 / 1,000 images per class (counted from tar entries), which decode to 32x32 RGB', () => {
    const entries = readTarFile(ARCHIVE).filter((e) => e.type === 'file');
    const count = (split: string) =>
      CLASSES.map(
        (c) => entries.filter((e) => e.name.startsWith(`${split}/${c}/`) && e.name.endsWith('.jpg')).length,
      );
    expect(count('train')).toEqual(new Array(10).fill(5000));
    expect(count('test')).toEqual(new Array(10).fill(1000));
    for (const e of entries.filter((_, i) => i % 6000 === 0)) {
      const img = jpeg.decode(e.data, { useTArray: true, formatAsRGBA: false });
      expect([img.width, img.height, img.data.length]).toEqual([32, 32, 3072]);
    }
  });

  it('loads real JPEGs in label order through loadCifar10, decodes once, then serves the cache', async () => {
    // The whole archive is decoded by the benchmark (bench/index.ts); here the
    // first 40 train / 10 test images of every class, repacked, keep the suite fast.
    const entries = readTarFile(ARCHIVE).filter((e) => e.type === 'file');
    const byName = new Map(entries.map((e) => [e.name, e.data]));
    const pick = (split: string, n: number) =>
      CLASSES.flatMap((c) =>
        Array.from({ length: n }, (_, i) => `${split}/${c}/${String(i).padStart(4, '0')}.jpg`),
      );
    const names = [...pick('train', 40), ...pick('test', 10)];
    const dir = mkdtempSync(join(tmpdir(), 'npds-cifar-'));
    try {
      const file = join(dir, 'subset.tar.gz');
      writeFileSync(
        file,
        gzipSync(makeTar(names.map((name) => ({ name: `cifar10/${name}`, data: byName.get(name)! })))),
      );
      const cacheDir = join(dir, 'cache');
      const decode = jest.spyOn(jpeg, 'decode');
      const untar = jest.spyOn(tar, 'readTar');
      const gunzip = jest.spyOn(idx, 'gunzipChecked');
      const write = jest.spyOn(decodedCache, 'writeDecoded');
      const a = await loadCifar10({ file, cacheDir });
      // Decoded once: every JPEG of the subset, the archive untarred and the cache written once.
      expect([decode.mock.calls.length, untar.mock.calls.length, gunzip.mock.calls.length]).toEqual([
        500, 1, 1,
      ]);
      expect(write).toHaveBeenCalledTimes(1);
      const [entry] = readdirSync(join(cacheDir, 'decoded'));
      const cache = join(cacheDir, 'decoded', entry);
      const { ino, mtimeMs } = statSync(cache);
      for (const spy of [decode, untar, gunzip, write]) spy.mockRestore();
      expect(a.classes).toEqual(CLASSES);
      expect(a.train.count).toBe(400);
      expect(a.test.count).toBe(100);
      expect(a.train.shape).toEqual([32, 32, 3]);
      // Classes are interleaved: image i is the (i / 10)-th file of class i % 10.
      expect(Array.from(a.train.labels.subarray(0, 20))).toEqual([...CLASSES.keys(), ...CLASSES.keys()]);
      for (const [split, j, name] of [
        [a.train, 0, 'train/airplane/0000.jpg'],
        [a.train, 11, 'train/automobile/0001.jpg'],
        [a.train, 399, 'train/truck/0039.jpg'],
        [a.test, 93, 'test/cat/0009.jpg'],
      ] as const) {
        const want = jpeg.decode(byName.get(name)!, { useTArray: true, formatAsRGBA: false }).data;
        expect(Buffer.from(split.images.subarray(j * 3072, (j + 1) * 3072)).equals(Buffer.from(want))).toBe(
          true,
        );
        expect(a.classes[split.labels[j]]).toBe(name.split('/')[1]);
      }
      const again = jest.spyOn(jpeg, 'decode');
      const untarAgain = jest.spyOn(tar, 'readTar');
      const gunzipAgain = jest.spyOn(idx, 'gunzipChecked');
      const writeAgain = jest.spyOn(decodedCache, 'writeDecoded');
      const b = await loadCifar10({ file, cacheDir });
      // Served from the cache: no JPEG decoded, the archive neither gunzipped nor untarred,
      // the cache file neither rewritten nor replaced.
      expect([again, untarAgain, gunzipAgain, writeAgain].map((spy) => spy.mock.calls.length)).toEqual([
        0, 0, 0, 0,
      ]);
      expect(statSync(cache)).toMatchObject({ ino, mtimeMs });
      expect(readdirSync(join(cacheDir, 'decoded'))).toEqual([entry]);
      expect(Buffer.from(b.train.images).equals(Buffer.from(a.train.images))).toBe(true);
      expect(Buffer.from(b.test.labels).equals(Buffer.from(a.test.labels))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
