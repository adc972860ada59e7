// What tf.memory().numTensors does not see: the backend's buffers, the wasm
// heap and upstream's XNNPACK operator caches (C++ allocations), measured after
// a warm-up over calls and training steps that repeat the same work. A wasm
// heap never shrinks and the allocator's top moves with fragmentation, so
// each check allows a few kilobytes and says why; the growth it catches is
// tens to hundreds of kilobytes.
import * as tf from '@tensorflow/tfjs-core';
// tfjs-layers registers the gradients (tfjs-core alone has none).
import '@tensorflow/tfjs-layers';
import { registerWasmTrainingKernels } from '../src/kernels/index.js';
import { boolViaInt32, runWasm } from '../src/kernels/util.js';
import { wasmMemory } from '../../../tools/testing/leaks.js';
import { initWasm, rng, values } from './kernels-helpers.js';

beforeAll(async () => {
  await initWasm();
  registerWasmTrainingKernels();
  // The first probe grows the heap by its 32 MB: take it before any measurement.
  wasmMemory();
});

afterAll(async () => {
  await tf.setBackend('cpu');
});

/** Runs `fn` `warmUp` times, then `times` more, and returns the memory before and after those. */
async function measure(
  fn: () => void | Promise<void>,
  warmUp: number,
  times: number,
): Promise<{ before: ReturnType<typeof wasmMemory>; after: ReturnType<typeof wasmMemory> }> {
  await tf.setBackend('wasm');
  for (let i = 0; i < warmUp; i++) await fn();
  const before = wasmMemory();
  const tensors = tf.memory().numTensors;
  for (let i = 0; i < times; i++) await fn();
  const after = wasmMemory();
  expect(tf.memory().numTensors).toBe(tensors);
  return { before, after };
}

const tensor = (seed: number, shape: number[]) =>
  tf.tensor(
    values(
      rng(seed),
      shape.reduce((a, b) => a * b, 1),
    ),
    shape,
  );

