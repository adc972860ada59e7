// Conv2D, FusedConv2D and both convolution gradients for the wasm backend as
// im2col + one matrix multiply (see im2col.ts for why). Upstream wasm has no
// Conv2DBackpropFilter at all, so without it conv nets cannot train on wasm.
import * as tf from '@tensorflow/tfjs-core';
import { col2im, Geometry, geometry, HeapBackend, heapOf, im2col, imagesPerChunk, isPointwise } from './im2col.js';
import { KernelFn, release, reshape, runWasm, transpose } from './util.js';

type Args = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

interface ConvAttrs {
  strides: number | [number, number];
  pad: unknown;
  dataFormat: string;
  dimRoundingMode?: string;
  dilations?: number | [number, number];
}

function convInfoOf(xShape: number[], filterShape: number[], attrs: ConvAttrs): tf.backend_util.Conv2DInfo | null {
  const dataFormat = tf.backend_util.convertConv2DDataFormat((attrs.dataFormat ?? 'NHWC') as 'NHWC' | 'NCHW');
  if (dataFormat !== 'channelsLast') return null;
  const info = tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    attrs.dilations ?? 1,
    attrs.pad as 'same',
    attrs.dimRoundingMode as 'floor' | undefined,
    false,
    dataFormat,
  );
  return info.dilationHeight === 1 && info.dilationWidth === 1 ? info : null;
}

/** Patch rows of images [n0, n1) as a [1, rows, K] tensor (the input itself for 1x1 convolutions). */
function patches(backend: HeapBackend, x: tf.TensorInfo, g: Geometry, n0: number, n1: number): tf.TensorInfo {
  const rows = (n1 - n0) * g.OH * g.OW;
  const K = g.kh * g.kw * g.C;
  if (isPointwise(g) && n0 === 0 && n1 === g.N) return reshape(backend, x, [1, rows, K]);
  const cols = backend.makeOutput([1, rows, K], 'float32');
  const { heap, offset: colsOff } = heapOf(backend, cols);
  im2col(heap, heapOf(backend, x).offset, colsOff, g, n0, n1);
  return cols;
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

/** Copies chunk outputs into one tensor when the batch was split. */
function assemble(backend: HeapBackend, parts: tf.TensorInfo[], shape: number[]): tf.TensorInfo {
  if (parts.length === 1) {
    const r = reshape(backend, parts[0], shape);
    release(backend, parts[0]);
    return r;
  }
  const out = backend.makeOutput(shape, 'float32');
  const { heap, offset } = heapOf(backend, out);
  let at = offset;
  for (const p of parts) {
    const src = heapOf(backend, p).offset;
    const size = tf.util.sizeFromShape(p.shape);
    heap.copyWithin(at, src, src + size);
    at += size;
  }
  release(backend, ...parts);
  return out;
}

/** Conv2D / FusedConv2D forward; falls back to upstream for dilations, NCHW and PReLU. */
export function makeConv2D(upstream: KernelFn | null, fused: boolean): KernelFn {
  return (args) => {
    const backend = args.backend as HeapBackend;
    const { x, filter, bias, preluActivationWeights } = args.inputs as Record<string, tf.TensorInfo | undefined>;
    const attrs = args.attrs as unknown as ConvAttrs & { activation?: string; leakyreluAlpha?: number };
    const info = x && filter && x.dtype === 'float32' ? convInfoOf(x.shape, filter.shape, attrs) : null;
    const [O] = filter ? filter.shape.slice(3) : [0];
    const simpleBias = bias == null || (bias.shape.length === 1 && bias.shape[0] === O);
    if (info == null || preluActivationWeights != null || !simpleBias) {
      if (upstream == null) throw new Error('normprune: no upstream wasm kernel for this convolution');
      return upstream(args);
    }
    const g = geometry(info);
    const K = g.kh * g.kw * g.C;
    const w = reshape(backend, filter!, [1, K, O]);
    const per = imagesPerChunk(g);
    const parts: tf.TensorInfo[] = [];
    for (let n0 = 0; n0 < g.N; n0 += per) {
      const n1 = Math.min(g.N, n0 + per);
      const cols = patches(backend, x!, g, n0, n1);
      const y = fused
        ? runWasm('_FusedMatMul', bias ? { a: cols, b: w, bias } : { a: cols, b: w }, backend, {
            transposeA: false,
            transposeB: false,
            activation: attrs.activation ?? 'linear',
            leakyreluAlpha: attrs.leakyreluAlpha ?? 0,
          } as unknown as tf.NamedAttrMap)
        : runWasm('BatchMatMul', { a: cols, b: w }, backend, { transposeA: false, transposeB: false });
      release(backend, cols);
      parts.push(y);
    }
    release(backend, w);
    return assemble(backend, parts, info.outShape);
  };
}

/** dW = patches(x)^T dy, accumulated over batch chunks. */
export function conv2DBackpropFilter(args: Args): tf.TensorInfo {
  const backend = args.backend as HeapBackend;
  const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const attrs = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  const info = convInfoOf(x.shape, attrs.filterShape, attrs as unknown as ConvAttrs);
  if (info == null) throw new Error(`normprune: wasm Conv2DBackpropFilter supports dataFormat 'NHWC' only`);
  const g = geometry(info);
  const per = imagesPerChunk(g);
  let acc: tf.TensorInfo | null = null;
  for (let n0 = 0; n0 < g.N; n0 += per) {
    const n1 = Math.min(g.N, n0 + per);
    const cols = patches(backend, x, g, n0, n1);
    const dyRows = pixelRows(backend, dy, n0, n1);
    // dW^T = dy^T cols keeps the large patch matrix as the untransposed right operand.
    const dyT = transpose(backend, dyRows, [0, 2, 1]);
    release(backend, dyRows);
    const part = runWasm('BatchMatMul', { a: dyT, b: cols }, backend, { transposeA: false, transposeB: false });
    release(backend, dyT, cols);
    if (acc == null) acc = part;
    else {
      const sum = runWasm('Add', { a: acc, b: part }, backend);
      release(backend, acc, part);
      acc = sum;
    }
  }
  const t = transpose(backend, acc!, [0, 2, 1]);
  release(backend, acc);
  const out = reshape(backend, t, attrs.filterShape);
  release(backend, t);
  return out;
}

/** dx = col2im(dy W^T). */
export function conv2DBackpropInput(args: Args): tf.TensorInfo {
  const backend = args.backend as HeapBackend;
  const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const attrs = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
  const info = convInfoOf(attrs.inputShape, filter.shape, attrs as unknown as ConvAttrs);
  if (info == null) throw new Error(`normprune: wasm Conv2DBackpropInput supports dataFormat 'NHWC' only`);
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
    const cols = runWasm('BatchMatMul', { a: dyRows, b: wT }, backend, { transposeA: false, transposeB: false });
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
    const cols = runWasm('BatchMatMul', { a: dyRows, b: wT }, backend, { transposeA: false, transposeB: false });
    release(backend, dyRows);
    const { heap, offset: colsOff } = heapOf(backend, cols);
    col2im(heap, colsOff, heapOf(backend, dx).offset, g, n0, n1);
    release(backend, cols);
  }
  release(backend, wT);
  return dx;
}
