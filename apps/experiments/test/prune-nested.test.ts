// prune --model of a model built from blocks (a nested model: a model used as a layer, as Keras
// users and tensorflowjs_converter build them): surgery unnests it, so the export is a flat model
// whose blocks' layers are named by path (`base/c1`), which plain tfjs loads and which computes
// what the model computes. It was refused ("prune does not support nested models").
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { decompose, magnitudes } from '@normprune/layers';
import { fileSystem, initBackend } from '@normprune/runtime';
import { cli } from './helpers';

test('prune --model of a decomposed model with a nested Sequential block exports a flat model that computes the same', async () => {
  await initBackend({ prefer: 'cpu', quiet: true });
  const tmp = mkdtempSync(join(tmpdir(), 'prune-nested-'));
  const base = tfl.sequential({
    name: 'base',
    layers: [
      tfl.layers.conv2d({ inputShape: [8, 8, 1], filters: 4, kernelSize: 3, activation: 'relu', name: 'c1' }),
      tfl.layers.flatten({ name: 'flat' }),
    ],
  });
  const x = tfl.input({ shape: [8, 8, 1] });
  const h = tfl.layers.dense({ units: 5, activation: 'relu', name: 'fc' }).apply(base.apply(x));
  const y = tfl.layers.dense({ units: 3, name: 'out' }).apply(h) as tfl.SymbolicTensor;
  const model = decompose(tfl.model({ inputs: x, outputs: y }), { granularity: { conv2d: 'filter' } });
  // Filter 1 of c1 and unit 3 of fc die: c1 4 -> 3 filters, fc 5 -> 4 units.
  for (const m of magnitudes(model)) {
    const keep = m.layerName === 'c1' ? [1, 0, 1, 1] : m.layerName === 'fc' ? [1, 1, 1, 0, 1] : null;
    if (keep) tf.tidy(() => m.magnitude.assign(tf.mul(m.magnitude, tf.tensor1d(keep))));
  }
  const src = join(tmp, 'model');
  await model.save(fileSystem(src));
  const out = join(tmp, 'out');
  const r = await cli(['prune', '--model', src, '--out', out, '--backend', 'cpu']);
  expect(r.code).toBe(0);
  // Before: c1 3*3*1*4 + 4 = 40, fc 144 * 5 + 5 = 725, out 5 * 3 + 3 = 18: 783. The export: c1
  // 27 + 3, fc 108 * 4 + 4, out 4 * 3 + 3: 30 + 436 + 15 = 481, of which the 10 biases are zeros.
  expect(r.out).toMatch(
    /^783 parameters -> 471 non-zero \(39\.85% removed\); exported \d+ bytes to \S+; the export holds 481 parameters, 10 of them zeros left in place/,
  );
  const pruned = await tfl.loadLayersModel(fileSystem(out));
  expect(pruned.layers.some((l) => l instanceof tfl.LayersModel)).toBe(false);
  expect(pruned.layers.filter((l) => l.getClassName() !== 'InputLayer').map((l) => l.name)).toEqual([
    'base/c1',
    'base/flat',
    'fc',
    'out',
  ]);
  tf.tidy(() => {
    const input = tf.randomNormal([4, 8, 8, 1], 0, 1, 'float32', 3);
    const a = (model.predict(input) as tf.Tensor).dataSync();
    const b = (pruned.predict(input) as tf.Tensor).dataSync();
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(1e-5);
  });
  model.dispose();
  pruned.dispose();
});
