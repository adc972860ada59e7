// Wrong results a differential fuzz of the wasm backend against cpu found in
// upstream wasm kernels (tfjs-backend-wasm 4.22) and ours: fused matMuls with
// a batch and a bias, with a bias other than [N], with [M, 1] PReLU weights or
// an empty inner dimension; pools whose dimRoundingMode rounds the size up or
// whose windows lie wholly in the padding, and those pools' gradients; Cast
// to bool; pools, convolutions and tf.where with an empty output (upstream
// broke the heap: a sanity matMul follows each case); int32 PReLU weights;
// float32 Add, Sub, Mul, RealDiv and SquaredDifference at rank 7 and more;
// tf.gather of an x with no elements; tf.image.resizeNearestNeighbor of an
// int32 image; tf.matMul of int32 operands (refused upstream).
// Each is compared with cpu on several shapes, forward and
// gradients, and must leave no tensor and no wasm buffer behind.
import * as tf from '@tensorflow/tfjs-core';
// tfjs-layers registers the gradients (tfjs-core alone has none).
import '@tensorflow/tfjs-layers';
import { coalesceBroadcast, makeHighRankBinary } from '../src/kernels/binary.js';
import { registerWasmTrainingKernels } from '../src/kernels/index.js';
import { KernelFn } from '../src/kernels/util.js';
import { initWasm, rng, runOn, values, wasmDataIds } from './kernels-helpers.js';

// Error relative to the largest reference entry.
const TOL = 1e-5;

beforeAll(async () => {
  await initWasm();
  registerWasmTrainingKernels();
});

afterAll(async () => {
  await tf.setBackend('cpu');
});

/**
 * Fails unless `got` matches `ref`: NaN and +-Infinity in the same places,
 * the finite entries within TOL of the largest finite reference entry.
 */
function expectMatch(got: Float32Array[], ref: Float32Array[]): number {
  expect(got.length).toBe(ref.length);
  let worst = 0;
  got.forEach((g, k) => {
    const r = ref[k];
    expect(g.length).toBe(r.length);
    let d = 0;
    let m = 0;
    for (let i = 0; i < r.length; i++) {
      if (!Number.isFinite(r[i]) || !Number.isFinite(g[i])) {
        expect([i, g[i]]).toEqual([i, r[i]]);
        continue;
      }
      d = Math.max(d, Math.abs(g[i] - r[i]));
      m = Math.max(m, Math.abs(r[i]));
    }
    worst = Math.max(worst, m === 0 ? d : d / m);
  });
  expect(worst).toBeLessThan(TOL);
  return worst;
}

/**
 * Runs `fn` on cpu and on wasm and compares; then runs it on wasm three
 * more times, which must leave the tensor count and the wasm buffer count
 * where they were.
 */
async function expectAsCpu(op: () => tf.Tensor | tf.Tensor[]): Promise<void> {
  // The same inputs on every run.
  const fn = () => ((seed = 1), op());
  const ref = await runOn('cpu', fn);
  const got = await runOn('wasm', fn);
  expectMatch(got, ref);
  const [tensors, buffers] = [tf.memory().numTensors, wasmDataIds()];
  for (let i = 0; i < 3; i++) await runOn('wasm', fn);
  expect([tf.memory().numTensors, wasmDataIds()]).toEqual([tensors, buffers]);
}

let seed = 1;
/** A tensor of the shape with deterministic values in [-1, 1). */
function t(shape: number[]): tf.Tensor {
  const n = shape.reduce((p, q) => p * q, 1);
  return tf.tensor(values(rng(seed++), n), shape);
}

describe('tf.fused.matMul on wasm matches cpu', () => {
  type Act = 'linear' | 'relu' | 'relu6' | 'sigmoid' | 'elu' | 'leakyrelu' | 'prelu';
  interface MatMulCase {
    a: number[];
    b: number[];
    transposeA?: boolean;
    transposeB?: boolean;
    bias?: number[];
    activation?: Act;
    prelu?: number[];
  }
  const name = (c: MatMulCase) =>
    `a ${JSON.stringify(c.a)}${c.transposeA ? 'T' : ''} b ${JSON.stringify(c.b)}${c.transposeB ? 'T' : ''}` +
    ` bias ${c.bias ? JSON.stringify(c.bias) : 'none'} ${c.activation ?? 'linear'}` +
    (c.prelu ? ` weights ${JSON.stringify(c.prelu)}` : '');
  const forward = (c: MatMulCase) => () =>
    tf.fused.matMul({
      a: t(c.a),
      b: t(c.b),
      transposeA: c.transposeA,
      transposeB: c.transposeB,
      bias: c.bias ? t(c.bias) : undefined,
      activation: c.activation,
      preluActivationWeights: c.prelu ? t(c.prelu) : undefined,
    });

  // Upstream read an [N] bias as if it had the output matrix's shape when a batch was over 1.
  const batchBias: MatMulCase[] = [
    { a: [3, 2, 3], b: [3, 3, 4], bias: [4] },
    { a: [3, 2, 3], b: [3, 4], bias: [4] },
    { a: [1, 4, 3], b: [2, 3, 5], bias: [5], activation: 'relu' },
    { a: [2, 5, 7], b: [1, 7, 6], bias: [6], activation: 'sigmoid' },
    { a: [2, 3, 4, 5], b: [2, 3, 5, 6], bias: [6], activation: 'elu' },
    { a: [2, 3, 6], b: [2, 5, 3], transposeA: true, transposeB: true, bias: [5], activation: 'leakyrelu' },
    { a: [4, 9, 8], b: [8, 7], bias: [7], activation: 'relu6' },
    { a: [3, 2, 3], b: [3, 3, 4], bias: [4], activation: 'prelu', prelu: [4] },
  ];
  it.each(batchBias.map((c) => [name(c), c] as const))('a batch over 1 with a bias: %s', async (_n, c) => {
    await expectAsCpu(forward(c));
  });

  // Upstream refused a bias of rank 0, 2 or 3, and read N entries from a [1] bias.
  const biasShapes: MatMulCase[] = [
    { a: [3, 5], b: [5, 6], bias: [] },
    { a: [3, 5], b: [5, 6], bias: [1] },
    { a: [3, 5], b: [5, 6], bias: [1, 6], activation: 'relu' },
    { a: [3, 5], b: [5, 6], bias: [3, 1] },
    { a: [3, 5], b: [5, 6], bias: [3, 6], activation: 'elu' },
    { a: [2, 4, 3], b: [2, 3, 5], bias: [2, 1, 5] },
    { a: [7, 2], b: [3, 7], transposeA: true, transposeB: true, bias: [2, 3], activation: 'sigmoid' },
    { a: [1, 4, 3], b: [1, 3, 1], bias: [4, 1], activation: 'leakyrelu' },
  ];
  it.each(biasShapes.map((c) => [name(c), c] as const))('a bias that is not [N]: %s', async (_n, c) => {
    await expectAsCpu(forward(c));
  });

  // Upstream read PReLU weights as alpha[i % alpha.size].
  const preluWeights: MatMulCase[] = [
    { a: [5, 4], b: [4, 3], bias: [3], activation: 'prelu', prelu: [5, 1] },
    { a: [5, 4], b: [4, 3], activation: 'prelu', prelu: [5, 1] },
    { a: [2, 6, 4], b: [2, 4, 3], activation: 'prelu', prelu: [6, 1] },
    { a: [1, 6, 4], b: [1, 4, 3], bias: [1, 3], activation: 'prelu', prelu: [1, 6, 1] },
  ];
  it.each(preluWeights.map((c) => [name(c), c] as const))('[M, 1] PReLU weights: %s', async (_n, c) => {
    await expectAsCpu(forward(c));
  });

  // Upstream returned whatever its output buffer held.
  const emptyInner: MatMulCase[] = [
    { a: [3, 0], b: [0, 4], bias: [4] },
    { a: [3, 0], b: [0, 4], activation: 'relu' },
    { a: [2, 3, 0], b: [2, 0, 5], bias: [5], activation: 'sigmoid' },
  ];
  it.each(emptyInner.map((c) => [name(c), c] as const))('an empty inner dimension: %s', async (_n, c) => {
    // Leave garbage on the heap where the output may land.
    await tf.setBackend('wasm');
    tf.tidy(() => tf.fill([64, 64], 7.5).dataSync());
    await expectAsCpu(forward(c));
  });

  // What upstream already computed stays right (and on its fused kernel).
  const unchanged: MatMulCase[] = [
    { a: [4, 5], b: [5, 3], bias: [3], activation: 'relu' },
    { a: [1, 4, 5], b: [1, 5, 3], bias: [3], activation: 'prelu', prelu: [4, 3] },
    { a: [3, 4, 5], b: [3, 5, 2], activation: 'elu' },
  ];
  it.each(unchanged.map((c) => [name(c), c] as const))('what upstream computed: %s', async (_n, c) => {
    await expectAsCpu(forward(c));
  });

  // Under a tape tfjs-core keeps a 'linear' fused matMul fused; the others run unfused.
  const training: MatMulCase[] = [
    { a: [3, 2, 3], b: [3, 3, 4], bias: [4] },
    { a: [2, 5, 4], b: [2, 4, 3], bias: [1, 3] },
    { a: [4, 6], b: [6, 5], bias: [1] },
    { a: [4, 6], b: [6, 5], bias: [] },
    { a: [4, 6], b: [6, 5], bias: [4, 1] },
    { a: [3, 4, 6], b: [3, 5, 6], transposeB: true, bias: [5], activation: 'relu' },
  ];
  it.each(training.map((c) => [name(c), c] as const))('gradients: %s', async (_n, c) => {
    await expectAsCpu(() => {
      const inputs = [t(c.a), t(c.b), t(c.bias!)];
      const dy = t(
        c.a
          .slice(0, -2)
          .concat([
            c.transposeA ? c.a[c.a.length - 1] : c.a[c.a.length - 2],
            c.transposeB ? c.b[c.b.length - 2] : c.b[c.b.length - 1],
          ]),
      );
      let value: tf.Tensor | null = null;
      const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, bias: tf.Tensor) => {
        const y = tf.fused.matMul({
          a,
          b,
          bias,
          transposeA: c.transposeA,
          transposeB: c.transposeB,
          activation: c.activation,
        });
        value = tf.keep(y.clone());
        return y;
      })(inputs, dy);
      return [value!, ...grads];
    });
  });
});

