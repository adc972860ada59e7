import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  decomposedConv1d,
  decomposedConv2d,
  decomposedDense,
  effectiveKernel,
  magnitudes,
  type MagnitudeInfo,
} from '@normprune/layers';
import {
  keepLargestFilters,
  keepLargestGroups,
  l1Penalty,
  measureSparsity,
  ProximalAdam,
  ProximalSGD,
  SparsityCallback,
  type SparsityCallbackOptions,
  stepLambda,
  targetLambda,
} from '../src/index.js';
import { expectNoLeak, maxDiff } from '../../../tools/testing/leaks.js';
import { saveInMemory } from '../../../tools/testing/memory-io.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function mlp(seed: number): tfl.Sequential {
  const model = tfl.sequential();
  model.add(
    decomposedDense({
      inputShape: [12],
      units: 24,
      activation: 'relu',
      kernelInitializer: tfl.initializers.glorotUniform({ seed }),
    }),
  );
  model.add(
    decomposedDense({
      units: 10,
      activation: 'relu',
      kernelInitializer: tfl.initializers.glorotUniform({ seed: seed + 1 }),
    }),
  );
  model.add(
    decomposedDense({ units: 2, kernelInitializer: tfl.initializers.glorotUniform({ seed: seed + 2 }) }),
  );
  return model;
}

// The target depends on 3 of the 12 inputs, so most hidden units are not needed.
const xs = tf.tidy(() => tf.randomNormal([128, 12], 0, 1, 'float32', 5));
const ys = tf.tidy(() => {
  const x = tf.slice(xs, [0, 0], [-1, 3]);
  return tf.concat(
    [tf.sum(x, 1, true), tf.sub(tf.slice(x, [0, 0], [-1, 1]), tf.slice(x, [0, 2], [-1, 1]))],
    1,
  );
});

async function read(infos: MagnitudeInfo[]): Promise<{ g: Float32Array[]; norms: Float32Array[] }> {
  const g = await Promise.all(infos.map((m) => m.magnitude.data() as Promise<Float32Array>));
  const normT = tf.tidy(() => infos.map((m) => tf.sqrt(tf.sum(tf.square(m.direction), m.normAxes))));
  const norms = await Promise.all(normT.map((t) => t.data() as Promise<Float32Array>));
  tf.dispose(normT);
  return { g, norms };
}

/** Checks the invariants after every step and tracks which magnitudes have hit 0. */
class Invariants {
  zeroAt = new Map<string, number>(); // "layer:index" -> step it first became 0
  revived: string[] = [];
  steps = 0;
  constructor(private readonly infos: MagnitudeInfo[]) {}
  async check(): Promise<void> {
    this.steps++;
    const { g, norms } = await read(this.infos);
    this.infos.forEach((m, l) => {
      g[l].forEach((v, k) => {
        expect(v).toBeGreaterThanOrEqual(0);
        const key = `${m.layerName}:${k}`;
        if (v === 0 && !this.zeroAt.has(key)) this.zeroAt.set(key, this.steps);
        if (v !== 0 && this.zeroAt.has(key)) this.revived.push(key);
      });
      norms[l].forEach((n) => expect(Math.abs(n - 1)).toBeLessThan(1e-5));
    });
  }
}

describe('a decomposed MLP trained with proximal optimisers', () => {
  it('ProximalSGD under model.compile + model.fit: magnitudes >= 0, unit directions, exact zeros that stay 0, no leaks', async () => {
    const model = mlp(1);
    const infos = magnitudes(model);
    const opt = new ProximalSGD({ learningRate: 0.05, momentum: 0.9, lambda: 0.5, magnitudes: infos });
    model.compile({ optimizer: opt, loss: 'meanSquaredError' });
    const inv = new Invariants(infos);
    const counts: number[] = [];
    const h = await model.fit(xs, ys, {
      epochs: 12,
      batchSize: 32,
      shuffle: false,
      verbose: 0,
      callbacks: {
        onBatchEnd: async () => inv.check(),
        onEpochEnd: async () => {
          counts.push(tf.memory().numTensors);
        },
      },
    });
    expect(inv.steps).toBe(12 * 4);
    expect(inv.zeroAt.size).toBeGreaterThan(0);
    expect(inv.revived).toEqual([]);
    // the loss still goes down while groups die
    const loss = h.history.loss as number[];
    expect(loss[loss.length - 1]).toBeLessThan(loss[0]);
    // flat tensor count from the second epoch on (the first creates the optimiser state)
    expect(new Set(counts.slice(1)).size).toBe(1);
    model.dispose();
    opt.dispose();
  });

  it('ProximalAdam in a custom loop with minimize: the same invariants, no leaks', async () => {
    const model = mlp(11);
    const infos = magnitudes(model);
    const opt = new ProximalAdam({ learningRate: 0.01, lambda: 0.1, magnitudes: infos });
    const inv = new Invariants(infos);
    const step = () =>
      opt.minimize(() => tf.losses.meanSquaredError(ys, model.predict(xs) as tf.Tensor) as tf.Scalar, false);
    step();
    await inv.check();
    await expectNoLeak(async () => {
      for (let i = 0; i < 60; i++) {
        step();
        await inv.check();
      }
    });
    expect(inv.zeroAt.size).toBeGreaterThan(0);
    expect(inv.revived).toEqual([]);
    model.dispose();
    opt.dispose();
  });

  it('one step = the plain SGD step, then max(g - lr * lambda, 0) on magnitudes only', () => {
    const ours = mlp(21);
    const plain = mlp(21);
    const lossOf = (m: tfl.Sequential) => () =>
      tf.losses.meanSquaredError(ys, m.predict(xs) as tf.Tensor) as tf.Scalar;
    // lr * lambda = the median initial magnitude of the first layer: about half of it dies at once
    const g0 = Array.from(magnitudes(ours)[0].magnitude.dataSync()).sort((a, b) => a - b);
    const lambda = g0[g0.length >> 1] / 0.1;
    const opt = new ProximalSGD({ learningRate: 0.1, lambda, magnitudes: magnitudes(ours) });
    const sgd = tf.train.sgd(0.1);
    opt.minimize(lossOf(ours), false);
    sgd.minimize(lossOf(plain), false);
    let zeros = 0;
    ours.layers.forEach((layer, l) => {
      const [, g, b] = layer.getWeights().map((w) => Array.from(w.dataSync()));
      const [, gp, bp] = plain.layers[l].getWeights().map((w) => Array.from(w.dataSync()));
      expect(maxDiff(b, bp).abs).toBeLessThan(1e-6);
      expect(
        maxDiff(
          g,
          gp.map((v) => Math.max(v - 0.1 * lambda, 0)),
        ).abs,
      ).toBeLessThan(1e-6);
      zeros += g.filter((v) => v === 0).length;
    });
    expect(zeros).toBeGreaterThan(0);
    ours.dispose();
    plain.dispose();
    opt.dispose();
    sgd.dispose();
  });
});

