// Upstream wasm Tile computes every output index with a per-element division
// loop; the BatchNormalization gradient in tfjs-core tiles 1/sqrt(var) to the
// full activation shape, so on a VGG-style step Tile alone took ~25% of the
// time. Tiling is block copies: lay out one copy of each level, then double it.
import * as tf from '@tensorflow/tfjs-core';
import { KernelFn, type HeapBackend } from './util.js';

/** Repeats heap[dst, dst + size) so that it fills `times` consecutive blocks. */
function replicate(heap: Float32Array, dst: number, size: number, times: number): void {
  let have = 1;
  while (have < times) {
    const n = Math.min(have, times - have);
    heap.copyWithin(dst + have * size, dst, dst + n * size);
    have += n;
  }
}

/** Tile on the wasm heap for float32 and int32 (other dtypes go to upstream). */
export function makeTile(upstream: KernelFn | null): KernelFn {
  return (args) => {
    const backend = args.backend as HeapBackend;
    const x = args.inputs.x as tf.TensorInfo;
    const reps = (args.attrs as unknown as tf.TileAttrs).reps;
    if (
      (x.dtype !== 'float32' && x.dtype !== 'int32') ||
      tf.util.sizeFromShape(x.shape) === 0 ||
      x.shape.length === 0
    ) {
      if (upstream == null) throw new Error('normprune: no upstream wasm Tile');
      return upstream(args);
    }
    const rank = x.shape.length;
    const outShape = x.shape.map((d, i) => d * reps[i]);
    const out = backend.makeOutput(outShape, x.dtype);
    // A rep of 0 leaves nothing to copy (and no heap to copy into).
    if (tf.util.sizeFromShape(outShape) === 0) return out;
    const src = backend.typedArrayFromHeap(x);
    const dst = backend.typedArrayFromHeap(out);
    // Copies move raw 4-byte words, so a float view serves int32 as well.
    const heap = new Float32Array(dst.buffer);
    const srcBase = src.byteOffset >>> 2;
    const dstBase = dst.byteOffset >>> 2;
    const xStride = tf.util.computeStrides(x.shape).concat([1]);
    const oStride = tf.util.computeStrides(outShape).concat([1]);
    const fill = (level: number, s: number, d: number): void => {
      const len = x.shape[level];
      if (level === rank - 1) {
        heap.copyWithin(d, s, s + len);
      } else {
        for (let i = 0; i < len; i++) fill(level + 1, s + i * xStride[level], d + i * oStride[level]);
      }
      replicate(heap, d, len * oStride[level], reps[level]);
    };
    fill(0, srcBase, dstBase);
    return out;
  };
}
