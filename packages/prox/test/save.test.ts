import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { decomposedDense, magnitudes } from '@normprune/layers';
import { ProximalAdam, ProximalSGD, targetLambda, SparsityCallback, warmupLambda } from '../src/index.js';
import { expectNoLeak, maxDiff } from '../../../tools/testing/leaks.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const xs = tf.tidy(() => tf.randomNormal([64, 6], 0, 1, 'float32', 5));
const ys = tf.tidy(() => tf.sum(tf.slice(xs, [0, 0], [-1, 2]), 1, true));

function mlp(): tfl.Sequential {
  return tfl.sequential({
    layers: [
      decomposedDense({
        inputShape: [6],
        units: 16,
        activation: 'relu',
        name: 'hidden',
        kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }),
      }),
      decomposedDense({ units: 1, kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }) }),
    ],
  });
}

async function roundTrip(model: tfl.LayersModel): Promise<tfl.LayersModel> {
  let saved: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
    { includeOptimizer: true },
  );
  return tfl.loadLayersModel(tf.io.fromMemory(saved!));
}

const weights = (m: tfl.LayersModel) => m.getWeights().flatMap((w) => Array.from(w.dataSync()));

describe.each([
  [
    'ProximalAdam',
    (m: tfl.LayersModel) =>
      new ProximalAdam({
        learningRate: 0.01,
        lambda: targetLambda({ initial: 0.01, targetCompression: 0.9 }),
        magnitudes: magnitudes(m),
      }),
  ],
  [
    // a schedule of the step count, and layer multipliers: both must survive the config round trip
    'ProximalAdam',
    (m: tfl.LayersModel) =>
      new ProximalAdam({
        learningRate: 0.01,
        lambda: warmupLambda({ value: 0.05, warmup: 100 }),
        layerMultipliers: { hidden: 0.5 },
        magnitudes: magnitudes(m),
      }),
  ],
  [
    'ProximalSGD',
    (m: tfl.LayersModel) =>
      new ProximalSGD({
        learningRate: 0.05,
        momentum: 0.9,
        nesterov: true,
        lambda: 0.05,
        magnitudes: magnitudes(m),
      }),
  ],
])('%s saved with the model (includeOptimizer)', (name, make) => {
  it('loads back as the same optimiser with its state; after attach() training continues identically', async () => {
    const model = mlp();
    const opt = make(model);
    model.compile({ optimizer: opt, loss: 'meanSquaredError' });
    const fitOptions = { epochs: 2, batchSize: 16, shuffle: false, verbose: 0 as const };
    await model.fit(xs, ys, { ...fitOptions, callbacks: [new SparsityCallback()] });

    const loaded = await roundTrip(model);
    const lopt = loaded.optimizer as ProximalAdam | ProximalSGD;
    expect(lopt.getClassName()).toBe(name);
    expect(lopt.getConfig()).toEqual(opt.getConfig());
    expect(lopt.iterations).toBe(opt.iterations);
    expect(lopt.lambda).toBe(opt.lambda);
    expect(lopt.magnitudes).toHaveLength(0);
    lopt.attach(magnitudes(loaded));
    expect(maxDiff(weights(loaded), weights(model)).abs).toBe(0);

    // both continue on the same data: same weights, same optimiser state -> same trajectory
    await model.fit(xs, ys, fitOptions);
    await loaded.fit(xs, ys, fitOptions);
    expect(maxDiff(weights(loaded), weights(model)).abs).toBeLessThan(1e-6);
    model.dispose();
    loaded.dispose();
    opt.dispose();
    lopt.dispose();
  });
});

describe('layerMultipliers on an optimiser with nothing attached', () => {
  it('rebuilds from its config; names are checked on attach, values at once', () => {
    const model = mlp();
    const opt = new ProximalAdam({
      learningRate: 0.01,
      lambda: 0.1,
      layerMultipliers: { hidden: 0 },
      magnitudes: magnitudes(model),
    });
    const again = ProximalAdam.fromConfig(ProximalAdam, opt.getConfig()) as ProximalAdam;
    expect(again.getConfig()).toEqual(opt.getConfig());
    again.attach(magnitudes(model));
    expect(again.penaltyWeights).toEqual(opt.penaltyWeights);
    const misspelt = new ProximalSGD({
      learningRate: 0.1,
      lambda: 0.1,
      magnitudes: [],
      layerMultipliers: { hiden: 2 },
    });
    expect(() => misspelt.attach(magnitudes(model))).toThrow(
      /no decomposed layer named 'hiden' \(have: hidden, /,
    );
    expect(
      () =>
        new ProximalSGD({ learningRate: 0.1, lambda: 0.1, magnitudes: [], layerMultipliers: { hidden: -1 } }),
    ).toThrow(/layerMultipliers\['hidden'\] must be a finite number >= 0, got -1/);
    model.dispose();
    [opt, again, misspelt].forEach((o) => o.dispose());
  });
});

describe('state restored with setWeights', () => {
  /** A step of `opt` on the hidden layer's magnitude and direction, with gradients of ones. */
  const stepHidden = (opt: ProximalSGD | ProximalAdam, model: tfl.LayersModel) =>
    tf.tidy(() => {
      const [h] = magnitudes(model);
      opt.applyGradients({
        [h.magnitude.name]: tf.onesLike(h.magnitude),
        [h.direction.name]: tf.onesLike(h.direction),
      });
    });

  it.each([
    ['ProximalSGD with momentum', 2],
    ['ProximalAdam', 4],
  ] as const)(
    '%s: a restored slot a step takes up is listed once, so saving again and reloading keeps every slot in place',
    async (name, slots) => {
      const model = mlp();
      const make = () =>
        name === 'ProximalAdam'
          ? new ProximalAdam({ learningRate: 0.01, lambda: 0, magnitudes: model })
          : new ProximalSGD({ learningRate: 0.1, lambda: 0, momentum: 0.9, magnitudes: model });
      const first = make();
      stepHidden(first, model);
      const saved = await first.getWeights();
      const second = make();
      await second.setWeights(saved);
      stepHidden(second, model);
      const again = await second.getWeights();
      const names = again.map((w) => w.name);
      expect(names).toHaveLength(1 + slots);
      expect(new Set(names).size).toBe(names.length);
      // The state a third optimiser reloads is the second's, slot for slot.
      const third = make();
      await third.setWeights(again);
      const reloaded = await third.getWeights();
      expect(reloaded.map((w) => w.name)).toEqual(names);
      reloaded.forEach((w, i) =>
        expect(maxDiff(w.tensor.dataSync(), again[i].tensor.dataSync()).abs).toBe(0),
      );
      // getWeights' first entry, the step count, is a new tensor; the slots are the optimisers'.
      tf.dispose([saved[0].tensor, again[0].tensor, reloaded[0].tensor]);
      [first, second, third].forEach((o) => o.dispose());
      model.dispose();
    },
  );

  it('dispose() frees restored slots that no step took up', async () => {
    const model = mlp();
    const first = new ProximalSGD({ learningRate: 0.1, lambda: 0, momentum: 0.9, magnitudes: model });
    stepHidden(first, model);
    const saved = await first.getWeights();
    await expectNoLeak(async () => {
      const restored = new ProximalSGD({ learningRate: 0.1, lambda: 0, momentum: 0.9, magnitudes: model });
      await restored.setWeights(saved);
      restored.dispose();
    });
    saved[0].tensor.dispose();
    first.dispose();
    model.dispose();
  });
});