describe('a decomposed Conv1D model trained with ProximalAdam', () => {
  // The target reads only channel 0 of the sequence: most 1-D kernels are not needed.
  const seqX = tf.tidy(() => tf.randomNormal([64, 12, 3], 0, 1, 'float32', 6));
  const seqY = tf.tidy(() => tf.mean(tf.slice(seqX, [0, 0, 0], [-1, -1, 1]), 1));
  afterAll(() => tf.dispose([seqX, seqY]));

  it.each(['kernel', 'filter'] as const)(
    "granularity '%s': magnitudes >= 0, unit directions, exact zeros that stay 0, no leaks",
    async (granularity) => {
      const model = tfl.sequential({
        layers: [
          decomposedConv1d({
            inputShape: [12, 3],
            filters: 8,
            kernelSize: 3,
            activation: 'relu',
            granularity,
            kernelInitializer: tfl.initializers.glorotUniform({ seed: 3 }),
          }),
          tfl.layers.globalAveragePooling1d(),
          decomposedDense({ units: 1, kernelInitializer: tfl.initializers.glorotUniform({ seed: 4 }) }),
        ],
      });
      const infos = magnitudes(model);
      const opt = new ProximalAdam({ learningRate: 0.02, lambda: 0.05, magnitudes: infos });
      const inv = new Invariants(infos);
      const loss = () => tf.losses.meanSquaredError(seqY, model.predict(seqX) as tf.Tensor) as tf.Scalar;
      const step = () => opt.minimize(loss, false);
      step();
      await inv.check();
      await expectNoLeak(async () => {
        for (let i = 0; i < 40; i++) {
          step();
          await inv.check();
        }
      });
      expect([...inv.zeroAt.keys()].some((k) => k.startsWith(`${infos[0].layerName}:`))).toBe(true);
      expect(inv.revived).toEqual([]);
      model.dispose();
      opt.dispose();
    },
  );
});

describe('lambda = 0 and no renormalisation on a decomposed model', () => {
  it.each([
    [
      'ProximalAdam vs tf.train.adam',
      () => tf.train.adam(0.01),
      (infos: MagnitudeInfo[]) =>
        new ProximalAdam({ learningRate: 0.01, lambda: 0, magnitudes: infos, renormalize: false }),
    ],
    [
      'ProximalSGD vs tf.train.momentum',
      () => tf.train.momentum(0.05, 0.9),
      (infos: MagnitudeInfo[]) =>
        new ProximalSGD({
          learningRate: 0.05,
          momentum: 0.9,
          lambda: 0,
          magnitudes: infos,
          renormalize: false,
        }),
    ],
  ])('%s: every variable, magnitudes included, follows the tfjs optimiser', (_n, theirs, ours) => {
    const a = mlp(51);
    const b = mlp(51);
    const oa = ours(magnitudes(a));
    const ob = theirs();
    const lossOf = (m: tfl.Sequential) => () =>
      tf.losses.meanSquaredError(ys, m.predict(xs) as tf.Tensor) as tf.Scalar;
    for (let i = 0; i < 25; i++) {
      oa.minimize(lossOf(a), false);
      ob.minimize(lossOf(b), false);
    }
    const wa = a.getWeights().flatMap((w) => Array.from(w.dataSync()));
    const wb = b.getWeights().flatMap((w) => Array.from(w.dataSync()));
    // the only difference allowed is the clamp g >= 0, which must not have been active here
    expect(magnitudes(b).every((m) => m.magnitude.dataSync().every((v) => v > 0))).toBe(true);
    expect(maxDiff(wa, wb).abs).toBeLessThan(1e-6);
    a.dispose();
    b.dispose();
    oa.dispose();
    ob.dispose();
  });
});

