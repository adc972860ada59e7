// The upstream wasm faults @normprune/runtime fixes (README, "What the kernels do", and the forward
// convolution wrappers under registerWasmTrainingKernels), measured: each case runs on cpu, on wasm
// with upstream's kernels (normprune's unregistered) and on wasm with normprune's, and prints one row:
// the largest absolute and relative difference from cpu (relative: over the largest |cpu| value),
// the NaN/Infinity positions that differ, a wrong shape, a thrown error or a wasm trap. Each case
// runs in a process of its own per configuration (a trap, a corrupted heap or a hang takes only its
// process), on a heap whose freed memory holds earlier values (as in a program that has run before),
// so an output upstream leaves partly unwritten shows what the heap held: the same values on every
// run, since inputs come from a seeded generator and each process does the same work first. Calls
// that can trap or corrupt the heap are made twice and followed by an unrelated 8x8 matMul that
// tells whether the heap survived. Not a test: it prints what happened, and exits 0 unless the bench
// itself fails.
//
//   cd packages/runtime && npm run bench:upstream-faults -- [--threads 2] [--rows 31,32] [--timeout 30]
//
// (that is: node --require ../../scripts/ts-register.cjs bench/upstream-faults.ts; 116 processes
// of about 1.3 s of CPU each: a few minutes, so not part of `npm run bench`). --threads 2 adds two
// columns, the same cases on the threaded build (slower: a hung process holds a core until
// --timeout); --rows runs only those rows, numbered as in the full table; --timeout is the seconds
// a process may take before it counts as hung.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { childConfig, option } from '../../../tools/testing/bench.js';
import { registerWasmTrainingKernels, unregisterWasmTrainingKernels } from '../src/kernels/index.js';
import { setWasmBackendWithThreads } from '../src/kernels/threads.js';

const THREADS = option('--threads', 1);
const TIMEOUT_S = option('--timeout', 30);
const ROWS_AT = process.argv.indexOf('--rows');
/** The rows to run, 1-based, or all. */
const ROWS = ROWS_AT >= 0 ? process.argv[ROWS_AT + 1].split(',').map(Number) : null;

/** Deterministic values in [-1, 1) (the generator of test/kernels-helpers.ts). */
function values(n: number, seed = 1): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  });
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
/** A float32 tensor of `shape` holding `values(size, seed)`. */
const rand = (shape: number[], seed = 1) => tf.tensor(values(size(shape), seed), shape);
const t4 = (shape: number[], seed = 1) => rand(shape, seed) as tf.Tensor4D;

interface Case {
  name: string;
  /** What the README says upstream did (its figure, from this script). */
  claim: string;
  run: () => tf.Tensor;
  /** Can trap or corrupt the heap: made twice, then a later matMul checks the heap. */
  alone?: boolean;
  /** Print the output's values too. */
  show?: boolean;
}

const xPool = () => t4([1, 6, 6, 2]);
const poolDy = () => {
  const out = tf.backend_util.computePool2DInfo([1, 6, 6, 2], 3, 2, 1, 1, 'ceil').outShape;
  return rand(out, 7);
};
const nanWindows = [NaN, 1, 2, 3, 1, 2, 3, NaN];
const fusedPrelu = (w: tf.Tensor, bias?: tf.Tensor) =>
  tf.fused.matMul({
    a: rand([5, 4], 1) as tf.Tensor2D,
    b: rand([4, 3], 2) as tf.Tensor2D,
    bias,
    activation: 'prelu',
    preluActivationWeights: w,
  });
const fusedBias = (bias: tf.Tensor) =>
  tf.fused.matMul({
    a: rand([3, 5], 1) as tf.Tensor2D,
    b: rand([5, 6], 2) as tf.Tensor2D,
    bias,
    activation: 'relu',
  });
/** An empty-output ('valid' window larger than one side) geometry: x [3, 7, 1, 4], 2x2, strides [2, 3]. */
const xEmpty = () => t4([3, 7, 1, 4], 5);

