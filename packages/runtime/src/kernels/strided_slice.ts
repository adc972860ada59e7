// Upstream wasm StridedSlice, when the slice is not one contiguous run (a
// stride above 1 on an inner axis, say), copies x's elements as 4-byte floats
// into an output it makes float32 whatever x's dtype: tf.stridedSlice of an
// int32 x came back float32 holding the ints' bits (3 as 4.2e-45), and of a
// bool x (1 byte an element) read 4 elements at a time, past x's end. The cpu
// backend keeps x's dtype and values. Here the int32 output gets its dtype
// back (the bits are the ints'), and a bool x is sliced as int32, then cast
// back to bool. float32 (and string) calls go to upstream untouched.
import * as tf from '@tensorflow/tfjs-core';
import { boolViaInt32, KernelFn, release, type HeapBackend } from './util.js';

/** Wraps upstream `StridedSlice` so that int32 and bool x keep their dtype and values. */
export function makeStridedSlice(upstream: KernelFn | null): KernelFn | null {
  if (upstream == null) return null;
  const int32Slice: KernelFn = (args) => {
    const r = upstream(args) as tf.TensorInfo;
    if (r.dtype === 'int32') return r;
    const backend = args.backend as HeapBackend;
    const out = backend.makeOutput(r.shape, 'int32');
    // Views are taken after the allocation: growing the heap detaches older ones.
    const from = backend.typedArrayFromHeap(r);
    (backend.typedArrayFromHeap(out) as Int32Array).set(
      new Int32Array(from.buffer, from.byteOffset, from.length),
    );
    release(backend, r);
    return out;
  };
  return (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    if (x.dtype === 'int32') return int32Slice(args);
    if (x.dtype !== 'bool') return upstream(args);
    return boolViaInt32(
      args.backend as tf.KernelBackend,
      x,
      (xi) => int32Slice({ ...args, inputs: { x: xi } }) as tf.TensorInfo,
    );
  };
}
