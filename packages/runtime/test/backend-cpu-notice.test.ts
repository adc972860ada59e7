// (Found unpinned by mutation testing: fails on its mutant.)
// initBackend's cpu loader mutes the cpu backend's "install our node backend" notice
// (its own line already says which backend runs). The jest setup mutes the notice on
// the instance it creates, so this file registers a fresh cpu backend first.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { initBackend } from '../src/index.js';

afterEach(() => {
  jest.restoreAllMocks();
});

it('initBackend({ prefer: "cpu" }) leaves no tfjs-node advice for the first tensor', async () => {
  const factory = tf.findBackendFactory('cpu')!;
  tf.removeBackend('cpu');
  tf.registerBackend('cpu', factory);
  const info = await initBackend({ prefer: 'cpu', quiet: true });
  expect(info.backend).toBe('cpu');
  const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  tf.tensor1d([1, 2]).dispose();
  expect(warn.mock.calls.flat().join(' ')).not.toMatch(/install our node backend/);
});
