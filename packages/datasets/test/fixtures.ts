// Small data-set files written by the tests themselves under os.tmpdir().
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { DatasetError, type Split } from '../src/index';

const created: string[] = [];

/** A fresh directory under os.tmpdir(), removed after the test file (see the afterAll below). */
export function tmp(prefix = 'npds-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  created.push(d);
  return d;
}

afterAll(() => {
  for (const d of created.splice(0)) rmSync(d, { recursive: true, force: true });
});

export function idx(magic: number, dims: number[], data: Uint8Array): Buffer {
  const h = Buffer.alloc(4 + 4 * dims.length);
  h.writeUInt32BE(magic, 0);
  h[3] = dims.length;
  dims.forEach((d, i) => h.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([h, Buffer.from(data)]);
}

/** Images whose pixels encode (image, position) so order mistakes show. */
export function fakeImages(n: number, h: number, w: number, c = 1, salt = 0): Uint8Array {
  const a = new Uint8Array(n * h * w * c);
  for (let i = 0; i < a.length; i++) a[i] = (i * 7 + Math.floor(i / (h * w * c)) * 13 + salt) & 0xff;
  return a;
}

export function fakeLabels(n: number, k = 10): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => i % k);
}

/** Writes the four IDX files of an MNIST-like set; returns the dir and the raw arrays. */
export function writeIdxSet(dir: string, o: { ntrain?: number; ntest?: number; gzip?: boolean } = {}) {
  const ntrain = o.ntrain ?? 20;
  const ntest = o.ntest ?? 10;
  mkdirSync(dir, { recursive: true });
  const arrays = {
    trainImages: fakeImages(ntrain, 28, 28),
    trainLabels: fakeLabels(ntrain),
    testImages: fakeImages(ntest, 28, 28, 1, 5),
    testLabels: fakeLabels(ntest),
  };
  const ext = o.gzip ? '.gz' : '';
  const w = (name: string, buf: Buffer) => writeFileSync(join(dir, name + ext), o.gzip ? gzipSync(buf) : buf);
  w('train-images-idx3-ubyte', idx(2051, [ntrain, 28, 28], arrays.trainImages));
  w('train-labels-idx1-ubyte', idx(2049, [ntrain], arrays.trainLabels));
  w('t10k-images-idx3-ubyte', idx(2051, [ntest, 28, 28], arrays.testImages));
  w('t10k-labels-idx1-ubyte', idx(2049, [ntest], arrays.testLabels));
  return { dir, ...arrays };
}

export interface TarItem {
  name: string;
  data?: Uint8Array;
  type?: '0' | '1' | '2' | '3' | '4' | '5' | '6' | 'x' | 'X' | 'A' | 'D' | 'E' | 'M' | 'S' | 'V' | 'Q';
  linkname?: string;
  /** pax records for an 'x' header before this entry. */
  pax?: Record<string, string>;
}

function header(name: string, size: number, type: string, linkname = ''): Buffer {
  const h = Buffer.alloc(512);
  h.write(name.slice(0, 100), 0, 'utf8');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(size.toString(8).padStart(11, '0') + '\0', 124);
  h.write('00000000000\0', 136);
  h.write(type, 156);
  h.write(linkname, 157);
  h.write('ustar\0', 257);
  h.write('00', 263);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return h;
}

function pad(b: Uint8Array): Buffer {
  const p = Buffer.alloc(Math.ceil(b.length / 512) * 512);
  p.set(b);
  return p;
}

/** A hand-made ustar archive, so tests can build hostile ones the tar tool would refuse to write. */
export function makeTar(items: TarItem[], o: { end?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const it of items) {
    if (it.pax) {
      const body = Buffer.from(
        Object.entries(it.pax)
          .map(([k, v]) => {
            const rec = ` ${k}=${v}\n`;
            let len = rec.length + 1;
            while (String(len).length + rec.length !== len) len = String(len).length + rec.length;
            return `${len}${rec}`;
          })
          .join(''),
      );
      parts.push(header('PaxHeader', body.length, 'x'), pad(body));
    }
    const data = it.data ?? new Uint8Array(0);
    parts.push(header(it.name, data.length, it.type ?? '0', it.linkname));
    if (data.length) parts.push(pad(data));
  }
  if (o.end !== false) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export function writeFile(path: string, data: Uint8Array): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, data);
  return path;
}

/** A split of `n` fake images of `h` x `w` x `c` with labels of 10 classes. */
export function fakeSplit(n: number, h = 4, w = 4, c = 3): Split {
  return {
    images: fakeImages(n, h, w, c),
    labels: fakeLabels(n, 10),
    count: n,
    shape: [h, w, c],
    numClasses: 10,
  };
}

/** The `code` of the DatasetError `f` throws (fails the test if it throws anything else, or nothing). */
export function datasetErrorCode(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(DatasetError);
    return (e as DatasetError).code;
  }
  throw new Error('expected a DatasetError');
}

/** The six files of CIFAR-10's binary layout, in the order of its batches. */
export const CIFAR_BATCH_FILES = [
  'data_batch_1.bin',
  'data_batch_2.bin',
  'data_batch_3.bin',
  'data_batch_4.bin',
  'data_batch_5.bin',
  'test_batch.bin',
];