const CASES: Case[] = [
  // registerWasmTrainingKernels: the forward convolution wrappers.
  {
    name: "conv2d x [2,5,5,3], filter 3x3x3x4, stride 5, 'same'",
    claim: 'zeros: off by 1.00',
    run: () => tf.conv2d(t4([2, 5, 5, 3], 1), t4([3, 3, 3, 4], 2), 5, 'same'),
  },
  {
    name: "conv2d x [1,6,6,2], filter 3x3x2x3, stride 2, pad 1, 'ceil'",
    claim: 'off by 1.35',
    run: () => tf.conv2d(t4([1, 6, 6, 2], 1), t4([3, 3, 2, 3], 2), 2, 1, 'NHWC', 1, 'ceil'),
  },
  {
    name: 'DepthwiseConv2dNative kernel, stride 2 and dilation 2',
    claim: 'answered (cpu refuses)',
    run: () =>
      tf
        .engine()
        .runKernel(
          'DepthwiseConv2dNative',
          { x: t4([1, 9, 9, 2], 1), filter: t4([2, 2, 2, 1], 2) },
          { strides: [2, 2], pad: 'valid', dataFormat: 'NHWC', dilations: [2, 2] },
        ) as tf.Tensor,
  },
  {
    name: "fused.conv2d x [1,5,5,2], filter 3x3x2x3 'valid', bias [] (a scalar)",
    claim: 'refused',
    run: () =>
      tf.fused.conv2d({
        x: t4([1, 5, 5, 2], 1),
        filter: t4([3, 3, 2, 3], 2),
        strides: 1,
        pad: 'valid',
        bias: tf.scalar(0.5),
      }),
  },
  {
    name: "fused.conv2d x [1,5,5,2], filter 3x3x2x3 'valid', 'prelu' weights [3,1,3] ([OH,1,C])",
    claim: 'off by 1.12',
    run: () =>
      tf.fused.conv2d({
        x: t4([1, 5, 5, 2], 1),
        filter: t4([3, 3, 2, 3], 2),
        strides: 1,
        pad: 'valid',
        activation: 'prelu',
        preluActivationWeights: rand([3, 1, 3], 3),
      }),
  },
  // A numeric pad with a geometry that differs between height and width.
  {
    name: 'conv2d x [1,5,5,1], filter [1,3,1,1], pad 1',
    claim: 'off by 1.38',
    run: () => tf.conv2d(t4([1, 5, 5, 1], 1), t4([1, 3, 1, 1], 2), 1, 1),
    alone: true,
  },
  {
    name: 'conv2d x [1,5,5,1], filter 3x3, strides [1,2], pad 1',
    claim: 'off by 1.45',
    run: () => tf.conv2d(t4([1, 5, 5, 1], 1), t4([3, 3, 1, 1], 2), [1, 2], 1),
    alone: true,
  },
  {
    name: 'conv2d x [2,10,12,8], filter 3x3x8x5, strides [3,1], pad 0',
    claim: 'trap, then a matMul traps',
    run: () => tf.conv2d(t4([2, 10, 12, 8], 6), t4([3, 3, 8, 5], 7), [3, 1], 0),
    alone: true,
  },
  {
    name: 'maxPool x [1,12,5,4], filter [2,1], strides [3,1], pad 2',
    claim: 'trap, then a matMul traps',
    run: () => tf.maxPool(t4([1, 12, 5, 4], 1), [2, 1], [3, 1], 2),
    alone: true,
  },
  {
    name: 'avgPool x [1,12,5,4], filter [2,1], strides [3,1], pad 2',
    claim: 'trap, then a matMul traps',
    run: () => tf.avgPool(t4([1, 12, 5, 4], 1), [2, 1], [3, 1], 2),
    alone: true,
  },
  // Empty inner dimension or axis.
  {
    name: 'matMul [2,0] x [0,3]',
    claim: '2.0e-40, cpu 0',
    run: () => tf.matMul(tf.zeros([2, 0]), tf.zeros([0, 3])),
    alone: true,
  },
  {
    name: 'dense weight gradient, batch of 0 rows (x [0,6], W [6,4])',
    claim: 'zeros (its transposed product)',
    run: () => tf.grad((w: tf.Tensor) => tf.matMul(tf.zeros([0, 6]), w))(tf.ones([6, 4])),
    alone: true,
  },
  {
    name: 'sum(zeros [0,5,6], axis 0) (a bias gradient of an empty batch)',
    claim: 'up to 0.99, cpu 0',
    run: () => tf.sum(tf.zeros([0, 5, 6]), 0),
    alone: true,
  },
  {
    name: 'mean(zeros [5,0], axis 1)',
    claim: '2.0e-40, cpu 0',
    run: () => tf.mean(tf.zeros([5, 0]), 1),
    alone: true,
  },
  // _FusedMatMul.
  {
    name: 'fused.matMul a [3,2,3], b [3,3,4], bias [4]',
    claim: 'off by 0.69',
    run: () => tf.fused.matMul({ a: rand([3, 2, 3], 1), b: rand([3, 3, 4], 2), bias: rand([4], 3) }),
  },
  {
    name: 'fused.matMul a [3,2,3], b [3,4], bias [4]',
    claim: 'off by 0.96',
    run: () => tf.fused.matMul({ a: rand([3, 2, 3], 1), b: rand([3, 4], 2), bias: rand([4], 3) }),
  },
  {
    name: "fused.matMul [3,5] x [5,6], 'relu', bias []",
    claim: 'refused (rank 0)',
    run: () => fusedBias(tf.scalar(0.5)),
  },
  {
    name: "fused.matMul [3,5] x [5,6], 'relu', bias [3,1]",
    claim: 'refused (rank 2)',
    run: () => fusedBias(rand([3, 1], 3)),
  },
  {
    name: 'fused.matMul [2,3,5] x [5,6], bias [2,1,6]',
    claim: 'refused (rank 3)',
    run: () => tf.fused.matMul({ a: rand([2, 3, 5], 1), b: rand([5, 6], 2), bias: rand([2, 1, 6], 3) }),
  },
  {
    name: "fused.matMul [3,5] x [5,6], 'relu', bias [1]",
    claim: 'off by 0.24',
    run: () => fusedBias(rand([1], 3)),
  },
  {
    name: "fused.matMul [5,4] x [4,3], bias [3], 'prelu' weights [5,1]",
    claim: 'off by 0.70',
    run: () => fusedPrelu(tf.mul(rand([5, 1], 3), 0.5), tf.tensor1d([0.1, -0.2, 0.3])),
  },
  {
    name: "fused.matMul [5,4] x [4,3], no bias, 'prelu' weights [5,1]",
    claim: 'off by 1.10',
    run: () => fusedPrelu(rand([5, 1], 3)),
  },
  {
    name: 'fused.matMul a [3,0], b [0,4], bias [4]',
    claim: 'off by 2.6',
    run: () => tf.fused.matMul({ a: tf.zeros([3, 0]), b: tf.zeros([0, 4]), bias: rand([4], 3) }),
    alone: true,
  },
  {
    name: "gradient of a 'linear' fused.matMul [3,5] x [5,6], bias [1,6], w.r.t. the bias",
    claim: 'refused under the tape',
    run: () =>
      tf.grad((c: tf.Tensor) =>
        tf.fused.matMul({ a: rand([3, 5], 1) as tf.Tensor2D, b: rand([5, 6], 2) as tf.Tensor2D, bias: c }),
      )(rand([1, 6], 3)),
  },
  // Prelu's shapes.
  {
    name: 'prelu x [2,0,8], weights [2,1,8]',
    claim: 'the empty tensor (trapped after our old repeat)',
    run: () => tf.prelu(tf.zeros([2, 0, 8]), tf.ones([2, 1, 8])),
    alone: true,
  },
  {
    name: "fused.matMul [2,0,9] x [9,8], 'prelu' weights [2,1,8]",
    claim: 'the empty tensor (trapped after our old repeat)',
    run: () =>
      tf.fused.matMul({
        a: tf.zeros([2, 0, 9]),
        b: tf.ones([9, 8]),
        activation: 'prelu',
        preluActivationWeights: tf.ones([2, 1, 8]),
      }),
    alone: true,
  },
  {
    name: "fused.matMul [0,9] x [9,8], 'prelu' weights [0,8]",
    claim: 'trap: divide by zero',
    run: () =>
      tf.fused.matMul({
        a: tf.zeros([0, 9]),
        b: tf.ones([9, 8]),
        activation: 'prelu',
        preluActivationWeights: tf.zeros([0, 8]),
      }),
    alone: true,
  },
  {
    name: 'prelu x [0.5,-0.5] as [2,1], weights [0.1,0.2,0.3] as [3,1,1]',
    claim: "x's shape, garbage",
    run: () => tf.prelu(tf.tensor([0.5, -0.5], [2, 1]), tf.tensor([0.1, 0.2, 0.3], [3, 1, 1])),
    show: true,
  },
  {
    name: "fused.matMul [1,2]^T x [1,1], 'prelu' weights [3,1,1]",
    claim: 'a [2,1] tensor, cpu throws',
    run: () =>
      tf.fused.matMul({
        a: rand([1, 2], 1) as tf.Tensor2D,
        b: rand([1, 1], 2) as tf.Tensor2D,
        transposeA: true,
        activation: 'prelu',
        preluActivationWeights: tf.tensor3d([0.1, 0.2, 0.3], [3, 1, 1]),
      }),
  },
  {
    name: "fused.conv2d x [2,3,4,2], filter 3x3x2x2 'valid' (out [2,1,2,2]), 'prelu' weights [3,2,2]",
    claim: "the output's shape, garbage",
    run: () =>
      tf.fused.conv2d({
        x: t4([2, 3, 4, 2], 1),
        filter: t4([3, 3, 2, 2], 2),
        strides: 1,
        pad: 'valid',
        activation: 'prelu',
        preluActivationWeights: rand([3, 2, 2], 3),
      }),
  },
  // Pools whose size rounds up; windows wholly in the padding.
  {
    name: "maxPool x [1,6,6,2], filter 3, stride 2, pad 1, 'ceil'",
    claim: 'off by 1.69',
    run: () => tf.maxPool(xPool(), 3, 2, 1, 'ceil'),
  },
  {
    name: "avgPool x [1,6,6,2], filter 3, stride 2, pad 1, 'ceil'",
    claim: 'off by 1.15',
    run: () => tf.avgPool(xPool(), 3, 2, 1, 'ceil'),
  },
  {
    name: 'maxPool x [1,4,4,1], filter 1, stride 1, pad 1',
    claim: 'image, then zeros: 1.14, 20 NaN/Inf',
    run: () => tf.maxPool(t4([1, 4, 4, 1]), 1, 1, 1),
  },
  {
    name: 'avgPool x [1,4,4,1], filter 2, stride 2, pad 2',
    claim: '0 for NaN: 12 differ',
    run: () => tf.avgPool(t4([1, 4, 4, 1]), 2, 2, 2),
  },
  {
    name: 'maxPool x [1,4,4,1], filter 3, stride 1, pad 3',
    claim: '0 for -Infinity: 28 differ',
    run: () => tf.maxPool(t4([1, 4, 4, 1]), 3, 1, 3),
  },
  {
    name: "maxPool's dx, the 'ceil' case above (x seed 3, random dy)",
    claim: 'dx off by 1.28',
    run: () =>
      tf.grad((x: tf.Tensor) => tf.maxPool(x as tf.Tensor4D, 3, 2, 1, 'ceil'))(t4([1, 6, 6, 2], 3), poolDy()),
  },
  {
    name: "avgPool's dx, the 'ceil' case above (x seed 3, random dy)",
    claim: 'dx off by 1.11',
    run: () =>
      tf.grad((x: tf.Tensor) => tf.avgPool(x as tf.Tensor4D, 3, 2, 1, 'ceil'))(t4([1, 6, 6, 2], 3), poolDy()),
  },
  // Cast to bool.
  {
    name: "cast([0.5,-0.5,2,-2,3,0,300], 'bool')",
    claim: '0.5 -> 0, -2 -> 254, 300 -> 44',
    run: () => tf.cast(tf.tensor1d([0.5, -0.5, 2, -2, 3, 0, 300]), 'bool'),
    show: true,
  },
  {
    name: "logicalNot(cast(int32 [2,-2,3,0], 'bool'))",
    claim: '[3, 255, 2, 1]',
    run: () => tf.logicalNot(tf.cast(tf.tensor1d([2, -2, 3, 0], 'int32'), 'bool')),
    show: true,
  },
  // Empty outputs.
  {
    name: "maxPool x [3,7,1,4], 2x2, strides [2,3], 'valid' (out [3,3,0,4])",
    claim: 'trap, then a matMul traps',
    run: () => tf.maxPool(xEmpty(), 2, [2, 3], 'valid'),
    alone: true,
  },
  {
    name: "avgPool x [3,7,1,4], 2x2, strides [2,3], 'valid' (out [3,3,0,4])",
    claim: 'trap, then a matMul traps',
    run: () => tf.avgPool(xEmpty(), 2, [2, 3], 'valid'),
    alone: true,
  },
  {
    name: "conv2d x [3,7,1,4], filter 2x2x4x2, strides [2,3], 'valid' (out [3,3,0,2])",
    claim: 'trap, then a matMul is right',
    run: () => tf.conv2d(xEmpty(), t4([2, 2, 4, 2], 2), [2, 3], 'valid'),
    alone: true,
  },
  {
    name: "depthwiseConv2d x [3,7,1,4], filter 2x2x4x1, strides [2,3], 'valid'",
    claim: 'trap, then a matMul is right',
    run: () => tf.depthwiseConv2d(xEmpty(), t4([2, 2, 4, 1], 2), [2, 3], 'valid'),
    alone: true,
  },
  {
    name: "fused.conv2d x [3,7,1,4], filter 2x2x4x2, strides [2,3], 'valid', bias [2], 'relu'",
    claim: 'trap, then a matMul is right',
    run: () =>
      tf.fused.conv2d({
        x: xEmpty(),
        filter: t4([2, 2, 4, 2], 2),
        strides: [2, 3],
        pad: 'valid',
        bias: rand([2], 3),
        activation: 'relu',
      }),
    alone: true,
  },
  {
    name: "maxPool x [3,1,7,4], 2x2, strides [3,2], 'valid' (out [3,0,3,4])",
    claim: 'trap, then a matMul traps',
    run: () => tf.maxPool(t4([3, 1, 7, 4], 5), 2, [3, 2], 'valid'),
    alone: true,
  },
  {
    name: 'maxPool x [2,1,1,3], filter 3, pad 0 (a negative size)',
    claim: "trap (cpu's error)",
    run: () => tf.maxPool(t4([2, 1, 1, 3], 5), 3, 1, 0),
    alone: true,
  },
  // Select with an empty output.
  {
    name: 'where(x > 0, zeros [4096,0], zeros [4096,0]), x [4096,1]',
    claim: 'trap, then a matMul traps',
    run: () => tf.where(tf.greater(rand([4096, 1], 3), 0), tf.zeros([4096, 0]), tf.zeros([4096, 0])),
    alone: true,
  },
  {
    name: 'gradient w.r.t. the weights of sum(prelu(x [4096,1], weights [0]))',
    claim: 'trap in the forward: divide by zero',
    run: () => tf.grad((a: tf.Tensor) => tf.sum(tf.prelu(rand([4096, 1], 3), a)))(tf.zeros([0])),
    alone: true,
  },
  // Prelu with int32 weights.
  {
    name: 'prelu x [-1,2,-3,4], int32 weights [2,2,2,2]',
    claim: '2 as 2.8e-45',
    run: () => tf.prelu(tf.tensor1d([-1, 2, -3, 4]), tf.tensor1d([2, 2, 2, 2], 'int32')),
    show: true,
  },
  {
    name: "fused.matMul [5,4] x [4,3], bias [3], 'prelu' int32 weights [3]",
    claim: 'off by 1.00',
    run: () => fusedPrelu(tf.tensor1d([1, 2, 3], 'int32'), tf.tensor1d([0.1, -0.2, 0.3])),
  },
  {
    name: "fused.conv2d x [1,5,5,2], filter 3x3x2x3 'same', bias [3], 'prelu' int32 weights [3]",
    claim: 'off by 1.00',
    run: () =>
      tf.fused.conv2d({
        x: t4([1, 5, 5, 2], 1),
        filter: t4([3, 3, 2, 3], 2),
        strides: 1,
        pad: 'same',
        bias: rand([3], 3),
        activation: 'prelu',
        preluActivationWeights: tf.tensor1d([1, 2, 3], 'int32'),
      }),
  },
  // Float32 binary kernels with an operand of rank 7 or more (XNNPACK takes at most 6 axes).
  {
    name: 'mul of [3,1,1,4,1,5,3] and [4,1,5,3]',
    claim: 'off by 2.86',
    run: () => tf.mul(rand([3, 1, 1, 4, 1, 5, 3], 1), rand([4, 1, 5, 3], 2)),
  },
  {
    name: 'mul of [1,1,1,4,1,5,3] and [4,1,5,3] (rank 7, nothing broadcast)',
    claim: 'off by 2.36',
    run: () => tf.mul(rand([1, 1, 1, 4, 1, 5, 3], 1), rand([4, 1, 5, 3], 2)),
  },
  {
    name: 'add of two [2,2,2,2,2,2,3]',
    claim: 'off by 1.61',
    run: () => tf.add(rand([2, 2, 2, 2, 2, 2, 3], 1), rand([2, 2, 2, 2, 2, 2, 3], 2)),
  },
  {
    name: 'sub of [2,1,2,1,2,1,2,3] and [3] (rank 8)',
    claim: 'off by 1.65',
    run: () => tf.sub(rand([2, 1, 2, 1, 2, 1, 2, 3], 1), rand([3], 2)),
  },
  {
    name: 'div of [2,3,2,3,2,3,2] and [3,1,3,1,3,1] (broadcasts alternating over 7 axes)',
    claim: 'off by 2.11',
    run: () => tf.div(rand([2, 3, 2, 3, 2, 3, 2], 1), tf.add(rand([3, 1, 3, 1, 3, 1], 2), 2)),
  },
  // Not changed: a NaN in a pool's window.
  {
    name: "avgPool 2x2 'valid' of windows [NaN,1,2,3] and [1,2,3,NaN]",
    claim: '-Infinity for NaN (ours too)',
    run: () => tf.avgPool(tf.tensor4d(nanWindows, [2, 2, 2, 1]), 2, 2, 'valid'),
    show: true,
  },
  {
    name: "maxPool 2x2 'valid' of windows [NaN,1,2,3] and [1,2,3,NaN]",
    claim: '-Infinity, cpu 3 (ours too)',
    run: () => tf.maxPool(tf.tensor4d(nanWindows, [2, 2, 2, 1]), 2, 2, 'valid'),
    show: true,
  },
  // Convolutions of an input with 0 channels (after the rows above, whose numbers the README cites).
  {
    name: "conv2d x [2,5,5,0], filter 3x3x0x3, 'same'",
    claim: 'heap leftovers',
    run: () =>
      tf.conv2d(tf.zeros([2, 5, 5, 0]) as tf.Tensor4D, tf.zeros([3, 3, 0, 3]) as tf.Tensor4D, 1, 'same'),
    alone: true,
  },
  {
    name: "fused.conv2d x [1,4,4,0], filter 3x3x0x3, 'valid', bias [0.5,-1,2], 'relu'",
    claim: 'heap leftovers',
    run: () =>
      tf.fused.conv2d({
        x: tf.zeros([1, 4, 4, 0]) as tf.Tensor4D,
        filter: tf.zeros([3, 3, 0, 3]) as tf.Tensor4D,
        strides: 1,
        pad: 'valid',
        bias: tf.tensor1d([0.5, -1, 2]),
        activation: 'relu',
      }),
    show: true,
    alone: true,
  },
  {
    name: "depthwiseConv2d x [2,5,5,0], filter 3x3x0x2, 'same'",
    claim: 'trap: divide by zero',
    run: () =>
      tf.depthwiseConv2d(
        tf.zeros([2, 5, 5, 0]) as tf.Tensor4D,
        tf.zeros([3, 3, 0, 2]) as tf.Tensor4D,
        1,
        'same',
      ),
    alone: true,
  },
];

