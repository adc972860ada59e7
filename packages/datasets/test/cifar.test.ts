import { execFileSync } from 'node:child_process';
import {
  mkdirSync,
  readdirSync,
  writeFileSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { DatasetError, loadCifar10 } from '../src/index';
import * as decodedCache from '../src/decoded-cache';
import * as idx from '../src/idx';
import * as input from '../src/input';
import * as tar from '../src/tar';
import { CIFAR_BATCH_FILES, makeTar, tmp, writeFile, type TarItem } from './fixtures';

afterEach(() => {
  jest.restoreAllMocks();
});

/** What identifies one write of a file: a rewrite (even atomic, by rename) changes the inode or mtime. */
function identity(path: string): { ino: number; mtimeMs: number; size: number } {
  const { ino, mtimeMs, size } = statSync(path);
  return { ino, mtimeMs, size };
}

const CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(DatasetError);
    return (e as DatasetError).code;
  }
  throw new Error('expected a DatasetError');
}

async function errorOf(p: Promise<unknown>): Promise<DatasetError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(DatasetError);
  return e as DatasetError;
}

/** A record whose planar R, G, B planes hold distinct values, so the NHWC conversion is checked. */
function record(label: number, seed: number): Uint8Array {
  const r = new Uint8Array(3073);
  r[0] = label;
  // Plane c is offset by 85 c: i * 7 alone repeats every 1024 bytes (7 * 1024 is a multiple of
  // 256), which made the three planes equal and a swapped channel pass.
  for (let i = 0; i < 3072; i++) r[1 + i] = (seed * 31 + i * 7 + Math.floor(i / 1024) * 85) & 0xff;
  return r;
}

function writeBinary(dir: string, perBatch = 4): Record<string, Uint8Array> {
  const files: Record<string, Uint8Array> = {};
  const names = CIFAR_BATCH_FILES;
  names.forEach((n, b) => {
    const recs = Array.from({ length: perBatch }, (_, i) => record((b * perBatch + i) % 10, b * 100 + i));
    files[n] = Buffer.concat(recs);
    writeFile(join(dir, n), files[n]);
  });
  files['batches.meta.txt'] = Buffer.from(CLASSES.join('\n') + '\n\n');
  writeFile(join(dir, 'batches.meta.txt'), files['batches.meta.txt']);
  return files;
}

/** Solid-colour 32x32 images: the colour says the class, so decoding is checked despite JPEG loss. */
function colour(k: number): [number, number, number] {
  return [(k * 25) % 256, 255 - k * 20, (k * 70) % 256];
}

const encoded = new Map<string, Buffer>();
function encodeImage(k: number, png: boolean, size = 32): Buffer {
  const id = `${k}:${png}:${size}`;
  if (!encoded.has(id)) encoded.set(id, encodeImageUncached(k, png, size));
  return encoded.get(id)!;
}

function encodeImageUncached(k: number, png: boolean, size: number): Buffer {
  const [r, g, b] = colour(k);
  const rgba = Buffer.alloc(size * size * 4);
  for (let i = 0; i < size * size; i++) rgba.set([r, g, b, 255], i * 4);
  if (png) {
    const p = new PNG({ width: size, height: size });
    rgba.copy(p.data);
    return PNG.sync.write(p);
  }
  return jpeg.encode({ data: rgba, width: size, height: size }, 95).data;
}

/** train: 2 images per class (one JPEG, one PNG); test: 1 JPEG per class. */
function imageItems(prefix = ''): TarItem[] {
  const items: TarItem[] = [];
  CLASSES.forEach((c, k) => {
    items.push({ name: `${prefix}train/${c}/0000.jpg`, data: encodeImage(k, false) });
    items.push({ name: `${prefix}train/${c}/0001.png`, data: encodeImage(k, true) });
    items.push({ name: `${prefix}test/${c}/0000.jpg`, data: encodeImage(k, false) });
  });
  return items;
}

function writeItems(dir: string, items: TarItem[]): void {
  for (const it of items) writeFile(join(dir, it.name), it.data!);
}

function expectColours(split: { images: Uint8Array; labels: Uint8Array; count: number }): void {
  for (let i = 0; i < split.count; i++) {
    const want = colour(split.labels[i]);
    for (const p of [0, 511, 1023]) {
      for (let ch = 0; ch < 3; ch++)
        expect(Math.abs(split.images[i * 3072 + p * 3 + ch] - want[ch])).toBeLessThanOrEqual(3);
    }
  }
}

