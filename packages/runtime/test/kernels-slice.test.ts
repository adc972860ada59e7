// Slice on wasm: upstream copied all of x off the heap (readSync) for every slice, which
// model.predict makes once per chunk of 32. Ours copies the slice straight from the heap:
// values bit for bit the cpu backend's (float32, int32, bool; contiguous and not), no copy
// of x, and nothing left behind.
import * as tf from '@tensorflow/tfjs-core';
import { registerWasmTrainingKernels } from '../src/kernels/index.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';
import { initWasm, int, rng, wasmDataIds } from './kernels-helpers.js';

beforeAll(async () => {
  await initWasm();
  registerWasmTrainingKernels();
});

afterAll(async () => {
  await tf.setBackend('cpu');
});

async function sliceOn(
  backend: 'cpu' | 'wasm',
  x: { values: number[]; shape: number[]; dtype: 'float32' | 'int32' | 'bool' },
  begin: number[],
  size: number[],
): Promise<{ shape: number[]; dtype: string; values: number[] }> {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const t = tf.slice(tf.tensor(x.values, x.shape, x.dtype), begin, size);
    return { shape: t.shape, dtype: t.dtype, values: Array.from(t.dataSync()) };
  });
}

test('slices of every rank from 1 to 6, float32, int32 and bool, contiguous or not, are the cpu backend’s bit for bit', async () => {
  const r = rng(11);
  let cases = 0;
  for (let i = 0; i < 300; i++) {
    const rank = int(r, 1, 6);
    const shape = Array.from({ length: rank }, () => int(r, 1, rank > 4 ? 3 : 6));
    const dtype = (['float32', 'int32', 'bool'] as const)[int(r, 0, 2)];
    const n = shape.reduce((a, b) => a * b, 1);
    const vals = Array.from({ length: n }, () =>
      dtype === 'bool' ? int(r, 0, 1) : dtype === 'int32' ? int(r, -1000, 1000) : Math.fround(r() * 100),
    );
    const begin = shape.map((d) => int(r, 0, d - 1));
    // -1 takes the rest of an axis; otherwise 1 .. what is left.
    const size = shape.map((d, k) => (int(r, 0, 4) === 0 ? -1 : int(r, 1, d - begin[k])));
    const x = { values: vals, shape, dtype };
    const cpu = await sliceOn('cpu', x, begin, size);
    await tf.setBackend('wasm');
    const ids = wasmDataIds();
    const wasm = await expectNoLeak(() => sliceOn('wasm', x, begin, size));
    expect(wasmDataIds()).toBe(ids);
    expect({ xShape: shape, begin, size, ...wasm }).toEqual({ xShape: shape, begin, size, ...cpu });
    cases++;
  }
  expect(cases).toBe(300);
});

test('an empty slice keeps its shape, a rank-1 slice its values', async () => {
  for (const [shape, begin, size] of [
    [
      [4, 3],
      [1, 0],
      [0, 3],
    ],
    [
      [4, 3],
      [2, 1],
      [2, 0],
    ],
    [[5], [2], [3]],
  ] as [number[], number[], number[]][]) {
    const x = {
      values: Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => i),
      shape,
      dtype: 'float32' as const,
    };
    expect(await sliceOn('wasm', x, begin, size)).toEqual(await sliceOn('cpu', x, begin, size));
  }
});

test('slicing does not read x off the heap (model.predict slices every chunk of a batch)', async () => {
  await tf.setBackend('wasm');
  const backend = tf.backend() as unknown as { readSync: (...a: unknown[]) => unknown };
  const spy = jest.spyOn(backend, 'readSync');
  try {
    tf.tidy(() => {
      const x = tf.ones([500, 784]);
      for (let b = 0; b < 500; b += 32) tf.slice(x, [b, 0], [Math.min(32, 500 - b), 784]);
      tf.slice(tf.ones([6, 5, 4]), [1, 1, 1], [3, 2, 2]);
    });
    expect(spy).not.toHaveBeenCalled();
  } finally {
    spy.mockRestore();
  }
});
