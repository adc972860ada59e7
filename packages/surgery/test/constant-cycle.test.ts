// A layer all of whose units are dead, feeding both the identity input of an Add and a branch
// that comes back to it (h -> r1 -> r2 -> Add(h, r2)): the model's output is a constant. A unit
// counted as constant only when its inputs were removed constants, and h could be removed only
// once the Add's output was constant, which needed r2 constant, which needed h removed: the
// analysis stopped there, kept h's all-zero units "coupled with a varying unit of 'r2'" (r2 varied
// with nothing), and prune returned the model whole (or, with a live branch layer, mostly zeros)
// instead of refusing a model whose output no longer depends on its input. Constants are now
// those of the values: a unit reading only constants is constant, removed or not.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { DisconnectedModelError, prune } from '../src/index';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** in -> h -> r1 -> r2, Add(h, r2) -> out, every bias 1 (so dead units emit constants other than 0). */
function cycle(): tfl.LayersModel {
  const inp = tfl.input({ shape: [4] });
  const dense = (units: number, name: string, activation: 'relu' | 'linear' = 'relu') =>
    tfl.layers.dense({ units, name, activation, biasInitializer: 'ones' });
  const h = dense(3, 'h').apply(inp) as tfl.SymbolicTensor;
  const r1 = dense(2, 'r1').apply(h) as tfl.SymbolicTensor;
  const r2 = dense(3, 'r2', 'linear').apply(r1) as tfl.SymbolicTensor;
  const s = tfl.layers.add({ name: 'add' }).apply([h, r2]) as tfl.SymbolicTensor;
  const out = dense(2, 'out', 'linear').apply(s) as tfl.SymbolicTensor;
  return tfl.model({ inputs: inp, outputs: out });
}

test('a dead layer whose only path to the output loops back through a residual Add is refused as disconnecting the model', () => {
  const m = cycle();
  const h = m.getLayer('h');
  h.setWeights([tf.zeros([4, 3]), h.getWeights()[1]]);
  // The output is a constant: the same for any two inputs.
  const y = m.predict(
    tf.tensor2d([
      [1, 2, 3, 4],
      [-5, 0, 7, 0.5],
    ]),
  ) as tf.Tensor;
  const [a, b] = tf.unstack(y).map((t) => Array.from(t.dataSync()));
  a.forEach((v, i) => expect(Math.abs(v - b[i])).toBeLessThanOrEqual(1e-6));
  let e: unknown;
  try {
    prune(m);
  } catch (err) {
    e = err;
  }
  expect(e).toBeInstanceOf(DisconnectedModelError);
  expect(e).toMatchObject({ code: 'dead', layer: 'h' });
  expect((e as Error).message).not.toMatch(/varying unit/);
});

test('with one live unit of h the branch still prunes to the same outputs, to 1e-5', () => {
  const m = cycle();
  const h = m.getLayer('h');
  // Unit 0 of h reads the input; units 1 and 2 are dead.
  const k = tf.tensor2d([0.5, 0, 0, -0.25, 0, 0, 1, 0, 0, 0.75, 0, 0], [4, 3]);
  h.setWeights([k, h.getWeights()[1]]);
  const { model, report } = prune(m);
  const x = tf.tensor2d([
    [1, 2, 3, 4],
    [-5, 0, 7, 0.5],
    [0.1, -0.2, 0.3, -0.4],
  ]);
  const d = tf.max(tf.abs(tf.sub(m.predict(x) as tf.Tensor, model.predict(x) as tf.Tensor))).dataSync()[0];
  expect(d).toBeLessThanOrEqual(1e-5);
  // h's dead units 1 and 2 are coupled by the Add with r2's units 1 and 2, which vary with h's
  // unit 0 through r1: kept, and said so (r2 does vary).
  expect(report.layers.find((l) => l.name === 'h')!.unitsAfter).toBe(3);
});
