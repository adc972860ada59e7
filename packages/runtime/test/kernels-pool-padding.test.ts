// (Found unpinned by mutation testing: fails on its mutant.)
// maxPool / avgPool on wasm with a top/left pad equal to the filter size: the first
// window lies wholly in the padding, where the cpu backend gives -Infinity (max) and
// NaN (avg, 0 / 0) and upstream XNNPACK gives 0 (pool_forward.ts).
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { registerWasmTrainingKernels } from '../src/kernels/index.js';
import { initWasm } from './kernels-helpers.js';

beforeAll(async () => {
  registerWasmTrainingKernels();
  await initWasm();
});

afterAll(async () => {
  await tf.setBackend('cpu');
});

// Before-padding equal to the filter, after-padding 0: only the 'before >= filter' test sees the empty window.
const PAD = [
  [0, 0],
  [2, 0],
  [2, 0],
  [0, 0],
];

async function on(backend: string, f: (x: tf.Tensor4D) => tf.Tensor): Promise<number[]> {
  await tf.setBackend(backend);
  const x = tf.tensor4d(
    Array.from({ length: 9 }, (_, i) => i + 1),
    [1, 3, 3, 1],
  );
  const y = f(x);
  const v = Array.from(await y.data());
  tf.dispose([x, y]);
  return v;
}

it.each([
  ['maxPool', (x: tf.Tensor4D) => tf.maxPool(x, 2, 1, PAD as never)] as const,
  ['avgPool', (x: tf.Tensor4D) => tf.avgPool(x, 2, 1, PAD as never)],
])(
  '%s with top/left pad 2 = filter 2 (bottom/right 0) matches cpu, windows wholly in the padding included',
  async (_, pool) => {
    const cpu = await on('cpu', pool as never);
    const wasm = await on('wasm', pool as never);
    expect(cpu.some((v) => !Number.isFinite(v))).toBe(true);
    expect(wasm).toEqual(cpu);
  },
);