describe('maxPool and avgPool with a dimRoundingMode that rounds the size up', () => {
  // Upstream wrote XNNPACK's floor-size image into tfjs's larger output.
  const cases: [number[], number | [number, number], number, number, 'ceil' | 'round'][] = [
    [[1, 6, 6, 2], 3, 2, 1, 'ceil'],
    [[2, 6, 6, 3], 3, 2, 1, 'round'],
    [[1, 7, 7, 1], 2, 2, 0, 'ceil'],
    [[2, 10, 10, 4], 4, 3, 1, 'round'],
    [[1, 8, 8, 2], 3, 2, 0, 'ceil'],
    // Rounded up past the input: the last windows lie wholly in the padding.
    [[1, 8, 8, 2], 3, 3, 1, 'ceil'],
  ];
  it.each(
    cases.flatMap(([shape, f, s, p, mode]) =>
      (['maxPool', 'avgPool'] as const).map((op) => [op, shape, f, s, p, mode] as const),
    ),
  )('%s of %j, filter %j, stride %j, pad %j, %s: values and gradient', async (op, shape, f, s, p, mode) => {
    // dy is all ones here, which cannot show a shifted dy: see the next describe.
    await expectAsCpu(() => {
      const pool = (x: tf.Tensor) => tf[op](x as tf.Tensor4D, f, s, p, mode);
      const x = t(shape);
      return [pool(x), tf.grad(pool)(x)];
    });
  });
});

describe('maxPool and avgPool gradients after a dimRoundingMode that rounds the size up', () => {
  // tfjs-core's gradients drop dimRoundingMode: the gradient kernels get the
  // floor geometry and a dy of the rounded shape, of which cpu reads the
  // leading part. Upstream AvgPoolGrad and our MaxPoolGrad read dy as a dense
  // floor-sized array, every row after the first shifted; a dy of ones (the
  // tests above) hides that, so dy here is random.
  type Pad = number | [[number, number], [number, number], [number, number], [number, number]];
  const explicit = (top: number, bottom: number, left: number, right: number): Pad => [
    [0, 0],
    [top, bottom],
    [left, right],
    [0, 0],
  ];
  const cases: [number[], number | [number, number], number | [number, number], Pad, 'ceil' | 'round'][] = [
    [[1, 6, 6, 2], 3, 2, 1, 'ceil'],
    [[2, 6, 6, 3], 3, 2, 1, 'round'],
    // 2x2, stride 2: our MaxPoolGrad's unrolled path.
    [[3, 7, 7, 3], 2, 2, 0, 'ceil'],
    [[2, 10, 10, 4], 4, 3, 1, 'round'],
    [[2, 6, 6, 1], 1, 3, 0, 'ceil'],
    // The last windows wholly in the padding (the forward pool runs in JS).
    [[2, 8, 8, 2], 3, 3, 1, 'ceil'],
    // Non-square filters and strides take an explicit pad (a numeric one is refused).
    [[2, 9, 7, 3], [3, 2], [2, 3], explicit(1, 0, 0, 1), 'ceil'],
    [[3, 8, 11, 2], [2, 4], [3, 2], explicit(0, 1, 1, 1), 'ceil'],
    [[2, 11, 9, 2], [4, 3], [2, 4], explicit(1, 1, 0, 0), 'round'],
    [[0, 6, 6, 2], 3, 2, 1, 'ceil'],
  ];
  it.each(
    cases.flatMap(([shape, f, s, p, mode]) =>
      (['maxPool', 'avgPool'] as const).map((op) => [op, shape, f, s, p, mode] as const),
    ),
  )('%s of %j, filter %j, stride %j, pad %j, %s: dx for a random dy', async (op, shape, f, s, p, mode) => {
    const geometry = (m?: 'ceil' | 'round') =>
      tf.backend_util.computePool2DInfo(
        shape as [number, number, number, number],
        f,
        s,
        1,
        p as unknown as 'valid',
        m,
      );
    const [floor, rounded] = [geometry(), geometry(mode)];
    // Each case rounds up.
    expect(rounded.outHeight + rounded.outWidth).toBeGreaterThan(floor.outHeight + floor.outWidth);
    await expectAsCpu(() => {
      const pool = (x: tf.Tensor) => tf[op](x as tf.Tensor4D, f, s, p as unknown as 'valid', mode);
      const x = t(shape);
      const dy = t(rounded.outShape);
      const [dx] = tf.grads((v: tf.Tensor) => pool(v))([x], dy);
      return [pool(x), tf.grad(pool)(x, dy), dx];
    });
  });

  // Without rounding, dy already has the kernels' geometry.
  const plain: [number[], number | [number, number], number, Pad | 'same' | 'valid'][] = [
    [[2, 6, 6, 3], 3, 2, 1],
    [[2, 8, 8, 2], 2, 2, 'valid'],
    [[3, 7, 5, 2], [3, 2], 2, 'same'],
    [[2, 9, 7, 3], [3, 2], 2, explicit(1, 0, 0, 1)],
  ];
  it.each(
    plain.flatMap(([shape, f, s, p]) =>
      (['maxPool', 'avgPool'] as const).map((op) => [op, shape, f, s, p] as const),
    ),
  )('%s of %j, filter %j, stride %j, pad %j, no rounding: dx for a random dy', async (op, shape, f, s, p) => {
    await expectAsCpu(() => {
      const pool = (x: tf.Tensor) => tf[op](x as tf.Tensor4D, f, s, p as unknown as 'valid');
      const x = t(shape);
      const y = pool(x);
      return [y, tf.grad(pool)(x, t(y.shape))];
    });
  });
});