// ---------------------------------------------------------------------------------------------
// Child: `MODE:THREADS:I` runs case I on cpu and on wasm (MODE 'upstream' or 'ours') and prints a
// JSON line per result as it goes (values as strings, so that NaN and infinities survive).

type Outcome = { shape: number[]; values: string[] } | { error: string };

function outcome(fn: () => tf.Tensor): Outcome {
  try {
    const y = tf.tidy(fn);
    const r = { shape: y.shape, values: Array.from(y.dataSync() as ArrayLike<number>, String) };
    y.dispose();
    return r;
  } catch (e) {
    const trap = e instanceof WebAssembly.RuntimeError;
    return { error: `${trap ? 'trap' : 'throws'}: ${(e as Error).message.split('\n')[0]}` };
  }
}

/** Leaves non-zero data in freed wasm heap memory, so uninitialised outputs show. */
function dirtyHeap(): void {
  for (let i = 0; i < 4; i++) {
    tf.tidy(() => {
      const a = tf.tensor2d(values(1024, 100 + i), [32, 32]);
      tf.matMul(a, a).dataSync();
      tf.add(tf.tensor1d(values(4096, 200 + i)), 1).dataSync();
      for (let n = 1; n <= 64; n++) tf.add(tf.tensor1d(values(n, 300 + n)), 1).dataSync();
    });
  }
}

