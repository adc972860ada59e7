// Convolution gradients for the wasm backend. Upstream wasm has no
// Conv2DBackpropFilter (conv nets cannot train at all) and a scalar-loop
// Conv2DBackpropInput (4-11x slower than the forms below). Both are rewritten
// onto fast kernels; each choice below was measured in CPU time per call on
// the LeNet-5 and VGG (CIFAR) shapes, single-threaded SIMD wasm
// (bench/kernels.ts and the README's bench section).
import * as tf from '@tensorflow/tfjs-core';
import { col2im, geometry, heapOf, im2colLimits, im2colT, imagesPerChunk, isPointwise } from './col2im.js';
import { dyOfGeometry, release, reshape, runWasm, transpose, type HeapBackend } from './util.js';

type Pads = [[number, number], [number, number], [number, number], [number, number]];

function convInfoOf(
  xShape: number[],
  filterShape: number[],
  attrs: { strides: number | [number, number]; pad: unknown; dataFormat: string; dimRoundingMode?: string },
  kernel: string,
): tf.backend_util.Conv2DInfo {
  const dataFormat = tf.backend_util.convertConv2DDataFormat(attrs.dataFormat as 'NHWC' | 'NCHW');
  if (dataFormat !== 'channelsLast') {
    throw new Error(`normprune: wasm ${kernel} supports dataFormat 'NHWC' only, got '${attrs.dataFormat}'`);
  }
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad as 'same',
    attrs.dimRoundingMode as 'floor' | undefined,
    false,
    dataFormat,
  );
}

/** dW = patches(x)^T dy with the patch matrix built transposed, so dy is the packed operand. */
function backpropFilterByIm2col(
  backend: HeapBackend,
  x: tf.TensorInfo,
  dy: tf.TensorInfo,
  info: tf.backend_util.Conv2DInfo,
  filterShape: number[],
): tf.TensorInfo {
  const g = geometry(info);
  const K = g.kh * g.kw * g.C;
  const R = g.N * g.OH * g.OW;
  const cols = backend.makeOutput([1, K, R], 'float32');
  const { heap, offset } = heapOf(backend, cols);
  im2colT(heap, heapOf(backend, x).offset, offset, g);
  const dyRows = reshape(backend, dy, [1, R, info.outChannels]);
  const dw = runWasm('BatchMatMul', { a: cols, b: dyRows }, backend, {
    transposeA: false,
    transposeB: false,
  });
  release(backend, cols, dyRows);
  const out = reshape(backend, dw, filterShape);
  release(backend, dw);
  return out;
}

/**
 * dW[i, j, c, o] = sum over n, p, q of x[n, p*sh + i - top, q*sw + j - left, c] * dy[n, p, q, o].
 * With few input channels (8 or fewer, measured: 12 -> 5 ms for LeNet-5 conv1,
 * 49 -> 12 ms for a 3-channel 32x32 VGG input layer) one matMul over a
 * transposed patch matrix; otherwise a convolution of x (batch and channels
 * swapped, [C, H, W, N]) with dy as the filter ([OH, OW, N, O]) dilated by the
 * forward stride, which wins with more channels (134 vs 161 ms, 3x3x32 at 32x32).
 */
export function conv2DBackpropFilter(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const backend = args.backend as HeapBackend;
  const { x, dy: given } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const attrs = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  const info = convInfoOf(x.shape, attrs.filterShape, attrs, 'Conv2DBackpropFilter');
  const dy = dyOfGeometry(backend, given, info);
  const out = backpropFilter(backend, x, dy, info, attrs.filterShape);
  if (dy !== given) release(backend, dy);
  return out;
}