describe('maxPool and avgPool with windows wholly in the padding', () => {
  // cpu gives -Infinity (max) and NaN (avg) there; upstream gave 0, and with a
  // 1x1 filter ignored the padding altogether.
  type Pad = number | [[number, number], [number, number], [number, number], [number, number]];
  const cases: [number[], number | [number, number], number, Pad, 'ceil' | undefined][] = [
    [[1, 4, 4, 1], 1, 1, 1, undefined],
    [[2, 4, 4, 3], 1, 1, 2, undefined],
    [[1, 4, 4, 2], 2, 2, 2, undefined],
    [[1, 5, 5, 2], 3, 1, 3, undefined],
    [[1, 4, 4, 2], 2, 3, 1, 'ceil'],
    [
      [2, 5, 6, 2],
      [2, 3],
      1,
      [
        [0, 0],
        [0, 2],
        [3, 0],
        [0, 0],
      ],
      undefined,
    ],
  ];
  it.each(
    cases.flatMap(([shape, f, s, p, mode]) =>
      (['maxPool', 'avgPool'] as const).map((op) => [op, shape, f, s, p, mode] as const),
    ),
  )('%s of %j, filter %j, stride %j, pad %j, %s: values and gradient', async (op, shape, f, s, p, mode) => {
    await expectAsCpu(() => {
      const pool = (x: tf.Tensor) =>
        tf[op](
          x as tf.Tensor4D,
          f,
          s,
          p as unknown as 'valid',
          mode as 'ceil' /* undefined is the default */,
        );
      const x = t(shape);
      return [pool(x), tf.grad(pool)(x)];
    });
  });
});

/** The outputs' shapes on a backend, or the error's message. */
async function shapesOn(
  backend: 'cpu' | 'wasm',
  fn: () => tf.Tensor | tf.Tensor[],
): Promise<number[][] | string> {
  await tf.setBackend(backend);
  try {
    const outs = tf.tidy(fn);
    const list = Array.isArray(outs) ? outs : [outs];
    const shapes = list.map((x) => x.shape);
    tf.dispose(list);
    return shapes;
  } catch (e) {
    return (e as Error).message;
  }
}

/** Both backends give the shapes and (expectAsCpu) the values, leaving nothing behind. */
async function expectShapesAndValuesAsCpu(fn: () => tf.Tensor | tf.Tensor[]): Promise<void> {
  const op = () => ((seed = 1), fn());
  const ref = await shapesOn('cpu', op);
  expect(typeof ref).not.toBe('string');
  expect(await shapesOn('wasm', op)).toEqual(ref);
  await expectAsCpu(fn);
}

/** Both backends refuse with `message`; the refusal leaves no tensor and no wasm buffer behind. */
async function expectRefusedAsCpu(fn: () => tf.Tensor | tf.Tensor[], message: string): Promise<void> {
  expect(await shapesOn('cpu', fn)).toBe(message);
  expect(await shapesOn('wasm', fn)).toBe(message);
  const [tensors, buffers] = [tf.memory().numTensors, wasmDataIds()];
  for (let i = 0; i < 3; i++) expect(await shapesOn('wasm', fn)).toBe(message);
  expect([tf.memory().numTensors, wasmDataIds()]).toEqual([tensors, buffers]);
}

describe("tf.prelu on wasm gives the cpu backend's shape and values", () => {
  // Weights repeated to an empty x ([2, 1, 8] to [2, 0, 8]): upstream divided
  // by their size, 0 ("divide by zero" trap).
  const empty: [number[], number[]][] = [
    [
      [2, 0, 8],
      [2, 1, 8],
    ],
    [
      [0, 3],
      [2, 1, 3],
    ],
    [
      [1, 3],
      [0, 3],
    ],
    [
      [0, 4, 5],
      [4, 1],
    ],
    [[3, 0], [0]],
    [[0, 3], [3]],
  ];
  it.each(empty)('an empty output: x %j, weights %j', async (x, alpha) => {
    await expectShapesAndValuesAsCpu(() => tf.prelu(t(x), t(alpha)));
  });

  // Weights that broadcast x to a larger shape: upstream returned x's shape
  // with whatever its buffer held.
  const up: [number[], number[]][] = [
    [
      [2, 1],
      [3, 1, 1],
    ],
    [[3], [1, 1, 3]],
    [
      [2, 1],
      [2, 3],
    ],
    [
      [4, 1, 5],
      [3, 1],
    ],
    [
      [2, 3, 1, 4],
      [5, 1],
    ],
    [[6], [2, 3, 1]],
    [[], [2, 2]],
  ];
  it.each(up)('weights that broadcast x up: x %j, weights %j', async (x, alpha) => {
    await expectShapesAndValuesAsCpu(() => tf.prelu(t(x), t(alpha)));
  });

  it('weights that broadcast x up: NaN and infinities, and an int32 x', async () => {
    await expectShapesAndValuesAsCpu(() => [
      tf.prelu(tf.tensor2d([NaN, -Infinity, Infinity, -1, 0.5, -0], [6, 1]), t([2, 1, 1])),
      tf.prelu(tf.tensor2d([3, -2, 0], [3, 1], 'int32'), t([2, 1, 4])),
    ]);
  });

  // What upstream computed (or our repeat fixed) before stays so.
  const ordinary: [number[], number[]][] = [
    [[4, 5, 6], [6]],
    [
      [4, 5, 6],
      [5, 6],
    ],
    [
      [4, 5, 6],
      [5, 1],
    ],
    [[4, 5, 6], []],
    [
      [2, 3, 4, 5],
      [1, 1, 5],
    ],
  ];
  it.each(ordinary)('ordinary weights: x %j, weights %j', async (x, alpha) => {
    await expectShapesAndValuesAsCpu(() => tf.prelu(t(x), t(alpha)));
  });

  it("weights that do not broadcast with x: cpu's error", async () => {
    await expectRefusedAsCpu(
      () => tf.prelu(t([2, 3]), t([4])),
      'Operands could not be broadcast together with shapes 2,3 and 4.',
    );
  });
});

