// (Found unpinned by mutation testing: fails on its mutant.)
// initBackend({ releaseSavedTensorsDuringBackprop: true }) checks the engine "before any
// backend is touched" (its docs): a refused engine leaves the active backend as it was.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-layers';
import { initBackend } from '../src/index.js';

it('refuses an engine it cannot patch before switching backends', async () => {
  await tf.setBackend('cpu');
  const engine = tf.engine() as unknown as Record<string, unknown>;
  engine.scopedRun = undefined; // an own property shadowing the method: the check finds none
  try {
    await expect(
      initBackend({ prefer: 'wasm', quiet: true, releaseSavedTensorsDuringBackprop: true }),
    ).rejects.toThrow(/lacks scopedRun\(\)/);
    expect(tf.getBackend()).toBe('cpu');
  } finally {
    delete engine.scopedRun;
  }
});