describe('CIFAR-10 binary layout', () => {
  it('reads cifar-10-batches-bin/ and converts planar RGB to NHWC', async () => {
    const root = tmp();
    const files = writeBinary(join(root, 'cifar-10-batches-bin'));
    const ds = await loadCifar10({ dir: root, cacheDir: tmp() });
    expect(ds.source).toBe(join(root, 'cifar-10-batches-bin'));
    expect(ds.classes).toEqual(CLASSES);
    expect(ds.train.count).toBe(20);
    expect(ds.test.count).toBe(4);
    expect(ds.train.shape).toEqual([32, 32, 3]);
    const rec = files['data_batch_2.bin'].subarray(3073, 2 * 3073); // image 5 of train
    expect(ds.train.labels[5]).toBe(rec[0]);
    for (const p of [0, 17, 1023]) {
      expect(ds.train.images[5 * 3072 + p * 3]).toBe(rec[1 + p]);
      expect(ds.train.images[5 * 3072 + p * 3 + 1]).toBe(rec[1 + 1024 + p]);
      expect(ds.train.images[5 * 3072 + p * 3 + 2]).toBe(rec[1 + 2048 + p]);
    }
  });

  /** The binary release's batches in `<root>/src` and as `<root>/cifar-10-binary.tar.gz`. */
  const binaryArchive = (): { root: string; file: string } => {
    const root = tmp();
    const files = writeBinary(join(root, 'src'));
    const file = writeFile(
      join(root, 'cifar-10-binary.tar.gz'),
      gzipSync(
        makeTar(Object.entries(files).map(([n, data]) => ({ name: `cifar-10-batches-bin/${n}`, data }))),
      ),
    );
    return { root, file };
  };

  it('reads cifar-10-binary.tar.gz and caches the decoded result', async () => {
    const { root, file } = binaryArchive();
    const cacheDir = tmp();
    const untar = jest.spyOn(tar, 'readTar');
    const gunzip = jest.spyOn(idx, 'gunzipChecked');
    const write = jest.spyOn(decodedCache, 'writeDecoded');
    const read = jest.spyOn(decodedCache, 'readDecoded');
    const archive = jest.spyOn(input, 'readInputFile');
    const a = await loadCifar10({ file, cacheDir });
    const [entry] = readdirSync(join(cacheDir, 'decoded'));
    expect(readdirSync(join(cacheDir, 'decoded'))).toEqual([entry]);
    const cache = join(cacheDir, 'decoded', entry);
    // The first load decodes the archive and writes the cache.
    expect(untar.mock.calls.map((c) => c[1])).toEqual([file]);
    expect(gunzip).toHaveBeenCalledTimes(1);
    expect(write.mock.calls.map((c) => c[0])).toEqual([cache]);
    expect(read.mock.results.map((r) => r.value)).toEqual([undefined]);
    const before = identity(cache);
    for (const spy of [untar, gunzip, write, read, archive]) spy.mockClear();

    const b = await loadCifar10({ file, cacheDir });
    // The second is served by the cache: the archive is hashed (the cache key is
    // its sha256) but neither gunzipped nor untarred, and the cache is not rewritten.
    expect(archive.mock.calls.map((c) => c[0])).toEqual([file]);
    expect(untar).not.toHaveBeenCalled();
    expect(gunzip).not.toHaveBeenCalled();
    expect(write).not.toHaveBeenCalled();
    expect(read.mock.calls.map((c) => c[0])).toEqual([cache]);
    expect(read.mock.results[0].value.train).toBe(b.train);
    // Served by the cache, it still names the archive it was decoded from.
    expect([a.source, b.source]).toEqual([file, file]);
    // Given relative, named absolute.
    expect((await loadCifar10({ file: relative(process.cwd(), file), cacheDir })).source).toBe(file);
    expect(identity(cache)).toEqual(before);
    expect(readdirSync(join(cacheDir, 'decoded'))).toEqual([entry]);
    expect(Buffer.from(b.train.images).equals(Buffer.from(a.train.images))).toBe(true);
    expect(Array.from(b.test.labels)).toEqual(Array.from(a.test.labels));
    const direct = await loadCifar10({ dir: join(root, 'src'), cacheDir });
    expect(direct.source).toBe(join(root, 'src'));
    expect(Buffer.from(direct.train.images).equals(Buffer.from(a.train.images))).toBe(true);
  });

  it('loads when the cache cannot be written, and says once per cache file that every load decodes again', async () => {
    const { root, file } = binaryArchive();
    // A cacheDir that is a file: nothing can be written under it, even as root.
    const cacheDir = writeFile(join(root, 'not-a-folder'), Buffer.from('x'));
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      const a = await loadCifar10({ file, cacheDir });
      const b = await loadCifar10({ file, cacheDir });
      expect(Buffer.from(b.train.images).equals(Buffer.from(a.train.images))).toBe(true);
      expect(warn).toHaveBeenCalledTimes(1);
      const [message] = warn.mock.calls[0] as [string];
      expect(message).toMatch(
        new RegExp(
          `^@normprune/datasets: CIFAR-10 was decoded from ${file.replace(/[.]/g, '\\.')}, but the decoded copy ` +
            `could not be written to ${cacheDir}/decoded/cifar-10-[0-9a-f]+\\.bin \\(.*ENOTDIR.*\\), ` +
            'so every load decodes it again; pass \\{ cacheDir \\} \\(or set XDG_CACHE_HOME\\) to a writable folder$',
        ),
      );
    } finally {
      warn.mockRestore();
    }
  });

  it('rejects truncated batches, unequal batches, bad labels, missing batches, wrong class names', async () => {
    const cases: [string, (dir: string) => void][] = [
      [
        'truncated',
        (d) =>
          writeFileSync(
            join(d, 'data_batch_3.bin'),
            readFileSync(join(d, 'data_batch_3.bin')).subarray(0, 3073 * 3 + 100),
          ),
      ],
      [
        'size-mismatch',
        (d) =>
          writeFileSync(
            join(d, 'data_batch_3.bin'),
            readFileSync(join(d, 'data_batch_3.bin')).subarray(0, 3073 * 3),
          ),
      ],
      [
        'label-out-of-range',
        (d) => {
          const b = readFileSync(join(d, 'test_batch.bin'));
          b[3073] = 10;
          writeFileSync(join(d, 'test_batch.bin'), b);
        },
      ],
      ['missing-file', (d) => rmSync(join(d, 'data_batch_5.bin'))],
      ['unknown-class', (d) => writeFileSync(join(d, 'batches.meta.txt'), [...CLASSES].reverse().join('\n'))],
    ];
    for (const [want, breakIt] of cases) {
      const d = tmp();
      writeBinary(d);
      breakIt(d);
      expect(await codeOf(loadCifar10({ dir: d, cacheDir: tmp() }))).toBe(want);
    }
  });

  it('says what to do about a batch cut short or of another size', async () => {
    const cut = tmp();
    writeBinary(cut);
    const f = join(cut, 'data_batch_3.bin');
    writeFileSync(f, readFileSync(f).subarray(0, 3073 * 3 + 100));
    const e = await errorOf(loadCifar10({ dir: cut, cacheDir: tmp() }));
    expect([e.code, e.file]).toEqual(['truncated', f]);
    expect(e.message).toMatch(
      /is cut short \(an interrupted download or extraction\); replace it with the one in cifar-10-binary\.tar\.gz/,
    );
    const other = tmp();
    writeBinary(other);
    const g = join(other, 'data_batch_3.bin');
    writeFileSync(g, readFileSync(g).subarray(0, 3073 * 3));
    const m = await errorOf(loadCifar10({ dir: other, cacheDir: tmp() }));
    expect([m.code, m.file]).toEqual(['size-mismatch', g]);
    expect(m.message).toMatch(/take all six batches from one copy of cifar-10-binary\.tar\.gz/);
  });

  it('says what a label out of range in a batch means', async () => {
    const d = tmp();
    writeBinary(d);
    const b = readFileSync(join(d, 'data_batch_2.bin'));
    b[3073 * 2] = 57; // record #2
    writeFileSync(join(d, 'data_batch_2.bin'), b);
    const e = await errorOf(loadCifar10({ dir: d, cacheDir: tmp() }));
    expect([e.code, e.file, e.found]).toEqual(['label-out-of-range', join(d, 'data_batch_2.bin'), 57]);
    expect(e.message).toMatch(
      /^record #2 has label 57, but CIFAR-10 has labels 0\.\.9: not a CIFAR-10 batch \(CIFAR-100's records have two label bytes\); use the batches of cifar-10-binary\.tar\.gz/,
    );
  });

  it('names data_batch_1.bin when it is the batch missing (folder or archive), as it names any other', async () => {
    const root = tmp();
    const bin = join(root, 'cifar-10-batches-bin');
    const files = writeBinary(bin);
    rmSync(join(bin, 'data_batch_1.bin'));
    const fix = /put the missing batch files there from cifar-10-binary\.tar\.gz/;
    for (const dir of [root, bin]) {
      const e = await errorOf(loadCifar10({ dir, cacheDir: tmp() }));
      expect([e.code, e.file]).toEqual(['missing-file', join(bin, 'data_batch_1.bin')]);
      expect(e.message).toMatch(/CIFAR-10 binary batch missing: data_batch_1\.bin/);
      expect(e.message).toMatch(fix);
    }
    rmSync(join(bin, 'test_batch.bin'));
    const two = await errorOf(loadCifar10({ dir: bin, cacheDir: tmp() }));
    expect(two.message).toMatch(/missing: data_batch_1\.bin, test_batch\.bin/);
    const file = writeFile(
      join(root, 'cifar-10-binary.tar.gz'),
      gzipSync(
        makeTar(
          Object.entries(files)
            .filter(([n]) => n !== 'data_batch_1.bin')
            .map(([n, data]) => ({ name: `cifar-10-batches-bin/${n}`, data })),
        ),
      ),
    );
    const a = await errorOf(loadCifar10({ file, cacheDir: tmp() }));
    expect([a.code, a.file]).toEqual(['missing-file', `${file}:cifar-10-batches-bin/data_batch_1.bin`]);
    expect(a.message).toMatch(fix);
  });
});