/** Whether an unrelated 8x8 matMul on wasm still gives cpu's values. */
async function heapCheck(): Promise<string> {
  const f = () => tf.matMul(tf.tensor2d(values(64, 9), [8, 8]), tf.tensor2d(values(64, 10), [8, 8]));
  await tf.setBackend('cpu');
  const ref = outcome(f);
  await tf.setBackend('wasm');
  const got = outcome(f);
  if ('error' in got) return `a later matMul ${got.error.replace(/^trap: /, 'traps: ')}`;
  if ('error' in ref) throw new Error(`cpu matMul failed: ${ref.error}`);
  const wrong = got.values.some((v, i) => Math.abs(+v - +ref.values[i]) > 1e-5);
  return wrong ? 'a later matMul is wrong' : 'a later matMul is right';
}

async function child(config: string): Promise<void> {
  const [mode, threads, id] = config.split(':');
  const c = CASES[+id];
  setWasmPaths(
    path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + path.sep,
  );
  registerWasmTrainingKernels();
  if (+threads > 1) await setWasmBackendWithThreads(+threads);
  else if (!(await tf.setBackend('wasm'))) throw new Error('wasm did not start');
  if (mode === 'upstream') unregisterWasmTrainingKernels();
  await tf.setBackend('cpu');
  const cpu = outcome(c.run);
  await tf.setBackend('wasm');
  dirtyHeap();
  console.log(JSON.stringify({ cpu, wasm: outcome(c.run) }));
  if (c.alone) {
    outcome(c.run); // a second call: a corrupted heap often traps only then
    console.log(JSON.stringify({ after: await heapCheck() }));
  }
}

