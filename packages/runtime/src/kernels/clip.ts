// Upstream wasm ClipByValue reads and writes its x as float32 whatever the
// dtype: clipping an int32 [-5, -1, 0, 1, 5] to [-2, 2] gave [-1073741824,
// -1073741824, 0, 1, 5]. An int32 x is clipped here, on the wasm heap, with
// the cpu backend's rule (the bound when past it, stored in x's dtype, so a
// bound of 1.5 stores as 1); float32 calls go to upstream untouched.
import * as tf from '@tensorflow/tfjs-core';
import { KernelFn, type HeapBackend } from './util.js';

/** Wraps upstream `ClipByValue` so that an int32 x is clipped as on the cpu backend. */
export function makeClipByValue(upstream: KernelFn | null): KernelFn | null {
  if (upstream == null) return null;
  return (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    if (x.dtype !== 'int32') return upstream(args);
    const { clipValueMin: lo, clipValueMax: hi } = args.attrs as unknown as tf.ClipByValueAttrs;
    const backend = args.backend as HeapBackend;
    const out = backend.makeOutput(x.shape, 'int32');
    // Views are taken after the allocation: growing the heap detaches older ones.
    const from = backend.typedArrayFromHeap(x);
    const to = backend.typedArrayFromHeap(out);
    for (let i = 0; i < from.length; i++) {
      const v = from[i];
      to[i] = v > hi ? hi : v < lo ? lo : v;
    }
    return out;
  };
}