describe("tf.fused.matMul 'prelu' on wasm gives the cpu backend's shape and values", () => {
  // Through the fallback (BatchMatMul, Add, Prelu) or upstream's fused kernel,
  // empty weights or weights repeated to an empty output trapped ("divide by zero").
  it.each([
    ['a [2, 0, 9], b [9, 8], bias [0, 8], weights [2, 1, 8]', [2, 0, 9], [0, 8], [2, 1, 8]],
    ['a [2, 0, 9], b [9, 8], weights [2, 1, 8]', [2, 0, 9], null, [2, 1, 8]],
    ['a [0, 9], b [9, 8], weights [0, 8]', [0, 9], null, [0, 8]],
    ['a [0, 9], b [9, 8], bias [8], weights [0, 8]', [0, 9], [8], [0, 8]],
  ] as const)('an empty output: %s', async (_n, a, bias, alpha) => {
    await expectShapesAndValuesAsCpu(() =>
      tf.fused.matMul({
        a: t([...a]),
        b: t([9, 8]),
        bias: bias ? t([...bias]) : undefined,
        activation: 'prelu',
        preluActivationWeights: t([...alpha]),
      }),
    );
  });

  it('weights that broadcast the product to a shape of the same size', async () => {
    await expectShapesAndValuesAsCpu(() =>
      tf.fused.matMul({
        a: t([2, 3]),
        b: t([3, 4]),
        activation: 'prelu',
        preluActivationWeights: t([1, 1, 2, 1]),
      }),
    );
  });

  // cpu's PReLU gives the larger broadcast shape, which tfjs-core's reshape
  // to the product's shape refuses; the fallback returned garbage.
  it("weights that broadcast the product to a larger shape: cpu's error", async () => {
    await expectRefusedAsCpu(
      () =>
        tf.fused.matMul({
          a: t([1, 2]),
          b: t([1, 1]),
          transposeA: true,
          activation: 'prelu',
          preluActivationWeights: tf.tensor3d([0.1, 0.2, 0.3], [3, 1, 1]),
        }),
      'Size(6) must match the product of shape 2,1',
    );
    await expectRefusedAsCpu(
      () =>
        tf.fused.matMul({
          a: t([3, 2, 4]),
          b: t([4, 5]),
          bias: t([5]),
          activation: 'prelu',
          preluActivationWeights: t([2, 3, 1, 1]),
        }),
      'Size(60) must match the product of shape 3,2,5',
    );
  });
});

describe("tf.fused.conv2d and depthwiseConv2d 'prelu' with weights that broadcast the output up", () => {
  // cpu returns the broadcast shape; upstream returned the output's, holding garbage.
  it.each([
    ['conv2d', [1, 1, 5, 2], [3, 5, 4], null],
    ['conv2d', [2, 1, 5, 2], [3, 1, 4], [4]],
    ['conv2d', [1, 1, 5, 2], [3, 1, 1], [1, 5, 4]],
    ['conv2d', [1, 1, 5, 2], [2, 1, 4], null],
    ['depthwiseConv2d', [1, 1, 5, 4], [3, 5, 4], [4]],
    ['depthwiseConv2d', [2, 1, 6, 4], [2, 1, 1], null],
  ] as const)('%s of %j, weights %j, bias %j', async (op, xShape, alpha, bias) => {
    await expectShapesAndValuesAsCpu(() => {
      const x = t([...xShape]) as tf.Tensor4D;
      const filter = t(op === 'conv2d' ? [1, 1, 2, 4] : [1, 1, 4, 1]) as tf.Tensor4D;
      const args = {
        x,
        filter,
        strides: 1,
        pad: 'same' as const,
        bias: bias ? t([...bias]) : undefined,
        activation: 'prelu' as const,
        preluActivationWeights: t([...alpha]),
      };
      return tf.fused[op](args);
    });
  });
});

describe('tf.cast to bool', () => {
  // Upstream kept the low byte of the truncated integer (0.5 -> 0, -2 -> 254).
  const inputs: [string, () => tf.Tensor][] = [
    ['float32', () => tf.tensor1d([0.5, -0.5, 2, -2, 3, 0, -0, 300, NaN, Infinity, -Infinity, 1e-30])],
    ['int32', () => tf.tensor1d([2, -2, 3, 0, 256, -256, 2 ** 31 - 1], 'int32')],
    ['float32 [3, 4, 5]', () => tf.mul(t([3, 4, 5]), 3)],
    ['int32 [7, 9]', () => tf.cast(tf.mul(t([7, 9]), 600), 'int32')],
  ];
  it.each(inputs)('from %s is x != 0, and logicalNot and where read it so', async (_n, make) => {
    const fn = () => {
      seed = 1;
      const x = make();
      const b = tf.cast(x, 'bool');
      return [b, tf.logicalNot(b), tf.where(b, tf.onesLike(x), tf.zerosLike(x)), tf.cast(b, 'float32')];
    };
    const ref = await runOn('cpu', fn);
    const got = await runOn('wasm', fn);
    expect(got.map((v) => Array.from(v))).toEqual(ref.map((v) => Array.from(v)));
    await expectAsCpu(fn);
  });

  it('the other casts still convert as on cpu', async () => {
    await expectAsCpu(() => {
      const f = tf.tensor1d([-2.7, -1, -0.5, 0, 0.4, 1.5, 3.99, 2 ** 31 + 0.5]);
      const b = tf.tensor1d([1, 0, 1], 'bool');
      return [
        tf.cast(f, 'int32'),
        tf.cast(tf.cast(f, 'int32'), 'float32'),
        tf.cast(b, 'int32'),
        tf.cast(b, 'float32'),
      ];
    });
  });
});

/** A small matMul on wasm still gives cpu's values: the wasm heap is intact. */
async function expectHeapIntact(): Promise<void> {
  const fn = () =>
    tf.matMul(tf.tensor2d(values(rng(91), 64), [8, 8]), tf.tensor2d(values(rng(92), 64), [8, 8]));
  expectMatch(await runOn('wasm', fn), await runOn('cpu', fn));
}

/** expectShapesAndValuesAsCpu, the outputs' dtypes as on cpu, then a sanity matMul. */
async function expectEmptySafeAsCpu(fn: () => tf.Tensor | tf.Tensor[]): Promise<void> {
  const dtypes = async (backend: 'cpu' | 'wasm') => {
    await tf.setBackend(backend);
    const outs = tf.tidy(() => ((seed = 1), fn()));
    const list = Array.isArray(outs) ? outs : [outs];
    const d = list.map((x) => x.dtype);
    tf.dispose(list);
    return d;
  };
  expect(await dtypes('wasm')).toEqual(await dtypes('cpu'));
  await expectShapesAndValuesAsCpu(fn);
  await expectHeapIntact();
}

