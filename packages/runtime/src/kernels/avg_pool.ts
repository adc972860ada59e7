// Upstream wasm AvgPool runs XNNPACK's average pooling, whose multipass path
// (windows of 8 or more) takes a buffer of `channels` floats on the stack
// (XNN_SIMD_ALLOCA in xnn_compute_average_pooling_multipass). The module's
// stack is 64 KB, so past about 16,000 channels the buffer runs off its end:
// "memory access out of bounds", after which the stack pointer is left wrong
// and every later wasm call fails too (in the threaded build a worker traps
// and the process exits). bench/upstream-limits.ts probes it (tfjs-backend-wasm
// 4.22, a [1, 9, 1, C] pool): 16,336 channels ran, 16,352 did not; a 7-row
// window ran at 200,000. A 'kernel' Conv2D's
// direction pooled over its cin * cout groups (prox's group norms) is such a
// pool: 16,384 channels at 128 x 128.
//
// Here a pool over more than AVG_POOL_CHANNELS channels runs upstream's
// kernel on slices of at most that many channels. Channels never mix in
// average pooling, so every slice computes the values the whole would, with
// the same bits.
import * as tf from '@tensorflow/tfjs-core';
import { dyOfGeometry, KernelFn, poolInfo, release, type HeapBackend } from './util.js';

/**
 * The most channels one upstream AvgPool call is given: 32 KB of stack for
 * XNNPACK's buffer, half the 64 KB stack. @internal
 */
export const AVG_POOL_CHANNELS = 8192;

/** Float32 offset of a heap view, and a view of the whole heap. */
function heapOf(backend: HeapBackend, info: tf.TensorInfo): [Float32Array, number] {
  const view = backend.typedArrayFromHeap(info) as Float32Array;
  return [new Float32Array(view.buffer), view.byteOffset >>> 2];
}

/**
 * Copies `rows` rows of `width` floats from `from` (row stride `fromStride`,
 * starting at `fromAt`) to `to` (row stride `toStride`, starting at `toAt`);
 * both are offsets into `heap`.
 */
function copyRows(
  heap: Float32Array,
  rows: number,
  width: number,
  from: number,
  fromStride: number,
  to: number,
  toStride: number,
): void {
  for (let r = 0; r < rows; r++) {
    const s = from + r * fromStride;
    heap.copyWithin(to + r * toStride, s, s + width);
  }
}

/** AvgPool that hands upstream at most {@link AVG_POOL_CHANNELS} channels a call. */
export function makeAvgPool(upstream: KernelFn | null): KernelFn | null {
  if (upstream == null) return null;
  return (args) => {
    const backend = args.backend as HeapBackend;
    const x = args.inputs.x as tf.TensorInfo;
    const channels = x.shape[3];
    if (x.shape.length !== 4 || x.dtype !== 'float32' || channels <= AVG_POOL_CHANNELS) {
      return upstream(args);
    }
    const info = poolInfo(x, args.attrs as unknown as tf.AvgPoolAttrs);
    if (tf.util.sizeFromShape(x.shape) === 0 || tf.util.sizeFromShape(info.outShape) === 0) {
      return upstream(args);
    }
    const [batch, height, width] = x.shape;
    const inPixels = batch * height * width;
    const outPixels = batch * info.outHeight * info.outWidth;
    // A failed allocation midway (the heap guard) frees what this allocated: the
    // kernel runs in a buffer scope (buffer_scope.ts).
    const out = backend.makeOutput(info.outShape, 'float32');
    for (let c0 = 0; c0 < channels; c0 += AVG_POOL_CHANNELS) {
      const w = Math.min(AVG_POOL_CHANNELS, channels - c0);
      const part = backend.makeOutput([batch, height, width, w], 'float32');
      // Views are taken after each allocation: growing the heap detaches older ones.
      const [heap, xAt] = heapOf(backend, x);
      copyRows(heap, inPixels, w, xAt + c0, channels, heapOf(backend, part)[1], w);
      const pooled = upstream({ inputs: { x: part }, backend, attrs: args.attrs }) as tf.TensorInfo;
      const [heap2, pooledAt] = heapOf(backend, pooled);
      copyRows(heap2, outPixels, w, pooledAt, w, heapOf(backend, out)[1] + c0, channels);
      release(backend, part, pooled);
    }
    return out;
  };
}

/**
 * Wraps upstream AvgPoolGrad, which reads dy as a dense array of the floor
 * geometry (it and the cpu backend ignore dimRoundingMode). tfjs-core's avgPool
 * gradient drops dimRoundingMode, so after a forward pool that rounded its size
 * up, dy is larger than that geometry: upstream then read every row after the
 * first shifted (dx off by 1.11 on 6x6x2, filter 3, stride 2, pad 1, 'ceil'),
 * while the cpu backend reads dy's leading part. Upstream gets that part
 * (dyOfGeometry). Only a numeric or explicit pad can round; 'same' and
 * 'valid' go straight to upstream.
 */
export function makeAvgPoolGrad(upstream: KernelFn | null): KernelFn | null {
  if (upstream == null) return null;
  return (args) => {
    const { dy, input } = args.inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
    const attrs = args.attrs as unknown as tf.AvgPoolGradAttrs;
    if (typeof attrs.pad === 'string' || dy.shape.length !== 4 || input.shape.length !== 4) {
      return upstream(args);
    }
    const backend = args.backend as tf.KernelBackend;
    const info = poolInfo(input, attrs);
    const part = dyOfGeometry(backend, dy, info);
    if (part === dy) return upstream(args);
    const out = upstream({ ...args, inputs: { ...args.inputs, dy: part } });
    release(backend, part);
    return out;
  };
}
