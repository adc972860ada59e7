// prune --model of a user's decomposed model holding a DecomposedConv2DTranspose (a decoder's
// upsampling convolution), both granularities: the dead filters and input channels leave the
// exported plain Conv2DTranspose, which plain tfjs loads and which computes what the model does.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { decompose, magnitudes } from '@normprune/layers';
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
