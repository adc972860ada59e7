// Identity and a Cast to the input's own dtype return the input's buffer
// instead of a copy of it, as upstream's Reshape and the cpu backend's
// Identity do: upstream wasm copies the whole buffer on every tf.identity,
// tensor.clone() and same-dtype tf.cast, which training calls on weights,
// activations and gradients alike. Sharing is safe because no kernel writes
// into an input's buffer: every upstream wasm kernel and every kernel of ours
// writes only into buffers it allocated (makeOutput); a buffer is freed when
// the last tensor sharing it is disposed (the backend's refCount).
import * as tf from '@tensorflow/tfjs-core';
import { KernelFn } from './util.js';

/** `x` itself, with one more reference to its buffer. */
function share(backend: tf.KernelBackend, x: tf.TensorInfo): tf.TensorInfo {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/** Identity that shares the input's buffer (every dtype, strings included). */
export const identity: KernelFn = (args) =>
  share(args.backend as tf.KernelBackend, args.inputs.x as tf.TensorInfo);

/** Cast that shares the buffer when the dtype does not change, else runs upstream's. */
export function makeCast(upstream: KernelFn | null): KernelFn | null {
  if (upstream == null) return null;
  return (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const { dtype } = args.attrs as unknown as tf.CastAttrs;
    return dtype === x.dtype ? share(args.backend as tf.KernelBackend, x) : upstream(args);
  };
}