// ---------------------------------------------------------------------------------------------
// Parent.

type Line = { cpu?: Outcome; wasm?: Outcome; after?: string };

/** Runs a child; returns its JSON lines, and how it ended when it did not exit 0. */
function runChild(config: string): { lines: Line[]; died?: string } {
  const args = [...process.execArgv, __filename, '--child', config];
  let stdout: string;
  let died: string | undefined;
  try {
    stdout = execFileSync(process.execPath, args, {
      encoding: 'utf8',
      maxBuffer: 1 << 24,
      timeout: TIMEOUT_S * 1000,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; signal?: string; code?: string };
    stdout = err.stdout ?? '';
    if (err.code === 'ETIMEDOUT' || err.signal === 'SIGTERM') died = `hung (killed after ${TIMEOUT_S} s)`;
    else {
      const stderr = String(err.stderr ?? e);
      const m = /RuntimeError: ([^\n]*)/.exec(stderr) ?? /Error: ([^\n]*)/.exec(stderr);
      died = `process died: ${(m ? m[1] : (stderr.trim().split('\n').pop() ?? '')).slice(0, 60)}`;
    }
  }
  const lines = stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Line);
  return { lines, died };
}

const fmt = (x: number) => (x === 0 ? '0' : x >= 0.01 && x < 1000 ? x.toPrecision(3) : x.toExponential(2));
const short = (s: string) => (s.length > 64 ? `${s.slice(0, 61)}...` : s);
const showValues = (v: string[]) =>
  `[${v.map((s) => (Number.isInteger(+s) || !Number.isFinite(+s) ? s : (+s).toPrecision(2))).join(', ')}]`;

