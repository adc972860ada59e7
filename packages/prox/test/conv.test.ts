import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { decomposedConv2d, decomposedDense, magnitudes, type MagnitudeInfo } from '@normprune/layers';
import { ProximalAdam, ProximalSGD, SparsityCallback } from '../src/index.js';
import { maxDiff } from '../../../tools/testing/leaks.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const xs = tf.tidy(() => tf.randomNormal([32, 6, 6, 2], 0, 1, 'float32', 3));
const ys = tf.tidy(() => tf.oneHot(tf.cast(tf.greater(tf.sum(xs, [1, 2, 3]), 0), 'int32'), 2));

function convNet(granularity: 'kernel' | 'filter'): tfl.Sequential {
  return tfl.sequential({
    layers: [
      decomposedConv2d({
        inputShape: [6, 6, 2],
        filters: 6,
        kernelSize: 3,
        activation: 'relu',
        granularity,
        name: 'conv',
        kernelInitializer: tfl.initializers.glorotUniform({ seed: 4 }),
      }),
      tfl.layers.flatten(),
      decomposedDense({
        units: 2,
        activation: 'softmax',
        name: 'dense',
        kernelInitializer: tfl.initializers.glorotUniform({ seed: 5 }),
      }),
    ],
  });
}

async function groupNorms(m: MagnitudeInfo): Promise<Float32Array> {
  const t = tf.tidy(() => tf.sqrt(tf.sum(tf.square(m.direction), m.normAxes)));
  const r = (await t.data()) as Float32Array;
  t.dispose();
  return r;
}

describe.each(['kernel', 'filter'] as const)(
  'a decomposed conv net, %s granularity, under model.fit',
  (granularity) => {
    it('keeps magnitudes >= 0 and directions unit-norm, and zeroes some groups', async () => {
      const model = convNet(granularity);
      const infos = magnitudes(model);
      const opt = new ProximalAdam({ learningRate: 0.02, lambda: 0.15, magnitudes: infos });
      model.compile({ optimizer: opt, loss: 'categoricalCrossentropy' });
      const cb = new SparsityCallback();
      let checked = 0;
      await model.fit(xs, ys, {
        epochs: 6,
        batchSize: 8,
        shuffle: false,
        verbose: 0,
        callbacks: [
          cb,
          new tfl.CustomCallback({
            onBatchEnd: async () => {
              for (const m of infos) {
                const g = await m.magnitude.data();
                g.forEach((v) => expect(v).toBeGreaterThanOrEqual(0));
                (await groupNorms(m)).forEach((n) => expect(Math.abs(n - 1)).toBeLessThan(1e-5));
              }
              checked++;
            },
          }),
        ],
      });
      expect(checked).toBe(6 * 4);
      const last = cb.history[cb.history.length - 1];
      expect(last.totalGroups.conv).toBe(granularity === 'kernel' ? 12 : 6);
      expect(last.liveGroups.conv).toBeLessThan(last.totalGroups.conv);
      expect(last.compression).toBeGreaterThan(0);
      model.dispose();
      opt.dispose();
    });
  },
);

