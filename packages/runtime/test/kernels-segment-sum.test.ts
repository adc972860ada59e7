// UnsortedSegmentSum on wasm (missing upstream: tf.gather's gradient, and so
// Embedding layers, failed with "Kernel 'UnsortedSegmentSum' not registered for
// backend 'wasm'"). Compared with the cpu backend's kernel: values bit for bit,
// shapes, dtypes and refusals, then tf.gather's gradient and an Embedding
// model trained with model.fit.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { registerWasmTrainingKernels } from '../src/kernels/index.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';
import { initWasm, int, relError, rng, values, wasmDataIds } from './kernels-helpers.js';

beforeAll(async () => {
  await initWasm();
  registerWasmTrainingKernels();
});

afterAll(async () => {
  await tf.setBackend('cpu');
});

/** The kernel itself (tf.unsortedSegmentSum types its ids as 1-D and asserts an integer count). */
const uss = (x: tf.Tensor, segmentIds: tf.Tensor, numSegments: number) =>
  tf.engine().runKernel('UnsortedSegmentSum', { x, segmentIds }, { numSegments }) as tf.Tensor;

interface Outcome {
  shape?: number[];
  dtype?: string;
  values?: number[];
  error?: string;
}

async function outcome(backend: 'cpu' | 'wasm', fn: () => tf.Tensor): Promise<Outcome> {
  await tf.setBackend(backend);
  try {
    return tf.tidy(() => {
      const t = fn();
      return { shape: t.shape, dtype: t.dtype, values: Array.from(t.dataSync()) };
    });
  } catch (e) {
    return { error: (e as Error).message };
  }
}

/** Runs `fn` on cpu, then on wasm with the tensor count and wasm buffers checked flat. */
async function both(fn: () => tf.Tensor): Promise<[Outcome, Outcome]> {
  const cpu = await outcome('cpu', fn);
  await tf.setBackend('wasm');
  const ids = wasmDataIds();
  const wasm = await expectNoLeak(() => outcome('wasm', fn));
  expect(wasmDataIds()).toBe(ids);
  return [cpu, wasm];
}

