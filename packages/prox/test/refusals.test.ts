// Error paths of the optimisers that no other suite reaches, and the exported
// abstract base class ProximalOptimizer.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { decomposedDense, magnitudes } from '@normprune/layers';
import { ProximalAdam, ProximalOptimizer, ProximalSGD, warmupLambda } from '../src/index.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const base = { learningRate: 0.1, lambda: 0, magnitudes: [] };

const optimisers: [string, (model: tfl.LayersModel) => ProximalOptimizer][] = [
  ['ProximalSGD', (model) => new ProximalSGD({ learningRate: 0.1, lambda: 0.1, magnitudes: model })],
  [
    'ProximalSGD with momentum',
    (model) => new ProximalSGD({ learningRate: 0.1, momentum: 0.9, lambda: 0.1, magnitudes: model }),
  ],
  ['ProximalAdam', (model) => new ProximalAdam({ learningRate: 0.1, lambda: 0.1, magnitudes: model })],
];

describe.each(optimisers)('%s.applyGradients with a variable name that does not exist', (_n, make) => {
  it.each(['list', 'map'] as const)(
    'throws naming it (%s form), changes no variable and counts no step',
    (form) => {
      const model = tfl.sequential({ layers: [decomposedDense({ inputShape: [4], units: 3 })] });
      const [info] = magnitudes(model);
      const opt = make(model);
      const grads = () =>
        tf.tidy(() =>
          model.trainableWeights.map((w) => ({
            name: (w.read() as tf.Variable).name,
            tensor: tf.onesLike(w.read()),
          })),
        );
      // A first good step creates the optimiser's state.
      const good = grads();
      opt.applyGradients(good);
      tf.dispose(good.map((g) => g.tensor));
      expect(opt.iterations).toBe(1);
      const before = model.getWeights().map((w) => Array.from(w.dataSync()));
      const bad = tf.onesLike(info.magnitude);
      const gradients =
        form === 'list' ? [{ name: 'no/such/variable', tensor: bad }] : { 'no/such/variable': bad };
      const tensors = tf.memory().numTensors;
      expect(() => opt.applyGradients(gradients)).toThrow(
        "applyGradients: no variable named 'no/such/variable'",
      );
      // The step's scalars are freed on the way out (1 for SGD, 3 for Adam were left per refusal).
      expect(tf.memory().numTensors).toBe(tensors);
      expect(opt.iterations).toBe(1);
      expect(model.getWeights().map((w) => Array.from(w.dataSync()))).toEqual(before);
      // An unknown name after good ones refuses the whole step: none of them is applied.
      const mixed = grads();
      const all = [...mixed, { name: 'no/such/variable', tensor: bad }];
      expect(() =>
        opt.applyGradients(form === 'list' ? all : Object.fromEntries(all.map((g) => [g.name, g.tensor]))),
      ).toThrow(/no variable named/);
      expect(model.getWeights().map((w) => Array.from(w.dataSync()))).toEqual(before);
      expect(opt.iterations).toBe(1);
      tf.dispose(mixed.map((g) => g.tensor));
      expect(tf.memory().numTensors).toBe(tensors);
      bad.dispose();
      opt.dispose();
      model.dispose();
    },
  );
});

describe.each(optimisers)(
  '%s.applyGradients with a gradient of another shape than its variable',
  (_n, make) => {
    it.each([
      ['[1], which tfjs would broadcast', [1]],
      ['[2], which it would fail on after the momentum', [2]],
    ])('throws naming the variable and both shapes for %s, and changes nothing', (_s, shape) => {
      const build = () => tfl.sequential({ layers: [decomposedDense({ inputShape: [4], units: 3 })] });
      const [a, b] = [build(), build()];
      b.setWeights(a.getWeights());
      const [oa, ob] = [make(a), make(b)];
      const grads = (model: tfl.LayersModel, seed: number) =>
        tf.tidy(() =>
          model.trainableWeights.map((w, i) => ({
            name: (w.read() as tf.Variable).name,
            tensor: tf.randomNormal(w.shape as number[], 0, 1, 'float32', seed * 10 + i),
          })),
        );
      const step = (model: tfl.LayersModel, opt: ProximalOptimizer, seed: number) => {
        const g = grads(model, seed);
        opt.applyGradients(g);
        tf.dispose(g.map((x) => x.tensor));
      };
      step(a, oa, 1);
      step(b, ob, 1);
      const [info] = magnitudes(a);
      const good = grads(a, 2);
      const bad = good.map((g) =>
        g.name === info.magnitude.name ? { name: g.name, tensor: tf.ones(shape) } : g,
      );
      const tensors = tf.memory().numTensors;
      expect(() => oa.applyGradients(bad)).toThrow(
        `${oa.getClassName()}: the gradient of '${info.magnitude.name}' has shape [${shape}] but the variable has ` +
          `shape [3]; no variable was updated`,
      );
      expect(tf.memory().numTensors).toBe(tensors);
      expect(oa.iterations).toBe(1);
      tf.dispose([...good, ...bad].map((g) => g.tensor));
      // Nothing of the refused step remains (weights, momentum, moments): the two go on alike.
      for (const seed of [3, 4]) {
        step(a, oa, seed);
        step(b, ob, seed);
      }
      expect(a.getWeights().map((w) => Array.from(w.dataSync()))).toEqual(
        b.getWeights().map((w) => Array.from(w.dataSync())),
      );
      for (const x of [oa, ob, a, b]) x.dispose();
    });
  },
);

