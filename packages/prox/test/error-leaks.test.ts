// A refused call leaves tf.memory().numTensors where it was: a long-running process that catches
// the error and goes on must not grow. On cpu and on wasm.
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import * as tfl from '@tensorflow/tfjs-layers';
import { decomposedDense } from '@normprune/layers';
import { ProximalAdam, type ProximalOptions, ProximalSGD, SparsityCallback } from '../src/index.js';

beforeAll(() => {
  setWasmPaths(
    path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + path.sep,
  );
});

/** numTensors after `fn` throws, minus before; fails if it does not throw. */
function leakedByRefusal(fn: () => unknown, message: RegExp): number {
  const before = tf.memory().numTensors;
  expect(fn).toThrow(message);
  return tf.memory().numTensors - before;
}

describe.each(['cpu', 'wasm'])('on %s', (backend) => {
  beforeAll(async () => {
    expect(await tf.setBackend(backend)).toBe(true);
  });

  const setup = () => {
    const model = tfl.sequential({
      layers: [decomposedDense({ inputShape: [4], units: 3 }), decomposedDense({ units: 2 })],
    });
    const x = tf.ones([2, 4]);
    const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const loss = () => tf.mean(model.predict(x) as tf.Tensor) as tf.Scalar;
    return { model, x, vars, loss };
  };

  it.each([
    [
      'ProximalSGD',
      (o: Omit<ProximalOptions, 'learningRate'>) => new ProximalSGD({ learningRate: 0.1, ...o }),
    ],
    [
      'ProximalSGD with momentum',
      (o: Omit<ProximalOptions, 'learningRate'>) =>
        new ProximalSGD({ learningRate: 0.1, momentum: 0.9, ...o }),
    ],
    [
      'ProximalAdam',
      (o: Omit<ProximalOptions, 'learningRate'>) => new ProximalAdam({ learningRate: 0.1, ...o }),
    ],
  ])('%s: minimize refusing the step frees the loss and the gradients it computed', (_, make) => {
    const { model, x, vars, loss } = setup();
    // lambda > 0 with no magnitudes attached: applyGradients refuses after tfjs computed the gradients.
    const bare = make({ lambda: 1e-3 });
    // A first refusal caches the optimiser's constant scalars (its state, freed by dispose()).
    leakedByRefusal(() => bare.minimize(loss, false, vars), /no magnitudes are attached/);
    expect(leakedByRefusal(() => bare.minimize(loss, false, vars), /no magnitudes are attached/)).toBe(0);
    expect(leakedByRefusal(() => bare.minimize(loss, true), /no magnitudes are attached/)).toBe(0);
    // A schedule that goes bad after the first step.
    let calls = 0;
    const scheduled = make({ lambda: () => (calls++ < 2 ? 1e-3 : NaN), magnitudes: model });
    scheduled.minimize(loss, false, vars);
    expect(leakedByRefusal(() => scheduled.minimize(loss, false, vars), /lambda schedule returned NaN/)).toBe(
      0,
    );
    // The steps that go through stay flat too.
    const ok = make({ lambda: 1e-3, magnitudes: model });
    ok.minimize(loss, false, vars);
    const before = tf.memory().numTensors;
    ok.minimize(loss, false, vars);
    ok.minimize(loss, true, vars)!.dispose();
    expect(tf.memory().numTensors).toBe(before);
    for (const o of [bare, scheduled, ok]) o.dispose();
    model.dispose();
    x.dispose();
  });

  it.each([
    ['ProximalSGD with momentum', () => new ProximalSGD({ learningRate: 0.1, momentum: 0.9, lambda: 1e-3 })],
    ['ProximalAdam', () => new ProximalAdam({ learningRate: 0.1, lambda: 1e-3 })],
  ])('%s: setWeights refusing a value frees the slots it made of the values before it', async (_, make) => {
    const { model, x, vars, loss } = setup();
    const opt = make();
    opt.attach(model);
    opt.minimize(loss, false, vars);
    const saved = await opt.getWeights();
    const [iter, ...slots] = saved;
    const dead = tf.zeros(slots[slots.length - 1].tensor.shape);
    dead.dispose();
    // The last slot disposed: tf.variable of it overflowed the stack on cpu, after the others were made.
    const withDead = [iter, ...slots.slice(0, -1), { name: 'dead', tensor: dead }];
    const before = tf.memory().numTensors;
    await expect(opt.setWeights(withDead)).rejects.toThrow(/the tensor of 'dead' is disposed/);
    expect(tf.memory().numTensors).toBe(before);
    // The last slot not a tensor at all: tfjs's refusal, after the others were made.
    const notTensor = [
      iter,
      ...slots.slice(0, -1),
      { name: 'array', tensor: [1, 2] as unknown as tf.Tensor },
    ];
    await expect(opt.setWeights(notTensor)).rejects.toThrow();
    expect(tf.memory().numTensors).toBe(before);
    // Nothing was restored: the live slots getWeights() gave are still the optimiser's.
    expect(slots.map((s) => s.tensor.isDisposed)).toEqual(slots.map(() => false));
    // A round trip stays flat (iter is a new scalar, the caller's to dispose).
    await opt.setWeights(saved);
    iter.tensor.dispose();
    expect(tf.memory().numTensors).toBe(before - 1);
    opt.dispose();
    model.dispose();
    x.dispose();
  });

  it('minimize refused by tfjs (a loss that is not a scalar) leaves nothing behind, where tf.train leaks', () => {
    const { model, x, vars } = setup();
    const opt = new ProximalSGD({ learningRate: 0.1, lambda: 1e-3, magnitudes: model });
    const notScalar = () => model.predict(x) as tf.Scalar;
    expect(leakedByRefusal(() => opt.minimize(notScalar, false, vars), /must return a scalar/)).toBe(0);
    // Not ours: plain tf.train leaves the loss and every gradient behind on the same refusal.
    const sgd = tf.train.sgd(0.1);
    expect(leakedByRefusal(() => sgd.minimize(notScalar, false, vars), /must return a scalar/)).toBe(
      vars.length + 1,
    );
    opt.dispose();
    model.dispose();
    x.dispose();
  });

  it("fit refused at a step leaves tfjs's epoch indices behind; with a SparsityCallback, nothing", async () => {
    // A model without magnitudes, trained at lambda > 0: every step is refused.
    const model = tfl.sequential({ layers: [tfl.layers.dense({ inputShape: [4], units: 3 })] });
    model.compile({
      optimizer: new ProximalSGD({ learningRate: 0.1, lambda: 1e-3 }),
      loss: 'meanSquaredError',
    });
    const x = tf.ones([8, 4]);
    const y = tf.ones([8, 3]);
    const leakedByFit = async (args: tfl.ModelFitArgs, message: RegExp) => {
      const before = tf.memory().numTensors;
      await expect(model.fit(x, y, args)).rejects.toThrow(message);
      return tf.memory().numTensors - before;
    };
    // Not ours (the prox README says so): tfjs's fit loop frees the epoch's index tensor only
    // when the epoch ends, and minimize's refusal ends it first. If this fails, tfjs frees it now.
    const refused = /no magnitudes are attached/;
    await leakedByFit({ epochs: 1, batchSize: 4, verbose: 0 }, refused);
    expect(await leakedByFit({ epochs: 1, batchSize: 4, verbose: 0 }, refused)).toBe(1);
    // The README's way out: SparsityCallback refuses the model when training begins.
    const withCallback = { epochs: 1, batchSize: 4, verbose: 0, callbacks: [new SparsityCallback()] };
    expect(await leakedByFit(withCallback, /has no decomposed layers/)).toBe(0);
    model.optimizer.dispose();
    model.dispose();
    x.dispose();
    y.dispose();
  });
});