describe('renormalisation', () => {
  const layersToTry: [string, () => tfl.layers.Layer][] = [
    ['dense output', () => decomposedDense({ inputShape: [7], units: 5, granularity: 'output' })],
    ['dense input', () => decomposedDense({ inputShape: [7], units: 5, granularity: 'input' })],
    // a large epsilon exercises the magnitude compensation
    [
      'dense output, epsilon 0.3',
      () => decomposedDense({ inputShape: [7], units: 5, granularity: 'output', epsilon: 0.3 }),
    ],
    [
      'conv filter, epsilon 0.3',
      () =>
        decomposedConv2d({
          inputShape: [6, 6, 3],
          filters: 4,
          kernelSize: 3,
          granularity: 'filter',
          epsilon: 0.3,
        }),
    ],
    [
      'conv kernel',
      () => decomposedConv2d({ inputShape: [6, 6, 3], filters: 4, kernelSize: 3, granularity: 'kernel' }),
    ],
    [
      'conv filter',
      () => decomposedConv2d({ inputShape: [6, 6, 3], filters: 4, kernelSize: 3, granularity: 'filter' }),
    ],
  ];

  it.each(layersToTry)(
    '%s: rescales each group to unit norm, keeps the effective kernel, leaves zero groups alone',
    async (_n, make) => {
      const model = tfl.sequential({ layers: [make()] });
      const [info] = magnitudes(model);
      // directions far from unit norm, one group exactly zero, a magnitude at 0
      tf.tidy(() => {
        const scale = tf.randomUniform(info.magnitude.shape, 0.1, 5, 'float32', 3);
        const keep = tf.reshape(tf.oneHot(0, info.magnitude.size), info.magnitude.shape);
        const mask = tf.sub(1, keep); // group 0 becomes zero
        const bshape = info.direction.shape.map((d, a) => (info.normAxes.includes(a) ? 1 : d));
        info.direction.assign(tf.mul(info.direction, tf.reshape(tf.mul(scale, mask), bshape)));
        info.magnitude.assign(
          tf.mul(
            info.magnitude,
            tf.sub(1, tf.reshape(tf.oneHot(1, info.magnitude.size), info.magnitude.shape)),
          ),
        );
      });
      const before = effectiveKernel(info.layer);
      const groupNorms = () =>
        tf.tidy(() => Array.from(tf.sqrt(tf.sum(tf.square(info.direction), info.normAxes)).dataSync()));
      const normsBefore = groupNorms();
      expect(normsBefore[0]).toBe(0);
      expect(normsBefore.slice(1).some((n) => Math.abs(n - 1) > 0.05)).toBe(true);
      const opt = new ProximalSGD({ learningRate: 0.1, lambda: 0, magnitudes: [info] });
      const start = tf.memory().numTensors;
      // zero gradients: the step itself changes nothing, only the renormalisation acts
      const zeroStep = () => {
        const grads = tf.tidy(() =>
          [info.magnitude, info.direction].map((v) => ({ name: v.name, tensor: tf.zerosLike(v) })),
        );
        opt.applyGradients(grads);
        tf.dispose(grads.map((g) => g.tensor));
      };
      zeroStep();
      const after = effectiveKernel(info.layer);
      expect(maxDiff(before.dataSync(), after.dataSync()).abs).toBeLessThan(1e-6);
      const norms = groupNorms();
      expect(norms[0]).toBe(0); // the zero group is untouched
      norms.slice(1).forEach((n) => expect(Math.abs(n - 1)).toBeLessThan(1e-6));
      expect(info.magnitude.dataSync()[1]).toBe(0);
      // a second step: nothing left to rescale, and no tensor created beyond the first step's cached scalars
      await expectNoLeak(zeroStep);
      const again = effectiveKernel(info.layer);
      expect(maxDiff(after.dataSync(), again.dataSync()).abs).toBeLessThan(1e-6);
      tf.dispose([before, after, again]);
      opt.dispose();
      // everything the optimiser kept is released (`before` was created ahead of `start`)
      expect(tf.memory().numTensors).toBe(start - 1);
      model.dispose();
    },
  );
});

describe('penalty weights, l1Penalty, measureSparsity', () => {
  it("'params' and 'macs' weights have mean 1 over all groups and follow the layer's cost", () => {
    const model = tfl.sequential({
      layers: [
        decomposedConv2d({
          inputShape: [8, 8, 2],
          filters: 3,
          kernelSize: 3,
          granularity: 'filter',
          name: 'c1',
        }),
        tfl.layers.flatten(),
        decomposedDense({ units: 4, name: 'd1' }),
      ],
    });
    const infos = magnitudes(model);
    for (const costWeighting of ['params', 'macs'] as const) {
      const opt = new ProximalSGD({ learningRate: 0.1, lambda: 1, magnitudes: infos, costWeighting });
      const c = opt.penaltyWeights;
      const mean =
        infos.reduce((s, m, i) => s + m.groups * c[i], 0) / infos.reduce((s, m) => s + m.groups, 0);
      expect(mean).toBeCloseTo(1, 10);
      const key = costWeighting === 'params' ? 'paramsPerGroup' : 'macsPerGroup';
      expect(c[0] / c[1]).toBeCloseTo(infos[0][key] / infos[1][key], 10);
      opt.dispose();
    }
    const uniform = new ProximalSGD({
      learningRate: 0.1,
      lambda: 1,
      magnitudes: infos,
      layerMultipliers: { d1: 3 },
    });
    expect(uniform.penaltyWeights).toEqual([1, 3]);
    expect(
      () =>
        new ProximalSGD({ learningRate: 0.1, lambda: 1, magnitudes: infos, layerMultipliers: { nope: 2 } }),
    ).toThrow(/nope/);
    uniform.dispose();
    model.dispose();
  });

  it('l1Penalty is lambda * sum c_k |g_k|; measureSparsity counts exact zeros', async () => {
    const model = mlp(31);
    const infos = magnitudes(model);
    tf.tidy(() =>
      infos[0].magnitude.assign(tf.mul(infos[0].magnitude, tf.tensor1d([0, 0, 0, ...new Array(21).fill(1)]))),
    );
    const manual = infos.reduce(
      (s, m) => s + Array.from(m.magnitude.dataSync()).reduce((a, b) => a + Math.abs(b), 0),
      0,
    );
    // Relative error measured 4.1e-8 (a float32 sum of 36 terms against a float64 one).
    const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
    expect(rel(l1Penalty(model, { lambda: 0.5 }), 0.5 * manual)).toBeLessThan(5e-7);
    expect(rel(l1Penalty(infos), manual)).toBeLessThan(5e-7);
    const r = await measureSparsity(model);
    expect(r.liveGroups[infos[0].layerName]).toBe(21);
    expect(r.totalGroups[infos[0].layerName]).toBe(24);
    expect(r.totalParams).toBe(12 * 24 + 24 * 10 + 10 * 2);
    expect(r.compression).toBeCloseTo((3 * 12) / r.totalParams, 10);
    expect(() => l1Penalty(model, { lambda: -1 })).toThrow(
      /l1Penalty: lambda must be a finite number >= 0, got -1/,
    );
    await expect(measureSparsity(model.layers[0] as never)).rejects.toThrow(
      /measureSparsity: expected a LayersModel or a list of magnitudes/,
    );
    model.dispose();
  });
});

