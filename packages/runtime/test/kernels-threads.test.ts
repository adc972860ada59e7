import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { registerWasmTrainingKernels } from '../src/kernels/index.js';
import { setWasmBackendWithThreads } from '../src/kernels/threads.js';
import { relError, rng, runOn, values } from './kernels-helpers.js';

// Jest gives each test file its own tfjs-core engine, so the wasm backend here
// starts fresh with the threaded binary.
describe('threaded wasm under Node', () => {
  let threads = 0;
  beforeAll(async () => {
    threads = await setWasmBackendWithThreads(2);
    registerWasmTrainingKernels();
  });
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  it('starts with two XNNPACK threads', () => {
    expect(tf.getBackend()).toBe('wasm');
    expect(threads).toBe(2);
  });

  it('refuses to run once wasm is initialised', async () => {
    await expect(setWasmBackendWithThreads(2)).rejects.toThrow(/already initialised/);
  });

  it('keeps its pool when switching to cpu and back and registering again', async () => {
    type PThread = { runningWorkers: unknown[]; unusedWorkers: unknown[] };
    const workers = () => {
      const pool = (tf.engine().findBackend('wasm') as unknown as { wasm: { PThread: PThread } }).wasm
        .PThread;
      return pool.runningWorkers.length + pool.unusedWorkers.length;
    };
    await tf.setBackend('wasm');
    const before = workers();
    for (let i = 0; i < 10; i++) {
      await tf.setBackend('cpu');
      await tf.setBackend('wasm');
      registerWasmTrainingKernels();
      tf.tidy(() => void tf.matMul(tf.ones([8, 8]), tf.ones([8, 8])).dataSync());
    }
    expect(workers()).toBe(before);
    expect(before).toBeGreaterThan(0);
  });

  it("pools 40,000 channels with a 9-row window (upstream ran off the workers' stacks there too)", async () => {
    const r = rng(6);
    const shape: [number, number, number, number] = [2, 9, 1, 40000];
    const vx = values(r, 2 * 9 * 40000);
    const f = () => tf.avgPool(tf.tensor4d(vx, shape), [9, 1], 1, 'valid');
    const [ref] = await runOn('cpu', f);
    const [got] = await runOn('wasm', f);
    expect(relError(got, ref)).toBeLessThan(1e-5);
  });

  it('computes the same convolution gradients as cpu', async () => {
    const r = rng(4);
    const vx = values(r, 4 * 12 * 10 * 6);
    const vw = values(r, 3 * 3 * 6 * 8);
    const f = () =>
      tf.grads((x: tf.Tensor, w: tf.Tensor) =>
        tf.sum(tf.square(tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, 'same'))),
      )([tf.tensor4d(vx, [4, 12, 10, 6]), tf.tensor4d(vw, [3, 3, 6, 8])]);
    const ref = await runOn('cpu', f);
    const got = await runOn('wasm', f);
    // Measured 4e-7 (error relative to the largest entry of each gradient).
    ref.forEach((v, i) => expect(relError(got[i], v)).toBeLessThan(1e-5));
  });
});
