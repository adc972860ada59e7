// ProximalSGD at lambda 0 on decomposed layers that use the options of tf.layers.dense /
// conv2d: it must train as plain SGD does.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { decompose, effectiveKernel, isDecomposed, magnitudes } from '@normprune/layers';
import { ProximalSGD } from '../src/index.js';
import { expectNoLeak, maxDiff } from '../../../tools/testing/leaks.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const seeded = (seed: number) => tfl.initializers.glorotNormal({ seed });

/** Conv2D and Dense with most of their options, one of them frozen, decomposed. */
function model(dense: 'output' | 'input', conv2d: 'kernel' | 'filter'): tfl.LayersModel {
  const plain = tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        inputShape: [7, 6, 2],
        filters: 3,
        kernelSize: [3, 2],
        strides: [2, 1],
        padding: 'same',
        useBias: false,
        activation: 'selu',
        kernelConstraint: tfl.constraints.maxNorm({ maxValue: 0.5, axis: [0, 1, 2] as never }),
        kernelRegularizer: tfl.regularizers.l2({ l2: 0.01 }),
        kernelInitializer: seeded(1),
        name: 'c',
      }),
      tfl.layers.conv2d({
        filters: 2,
        kernelSize: 1,
        trainable: false,
        kernelInitializer: seeded(2),
        name: 'frozen',
      }),
      tfl.layers.dense({
        units: 3,
        activation: 'tanh',
        biasConstraint: tfl.constraints.nonNeg(),
        biasRegularizer: tfl.regularizers.l1({ l1: 0.01 }),
        kernelInitializer: seeded(3),
        name: 'pixel',
      }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: 2, activation: 'softmax', kernelInitializer: seeded(4), name: 'out' }),
    ],
  });
  return decompose(plain, { granularity: { dense, conv2d } });
}

const x = tf.tidy(() => tf.randomNormal([8, 7, 6, 2], 0, 1, 'float32', 5));
const y = tf.tidy(() => tf.oneHot(tf.cast(tf.greater(tf.sum(x, [1, 2, 3]), 0), 'int32'), 2));

function kernels(m: tfl.LayersModel): number[] {
  return m.layers.filter(isDecomposed).flatMap((l) => {
    const k = effectiveKernel(l);
    const v = Array.from(k.dataSync());
    k.dispose();
    return v;
  });
}

const allWeights = (m: tfl.LayersModel) => m.weights.flatMap((w) => Array.from(w.read().dataSync()));

describe.each([
  ['output', 'kernel'],
  ['input', 'filter'],
] as const)('ProximalSGD at lambda 0 on layers with options (dense %s, conv2d %s)', (dense, conv2d) => {
  it('equals tf.train.sgd step for step without renormalisation, and in the effective kernels after a step with it', async () => {
    const [a, b, c] = [model(dense, conv2d), model(dense, conv2d), model(dense, conv2d)];
    const frozenWeights = () =>
      c
        .getLayer('frozen')
        .getWeights()
        .flatMap((t) => Array.from(t.dataSync()));
    const frozen = frozenWeights();
    a.compile({ optimizer: tf.train.sgd(0.1), loss: 'categoricalCrossentropy' });
    b.compile({
      optimizer: new ProximalSGD({ learningRate: 0.1, lambda: 0, magnitudes: b, renormalize: false }),
      loss: 'categoricalCrossentropy',
    });
    c.compile({
      optimizer: new ProximalSGD({ learningRate: 0.1, lambda: 0, magnitudes: c }),
      loss: 'categoricalCrossentropy',
    });
    for (const m of [a, b, c]) await m.trainOnBatch(x, y);
    expect(maxDiff(kernels(c), kernels(a)).abs).toBeLessThan(1e-6);
    await expectNoLeak(async () => {
      for (let s = 0; s < 3; s++) {
        await a.trainOnBatch(x, y);
        await b.trainOnBatch(x, y);
        expect(maxDiff(allWeights(b), allWeights(a)).abs).toBeLessThan(1e-6);
      }
    });
    // The frozen layer did not move (not even its direction's norm), magnitudes stay >= 0.
    expect(frozenWeights()).toEqual(frozen);
    for (const info of magnitudes(c))
      expect(Math.min(...info.magnitude.dataSync())).toBeGreaterThanOrEqual(0);
    [a, b, c].forEach((m) => {
      m.optimizer.dispose();
      m.dispose();
    });
  });
});
