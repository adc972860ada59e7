// The kernels here compose other kernels and release their intermediate
// buffers as they go, but not on the way out of an exception: a kernel that
// throws midway (the malloc guard refusing an allocation when the heap is full,
// an upstream kernel refusing its input) would leave those buffers allocated
// and unreferenced, and a caller that catches the error and retries with a
// smaller batch would find less heap than before. So each of our kernels runs
// in a buffer scope. The backend's makeOutput, incRef and disposeData are
// wrapped once per backend to count, while a scope is open, the references
// taken and given back per buffer. When the kernel throws, the references it
// still holds are given back, freeing what it allocated (its inputs keep their
// own references). When it returns, nothing changes.
import * as tf from '@tensorflow/tfjs-core';
import { KernelFn } from './util.js';

/** Marks a backend whose methods are wrapped. @internal */
export const SCOPED = Symbol.for('normprune.bufferScope');

/** The parts of BackendWasm a scope wraps. */
interface ScopedBackend {
  makeOutput(...args: unknown[]): tf.TensorInfo;
  incRef(dataId: tf.DataId): void;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
  [SCOPED]?: true;
}

/** References taken (positive) or given back (negative) per buffer in the open scope, or null. */
let held: Map<tf.DataId, number> | null = null;

function count(dataId: tf.DataId, by: number): void {
  if (held) held.set(dataId, (held.get(dataId) ?? 0) + by);
}

/**
 * Wraps the backend's makeOutput, incRef and disposeData (once per backend)
 * to count references while a scope is open. Anything but a wasm backend is
 * left alone. @internal
 */
export function trackBuffers(backend: unknown): void {
  const b = backend as Partial<ScopedBackend> | null;
  if (b == null || typeof b.makeOutput !== 'function' || typeof b.incRef !== 'function' || b[SCOPED]) return;
  const makeOutput = b.makeOutput.bind(b);
  const incRef = b.incRef.bind(b);
  const disposeData = b.disposeData!.bind(b);
  b.makeOutput = (...args: unknown[]) => {
    const info = makeOutput(...args);
    count(info.dataId, 1);
    return info;
  };
  b.incRef = (dataId: tf.DataId) => {
    incRef(dataId);
    count(dataId, 1);
  };
  b.disposeData = (dataId: tf.DataId, force?: boolean) => {
    count(dataId, -1);
    return disposeData(dataId, force);
  };
  b[SCOPED] = true;
}

/**
 * `kernel` run in a buffer scope: if it throws, every reference it took and
 * did not give back is given back before the error goes on. Nested calls (our
 * kernels call each other) count in the outermost scope.
 */
export function bufferScoped(kernel: KernelFn): KernelFn {
  return (args) => {
    const backend = args.backend as ScopedBackend;
    if (held !== null || !backend[SCOPED]) return kernel(args);
    const mine = new Map<tf.DataId, number>();
    held = mine;
    try {
      return kernel(args);
    } catch (e) {
      held = null;
      for (const [dataId, n] of mine) for (let i = 0; i < n; i++) backend.disposeData(dataId);
      throw e;
    } finally {
      held = null;
    }
  };
}
