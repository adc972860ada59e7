import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers'; // also registers the gradients of tfjs-core ops
import { decomposedDense, magnitudes } from '@normprune/layers';
import { ProximalAdam, ProximalSGD, type NamedTensor, targetLambda, warmupLambda } from '../src/index.js';
import { expectNoLeak, maxDiff } from '../../../tools/testing/leaks.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// A small regression problem on plain variables.
const xs = tf.tidy(() => tf.randomNormal([16, 5], 0, 1, 'float32', 1));
const ys = tf.tidy(() => tf.randomNormal([16, 3], 0, 1, 'float32', 2));
let counter = 0;

function makeVars(): tf.Variable[] {
  counter++;
  return tf.tidy(() => [
    tf.variable(tf.randomNormal([5, 3], 0, 0.5, 'float32', 3), true, `w${counter}`),
    tf.variable(tf.randomNormal([3], 0, 0.5, 'float32', 4), true, `b${counter}`),
  ]);
}

function lossOf([w, b]: tf.Variable[]): () => tf.Scalar {
  return () => tf.losses.meanSquaredError(ys, tf.add(tf.matMul(xs, w), b)) as tf.Scalar;
}

function train(opt: tf.Optimizer, vars: tf.Variable[], steps: number, form: 'list' | 'map' = 'list'): void {
  for (let i = 0; i < steps; i++) {
    if (form === 'list') opt.minimize(lossOf(vars), false, vars);
    else opt.minimize(lossOf(vars), false);
  }
}

function flat(vars: tf.Variable[]): number[] {
  return vars.flatMap((v) => Array.from(v.dataSync()));
}

const cases: [string, () => tf.Optimizer, () => tf.Optimizer][] = [
  ['sgd', () => new ProximalSGD({ learningRate: 0.1, lambda: 0, magnitudes: [] }), () => tf.train.sgd(0.1)],
  [
    'momentum',
    () => new ProximalSGD({ learningRate: 0.05, momentum: 0.9, lambda: 0, magnitudes: [] }),
    () => tf.train.momentum(0.05, 0.9),
  ],
  [
    'nesterov',
    () => new ProximalSGD({ learningRate: 0.05, momentum: 0.9, nesterov: true, lambda: 0, magnitudes: [] }),
    () => tf.train.momentum(0.05, 0.9, true),
  ],
  [
    'adam',
    () => new ProximalAdam({ learningRate: 0.01, lambda: 0, magnitudes: [] }),
    () => tf.train.adam(0.01, 0.9, 0.999),
  ],
];

describe.each(cases)('%s on variables that are not magnitudes', (_name, ours, theirs) => {
  it('follows the tfjs optimiser step for step (list and map gradient forms)', () => {
    for (const form of ['list', 'map'] as const) {
      const a = makeVars();
      const b = makeVars();
      const oa = ours();
      const ob = theirs();
      for (let s = 0; s < 30; s++) {
        train(oa, a, 1, form);
        train(ob, b, 1, form);
        expect(maxDiff(flat(a), flat(b)).abs).toBeLessThan(1e-6);
      }
      expect(oa.iterations).toBe(30);
      tf.dispose([...a, ...b]);
      oa.dispose();
      ob.dispose();
    }
  });

  it.each([
    ['a new optimiser', false],
    // getWeights hands out the live slots; restoring them into the same optimiser must read them
    // before it frees the old ones (as tfjs optimisers allow).
    ['the same optimiser: setWeights(await getWeights())', true],
  ] as const)('keeps its state through getWeights/setWeights into %s', async (_into, same) => {
    const a = makeVars();
    const b = makeVars();
    const oa = ours();
    const ob = ours();
    train(oa, a, 10);
    train(ob, b, 5);
    let oc = ob;
    if (same) {
      const own = await ob.getWeights();
      await ob.setWeights(own);
      own[0].tensor.dispose(); // the iteration count is a fresh scalar on every call
    } else {
      const saved: NamedTensor[] = (await ob.getWeights()).map((w) => ({
        name: w.name,
        tensor: w.tensor.clone(),
      }));
      ob.dispose();
      oc = ours();
      await oc.setWeights(saved);
      tf.dispose(saved.map((w) => w.tensor));
    }
    expect(oc.iterations).toBe(5);
    train(oc, b, 5);
    expect(maxDiff(flat(a), flat(b)).abs).toBeLessThan(1e-6);
    tf.dispose([...a, ...b]);
    oa.dispose();
    oc.dispose();
  });

  it('does not give a variable the restored state of another shape at its position: it starts fresh', async () => {
    counter++;
    const a = tf.variable(tf.ones([4, 3]), true, `shape_a${counter}`);
    const b = tf.variable(tf.ones([2, 5]), true, `shape_b${counter}`);
    const ref = tf.variable(tf.ones([2, 5]), true, `shape_ref${counter}`);
    const first = ours();
    tf.tidy(() => first.applyGradients({ [a.name]: tf.fill([4, 3], 0.7) }));
    const saved: NamedTensor[] = (await first.getWeights()).map((w) => ({
      name: w.name,
      tensor: w.tensor.clone(),
    }));
    first.dispose();
    // The slots saved for a [4, 3] variable come first; the first variable stepped now is [2, 5].
    const restored = ours();
    await restored.setWeights(saved);
    tf.dispose(saved.map((w) => w.tensor));
    // The reference: a new optimiser after the same first step (Adam's step count is global), then
    // its first on a variable of its own. (tfjs's own, which finds slots by position alone, refuses
    // this sequence with a broadcast error.)
    const fresh = ours();
    const other = tf.variable(tf.ones([4, 3]), true, `shape_other${counter}`);
    tf.tidy(() => {
      fresh.applyGradients({ [other.name]: tf.fill([4, 3], 0.7) });
      restored.applyGradients({ [b.name]: tf.fill([2, 5], 0.5) });
      fresh.applyGradients({ [ref.name]: tf.fill([2, 5], 0.5) });
    });
    expect(maxDiff(b.dataSync(), ref.dataSync()).abs).toBeLessThan(1e-7);
    tf.dispose([a, b, ref, other]);
    restored.dispose();
    fresh.dispose();
  });

  it('leaves no tensors behind once its state exists, and dispose() frees the state', async () => {
    const a = makeVars();
    const before = tf.memory().numTensors;
    const o = ours();
    train(o, a, 1);
    await expectNoLeak(() => train(o, a, 20));
    o.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(a);
  });
});

