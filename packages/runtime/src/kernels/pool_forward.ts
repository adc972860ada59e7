// Upstream wasm MaxPool and AvgPool hand XNNPACK the padding tfjs computes,
// and XNNPACK works out the output size itself. Two kinds of call come out
// wrong against the cpu backend (tfjs-backend-wasm 4.22 without normprune
// too):
// * a dimRoundingMode ('ceil', 'round') that rounds the output size up:
//   XNNPACK computes the floor size and writes a smaller image into the
//   larger output, so every row after the first is shifted and the rest is
//   unwritten (off by 1.7 for maxPool, 1.2 for avgPool on a 6x6 input, filter
//   3, stride 2, pad 1, 'ceil': bench/upstream-faults.ts rows 31-32). As
//   for the convolutions (conv_forward.ts), such a call goes to upstream
//   with extra bottom/right padding that makes the floor size tfjs's size;
//   padding never enters a max or (XNNPACK counts only the input's pixels)
//   an average, so the values are the cpu backend's.
// * a window that lies wholly in the padding, which a padding at least the
//   filter's size (or a size rounded up past the input) makes: the cpu
//   backend gives the empty window's max, -Infinity, and average, 0/0 = NaN;
//   upstream gives 0, and with a 1x1 filter ignores the padding altogether
//   (the unpadded image, then zeros). Such calls, which tfjs-layers never
//   makes, are computed here in JavaScript exactly as the cpu backend's pool
//   computes them (the same loops and float64 sums), on the wasm heap.
// * an output with a 0 height or width (a 'valid' window larger than the
//   input, [3, 7, 1, 4] pooled 2x2 with strides [2, 3]): upstream wrote into
//   it, "memory access out of bounds", and later wasm calls trapped (or an
//   avgPool hung). The empty output is returned without calling upstream.
// Every other call goes to upstream untouched.
import * as tf from '@tensorflow/tfjs-core';
import {
  emptyOutput,
  KernelFn,
  padFor,
  pair,
  PoolGeometryAttrs,
  poolInfo,
  type HeapBackend,
} from './util.js';

/** Whether some window along one dimension lies wholly in the padding. */
function emptyWindow(
  out: number,
  stride: number,
  filter: number,
  input: number,
  before: number,
  after: number,
) {
  return before >= filter || after >= filter || (out - 1) * stride - before >= input;
}

/** The cpu backend's pool (tfjs-backend-cpu's pool_utils `pool`, dilation 1) on the wasm heap. */
function poolAsCpu(
  backend: HeapBackend,
  x: tf.TensorInfo,
  info: tf.backend_util.Conv2DInfo,
  kind: 'max' | 'avg',
): tf.TensorInfo {
  const out = backend.makeOutput(info.outShape, 'float32');
  // Views are taken after the allocation: growing the heap detaches older ones.
  const xv = backend.typedArrayFromHeap(x) as Float32Array;
  const ov = backend.typedArrayFromHeap(out) as Float32Array;
  const { batchSize, inHeight, inWidth, inChannels: c, outHeight, outWidth } = info;
  const [fh, fw] = [info.effectiveFilterHeight, info.effectiveFilterWidth];
  const [sh, sw] = [info.strideHeight, info.strideWidth];
  const { top, left } = info.padInfo;
  const acc = new Float64Array(c);
  let o = 0;
  for (let b = 0; b < batchSize; b++) {
    const xb = b * inHeight * inWidth * c;
    for (let yr = 0; yr < outHeight; yr++) {
      const r0 = yr * sh - top;
      const [rMin, rMax] = [Math.max(0, r0), Math.min(inHeight, r0 + fh)];
      for (let yc = 0; yc < outWidth; yc++, o += c) {
        const c0 = yc * sw - left;
        const [cMin, cMax] = [Math.max(0, c0), Math.min(inWidth, c0 + fw)];
        acc.fill(kind === 'max' ? -Infinity : 0);
        let count = 0;
        for (let xr = rMin; xr < rMax; xr++) {
          for (let xc = cMin; xc < cMax; xc++) {
            const at = xb + (xr * inWidth + xc) * c;
            if (kind === 'max') {
              for (let d = 0; d < c; d++) if (xv[at + d] > acc[d]) acc[d] = xv[at + d];
            } else {
              for (let d = 0; d < c; d++) acc[d] += xv[at + d];
              count++;
            }
          }
        }
        for (let d = 0; d < c; d++) ov[o + d] = kind === 'max' ? acc[d] : acc[d] / count;
      }
    }
  }
  return out;
}

/**
 * Wraps upstream `MaxPool` / `AvgPool`: a dimRoundingMode that rounds the
 * output size up goes to upstream as explicit padding, and a call with a
 * window wholly in the padding is computed as the cpu backend computes it.
 */
export function poolForward(upstream: KernelFn | null, kind: 'max' | 'avg'): KernelFn | null {
  if (upstream == null) return null;
  return (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const attrs = args.attrs as unknown as PoolGeometryAttrs;
    // Upstream's own refusals (int32, rank).
    if (x.shape.length !== 4 || x.dtype !== 'float32') return upstream(args);
    if (attrs.pad === 'same' || attrs.pad === 'valid') {
      // The common case; an empty x ('same') or a window larger than x ('valid') leaves no output.
      const [fh, fw] = pair(attrs.filterSize);
      const [h, w] = [x.shape[1], x.shape[2]];
      if (attrs.pad === 'same' ? h > 0 && w > 0 : h >= fh && w >= fw) return upstream(args);
      return emptyOutput(args.backend as HeapBackend, poolInfo(x, attrs).outShape)!;
    }
    const info = poolInfo(x, attrs);
    const empty = emptyOutput(args.backend as HeapBackend, info.outShape);
    if (empty != null) return empty;
    if (tf.util.sizeFromShape(x.shape) === 0) return upstream(args);
    const p = info.padInfo;
    const [fh, fw] = [info.effectiveFilterHeight, info.effectiveFilterWidth];
    if (
      emptyWindow(info.outHeight, info.strideHeight, fh, info.inHeight, p.top, p.bottom) ||
      emptyWindow(info.outWidth, info.strideWidth, fw, info.inWidth, p.left, p.right)
    ) {
      return poolAsCpu(args.backend as HeapBackend, x, info, kind);
    }
    const bottom = padFor(info.outHeight, info.strideHeight, fh, info.inHeight, p.top);
    const right = padFor(info.outWidth, info.strideWidth, fw, info.inWidth, p.left);
    // Rounding gave the floor size (or there was no rounding).
    if (bottom <= p.bottom && right <= p.right) return upstream(args);
    const pad = [
      [0, 0],
      [p.top, Math.max(p.bottom, bottom)],
      [p.left, Math.max(p.right, right)],
      [0, 0],
    ];
    // The explicit padding now gives the rounded size with the floor rule.
    const rest = { ...(args.attrs as tf.NamedAttrMap), pad } as tf.NamedAttrMap;
    delete rest.dimRoundingMode;
    return upstream({ ...args, attrs: rest });
  };
}
