// Integration on the real CIFAR-10 image-folder archive (facts: ../shared/data/README.md).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import jpeg from 'jpeg-js';
import { loadCifar10 } from '../src/index';
import { readTarFile } from '../src/tar';

const WORKSPACE = resolve(__dirname, '../../..');
const ARCHIVE = resolve(WORKSPACE, '../shared/data/cifar-10-images.tar.gz');
const CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

describe('real CIFAR-10 (cifar-10-images.tar.gz)', () => {
  it('exists where CI and a developer checkout put it', () => {
    expect(existsSync(ARCHIVE)).toBe(true);
  });

  it('holds 5,000 / 1,000 images per class (counted from tar entries), which decode to 32x32 RGB', () => {
    const entries = readTarFile(ARCHIVE).filter((e) => e.type === 'file');
    const count = (split: string) => CLASSES.map((c) => entries.filter((e) => e.name.startsWith(`${split}/${c}/`) && e.name.endsWith('.jpg')).length);
    expect(count('train')).toEqual(new Array(10).fill(5000));
    expect(count('test')).toEqual(new Array(10).fill(1000));
    for (const e of entries.filter((_, i) => i % 6000 === 0)) {
      const img = jpeg.decode(e.data, { useTArray: true, formatAsRGBA: false });
      expect([img.width, img.height, img.data.length]).toEqual([32, 32, 3072]);
    }
  });

  it('loads in label order, decodes once, then serves the cache', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'npds-cifar-'));
    try {
      const a = await loadCifar10({ file: ARCHIVE, cacheDir });
      expect(a.classes).toEqual(CLASSES);
      expect(a.train.count).toBe(50000);
      expect(a.test.count).toBe(10000);
      const per = (l: Uint8Array) => Array.from({ length: 10 }, (_, k) => l.filter((x) => x === k).length);
      expect(per(a.train.labels)).toEqual(new Array(10).fill(5000));
      expect(per(a.test.labels)).toEqual(new Array(10).fill(1000));
      // Classes are interleaved, so the last 5,000 training images hold 500 of each.
      expect(per(a.train.labels.subarray(45000))).toEqual(new Array(10).fill(500));
      // Image i of the split is the (i / 10)-th file of class i % 10.
      const entries = new Map(readTarFile(ARCHIVE).map((e) => [e.name, e.data]));
      for (const [j, name] of [[0, 'train/airplane/0000.jpg'], [11, 'train/automobile/0001.jpg'], [49999, 'train/truck/4999.jpg'], [9993, 'test/cat/0999.jpg']] as const) {
        const split = name.startsWith('test') ? a.test : a.train;
        const want = jpeg.decode(entries.get(name)!, { useTArray: true, formatAsRGBA: false }).data;
        expect(Buffer.from(split.images.subarray(j * 3072, (j + 1) * 3072)).equals(Buffer.from(want))).toBe(true);
        expect(a.classes[split.labels[j]]).toBe(name.split('/')[1]);
      }
      const b = await loadCifar10({ file: ARCHIVE, cacheDir });
      expect(Buffer.from(b.train.images).equals(Buffer.from(a.train.images))).toBe(true);
      expect(Buffer.from(b.test.labels).equals(Buffer.from(a.test.labels))).toBe(true);
    } finally {
      rmSync(cacheDir, { recursive: true, force: true });
    }
  });
});