/** The two forms above, on a dy of the geometry's shape. */
function backpropFilter(
  backend: HeapBackend,
  x: tf.TensorInfo,
  dy: tf.TensorInfo,
  info: tf.backend_util.Conv2DInfo,
  filterShape: [number, number, number, number],
): tf.TensorInfo {
  // An empty dy (no image, or an output with no rows or columns) gives the empty sum, zeros, as
  // on cpu. With more than 8 channels the convolution below took dy as a filter with no rows or
  // columns and returned the heap's leftovers.
  if (info.batchSize * info.outHeight * info.outWidth === 0) {
    const out = backend.makeOutput(filterShape, 'float32');
    backend.typedArrayFromHeap(out).fill(0);
    return out;
  }
  const patchFloats =
    info.filterHeight * info.filterWidth * info.inChannels * info.batchSize * info.outHeight * info.outWidth;
  if (info.inChannels <= 8 && patchFloats <= im2colLimits.maxFloats) {
    return backpropFilterByIm2col(backend, x, dy, info, filterShape);
  }
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  const { inHeight: H, inWidth: W, outHeight: OH, outWidth: OW, inChannels: C, outChannels: O } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  // Bottom/right padding that makes the output exactly kh x kw; when the
  // forward pass never read the last rows/columns it is negative, and the extra
  // output rows are sliced away instead.
  const bottom = kh + (OH - 1) * sh - H - top;
  const right = kw + (OW - 1) * sw - W - left;
  const xT = transpose(backend, x, [3, 1, 2, 0]);
  const dyT = transpose(backend, dy, [1, 2, 0, 3]);
  const pad: Pads = [
    [0, 0],
    [top, Math.max(0, bottom)],
    [left, Math.max(0, right)],
    [0, 0],
  ];
  const conv = runWasm('Conv2D', { x: xT, filter: dyT }, backend, {
    strides: [1, 1],
    dilations: [sh, sw],
    pad: pad as unknown as tf.NamedAttrMap[string],
    dataFormat: 'NHWC',
    dimRoundingMode: null as unknown as string,
  });
  release(backend, xT, dyT);
  let cropped = conv;
  if (conv.shape[1] !== kh || conv.shape[2] !== kw) {
    cropped = runWasm('Slice', { x: conv }, backend, { begin: [0, 0, 0, 0], size: [C, kh, kw, O] });
    release(backend, conv);
  }
  const out = transpose(backend, cropped, [1, 2, 0, 3]);
  release(backend, cropped);
  return out;
}

/**
 * dx is the full correlation of dy, with stride - 1 zeros inserted between its
 * rows and columns, against the filter rotated by 180 degrees with in/out
 * channels swapped: one stride-1 Conv2D.
 */
function backpropInputByConv(
  backend: tf.KernelBackend,
  dy: tf.TensorInfo,
  filter: tf.TensorInfo,
  info: tf.backend_util.Conv2DInfo,
): tf.TensorInfo {
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  const { batchSize: N, inHeight: H, inWidth: W, outHeight: OH, outWidth: OW, outChannels: O } = info;

  const flipped = runWasm('Reverse', { x: filter }, backend, { dims: [0, 1] });
  const wT = transpose(backend, flipped, [0, 1, 3, 2]);
  release(backend, flipped);

  // Zero insertion as a pad of a rank-6 view: [N, OH, 1, OW, 1, O] padded to
  // [N, OH, sh, OW, sw, O] is dy dilated by the stride, plus stride - 1 zero
  // rows/columns at the end (accounted for below).
  let dyD = dy;
  if (sh > 1 || sw > 1) {
    const v = reshape(backend, dy, [N, OH, 1, OW, 1, O]);
    const p = runWasm('PadV2', { x: v }, backend, {
      paddings: [
        [0, 0],
        [0, 0],
        [0, sh - 1],
        [0, 0],
        [0, sw - 1],
        [0, 0],
      ],
      constantValue: 0,
    });
    release(backend, v);
    dyD = reshape(backend, p, [N, OH * sh, OW * sw, O]);
    release(backend, p);
  }
  const LH = dyD.shape[1];
  const LW = dyD.shape[2];
  // Full correlation needs kh - 1 - top rows before and enough after to give H outputs.
  const loH = kh - 1 - info.padInfo.top;
  const hiH = H + kh - 1 - loH - LH;
  const loW = kw - 1 - info.padInfo.left;
  const hiW = W + kw - 1 - loW - LW;
  let src = dyD;
  if (loH < 0 || hiH < 0 || loW < 0 || hiW < 0) {
    const b0 = Math.max(0, -loH);
    const b1 = Math.max(0, -loW);
    src = runWasm('Slice', { x: dyD }, backend, {
      begin: [0, b0, b1, 0],
      size: [N, LH - b0 - Math.max(0, -hiH), LW - b1 - Math.max(0, -hiW), O],
    });
  }
  const pad: Pads = [
    [0, 0],
    [Math.max(0, loH), Math.max(0, hiH)],
    [Math.max(0, loW), Math.max(0, hiW)],
    [0, 0],
  ];
  const out = runWasm('Conv2D', { x: src, filter: wT }, backend, {
    strides: [1, 1],
    dilations: [1, 1],
    pad: pad as unknown as tf.NamedAttrMap[string],
    dataFormat: 'NHWC',
    dimRoundingMode: null as unknown as string,
  });
  release(backend, wT);
  if (src !== dyD) release(backend, src);
  if (dyD !== dy) release(backend, dyD);
  return out;
}

