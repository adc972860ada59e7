// (Found unpinned by mutation testing: fails on its mutant.)
// Asking again for the thread count wasm already runs with adds no "asked for" note.
// Its own file: Jest gives it its own engine, so wasm starts here for the first time.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-layers';
import { initBackend } from '../src/index.js';

afterAll(async () => {
  await tf.setBackend('cpu');
});

it('initBackend({ threads: 2 }) again, with wasm already on 2 threads, says nothing about threads', async () => {
  const first = await initBackend({ prefer: 'wasm', threads: 2, quiet: true });
  expect(first.threads).toBe(2);
  const again = await initBackend({ prefer: 'wasm', threads: 2, quiet: true });
  expect(again.threads).toBe(2);
  expect(again.reason).not.toMatch(/threads were asked for/);
});
