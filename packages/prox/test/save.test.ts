import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { decomposedDense, magnitudes } from '@normprune/layers';
import { ProximalAdam, ProximalSGD, targetLambda, SparsityCallback, warmupLambda } from '../src/index.js';
import { expectNoLeak, maxDiff } from '../../../tools/testing/leaks.js';
import { saveInMemory } from '../../../tools/testing/memory-io.js';

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
  const saved = await saveInMemory(model, { includeOptimizer: true });
  return tfl.loadLayersModel(tf.io.fromMemory(saved));
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

  describe.each([
    [
      'ProximalSGD with momentum',
      (model: tfl.LayersModel) =>
        new ProximalSGD({ learningRate: 0.05, lambda: 0.01, momentum: 0.9, magnitudes: model }),
    ],
    [
      'ProximalAdam',
      (model: tfl.LayersModel) => new ProximalAdam({ learningRate: 0.05, lambda: 0.01, magnitudes: model }),
    ],
  ] as const)('%s, first used on a head, then on the layer under it too (unfrozen)', (_, make) => {
    // The slots were first made in the order [head, hidden], and the gradient list is [hidden,
    // head]: restored by place in that list, hidden's state went to the head and back (same
    // shapes: 16 units of 6 inputs, 16 of 16), and a resumed run trained on other moments.
    const x = tf.tidy(() => tf.randomNormal([8, 6], 0, 1, 'float32', 3));
    const y = tf.tidy(() => tf.randomNormal([8, 16], 0, 1, 'float32', 4));
    const build = () =>
      tfl.sequential({
        layers: [
          decomposedDense({
            inputShape: [6],
            units: 16,
            activation: 'tanh',
            name: 'hidden',
            kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }),
          }),
          decomposedDense({
            units: 16,
            name: 'head',
            kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }),
          }),
        ],
      });
    const steps = (model: tfl.LayersModel, opt: ProximalSGD | ProximalAdam, layers: string[], n: number) => {
      const vars = model.layers
        .filter((l) => layers.includes(l.name))
        .flatMap((l) => l.trainableWeights.map((w) => w.read() as tf.Variable));
      for (let i = 0; i < n; i++)
        opt.minimize(
          () => tf.losses.meanSquaredError(y, model.apply(x) as tf.Tensor) as tf.Scalar,
          false,
          vars,
        );
    };
    type Opt = ProximalSGD | ProximalAdam;
    /** Three steps on the head, three on both; then `after` (three more on both), after `resume` if given. */
    async function train(
      resume?: (model: tfl.LayersModel, opt: Opt) => Promise<[tfl.LayersModel, Opt]>,
      after = (model: tfl.LayersModel, opt: Opt) => steps(model, opt, ['hidden', 'head'], 3),
    ) {
      let model: tfl.LayersModel = build();
      let opt = make(model);
      steps(model, opt, ['head'], 3);
      steps(model, opt, ['hidden', 'head'], 3);
      if (resume) {
        const [m, o] = await resume(model, opt);
        if (m !== model) model.dispose();
        opt.dispose();
        [model, opt] = [m, o];
      }
      after(model, opt);
      const out = model.getWeights().map((w) => Array.from(w.dataSync()));
      opt.dispose();
      model.dispose();
      return out;
    }

    it('resumes as if never stopped, from its own state (the variables keep their names)', async () => {
      const plain = await train();
      const resumed = await expectNoLeak(() =>
        train(async (model, opt) => {
          const state = await opt.getWeights();
          const fresh = make(model);
          await fresh.setWeights(state);
          state[0].tensor.dispose();
          return [model, fresh];
        }),
      );
      expect(resumed).toEqual(plain);
    });

    it('resumes as if never stopped when it trains the head alone first: each slot is claimed by its name', async () => {
      // By place, the head's variables (0-2 of a list of the head's alone) would take hidden's slots.
      const headFirst = (model: tfl.LayersModel, opt: Opt) => {
        steps(model, opt, ['head'], 2);
        steps(model, opt, ['hidden', 'head'], 2);
      };
      const plain = await train(undefined, headFirst);
      const resumed = await train(async (model, opt) => {
        const state = await opt.getWeights();
        const fresh = make(model);
        await fresh.setWeights(state);
        state[0].tensor.dispose();
        return [model, fresh];
      }, headFirst);
      expect(resumed).toEqual(plain);
    });

    it('resumes as if never stopped, from the model saved with its optimiser (new variable names)', async () => {
      const plain = await train();
      const resumed = await train(async (model, opt) => {
        model.compile({ optimizer: opt, loss: 'meanSquaredError' });
        const loaded = await roundTrip(model);
        const o = loaded.optimizer as ProximalSGD | ProximalAdam;
        o.attach(loaded);
        return [loaded, o];
      });
      resumed.forEach((w, i) => expect(maxDiff(w, plain[i]).abs).toBeLessThan(1e-6));
    });

    afterAll(() => tf.dispose([x, y]));
  });

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
