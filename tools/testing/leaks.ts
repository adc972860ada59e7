// Test helpers shared by every package's Jest suites (not published).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

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

/** The parts of the wasm backend that {@link wasmMemory} reads. */
interface WasmBackendMemory {
  wasm: { HEAPU8: Uint8Array; _malloc(bytes: number): number; _free(offset: number): void };
  numDataIds(): number;
}

/** Larger than any free block inside a test's heap, so it always comes from the top. */
const TOP_PROBE_BYTES = 32 << 20;

/**
 * What the wasm backend holds below `tf.memory().numTensors`: the heap's size
 * (it never shrinks, so it shows only growth past its high-water mark), the
 * buffers the backend keeps, and `mallocTop`, the address a 32 MB allocation
 * gets, i.e. the start of the allocator's untouched top: it rises when memory
 * the C++ side never frees (operator caches, their bookkeeping) piles up, long
 * before the heap itself must grow. The probe is freed at once; it grows the
 * heap by 32 MB the first time, and again only if the top has risen.
 */
export function wasmMemory(): { heapBytes: number; dataIds: number; mallocTop: number } {
  const backend = tf.engine().findBackend('wasm') as unknown as WasmBackendMemory;
  const probe = backend.wasm._malloc(TOP_PROBE_BYTES) >>> 0;
  backend.wasm._free(probe);
  // Read after the probe, which may itself have grown the heap.
  const heapBytes = backend.wasm.HEAPU8.buffer.byteLength;
  return { heapBytes, dataIds: backend.numDataIds(), mallocTop: probe };
}

/**
 * A Sequential of two Dense layers holding three constrained weights (`a`: a maxNorm kernel and a
 * nonNeg bias; `b`: a nonNeg kernel). tfjs 4.22's LayerVariable.write leaves the constraint's
 * output behind at each write of a constrained weight, as every loader makes one.
 */
export function constrainedModel(): tfl.Sequential {
  return tfl.sequential({
    layers: [
      tfl.layers.dense({
        inputShape: [4],
        units: 3,
        kernelConstraint: 'maxNorm',
        biasConstraint: 'nonNeg',
        name: 'a',
      }),
      tfl.layers.dense({ units: 2, kernelConstraint: 'nonNeg', name: 'b' }),
    ],
  });
}
