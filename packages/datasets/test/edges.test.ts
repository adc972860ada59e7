// The edges of the readers and the tensor helpers, each pinned by a case of its own: tar entry
// kinds and size limits, short IDX files, label and size checks, augmentation and shuffle
// defaults, seeds, empty CIFAR batches, the decoded cache's label check, and checksums
// published in upper case. (Found unpinned by mutation testing: each fails on its mutant.)
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { batches, mulberry32, toTensors, validationSplit, type Split } from '../src/index';
import { parseCifarBinary } from '../src/cifar';
import { readDecoded, writeDecoded } from '../src/decoded-cache';
import { downloadFile } from '../src/download';
import { parseIdx } from '../src/idx';
import { readTar } from '../src/tar';
import { CIFAR_BATCH_FILES, datasetErrorCode, fakeImages, fakeSplit, makeTar, tmp } from './fixtures';

const bytes = (s: string) => Buffer.from(s);

const code = datasetErrorCode;

const split = fakeSplit;

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('readTar: entry kinds and refusals the suite does not pin', () => {
  it('refuses a backslash path (a Windows tar-slip) as unsafe-archive', () => {
    expect(code(() => readTar(makeTar([{ name: 'd\\..\\..\\evil', data: bytes('x') }]), 't'))).toBe(
      'unsafe-archive',
    );
  });

  it("refuses a hard link to '..' as unsafe-archive, like other links that leave the archive", () => {
    const tar = makeTar([
      { name: 'a', data: bytes('x') },
      { name: 'h', type: '1', linkname: '..' },
    ]);
    expect(code(() => readTar(tar, 't'))).toBe('unsafe-archive');
  });

  it('reads an old-style regular file (type byte NUL) and a contiguous file (type 7) as files', () => {
    const tar = makeTar([
      { name: 'old', type: '' as never, data: bytes('v7') },
      { name: 'contig', type: '7' as never, data: bytes('seven') },
    ]);
    const e = readTar(tar, 't');
    expect(e.map((x) => [x.name, x.type, Buffer.from(x.data).toString()])).toEqual([
      ['old', 'file', 'v7'],
      ['contig', 'file', 'seven'],
    ]);
  });

  it('reads a gzipped archive whose files fill maxTotalBytes exactly (headers do not count)', () => {
    const gz = gzipSync(makeTar([{ name: 'a', data: new Uint8Array(1000) }]));
    expect(readTar(gz, 't', { maxTotalBytes: 1000 }).map((x) => x.data.length)).toEqual([1000]);
  });

  it('says "IDX file" for a 4-dimensional IDX file given as a tar', () => {
    const buf = new Uint8Array(1024);
    buf.set([0, 0, 8, 4]);
    expect(() => readTar(buf, 'x.idx')).toThrow(
      expect.objectContaining({
        code: 'invalid-argument',
        message: expect.stringContaining('this is an IDX file'),
      }),
    );
  });
});

describe('parseIdx: short files', () => {
  it('calls a 3-byte file truncated (a DatasetError, not a RangeError)', () => {
    expect(() => parseIdx(new Uint8Array([0, 0, 8]), 'f', 2051)).toThrow(
      expect.objectContaining({ code: 'truncated' }),
    );
  });
});

