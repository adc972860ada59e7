// (Found unpinned by mutation testing: fails on its mutant.)
// initBackend's default (threads 1) starts the single-threaded build, as its docs say.
// Its own file: Jest gives it its own engine, so wasm starts here for the first time.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-layers';
import { initBackend } from '../src/index.js';

afterAll(async () => {
  await tf.setBackend('cpu');
});

it('initBackend() with the default threads starts the single-threaded wasm build (no pthread pool)', async () => {
  const info = await initBackend({ prefer: 'wasm', quiet: true });
  expect(info).toMatchObject({ backend: 'wasm', threads: 1 });
  const wasm = (tf.engine().findBackend('wasm') as unknown as { wasm: { PThread?: unknown } }).wasm;
  expect(wasm.PThread).toBeUndefined();
});