describe('a bias or weights that outlive the partners they meet', () => {
  // A kernel computed on every call with a long-lived bias (a decomposed or
  // weight-normalised layer's inference), or the reverse. Upstream keeps one
  // cache key per call under the long-lived tensor's id (24 bytes for a
  // matMul, 72 for a convolution, plus the list's reallocations: 48-700 KB
  // over 2,000 calls before the fix).
  let t: Record<'x2' | 'x4' | 'w2' | 'w2T' | 'w4' | 'wd' | 'bias', tf.Tensor>;
  beforeAll(async () => {
    await initWasm();
    t = {
      x2: tensor(1, [2, 8]),
      x4: tensor(2, [1, 5, 5, 2]),
      w2: tensor(3, [8, 6]),
      w2T: tensor(4, [6, 8]),
      w4: tensor(5, [3, 3, 2, 6]),
      wd: tensor(6, [3, 3, 2, 3]),
      bias: tf.variable(tensor(7, [6])),
    };
  });
  afterAll(() => tf.dispose(Object.values(t)));

  const cases: [string, () => tf.Tensor][] = [
    [
      'fused matMul',
      () => tf.fused.matMul({ a: t.x2 as tf.Tensor2D, b: tf.mul(t.w2, 1.5) as tf.Tensor2D, bias: t.bias }),
    ],
    // Long-lived weights, but the transpose-first kernel hands upstream a new
    // transposed copy on every call.
    [
      'fused matMul, transposeB',
      () =>
        tf.fused.matMul({
          a: t.x2 as tf.Tensor2D,
          b: t.w2T as tf.Tensor2D,
          transposeB: true,
          bias: t.bias,
          activation: 'relu',
        }),
    ],
    [
      'fused conv2d',
      () =>
        tf.fused.conv2d({
          x: t.x4 as tf.Tensor4D,
          filter: tf.mul(t.w4, 1.5) as tf.Tensor4D,
          strides: 1,
          pad: 'same',
          bias: t.bias,
        }),
    ],
    [
      'fused depthwise conv2d',
      () =>
        tf.fused.depthwiseConv2d({
          x: t.x4 as tf.Tensor4D,
          filter: tf.mul(t.wd, 1.5) as tf.Tensor4D,
          strides: 1,
          pad: 'valid',
          bias: t.bias,
        }),
    ],
  ];

  // The mirror image: long-lived weights, a bias computed on every call.
  cases.push(
    [
      'fused matMul, a new bias per call',
      () => tf.fused.matMul({ a: t.x2 as tf.Tensor2D, b: t.w2 as tf.Tensor2D, bias: tf.mul(t.bias, 1.5) }),
    ],
    [
      'fused conv2d, a new bias per call',
      () =>
        tf.fused.conv2d({
          x: t.x4 as tf.Tensor4D,
          filter: t.w4 as tf.Tensor4D,
          strides: 1,
          pad: 'same',
          bias: tf.mul(t.bias, 1.5),
        }),
    ],
  );

  it.each(cases)('%s: 2,000 calls do not grow the heap', async (_name, op) => {
    const { before, after } = await measure(() => tf.tidy(() => void op().dataSync()), 50, 2000);
    expect(after.dataIds).toBe(before.dataIds);
    expect(after.heapBytes).toBe(before.heapBytes);
    expect(after.mallocTop - before.mallocTop).toBeLessThanOrEqual(4096);
  });

  it('is not copied when the same pair meets again (a plain layer keeps its cached operator)', async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend() as unknown as { dataIdNextNumber: number };
    const w = tf.mul(t.w2, 1.5) as tf.Tensor2D;
    const a = t.x2 as tf.Tensor2D;
    /** Buffer numbers one call takes (a copy of the bias would take one more). */
    const taken = (bias?: tf.Tensor) => {
      const start = backend.dataIdNextNumber;
      tf.tidy(() => void tf.fused.matMul({ a, b: w, bias }).dataSync());
      return backend.dataIdNextNumber - start;
    };
    taken(t.bias);
    expect(taken(t.bias)).toBe(taken());
    w.dispose();
  });

  it('gives the results of the cpu backend', async () => {
    for (const [, op] of cases) {
      await tf.setBackend('wasm');
      const got = tf.tidy(() => {
        op().dataSync();
        return op().dataSync();
      });
      await tf.setBackend('cpu');
      const want = tf.tidy(() => op().dataSync());
      want.forEach((v, i) => expect(Math.abs(got[i] - v)).toBeLessThan(1e-5 * Math.max(1, Math.abs(v))));
    }
  });
});