describe('pools and convolutions with an empty output', () => {
  // A window (or dilated filter) larger than the padded input gives a 0 height
  // or width: cpu returns the empty tensor (and a zero dx); upstream wrote into
  // it ("memory access out of bounds"), after which later wasm calls trapped.
  type Pad = number | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
  const pools: [number[], number | [number, number], number | [number, number], Pad][] = [
    [[3, 7, 1, 4], 2, [2, 3], 'valid'],
    [[2, 1, 5, 3], [2, 2], 1, 'valid'],
    [[1, 6, 2, 2], [2, 3], [1, 2], 'valid'],
    [[2, 2, 2, 3], 3, 1, 0],
    [
      [1, 5, 2, 2],
      [2, 4],
      1,
      [
        [0, 0],
        [1, 0],
        [0, 1],
        [0, 0],
      ],
    ],
  ];
  it.each(
    pools.flatMap(([shape, f, s, p]) =>
      (['maxPool', 'avgPool'] as const).map((op) => [op, shape, f, s, p] as const),
    ),
  )('%s of %j, filter %j, stride %j, pad %j: the empty output and a zero dx', async (op, shape, f, s, p) => {
    await expectEmptySafeAsCpu(() => {
      const pool = (x: tf.Tensor) => tf[op](x as tf.Tensor4D, f, s, p as unknown as 'valid');
      const x = t(shape);
      const y = pool(x);
      expect(y.size).toBe(0);
      return [y, tf.grad(pool)(x, tf.zerosLike(y))];
    });
  });

  it("a numeric pad that makes a negative size: cpu's error", async () => {
    for (const op of ['maxPool', 'avgPool'] as const) {
      await expectRefusedAsCpu(
        () => tf[op](t([2, 1, 1, 3]) as tf.Tensor4D, 3, 1, 0),
        'Tensor must have a shape comprised of positive integers but got shape [2,-1,-1,3].',
      );
      await expectHeapIntact();
    }
  });

  const convs: ['conv2d' | 'depthwiseConv2d', number[], number[], number | [number, number], number][] = [
    ['conv2d', [3, 7, 1, 4], [2, 2, 4, 3], [2, 3], 1],
    ['conv2d', [2, 3, 5, 2], [2, 2, 2, 3], 1, 3],
    ['depthwiseConv2d', [3, 7, 1, 4], [2, 2, 4, 1], 2, 1],
    ['depthwiseConv2d', [2, 5, 2, 3], [3, 3, 3, 2], 1, 1],
  ];
  it.each(convs)(
    "%s of %j, filter %j, stride %j, dilation %j, 'valid': plain and fused, with gradients",
    async (op, xs, fs, s, d) => {
      await expectEmptySafeAsCpu(() => {
        const outC = op === 'conv2d' ? fs[3] : fs[2] * fs[3];
        const plain = (x: tf.Tensor, f: tf.Tensor) =>
          tf[op](x as tf.Tensor4D, f as tf.Tensor4D, s, 'valid', 'NHWC', d);
        const fused = (x: tf.Tensor, f: tf.Tensor, b: tf.Tensor) =>
          tf.fused[op]({
            x: x as tf.Tensor4D,
            filter: f as tf.Tensor4D,
            strides: s,
            pad: 'valid',
            dilations: d,
            bias: b,
            activation: 'relu',
          });
        const [x, f, b] = [t(xs), t(fs), t([outC])];
        const y = plain(x, f);
        expect(y.size).toBe(0);
        // tfjs-core has no gradient for a dilated conv2d.
        if (d !== 1) return [y, fused(x, f, b)];
        return [
          y,
          fused(x, f, b),
          ...tf.grads(plain)([x, f], tf.zerosLike(y)),
          ...tf.grads(fused)([x, f, b], tf.zerosLike(y)),
        ];
      });
    },
  );
});

describe('tf.where with an empty output', () => {
  // tf.where leaves the condition unbroadcast when t has a 0 dimension, and
  // upstream Select wrote one value per condition element into the empty
  // output. The prelu gradient makes that call for x [N, 1] and weights [0].
  it.each([1, 7, 4096])('condition [%i, 1], t and e [N, 0]', async (n) => {
    await expectEmptySafeAsCpu(() => tf.where(tf.greater(t([n, 1]), 0), tf.zeros([n, 0]), tf.ones([n, 0])));
  });

  it.each([1, 7, 4096])('the prelu gradient of x [%i, 1] and weights [0]', async (n) => {
    await expectEmptySafeAsCpu(() => {
      const x = t([n, 1]);
      // The gradient wrt x fails on cpu too (tfjs-core gives it the output's shape).
      return tf.grad((a: tf.Tensor) => tf.sum(tf.prelu(x, a)))(tf.zeros([0]));
    });
  });

  it('int32 and bool t and e, and a non-empty output still as on cpu', async () => {
    await expectEmptySafeAsCpu(() => {
      const c = tf.greater(t([5, 1]), 0);
      return [
        tf.where(c, tf.zeros([5, 0], 'int32'), tf.ones([5, 0], 'int32')),
        tf.where(c, tf.zeros([5, 0], 'bool'), tf.ones([5, 0], 'bool')),
        tf.where(tf.greater(t([5, 3]), 0), t([5, 3]), t([5, 3])),
        tf.where(tf.greater(t([4, 1]), 0), t([4, 2]), t([4, 2])),
      ];
    });
  });
});

describe('tf.where with bool t and e', () => {
  // Upstream Select copies 4-byte floats whatever the dtype: bool t and e (1 byte an element)
  // were read 4 elements at a time and past their end, and 4 bytes an element were written into
  // the 1-byte-an-element output, past its end ([1, 1, 0, 1] came out as [1, 0, 0, 1]).
  const bools = (shape: number[], every: number) =>
    tf.greater(
      tf.tensor(
        values(
          rng(seed++),
          shape.reduce((p, q) => p * q, 1),
        ),
        shape,
      ),
      every,
    );
  const shapes: [number[], number[]][] = [
    [[1], [1]],
    [[4], [4]],
    [[9], [9]],
    [
      [2, 3],
      [2, 3],
    ],
    [
      [3, 1],
      [3, 5],
    ],
    [
      [7, 1, 5],
      [7, 4, 5],
    ],
    [[], [2, 3]],
    [
      [2, 1, 3, 1, 2, 1, 3],
      [2, 1, 3, 1, 2, 1, 3],
    ],
  ];
  it.each(shapes)('condition %j, t and e %j', async (c, shape) => {
    await expectEmptySafeAsCpu(() => {
      const cond = bools(c, 0);
      return [
        tf.where(cond, bools(shape, -0.5), bools(shape, 0.5)),
        tf.where(cond, tf.onesLike(bools(shape, 0)), tf.zerosLike(bools(shape, 0))),
        tf.logicalAnd(tf.where(cond, bools(shape, 0), bools(shape, 0)), bools(shape, -0.9)),
      ];
    });
  });
});

describe('tf.stridedSlice of int32 and bool x', () => {
  // Upstream's general path (not one contiguous run) made a float32 output whatever x's dtype:
  // an int32 x came back float32 holding the ints' bits (3 as 4.2e-45), a bool x was read 4
  // elements at a time, past its end.
  const ints = (shape: number[]) =>
    tf.cast(
      tf.mul(
        tf.tensor(
          values(
            rng(seed++),
            shape.reduce((p, q) => p * q, 1),
          ),
          shape,
        ),
        1000,
      ),
      'int32',
    );
  const cases: [number[], number[], number[], number[]][] = [
    [[9], [1], [8], [2]],
    [[10], [0], [10], [3]],
    [
      [4, 6],
      [0, 1],
      [4, 6],
      [1, 2],
    ],
    [
      [5, 7],
      [4, 6],
      [0, 0],
      [-1, -2],
    ],
    [
      [3, 4, 5],
      [0, 0, 0],
      [3, 4, 5],
      [2, 1, 2],
    ],
    [
      [1, 1, 5],
      [0, 0, 0],
      [1, 1, 5],
      [1, 1, 4],
    ],
    [
      [4, 6],
      [0, 5],
      [4, 1],
      [1, 2],
    ],
    [
      [4, 6],
      [1, 0],
      [3, 6],
      [1, 1],
    ],
  ];
  it.each(cases)('x %j, begin %j, end %j, strides %j', async (shape, begin, end, strides) => {
    await expectEmptySafeAsCpu(() => {
      const x = ints(shape);
      return [
        tf.stridedSlice(x, begin, end, strides),
        tf.stridedSlice(tf.greater(x, 0), begin, end, strides),
        tf.stridedSlice(tf.cast(x, 'float32'), begin, end, strides),
      ];
    });
  });
});

