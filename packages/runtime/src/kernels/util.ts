// Helpers shared by the wasm training kernels. Kernels here compose other wasm
// kernels on TensorInfos: wrapping inputs as tensors (and disposing them) would
// free the caller's data, and building intermediates with tf.* ops would leak
// them outside the engine's bookkeeping, so everything goes through the
// registry's kernel functions and `backend.disposeData`.
import * as tf from '@tensorflow/tfjs-core';

/** A kernel function as the registry stores it. */
export type KernelFn = tf.KernelConfig['kernelFunc'];

/** Runs the kernel currently registered for `name` on the wasm backend. */
export function runWasm(
  name: string,
  inputs: tf.NamedTensorInfoMap,
  backend: tf.KernelBackend,
  attrs: tf.NamedAttrMap = {},
): tf.TensorInfo {
  const kernel = tf.getKernel(name, 'wasm');
  if (kernel == null) throw new Error(`normprune: wasm kernel '${name}' is not registered`);
  return kernel.kernelFunc({ inputs, backend, attrs }) as tf.TensorInfo;
}

/** Releases intermediates created inside a kernel (never the kernel's inputs). */
export function release(backend: tf.KernelBackend, ...infos: (tf.TensorInfo | null | undefined)[]): void {
  for (const info of infos) if (info != null) backend.disposeData(info.dataId);
}

/**
 * `kernel` run on a bool `x` cast to int32, its result cast back to bool: for upstream kernels
 * that move 4-byte elements whatever the dtype (a bool is 1 byte), so that they move ints. The
 * int32 intermediates are released, when `kernel` throws too.
 */
export function boolViaInt32(
  backend: tf.KernelBackend,
  x: tf.TensorInfo,
  kernel: (xi: tf.TensorInfo) => tf.TensorInfo,
): tf.TensorInfo {
  const xi = runWasm('Cast', { x }, backend, { dtype: 'int32' });
  let ri: tf.TensorInfo;
  try {
    ri = kernel(xi);
  } finally {
    release(backend, xi);
  }
  try {
    return runWasm('Cast', { x: ri }, backend, { dtype: 'bool' });
  } finally {
    release(backend, ri);
  }
}

/**
 * A new buffer holding `x`'s values (float32, int32 or bool). Not the
 * Identity kernel: ours shares the buffer instead of copying it.
 */
export function copy(backend: tf.KernelBackend, x: tf.TensorInfo): tf.TensorInfo {
  const b = backend as HeapBackend;
  const out = b.makeOutput(x.shape, x.dtype);
  // Views are taken after the allocation: growing the heap detaches older ones.
  b.typedArrayFromHeap(out).set(b.typedArrayFromHeap(x));
  return out;
}

/** Transposes with the wasm Transpose kernel. */
export function transpose(backend: tf.KernelBackend, x: tf.TensorInfo, perm: number[]): tf.TensorInfo {
  return runWasm('Transpose', { x }, backend, { perm });
}

/** Reshapes without copying (the wasm Reshape kernel only bumps the refcount). */
export function reshape(backend: tf.KernelBackend, x: tf.TensorInfo, shape: number[]): tf.TensorInfo {
  return runWasm('Reshape', { x }, backend, { shape });
}

/** Swaps the last two axes. */
export function swapLastTwo(backend: tf.KernelBackend, x: tf.TensorInfo): tf.TensorInfo {
  const rank = x.shape.length;
  const perm = x.shape.map((_, i) => i);
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  return transpose(backend, x, perm);
}

/**
 * `x` repeated to `shape` along the axes where it has size 1 (leading axes
 * are added), with the wasm Tile kernel: tf.broadcastTo's result.
 */
export function broadcastTo(backend: tf.KernelBackend, x: tf.TensorInfo, shape: number[]): tf.TensorInfo {
  const full = [...new Array<number>(shape.length - x.shape.length).fill(1), ...x.shape];
  const v = reshape(backend, x, full);
  const out = runWasm('Tile', { x: v }, backend, { reps: shape.map((d, i) => d / full[i]) });
  release(backend, v);
  return out;
}