describe('config round trip', () => {
  it('ProximalSGD: getConfig -> fromConfig through the serialization registry, without magnitudes', () => {
    const o = new ProximalSGD({
      learningRate: 0.03,
      momentum: 0.8,
      nesterov: true,
      lambda: 1e-3,
      magnitudes: [],
      costWeighting: 'uniform',
      renormalize: false,
    });
    const map = tf.serialization.SerializationMap.getMap().classNameMap;
    const [cls, fromConfig] = map['ProximalSGD'];
    const copy = fromConfig(cls, JSON.parse(JSON.stringify(o.getConfig()))) as ProximalSGD;
    expect(copy).toBeInstanceOf(ProximalSGD);
    expect(copy.getConfig()).toEqual(o.getConfig());
    expect(copy.getClassName()).toBe('ProximalSGD');
    expect(copy.magnitudes).toHaveLength(0);
    expect(copy.lambda).toBe(1e-3);
    o.dispose();
    copy.dispose();
  });

  it('ProximalAdam: carries a schedule and its state', () => {
    const schedule = targetLambda({ initial: 1e-4, targetCompression: 0.5, factor: 2 });
    const o = new ProximalAdam({
      learningRate: 1e-3,
      beta1: 0.8,
      beta2: 0.99,
      epsilon: 1e-7,
      lambda: schedule,
      magnitudes: [],
    });
    o.observe({ epoch: 1, compression: 0.1 });
    expect(o.lambda).toBeCloseTo(2e-4, 12);
    const map = tf.serialization.SerializationMap.getMap().classNameMap;
    const [cls, fromConfig] = map['ProximalAdam'];
    const copy = fromConfig(cls, JSON.parse(JSON.stringify(o.getConfig()))) as ProximalAdam;
    expect(copy.getConfig()).toEqual(o.getConfig());
    expect(copy.lambda).toBeCloseTo(2e-4, 12);
    copy.observe({ epoch: 2, compression: 0.2 });
    expect(copy.lambda).toBeCloseTo(4e-4, 12);
    o.dispose();
    copy.dispose();
  });
});

describe('lambda', () => {
  it('follows a warm-up schedule step by step, and setLambda replaces the schedule', () => {
    // lambda > 0 needs magnitudes to act on (a step without any is refused): one decomposed layer's
    const model = tfl.sequential({ layers: [decomposedDense({ inputShape: [3], units: 2 })] });
    const [info] = magnitudes(model);
    const o = new ProximalSGD({
      learningRate: 0.01,
      lambda: warmupLambda({ value: 1, warmup: 4 }),
      magnitudes: model,
    });
    const step = () =>
      tf.tidy(() => o.applyGradients([{ name: info.magnitude.name, tensor: tf.zerosLike(info.magnitude) }]));
    const seen: number[] = [o.lambda];
    for (let i = 0; i < 5; i++) {
      step();
      seen.push(o.lambda);
    }
    // lambda is evaluated before each step with the number of steps already taken
    expect(seen).toEqual([0, 0, 0.25, 0.5, 0.75, 1]);
    o.lambda = 0.3;
    step();
    expect(o.lambda).toBe(0.3);
    expect(() => o.setLambda(-1)).toThrow(/lambda must be a finite number >= 0, got -1/);
    o.dispose();
    model.dispose();
  });
});

describe('options refused at construction', () => {
  it('an infinite learning rate, and a cost weighting there is none of, before any magnitude attaches', () => {
    for (const make of [
      (o: object) => new ProximalSGD({ learningRate: 0.1, lambda: 0, magnitudes: [], ...o }),
      (o: object) => new ProximalAdam({ learningRate: 0.1, lambda: 0, magnitudes: [], ...o }),
    ]) {
      expect(() => make({ learningRate: Infinity })).toThrow(
        /learningRate must be a finite number > 0, got Infinity/,
      );
      expect(() => make({ costWeighting: 'bytes' })).toThrow(
        /unknown costWeighting: "bytes"; allowed: 'uniform', 'params', 'macs'/,
      );
      const o = make({});
      expect(() => o.setLearningRate(Infinity)).toThrow(/learningRate must be a finite number > 0/);
      o.dispose();
    }
  });
});
