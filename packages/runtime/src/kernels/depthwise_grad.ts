// Depthwise convolution gradients for the wasm backend, which has neither
// (so DepthwiseConv2D and SeparableConv2D layers could not train). A depthwise
// convolution does kh * kw * M multiply-adds per input value, little next to a
// full convolution, so plain JS loops on the wasm heap suffice. Sums run in
// float64, as the cpu backend's do, so both agree to float32 rounding.
import * as tf from '@tensorflow/tfjs-core';
import { geometry, type Geometry } from './col2im.js';
import type { HeapBackend } from './util.js';

interface DepthwiseAttrs {
  strides: number | [number, number];
  dilations?: number | [number, number];
  pad: unknown;
  dimRoundingMode?: string;
}

/** Geometry of a depthwise convolution, NHWC, channel multiplier M (filter `[kh, kw, C, M]`). */
interface DepthwiseGeometry extends Geometry {
  M: number;
}

function depthwiseGeometry(
  xShape: number[],
  filterShape: number[],
  attrs: DepthwiseAttrs,
  kernel: string,
): DepthwiseGeometry {
  const dilations = attrs.dilations ?? 1;
  const [dh, dw] = typeof dilations === 'number' ? [dilations, dilations] : dilations;
  if (dh !== 1 || dw !== 1) {
    // tfjs-core's gradient refuses dilation too; say so here in case another caller does not.
    throw new Error(`normprune: wasm ${kernel} supports dilations 1 only, got [${dh}, ${dw}]`);
  }
  const info = tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad as 'same',
    attrs.dimRoundingMode as 'floor' | undefined,
    true,
  );
  return { ...geometry(info), M: info.outChannels / info.inChannels };
}

function checkFloat32(kernel: string, ...infos: tf.TensorInfo[]): void {
  for (const info of infos) {
    if (info.dtype !== 'float32') {
      throw new Error(`normprune: wasm ${kernel} supports float32 only, got ${info.dtype}`);
    }
  }
}

/** dW[i, j, c, m] = sum over n, p, q of x[n, p*sh + i - top, q*sw + j - left, c] * dy[n, p, q, c*M + m]. */
function filterGradient(x: Float32Array, dy: Float32Array, g: DepthwiseGeometry): Float64Array {
  const { N, H, W, C, M, OH, OW, kh, kw, sh, sw, top, left } = g;
  const CM = C * M;
  const dw = new Float64Array(kh * kw * CM);
  for (let n = 0; n < N; n++) {
    for (let p = 0; p < OH; p++) {
      const i0 = Math.max(0, top - p * sh);
      const i1 = Math.min(kh, H + top - p * sh);
      for (let q = 0; q < OW; q++) {
        const j0 = Math.max(0, left - q * sw);
        const j1 = Math.min(kw, W + left - q * sw);
        const dyBase = ((n * OH + p) * OW + q) * CM;
        for (let i = i0; i < i1; i++) {
          const rowBase = (n * H + p * sh + i - top) * W;
          for (let j = j0; j < j1; j++) {
            const xBase = (rowBase + q * sw + j - left) * C;
            const wBase = (i * kw + j) * CM;
            if (M === 1) {
              // The common case (MobileNet): a plain elementwise multiply-add over channels.
              for (let c = 0; c < C; c++) dw[wBase + c] += x[xBase + c] * dy[dyBase + c];
              continue;
            }
            for (let c = 0; c < C; c++) {
              const xv = x[xBase + c];
              const o = c * M;
              for (let m = 0; m < M; m++) dw[wBase + o + m] += xv * dy[dyBase + o + m];
            }
          }
        }
      }
    }
  }
  return dw;
}

/**
 * dx[n, r, s, c] = sum over the outputs (p, q) whose window holds (r, s), and m,
 * of dy[n, p, q, c*M + m] * w[r + top - p*sh, s + left - q*sw, c, m]. Gathered per
 * input pixel, so each sum is accumulated once, in float64.
 */
function inputGradient(dy: Float32Array, w: Float32Array, dx: Float32Array, g: DepthwiseGeometry): void {
  const { N, H, W, C, M, OH, OW, kh, kw, sh, sw, top, left } = g;
  const CM = C * M;
  const acc = new Float64Array(C);
  for (let n = 0; n < N; n++) {
    for (let r = 0; r < H; r++) {
      const p0 = Math.max(0, Math.ceil((r + top - kh + 1) / sh));
      const p1 = Math.min(OH - 1, Math.floor((r + top) / sh));
      for (let s = 0; s < W; s++) {
        const q0 = Math.max(0, Math.ceil((s + left - kw + 1) / sw));
        const q1 = Math.min(OW - 1, Math.floor((s + left) / sw));
        acc.fill(0);
        for (let p = p0; p <= p1; p++) {
          const i = r + top - p * sh;
          for (let q = q0; q <= q1; q++) {
            const j = s + left - q * sw;
            const dyBase = ((n * OH + p) * OW + q) * CM;
            const wBase = (i * kw + j) * CM;
            if (M === 1) {
              for (let c = 0; c < C; c++) acc[c] += dy[dyBase + c] * w[wBase + c];
              continue;
            }
            for (let c = 0; c < C; c++) {
              const o = c * M;
              let sum = 0;
              for (let m = 0; m < M; m++) sum += dy[dyBase + o + m] * w[wBase + o + m];
              acc[c] += sum;
            }
          }
        }
        const dxBase = ((n * H + r) * W + s) * C;
        for (let c = 0; c < C; c++) dx[dxBase + c] = acc[c];
      }
    }
  }
}

/** DepthwiseConv2dNativeBackpropFilter (NHWC, float32) on the wasm heap. */
export function depthwiseConv2dNativeBackpropFilter(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const kernel = 'DepthwiseConv2dNativeBackpropFilter';
  const backend = args.backend as HeapBackend;
  const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const attrs = args.attrs as unknown as tf.DepthwiseConv2dNativeBackpropFilterAttrs;
  checkFloat32(kernel, x, dy);
  const g = depthwiseGeometry(x.shape, attrs.filterShape, attrs, kernel);
  const sums = filterGradient(
    backend.typedArrayFromHeap(x) as Float32Array,
    backend.typedArrayFromHeap(dy) as Float32Array,
    g,
  );
  const out = backend.makeOutput(attrs.filterShape, 'float32');
  // The view is taken after the allocation: growing the heap detaches older views.
  (backend.typedArrayFromHeap(out) as Float32Array).set(sums);
  return out;
}

/** DepthwiseConv2dNativeBackpropInput (NHWC, float32) on the wasm heap. */
export function depthwiseConv2dNativeBackpropInput(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const kernel = 'DepthwiseConv2dNativeBackpropInput';
  const backend = args.backend as HeapBackend;
  const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const attrs = args.attrs as unknown as tf.DepthwiseConv2dNativeBackpropInputAttrs;
  checkFloat32(kernel, dy, filter);
  const g = depthwiseGeometry(attrs.inputShape, filter.shape, attrs, kernel);
  const out = backend.makeOutput(attrs.inputShape, 'float32');
  // Views are taken after the allocation above: growing the heap detaches older ones.
  inputGradient(
    backend.typedArrayFromHeap(dy) as Float32Array,
    backend.typedArrayFromHeap(filter) as Float32Array,
    backend.typedArrayFromHeap(out) as Float32Array,
    g,
  );
  return out;
}
