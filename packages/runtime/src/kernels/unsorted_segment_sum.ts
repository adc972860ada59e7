// UnsortedSegmentSum, which the wasm backend lacks: tfjs-core's gradient of
// tf.gather calls it (dy summed into the gathered rows), so an Embedding layer,
// or any gradient through tf.gather, could not train on wasm ("Kernel
// 'UnsortedSegmentSum' not registered for backend 'wasm'"). One pass over x in
// plain JS on the wasm heap, summing in float64 as the cpu backend does.
//
// It gives the cpu backend's kernel's answer, which is not quite TensorFlow's.
// cpu computes, for each segment k = 0, 1, ... while k < numSegments,
// sum over axis 0 of (segmentIds == k) * x, with segmentIds reshaped to
// [ids[0], 1, ..., 1, ...ids.slice(1)] (x's rank) and broadcast with x. So:
// the output is float32 whatever x's dtype (each value rounded to float32
// first: int32 16777217 counts as 16777216); an id that is negative, not an
// integer or not below numSegments adds nothing; only axis 0 is summed, so ids
// of rank 2 or more are not read as TensorFlow reads them (ids [2, 3] with an
// x [2, 4, 3] give [numSegments, 4, 3]: each id sums the column it broadcasts
// to); a NaN or an infinity in x makes its column NaN in every segment it is
// not in (0 * Infinity); and numSegments 0 is refused (cpu fails on it). The
// sums run over axis 0 in increasing order in float64, as cpu's do, so the
// values agree bit for bit.
import * as tf from '@tensorflow/tfjs-core';
import type { HeapBackend } from './util.js';

/** The shape cpu broadcasts the segment ids at: a 1 inserted after the first axis per rank x has more. */
function maskShape(ids: number[], xRank: number): number[] {
  const shape = ids.slice();
  for (let i = 0; i < xRank - ids.length; i++) shape.splice(i + 1, 0, 1);
  return shape;
}

/** Row-major strides of `shape` padded with leading 1s to `rank`, 0 along the axes of size 1 (broadcast). */
function broadcastStrides(shape: number[], rank: number): number[] {
  const padded = [...new Array<number>(rank - shape.length).fill(1), ...shape];
  const strides = new Array<number>(rank);
  for (let d = rank - 1, s = 1; d >= 0; d--) {
    strides[d] = padded[d] === 1 ? 0 : s;
    s *= padded[d];
  }
  return strides;
}

/** UnsortedSegmentSum on the wasm heap, with the cpu backend's semantics (see above). */
export function unsortedSegmentSum(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const backend = args.backend as HeapBackend;
  const { x, segmentIds } = args.inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const { numSegments } = args.attrs as unknown as tf.UnsortedSegmentSumAttrs;
  for (const [name, t] of [
    ['x', x],
    ['segmentIds', segmentIds],
  ] as const) {
    if (t.dtype === 'string' || t.dtype === 'complex64') {
      throw new Error(`normprune: wasm UnsortedSegmentSum does not support a ${t.dtype} ${name}`);
    }
  }
  if (!(numSegments > 0) || !Number.isFinite(numSegments)) {
    throw new Error(
      `normprune: UnsortedSegmentSum needs numSegments of 1 or more, got ${numSegments} ` +
        '(the cpu backend fails on it too)',
    );
  }
  const mask = maskShape(segmentIds.shape, x.shape.length);
  // cpu's error when they do not broadcast: "Operands could not be broadcast together with shapes ...".
  const shape = tf.backend_util.assertAndGetBroadcastShape(mask, x.shape);
  if (shape.length === 0) {
    throw new Error(
      'normprune: UnsortedSegmentSum of a scalar x by a scalar segmentIds has no axis to sum over ' +
        '(the cpu backend refuses it too)',
    );
  }
  // cpu's loop runs k = 0, 1, ... while k < numSegments.
  const K = Math.ceil(numSegments);
  const [N, ...inner] = shape;
  const D = tf.util.sizeFromShape(inner);
  const out = backend.makeOutput([K, ...inner], 'float32');
  if (K * D === 0) return out;
  const acc = new Float64Array(K * D);
  // Non-finite values of x per column, and per segment and column (allocated when one is met).
  let nonFinite: Int32Array | null = null;
  let nonFiniteIn: Int32Array | null = null;
  const add = (s: number, j: number, v: number): void => {
    const k = Number.isInteger(s) && s >= 0 && s < K ? s | 0 : -1;
    if (k >= 0) acc[k * D + j] += v;
    if (!Number.isFinite(v)) {
      nonFinite ??= new Int32Array(D);
      nonFiniteIn ??= new Int32Array(K * D);
      nonFinite[j]++;
      if (k >= 0) nonFiniteIn[k * D + j]++;
    }
  };
  if (N * D > 0) {
    // Views are taken after the allocation above: growing the heap detaches older ones.
    const ids = backend.typedArrayFromHeap(segmentIds);
    const xs = backend.typedArrayFromHeap(x);
    if (segmentIds.shape.length === 1 && segmentIds.shape[0] === N && tf.util.arraysEqual(x.shape, shape)) {
      // One id per row of x (tf.gather's gradient): no broadcasting.
      for (let i = 0, p = 0; i < N; i++) {
        const s = ids[i];
        for (let j = 0; j < D; j++, p++) add(s, j, Math.fround(xs[p]));
      }
    } else {
      const rank = shape.length;
      const mStrides = broadcastStrides(mask, rank);
      const xStrides = broadcastStrides(x.shape, rank);
      const strides = tf.util.computeStrides(shape);
      for (let p = 0; p < N * D; p++) {
        let rest = p;
        let m = 0;
        let xi = 0;
        for (let d = 0; d < rank - 1; d++) {
          const c = Math.floor(rest / strides[d]);
          rest -= c * strides[d];
          m += c * mStrides[d];
          xi += c * xStrides[d];
        }
        m += rest * mStrides[rank - 1];
        xi += rest * xStrides[rank - 1];
        add(ids[m], p % D, Math.fround(xs[xi]));
      }
    }
  }
  const dst = backend.typedArrayFromHeap(out) as Float32Array;
  for (let q = 0; q < K * D; q++) dst[q] = acc[q];
  if (nonFinite != null && nonFiniteIn != null) {
    // cpu multiplies every row by its 0/1 mask: 0 * Infinity (or NaN) is NaN in the other segments.
    for (let k = 0, q = 0; k < K; k++) {
      for (let j = 0; j < D; j++, q++) if (nonFinite[j] > nonFiniteIn[q]) dst[q] = NaN;
    }
  }
  return out;
}