/** One cell: the wasm outcome against cpu's. */
function cell(c: Case, cpu: Outcome | undefined, wasm: Outcome | undefined): string {
  if (wasm == null || cpu == null) return '';
  if ('error' in wasm) return short(wasm.error);
  const shown = c.show ? `: ${showValues(wasm.values)}` : '';
  if ('error' in cpu) return `returns [${wasm.shape}] (cpu throws)${shown}`;
  if (wasm.shape.join() !== cpu.shape.join()) return `shape [${wasm.shape}], cpu [${cpu.shape}]${shown}`;
  if (cpu.values.length === 0) return `[${wasm.shape}], as cpu`;
  let abs = 0;
  let max = 0;
  let nan = 0;
  cpu.values.forEach((rs, k) => {
    const [r, g] = [+rs, +wasm.values[k]];
    if (!Number.isFinite(r) || !Number.isFinite(g)) {
      if (!Object.is(r, g)) nan++;
      return;
    }
    abs = Math.max(abs, Math.abs(g - r));
    max = Math.max(max, Math.abs(r));
  });
  const finite =
    abs === 0 ? 'finite values exact' : `abs ${fmt(abs)}, ${max === 0 ? 'cpu 0' : `rel ${fmt(abs / max)}`}`;
  const diff = abs === 0 && nan === 0 ? 'exact' : `${finite}${nan ? `, ${nan} NaN/Inf differ` : ''}`;
  return `${diff}${shown}`;
}