/** What a forward convolution kernel's attrs say about its geometry. */
export interface ConvGeometryAttrs {
  strides: number | [number, number];
  pad: unknown;
  dilations?: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dataFormat?: 'NHWC' | 'NCHW';
}

/** tfjs's geometry of a forward convolution kernel's call (`Conv2D`, `DepthwiseConv2dNative` and their fused forms). */
export function forwardConvInfo(
  x: tf.TensorInfo,
  filter: tf.TensorInfo,
  attrs: ConvGeometryAttrs,
  depthwise: boolean,
): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filter.shape as [number, number, number, number],
    attrs.strides,
    attrs.dilations ?? 1,
    attrs.pad as 'same',
    attrs.dimRoundingMode,
    depthwise,
    tf.backend_util.convertConv2DDataFormat(attrs.dataFormat ?? 'NHWC'),
  );
}

/** The wasm backend's heap access that the kernels here use. */
export interface HeapBackend extends tf.KernelBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): tf.backend_util.TypedArray;
}

/**
 * An output of `shape` (float32) when it has no elements, null otherwise. A
 * window (or dilated filter) larger than the padded input gives a 0 height or
 * width: the cpu backend returns that empty tensor, while upstream's XNNPACK
 * operators write into it ("memory access out of bounds", after which later
 * wasm calls trap too). A negative size, which a numeric pad smaller than
 * the filter can give, throws the cpu backend's error (upstream trapped).
 */
export function emptyOutput(
  backend: tf.KernelBackend,
  shape: number[],
  dtype: tf.DataType = 'float32',
): tf.TensorInfo | null {
  if (!shape.some((d) => d <= 0)) return null;
  tf.util.assertNonNegativeIntegerDimensions(shape);
  return (backend as HeapBackend).makeOutput(shape, dtype);
}

/** A filter size, stride or dilation as [height, width] (1 when absent: tfjs-layers passes null). */
export const pair = (v: number | [number, number] | null | undefined): [number, number] =>
  v == null ? [1, 1] : typeof v === 'number' ? [v, v] : v;

/**
 * The bottom (or right) padding that makes XNNPACK's floor output size `out`,
 * for a (dilated) filter extent `filter` over `input` with `before` padding.
 */
export function padFor(out: number, stride: number, filter: number, input: number, before: number): number {
  return (out - 1) * stride + filter - input - before;
}

/** What a pooling kernel's attrs say about its geometry (`AvgPool`, `MaxPool` and their gradients). */
export interface PoolGeometryAttrs {
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: unknown;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/** tfjs's geometry of a 2-D pooling of `x` (NHWC, dilation 1). */
export function poolInfo(x: tf.TensorInfo, attrs: PoolGeometryAttrs): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computePool2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterSize,
    attrs.strides,
    1,
    attrs.pad as 'same',
    attrs.dimRoundingMode,
  );
}

/**
 * tfjs-core's gradients of conv2d (plain and fused), maxPool and avgPool drop
 * dimRoundingMode, so when it rounded the forward output size up, dy is larger
 * than the geometry their kernels are given. The cpu backend reads dy through
 * its own strides, that is only its leading OH x OW part, and so does this
 * (the extra output row's and column's share of the gradient is lost on both:
 * a tfjs-core bug). The slice, or dy itself (two shape reads when it fits).
 */
export function dyOfGeometry(
  backend: tf.KernelBackend,
  dy: tf.TensorInfo,
  info: tf.backend_util.Conv2DInfo,
): tf.TensorInfo {
  const [N, OH, OW, C] = dy.shape;
  if (OH <= info.outHeight && OW <= info.outWidth) return dy;
  return runWasm('Slice', { x: dy }, backend, {
    begin: [0, 0, 0, 0],
    size: [N, Math.min(OH, info.outHeight), Math.min(OW, info.outWidth), C],
  });
}
