// decompose and fold give copies the caller disposes: dispose() frees every weight of the copy,
// also of a layer or nested model the copy applies more than once (tfjs 4.22's dispose() frees
// nothing of those, as for the model the copy was made of). On cpu and on wasm.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '@normprune/runtime';
import { decompose, fold } from '../src/index.js';

/** A block (a Sequential of one Dense) applied `times` times, beside a Dense applied `times` times. */
function sharedTwice(times: number): tfl.LayersModel {
  const block = tfl.sequential({
    name: 'block',
    layers: [tfl.layers.dense({ inputShape: [4], units: 4, name: 'fc' })],
  });
  const shared = tfl.layers.dense({ units: 4, name: 'shared' });
  const x = tfl.input({ shape: [4] });
  let h: tfl.SymbolicTensor = x;
  let g: tfl.SymbolicTensor = x;
  for (let i = 0; i < times; i++) {
    h = block.apply(h) as tfl.SymbolicTensor;
    g = shared.apply(g) as tfl.SymbolicTensor;
  }
  const y = tfl.layers.dense({ units: 2, name: 'out' }).apply(tfl.layers.add().apply([h, g]));
  return tfl.model({ inputs: x, outputs: y as tfl.SymbolicTensor });
}

describe.each([
  ['cpu', async () => void (await tf.setBackend('cpu'))],
  ['wasm', async () => void (await initBackend({ prefer: 'wasm', quiet: true }))],
])('on %s', (_, init) => {
  beforeAll(init);

  it.each([1, 2, 3])(
    'the copies of a model applying a block and a Dense %i times free all their weights',
    (times) => {
      const model = sharedTwice(times);
      const x = tf.randomNormal([3, 4]);
      const before = tf.memory().numTensors;
      const decomposed = decompose(model);
      // block/fc and shared hold 3 weights each decomposed, out 3: 9 (tfjs left 6 of them).
      expect(tf.memory().numTensors - before).toBe(decomposed.weights.length);
      const folded = fold(decomposed);
      // The copies compute what the model does.
      const [plain, ...copies] = tf.tidy(() =>
        [model, decomposed, folded].map((m) => Array.from((m.predict(x) as tf.Tensor).dataSync())),
      );
      for (const out of copies)
        expect(Math.max(...out.map((v, i) => Math.abs(v - plain[i])))).toBeLessThan(1e-4);
      const result = decomposed.dispose();
      expect(result.numDisposedVariables).toBe(decomposed.weights.length);
      folded.dispose();
      expect(tf.memory().numTensors).toBe(before);
      x.dispose();
    },
  );

  it('a block of the copy applied in another model keeps its weights until that model is disposed', () => {
    const copy = decompose(sharedTwice(2));
    const block = copy.getLayer('block') as tfl.LayersModel;
    const x = tfl.input({ shape: [4] });
    const other = tfl.model({ inputs: x, outputs: block.apply(x) as tfl.SymbolicTensor });
    copy.dispose();
    // The block's direction, magnitude and bias are still those `other` applies.
    const y = tf.tidy(() => (other.predict(tf.ones([1, 4])) as tf.Tensor).arraySync());
    expect((y as number[][])[0]).toHaveLength(4);
    const before = tf.memory().numTensors;
    other.dispose();
    expect(before - tf.memory().numTensors).toBe(3);
  });
});
