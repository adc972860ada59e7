// initBackend's `threads` option: validation, NORMPRUNE_THREADS, and the
// threaded wasm build actually running (Jest gives this file its own engine,
// so wasm starts here for the first time).
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
// Registers the gradients (tfjs-core alone has none).
import '@tensorflow/tfjs-layers';
import { initBackend } from '../src/index.js';
import { resolveThreads } from '../src/backend.js';

describe('resolveThreads', () => {
  it('defaults to 1 and takes the option, NORMPRUNE_THREADS first', () => {
    expect(resolveThreads(undefined, {})).toBe(1);
    expect(resolveThreads(2, {})).toBe(2);
    expect(resolveThreads(2, { NORMPRUNE_THREADS: '1' })).toBe(1);
    expect(resolveThreads(undefined, { NORMPRUNE_THREADS: '' })).toBe(1);
  });

  it('refuses what is not a whole number from 1 to 64, naming where it came from', () => {
    for (const bad of [0, -1, 1.5, 65, NaN]) {
      expect(() => resolveThreads(bad, {})).toThrow(/initBackend: threads .* is not a thread count/);
    }
    expect(() => resolveThreads(undefined, { NORMPRUNE_THREADS: 'two' })).toThrow(
      /NORMPRUNE_THREADS="two" is not a thread count: use a whole number from 1 to 64/,
    );
  });
});

describe('initBackend({ threads: 2 })', () => {
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  it('starts the threaded wasm build with its training kernels, and trains', async () => {
    const info = await initBackend({ prefer: 'wasm', threads: 2, quiet: true });
    expect(info).toMatchObject({ backend: 'wasm', threads: 2, trainingKernels: true });
    expect(tf.getBackend()).toBe('wasm');
    const w = tf.variable(tf.randomNormal([8, 4], 0, 1, 'float32', 1));
    const x = tf.randomNormal([16, 8], 0, 1, 'float32', 2);
    const opt = tf.train.sgd(0.1);
    const before = tf.memory().numTensors;
    const losses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const loss = opt.minimize(() => tf.mean(tf.square(tf.matMul(x, w))) as tf.Scalar, true)!;
      losses.push((await loss.data())[0]);
      loss.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    expect(losses[4]).toBeLessThan(losses[0]);
    tf.dispose([w, x]);
    opt.dispose();
  });

  it('says so in the reason when wasm already runs with fewer threads', async () => {
    const info = await initBackend({ prefer: 'wasm', threads: 4, quiet: true });
    expect(info.backend).toBe('wasm');
    expect(info.threads).toBe(2);
    expect(info.reason).toMatch(/4 threads were asked for, but the wasm backend was already started with 2/);
  });
});
