// Upstream wasm computes float32 Add, Sub, Multiply, RealDiv and
// SquaredDifference with XNNPACK's n-d binary operators, which take at most 6
// dimensions per operand (XNN_MAX_TENSOR_DIMS). With an operand of rank 7 or
// more their setup fails, upstream ignores the failure, and the output holds
// whatever its buffer held: tf.mul of a [3, 1, 1, 4, 1, 5, 3] and a
// [4, 1, 5, 3] tensor was off by 2.86 relative to the cpu backend (row 52 of
// bench/upstream-faults.ts; the figure depends on what the heap held), and so was
// any rank-7 call, broadcast or not (same shapes too). tfjs-core's prelu
// gradient multiplies at the output's rank, so it was wrong there too. The
// int32 and bool paths (and the other binary kernels) loop over any rank and
// are right. Such calls get operands reshaped to the fewest axes that
// broadcast the same way: axes of size 1 in the output dropped, runs of
// adjacent axes where each operand either matches the output or is 1 merged
// into one. Only operands whose broadcasts alternate over 7 or more runs are
// still too high after that; one of them (both if need be) is then repeated
// to the output's shape, and the rest merges.
import * as tf from '@tensorflow/tfjs-core';
import { broadcastTo, KernelFn, release, reshape } from './util.js';

/** The highest rank XNNPACK's binary operators take (XNN_MAX_TENSOR_DIMS). */
export const XNN_MAX_RANK = 6;

/**
 * The fewest axes expressing how `aShape` and `bShape` broadcast together:
 * shapes for a and b of one rank (possibly 0), each axis either matching
 * the other's or 1 in one of them, with the same elements in the same order.
 * Assumes the two broadcast (and that the output is not empty).
 */
export function coalesceBroadcast(aShape: number[], bShape: number[]): [number[], number[]] {
  const rank = Math.max(aShape.length, bShape.length);
  const a: number[] = [];
  const b: number[] = [];
  let last = -1;
  for (let i = 0; i < rank; i++) {
    const da = aShape[i - rank + aShape.length] ?? 1;
    const db = bShape[i - rank + bShape.length] ?? 1;
    // An axis of size 1 in the output moves no element.
    if (da === 1 && db === 1) continue;
    // Which operand (if any) repeats along this axis.
    const kind = da === 1 ? 1 : db === 1 ? 2 : 0;
    if (kind === last) {
      a[a.length - 1] *= da;
      b[b.length - 1] *= db;
    } else {
      a.push(da);
      b.push(db);
      last = kind;
    }
  }
  return [a, b];
}

/**
 * Wraps an upstream XNNPACK binary kernel: operands of rank 6 or less, and
 * any that are not float32, go to it untouched (two shape reads); others run
 * on reshaped views (see above) and the output is reshaped back.
 */
export function makeHighRankBinary(upstream: KernelFn | null): KernelFn | null {
  if (upstream == null) return null;
  return (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    if ((a.shape.length <= XNN_MAX_RANK && b.shape.length <= XNN_MAX_RANK) || a.dtype !== 'float32') {
      return upstream(args);
    }
    const backend = args.backend as tf.KernelBackend;
    const outShape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
    // Upstream returns an empty output without computing.
    if (tf.util.sizeFromShape(outShape) === 0) return upstream(args);
    let [as, bs] = coalesceBroadcast(a.shape, b.shape);
    let [xa, xb] = [a, b];
    if (as.length > XNN_MAX_RANK) {
      // Repeating one operand to the output leaves the other's runs; both, one run.
      const full = as.map((d, i) => Math.max(d, bs[i]));
      const repeatA = coalesceBroadcast(full, bs)[0].length <= XNN_MAX_RANK;
      const repeatB = !repeatA && coalesceBroadcast(as, full)[0].length <= XNN_MAX_RANK;
      const [ra, rb] = repeatA ? [true, false] : repeatB ? [false, true] : [true, true];
      const repeat = (x: tf.TensorInfo, shape: number[]) => {
        const v = reshape(backend, x, shape);
        const r = broadcastTo(backend, v, full);
        release(backend, v);
        return r;
      };
      if (ra) xa = repeat(a, as);
      if (rb) xb = repeat(b, bs);
      [as, bs] = coalesceBroadcast(ra ? full : as, rb ? full : bs);
    }
    if (as.length === 0) [as, bs] = [[1], [1]];
    const va = reshape(backend, xa, as);
    const vb = reshape(backend, xb, bs);
    const out = upstream({ ...args, inputs: { a: va, b: vb } }) as tf.TensorInfo;
    const result = reshape(backend, out, outShape);
    release(backend, va, vb, out, xa === a ? null : xa, xb === b ? null : xb);
    return result;
  };
}
