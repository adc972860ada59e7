// Upstream wasm MaxPoolGrad costs about as much as a convolution (45 ms per
// LeNet-5 step). Gradient routing is a cheap scatter: each output gradient goes
// to the first strictly-largest input of its window (the cpu backend's
// tie-breaking, which matters after ReLU, where whole windows are 0). Done here
// in plain JS directly on the wasm heap.
// tfjs-core's maxPool gradient drops dimRoundingMode: when it rounded the
// forward size up, dy is larger than the (floor) geometry computed here, and
// the cpu backend reads only its leading part, so this reads that part too
// (dyOfGeometry, util.ts; reading the whole dy as a dense floor-sized array
// shifted every row after the first: off by 1.28 on 6x6x2, filter 3,
// stride 2, pad 1, 'ceil').
import * as tf from '@tensorflow/tfjs-core';
import { dyOfGeometry, poolInfo, release, type HeapBackend } from './util.js';

/** MaxPoolGrad (NHWC, float32) on the wasm heap. */
export function maxPoolGrad(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const backend = args.backend as HeapBackend;
  const { dy: given, input } = args.inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
  const info = poolInfo(input, args.attrs as unknown as tf.MaxPoolGradAttrs);
  const dy = dyOfGeometry(backend, given, info);
  const out = scatter(backend, dy, input, info);
  if (dy !== given) release(backend, dy);
  return out;
}

/** dx: each entry of `dy` (of the geometry's shape) added at its window's first maximum. */
function scatter(
  backend: HeapBackend,
  dy: tf.TensorInfo,
  input: tf.TensorInfo,
  info: tf.backend_util.Conv2DInfo,
): tf.TensorInfo {
  const {
    batchSize,
    inHeight,
    inWidth,
    inChannels: C,
    outHeight,
    outWidth,
    strideHeight,
    strideWidth,
  } = info;
  const fh = info.effectiveFilterHeight;
  const fw = info.effectiveFilterWidth;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const out = backend.makeOutput(input.shape, 'float32');
  // Views are taken after the allocation above: growing the heap detaches older ones.
  const dx = backend.typedArrayFromHeap(out) as Float32Array;
  const x = backend.typedArrayFromHeap(input) as Float32Array;
  const g = backend.typedArrayFromHeap(dy) as Float32Array;
  dx.fill(0);
  const rowStride = inWidth * C;
  const imageStride = inHeight * rowStride;
  if (
    fh === 2 &&
    fw === 2 &&
    strideHeight === 2 &&
    strideWidth === 2 &&
    top === 0 &&
    left === 0 &&
    2 * outHeight <= inHeight &&
    2 * outWidth <= inWidth
  ) {
    // The common 2x2, stride 2 pooling with every window inside the image:
    // disjoint windows, comparisons unrolled in the cpu backend's scan order.
    let gi = 0;
    for (let b = 0; b < batchSize; b++) {
      for (let yR = 0; yR < outHeight; yR++) {
        for (let yC = 0; yC < outWidth; yC++) {
          const p0 = b * imageStride + 2 * yR * rowStride + 2 * yC * C;
          for (let d = 0; d < C; d++, gi++) {
            const a = p0 + d;
            let best = Number.NEGATIVE_INFINITY;
            let at = -1;
            let v = x[a];
            if (v > best) {
              best = v;
              at = a;
            }
            v = x[a + C];
            if (v > best) {
              best = v;
              at = a + C;
            }
            v = x[a + rowStride];
            if (v > best) {
              best = v;
              at = a + rowStride;
            }
            if (x[a + rowStride + C] > best) at = a + rowStride + C;
            if (at >= 0) dx[at] += g[gi];
          }
        }
      }
    }
    return out;
  }
  // Channels innermost: every window read is a contiguous run of C floats.
  const best = new Float32Array(C);
  const at = new Int32Array(C);
  let gi = 0;
  for (let b = 0; b < batchSize; b++) {
    const base = b * imageStride;
    for (let yR = 0; yR < outHeight; yR++) {
      const r0 = yR * strideHeight - top;
      const rMin = Math.max(0, r0);
      const rMax = Math.min(inHeight, r0 + fh);
      for (let yC = 0; yC < outWidth; yC++, gi += C) {
        const c0 = yC * strideWidth - left;
        const cMin = Math.max(0, c0);
        const cMax = Math.min(inWidth, c0 + fw);
        best.fill(Number.NEGATIVE_INFINITY);
        at.fill(-1);
        for (let r = rMin; r < rMax; r++) {
          for (let c = cMin; c < cMax; c++) {
            const p = base + r * rowStride + c * C;
            for (let d = 0; d < C; d++) {
              const v = x[p + d];
              if (v > best[d]) {
                best[d] = v;
                at[d] = p + d;
              }
            }
          }
        }
        for (let d = 0; d < C; d++) if (at[d] >= 0) dx[at[d]] += g[gi + d];
      }
    }
  }
  return out;
}