describe('UnsortedSegmentSum matches the cpu kernel', () => {
  const r = rng(17);
  // Drawn here, once: the cases run on each backend.
  const draw = (n: number, lo: number, hi: number) => Array.from({ length: n }, () => int(r, lo, hi));
  const random = {
    x3: values(r, 40 * 3 * 4),
    ids3: draw(40, -2, 12),
    x4: values(r, 9 * 2 * 3 * 5),
    ids4: draw(9, 0, 3),
    x2: values(r, 7 * 6),
    ids2: draw(7, 0, 29),
    xInt: draw(50, -100, 100),
    idsInt: draw(10, 0, 4),
    xRank3: values(r, 12),
  };
  const ids = (v: number[]) => tf.tensor1d(v, 'int32');
  const cases: [string, () => tf.Tensor][] = [
    ['1-D', () => tf.unsortedSegmentSum(tf.tensor1d([1, 2, 3, 4]), tf.tensor1d([1, 2, 0, 1], 'int32'), 3)],
    [
      'negative and out-of-range ids add nothing',
      () => tf.unsortedSegmentSum(tf.tensor1d([1, 2, 3, 4]), tf.tensor1d([-1, 5, 0, 3], 'int32'), 3),
    ],
    [
      'int32 x: float32 output, each value rounded to float32 first',
      () =>
        tf.unsortedSegmentSum(
          tf.tensor1d([1, 2, 3, 16777217], 'int32'),
          tf.tensor1d([1, 2, 0, 1], 'int32'),
          3,
        ),
    ],
    ['bool x', () => uss(tf.tensor1d([1, 0, 1, 1], 'bool'), tf.tensor1d([1, 2, 0, 1], 'int32'), 3)],
    ['float32 ids: 0.5 matches nothing', () => uss(tf.tensor1d([1, 2, 3]), tf.tensor1d([0.5, 1, 1]), 2)],
    ['bool ids', () => uss(tf.tensor1d([1, 2, 3]), tf.tensor1d([1, 0, 1], 'bool'), 2)],
    [
      'a fractional numSegments counts up',
      () => uss(tf.tensor1d([1, 2, 3]), tf.tensor1d([1, 0, 2], 'int32'), 2.5),
    ],
    [
      '2-D',
      () =>
        tf.unsortedSegmentSum(tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]), tf.tensor1d([1, 1, 0], 'int32'), 2),
    ],
    ['3-D, random', () => tf.unsortedSegmentSum(tf.tensor(random.x3, [40, 3, 4]), ids(random.ids3), 10)],
    ['4-D, random', () => tf.unsortedSegmentSum(tf.tensor(random.x4, [9, 2, 3, 5]), ids(random.ids4), 4)],
    [
      '2-D, random, more segments than rows',
      () => tf.unsortedSegmentSum(tf.tensor(random.x2, [7, 6]), ids(random.ids2), 30),
    ],
    [
      '2-D int32, random',
      () => tf.unsortedSegmentSum(tf.tensor(random.xInt, [10, 5], 'int32'), ids(random.idsInt), 5),
    ],
    [
      'one id for every row (ids [1])',
      () => tf.unsortedSegmentSum(tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]), tf.tensor1d([1], 'int32'), 2),
    ],
    [
      'one row for every id (x [1, 2])',
      () => tf.unsortedSegmentSum(tf.tensor2d([1, 2], [1, 2]), tf.tensor1d([1, 0, 1], 'int32'), 2),
    ],
    [
      'ids of rank 2, x of rank 1',
      () => uss(tf.tensor1d([1, 2]), tf.tensor2d([1, 0, 1, 1], [2, 2], 'int32'), 2),
    ],
    [
      'ids of rank 2, x of rank 3',
      () => uss(tf.tensor(random.xRank3, [2, 2, 3]), tf.tensor2d([0, 1, 1, 1, 0, 0], [2, 3], 'int32'), 2),
    ],
    ['scalar x', () => tf.unsortedSegmentSum(tf.scalar(3), tf.tensor1d([1, 1, 0], 'int32'), 2)],
    ['scalar id', () => uss(tf.tensor1d([1, 2, 3]), tf.scalar(1, 'int32'), 2)],
    ['empty x [0, 2]', () => tf.unsortedSegmentSum(tf.zeros([0, 2]), tf.zeros([0], 'int32'), 3)],
    ['empty x [2, 0]', () => tf.unsortedSegmentSum(tf.zeros([2, 0]), tf.tensor1d([0, 1], 'int32'), 3)],
    ['-0 sums to 0', () => tf.unsortedSegmentSum(tf.tensor1d([-0, -0]), tf.tensor1d([0, 0], 'int32'), 1)],
    [
      'Infinity: NaN in the other segments of its column (0 * Infinity)',
      () => tf.unsortedSegmentSum(tf.tensor2d([1, Infinity, 3, 4], [2, 2]), tf.tensor1d([0, 1], 'int32'), 3),
    ],
    [
      'NaN with an out-of-range id',
      () => tf.unsortedSegmentSum(tf.tensor2d([1, NaN, 3, 4], [2, 2]), tf.tensor1d([0, 5], 'int32'), 2),
    ],
    [
      'Infinity and -Infinity in one segment',
      () =>
        tf.unsortedSegmentSum(
          tf.tensor2d([Infinity, 1, -Infinity, 2, 5, 6], [3, 2]),
          tf.tensor1d([1, 1, 0], 'int32'),
          2,
        ),
    ],
    // Refused on both (cpu fails inside its kernel).
    ['numSegments 0', () => tf.unsortedSegmentSum(tf.tensor1d([1, 2]), tf.tensor1d([0, 1], 'int32'), 0)],
    [
      'ids that do not broadcast with x',
      () => tf.unsortedSegmentSum(tf.ones([3, 2]), tf.tensor1d([0, 1], 'int32'), 2),
    ],
    ['a scalar x and a scalar id', () => uss(tf.scalar(3), tf.scalar(1, 'int32'), 2)],
  ];
  it.each(cases)('%s', async (_name, fn) => {
    const [cpu, wasm] = await both(fn);
    if (cpu.error !== undefined) {
      expect(wasm.error).toBeDefined();
      return;
    }
    expect(wasm).toEqual(cpu);
  });

  it('numSegments 0 gets an error that names it', async () => {
    const [, wasm] = await both(() =>
      tf.unsortedSegmentSum(tf.tensor1d([1, 2]), tf.tensor1d([0, 1], 'int32'), 0),
    );
    expect(wasm.error).toMatch(/numSegments of 1 or more, got 0/);
  });
});

