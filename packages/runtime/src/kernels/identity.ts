// Identity and a Cast to the input's own dtype return the input's buffer
// instead of a copy of it, as upstream's Reshape and the cpu backend's
// Identity do: upstream wasm copies the whole buffer on every tf.identity,
// tensor.clone() and same-dtype tf.cast, which training calls on weights,
// activations and gradients alike. Sharing is safe because no kernel writes
// into an input's buffer: every upstream wasm kernel and every kernel of ours
// writes only into buffers it allocated (makeOutput); a buffer is freed when
// the last tensor sharing it is disposed (the backend's refCount).
//
// A Cast to bool from float32 or int32 is x != 0, as on the cpu backend:
// upstream's Cast copies the values into the bool output's bytes (a typed
// array set), which keeps the low byte of the truncated integer (0.5 -> 0,
// -2 -> 254, 300 -> 44), and logicalNot, where, ... then misread it. Its
// other conversions (to int32 the truncation Int32Array gives, as on cpu; to
// float32 exact) are kept.
import * as tf from '@tensorflow/tfjs-core';
import { KernelFn, type HeapBackend } from './util.js';

/** `x` itself, with one more reference to its buffer. */
function share(backend: tf.KernelBackend, x: tf.TensorInfo): tf.TensorInfo {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/** Identity that shares the input's buffer (every dtype, strings included). */
export const identity: KernelFn = (args) =>
  share(args.backend as tf.KernelBackend, args.inputs.x as tf.TensorInfo);

/** `x != 0` as a bool tensor (NaN gives true, as on cpu). */
function notZero(backend: HeapBackend, x: tf.TensorInfo): tf.TensorInfo {
  const out = backend.makeOutput(x.shape, 'bool');
  // Views are taken after the allocation: growing the heap detaches older ones.
  const from = backend.typedArrayFromHeap(x);
  const to = backend.typedArrayFromHeap(out);
  for (let i = 0; i < from.length; i++) to[i] = from[i] !== 0 ? 1 : 0;
  return out;
}

/**
 * Cast that shares the buffer when the dtype does not change, computes x != 0
 * for a cast of float32 or int32 to bool, and runs upstream's otherwise.
 */
export function makeCast(upstream: KernelFn | null): KernelFn | null {
  if (upstream == null) return null;
  return (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const { dtype } = args.attrs as unknown as tf.CastAttrs;
    if (dtype === x.dtype) return share(args.backend as tf.KernelBackend, x);
    if (dtype === 'bool' && (x.dtype === 'float32' || x.dtype === 'int32'))
      return notZero(args.backend as HeapBackend, x);
    return upstream(args);
  };
}