describe('keepLargestGroups', () => {
  it('caps the live groups of the named layers at the largest magnitudes, on dense and conv layers', async () => {
    const model = tfl.sequential({
      layers: [
        decomposedConv2d({
          inputShape: [8, 8, 2],
          filters: 5,
          kernelSize: 3,
          granularity: 'kernel',
          name: 'c1',
          kernelInitializer: tfl.initializers.glorotUniform({ seed: 3 }),
        }),
        tfl.layers.flatten(),
        decomposedDense({
          units: 6,
          name: 'd1',
          kernelInitializer: tfl.initializers.glorotUniform({ seed: 4 }),
        }),
        decomposedDense({
          units: 3,
          name: 'd2',
          granularity: 'input',
          kernelInitializer: tfl.initializers.glorotUniform({ seed: 5 }),
        }),
      ],
    });
    const infos = magnitudes(model);
    const before = infos.map((m) => Array.from(m.magnitude.dataSync()));
    // A freshly decomposed layer's magnitudes are its groups' weight norms.
    const kernel = effectiveKernel(infos[1].layer);
    const norms = tf.tidy(() => tf.sqrt(tf.sum(tf.square(kernel), 0)));
    Array.from(norms.dataSync()).forEach((n, j) => expect(n).toBeCloseTo(before[1][j], 5));
    tf.dispose([kernel, norms]);
    const start = tf.memory().numTensors;
    keepLargestGroups(model, { c1: 4, d1: 2 });
    expect(tf.memory().numTensors).toBe(start);
    const r = await measureSparsity(model);
    expect(r.liveGroups).toEqual({ c1: 4, d1: 2, d2: 6 });
    infos.forEach((m, i) => {
      const after = Array.from(m.magnitude.dataSync());
      const keptSmallest = Math.min(...after.filter((v) => v !== 0).map(Math.abs));
      after.forEach((v, j) => {
        if (v !== 0) expect(v).toBe(before[i][j]);
        else expect(Math.abs(before[i][j])).toBeLessThanOrEqual(keptSmallest);
      });
    });
    // A cap above what is alive changes nothing.
    keepLargestGroups(model, { d1: 5 });
    expect((await measureSparsity(model)).liveGroups.d1).toBe(2);
    expect(() => keepLargestGroups(model, { nope: 1 })).toThrow(
      /no decomposed layer named 'nope'; decomposed layers: c1, d1, d2/,
    );
    // A bad entry changes nothing, not even the valid entries before it.
    const live = await measureSparsity(model);
    expect(() => keepLargestGroups(infos, { c1: 1, d2: -2 })).toThrow(
      /d2: k must be an integer >= 0, got -2/,
    );
    expect(() => keepLargestGroups(infos, { d1: 1, nope: 1 })).toThrow(/nope/);
    expect((await measureSparsity(model)).liveGroups).toEqual(live.liveGroups);
    expect(() => keepLargestGroups(model, [3] as never)).toThrow(/keep must be an object of layer name -> k/);
    // A refused argument is a RangeError or TypeError, a NaN magnitude a plain Error (see below).
    expect(() => keepLargestGroups(model, { nope: 1 })).toThrow(RangeError);
    expect(() => keepLargestGroups(infos, { d2: -2 })).toThrow(RangeError);
    expect(() => keepLargestGroups(model, [3] as never)).toThrow(TypeError);
    // NaN has no order; the layer is named and nothing changes.
    const saved = infos[2].magnitude.clone();
    infos[2].magnitude.assign(tf.tensor1d([1, NaN, 3, 0.5, 2, 4]));
    expect(() => keepLargestGroups(model, { c1: 1, d2: 2 })).toThrow(/layer 'd2' has 1 NaN magnitude/);
    expect(() => keepLargestGroups(model, { d2: 2 })).toThrow(
      expect.objectContaining({ constructor: Error, message: expect.stringMatching(/NaN magnitude/) }),
    );
    // (measureSparsity refuses the NaN too, so read the other layers)
    await expect(measureSparsity(model)).rejects.toThrow(/layer 'd2' has 1 NaN magnitude/);
    expect((await measureSparsity(infos.slice(0, 2))).liveGroups.c1).toBe(live.liveGroups.c1);
    infos[2].magnitude.assign(saved);
    saved.dispose();
    model.dispose();
  });
});