function cpuCell(c: Case, cpu: Outcome | undefined): string {
  if (cpu == null) return '';
  if ('error' in cpu) return short(cpu.error);
  return `[${cpu.shape}]${c.show ? `: ${showValues(cpu.values)}` : ''}`;
}

/** Runs case `id` in `mode`: its cpu outcome and the wasm cell. */
function run(id: number, mode: 'upstream' | 'ours', threads: number): { cpu?: Outcome; cell: string } {
  const { lines, died } = runChild(`${mode}:${threads}:${id}`);
  const first = lines.find((l) => l.wasm != null);
  if (first == null) return { cell: died ?? 'process ended without a result' };
  const result = cell(CASES[id], first.cpu, first.wasm);
  if (!CASES[id].alone) return { cpu: first.cpu, cell: result };
  const after = lines.find((l) => l.after != null)?.after ?? died ?? 'process ended';
  return { cpu: first.cpu, cell: `${result}; after 2 calls, ${after}` };
}

async function main(): Promise<void> {
  const config = childConfig();
  if (config) return child(config);
  const t0 = performance.now();
  const configs = (THREADS > 1 ? [1, THREADS] : [1]).flatMap((threads) =>
    (['upstream', 'ours'] as const).map((mode) => ({ mode, threads })),
  );
  const title = ({ mode, threads }: (typeof configs)[number]) =>
    `${mode === 'upstream' ? 'upstream wasm' : 'normprune wasm'}${threads > 1 ? `, ${threads} threads` : ''}`;
  console.log(
    `tfjs-core ${tf.version_core}; against cpu: abs = max |wasm - cpu|, rel = abs / max |cpu|, over finite values\n`,
  );
  console.log(`| # | case | README says upstream gave | cpu | ${configs.map(title).join(' | ')} |`);
  console.log(`| --: | --- | --- | --- |${configs.map(() => ' --- |').join('')}`);
  CASES.forEach((c, i) => {
    if (ROWS && !ROWS.includes(i + 1)) return;
    const cells = configs.map(({ mode, threads }) => run(i, mode, threads));
    const row = [String(i + 1), c.name, c.claim, cpuCell(c, cells[0].cpu), ...cells.map((r) => r.cell)];
    console.log(`| ${row.map((s) => s.replace(/\|/g, '\\|')).join(' | ')} |`);
  });
  console.log(`\n${((performance.now() - t0) / 1000).toFixed(0)} s`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
