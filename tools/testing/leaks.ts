// Test helpers shared by every package's Jest suites (not published).
import * as tf from '@tensorflow/tfjs-core';

/**
 * Runs `fn` (sync or async) and fails if it leaves tensors behind: every
 * training loop and kernel must keep `tf.memory().numTensors` flat.
 * Returns what `fn` returned. `allowed` permits a known, intended number of
 * new tensors (e.g. weights a freshly built layer creates).
 */
export async function expectNoLeak<T>(fn: () => T | Promise<T>, allowed = 0): Promise<T> {
  const before = tf.memory().numTensors;
  const result = await fn();
  const after = tf.memory().numTensors;
  if (after - before > allowed) {
    throw new Error(`tensor leak: numTensors went from ${before} to ${after} (allowed +${allowed})`);
  }
  return result;
}

/** Max absolute and relative difference between two arrays of equal length. */
export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): { abs: number; rel: number } {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let abs = 0;
  let rel = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    abs = Math.max(abs, d);
    rel = Math.max(rel, d / Math.max(1e-6, Math.abs(a[i]), Math.abs(b[i])));
  }
  return { abs, rel };
}