describe('SparsityCallback', () => {
  describe('targetLambda chases the compression of the layers the optimiser can prune', () => {
    let warn: jest.SpyInstance;
    beforeEach(() => {
      warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    });
    afterEach(() => warn.mockRestore());

    /** 12 -> 16 (a, frozen if asked) -> 8 (b) -> plain head 2. */
    function frozenMixed(freezeA: boolean, freezeB = false): tfl.Sequential {
      return tfl.sequential({
        layers: [
          decomposedDense({
            inputShape: [12],
            units: 16,
            activation: 'relu',
            name: 'a',
            trainable: !freezeA,
            kernelInitializer: tfl.initializers.glorotUniform({ seed: 61 }),
          }),
          decomposedDense({
            units: 8,
            activation: 'relu',
            name: 'b',
            trainable: !freezeB,
            kernelInitializer: tfl.initializers.glorotUniform({ seed: 62 }),
          }),
          tfl.layers.dense({
            units: 2,
            name: 'head',
            kernelInitializer: tfl.initializers.glorotUniform({ seed: 63 }),
          }),
        ],
      });
    }
    const fitOptions = { batchSize: 32, shuffle: false, verbose: 0 as const };

    /** 16 epochs of `model` under a targetLambda towards 0.6 (x2 an epoch from 0.01). */
    async function chaseTarget(
      model: tfl.Sequential,
      layerMultipliers?: Record<string, number>,
    ): Promise<{ opt: ProximalSGD; cb: SparsityCallback }> {
      const opt = new ProximalSGD({
        learningRate: 0.05,
        lambda: targetLambda({ initial: 0.01, targetCompression: 0.6, factor: 2 }),
        magnitudes: model,
        ...(layerMultipliers ? { layerMultipliers } : {}),
      });
      model.compile({ optimizer: opt, loss: 'meanSquaredError' });
      const cb = new SparsityCallback();
      await model.fit(xs, ys, { ...fitOptions, epochs: 16, callbacks: [cb] });
      return { opt, cb };
    }

    it('a frozen layer does not count: lambda stops rising when the trainable one reaches the target', async () => {
      const model = frozenMixed(true);
      const { opt, cb } = await chaseTarget(model);
      const h = cb.history;
      // a (16 groups of 12) can never be pruned; over the whole model, 0.6 needs more than all of b (8 of 16).
      h.forEach((r) => expect(r.liveGroups['a']).toBe(16));
      h.forEach((r) => expect(r.compression).toBeLessThan(0.6));
      h.forEach((r) => expect(r.scheduleCompression).toBeCloseTo(1 - r.liveGroups['b'] / 8, 12));
      h.forEach((r) => expect(r.nextLambda).toBe(r.scheduleCompression! < 0.6 ? r.lambda! * 2 : r.lambda));
      const reached = h.findIndex((r) => r.scheduleCompression! >= 0.6);
      expect(reached).toBeGreaterThan(0);
      h.slice(reached).forEach((r) => expect(r.nextLambda).toBe(h[reached].lambda));
      expect(opt.lambda).toBe(h[reached].lambda);
      expect(warn).not.toHaveBeenCalled();
      // Training on with the schedule held leaves no tensor behind.
      await expectNoLeak(() => model.fit(xs, ys, { ...fitOptions, epochs: 2, callbacks: [cb] }));
      model.dispose();
      opt.dispose();
    });

    it('a layer exempted from the penalty (layerMultipliers 0) does not count either', async () => {
      const model = frozenMixed(false);
      const { opt, cb } = await chaseTarget(model, { a: 0 });
      const h = cb.history;
      // a has no threshold: lambda must not rise for its groups, or it would kill all of b first.
      h.forEach((r) => expect(r.scheduleCompression).toBeCloseTo(1 - r.liveGroups['b'] / 8, 12));
      h.forEach((r) => expect(r.nextLambda).toBe(r.scheduleCompression! < 0.6 ? r.lambda! * 2 : r.lambda));
      const reached = h.findIndex((r) => r.scheduleCompression! >= 0.6);
      expect(reached).toBeGreaterThan(0);
      expect(opt.lambda).toBe(h[reached].lambda);
      model.dispose();
      opt.dispose();
    });

    it('a layer not attached to the optimiser does not count either', async () => {
      const model = mlp(71);
      const infos = magnitudes(model);
      const opt = new ProximalSGD({
        learningRate: 0.05,
        lambda: targetLambda({ initial: 1e-3, targetCompression: 0.5, factor: 3 }),
        magnitudes: infos.slice(1),
      });
      model.compile({ optimizer: opt, loss: 'meanSquaredError' });
      const cb = new SparsityCallback();
      await model.fit(xs, ys, { ...fitOptions, epochs: 6, callbacks: [cb] });
      const [, second, third] = model.layers.map((l) => l.name);
      for (const r of cb.history) {
        const live = r.liveGroups[second] * 24 + r.liveGroups[third] * 10;
        expect(r.scheduleCompression).toBeCloseTo(1 - live / (10 * 24 + 2 * 10), 12);
        expect(r.nextLambda).toBe(r.scheduleCompression! < 0.5 ? r.lambda! * 3 : r.lambda);
      }
      model.dispose();
      opt.dispose();
    });

    it('every decomposed layer frozen: no compression reaches the schedule, and lambda holds', async () => {
      const model = frozenMixed(true, true);
      const opt = new ProximalSGD({
        learningRate: 0.05,
        lambda: targetLambda({ initial: 0.01, targetCompression: 0.5, factor: 2 }),
        magnitudes: model,
      });
      model.compile({ optimizer: opt, loss: 'meanSquaredError' });
      const cb = new SparsityCallback();
      await model.fit(xs, ys, { ...fitOptions, epochs: 5, callbacks: [cb] });
      expect(cb.history.map((r) => [r.lambda, r.nextLambda])).toEqual(Array(5).fill([0.01, 0.01]));
      cb.history.forEach((r) => expect(r).not.toHaveProperty('scheduleCompression'));
      model.dispose();
      opt.dispose();
    });

    it('nothing frozen and everything attached: the records carry no scheduleCompression', async () => {
      const model = mlp(73);
      const opt = new ProximalSGD({
        learningRate: 0.05,
        lambda: targetLambda({ initial: 1e-3, targetCompression: 0.5, factor: 3 }),
        magnitudes: model,
      });
      model.compile({ optimizer: opt, loss: 'meanSquaredError' });
      const cb = new SparsityCallback();
      await model.fit(xs, ys, { ...fitOptions, epochs: 3, callbacks: [cb] });
      cb.history.forEach((r) =>
        expect(Object.keys(r).sort()).toEqual([
          'compression',
          'epoch',
          'lambda',
          'liveGroups',
          'liveParams',
          'nextLambda',
          'totalGroups',
          'totalParams',
        ]),
      );
      model.dispose();
      opt.dispose();
    });
  });

  it('records every epoch, raises lambda with targetLambda until the target, and stops training there', async () => {
    const model = mlp(41);
    const opt = new ProximalSGD({
      learningRate: 0.05,
      momentum: 0.9,
      lambda: targetLambda({ initial: 1e-3, targetCompression: 0.3, factor: 3 }),
      magnitudes: magnitudes(model),
    });
    model.compile({ optimizer: opt, loss: 'meanSquaredError' });
    const cb = new SparsityCallback({ stopAtCompression: 0.3 });
    await model.fit(xs, ys, { epochs: 40, batchSize: 32, shuffle: false, verbose: 0, callbacks: [cb] });
    const h = cb.history;
    expect(h.length).toBeGreaterThan(1);
    expect(h.length).toBeLessThan(40);
    expect(h[h.length - 1].compression).toBeGreaterThanOrEqual(0.3);
    h.slice(0, -1).forEach((r) => expect(r.compression).toBeLessThan(0.3));
    // Each epoch trained with lambda = 1e-3 * 3^epoch, which made its compression: lambda grew by
    // the factor after every epoch below the target (nextLambda), and held once it was reached.
    h.forEach((r, i) => expect(r.lambda).toBeCloseTo(1e-3 * 3 ** i, 10));
    for (const r of h.slice(0, -1)) expect(r.nextLambda! / r.lambda!).toBeCloseTo(3, 6);
    expect(h[h.length - 1].nextLambda).toBe(h[h.length - 1].lambda);
    for (let i = 1; i < h.length; i++) expect(h[i].lambda).toBe(h[i - 1].nextLambda);
    expect(opt.lambda).toBe(h[h.length - 1].nextLambda);
    expect(Object.keys(h[0].liveGroups)).toEqual(model.layers.map((l) => l.name));
    model.dispose();
    opt.dispose();
  });

  it('counts epochs across model.fit calls: a loop of one-epoch fits drives the schedule as one fit does', async () => {
    const run = async (loop: boolean) => {
      const model = mlp(43);
      const opt = new ProximalSGD({
        learningRate: 0.05,
        lambda: targetLambda({ initial: 1e-3, targetCompression: 0.99, factor: 2 }),
        magnitudes: magnitudes(model),
      });
      model.compile({ optimizer: opt, loss: 'meanSquaredError' });
      const cb = new SparsityCallback();
      const fit = { batchSize: 32, shuffle: false, verbose: 0 as const, callbacks: [cb] };
      if (loop) for (let e = 0; e < 4; e++) await model.fit(xs, ys, { ...fit, epochs: 1 });
      else await model.fit(xs, ys, { ...fit, epochs: 4 });
      const h = cb.history.map((r) => ({ epoch: r.epoch, lambda: r.lambda, compression: r.compression }));
      model.dispose();
      opt.dispose();
      return h;
    };
    const once = await run(false);
    expect(once.map((r) => r.epoch)).toEqual([0, 1, 2, 3]);
    expect(once.map((r) => r.lambda)).toEqual([1e-3, 2e-3, 4e-3, 8e-3].map((v) => expect.closeTo(v, 12)));
    expect(await run(true)).toEqual(once);
  });

  it('one callback over fits of a model recompiled with another optimiser, and of another model, follows what each fit trains', async () => {
    const step = () => stepLambda({ initial: 0.1, factor: 2, every: 1 });
    const fit = { batchSize: 64, shuffle: false, verbose: 0 as const };
    const model = mlp(61);
    const first = new ProximalSGD({ learningRate: 0.01, lambda: step(), magnitudes: model });
    model.compile({ optimizer: first, loss: 'meanSquaredError' });
    const cb = new SparsityCallback();
    await model.fit(xs, ys, { ...fit, epochs: 2, callbacks: [cb] });
    expect(first.lambda).toBeCloseTo(0.4, 12);
    // A second phase with Adam: the callback reports to the optimiser the model has now.
    const second = new ProximalAdam({ learningRate: 1e-3, lambda: step(), magnitudes: model });
    model.compile({ optimizer: second, loss: 'meanSquaredError' });
    await model.fit(xs, ys, { ...fit, epochs: 2, callbacks: [cb] });
    expect(second.epochsCompleted).toBe(4);
    expect(second.lambda).toBeCloseTo(1.6, 12);
    expect(first.epochsCompleted).toBe(2);
    expect(first.lambda).toBeCloseTo(0.4, 12);
    expect(cb.history.map((r) => r.epoch)).toEqual([0, 1, 2, 3]);
    expect(cb.history.map((r) => r.lambda)).toEqual([0.1, 0.2, 0.4, 0.8].map((v) => expect.closeTo(v, 12)));
    // Recompiled with a plain optimiser: nothing proximal to report to, no lambda recorded.
    const plain = tf.train.sgd(0.01);
    model.compile({ optimizer: plain, loss: 'meanSquaredError' });
    await model.fit(xs, ys, { ...fit, epochs: 1, callbacks: [cb] });
    expect(second.epochsCompleted).toBe(4);
    expect(cb.history[4].lambda).toBeUndefined();
    // Another model (of other layer sizes) trained on with the same callback is the one measured.
    const other = tfl.sequential({
      layers: [
        decomposedDense({ inputShape: [12], units: 5, name: 'wide', activation: 'relu' }),
        decomposedDense({ units: 2, name: 'head' }),
      ],
    });
    const third = new ProximalSGD({ learningRate: 0.01, lambda: step(), magnitudes: other });
    other.compile({ optimizer: third, loss: 'meanSquaredError' });
    await other.fit(xs, ys, { ...fit, epochs: 1, callbacks: [cb] });
    expect(cb.history[5].totalGroups).toEqual({ wide: 5, head: 2 });
    expect(cb.history[5].epoch).toBe(5);
    expect(third.epochsCompleted).toBe(6);
    for (const m of [model, other]) m.dispose();
    for (const o of [first, second, plain, third]) o.dispose();
  });

  it('SparsityCallback takes magnitudes as a model too, and refuses an optimizer that is not proximal before training', async () => {
    const fit = { epochs: 2, batchSize: 16, shuffle: false, verbose: 0 as const };
    const history = async (options: (model: tfl.LayersModel) => SparsityCallbackOptions) => {
      const model = mlp(71);
      const opt = new ProximalSGD({ learningRate: 0.05, lambda: 2, magnitudes: model });
      model.compile({ optimizer: opt, loss: 'meanSquaredError' });
      const cb = new SparsityCallback(options(model));
      await model.fit(xs, ys, { ...fit, callbacks: [cb] });
      model.dispose();
      opt.dispose();
      // Layer names differ between the models built: compare the counts.
      return cb.history.map((r) => ({
        ...r,
        liveGroups: Object.values(r.liveGroups),
        totalGroups: Object.values(r.totalGroups),
      }));
    };
    const byDefault = await history(() => ({}));
    expect(byDefault.map((r) => r.epoch)).toEqual([0, 1]);
    expect(byDefault[1].compression).toBeGreaterThan(0);
    expect(await history((m) => ({ magnitudes: m }))).toEqual(byDefault);
    expect(await history((m) => ({ magnitudes: magnitudes(m) }))).toEqual(byDefault);
    const plain = tf.train.sgd(0.1);
    expect(() => new SparsityCallback({ optimizer: plain as never })).toThrow(
      /^SparsityCallback: optimizer must be a ProximalSGD or ProximalAdam \(it reports epochs to its lambda schedule\), got /,
    );
    expect(() => new SparsityCallback({ magnitudes: 3 as never })).toThrow(
      /^SparsityCallback: magnitudes: expected a LayersModel or a list of magnitudes/,
    );
    plain.dispose();
  });

  describe('an epoch-based schedule goes on where training stopped', () => {
    // stepLambda doubles lambda every epoch: after 3 epochs it is 0.1 * 2^3 = 0.8.
    const step = () => stepLambda({ initial: 0.1, factor: 2, every: 1 });
    const fit = { batchSize: 64, shuffle: false, verbose: 0 as const };
    /** The lambda each step of a fit used. */
    const lambdas = (opt: () => { lambda: number }) => {
      const seen: number[] = [];
      const cb = new tfl.CustomCallback({ onBatchBegin: () => void seen.push(opt().lambda) });
      return { cb, seen };
    };

    it('with a new callback for each fit call on the same optimiser', async () => {
      const model = mlp(51);
      const opt = new ProximalSGD({ learningRate: 0.01, lambda: step(), magnitudes: model });
      model.compile({ optimizer: opt, loss: 'meanSquaredError' });
      await model.fit(xs, ys, { ...fit, epochs: 3, callbacks: [new SparsityCallback()] });
      expect(opt.lambda).toBeCloseTo(0.8, 12);
      expect(opt.epochsCompleted).toBe(3);
      const spy = lambdas(() => opt);
      const next = new SparsityCallback();
      await model.fit(xs, ys, { ...fit, epochs: 1, callbacks: [spy.cb, next] });
      expect(spy.seen).toEqual([0.8, 0.8].map((v) => expect.closeTo(v, 12)));
      expect(next.history.map((r) => r.epoch)).toEqual([3]);
      expect(opt.lambda).toBeCloseTo(1.6, 12);
      model.dispose();
      opt.dispose();
    });

    it('after a save and load with includeOptimizer, resumed with initialEpoch', async () => {
      const model = mlp(52);
      const opt = new ProximalSGD({ learningRate: 0.01, lambda: step(), magnitudes: model });
      model.compile({ optimizer: opt, loss: 'meanSquaredError' });
      await model.fit(xs, ys, { ...fit, epochs: 3, callbacks: [new SparsityCallback()] });
      // The config carries the epoch: fromConfig gives lambda 0.8, not the schedule's start.
      const copy = ProximalSGD.fromConfig(ProximalSGD, opt.getConfig()) as ProximalSGD;
      expect([copy.lambda, copy.epochsCompleted]).toEqual([expect.closeTo(0.8, 12), 3]);
      copy.dispose();
      const saved = await saveInMemory(model, { includeOptimizer: true });
      const loaded = await tfl.loadLayersModel(tf.io.fromMemory(saved));
      const restored = loaded.optimizer as ProximalSGD;
      expect(restored).toBeInstanceOf(ProximalSGD);
      expect(restored.lambda).toBeCloseTo(0.8, 12);
      restored.attach(loaded);
      const spy = lambdas(() => restored);
      await loaded.fit(xs, ys, {
        ...fit,
        epochs: 4,
        initialEpoch: 3,
        callbacks: [spy.cb, new SparsityCallback()],
      });
      expect(spy.seen).toEqual([0.8, 0.8].map((v) => expect.closeTo(v, 12)));
      expect(restored.lambda).toBeCloseTo(1.6, 12);
      // A fresh optimiser started with initialEpoch 3 also begins at epoch 3's lambda.
      const fresh = mlp(53);
      const freshOpt = new ProximalSGD({ learningRate: 0.01, lambda: step(), magnitudes: fresh });
      fresh.compile({ optimizer: freshOpt, loss: 'meanSquaredError' });
      const freshSpy = lambdas(() => freshOpt);
      await fresh.fit(xs, ys, {
        ...fit,
        epochs: 4,
        initialEpoch: 3,
        callbacks: [freshSpy.cb, new SparsityCallback()],
      });
      expect(freshSpy.seen).toEqual([0.8, 0.8].map((v) => expect.closeTo(v, 12)));
      for (const m of [model, loaded, fresh]) m.dispose();
      for (const o of [opt, restored, freshOpt]) o.dispose();
    });

    it('targetLambda keeps raising lambda after a reload, from the epoch it reached', async () => {
      const model = mlp(54);
      const opt = new ProximalSGD({
        learningRate: 0.01,
        lambda: targetLambda({ initial: 1e-4, targetCompression: 0.99, factor: 2 }),
        magnitudes: model,
      });
      model.compile({ optimizer: opt, loss: 'meanSquaredError' });
      await model.fit(xs, ys, { ...fit, epochs: 4, callbacks: [new SparsityCallback()] });
      expect(opt.lambda).toBeCloseTo(1.6e-3, 12);
      const copy = ProximalSGD.fromConfig(ProximalSGD, opt.getConfig()) as ProximalSGD;
      copy.attach(model);
      model.compile({ optimizer: copy, loss: 'meanSquaredError' });
      const cb = new SparsityCallback();
      await model.fit(xs, ys, { ...fit, epochs: 2, callbacks: [cb] });
      expect(cb.history.map((r) => r.epoch)).toEqual([4, 5]);
      // It trained on at the 1.6e-3 it had reached, then 3.2e-3.
      expect(cb.history.map((r) => r.lambda)).toEqual([1.6e-3, 3.2e-3].map((v) => expect.closeTo(v, 12)));
      expect(cb.history.map((r) => r.nextLambda)).toEqual([3.2e-3, 6.4e-3].map((v) => expect.closeTo(v, 12)));
      model.dispose();
      opt.dispose();
      copy.dispose();
    });

    it('refuses a progress that is not epochs completed and a compression in [0, 1]', () => {
      const make = (progress: unknown) =>
        new ProximalSGD({ learningRate: 0.1, lambda: step(), magnitudes: [], progress: progress as never });
      expect(make({ epoch: 2 }).lambda).toBeCloseTo(0.4, 12);
      expect(() => make({ epoch: 1.5 })).toThrow(
        /progress\.epoch must be a whole number >= 0 \(epochs completed\), got 1\.5/,
      );
      expect(() => make({ epoch: -1 })).toThrow(/progress\.epoch/);
      expect(() => make({ compression: 2 })).toThrow(/progress\.compression must lie in \[0, 1\], got 2/);
      expect(() => make(3)).toThrow(/progress must be \{ epoch\?, compression\? \}/);
    });
  });

  it('rejects a stopAtCompression outside [0, 1]', () => {
    expect(() => new SparsityCallback({ stopAtCompression: 90 })).toThrow(
      /stopAtCompression must lie in \[0, 1\] \(a fraction: 0.9 for 90%\), got 90/,
    );
  });

  it('instanceof is a real prototype check', () => {
    const plain = tf.train.sgd(0.1);
    expect(plain instanceof ProximalSGD).toBe(false);
    const opt = new ProximalAdam({ learningRate: 0.1, lambda: 0, magnitudes: [] });
    expect(opt instanceof ProximalSGD).toBe(false);
    expect(opt instanceof ProximalAdam).toBe(true);
    expect(opt instanceof tf.Optimizer).toBe(true);
    plain.dispose();
    opt.dispose();
  });
});