describe('toTensors / batches: boundaries', () => {
  it('refuses a label equal to numClasses (the first out-of-range value)', () => {
    const s: Split = { ...split(3), numClasses: 10, labels: Uint8Array.from([0, 10, 1]) };
    expect(() => toTensors(s, { oneHot: true })).toThrow(
      expect.objectContaining({ code: 'label-out-of-range' }),
    );
  });

  it('one-hot encodes with depth max label + 1 when the split has no numClasses', () => {
    const s: Split = { ...split(3), labels: Uint8Array.from([0, 4, 2]) };
    delete s.numClasses;
    const { xs, ys } = toTensors(s, { oneHot: true });
    expect(ys.shape).toEqual([3, 5]);
    expect(Array.from(ys.dataSync())).toEqual([1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0]);
    tf.dispose([xs, ys]);
  });

  it('refuses one-hot labels for an empty split without numClasses (no label gives a depth)', () => {
    const s: Split = { ...split(0) };
    delete s.numClasses;
    expect(() => toTensors(s, { oneHot: true })).toThrow(
      'an empty split without numClasses has no one-hot depth (it comes from the largest label + 1); ' +
        "set split.numClasses, e.g. to the training split's",
    );
    const { xs, ys } = toTensors({ ...s, numClasses: 10 }, { oneHot: true });
    expect([xs.shape, ys.shape]).toEqual([
      [0, 4, 4, 3],
      [0, 10],
    ]);
    tf.dispose([xs, ys]);
  });

  it('refuses a split whose image bytes are not count * h * w * c', () => {
    const s = split(4);
    expect(() => toTensors({ ...s, images: s.images.subarray(0, s.images.length - 1) })).toThrow(
      expect.objectContaining({ code: 'size-mismatch' }),
    );
  });

  it('augment: true and augment: {} are { padding: 4, flip: true }', async () => {
    const s = split(64, 8, 8, 1);
    const first = async (augment: unknown) => {
      const { value } = await batches(s, { batchSize: 64, seed: 3, augment: augment as never }).next();
      const px = Array.from(value.xs.dataSync());
      tf.dispose([value.xs, value.ys]);
      return px;
    };
    const explicit = await first({ padding: 4, flip: true });
    expect(await first(true)).toEqual(explicit);
    expect(await first({})).toEqual(explicit);
  });

  it('shuffles differently on each call without a seed', async () => {
    const s = split(200, 1, 1, 1);
    const order = async () => {
      const { value } = await batches(s, { batchSize: 200, shuffle: true }).next();
      const px = Array.from(value.xs.dataSync());
      tf.dispose([value.xs, value.ys]);
      return px;
    };
    expect(await order()).not.toEqual(await order());
  });
});

describe('validationSplit', () => {
  it('holds out a single image when n is 1 (a count, not the fraction 1)', () => {
    const { train, validation } = validationSplit(split(5), 1);
    expect([train.count, validation.count]).toEqual([4, 1]);
  });
});

describe('parseCifarBinary: empty batches', () => {
  it('refuses six empty batch files (a failed extraction) instead of loading 0 images', () => {
    const names = CIFAR_BATCH_FILES;
    expect(
      code(() =>
        parseCifarBinary(
          (n) => (names.includes(n) ? { name: n, data: new Uint8Array(0) } : undefined),
          'mem',
        ),
      ),
    ).toBe('truncated');
  });
});

describe('mulberry32', () => {
  it('refuses the seed 2^32 (it would quietly act as 0)', () => {
    expect(() => mulberry32(2 ** 32)).toThrow(expect.objectContaining({ code: 'invalid-argument' }));
    expect(() => mulberry32(2 ** 32 - 1)).not.toThrow();
  });
});

describe('decoded cache', () => {
  it('is not served when a label is out of range for its classes (re-decode instead)', () => {
    const file = join(tmp(), 'c.bin');
    const sp = (n: number, bad: boolean): Split => ({
      images: fakeImages(n, 2, 2, 3),
      labels: Uint8Array.from({ length: n }, (_, i) => (bad && i === 1 ? 2 : i % 2)),
      count: n,
      shape: [2, 2, 3],
      numClasses: 2,
    });
    writeDecoded(file, 'k', { train: sp(3, false), test: sp(2, false), classes: ['a', 'b'] });
    expect(readDecoded(file, 'k')?.train.count).toBe(3);
    writeDecoded(file, 'k', { train: sp(3, true), test: sp(2, false), classes: ['a', 'b'] });
    expect(readDecoded(file, 'k')).toBeUndefined();
  });
});

describe('downloadFile: published checksums', () => {
  const body = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 31) & 0xff));
  let server: http.Server;
  let base: string;
  beforeAll(async () => {
    server = http.createServer((_req, res) => {
      res.setHeader('content-length', body.length);
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
  });

  it('accepts a sha256 published in upper case, as it does an md5', async () => {
    const dest = join(tmp(), 'f.bin');
    const sha256 = createHash('sha256').update(body).digest('hex').toUpperCase();
    await downloadFile({ url: `${base}/f.bin`, sha256 }, dest, { backoffMs: 10 });
    expect(readFileSync(dest).equals(body)).toBe(true);
  });
});
