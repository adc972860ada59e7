// Upstream wasm Slice reads the whole of x into a new JavaScript array
// (backend.readSync, a copy of the wasm heap's bytes) before copying the slice
// out of it: model.predict, which cuts a batch into chunks of 32 with tf.slice,
// copied the whole batch once per chunk (a 500-image MNIST batch: 16 copies of
// 1.5 MB, and the garbage they leave). Here the slice is copied straight from
// x's place on the heap, one contiguous run at a time: the same elements, in
// the same dtype, without the copy of x. String tensors go to upstream.
import * as tf from '@tensorflow/tfjs-core';
import { KernelFn, type HeapBackend } from './util.js';

/** Copies the slice of `src` (of `shape`) at `begin`, of `size`, into `dst`, run by run along the last axis. */
function copySlice(
  src: tf.backend_util.TypedArray,
  dst: tf.backend_util.TypedArray,
  shape: number[],
  begin: number[],
  size: number[],
): void {
  const rank = shape.length;
  const inner = size[rank - 1];
  const strides = tf.util.computeStrides(shape);
  const outer = size.slice(0, -1);
  const at = new Array<number>(rank - 1).fill(0);
  const runs = tf.util.sizeFromShape(outer);
  for (let r = 0, o = 0; r < runs; r++, o += inner) {
    let s = begin[rank - 1];
    for (let i = 0; i < rank - 1; i++) s += (begin[i] + at[i]) * strides[i];
    if (inner >= 16) dst.set(src.subarray(s, s + inner), o);
    else for (let j = 0; j < inner; j++) dst[o + j] = src[s + j];
    // The next index of the outer axes, the last one fastest.
    for (let i = rank - 2; i >= 0; i--) {
      if (++at[i] < outer[i]) break;
      at[i] = 0;
    }
  }
}

/** Wraps upstream `Slice` so that numeric slices are copied from the heap without a copy of x. */
export function makeSlice(upstream: KernelFn | null): KernelFn | null {
  if (upstream == null) return null;
  return (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    if (x.dtype === 'string' || x.shape.length === 0) return upstream(args);
    const { begin, size } = args.attrs as unknown as tf.SliceAttrs;
    const [begin_, size_] = tf.slice_util.parseSliceParams(x as tf.TensorInfo as tf.Tensor, begin, size);
    if (tf.util.sizeFromShape(size_) === 0) return upstream(args);
    const backend = args.backend as HeapBackend;
    const out = backend.makeOutput(size_, x.dtype);
    // Views are taken after the allocation: growing the heap detaches older ones.
    const src = backend.typedArrayFromHeap(x);
    const dst = backend.typedArrayFromHeap(out);
    if (tf.slice_util.isSliceContinous(x.shape, begin_, size_)) {
      const offset = tf.slice_util.computeFlatOffset(begin_, tf.util.computeStrides(x.shape));
      dst.set(src.subarray(offset, offset + dst.length));
    } else {
      copySlice(src, dst, x.shape, begin_, size_);
    }
    return out;
  };
}
