// The layers on the backend training actually uses: wasm (with
// @normprune/runtime's training kernels) must agree with the cpu reference,
// forward and backward, for every granularity.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { initBackend } from '@normprune/runtime';
import { decompose } from '../src/index.js';
import { expectNoLeak, wasmMemory } from '../../../tools/testing/leaks.js';
import { outputsAndGrads } from './helpers.js';

/**
 * max_i |a_i - b_i| / max(|b_i|, floor * max_j |b_j|): relative per entry,
 * with a floor at a fraction of the array's largest entry because entries
 * near zero come out of cancelling sums and carry rounding of the size of
 * the terms, not of the result. `floor` 1 is the error relative to the
 * array's scale. Plain arrays: creates no tensor.
 */
function relativeError(a: Float32Array, b: Float32Array, floor: number): number {
  if (a.length !== b.length) throw new Error(`size mismatch ${a.length} vs ${b.length}`);
  const scale = b.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  let err = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    // d !== 0 rather than d > 0, so that a NaN propagates into the result and fails.
    if (d !== 0) err = Math.max(err, d / Math.max(Math.abs(b[i]), floor * scale));
  }
  return err;
}

function model(): tfl.LayersModel {
  const seeded = (seed: number) => tfl.initializers.glorotNormal({ seed });
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        inputShape: [10, 10, 2],
        filters: 4,
        kernelSize: 3,
        activation: 'relu',
        kernelInitializer: seeded(1),
      }),
      tfl.layers.conv2d({
        filters: 3,
        kernelSize: 3,
        strides: 2,
        padding: 'same',
        kernelInitializer: seeded(2),
      }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: 8, activation: 'relu', kernelInitializer: seeded(3) }),
      tfl.layers.dense({ units: 3, kernelInitializer: seeded(4) }),
    ],
  });
}

describe('on the wasm backend', () => {
  beforeAll(async () => {
    const info = await initBackend({ prefer: 'wasm', quiet: true });
    expect(info.backend).toBe('wasm');
  });

  it.each([
    ['output', 'kernel'],
    ['input', 'filter'],
  ] as const)('outputs and gradients equal the cpu backend (dense %s, conv2d %s)', async (dense, conv2d) => {
    const m = decompose(model(), { granularity: { dense, conv2d } });
    const [x, r] = [
      [4, 10, 10, 2],
      [4, 3],
    ].map((shape, i) => ({
      values: tf.tidy(() => tf.randomNormal(shape, 0, 1, 'float32', 5 + i).dataSync() as Float32Array),
      shape,
    }));
    await tf.setBackend('wasm');
    const onWasm = await expectNoLeak(() => outputsAndGrads(m, x, r));
    await tf.setBackend('cpu');
    const onCpu = outputsAndGrads(m, x, r);
    await tf.setBackend('wasm');
    expect(onWasm.length).toBe(onCpu.length);
    onWasm.forEach((w, i) => {
      // Against each array's own scale (gradients here are mostly < 1, where
      // an absolute bound would be loose): measured at most 1e-6.
      expect(relativeError(w, onCpu[i], 1)).toBeLessThan(1e-5);
      // Entry by entry, down to 1% of the largest entry: measured at most
      // 1.1e-5 (an entry at 8% of its array's largest: float32 rounding of
      // the sums, which the two backends order differently).
      expect(relativeError(w, onCpu[i], 1e-2)).toBeLessThan(1e-4);
    });
  });

  it('predict() over and over does not grow the wasm heap', async () => {
    // Every call computes the kernels afresh while the biases live on; before
    // @normprune/runtime copied such a bias for the call, upstream's XNNPACK
    // cache kept a key per call under each bias id: this model's 500
    // predicts grew the heap's used top by about 130 KB.
    await tf.setBackend('wasm');
    const m = decompose(model(), { granularity: { dense: 'input', conv2d: 'kernel' } });
    const x = tf.randomNormal([2, 10, 10, 2], 0, 1, 'float32', 7);
    const predict = () => tf.tidy(() => void (m.predict(x) as tf.Tensor).dataSync());
    wasmMemory(); // its first probe grows the heap
    for (let i = 0; i < 20; i++) predict();
    const before = wasmMemory();
    await expectNoLeak(() => {
      for (let i = 0; i < 500; i++) predict();
    });
    const after = wasmMemory();
    expect(after.dataIds).toBe(before.dataIds);
    expect(after.heapBytes).toBe(before.heapBytes);
    // Measured 0; a few kilobytes of room for the allocator's placement.
    expect(after.mallocTop - before.mallocTop).toBeLessThanOrEqual(4096);
    x.dispose();
    m.dispose();
  });
});
