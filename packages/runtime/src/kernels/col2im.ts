// Patch matrices on the wasm heap, built and scattered in plain JS:
// - col2im, for the input gradient of convolutions whose flipped-filter form
//   would mostly multiply padding (e.g. 5x5 'valid' on small images): dy W^T is
//   one matrix multiply, scattered back onto dx over runs of kw * C floats;
// - transposed im2col, for the filter gradient of convolutions with few input
//   channels (the first layer of a net), where XNNPACK's dilated convolution is
//   2.5-4x slower than one matrix multiply over patches.
import * as tf from '@tensorflow/tfjs-core';
import type { HeapBackend } from './util.js';

/** Geometry of a 2-D convolution, NHWC, dilation 1. */
export interface Geometry {
  N: number;
  H: number;
  W: number;
  C: number;
  OH: number;
  OW: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  top: number;
  left: number;
}

/** Geometry from tfjs's conv info. */
export function geometry(info: tf.backend_util.Conv2DInfo): Geometry {
  return {
    N: info.batchSize,
    H: info.inHeight,
    W: info.inWidth,
    C: info.inChannels,
    OH: info.outHeight,
    OW: info.outWidth,
    kh: info.filterHeight,
    kw: info.filterWidth,
    sh: info.strideHeight,
    sw: info.strideWidth,
    top: info.padInfo.top,
    left: info.padInfo.left,
  };
}

/** True when patches are the input itself (1x1, stride 1, no padding). */
export function isPointwise(g: Geometry): boolean {
  return (
    g.kh === 1 &&
    g.kw === 1 &&
    g.sh === 1 &&
    g.sw === 1 &&
    g.top === 0 &&
    g.left === 0 &&
    g.OH === g.H &&
    g.OW === g.W
  );
}

/** Largest patch matrix (floats) held at once; tests lower it to exercise batch chunking. */
export const im2colLimits = { maxFloats: 8 * 1024 * 1024 };

/** Images per chunk so that one chunk's patch matrix stays below ~32 MB of wasm heap. */
export function imagesPerChunk(g: Geometry, maxFloats = im2colLimits.maxFloats): number {
  const perImage = g.OH * g.OW * g.kh * g.kw * g.C;
  return Math.max(1, Math.min(g.N, Math.floor(maxFloats / Math.max(1, perImage))));
}

/**
 * Adds the patch matrix of images [n0, n1) (one row per output pixel, columns
 * (i, j, c)) onto `dx` (heap offset, already zeroed by the caller): the adjoint
 * of im2col.
 */
export function col2im(
  heap: Float32Array,
  colsOff: number,
  dxOff: number,
  g: Geometry,
  n0: number,
  n1: number,
): void {
  const { H, W, C, OH, OW, kh, kw, sh, sw, top, left } = g;
  const rowStride = W * C;
  const run = kw * C;
  let o = colsOff;
  for (let n = n0; n < n1; n++) {
    const xb = dxOff + n * H * rowStride;
    for (let oh = 0; oh < OH; oh++) {
      const r0 = oh * sh - top;
      for (let ow = 0; ow < OW; ow++) {
        const c0 = ow * sw - left;
        const jMin = c0 < 0 ? -c0 : 0;
        const jMax = c0 + kw > W ? W - c0 : kw;
        for (let i = 0; i < kh; i++, o += run) {
          const r = r0 + i;
          if (r < 0 || r >= H || jMin >= jMax) continue;
          const dst = xb + r * rowStride + (c0 + jMin) * C;
          const src = o + jMin * C;
          const len = (jMax - jMin) * C;
          for (let t = 0; t < len; t++) heap[dst + t] += heap[src + t];
        }
      }
    }
  }
}

/** The whole wasm heap as floats, and a tensor's offset in it (in floats). */
export function heapOf(backend: HeapBackend, info: tf.TensorInfo): { heap: Float32Array; offset: number } {
  const view = backend.typedArrayFromHeap(info) as Float32Array;
  return { heap: new Float32Array(view.buffer), offset: view.byteOffset >>> 2 };
}

/**
 * Writes the transposed patch matrix of all images of `x`: one row per filter
 * tap (i, j, c), one column per output pixel (n, p, q), so that
 * dW = cols dy is an untransposed matrix multiply whose packed right-hand side
 * is the small dy.
 */
export function im2colT(heap: Float32Array, xOff: number, dst: number, g: Geometry): void {
  const { N, H, W, C, OH, OW, kh, kw, sh, sw, top, left } = g;
  const R = N * OH * OW;
  const rowStride = W * C;
  const step = sw * C;
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      // Output columns q whose input column q * sw + j - left lies inside the image.
      const qMin = Math.min(OW, Math.max(0, Math.ceil((left - j) / sw)));
      const qMax = Math.max(qMin, Math.min(OW, Math.floor((W - 1 + left - j) / sw) + 1));
      for (let c = 0; c < C; c++) {
        let o = dst + ((i * kw + j) * C + c) * R;
        for (let n = 0; n < N; n++) {
          const xb = xOff + n * H * rowStride;
          for (let p = 0; p < OH; p++, o += OW) {
            const r = p * sh + i - top;
            if (r < 0 || r >= H || qMin >= qMax) {
              heap.fill(0, o, o + OW);
              continue;
            }
            for (let q = 0; q < qMin; q++) heap[o + q] = 0;
            let s = xb + r * rowStride + (qMin * sw + j - left) * C + c;
            for (let q = qMin; q < qMax; q++, s += step) heap[o + q] = heap[s];
            for (let q = qMax; q < OW; q++) heap[o + q] = 0;
          }
        }
      }
    }
  }
}
