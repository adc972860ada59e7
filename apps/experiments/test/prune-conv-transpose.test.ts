// prune --model of a user's decomposed model holding a DecomposedConv2DTranspose (a decoder's
// upsampling convolution), both granularities: the dead filters and input channels leave the
// exported plain Conv2DTranspose, which plain tfjs loads and which computes what the model does.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { decompose, fold, magnitudes } from '@normprune/layers';
import { fileSystem, initBackend } from '@normprune/runtime';
import { cli } from './helpers';

let tmp: string;
beforeAll(async () => {
  await initBackend({ prefer: 'cpu', quiet: true });
  tmp = mkdtempSync(join(tmpdir(), 'normprune-prune-transpose-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** enc (Conv2D, 4 filters, stride 2) -> dec (Conv2DTranspose, 6 filters, stride 2) -> out (Dense 3). */
function encoderDecoder(padding: 'same' | 'valid'): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        inputShape: [8, 8, 1],
        filters: 4,
        kernelSize: 3,
        strides: 2,
        padding,
        activation: 'relu',
        name: 'enc',
      }),
      tfl.layers.conv2dTranspose({
        filters: 6,
        kernelSize: 3,
        strides: 2,
        padding,
        activation: 'relu',
        name: 'dec',
      }),
      tfl.layers.flatten({ name: 'flat' }),
      tfl.layers.dense({ units: 3, name: 'out' }),
    ],
  });
}

test.each([
  ['filter', 'same'],
  ['filter', 'valid'],
  ['kernel', 'same'],
] as const)(
  "granularity '%s', padding '%s': dead filters of the Conv2DTranspose leave it, outputs unchanged",
  async (granularity, padding) => {
    const model = decompose(encoderDecoder(padding), {
      granularity: { conv2d: 'filter', conv2dTranspose: granularity },
    });
    // enc's filter 2 dies (dec then reads 3 input channels); dec's filters 0 and 4 die
    // ('kernel': every kernel into them, a magnitude of [filters, inChannels]).
    for (const m of magnitudes(model)) {
      if (m.layerName === 'enc')
        tf.tidy(() => m.magnitude.assign(tf.mul(m.magnitude, tf.tensor1d([1, 1, 0, 1]))));
      if (m.layerName === 'dec') {
        const keep = tf.tensor1d([0, 1, 1, 1, 0, 1]);
        tf.tidy(() =>
          m.magnitude.assign(tf.mul(m.magnitude, granularity === 'filter' ? keep : tf.reshape(keep, [6, 1]))),
        );
        keep.dispose();
      }
    }
    const src = join(tmp, `model-${granularity}-${padding}`);
    await model.save(fileSystem(src));
    const out = join(tmp, `pruned-${granularity}-${padding}`);
    const r = await cli(['prune', '--model', src, '--out', out, '--backend', 'cpu']);
    expect(r.code).toBe(0);
    const pruned = await tfl.loadLayersModel(fileSystem(out));
    const dec = pruned.getLayer('dec');
    expect(dec.getClassName()).toBe('Conv2DTranspose');
    // [kh, kw, filters, inChannels]: 4 filters of 6 left, reading enc's 3 live channels of 4.
    expect(dec.getWeights()[0].shape).toEqual([3, 3, 4, 3]);
    expect(pruned.getLayer('enc').getWeights()[0].shape).toEqual([3, 3, 1, 3]);
    tf.tidy(() => {
      const input = tf.randomNormal([4, 8, 8, 1], 0, 1, 'float32', 7);
      const a = (model.predict(input) as tf.Tensor).dataSync();
      const b = (pruned.predict(input) as tf.Tensor).dataSync();
      expect(b.length).toBe(a.length);
      for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(1e-5);
    });
    model.dispose();
    pruned.dispose();
  },
);

