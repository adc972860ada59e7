// The wasm backend takes a different path for the group norms (an average pool
// instead of a transposing sum): check the renormalisation there too.
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import * as tfl from '@tensorflow/tfjs-layers';
import { decomposedConv2d, decomposedDense, effectiveKernel, magnitudes } from '@normprune/layers';
import { ProximalAdam, ProximalSGD, SparsityCallback } from '../src/index.js';
import { groupSumSquares } from '../src/operators.js';
import { maxDiff, wasmMemory } from '../../../tools/testing/leaks.js';

beforeAll(async () => {
  setWasmPaths(
    path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + path.sep,
  );
  expect(await tf.setBackend('wasm')).toBe(true);
});

const seeded = (seed: number) => tfl.initializers.glorotUniform({ seed });

describe('on the wasm backend', () => {
  it.each([
    ['ProximalSGD', ProximalSGD],
    ['ProximalAdam', ProximalAdam],
  ] as const)(
    '%s: an infinite gradient makes the group NaN, not 0 (Adam gave 0 for both signs here)',
    (_, Opt) => {
      const model = tfl.sequential({
        layers: [decomposedDense({ inputShape: [3], units: 3, kernelInitializer: seeded(7) })],
      });
      const opt = new Opt({ learningRate: 0.1, lambda: 1e-4, magnitudes: model });
      const [m] = magnitudes(model);
      const g = tf.tensor([Infinity, -Infinity, 0.5]);
      opt.applyGradients({ [m.magnitude.name]: g });
      g.dispose();
      const after = Array.from(m.magnitude.dataSync());
      expect([
        Number.isNaN(after[0]),
        Number.isNaN(after[1]),
        Number.isFinite(after[2]) && after[2] > 0,
      ]).toEqual([true, true, true]);
      opt.dispose();
      model.dispose();
    },
  );

  it('groupSumSquares picks the pool for leading axes and agrees with tf.sum', async () => {
    const x = tf.randomNormal([30, 7], 0, 1, 'float32', 2);
    const profile = await tf.profile(() => groupSumSquares(x, [0]));
    expect(profile.kernelNames).toContain('AvgPool');
    expect(profile.kernelNames).not.toContain('Sum');
    tf.dispose(profile.result as tf.Tensor);
    const auto = groupSumSquares(x, [0]);
    const sum = groupSumSquares(x, [0], 'sum');
    expect(auto.shape).toEqual([1, 7]);
    const r = sum.dataSync();
    auto.dataSync().forEach((v, i) => expect(Math.abs(v - r[i]) / r[i]).toBeLessThan(1e-5));
    tf.dispose([x, auto, sum]);
  });

  it.each([
    [[3, 3, 128, 128], [0, 1], 'Sum'],
    [[3, 3, 90, 90], [0, 1], 'AvgPool'],
    [[16400, 3], [0], 'AvgPool'],
    [[2, 16400], [0], 'Sum'],
  ])('groupSumSquares of %j over %j: %s, without the pool past 8,192 groups', async (shape, axes, kernel) => {
    // Upstream's AvgPool with a window of 8 or more runs off the 64 KB wasm stack past about 16,000 channels.
    const x = tf.randomNormal(shape as number[], 0, 1, 'float32', 5);
    const profile = await tf.profile(() => groupSumSquares(x, axes as number[]));
    expect(profile.kernelNames).toContain(kernel);
    const auto = profile.result as tf.Tensor;
    const ref = tf.tidy(() => tf.sum(tf.square(x), axes as number[], true));
    expect(auto.shape).toEqual(ref.shape);
    const r = ref.dataSync();
    auto.dataSync().forEach((v, i) => expect(Math.abs(v - r[i]) / r[i]).toBeLessThan(1e-5));
    tf.dispose([x, auto, ref]);
  });

  it.each([
    ['dense output', () => decomposedDense({ inputShape: [9], units: 6 })],
    [
      'conv filter',
      () => decomposedConv2d({ inputShape: [5, 5, 3], filters: 4, kernelSize: 3, granularity: 'filter' }),
    ],
    // 16,384 groups of 9: upstream wasm's AvgPool ran off the wasm stack past about 16,000 channels.
    [
      'conv kernel, 128 x 128',
      () => decomposedConv2d({ inputShape: [4, 4, 128], filters: 128, kernelSize: 3, granularity: 'kernel' }),
    ],
  ])('%s: directions rescaled to unit norm, effective kernel unchanged', (_n, make) => {
    const model = tfl.sequential({ layers: [make()] });
    const [info] = magnitudes(model);
    tf.tidy(() => {
      const scale = tf.randomUniform(info.magnitude.shape, 0.2, 4, 'float32', 6);
      const bshape = info.direction.shape.map((d, a) => (info.normAxes.includes(a) ? 1 : d));
      info.direction.assign(tf.mul(info.direction, tf.reshape(scale, bshape)));
    });
    const before = effectiveKernel(info.layer);
    const opt = new ProximalSGD({ learningRate: 0.1, lambda: 0, magnitudes: [info] });
    const grads = tf.tidy(() =>
      [info.magnitude, info.direction].map((v) => ({ name: v.name, tensor: tf.zerosLike(v) })),
    );
    opt.applyGradients(grads);
    tf.dispose(grads.map((g) => g.tensor));
    const after = effectiveKernel(info.layer);
    expect(maxDiff(before.dataSync(), after.dataSync()).abs).toBeLessThan(1e-6);
    const norms = tf.tidy(() =>
      Array.from(tf.sqrt(tf.sum(tf.square(info.direction), info.normAxes)).dataSync()),
    );
    norms.forEach((n) => expect(Math.abs(n - 1)).toBeLessThan(1e-5));
    tf.dispose([before, after]);
    opt.dispose();
    model.dispose();
  });

  it.each([
    ['sgd', () => new ProximalSGD({ learningRate: 0.1, lambda: 0, magnitudes: [] }), () => tf.train.sgd(0.1)],
    [
      'momentum',
      () => new ProximalSGD({ learningRate: 0.05, momentum: 0.9, lambda: 0, magnitudes: [] }),
      () => tf.train.momentum(0.05, 0.9),
    ],
    [
      'nesterov',
      () => new ProximalSGD({ learningRate: 0.05, momentum: 0.5, nesterov: true, lambda: 0, magnitudes: [] }),
      () => tf.train.momentum(0.05, 0.5, true),
    ],
    [
      'adam',
      () => new ProximalAdam({ learningRate: 0.01, lambda: 0, magnitudes: [] }),
      () => tf.train.adam(0.01),
    ],
  ] as [string, () => tf.Optimizer, () => tf.Optimizer][])(
    '%s at lambda 0 updates variables of several shapes exactly as the tfjs optimiser',
    (_name, ours, theirs) => {
      const shapes = [[7], [4, 5], [3, 3, 2, 4]];
      const init = (seed: number) =>
        shapes.map((s, i) => tf.variable(tf.randomNormal(s, 0, 1, 'float32', seed + i)));
      const [a, b] = [init(1), init(1)];
      const [oa, ob] = [ours(), theirs()];
      for (let step = 0; step < 20; step++) {
        const g = shapes.map((s, i) => tf.randomNormal(s, 0, 1, 'float32', 100 * step + i + 1));
        oa.applyGradients(a.map((v, i) => ({ name: v.name, tensor: g[i] })));
        ob.applyGradients(Object.fromEntries(b.map((v, i) => [v.name, g[i]])));
        tf.dispose(g);
      }
      a.forEach((v, i) => expect(maxDiff(v.dataSync(), b[i].dataSync()).abs).toBe(0));
      tf.dispose([...a, ...b]);
      oa.dispose();
      ob.dispose();
    },
  );

  it('model.fit with validation and SparsityCallback: exact zeros, unit directions, flat tensor count', async () => {
    // (Dense only: upstream wasm has no Conv2D gradient; @normprune/runtime registers one)
    const model = tfl.sequential({
      layers: [
        decomposedDense({
          inputShape: [10],
          units: 12,
          activation: 'relu',
          name: 'h',
          kernelInitializer: seeded(1),
        }),
        decomposedDense({
          units: 8,
          activation: 'relu',
          name: 'h2',
          granularity: 'input',
          kernelInitializer: seeded(2),
        }),
        decomposedDense({ units: 2, name: 'out', kernelInitializer: seeded(3) }),
      ],
    });
    const xs = tf.randomNormal([48, 10], 0, 1, 'float32', 3);
    const ys = tf.randomNormal([48, 2], 0, 1, 'float32', 4);
    const opt = new ProximalAdam({ learningRate: 0.01, lambda: 0.5, magnitudes: model });
    model.compile({ optimizer: opt, loss: 'meanSquaredError' });
    const counts: number[] = [];
    const sparsity = new SparsityCallback();
    await model.fit(xs, ys, {
      epochs: 4,
      batchSize: 12,
      validationSplit: 0.25,
      verbose: 0,
      callbacks: [
        sparsity,
        new tfl.CustomCallback({
          onEpochEnd: async () => {
            counts.push(tf.memory().numTensors);
          },
        }),
      ],
    });
    expect(sparsity.history.at(-1)!.compression).toBeGreaterThan(0);
    const all = magnitudes(model).flatMap((m) => Array.from(m.magnitude.dataSync()));
    expect(Math.min(...all)).toBe(0);
    for (const m of magnitudes(model)) {
      const norms = tf.tidy(() => Array.from(tf.sqrt(tf.sum(tf.square(m.direction), m.normAxes)).dataSync()));
      norms.forEach((n) => expect(Math.abs(n - 1)).toBeLessThan(1e-5));
    }
    expect(new Set(counts.slice(1)).size).toBe(1);
    tf.dispose([xs, ys]);
    model.dispose();
    opt.dispose();
  });

  it.each([
    ['trainOnBatch', 'sgd'],
    ['trainOnBatch', 'adam'],
    ['minimize', 'sgd'],
    ['minimize', 'adam'],
  ] as const)(
    '%s with proximal %s: after warm-up, steps add no wasm buffers and do not grow the heap',
    async (loop, kind) => {
      // Below tf.memory().numTensors: the backend's buffers, and the wasm heap
      // with upstream's XNNPACK caches (wasmMemory). The proximal step, the
      // renormalisation and the decomposed layers' kernels run every step.
      const model = tfl.sequential({
        layers: [
          decomposedDense({ inputShape: [10], units: 12, activation: 'relu', kernelInitializer: seeded(1) }),
          decomposedDense({ units: 8, granularity: 'input', kernelInitializer: seeded(2) }),
          decomposedDense({ units: 2, kernelInitializer: seeded(3) }),
        ],
      });
      const xs = tf.randomNormal([16, 10], 0, 1, 'float32', 3);
      const ys = tf.randomNormal([16, 2], 0, 1, 'float32', 4);
      const opt =
        kind === 'sgd'
          ? new ProximalSGD({ learningRate: 0.01, momentum: 0.9, lambda: 0.5, magnitudes: model })
          : new ProximalAdam({ learningRate: 0.01, lambda: 0.5, magnitudes: model });
      model.compile({ optimizer: opt, loss: 'meanSquaredError' });
      const step = async () => {
        if (loop === 'trainOnBatch') {
          await model.trainOnBatch(xs, ys);
          return;
        }
        const loss = () => tf.losses.meanSquaredError(ys, model.apply(xs) as tf.Tensor) as tf.Scalar;
        tf.dispose(opt.minimize(loss, true) ?? []);
      };
      wasmMemory(); // its first probe grows the heap
      for (let i = 0; i < 10; i++) await step();
      const before = { ...wasmMemory(), ...tf.memory() };
      for (let i = 0; i < 100; i++) await step();
      const after = { ...wasmMemory(), ...tf.memory() };
      expect(after.numTensors).toBe(before.numTensors);
      expect(after.numBytes).toBe(before.numBytes);
      expect(after.dataIds).toBe(before.dataIds);
      expect(after.heapBytes).toBe(before.heapBytes);
      // Measured 0; a few kilobytes of room for the allocator's placement.
      expect(after.mallocTop - before.mallocTop).toBeLessThanOrEqual(4096);
      tf.dispose([xs, ys]);
      model.dispose();
      opt.dispose();
    },
  );
});
