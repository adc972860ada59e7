// When the heap cannot hold an allocation (the malloc guard throws), every
// kernel must leave the heap as it found it: our kernels compose others and
// hold intermediate buffers, which a throw midway would otherwise strand. Each
// case refuses the 1st, 2nd, ... allocation of a computation in turn until it
// succeeds, and checks after every refusal that no wasm buffer and no tensor
// is left behind, and at the end that the result matches the cpu backend.
import * as tf from '@tensorflow/tfjs-core';
// tfjs-layers registers the gradients (tfjs-core alone has none).
import '@tensorflow/tfjs-layers';
import { registerWasmTrainingKernels } from '../src/kernels/index.js';
import { MallocModule } from '../src/kernels/malloc_guard.js';
import { initWasm, relError, rng, runOn, values, wasmDataIds } from './kernels-helpers.js';

beforeAll(async () => {
  await initWasm();
  registerWasmTrainingKernels();
});

afterAll(async () => {
  await tf.setBackend('cpu');
});

const r = rng(12);

/** Values for `shape`, fixed per case. */
function make(shape: number[]): () => tf.Tensor {
  const v = values(
    r,
    shape.reduce((a, b) => a * b, 1),
  );
  return () => tf.tensor(v, shape);
}

const x4 = make([3, 9, 8, 5]);
const w4 = make([3, 3, 5, 7]);
const dy4 = make([3, 5, 4, 7]); // conv2d(x4, w4, 2, 'same')'s output shape
const bias = make([7]);
const bias21 = make([21]);
const dw = make([3, 3, 5, 2]);
const ddy = make([3, 7, 6, 10]); // depthwiseConv2d(x4, dw, 1, 'valid')'s output shape
const a2 = make([40, 33]);
const b2 = make([40, 21]);
const big = make([1, 9, 1, 2 * 8192 + 3]);
const alpha = make([9, 1, 5]);
const r7a = make([2, 1, 3, 1, 2, 1, 3]);
const r7b = make([1, 2, 1, 3, 1, 2, 1]);
const r8a = make([2, 1, 3, 2, 2, 2, 3, 1]);
const r8b = make([1, 2, 1, 2, 1, 2, 1, 2]);

const conv = { strides: 2, pad: 'same', dataFormat: 'NHWC', dimRoundingMode: undefined };
const depthwise = { strides: 1, pad: 'valid', dilations: 1, dimRoundingMode: undefined };

/** Runs a kernel by name, outside any gradient tape (see the note below). */
function kernel(name: string, inputs: Record<string, tf.Tensor>, attrs: object): tf.Tensor {
  return tf.engine().runKernel(name, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
}

// Kernels are run directly, not under tf.grad: when any kernel throws in a
// forward pass recorded for gradients, tfjs-core's engine keeps the tensors it
// saved for the backward pass (on every backend), which is not the kernels'
// doing and would hide what this checks.
const CASES: [string, () => tf.Tensor | tf.Tensor[]][] = [
  [
    'Conv2DBackpropFilter',
    () => kernel('Conv2DBackpropFilter', { x: x4(), dy: dy4() }, { ...conv, filterShape: [3, 3, 5, 7] }),
  ],
  [
    'Conv2DBackpropInput',
    () => kernel('Conv2DBackpropInput', { dy: dy4(), filter: w4() }, { ...conv, inputShape: [3, 9, 8, 5] }),
  ],
  [
    'DepthwiseConv2dNativeBackpropFilter',
    () =>
      kernel(
        'DepthwiseConv2dNativeBackpropFilter',
        { x: x4(), dy: ddy() },
        { ...depthwise, filterShape: [3, 3, 5, 2] },
      ),
  ],
  [
    'DepthwiseConv2dNativeBackpropInput',
    () =>
      kernel(
        'DepthwiseConv2dNativeBackpropInput',
        { dy: ddy(), filter: dw() },
        { ...depthwise, inputShape: [3, 9, 8, 5] },
      ),
  ],
  [
    "FusedConv2D with bias and relu, and 'same' padding with a stride larger than the kernel",
    () => [
      tf.fused.conv2d({
        x: x4() as tf.Tensor4D,
        filter: w4() as tf.Tensor4D,
        strides: 1,
        pad: 'same',
        bias: bias(),
        activation: 'relu',
      }),
      tf.conv2d(x4() as tf.Tensor4D, tf.slice(w4(), [0, 0, 0, 0], [2, 2, 5, 7]) as tf.Tensor4D, 3, 'same'),
    ],
  ],
  [
    'BatchMatMul and _FusedMatMul, transposed',
    () => [
      tf.matMul(a2(), b2(), true, false),
      tf.matMul(b2(), a2(), true, false),
      tf.fused.matMul({ a: a2(), b: b2(), transposeA: true, bias: bias21(), activation: 'relu' }),
    ],
  ],
  [
    'MaxPoolGrad',
    () => {
      const x = x4() as tf.Tensor4D;
      const y = tf.maxPool(x, 2, 2, 'valid');
      return kernel(
        'MaxPoolGrad',
        { dy: tf.onesLike(y), input: x, output: y },
        {
          filterSize: 2,
          strides: 2,
          pad: 'valid',
          dimRoundingMode: undefined,
        },
      );
    },
  ],
  [
    'Tile, leading-axis Sum and Mean, Prelu',
    () => [
      tf.tile(tf.reshape(bias(), [1, 7]), [4, 2]),
      tf.sum(x4(), [0, 1, 2]),
      tf.mean(x4(), [0, 1]),
      tf.prelu(tf.slice(x4(), [0, 0, 0, 0], [3, 9, 1, 5]), alpha()),
    ],
  ],
  [
    'Mul, Add and Sub at rank 7 and 8 (reshaped, operands repeated)',
    () => [
      tf.mul(tf.reshape(x4(), [3, 1, 9, 1, 8, 1, 5]), r7b()),
      tf.add(r7a(), r7b()),
      tf.sub(r8a(), r8b()),
    ],
  ],
  ['AvgPool past 8,192 channels', () => tf.avgPool(big() as tf.Tensor4D, [9, 1], 1, 'valid')],
];

describe.each(CASES)('%s', (_name, f) => {
  it('leaves nothing behind when any one allocation is refused, then matches cpu', async () => {
    const ref = await runOn('cpu', f);
    await tf.setBackend('wasm');
    const wasm = (tf.backend() as unknown as { wasm: MallocModule }).wasm;
    const malloc = wasm._malloc;
    const ids = wasmDataIds();
    const tensors = tf.memory().numTensors;
    let refused = 0;
    for (let failAt = 1; ; failAt++) {
      let calls = 0;
      wasm._malloc = (n: number) => {
        if (++calls === failAt) throw new Error('refused by the test');
        return malloc(n);
      };
      let got: Float32Array[] | undefined;
      try {
        got = await runOn('wasm', f);
      } catch (e) {
        expect((e as Error).message).toBe('refused by the test');
        refused++;
      } finally {
        wasm._malloc = malloc;
      }
      expect([failAt, wasmDataIds(), tf.memory().numTensors]).toEqual([failAt, ids, tensors]);
      if (got) {
        // Every allocation of the computation was refused once, and it completes.
        expect(refused).toBe(failAt - 1);
        expect(refused).toBeGreaterThan(1);
        // Relative to each output's largest entry, as in kernels.test.ts: measured at most
        // 2.6e-7 over every case (_FusedMatMul, transposed), most outputs exactly equal.
        ref.forEach((v, i) => expect(relError(got![i], v)).toBeLessThan(1e-5));
        break;
      }
    }
  });
});