describe("tf.gather's gradient", () => {
  const r = rng(29);
  const cases: { x: number[]; indices: number[]; indicesShape: number[]; axis: number }[] = [
    { x: [10, 3], indices: [1, 2, 3, 1, 1, 9, 0], indicesShape: [7], axis: 0 },
    { x: [6, 4, 5], indices: [5, 0, 0, 2, 3, 5], indicesShape: [2, 3], axis: 0 },
    { x: [3, 8, 2], indices: [7, 7, 1, 0], indicesShape: [4], axis: 1 },
    { x: [2, 3, 6], indices: [5, 4, 4, 0, 1, 2], indicesShape: [3, 2], axis: 2 },
    { x: [12], indices: [11, 0, 11], indicesShape: [3], axis: 0 },
  ];
  it.each(cases)(
    'of $x by indices $indicesShape along $axis matches cpu',
    async ({ x, indices, indicesShape, axis }) => {
      const xv = values(
        r,
        x.reduce((a, b) => a * b, 1),
      );
      const outShape = [...x.slice(0, axis), ...indicesShape, ...x.slice(axis + 1)];
      const dyv = values(
        r,
        outShape.reduce((a, b) => a * b, 1),
      );
      const fn = () => {
        const dy = tf.tensor(dyv, outShape);
        const i = tf.tensor(indices, indicesShape, 'int32');
        // The weighted sum makes the gradient dy itself, scattered into x's rows.
        return tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, i, axis), dy)))(tf.tensor(xv, x));
      };
      const [cpu, wasm] = await both(fn);
      expect(cpu.error).toBeUndefined();
      expect(wasm.shape).toEqual(cpu.shape);
      expect(relError(wasm.values!, cpu.values!)).toBeLessThan(1e-6);
    },
  );
});

describe('an Embedding model trains with model.fit', () => {
  const VOCAB = 12;
  const DIM = 4;
  const LEN = 5;

  async function train(backend: 'cpu' | 'wasm'): Promise<{ losses: number[]; weights: Float32Array[] }> {
    await tf.setBackend(backend);
    const r = rng(41);
    const before = tf.memory().numTensors;
    const model = tfl.sequential({
      layers: [
        tfl.layers.embedding({
          inputDim: VOCAB,
          outputDim: DIM,
          inputLength: LEN,
          embeddingsInitializer: tfl.initializers.randomUniform({ minval: -0.5, maxval: 0.5, seed: 3 }),
        }),
        tfl.layers.flatten(),
        tfl.layers.dense({ units: 1, kernelInitializer: tfl.initializers.glorotUniform({ seed: 4 }) }),
      ],
    });
    const optimizer = tf.train.sgd(0.2);
    model.compile({ optimizer, loss: 'meanSquaredError' });
    const n = 16;
    // Repeated tokens: several rows of the embedding gradient sum more than one dy.
    const xs = tf.tensor2d(
      Array.from({ length: n * LEN }, () => int(r, 0, VOCAB - 1)),
      [n, LEN],
      'int32',
    );
    const ys = tf.tensor2d(values(r, n), [n, 1]);
    const history = await model.fit(xs, ys, { epochs: 5, batchSize: 8, shuffle: false, verbose: 0 });
    const weights = model.getWeights().map((w) => w.dataSync() as Float32Array);
    tf.dispose([xs, ys]);
    model.dispose();
    optimizer.dispose();
    expect(tf.memory().numTensors).toBe(before);
    return { losses: history.history.loss as number[], weights };
  }

  it('on wasm as on cpu, within 1e-5', async () => {
    const cpu = await train('cpu');
    const wasm = await train('wasm');
    expect(wasm.losses).toHaveLength(5);
    wasm.losses.forEach((l, i) => expect(Math.abs(l - cpu.losses[i])).toBeLessThan(1e-5));
    // It learned something: the loss fell.
    expect(wasm.losses[4]).toBeLessThan(wasm.losses[0]);
    wasm.weights.forEach((w, i) => expect(relError(w, cpu.weights[i])).toBeLessThan(1e-5));
  });
});
