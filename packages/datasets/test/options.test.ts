// Every options object the package exports a function for refuses keys it does
// not know (a misspelled `dir` must not load another copy of the data) and
// flags that are not booleans (`shuffle: 'false'` must not shuffle).
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import {
  DatasetError,
  batches,
  idxSplit,
  loadCifar10,
  loadFashionMnist,
  loadMnist,
  toTensors,
  validationSplit,
  type Split,
} from '../src/index';
import { fakeImages, fakeLabels, idx, tmp, writeIdxSet } from './fixtures';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

async function errorOf(p: Promise<unknown> | (() => unknown)): Promise<DatasetError> {
  let e: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (x) {
    e = x;
  }
  expect(e).toBeInstanceOf(DatasetError);
  return e as DatasetError;
}

function split(n: number, h = 4, w = 4, c = 3): Split {
  return {
    images: fakeImages(n, h, w, c),
    labels: fakeLabels(n, 3),
    count: n,
    shape: [h, w, c],
    numClasses: 3,
  };
}

const LOAD_KEYS = 'one of dir, file, offline, cacheDir, mirror';

describe('load options with unknown keys', () => {
  const dir = writeIdxSet(join(tmp(), 'mnist')).dir;

  it.each([
    ['directory', 'dir'],
    ['path', '`file` or `dir`'],
    ['dataDir', 'dir'],
    ['cache_dir', 'cacheDir'],
    ['Dir', 'dir'],
    ['flie', 'file'],
    ['ofline', 'offline'],
    ['mirrors', 'mirror'],
    ['archive', 'file'],
  ])('refuses { %s } in every loader, naming the closest key (%s) and all of them', async (key, near) => {
    const hint = near.includes('`') ? near : `\`${near}\``;
    for (const [load, title] of [
      [loadMnist, 'MNIST'],
      [loadFashionMnist, 'Fashion-MNIST'],
      [loadCifar10, 'CIFAR-10'],
    ] as const) {
      const e = await errorOf(load({ [key]: dir, offline: true, cacheDir: tmp() } as never));
      expect(e.code).toBe('invalid-argument');
      expect(e.message).toBe(
        `${title} load options: unknown option \`${key}\` (did you mean ${hint}?); expected: ${LOAD_KEYS}; found: ${key}`,
      );
      expect([e.expected, e.found]).toEqual([LOAD_KEYS, key]);
    }
  });

  it('names no closest key when none is near, and refuses an unknown key even when it is undefined', async () => {
    const e = await errorOf(loadMnist({ dir, colour: 'red' } as never));
    expect(e.message).toBe(
      `MNIST load options: unknown option \`colour\`; expected: ${LOAD_KEYS}; found: colour`,
    );
    const u = await errorOf(loadCifar10({ dir, directory: undefined } as never));
    expect(u.message).toContain('unknown option `directory` (did you mean `dir`?)');
  });

  it('still loads with only known keys', async () => {
    const ds = await loadMnist({ dir, offline: true, cacheDir: tmp() });
    expect([ds.train.count, ds.test.count]).toEqual([20, 10]);
  });
});

describe('mirror', () => {
  it.each(['/srv/mirror', 'localhost:8080', 'ftp://files.example/datasets', 'file:///srv/mirror'])(
    'refuses %j, not an http(s) URL, before any download, and says what to pass for a folder',
    async (mirror) => {
      const old = process.env.NORMPRUNE_DATA_DIR;
      delete process.env.NORMPRUNE_DATA_DIR;
      try {
        const e = await errorOf(loadCifar10({ mirror, cacheDir: tmp() }));
        expect([e.code, e.found]).toEqual(['invalid-argument', JSON.stringify(mirror)]);
        expect(e.message).toMatch(
          /^mirror must be an http:\/\/ or https:\/\/ URL \(the files are fetched as <mirror>\/<dataset>\/<file>\); for files in a folder, pass \{ dir \} or set NORMPRUNE_DATA_DIR/,
        );
        // The same from the environment, which the message names.
        process.env.NORMPRUNE_DATA_MIRROR = mirror;
        const env = await errorOf(loadCifar10({ cacheDir: tmp() }));
        expect([env.code, env.message]).toEqual([
          'invalid-argument',
          expect.stringMatching(/^NORMPRUNE_DATA_MIRROR must be an http:\/\/ or https:\/\/ URL/),
        ]);
      } finally {
        delete process.env.NORMPRUNE_DATA_MIRROR;
        if (old !== undefined) process.env.NORMPRUNE_DATA_DIR = old;
      }
    },
  );
});