describe('tf.reverse of a bool x', () => {
  // Upstream Reverse copies 4-byte floats whatever the dtype: a bool x (1 byte an element) was
  // read 4 elements at a time, and 4 bytes an element written into the bool output, past its end.
  const cases: [number[], number[]][] = [
    [[1], [0]],
    [[7], [0]],
    [[3, 5], [1]],
    [
      [3, 5],
      [0, 1],
    ],
    [
      [2, 3, 4],
      [0, 2],
    ],
    [[2, 1, 9], [-1]],
    [[4, 4], []],
  ];
  it.each(cases)('x %j, axes %j', async (shape, axes) => {
    await expectEmptySafeAsCpu(() => {
      const x = tf.greater(t(shape), 0);
      return [tf.reverse(x, axes), tf.reverse(tf.cast(x, 'int32'), axes), tf.reverse(t(shape), axes)];
    });
  });
});

describe('tf.clipByValue of an int32 x', () => {
  // Upstream ClipByValue reads and writes int32 x as float32: clipping [-5, -1, 0, 1, 5] to
  // [-2, 2] gave [-1073741824, -1073741824, 0, 1, 5]. The cpu backend clips the values and
  // stores the result in x's dtype (a bound of 1.5 stores as 1).
  const cases: [number[], number, number][] = [
    [[5], -2, 2],
    [[1], 0, 0],
    [[3, 7], -300, 250],
    [[2, 3, 4], -1.5, 1.5],
    [[0, 3], -1, 1],
    [[9], -1e9, 1e9],
  ];
  it.each(cases)('x %j, min %j, max %j', async (shape, lo, hi) => {
    await expectEmptySafeAsCpu(() => {
      const x = tf.cast(tf.mul(t(shape), 1000), 'int32');
      return [tf.clipByValue(x, lo, hi), tf.clipByValue(tf.cast(x, 'float32'), lo, hi)];
    });
  });
});

describe('tf.gather of an x with no elements', () => {
  // Upstream GatherV2 returned its flattened [batch, outer, indices, slice] output ([1, 1, 0, 3]
  // for x [0, 3], indices [], axis 0, where cpu gives [0, 3]) and kept the buffers of x and the
  // indices after their tensors were disposed (2 wasm buffers a call).
  const idx = (shape: number[], hi: number) =>
    tf.tensor(
      Array.from(
        values(
          rng(seed++),
          shape.reduce((p, q) => p * q, 1),
        ),
        (v) => Math.floor(((v + 1) / 2) * hi),
      ),
      shape,
      'int32',
    );
  const cases: [number[], number[], number, number][] = [
    [[0, 3], [0], 0, 0],
    [[0, 3], [0], 1, 0],
    [[0, 3], [2], 1, 0],
    [[0, 3], [2, 2], 1, 0],
    [[0, 3], [], 1, 0],
    [[3, 0], [2], 0, 0],
    [[3, 0], [0, 4], 0, 0],
    [[2, 0, 4], [3], 2, 0],
    [[2, 0, 4], [3], -1, 0],
    [[2, 3, 0], [2, 2], 1, 1],
    [[2, 0, 5], [2, 3], 2, 1],
  ];
  it.each(cases)('x %j, indices %j, axis %j, batchDims %j', async (xs, is, axis, batchDims) => {
    await expectEmptySafeAsCpu(() => {
      const hi = xs[axis < 0 ? xs.length + axis : axis];
      const i = idx(is, hi);
      return [
        tf.gather(t(xs), i, axis, batchDims),
        tf.gather(tf.zeros(xs, 'int32'), i, axis, batchDims),
        tf.gather(tf.zeros(xs, 'bool'), i, axis, batchDims),
      ];
    });
  });

  it('empty indices on a non-empty x, and the gradient, still as on cpu', async () => {
    await expectEmptySafeAsCpu(() => {
      const x = t([4, 3]);
      const none = tf.zeros([0], 'int32');
      return [
        tf.gather(x, none, 0),
        tf.gather(x, none, 1),
        tf.gather(x, tf.zeros([2, 0], 'int32'), 1),
        tf.gather(x, idx([5], 4), 0),
        tf.grad((a: tf.Tensor) => tf.sum(tf.gather(a, none, 0)))(x),
        tf.grad((a: tf.Tensor) => tf.sum(tf.gather(a, tf.zeros([2], 'int32'), 1)))(t([0, 3])),
      ];
    });
  });

  it("an index out of x's axis: cpu's error", async () => {
    await expectRefusedAsCpu(
      () => tf.gather(tf.zeros([0, 3]), tf.tensor1d([3], 'int32'), 1),
      'GatherV2: the index value 3 is not in [0, 2]',
    );
    await expectRefusedAsCpu(
      () => tf.gather(tf.zeros([0, 3]), tf.tensor1d([0], 'int32'), 0),
      'GatherV2: the index value 0 is not in [0, -1]',
    );
    await expectHeapIntact();
  });
});

describe('tf.image.resizeNearestNeighbor of an int32 image', () => {
  // Upstream returned float32 whatever the images' dtype; cpu gives an int32 output (of an empty
  // image resized to a non-empty size: zeros, where upstream left the output unwritten).
  const ints = (shape: number[]) => tf.cast(tf.mul(t(shape), 1000), 'int32');
  const cases: [number[], [number, number], boolean, boolean][] = [
    [[1, 2, 2, 2], [3, 3], false, false],
    [[2, 5, 3, 3], [2, 7], false, false],
    [[2, 5, 3, 3], [8, 4], true, false],
    [[1, 4, 6, 1], [9, 5], false, true],
    [[3, 3, 1], [5, 2], false, false],
    [[0, 2, 2, 1], [3, 3], false, false],
    [[1, 2, 2, 1], [0, 3], false, false],
    [[2, 0, 3, 2], [2, 2], false, false],
  ];
  it.each(cases)('images %j to %j, alignCorners %j, halfPixelCenters %j', async (shape, size, ac, hp) => {
    await expectEmptySafeAsCpu(() => {
      const x = ints(shape) as tf.Tensor4D;
      const y = tf.image.resizeNearestNeighbor(x, size, ac, hp);
      const float = tf.image.resizeNearestNeighbor(tf.cast(x, 'float32') as tf.Tensor4D, size, ac, hp);
      // An empty image resized to a non-empty size: cpu reads past it, NaN, which its int32 output
      // holds as such (reading it gives 0, adding 3 to it 0 too); upstream leaves the float32
      // output unwritten (not changed).
      if (x.size === 0 && y.size > 0) return y;
      return [y, tf.add(y, tf.scalar(3, 'int32')), float];
    });
  });

  it('ints past 2^24 as cpu reads them (through float32, 2^31 wrapped)', async () => {
    const fn = () =>
      tf.image.resizeNearestNeighbor(
        tf.tensor4d([16777217, -2147483648, 2147483647, 5], [1, 2, 2, 1], 'int32'),
        [2, 3],
      );
    const expected = [16777216, 16777216, -2147483648, -2147483648, -2147483648, 5];
    for (const backend of ['cpu', 'wasm'] as const) {
      await tf.setBackend(backend);
      const y = fn();
      expect([y.dtype, Array.from(y.dataSync())]).toEqual(['int32', expected]);
      y.dispose();
    }
    await expectEmptySafeAsCpu(fn);
  });
});