describe('CIFAR-10 image folders', () => {
  it('decodes JPEG and PNG folders (directory and .tar.gz) in class order, interleaved', async () => {
    const dir = tmp();
    writeItems(dir, imageItems());
    const a = await loadCifar10({ dir, cacheDir: tmp() });
    expect(a.source).toBe(dir);
    expect(a.train.count).toBe(20);
    expect(a.test.count).toBe(10);
    expect(Array.from(a.train.labels)).toEqual([...CLASSES.keys(), ...CLASSES.keys()]);
    expectColours(a.train);
    expectColours(a.test);
    const file = writeFile(join(tmp(), 'imgs.tar.gz'), gzipSync(makeTar(imageItems('cifar10/'))));
    const cacheDir = tmp();
    const b = await loadCifar10({ file, cacheDir });
    expect(Buffer.from(b.train.images).equals(Buffer.from(a.train.images))).toBe(true);
    expect(Array.from(b.train.labels)).toEqual(Array.from(a.train.labels));
  });

  it('warns, once per folder, when the classes of a split hold unequal numbers of images (an extraction cut short?)', async () => {
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    // Balanced: 2 images of each class in train, 1 in test.
    const even = tmp();
    writeItems(even, imageItems());
    await loadCifar10({ dir: even, cacheDir: tmp() });
    expect(warn).not.toHaveBeenCalled();
    // train/ lacks one image of 'truck' and of 'ship': it loads, with a warning naming them.
    const short = tmp();
    writeItems(
      short,
      imageItems().filter((it) => !['train/truck/0001.png', 'train/ship/0001.png'].includes(it.name)),
    );
    const cacheDir = tmp();
    const ds = await loadCifar10({ dir: short, cacheDir });
    expect(ds.train.count).toBe(18);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0][0])).toBe(
      `@normprune/datasets: the CIFAR-10 images in ${join(short, 'train')} differ in number between classes, ` +
        '1 (ship, truck) to 2 (airplane, automobile, bird, ...), where the data set has 5000 of each: ' +
        'if it is not meant to be a subset, extract or copy it again',
    );
    // Loaded again, from the decoded cache or decoded again (another cacheDir): not said again.
    await loadCifar10({ dir: short, cacheDir });
    await loadCifar10({ dir: short, cacheDir: tmp() });
    expect(warn).toHaveBeenCalledTimes(1);
    // The test split too, in an archive: 'cat' has two test images, the other classes one.
    const items = [...imageItems(), { name: 'test/cat/0001.jpg', data: encodeImage(3, false) }];
    const file = writeFile(join(tmp(), 'imgs.tar.gz'), gzipSync(makeTar(items)));
    await loadCifar10({ file, cacheDir: tmp() });
    expect(warn).toHaveBeenCalledTimes(2);
    expect(String(warn.mock.calls[1][0])).toContain(
      `images in ${file}:test differ in number between classes, 1 (airplane, automobile, bird, ...) to 2 (cat), where the data set has 1000 of each`,
    );
  });

  it('decodes an image folder once, then serves the cache without reading an image', async () => {
    const dir = tmp();
    writeItems(dir, imageItems());
    const cacheDir = tmp();
    const images = jest.spyOn(input, 'readTreeFile');
    const jpegs = jest.spyOn(jpeg, 'decode');
    const pngs = jest.spyOn(PNG.sync, 'read');
    const write = jest.spyOn(decodedCache, 'writeDecoded');
    const a = await loadCifar10({ dir, cacheDir });
    // 20 train + 10 test images: 20 JPEG and 10 PNG, each read and decoded once.
    expect([images.mock.calls.length, jpegs.mock.calls.length, pngs.mock.calls.length]).toEqual([30, 20, 10]);
    expect(write).toHaveBeenCalledTimes(1);
    const [entry] = readdirSync(join(cacheDir, 'decoded'));
    const before = identity(join(cacheDir, 'decoded', entry));
    for (const spy of [images, jpegs, pngs, write]) spy.mockClear();

    const b = await loadCifar10({ dir, cacheDir });
    // The cache key comes from the files' names, sizes and mtimes: no image is read again.
    expect([images.mock.calls.length, jpegs.mock.calls.length, pngs.mock.calls.length]).toEqual([0, 0, 0]);
    expect(write).not.toHaveBeenCalled();
    expect(identity(join(cacheDir, 'decoded', entry))).toEqual(before);
    expect(Buffer.from(b.train.images).equals(Buffer.from(a.train.images))).toBe(true);
    expect(Array.from(b.test.labels)).toEqual(Array.from(a.test.labels));
  });

  it('keeps one decoded file per archive or folder: a newer decode of it replaces the earlier', async () => {
    const cacheDir = tmp();
    const decoded = () => readdirSync(join(cacheDir, 'decoded')).filter((f) => f.endsWith('.bin'));
    // An image folder whose files change (touched, copied without -p) gets a new key each time.
    const dir = tmp();
    writeItems(dir, imageItems());
    const first = await loadCifar10({ dir, cacheDir });
    const one = decoded();
    expect(one).toHaveLength(1);
    for (let i = 1; i <= 3; i++) {
      utimesSync(join(dir, 'train', 'cat', '0000.jpg'), 1_000_000 + i, 1_000_000 + i);
      const again = await loadCifar10({ dir, cacheDir });
      expect(Buffer.from(again.train.images).equals(Buffer.from(first.train.images))).toBe(true);
      expect(decoded()).toHaveLength(1);
    }
    expect(decoded()).not.toEqual(one);
    // An archive re-made in place, likewise; another archive, and the folder, keep theirs.
    const file = join(tmp(), 'imgs.tar.gz');
    writeFile(file, gzipSync(makeTar(imageItems())));
    await loadCifar10({ file, cacheDir });
    expect(decoded()).toHaveLength(2);
    writeFile(file, gzipSync(makeTar(imageItems('cifar10/'))));
    await loadCifar10({ file, cacheDir });
    expect(decoded()).toHaveLength(2);
    const other = writeFile(join(tmp(), 'other.tar.gz'), gzipSync(makeTar(imageItems())));
    await loadCifar10({ file: other, cacheDir });
    expect(decoded()).toHaveLength(3);
    // Files that are not decoded data sets of that source are left alone.
    writeFileSync(join(cacheDir, 'decoded', 'cifar-10-notes.bin'), 'mine');
    writeFile(file, gzipSync(makeTar(imageItems())));
    await loadCifar10({ file, cacheDir });
    expect(decoded()).toHaveLength(4);
    expect(readFileSync(join(cacheDir, 'decoded', 'cifar-10-notes.bin'), 'utf8')).toBe('mine');
  });

  it('re-decodes instead of failing when the cache is corrupt or truncated', async () => {
    const file = writeFile(join(tmp(), 'imgs.tar.gz'), gzipSync(makeTar(imageItems())));
    const cacheDir = tmp();
    const a = await loadCifar10({ file, cacheDir });
    const [entry] = readdirSync(join(cacheDir, 'decoded'));
    const path = join(cacheDir, 'decoded', entry);
    const good = readFileSync(path);
    const flipped = Buffer.from(good);
    flipped[flipped.length - 100] ^= 0xff;
    for (const broken of [flipped, good.subarray(0, good.length - 1), Buffer.from('garbage')]) {
      writeFileSync(path, broken);
      const b = await loadCifar10({ file, cacheDir });
      expect(Buffer.from(b.train.images).equals(Buffer.from(a.train.images))).toBe(true);
      expect(readFileSync(path).equals(good)).toBe(true);
    }
  });

  it('names an unknown or missing class folder of an archive as archive:folder, with the folder it sits in', async () => {
    for (const prefix of ['', 'cifar10/']) {
      const items = imageItems(prefix);
      const missing = writeFile(
        join(tmp(), 'x.tar.gz'),
        gzipSync(makeTar(items.filter((x) => !x.name.startsWith(`${prefix}test/dog/`)))),
      );
      const m = await errorOf(loadCifar10({ file: missing, cacheDir: tmp() }));
      expect([m.code, m.file]).toEqual(['missing-class', `${missing}:${prefix}test/dog`]);
      const unknown = writeFile(
        join(tmp(), 'x.tar.gz'),
        gzipSync(makeTar([...items, { name: `${prefix}train/plane/0000.jpg`, data: encodeImage(0, false) }])),
      );
      const u = await errorOf(loadCifar10({ file: unknown, cacheDir: tmp() }));
      expect([u.code, u.file]).toEqual(['unknown-class', `${unknown}:${prefix}train/plane`]);
    }
    // An extracted folder's class folder is named by its real path.
    const dir = tmp();
    writeItems(
      dir,
      imageItems().filter((x) => !x.name.startsWith('train/cat/')),
    );
    const d = await errorOf(loadCifar10({ dir, cacheDir: tmp() }));
    expect([d.code, d.file]).toEqual(['missing-class', join(dir, 'train', 'cat')]);
  });

  it('says what to do about a class folder that is unknown or empty', async () => {
    const dir = tmp();
    writeItems(dir, [...imageItems(), { name: 'train/plane/0000.jpg', data: encodeImage(0, false) }]);
    const u = await errorOf(loadCifar10({ dir, cacheDir: tmp() }));
    expect([u.code, u.file]).toEqual(['unknown-class', join(dir, 'train', 'plane')]);
    expect(u.message).toMatch(
      /^folder is not a class of CIFAR-10: rename it to one of its classes, or remove it/,
    );
    const empty = tmp();
    writeItems(
      empty,
      imageItems().filter((x) => !x.name.startsWith('test/dog/')),
    );
    mkdirSync(join(empty, 'test', 'dog'));
    const m = await errorOf(loadCifar10({ dir: empty, cacheDir: tmp() }));
    expect([m.code, m.file]).toEqual(['missing-class', join(empty, 'test', 'dog')]);
    expect(m.message).toMatch(
      /^no images for class 'dog' in test: every class needs train and test images; put its images in that folder/,
    );
  });

  it('says which of train/ and test/ is missing, in a folder or an archive that has only the other', async () => {
    for (const [has, lacks] of [
      ['train', 'test'],
      ['test', 'train'],
    ]) {
      const items = imageItems().filter((x) => x.name.startsWith(`${has}/`));
      const dir = tmp();
      writeItems(dir, items);
      const d = await errorOf(loadCifar10({ dir, cacheDir: tmp() }));
      expect([d.code, d.file]).toEqual(['missing-file', join(dir, lacks)]);
      expect(d.message).toContain(`${has}/ is here but ${lacks}/ is missing`);
      const file = writeFile(join(tmp(), 'x.tar.gz'), gzipSync(makeTar(items)));
      const a = await errorOf(loadCifar10({ file, cacheDir: tmp() }));
      expect([a.code, a.file]).toEqual(['missing-file', `${file}:${lacks}`]);
      expect(a.message).toContain(`${has}/ is here but ${lacks}/ is missing`);
    }
  });

  it('names an unknown class folder, a missing class, a broken image and a wrong size', async () => {
    const cases: [string, (items: TarItem[]) => TarItem[]][] = [
      ['unknown-class', (it) => [...it, { name: 'train/plane/0000.jpg', data: encodeImage(0, false) }]],
      ['missing-class', (it) => it.filter((x) => !x.name.startsWith('test/dog/'))],
      ['bad-image', (it) => [...it, { name: 'train/cat/0002.jpg', data: Buffer.from('not a jpeg') }]],
      ['bad-image', (it) => [...it, { name: 'train/cat/0002.png', data: encodeImage(3, true, 16) }]],
      [
        'bad-image',
        (it) => [...it, { name: 'train/cat/0003.png', data: encodeImage(3, true).subarray(0, 60) }],
      ],
      ['bad-image', (it) => [...it, { name: 'train/cat/0004.jpg', data: encodeImage(3, false, 40) }]],
      ['bad-image', (it) => [...it, { name: 'train/cat/notes.txt', data: Buffer.from('x') }]],
    ];
    for (const [want, change] of cases) {
      const file = writeFile(join(tmp(), 'x.tar.gz'), gzipSync(makeTar(change(imageItems()))));
      const err = await loadCifar10({ file, cacheDir: tmp() }).then(
        () => undefined,
        (e: DatasetError) => e,
      );
      expect(err).toBeInstanceOf(DatasetError);
      expect(err!.code).toBe(want);
      expect(err!.message).toContain(file);
    }
  });

  it('finds CIFAR-named entries in NORMPRUNE_DATA_DIR, and nothing else there', async () => {
    const root = tmp();
    writeItems(root, imageItems()); // bare train/ + test/: not claimed as CIFAR-10
    const old = process.env.NORMPRUNE_DATA_DIR;
    process.env.NORMPRUNE_DATA_DIR = root;
    try {
      expect(await codeOf(loadCifar10({ offline: true, cacheDir: tmp() }))).toBe('offline');
      writeFile(join(root, 'cifar-10-images.tar.gz'), gzipSync(makeTar(imageItems())));
      const ds = await loadCifar10({ offline: true, cacheDir: tmp() });
      expect(ds.train.count).toBe(20);
      writeBinary(join(root, 'cifar-10-batches-bin'));
      expect((await loadCifar10({ offline: true, cacheDir: tmp() })).test.count).toBe(4); // the binary batches win
    } finally {
      if (old === undefined) delete process.env.NORMPRUNE_DATA_DIR;
      else process.env.NORMPRUNE_DATA_DIR = old;
    }
  });

  it('refuses a CIFAR-named folder in NORMPRUNE_DATA_DIR that holds no CIFAR-10, instead of using the next source', async () => {
    const root = tmp();
    const batches = join(root, 'cifar-10-batches-bin');
    writeBinary(batches);
    rmSync(join(batches, 'data_batch_1.bin')); // as if misnamed
    writeFile(join(root, 'cifar-10-images.tar.gz'), gzipSync(makeTar(imageItems())));
    const old = process.env.NORMPRUNE_DATA_DIR;
    process.env.NORMPRUNE_DATA_DIR = root;
    try {
      const err = (await loadCifar10({ offline: true, cacheDir: tmp() }).catch((e) => e)) as DatasetError;
      expect([err.code, err.file]).toEqual(['missing-file', join(batches, 'data_batch_1.bin')]);
      expect(err.message).toMatch(/^CIFAR-10 binary batch missing: data_batch_1\.bin \(/);
      rmSync(batches, { recursive: true });
      expect((await loadCifar10({ offline: true, cacheDir: tmp() })).train.count).toBe(20); // absent: next source
    } finally {
      if (old === undefined) delete process.env.NORMPRUNE_DATA_DIR;
      else process.env.NORMPRUNE_DATA_DIR = old;
    }
  });

  it("says that CIFAR-10's Python release (pickles, torchvision's download) is not read, and which release is", async () => {
    const pickles = ['data_batch_1', 'data_batch_2', 'test_batch', 'batches.meta'];
    const release = /this is CIFAR-10's Python release .*: use the binary release, cifar-10-binary\.tar\.gz/;
    // Extracted (cifar-10-batches-py/ or its contents), and as the archive itself.
    const root = tmp();
    for (const n of pickles) writeFile(join(root, 'cifar-10-batches-py', n), Buffer.from('pickle'));
    for (const dir of [root, join(root, 'cifar-10-batches-py')]) {
      const err = (await loadCifar10({ dir, cacheDir: tmp() }).catch((e) => e)) as DatasetError;
      expect(err.code).toBe('missing-file');
      expect(err.message).toMatch(release);
    }
    const file = writeFile(
      join(tmp(), 'cifar-10-python.tar.gz'),
      gzipSync(
        makeTar(pickles.map((n) => ({ name: `cifar-10-batches-py/${n}`, data: Buffer.from('pickle') }))),
      ),
    );
    const err = (await loadCifar10({ file, cacheDir: tmp() }).catch((e) => e)) as DatasetError;
    expect([err.code, err.message]).toEqual(['missing-file', expect.stringMatching(release)]);
    // Another folder without CIFAR-10 is not told about pickles.
    const other = tmp();
    writeFile(join(other, 'notes.txt'), Buffer.from('x'));
    expect(
      ((await loadCifar10({ dir: other, cacheDir: tmp() }).catch((e) => e)) as Error).message,
    ).not.toMatch(/Python release/);
  });

  it('names a file of an extracted folder by its real path, and an archive member as archive:member', async () => {
    const cases: [TarItem, string, string][] = [
      [
        { name: 'train/cat/0002.png', data: encodeImage(3, true, 16) },
        'train/cat/0002.png',
        'wrong image size',
      ],
      [
        { name: 'train/cat/notes.txt', data: Buffer.from('x') },
        'train/cat/notes.txt',
        'not a .jpg/.jpeg/.png file: a class folder holds only images; move it out of the data set, or remove it',
      ],
      [
        { name: 'test/dog/a/0.jpg', data: encodeImage(5, false) },
        'test/dog/a/0.jpg',
        'expected test/<class>/<image>: images sit directly in their class folder; move it up into test/dog/, or remove it',
      ],
    ];
    for (const [item, rel, what] of cases) {
      const dir = tmp();
      writeItems(join(dir, 'data'), [...imageItems(), item]);
      const e = await errorOf(loadCifar10({ dir: join(dir, 'data'), cacheDir: tmp() }));
      const real = join(dir, 'data', ...rel.split('/'));
      expect(e.file).toBe(real);
      expect(e.message).toContain(`${what}`);
      expect(e.message).toContain(`file: ${real};`);
      expect(e.message).not.toContain(':train/');
      expect(e.message).not.toContain(':test/');
      expect(readFileSync(e.file!).length).toBe((item.data as Uint8Array).length); // a path one can open
      const file = writeFile(join(dir, 'x.tar'), makeTar([...imageItems(), item]));
      const a = await errorOf(loadCifar10({ file, cacheDir: tmp() }));
      expect(a.file).toBe(`${file}:${rel}`);
    }
  });

  it('says what is missing and how to get it when offline', async () => {
    const old = process.env.NORMPRUNE_DATA_DIR;
    delete process.env.NORMPRUNE_DATA_DIR;
    try {
      const cacheDir = tmp();
      const err = (await loadCifar10({ offline: true, cacheDir }).catch((e) => e)) as DatasetError;
      expect(err.code).toBe('offline');
      expect(err.file).toBe(join(cacheDir, 'cifar-10', 'cifar-10-binary.tar.gz'));
      expect(err.message).toContain('https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz');
      expect(err.message).toContain('c32a1d4ab5d03f1284b67883e8d87530');
    } finally {
      if (old !== undefined) process.env.NORMPRUNE_DATA_DIR = old;
    }
  });

  it('offline, names a NORMPRUNE_DATA_DIR that does not exist (a typo would otherwise go unseen)', async () => {
    const old = process.env.NORMPRUNE_DATA_DIR;
    const missing = join(tmp(), 'no-such-folder');
    process.env.NORMPRUNE_DATA_DIR = missing;
    try {
      const err = (await loadCifar10({ offline: true, cacheDir: tmp() }).catch((e) => e)) as DatasetError;
      expect(err.code).toBe('offline');
      expect(err.message).toContain(`NORMPRUNE_DATA_DIR is set to ${missing}, which does not exist`);
    } finally {
      if (old === undefined) delete process.env.NORMPRUNE_DATA_DIR;
      else process.env.NORMPRUNE_DATA_DIR = old;
    }
  });
});