describe('keepLargestFilters', () => {
  function convNet(inChannels: number, filters: number, seed: number): tfl.Sequential {
    return tfl.sequential({
      layers: [
        decomposedConv2d({
          inputShape: [6, 6, inChannels],
          filters,
          kernelSize: 3,
          granularity: 'kernel',
          name: 'c1',
          kernelInitializer: tfl.initializers.glorotUniform({ seed }),
        }),
        decomposedConv2d({ filters: 2, kernelSize: 3, granularity: 'filter', name: 'c2' }),
        tfl.layers.flatten(),
        decomposedDense({ units: 2, name: 'd1' }),
      ],
    });
  }

  it.each([
    [3, 5, 2],
    [1, 4, 1],
    [4, 6, 4],
  ])(
    '%i input channels, %i filters: keeps the %i filters of largest norm whole, and kernels are then chosen inside them',
    async (cin, cout, k) => {
      const model = convNet(cin, cout, 7 + cin);
      const info = magnitudes(model)[0];
      const before = info.magnitude.arraySync() as number[][];
      // The filters' weight norms, from the plain kernel: a freshly decomposed layer's magnitudes give them.
      const kernel = effectiveKernel(info.layer);
      const norms = tf.tidy(() => tf.sqrt(tf.sum(tf.square(kernel), [0, 1, 2])));
      const filterNorms = Array.from(norms.dataSync());
      tf.dispose([kernel, norms]);
      const expected = filterNorms
        .map((n, o) => [n, o])
        .sort((a, b) => b[0] - a[0] || a[1] - b[1])
        .slice(0, k)
        .map(([, o]) => o)
        .sort((a, b) => a - b);
      const start = tf.memory().numTensors;
      keepLargestFilters(model, { c1: k });
      expect(tf.memory().numTensors).toBe(start);
      const after = info.magnitude.arraySync() as number[][];
      const live = [...Array(cout).keys()].filter((o) => after.some((row) => row[o] !== 0));
      expect(live).toEqual(expected);
      for (let i = 0; i < cin; i++)
        for (let o = 0; o < cout; o++) expect(after[i][o]).toBe(live.includes(o) ? before[i][o] : 0);
      // Kernels chosen afterwards come from the kept filters only.
      const kernels = Math.max(1, k * cin - 1);
      keepLargestGroups(model, { c1: kernels });
      const last = info.magnitude.arraySync() as number[][];
      const liveKernels = last.flatMap((row) => row.map((v, o) => [v, o])).filter(([v]) => v !== 0);
      expect(liveKernels.length).toBe(kernels);
      for (const [, o] of liveKernels) expect(live).toContain(o);
      // Other layers are untouched.
      expect((await measureSparsity(model)).liveGroups).toMatchObject({ c2: 2, d1: 2 });
      model.dispose();
    },
  );

  it('keeps a dead filter dead, and refuses what is not a kernel-granularity Conv2D, changing nothing', () => {
    const model = convNet(2, 4, 3);
    const [c1] = magnitudes(model);
    c1.magnitude.assign(
      tf.tensor2d([
        [1, 0, 3, 0],
        [1, 0, 0, 0],
      ]),
    );
    keepLargestFilters(model, { c1: 3 }); // only two filters have kernels left
    expect(c1.magnitude.arraySync()).toEqual([
      [1, 0, 3, 0],
      [1, 0, 0, 0],
    ]);
    // Equal norms: the earlier filter is kept.
    c1.magnitude.assign(
      tf.tensor2d([
        [2, 0, 0, 2],
        [0, 0, 0, 0],
      ]),
    );
    keepLargestFilters(model, { c1: 1 });
    expect(c1.magnitude.arraySync()).toEqual([
      [2, 0, 0, 0],
      [0, 0, 0, 0],
    ]);
    const before = c1.magnitude.arraySync();
    expect(() => keepLargestFilters(model, { c1: 1, c2: 1 })).toThrow(
      /keepLargestFilters: c2: expected a Conv1D, Conv2D, Conv2DTranspose or DepthwiseConv2D layer of granularity 'kernel', got granularity 'filter' \(its groups are its filters: use keepLargestGroups\)/,
    );
    expect(() => keepLargestFilters(model, { d1: 1 })).toThrow(/d1: .*got granularity 'output'/);
    expect(() => keepLargestFilters(model, { nope: 1 })).toThrow(
      /keepLargestFilters: no decomposed layer named 'nope'; decomposed layers: c1, c2, d1/,
    );
    expect(() => keepLargestFilters(model, { c1: 1.5 })).toThrow(/c1: k must be an integer >= 0, got 1\.5/);
    expect(() => keepLargestFilters(model, 'c1' as never)).toThrow(
      /keep must be an object of layer name -> k/,
    );
    expect(() => keepLargestFilters(model, { d1: 1 })).toThrow(TypeError);
    expect(() => keepLargestFilters(model, { nope: 1 })).toThrow(RangeError);
    expect(() => keepLargestFilters(model, { c1: 1.5 })).toThrow(RangeError);
    expect(() => keepLargestFilters(model, 'c1' as never)).toThrow(TypeError);
    expect(c1.magnitude.arraySync()).toEqual(before);
    c1.magnitude.assign(
      tf.tensor2d([
        [2, NaN, 0, 2],
        [0, 0, 0, 0],
      ]),
    );
    expect(() => keepLargestFilters(model, { c1: 1 })).toThrow(/layer 'c1' has 1 NaN magnitude/);
    expect(() => keepLargestFilters(model, { c1: 1 })).toThrow(
      expect.objectContaining({ constructor: Error, message: expect.stringMatching(/NaN magnitude/) }),
    );
    expect(c1.magnitude.arraySync()).toEqual([
      [2, NaN, 0, 2],
      [0, 0, 0, 0],
    ]);
    model.dispose();
  });
});