describe('attach and layer multipliers', () => {
  it('layerMultipliers 0 exempts a layer from the penalty (its magnitudes take the plain step, clamped at 0)', () => {
    const ours = convNet('filter');
    const plain = convNet('filter');
    plain.setWeights(ours.getWeights());
    const loss = (m: tfl.Sequential) => () =>
      tf.losses.softmaxCrossEntropy(ys, m.apply(xs) as tf.Tensor) as tf.Scalar;
    const opt = new ProximalSGD({
      learningRate: 0.1,
      lambda: 100,
      magnitudes: magnitudes(ours),
      layerMultipliers: { conv: 0 },
    });
    const sgd = tf.train.sgd(0.1);
    opt.minimize(loss(ours), false);
    sgd.minimize(loss(plain), false);
    const [convG, denseG] = magnitudes(ours).map((m) => Array.from(m.magnitude.dataSync()));
    const [convP] = magnitudes(plain).map((m) => Array.from(m.magnitude.dataSync()));
    expect(
      maxDiff(
        convG,
        convP.map((v) => Math.max(v, 0)),
      ).abs,
    ).toBeLessThan(1e-6);
    expect(denseG.every((v) => v === 0)).toBe(true); // lr * lambda = 10 kills every dense group
    expect(opt.penaltyWeights).toEqual([0, 1]);
    ours.dispose();
    plain.dispose();
    opt.dispose();
    sgd.dispose();
  });

  it('attach validates its input and can be replaced', () => {
    const model = convNet('kernel');
    const infos = magnitudes(model);
    const opt = new ProximalSGD({ learningRate: 0.1, lambda: 0.1, magnitudes: [] });
    expect(() => opt.attach([infos[0], infos[0]])).toThrow(/twice/);
    expect(() => opt.attach([{ ...infos[0], normAxes: [0] }])).toThrow(/does not match/);
    opt.attach(infos);
    expect(opt.magnitudes.map((m) => m.layerName)).toEqual(['conv', 'dense']);
    opt.attach([]);
    expect(opt.magnitudes).toHaveLength(0);
    // A model stands for its magnitudes, here and in the constructor.
    opt.attach(model);
    expect(opt.magnitudes.map((m) => m.layerName)).toEqual(['conv', 'dense']);
    const fromModel = new ProximalAdam({ learningRate: 0.1, lambda: 0, magnitudes: model });
    expect(fromModel.magnitudes).toHaveLength(2);
    fromModel.dispose();
    expect(() => opt.attach(model.layers[0] as never)).toThrow(
      /attach: expected a LayersModel or a list of magnitudes .*got an object/,
    );
    expect(() => opt.attach(undefined as never)).toThrow(/attach: expected a LayersModel .*got undefined/);
    // A negative magnitude would die at the first step even at lambda 0; NaN means training diverged.
    const saved = infos[1].magnitude.clone();
    infos[1].magnitude.assign(tf.neg(saved));
    expect(() => opt.attach(infos)).toThrow(
      /layer 'dense' has negative magnitudes .*non-negative initializer/,
    );
    // One entry just below 0 among positive ones (-0.5 and -2^-20 are exact in float32), in a
    // Dense and a Conv2D: refused, naming the smallest.
    for (const [k, neg] of [
      [1, -0.5],
      [0, -(2 ** -20)],
    ] as const) {
      const m = infos[k].magnitude;
      const before = m.clone();
      const v = Float32Array.from(before.dataSync(), Math.abs);
      v[v.length - 1] = neg;
      const edited = tf.tensor(v, m.shape);
      m.assign(edited);
      edited.dispose();
      expect(() => opt.attach(infos)).toThrow(
        `layer '${infos[k].layerName}' has negative magnitudes (smallest ${neg})`,
      );
      m.assign(before);
      before.dispose();
    }
    infos[1].magnitude.assign(tf.fill(saved.shape, NaN));
    expect(() => opt.attach(model)).toThrow(/layer 'dense' has \d+ NaN magnitude/);
    infos[1].magnitude.assign(saved);
    saved.dispose();
    expect(opt.magnitudes.map((m) => m.layerName)).toEqual(['conv', 'dense']);
    expect(() => new ProximalAdam({ learningRate: 0.1, lambda: 0, magnitudes: [], epsilon: -1 })).toThrow(
      /epsilon must be a finite number > 0, got -1/,
    );
    expect(() => new ProximalSGD({ learningRate: 0.1, lambda: '0.1' as never, magnitudes: [] })).toThrow(
      /lambda must be a finite number >= 0, got "0.1" \(a string\)/,
    );
    expect(() => new ProximalSGD({ learningRate: 0, lambda: 0, magnitudes: [] })).toThrow(
      /learningRate must be a finite number > 0, got 0/,
    );
    expect(() => new ProximalSGD({ learningRate: 0.1, momentum: 1, lambda: 0, magnitudes: [] })).toThrow(
      /momentum must be a number in \[0, 1\), got 1/,
    );
    // A numeric string passed the range check and failed at the first step, inside tfjs's mul;
    // a string boolean was truthy ('no' renormalised).
    const base = { learningRate: 0.1, lambda: 0, magnitudes: [] };
    expect(() => new ProximalSGD({ ...base, momentum: '0.9' as never })).toThrow(
      /momentum must be a number in \[0, 1\), got "0.9" \(a string\)/,
    );
    for (const k of ['beta1', 'beta2'])
      expect(() => new ProximalAdam({ ...base, [k]: '0.9' })).toThrow(
        new RegExp(`${k} must be a number in \\[0, 1\\), got "0.9" \\(a string\\)`),
      );
    expect(() => new ProximalAdam({ ...base, beta2: 1 })).toThrow(
      /beta2 must be a number in \[0, 1\), got 1/,
    );
    expect(() => new ProximalSGD({ ...base, momentum: 0.9, nesterov: 'yes' as never })).toThrow(
      /nesterov must be true or false, got "yes" \(a string\)/,
    );
    for (const Opt of [ProximalSGD, ProximalAdam])
      expect(() => new Opt({ ...base, renormalize: 'no' as never })).toThrow(
        /renormalize must be true or false, got "no" \(a string\)/,
      );
    expect(() => new (ProximalSGD as any)()).toThrow(
      /ProximalSGD: options must be an object such as \{ learningRate: 0.01, lambda: 1e-4, magnitudes: model \}, got undefined/,
    );
    expect(() => new (ProximalAdam as any)(0.01)).toThrow(
      /ProximalAdam: options must be an object .*got 0.01/,
    );
    expect(
      () =>
        new ProximalSGD({
          learningRate: 0.1,
          lambda: 0,
          magnitudes: infos,
          costWeighting: 'macs' as const,
          layerMultipliers: { x: 1 },
        }),
    ).toThrow(/layerMultipliers: no decomposed layer named 'x' \(have: conv, dense\)/);
    opt.dispose();
    model.dispose();
  });
});