describe('batches() and toTensors() options', () => {
  const s = split(5);

  it.each([
    [{ batchSize: 2, normalise: 'standardize' }, 'batches options', 'normalise', 'normalize'],
    [{ batchSize: 2, shufle: true }, 'batches options', 'shufle', 'shuffle'],
    [{ batchSize: 2, one_hot: true }, 'batches options', 'one_hot', 'oneHot'],
    [{ batch_size: 2 }, 'batches options', 'batch_size', 'batchSize'],
    [{ batchSize: 2, dropLast: true }, 'batches options', 'dropLast', 'dropRemainder'],
    [{ batchSize: 2, skipBatches: 3 }, 'batches options', 'skipBatches', 'start'],
    [{ batchSize: 2, skip: 3 }, 'batches options', 'skip', 'start'],
    [{ batchSize: 2, augment: { pad: 0 } }, 'augment', 'pad', 'padding'],
    [{ batchSize: 2, augment: { padding: 2, flips: false } }, 'augment', 'flips', 'flip'],
  ])('batches(split, %j) is refused before any tensor exists', async (o, what, key, near) => {
    const before = tf.memory().numTensors;
    const e = await errorOf(() => batches(s, o as never));
    expect(e.code).toBe('invalid-argument');
    expect(e.message).toMatch(
      `${what}: unknown option \`${key}\` (did you mean \`${near}\`?); expected: one of `,
    );
    expect(e.found).toBe(key);
    expect(tf.memory().numTensors).toBe(before);
  });

  it.each([
    [{ normalise: 'unit' }, 'normalise', 'normalize'],
    [{ onehot: true }, 'onehot', 'oneHot'],
    [{ stat: { mean: [0], std: [1] } }, 'stat', 'stats'],
  ])('toTensors(split, %j) is refused before any tensor exists', async (o, key, near) => {
    const before = tf.memory().numTensors;
    const e = await errorOf(() => toTensors(s, o as never));
    expect(e.message).toBe(
      `toTensors options: unknown option \`${key}\` (did you mean \`${near}\`?); expected: one of normalize, stats, oneHot, labelDtype; found: ${key}`,
    );
    expect(tf.memory().numTensors).toBe(before);
  });

  // Synonyms are shared with batches: one naming a batches-only option (start, dropRemainder,
  // seed) is no suggestion for toTensors, which would refuse it in turn.
  it.each([{ skip: 3 }, { firstBatch: 1 }, { dropLast: true }, { randomSeed: 1 }])(
    'toTensors(split, %j) suggests no option toTensors does not take',
    async (o) => {
      const e = await errorOf(() => toTensors(s, o as never));
      expect(e.code).toBe('invalid-argument');
      expect(e.message).not.toMatch(/did you mean `(start|dropRemainder|seed)`/);
    },
  );

  it.each([
    ['shuffle', 'false'],
    ['shuffle', 1],
    ['oneHot', 'false'],
    ['oneHot', 'no'],
    ['dropRemainder', 'false'],
    ['dropRemainder', 0],
  ])('refuses %s: %j, which would act as its truthiness', async (flag, value) => {
    const before = tf.memory().numTensors;
    const e = await errorOf(() => batches(s, { batchSize: 2, [flag]: value } as never));
    expect(e.code).toBe('invalid-argument');
    const shown = typeof value === 'string' ? `"${value}" (a string)` : `number ${value}`;
    expect(e.message).toBe(`${flag} must be true or false; found: ${shown}`);
    if (flag === 'oneHot') {
      const t = await errorOf(() => toTensors(s, { oneHot: value } as never));
      expect(t.message).toBe(`oneHot must be true or false; found: ${shown}`);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('takes true, false and undefined flags as before', async () => {
    const before = tf.memory().numTensors;
    for (const flag of [true, false, undefined]) {
      let n = 0;
      for await (const { xs, ys } of batches(s, {
        batchSize: 2,
        shuffle: flag,
        oneHot: flag,
        dropRemainder: flag,
        seed: 1,
      })) {
        n += xs.shape[0];
        expect(ys.shape).toEqual(flag ? [2, 3] : [xs.shape[0]]);
        tf.dispose([xs, ys]);
      }
      expect(n).toBe(flag ? 4 : 5);
      const t = toTensors(s, { oneHot: flag });
      expect(t.ys.shape).toEqual(flag ? [5, 3] : [5]);
      tf.dispose([t.xs, t.ys]);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses toTensors options that are not an object', async () => {
    const e = await errorOf(() => toTensors(s, 'standardize' as never));
    expect(e.message).toBe(
      'toTensors(split, options): options must be an object such as { normalize, stats, oneHot }; found: "standardize"',
    );
  });
});

describe('idxSplit options', () => {
  const images = idx(2051, [2, 2, 2], fakeImages(2, 2, 2));
  const labels = idx(2049, [2], fakeLabels(2));

  it('refuses unknown keys in the options and in names', async () => {
    const a = await errorOf(idxSplit(images, labels, { numclasses: 3 } as never));
    expect(a.message).toBe(
      'idxSplit options: unknown option `numclasses` (did you mean `numClasses`?); expected: one of numClasses, names; found: numclasses',
    );
    const b = await errorOf(idxSplit(images, labels, { names: { image: 'a.idx' } } as never));
    expect(b.message).toBe(
      'idxSplit names: unknown option `image` (did you mean `images`?); expected: one of images, labels; found: image',
    );
    const c = await errorOf(idxSplit(images, labels, { names: 'a.idx' } as never));
    expect(c.message).toMatch(/^idxSplit: names must be an object such as \{ images, labels \}/);
    const s = await idxSplit(images, labels, { numClasses: 10, names: { images: 'i', labels: 'l' } });
    expect(s.count).toBe(2);
  });
});

describe('validationSplit', () => {
  it('says that n is a count, not a fraction as in tfjs', () => {
    const s = split(200);
    for (const n of [0.1, 0.5]) {
      let e: unknown;
      try {
        validationSplit(s, n);
      } catch (x) {
        e = x;
      }
      expect(e).toBeInstanceOf(DatasetError);
      expect((e as DatasetError).code).toBe('invalid-argument');
      expect((e as DatasetError).message).toContain(
        'a count of images, not a fraction as in tfjs fit({ validationSplit })',
      );
      expect((e as DatasetError).message).toContain(
        `Math.round(${n} * split.count) = ${Math.round(n * 200)}`,
      );
    }
    expect(validationSplit(s, 20).validation.count).toBe(20);
  });
});