describe('tf.matMul of int32 a and b', () => {
  // Upstream refused int32 operands ("BatchMatMul for non non-float32 tensors not yet
  // supported."); cpu returns their int32 product, wrapping past 2^31.
  const ints = (shape: number[], scale: number) => tf.cast(tf.mul(t(shape), scale), 'int32');
  const cases: [number[], number[], boolean, boolean][] = [
    [[2, 3], [3, 2], false, false],
    [[4, 7], [5, 7], false, true],
    [[7, 4], [7, 5], true, false],
    [[7, 4], [5, 7], true, true],
    [[3, 2, 5], [3, 5, 4], false, false],
    [[3, 2, 5], [5, 4], false, false],
    [[1, 5, 2], [2, 4, 5], true, true],
    [[2, 2, 3, 100], [100, 6], false, false],
    [[0, 3], [3, 2], false, false],
    [[2, 0], [0, 3], false, false],
    [[2, 0, 3], [3, 4], false, false],
  ];
  it.each(cases)('a %j, b %j, transposeA %j, transposeB %j', async (as, bs, ta, tb) => {
    const fn = () => {
      const a = ints(as, 1000);
      const b = ints(bs, 1000);
      return [
        tf.matMul(a, b, ta, tb),
        tf.matMul(tf.cast(a, 'float32'), tf.cast(b, 'float32'), ta, tb),
        tf.matMul(ints(as, 2 ** 31), ints(bs, 2 ** 31), ta, tb),
      ];
    };
    await expectEmptySafeAsCpu(fn);
    const exact = async (backend: 'cpu' | 'wasm') =>
      (await runOn(backend, () => ((seed = 1), fn()))).map((v) => Array.from(v));
    expect(await exact('wasm')).toEqual(await exact('cpu'));
  });

  it('exact values: past float32, wrapped past 2^31, tf.dot and tf.outerProduct', async () => {
    const fn = () => [
      tf.matMul(tf.tensor2d([16777217, 1], [1, 2], 'int32'), tf.tensor2d([1, 1], [2, 1], 'int32')),
      tf.matMul(tf.tensor2d([2147483647, 2147483647], [1, 2], 'int32'), tf.tensor2d([2, 2], [2, 1], 'int32')),
      tf.dot(tf.tensor1d([1, 2, 3], 'int32'), tf.tensor1d([4, 5, 6], 'int32')),
      tf.outerProduct(tf.tensor1d([1, 2, 3], 'int32'), tf.tensor1d([4, -5], 'int32')),
    ];
    const expected = [[16777218], [-4], [32], [4, -5, 8, -10, 12, -15]];
    for (const backend of ['cpu', 'wasm'] as const) {
      await tf.setBackend(backend);
      const ys = fn();
      expect(ys.map((y) => [y.dtype, Array.from(y.dataSync())])).toEqual(expected.map((v) => ['int32', v]));
      tf.dispose(ys);
    }
    await expectEmptySafeAsCpu(fn);
  });

  it("inner shapes that do not match: cpu's error", async () => {
    await expectRefusedAsCpu(
      () => tf.matMul(tf.ones([2, 3], 'int32'), tf.ones([2, 3], 'int32')),
      'Error in matMul: inner shapes (3) and (2) of Tensors with shapes 2,3 and 2,3 and transposeA=false and transposeB=false must match.',
    );
  });
});

describe('tf.prelu with weights that are not float32', () => {
  // Upstream read int32 weights' bytes as float32 (2 as 2.8e-45); cpu computes
  // with their values and returns float32.
  const cases: [number[], number[]][] = [
    [[4], [4]],
    [[2, 3], []],
    [
      [3, 1],
      [2, 1, 3],
    ],
    [
      [2, 5, 6],
      [5, 1],
    ],
    [[0, 3], [3]],
  ];
  it.each(cases)('int32 weights: x %j, weights %j', async (x, alpha) => {
    await expectEmptySafeAsCpu(() => [
      tf.prelu(t(x), tf.cast(tf.mul(t(alpha), 5), 'int32')),
      tf.prelu(tf.cast(tf.mul(t(x), 5), 'int32'), tf.cast(tf.mul(t(alpha), 5), 'int32')),
    ]);
  });

  it.each([
    ['conv2d', [1, 3, 5, 2], [4], [4]],
    ['conv2d', [2, 4, 3, 2], [1, 3, 4], null],
    ['conv2d', [1, 3, 5, 2], [], [4]],
    ['depthwiseConv2d', [1, 3, 5, 4], [4], [4]],
    ['depthwiseConv2d', [2, 2, 6, 4], [2, 6, 4], null],
  ] as const)('int32 weights of tf.fused.%s of %j, weights %j, bias %j', async (op, xShape, alpha, bias) => {
    await expectShapesAndValuesAsCpu(() => {
      const x = t([...xShape]) as tf.Tensor4D;
      const filter = t(op === 'conv2d' ? [1, 1, 2, 4] : [1, 1, 4, 1]) as tf.Tensor4D;
      return tf.fused[op]({
        x,
        filter,
        strides: 1,
        pad: 'same' as const,
        bias: bias ? t([...bias]) : undefined,
        activation: 'prelu' as const,
        preluActivationWeights: tf.cast(tf.mul(t([...alpha]), 5), 'int32'),
      });
    });
  });

  it.each([
    [[3, 4], [4, 5], [5]],
    [[2, 3, 4], [4, 5], [5]],
    [[3, 4], [4, 5], []],
  ])('int32 weights of tf.fused.matMul: a %j, b %j, weights %j', async (a, b, alpha) => {
    await expectShapesAndValuesAsCpu(() =>
      tf.fused.matMul({
        a: t(a),
        b: t(b),
        activation: 'prelu',
        preluActivationWeights: tf.cast(tf.mul(t(alpha), 5), 'int32'),
      }),
    );
  });

  it('exact values: x [-1, 2, -3, 4], int32 weights 2', async () => {
    await tf.setBackend('wasm');
    const y = tf.prelu(tf.tensor1d([-1, 2, -3, 4]), tf.tensor1d([2, 2, 2, 2], 'int32'));
    expect([y.dtype, Array.from(y.dataSync())]).toEqual(['float32', [-2, 2, -6, 4]]);
    y.dispose();
  });
});

