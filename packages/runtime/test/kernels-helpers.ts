// Shared setup for the wasm kernel tests: both backends in one process, with
// the wasm binaries located from the installed package (no network).
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as path from 'path';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

let ready: Promise<void> | null = null;

/** Initialises the wasm backend once (kernels are registered by the caller). */
export function initWasm(): Promise<void> {
  if (!ready) {
    ready = (async () => {
      const dist = path.join(
        path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')),
        'dist',
      );
      setWasmPaths(dist + path.sep);
      if (!(await tf.setBackend('wasm'))) throw new Error('wasm backend failed to initialise');
    })();
  }
  return ready;
}

/** Deterministic uniform numbers in [-1, 1). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  };
}

/** Random integer in [lo, hi]. */
export function int(r: () => number, lo: number, hi: number): number {
  return lo + Math.floor(((r() + 1) / 2) * (hi - lo + 1));
}

/** A Float32Array of `n` values in [-1, 1). */
export function values(r: () => number, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = r();
  return a;
}

/** Runs `fn` on the named backend and returns the outputs' values. */
export async function runOn(
  backend: 'cpu' | 'wasm',
  fn: () => tf.Tensor | tf.Tensor[],
): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const outs = tf.tidy(fn);
  const list = Array.isArray(outs) ? outs : [outs];
  const vals = list.map((t) => t.dataSync() as Float32Array);
  tf.dispose(list);
  return vals;
}

/**
 * Error relative to the reference's scale: max |a - ref| / max |ref|. Entries
 * that are sums with cancellation make an element-wise ratio meaningless.
 */
export function relError(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (a.length !== ref.length) throw new Error(`length mismatch: ${a.length} vs ${ref.length}`);
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - ref[i]));
    m = Math.max(m, Math.abs(ref[i]));
  }
  return m === 0 ? d : d / m;
}

/** Buffers the wasm backend holds (catches leaked intermediates that never became tensors). */
export function wasmDataIds(): number {
  return (tf.engine().findBackend('wasm') as unknown as { numDataIds(): number }).numDataIds();
}