describe('after a refused step', () => {
  it.each(optimisers)(
    '%s goes on exactly as one that never saw it (step count, Adam bias correction, momentum)',
    (_n, make) => {
      const build = () => tfl.sequential({ layers: [decomposedDense({ inputShape: [5], units: 4 })] });
      const a = build();
      const b = build();
      b.setWeights(a.getWeights());
      const [oa, ob] = [make(a), make(b)];
      const step = (model: tfl.LayersModel, opt: ProximalOptimizer, seed: number) => {
        const grads = tf.tidy(() =>
          model.trainableWeights.map((w, i) => ({
            name: (w.read() as tf.Variable).name,
            tensor: tf.randomNormal(w.shape as number[], 0, 1, 'float32', seed * 10 + i),
          })),
        );
        opt.applyGradients(grads);
        tf.dispose(grads.map((g) => g.tensor));
      };
      step(a, oa, 1);
      step(b, ob, 1);
      const bad = tf.ones([2]);
      expect(() => oa.applyGradients({ 'no/such/variable': bad })).toThrow(/no variable named/);
      bad.dispose();
      for (const seed of [2, 3]) {
        step(a, oa, seed);
        step(b, ob, seed);
      }
      expect(oa.iterations).toBe(3);
      expect(a.getWeights().map((w) => Array.from(w.dataSync()))).toEqual(
        b.getWeights().map((w) => Array.from(w.dataSync())),
      );
      for (const x of [oa, ob, a, b]) x.dispose();
    },
  );
});

describe('setLambda', () => {
  it('refuses a function (a schedule goes through setLambdaSchedule), also through the lambda setter, and keeps lambda', () => {
    for (const make of [
      () => new ProximalSGD({ ...base, lambda: 0.25 }),
      () => new ProximalAdam({ ...base, lambda: 0.25 }),
    ]) {
      const o = make();
      const schedule = warmupLambda({ value: 1, warmup: 10 });
      const message = 'setLambda: got a function; a lambda schedule goes through setLambdaSchedule(schedule)';
      expect(() => o.setLambda(schedule as never)).toThrow(message);
      expect(() => o.setLambda((() => 0.5) as never)).toThrow(message);
      expect(() => {
        o.lambda = schedule as never;
      }).toThrow(message);
      expect(o.lambda).toBe(0.25);
      expect(o.getConfig().lambda).toBe(0.25);
      // The way it points to works.
      o.setLambdaSchedule(schedule);
      expect(o.lambda).toBe(0);
      expect(o.getConfig().lambda).toEqual(schedule.config);
      o.dispose();
    }
  });
});

describe('options refused at construction', () => {
  it('nesterov without momentum', () => {
    expect(() => new ProximalSGD({ ...base, nesterov: true })).toThrow('nesterov needs momentum > 0');
    expect(() => new ProximalSGD({ ...base, momentum: 0, nesterov: true })).toThrow(
      'nesterov needs momentum > 0',
    );
    const ok = new ProximalSGD({ ...base, momentum: 0.5, nesterov: true });
    expect(ok.nesterov).toBe(true);
    ok.dispose();
  });

  it.each([
    ['beta1', -0.1, '-0.1'],
    ['beta1', 1, '1'],
    ['beta1', 1.5, '1.5'],
    ['beta1', NaN, 'NaN'],
    ['beta2', -0.5, '-0.5'],
    ['beta2', 1.0000001, '1.0000001'],
    ['beta2', Infinity, 'Infinity'],
  ] as const)('%s = %s, outside [0, 1)', (key, value, shown) => {
    expect(() => new ProximalAdam({ ...base, [key]: value })).toThrow(
      `${key} must be a number in [0, 1), got ${shown}`,
    );
  });

  it('beta1 and beta2 at the edges of [0, 1) are taken', () => {
    const o = new ProximalAdam({ ...base, beta1: 0, beta2: 0.999999 });
    expect([o.beta1, o.beta2]).toEqual([0, 0.999999]);
    o.dispose();
  });

  it('a negative momentum', () => {
    expect(() => new ProximalSGD({ ...base, momentum: -0.1 })).toThrow(
      'momentum must be a number in [0, 1), got -0.1',
    );
  });
});