/** Rows [n0, n1) of an NHWC tensor's pixels as [1, rows, channels]. */
function pixelRows(backend: HeapBackend, t: tf.TensorInfo, n0: number, n1: number): tf.TensorInfo {
  const [N, h, w, c] = t.shape;
  if (n0 === 0 && n1 === N) return reshape(backend, t, [1, N * h * w, c]);
  const s = runWasm('Slice', { x: t }, backend, { begin: [n0, 0, 0, 0], size: [n1 - n0, h, w, c] });
  const r = reshape(backend, s, [1, (n1 - n0) * h * w, c]);
  release(backend, s);
  return r;
}

/** dx = col2im(dy W^T): no work is spent on the zero padding of a full correlation. */
function backpropInputByCol2im(
  backend: HeapBackend,
  dy: tf.TensorInfo,
  filter: tf.TensorInfo,
  info: tf.backend_util.Conv2DInfo,
): tf.TensorInfo {
  const g = geometry(info);
  const K = g.kh * g.kw * g.C;
  const O = info.outChannels;
  const w2 = reshape(backend, filter, [K, O]);
  const wT2 = transpose(backend, w2, [1, 0]);
  release(backend, w2);
  const wT = reshape(backend, wT2, [1, O, K]);
  release(backend, wT2);
  const per = imagesPerChunk(g);
  if (isPointwise(g) && per === g.N) {
    const dyRows = pixelRows(backend, dy, 0, g.N);
    const cols = runWasm('BatchMatMul', { a: dyRows, b: wT }, backend, {
      transposeA: false,
      transposeB: false,
    });
    release(backend, dyRows, wT);
    const out = reshape(backend, cols, info.inShape);
    release(backend, cols);
    return out;
  }
  const dx = backend.makeOutput(info.inShape, 'float32');
  {
    const { heap, offset } = heapOf(backend, dx);
    heap.fill(0, offset, offset + tf.util.sizeFromShape(info.inShape));
  }
  for (let n0 = 0; n0 < g.N; n0 += per) {
    const n1 = Math.min(g.N, n0 + per);
    const dyRows = pixelRows(backend, dy, n0, n1);
    const cols = runWasm('BatchMatMul', { a: dyRows, b: wT }, backend, {
      transposeA: false,
      transposeB: false,
    });
    release(backend, dyRows);
    const { heap, offset: colsOff } = heapOf(backend, cols);
    col2im(heap, colsOff, heapOf(backend, dx).offset, g, n0, n1);
    release(backend, cols);
  }
  release(backend, wT);
  return dx;
}

/**
 * Picks the cheaper form: the flipped-filter convolution computes H x W
 * outputs over all of dy's (padded, stride-dilated) support, so it wastes work
 * in proportion to H*W / (OH*OW); it also degrades for few input channels.
 */
export function conv2DBackpropInput(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const backend = args.backend as HeapBackend;
  const { dy: given, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const attrs = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
  const info = convInfoOf(attrs.inputShape, filter.shape, attrs, 'Conv2DBackpropInput');
  // An empty dy gives zeros, as on cpu: the flipped-filter convolution below, given an input
  // 1x1 image and an output with no rows or columns, returned nonzero values.
  if (info.batchSize * info.outHeight * info.outWidth === 0) {
    const out = backend.makeOutput(info.inShape, 'float32');
    backend.typedArrayFromHeap(out).fill(0);
    return out;
  }
  const dy = dyOfGeometry(backend, given, info);
  const waste = (info.inHeight * info.inWidth) / Math.max(1, info.outHeight * info.outWidth);
  const out =
    waste <= 1.5 && info.inChannels >= 8
      ? backpropInputByConv(backend, dy, filter, info)
      : backpropInputByCol2im(backend, dy, filter, info);
  if (dy !== given) release(backend, dy);
  return out;
}