describe('float32 Add, Sub, Mul, RealDiv and SquaredDifference at rank 7 and more', () => {
  // Upstream's XNNPACK operators take at most 6 dimensions; past that their
  // setup failed and the output held whatever its buffer held (mul of
  // [3, 1, 1, 4, 1, 5, 3] and [4, 1, 5, 3]: off by 2.86, and by 2.36 with
  // [1, 1, 1, 4, 1, 5, 3], which broadcasts nothing: rows 52-53 of bench/upstream-faults.ts).
  const ops: [string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor][] = [
    ['add', tf.add],
    ['sub', tf.sub],
    ['mul', tf.mul],
    ['div', tf.div],
    ['squaredDifference', tf.squaredDifference],
  ];
  const shapes: [string, number[], number[]][] = [
    ['the fuzz case', [3, 1, 1, 4, 1, 5, 3], [4, 1, 5, 3]],
    ['rank 7 broadcasting nothing', [1, 1, 1, 4, 1, 5, 3], [4, 1, 5, 3]],
    ['two leading axes', [2, 3, 1, 4, 1, 5, 3], [4, 1, 5, 3]],
    ['the higher rank second', [4, 1, 5, 3], [2, 3, 1, 4, 1, 5, 3]],
    ['the same shape', [2, 3, 2, 1, 2, 3, 2], [2, 3, 2, 1, 2, 3, 2]],
    ['interleaved 1s', [2, 3, 1, 4, 1, 5, 3], [2, 1, 1, 4, 1, 1, 3]],
    ['a scalar', [2, 3, 1, 2, 1, 2, 3], []],
    ['rank 8', [2, 1, 3, 1, 1, 4, 1, 5], [3, 1, 1, 4, 3, 1]],
    // Seven alternating runs: both repeated to the output's shape.
    ['rank 7, alternating', [2, 1, 3, 1, 2, 1, 3], [1, 2, 1, 3, 1, 2, 1]],
    // Eight runs, a's four: b repeated.
    ['rank 8, alternating', [2, 1, 3, 2, 2, 2, 3, 1], [1, 2, 1, 2, 1, 2, 1, 2]],
  ];
  const cases = ops.flatMap(([op, f]) => shapes.map(([what, a, b]) => [op, what, a, b, f] as const));
  it.each(cases)('%s, %s: %j and %j', async (_op, _what, a, b, f) => {
    // Leave garbage on the heap where the output may land.
    await tf.setBackend('wasm');
    tf.tidy(() => tf.fill([64, 64], 7.5).dataSync());
    await expectShapesAndValuesAsCpu(() => f(t(a), t(b)));
  });

  it('int32, NaN and infinities as on cpu', async () => {
    const int = (shape: number[]) => tf.cast(tf.mul(t(shape), 9), 'int32');
    await expectEmptySafeAsCpu(() => [
      tf.mul(int([3, 1, 1, 4, 1, 5, 3]), int([4, 1, 5, 3])),
      tf.add(int([2, 1, 3, 1, 2, 1, 3]), int([1, 2, 1, 3, 1, 2, 1])),
      tf.sub(int([1, 1, 1, 4, 1, 5, 3, 2]), int([2])),
      tf.mul(
        tf.tensor([NaN, Infinity, -Infinity, 2, -0, 3], [1, 1, 1, 2, 1, 1, 3]),
        t([2, 1, 1, 1, 1, 1, 2, 1, 1]),
      ),
      tf.div(t([1, 2, 1, 1, 1, 1, 3]), tf.tensor([0, 1, -0], [3])),
    ]);
  });

  it('an empty output', async () => {
    await expectEmptySafeAsCpu(() => tf.mul(t([2, 0, 1, 4, 1, 5, 3]), t([4, 1, 5, 3])));
  });

  it('gradients of add, sub, mul, div and squaredDifference', async () => {
    await expectAsCpu(() => {
      const [a, b] = [t([3, 1, 1, 4, 1, 5, 3]), t([2, 4, 1, 5, 1])];
      const dy = t([3, 1, 2, 4, 1, 5, 3]);
      const [c, d] = [t([3, 1, 2, 4, 1, 5, 3]), t([3, 1, 2, 4, 1, 5, 3])];
      return ops.flatMap(([op, f]) =>
        // tfjs-core's squaredDifference gradient does not sum over broadcast axes (cpu refuses it).
        op === 'squaredDifference'
          ? tf.grads((x: tf.Tensor, y: tf.Tensor) => f(x, y))([c, d], dy)
          : tf.grads((x: tf.Tensor, y: tf.Tensor) => f(x, y))([a, b], dy),
      );
    });
  });

  it("the weights' gradient of tf.prelu with weights that broadcast x to rank 7 (the fuzz case)", async () => {
    // The gradient wrt x fails on cpu too (tfjs-core gives it the output's shape).
    await expectAsCpu(() => {
      const x = t([4, 1, 5, 3]);
      const dy = t([3, 1, 1, 4, 1, 5, 3]);
      return tf.grad((q: tf.Tensor) => tf.prelu(x, q))(t([3, 1, 1, 4, 1, 5, 3]), dy);
    });
  });

  it('merges axes that broadcast alike, dropping those of size 1', () => {
    expect(coalesceBroadcast([3, 1, 1, 4, 1, 5, 3], [4, 1, 5, 3])).toEqual([
      [3, 60],
      [1, 60],
    ]);
    expect(coalesceBroadcast([1, 1, 1, 4, 1, 5, 3], [4, 1, 5, 3])).toEqual([[60], [60]]);
    expect(coalesceBroadcast([2, 3, 1, 4, 1, 5, 3], [2, 1, 1, 4, 1, 1, 3])).toEqual([
      [2, 3, 4, 5, 3],
      [2, 1, 4, 1, 3],
    ]);
    expect(coalesceBroadcast([1, 1, 1, 1, 1, 1, 1], [])).toEqual([[], []]);
    expect(coalesceBroadcast([2, 1, 3, 1, 2, 1, 3], [1, 2, 1, 3, 1, 2, 1])[0]).toHaveLength(7);
  });

  it('calls of rank 6 or less, and int32 ones, go to upstream untouched', async () => {
    await tf.setBackend('wasm');
    const registered = tf.getKernel('Multiply', 'wasm') as tf.KernelConfig & Record<symbol, tf.KernelConfig>;
    const upstream = jest.fn(registered[Symbol.for('normprune.wasmTrainingKernel.upstream')].kernelFunc);
    const mul = makeHighRankBinary(upstream as KernelFn)!;
    const backend = tf.backend();
    const call = (a: tf.Tensor, b: tf.Tensor) => {
      const args = { inputs: { a, b }, backend, attrs: {} };
      const out = mul(args) as tf.TensorInfo;
      const passed = upstream.mock.calls[upstream.mock.calls.length - 1][0];
      const shapes = [passed.inputs.a!.shape, passed.inputs.b!.shape];
      tf.dispose([a, b, tf.engine().makeTensorFromTensorInfo(out)]);
      return { untouched: passed === args, shapes };
    };
    expect(call(t([3, 1, 4, 1, 5, 3]), t([4, 1, 5, 3])).untouched).toBe(true);
    expect(call(t([2, 2, 2, 2, 2, 2]), t([2, 2, 2, 2, 2, 2])).untouched).toBe(true);
    expect(call(tf.ones([3, 1, 1, 4, 1, 5, 3], 'int32'), tf.ones([4, 1, 5, 3], 'int32')).untouched).toBe(
      true,
    );
    expect(call(t([3, 1, 1, 4, 1, 5, 3]), t([4, 1, 5, 3]))).toEqual({
      untouched: false,
      shapes: [
        [3, 60],
        [1, 60],
      ],
    });
    expect(upstream).toHaveBeenCalledTimes(4);
  });
});