// --keep-filters on a 'kernel' DecomposedConv2DTranspose: its magnitude is [filters, inChannels],
// so the kernels reading enc's dead channel are a column, and a filter is a row. With as many
// filters as enc has channels (4) a mask along the wrong axis would broadcast and kill a filter.
test.each([4, 6])(
  '--keep-filters dec=2 keeps the 2 filters of largest norm of a Conv2DTranspose of %d filters, after dropping its kernels on a dead input',
  async (filters) => {
    const plain = tfl.sequential({
      layers: [
        tfl.layers.conv2d({
          inputShape: [8, 8, 1],
          filters: 4,
          kernelSize: 3,
          strides: 2,
          padding: 'same',
          activation: 'relu',
          name: 'enc',
        }),
        tfl.layers.conv2dTranspose({ filters, kernelSize: 3, strides: 2, padding: 'same', name: 'dec' }),
        tfl.layers.flatten({ name: 'flat' }),
        tfl.layers.dense({ units: 3, name: 'out' }),
      ],
    });
    const model = decompose(plain, { granularity: { conv2d: 'filter', conv2dTranspose: 'kernel' } });
    plain.dispose();
    const [enc, dec] = magnitudes(model);
    // enc's channel 2 dies; dec's filter 2 has the largest kernels, then filter 3.
    tf.tidy(() => enc.magnitude.assign(tf.mul(enc.magnitude, tf.tensor1d([1, 1, 0, 1]))));
    const scale = Array.from({ length: filters }, (_, o) => (o === 2 ? 10 : o === 3 ? 5 : 1));
    tf.tidy(() => dec.magnitude.assign(tf.mul(tf.onesLike(dec.magnitude), tf.tensor2d(scale, [filters, 1]))));
    const src = join(tmp, `keep-filters-${filters}`);
    await model.save(fileSystem(src));
    const out = join(tmp, `keep-filters-${filters}-pruned`);
    const r = await cli([
      'prune',
      '--model',
      src,
      '--out',
      out,
      '--backend',
      'cpu',
      '--keep-filters',
      'dec=2',
    ]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    // What the rule should leave: filters 2 and 3, without their kernels on enc's channel 2.
    tf.tidy(() => {
      const rows = tf.tensor2d(
        scale.map((_, o) => (o === 2 || o === 3 ? 1 : 0)),
        [filters, 1],
      );
      dec.magnitude.assign(tf.mul(tf.mul(dec.magnitude, rows), tf.tensor2d([1, 1, 0, 1], [1, 4])));
    });
    const expected = fold(model);
    const pruned = await tfl.loadLayersModel(fileSystem(out));
    expect(pruned.getLayer('dec').getWeights()[0].shape).toEqual([3, 3, 2, 3]);
    tf.tidy(() => {
      const input = tf.randomNormal([4, 8, 8, 1], 0, 1, 'float32', 9);
      const a = (expected.predict(input) as tf.Tensor).dataSync();
      const b = (pruned.predict(input) as tf.Tensor).dataSync();
      expect(b.length).toBe(a.length);
      for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(1e-5);
    });
    for (const m of [model, expected, pruned]) m.dispose();
  },
);

test("--keep-filters post=1 on a Conv2D after a 'kernel' Conv2DTranspose drops its kernels on the transpose's dead filter before ranking", async () => {
  const plain = tfl.sequential({
    layers: [
      tfl.layers.conv2dTranspose({
        inputShape: [3, 3, 2],
        filters: 4,
        kernelSize: 2,
        strides: 2,
        name: 'dec',
      }),
      tfl.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same', name: 'post' }),
      tfl.layers.flatten({ name: 'flat' }),
      tfl.layers.dense({ units: 2, name: 'out' }),
    ],
  });
  const model = decompose(plain);
  plain.dispose();
  const [dec, post] = magnitudes(model); // out stays as it is
  // dec's filter 1 dies (a row of its [filters, inChannels] magnitude). post's filter 0 is large
  // only on that channel, filter 2 the largest on the live ones.
  tf.tidy(() => dec.magnitude.assign(tf.mul(dec.magnitude, tf.tensor2d([1, 0, 1, 1], [4, 1]))));
  tf.tidy(() => post.magnitude.assign(tf.tensor2d([1, 1, 2, 50, 1, 1, 1, 1, 2, 1, 1, 2], [4, 3])));
  const src = join(tmp, 'keep-filters-after-transpose');
  await model.save(fileSystem(src));
  const out = join(tmp, 'keep-filters-after-transpose-pruned');
  const r = await cli([
    'prune',
    '--model',
    src,
    '--out',
    out,
    '--backend',
    'cpu',
    '--keep-filters',
    'post=1',
  ]);
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  tf.tidy(() => post.magnitude.assign(tf.mul(post.magnitude, tf.tensor2d([0, 0, 1], [1, 3]))));
  const expected = fold(model);
  const pruned = await tfl.loadLayersModel(fileSystem(out));
  expect(pruned.getLayer('post').getWeights()[0].shape).toEqual([3, 3, 3, 1]);
  tf.tidy(() => {
    const input = tf.randomNormal([2, 3, 3, 2], 0, 1, 'float32', 11);
    const a = (expected.predict(input) as tf.Tensor).dataSync();
    const b = (pruned.predict(input) as tf.Tensor).dataSync();
    expect(b.length).toBe(a.length);
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(1e-5);
  });
  for (const m of [model, expected, pruned]) m.dispose();
});