/** CRC-32 of PNG chunks (zlib's polynomial), so tests can craft PNG headers pngjs would never write. */
function crc32(b: Uint8Array): number {
  let c = ~0;
  for (const x of b) {
    c ^= x;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** A 60-byte PNG whose IHDR claims `width` x `height` (1-bit grey): decoding it would allocate the full bitmap. */
function pngClaiming(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([1, 0, 0, 0, 0], 8);
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([
    signature,
    chunk('IHDR', ihdr),
    chunk('IDAT', gzipSync(Buffer.alloc(0))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

describe('CIFAR-10 image folders: hostile and broken files', () => {
  it('refuses a PNG whose header claims 16384x16384 before decoding it', async () => {
    const dir = tmp();
    const bomb = pngClaiming(16384, 16384);
    writeItems(dir, [...imageItems(), { name: 'train/cat/zbomb.png', data: bomb }]);
    const decode = jest.spyOn(PNG.sync, 'read');
    try {
      const e = await errorOf(loadCifar10({ dir, cacheDir: tmp() }));
      const file = join(dir, 'train', 'cat', 'zbomb.png');
      expect([e.code, e.file, e.expected, e.found]).toEqual(['bad-image', file, '32x32', '16384x16384']);
      expect(e.message).toBe(`wrong image size; file: ${file}; expected: 32x32; found: 16384x16384`);
      expect(decode).toHaveBeenCalled(); // the good PNGs before it
      expect(decode.mock.calls.some(([b]) => bomb.equals(b))).toBe(false);
    } finally {
      decode.mockRestore();
    }
  });

  it('refuses the same PNG inside an archive, and the same PNG named .jpg', async () => {
    const file = writeFile(
      join(tmp(), 'x.tar.gz'),
      gzipSync(makeTar([...imageItems(), { name: 'test/cat/zbomb.png', data: pngClaiming(40000, 1) }])),
    );
    const e = await errorOf(loadCifar10({ file, cacheDir: tmp() }));
    expect([e.code, e.file, e.found]).toEqual(['bad-image', `${file}:test/cat/zbomb.png`, '40000x1']);
    const dir = tmp();
    writeItems(dir, [...imageItems(), { name: 'train/cat/zbomb.jpg', data: pngClaiming(40000, 1) }]);
    const f = await errorOf(loadCifar10({ dir, cacheDir: tmp() }));
    expect([f.code, f.file, f.found]).toEqual([
      'bad-image',
      join(dir, 'train', 'cat', 'zbomb.jpg'),
      '40000x1',
    ]);
  });

  it('refuses a JPEG whose frame header claims 4000x3000 as a wrong size, not as a damaged file', async () => {
    const big = Buffer.from(encodeImage(3, false));
    // The baseline frame header (FF C0, length, precision) holds height then width, big-endian.
    const sof = big.indexOf(Buffer.from([0xff, 0xc0]));
    big.writeUInt16BE(3000, sof + 5);
    big.writeUInt16BE(4000, sof + 7);
    const dir = tmp();
    writeItems(dir, [...imageItems(), { name: 'train/cat/big.jpg', data: big }]);
    const e = await errorOf(loadCifar10({ dir, cacheDir: tmp() }));
    const file = join(dir, 'train', 'cat', 'big.jpg');
    expect([e.code, e.file, e.expected, e.found]).toEqual(['bad-image', file, '32x32', '4000x3000']);
    expect(e.message).toBe(`wrong image size; file: ${file}; expected: 32x32; found: 4000x3000`);
  });

  it('decodes an image by its content, not its extension, and says what is wrong with one that is neither', async () => {
    // A JPEG named .png and a PNG named .jpg (a renamed or mislabelled copy) load as what they are.
    const dir = tmp();
    writeItems(dir, [
      ...imageItems(),
      { name: 'train/cat/0002.png', data: encodeImage(3, false) },
      { name: 'train/dog/0002.jpg', data: encodeImage(5, true) },
    ]);
    const ds = await loadCifar10({ dir, cacheDir: tmp() });
    expect(ds.train.count).toBe(22);
    expectColours(ds.train);
    const cases: [string, Uint8Array, RegExp][] = [
      ['empty.jpg', Buffer.alloc(0), /^the image file is empty; replace it with a good copy/],
      [
        'html.png',
        Buffer.from('<html>404 Not Found</html>'),
        /^neither a JPEG nor a PNG file \(it starts with 3c 68 74 6d\); re-encode it as PNG or JPEG/,
      ],
      [
        'cut.jpg',
        encodeImage(3, false).subarray(0, 300),
        /^cannot decode the JPEG image \(.*\): it is damaged or cut short; replace it with a good copy/,
      ],
      [
        'cut.png',
        encodeImage(3, true).subarray(0, 60),
        /^cannot decode the PNG image \(.*\): it is damaged or cut short; replace it with a good copy/,
      ],
    ];
    for (const [name, data, message] of cases) {
      const d = tmp();
      writeItems(d, [...imageItems(), { name: `train/cat/${name}`, data }]);
      const e = await errorOf(loadCifar10({ dir: d, cacheDir: tmp() }));
      expect({ name, code: e.code, file: e.file }).toEqual({
        name,
        code: 'bad-image',
        file: join(d, 'train', 'cat', name),
      });
      expect({ name, message: e.message }).toEqual({ name, message: expect.stringMatching(message) });
    }
  });

  it('names a dangling symbolic link in a class folder', async () => {
    const dir = tmp();
    writeItems(dir, imageItems());
    const link = join(dir, 'train', 'cat', 'dangling.png');
    symlinkSync('/nonexistent/x.png', link);
    const e = await errorOf(loadCifar10({ dir, cacheDir: tmp() }));
    expect([e.code, e.file]).toEqual(['bad-image', link]);
    expect(e.message).toBe(
      'an entry of the image folder is a symbolic link whose target does not exist (or was removed while the folder was read); ' +
        `remove the link or restore its target; file: ${link}`,
    );
  });

  it('names a symbolic link loop, to itself or back to a parent folder', async () => {
    for (const [name, target] of [
      ['self.png', 'self.png'],
      ['loop', '..'],
    ]) {
      const dir = tmp();
      writeItems(dir, imageItems());
      const link = join(dir, 'train', 'cat', name);
      symlinkSync(target, link);
      const e = await errorOf(loadCifar10({ dir, cacheDir: tmp() }));
      expect([e.code, e.file]).toEqual(['bad-image', link]);
      expect(e.message).toMatch(/^an entry of the image folder is a symbolic link loop/);
    }
  });

  it('skips hidden entries it cannot use (an editor lock link), and refuses a FIFO', async () => {
    const dir = tmp();
    writeItems(dir, imageItems());
    symlinkSync('user@host.1234:1700000000', join(dir, 'train', 'cat', '.#0000.jpg'));
    expect((await loadCifar10({ dir, cacheDir: tmp() })).train.count).toBe(20);
    const fifo = join(dir, 'train', 'cat', 'pipe.png');
    execFileSync('mkfifo', [fifo]);
    const e = await errorOf(loadCifar10({ dir, cacheDir: tmp() }));
    expect([e.code, e.file]).toEqual(['bad-image', fifo]);
    expect(e.message).toBe(
      `an entry of the image folder is not a regular file (a device, FIFO or socket); remove it; file: ${fifo}`,
    );
  });

  it('does not read hidden files or folders as images, in a folder or an archive', async () => {
    const hidden: TarItem[] = [
      { name: 'train/cat/.ipynb_checkpoints/0000-checkpoint.jpg', data: encodeImage(0, false) },
      { name: 'train/.ipynb_checkpoints/notes.txt', data: Buffer.from('x') },
      { name: 'train/cat/.DS_Store', data: Buffer.from('x') },
    ];
    const dir = tmp();
    writeItems(dir, [...imageItems(), ...hidden]);
    expect((await loadCifar10({ dir, cacheDir: tmp() })).train.count).toBe(20);
    const file = writeFile(join(tmp(), 'hidden.tar.gz'), gzipSync(makeTar([...imageItems(), ...hidden])));
    expect((await loadCifar10({ file, cacheDir: tmp() })).train.count).toBe(20);
  });

  it('reads a name an archive holds twice as its later entry, as extracting it would', async () => {
    const items = imageItems();
    // Appended later (tar -r): train/airplane/0000.jpg again, now an image of class 3's colour.
    const again: TarItem = { name: 'train/airplane/0000.jpg', data: encodeImage(3, false) };
    const file = writeFile(join(tmp(), 'twice.tar.gz'), gzipSync(makeTar([...items, again])));
    const ds = await loadCifar10({ file, cacheDir: tmp() });
    expect(ds.train.count).toBe(20);
    const dir = tmp();
    writeItems(dir, [...items, again]);
    const extracted = await loadCifar10({ dir, cacheDir: tmp() });
    expect(Buffer.from(ds.train.images).equals(Buffer.from(extracted.train.images))).toBe(true);
  });

  it('names a `dir` that is a file (the archive given as dir) or does not exist', async () => {
    const archive = writeFile(join(tmp(), 'cifar-10-binary.tar.gz'), gzipSync(makeTar([])));
    const e = await errorOf(loadCifar10({ dir: archive, cacheDir: tmp() }));
    expect([e.code, e.file, e.message]).toEqual([
      'invalid-argument',
      archive,
      `CIFAR-10: this is a file, not a directory; pass an archive as { file }, or the folder holding cifar-10-batches-bin/ or train/ + test/ as { dir }; file: ${archive}`,
    ]);
    const missing = join(tmp(), 'cifar10');
    const m = await errorOf(loadCifar10({ dir: missing, cacheDir: tmp() }));
    expect([m.code, m.file, m.message]).toEqual([
      'missing-file',
      missing,
      `CIFAR-10: the folder does not exist; check the path (a relative dir is taken from the working directory, ${process.cwd()}); file: ${missing}`,
    ]);
  });

  it('names a `file` that is a directory or missing', async () => {
    const dir = tmp();
    mkdirSync(join(dir, 'cifar-10-binary.tar.gz'));
    for (const file of [dir, join(dir, 'cifar-10-binary.tar.gz')]) {
      const e = await errorOf(loadCifar10({ file, cacheDir: tmp() }));
      expect([e.code, e.file, e.message]).toEqual([
        'invalid-argument',
        file,
        `CIFAR-10 archive is a directory, not a file; pass a directory as { dir }, or name the file inside it; file: ${file}`,
      ]);
    }
    const missing = join(dir, 'nope.tar.gz');
    const e = await errorOf(loadCifar10({ file: missing, cacheDir: tmp() }));
    expect([e.code, e.file, e.message]).toEqual([
      'missing-file',
      missing,
      `CIFAR-10 archive not found; file: ${missing}`,
    ]);
  });
});
