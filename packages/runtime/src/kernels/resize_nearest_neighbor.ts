// Upstream wasm ResizeNearestNeighbor returns float32 whatever the images'
// dtype: tf.image.resizeNearestNeighbor of an int32 image came back float32
// on wasm and int32 on cpu (the same values up to 2^24). The cpu backend
// copies the values through a Float32Array into an output of the images'
// dtype, which it reads back as int32: 16777217 reads 16777216 and
// 2147483647 reads -2147483648 (float32's 2^31, wrapped). Upstream casts an
// int32 image to float32 and resizes it, so its float32 output holds those
// same float32 values; for an int32 image it is converted here to an int32
// output as the cpu backend reads its own (JavaScript's ToInt32, which
// wraps), and released. An empty int32 image resized to a non-empty size
// gets zeros: upstream returns that output unwritten, and the cpu backend
// reads past the image (NaN, which it reads as int32 0). Float32 images go to
// upstream untouched (an empty one resized to a non-empty size: NaN on cpu,
// whatever the buffer held on wasm).
import * as tf from '@tensorflow/tfjs-core';
import { KernelFn, release, type HeapBackend } from './util.js';

/** Wraps upstream `ResizeNearestNeighbor` so that an int32 image gives an int32 output, as on cpu. */
export function makeResizeNearestNeighbor(upstream: KernelFn | null): KernelFn | null {
  if (upstream == null) return null;
  return (args) => {
    const images = args.inputs.images as tf.TensorInfo;
    if (images.dtype !== 'int32') return upstream(args);
    const backend = args.backend as HeapBackend;
    const resized = upstream(args) as tf.TensorInfo;
    try {
      const out = backend.makeOutput(resized.shape, 'int32');
      // Views are taken after the allocation: growing the heap detaches older ones.
      const to = backend.typedArrayFromHeap(out);
      if (tf.util.sizeFromShape(images.shape) === 0) to.fill(0);
      else to.set(backend.typedArrayFromHeap(resized));
      return out;
    } finally {
      release(backend, resized);
    }
  };
}