describe('training steps through every registered kernel', () => {
  it('add no buffers and do not grow the heap after warm-up', async () => {
    await tf.setBackend('wasm');
    const r = rng(7);
    const v = (shape: number[], scale = 0.3) =>
      tf.variable(
        tf.tensor(
          values(
            r,
            shape.reduce((a, b) => a * b, 1),
          ).map((u) => scale * u),
          shape,
        ),
      );
    const p = {
      k1: v([3, 3, 2, 6]),
      b1: v([6]),
      dw: v([3, 3, 6, 1]),
      k2: v([3, 3, 6, 8]),
      alpha: v([5, 1, 8], 0.1),
      gamma: v([8]),
      beta: v([8]),
      w: v([2 * 2 * 8, 5]),
      b: v([5]),
    };
    const x = tensor(8, [4, 9, 9, 2]) as tf.Tensor4D;
    const labels = tf.oneHot(tf.tensor1d([0, 1, 2, 3], 'int32'), 5);
    const optimizer = tf.train.sgd(0.01);
    const loss = () => {
      // FusedConv2D with bias (linear stays fused under the tape), depthwise,
      // strided 'same' conv, PReLU, max pooling, batch norm, a dense head:
      // forward and gradient of every kernel the runtime registers.
      let h: tf.Tensor4D = tf.fused.conv2d({
        x,
        filter: p.k1 as tf.Tensor4D,
        strides: 1,
        pad: 'same',
        bias: p.b1,
      });
      h = tf.depthwiseConv2d(h, p.dw as tf.Tensor4D, 1, 'same');
      h = tf.conv2d(h, p.k2 as tf.Tensor4D, 2, 'same');
      h = tf.prelu(h, p.alpha as tf.Tensor4D);
      h = tf.maxPool(h, 2, 2, 'valid');
      const { mean, variance } = tf.moments(h, [0, 1, 2]);
      h = tf.batchNorm4d(
        h,
        mean as tf.Tensor1D,
        variance as tf.Tensor1D,
        p.beta as tf.Tensor1D,
        p.gamma as tf.Tensor1D,
        1e-3,
      );
      const logits = tf.fused.matMul({
        a: tf.reshape(h, [4, -1]) as tf.Tensor2D,
        b: p.w as tf.Tensor2D,
        bias: p.b,
      });
      return tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
    };
    const step = () => tf.dispose(optimizer.minimize(loss, true, Object.values(p)) ?? []);
    const bytes = () => tf.memory().numBytes;
    step();
    const bytesBefore = bytes();
    const { before, after } = await measure(step, 10, 400);
    expect(bytes()).toBe(bytesBefore);
    expect(after.dataIds).toBe(before.dataIds);
    expect(after.heapBytes).toBe(before.heapBytes);
    // The allocator's placement moves the top by up to ~12 KB either way,
    // unrelated to the step count (measured -11 to +8 KB after 100 to 800
    // steps and 10 to 50 warm-up steps, since Identity shares buffers); a
    // stale 24- to 72-byte cache key per call of each of the step's three
    // fused kernels would add 29 to 86 KB over these 400 steps.
    expect(after.mallocTop - before.mallocTop).toBeLessThanOrEqual(16384);
    tf.dispose([...Object.values(p), x, labels]);
    optimizer.dispose();
  });
});

describe('switching backends', () => {
  it('to cpu and back, and registering again, keeps the buffers and the heap', async () => {
    await tf.setBackend('wasm');
    const a = tensor(9, [16, 16]);
    const work = () => tf.tidy(() => void tf.matMul(a, a, false, true).dataSync());
    const { before, after } = await measure(
      async () => {
        work();
        await tf.setBackend('cpu');
        work();
        await tf.setBackend('wasm');
        registerWasmTrainingKernels();
      },
      2,
      30,
    );
    expect(after.dataIds).toBe(before.dataIds);
    expect(after.heapBytes).toBe(before.heapBytes);
    expect(after.mallocTop - before.mallocTop).toBeLessThanOrEqual(4096);
    a.dispose();
  });
});

describe('boolViaInt32 (bool Reverse and StridedSlice)', () => {
  it('releases its int32 intermediates, when the kernel it wraps throws too', async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend();
    const x = tf.tensor1d([true, false, true], 'bool');
    const before = wasmMemory().dataIds;
    const tensors = tf.memory().numTensors;
    const out = boolViaInt32(backend, x, (xi) => {
      expect(xi.dtype).toBe('int32');
      return runWasm('Reverse', { x: xi }, backend, { dims: [0] });
    });
    expect(out.dtype).toBe('bool');
    expect(Array.from(backend.readSync(out.dataId) as Uint8Array)).toEqual([1, 0, 1]);
    backend.disposeData(out.dataId);
    expect(wasmMemory().dataIds).toBe(before);
    expect(() =>
      boolViaInt32(backend, x, () => {
        throw new Error('kernel failed');
      }),
    ).toThrow('kernel failed');
    expect(wasmMemory().dataIds).toBe(before);
    expect(tf.memory().numTensors).toBe(tensors);
    x.dispose();
  });
});