describe('ProximalOptimizer, the exported base class', () => {
  it('instanceof holds for both optimisers and for nothing else, tf.train optimisers included', () => {
    const sgd = new ProximalSGD(base);
    const adam = new ProximalAdam(base);
    const others = [
      tf.train.adam(0.1),
      tf.train.sgd(0.1),
      tf.train.momentum(0.1, 0.9),
      tf.train.rmsprop(0.1),
    ];
    expect(sgd instanceof ProximalOptimizer).toBe(true);
    expect(adam instanceof ProximalOptimizer).toBe(true);
    for (const o of others) {
      // tf.Optimizer answers instanceof by duck typing (any object with minimize and computeGradients)...
      expect(o instanceof tf.Optimizer).toBe(true);
      // ...which ProximalOptimizer replaces by a prototype check.
      expect(o instanceof ProximalOptimizer).toBe(false);
    }
    const duck = { minimize: () => null, computeGradients: () => null, applyGradients: () => null };
    expect(duck instanceof tf.Optimizer).toBe(true);
    expect(duck instanceof ProximalOptimizer).toBe(false);
    expect((null as unknown as object) instanceof ProximalOptimizer).toBe(false);
    // Both are also tf.Optimizers, and each is not the other.
    expect(sgd instanceof tf.Optimizer && adam instanceof tf.Optimizer).toBe(true);
    expect(sgd instanceof ProximalAdam).toBe(false);
    expect(adam instanceof ProximalSGD).toBe(false);
    // A model compiled with one keeps it as a ProximalOptimizer.
    const model = tfl.sequential({ layers: [decomposedDense({ inputShape: [2], units: 1 })] });
    model.compile({ optimizer: sgd, loss: 'meanSquaredError' });
    expect(model.optimizer instanceof ProximalOptimizer).toBe(true);
    model.dispose();
    for (const o of [sgd, adam, ...others]) o.dispose();
  });

  it('both optimisers extend it; it is not registered for deserialisation itself', () => {
    const names = Object.keys(tf.serialization.SerializationMap.getMap().classNameMap);
    expect(names).toEqual(expect.arrayContaining(['ProximalSGD', 'ProximalAdam']));
    expect(names).not.toContain('ProximalOptimizer');
    expect(Object.getPrototypeOf(ProximalSGD)).toBe(ProximalOptimizer);
    expect(Object.getPrototypeOf(ProximalAdam)).toBe(ProximalOptimizer);
  });
});

describe('ProximalAdam.setWeights', () => {
  it('refuses moments that do not pair up (an odd count would read a first moment as a second), changing nothing', async () => {
    const v = tf.variable(tf.ones([3, 2]), true, 'adam_pairs');
    const opt = new ProximalAdam({ learningRate: 0.1, lambda: 0, magnitudes: [] });
    tf.tidy(() => opt.applyGradients({ [v.name]: tf.fill([3, 2], 0.5) }));
    const saved = await opt.getWeights(); // [iter, m, v]
    expect(saved.map((w) => w.name)).toEqual(['iter', 'adam_pairs/m', 'adam_pairs/v']);
    const before = tf.memory().numTensors;
    await expect(opt.setWeights(saved.slice(0, 2))).rejects.toThrow(
      'ProximalAdam.setWeights: expected the iteration count, then first and second moments in equal numbers ' +
        '(what getWeights() gives), got 2 tensors: iter, adam_pairs/m',
    );
    await expect(opt.setWeights([])).rejects.toThrow(/got 0 tensors$/);
    expect(opt.iterations).toBe(1);
    expect(tf.memory().numTensors).toBe(before);
    // The whole list restores, as before.
    await opt.setWeights(saved);
    expect(opt.iterations).toBe(1);
    saved[0].tensor.dispose();
    opt.dispose();
    v.dispose();
  });
});
