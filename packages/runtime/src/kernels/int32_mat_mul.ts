// Upstream wasm BatchMatMul refuses int32 operands ("BatchMatMul for non
// non-float32 tensors not yet supported."), so tf.matMul, tf.dot and
// tf.outerProduct of int32 tensors threw on wasm, where the cpu backend
// returns an int32 product ([[1, 2, 3], [4, 5, 6]] times [[1, 2], [3, 4],
// [5, 6]] gives [[22, 28], [49, 64]]). A detour through float32 would round:
// cpu gives 16777218 for [16777217, 1] times [1, 1], and 16777217 is not a
// float32. So int32 operands are multiplied here, on the wasm heap, with the
// cpu backend's loop: each run of 48 terms (its block size) of products summed
// as a double, each run's sum added into the int32 output, which wraps as
// cpu's Int32Array does ([2147483647, 2147483647] times [2, 2] gives -4 on
// both). Float32 operands go to upstream untouched; bool ones get upstream's
// refusal.
import * as tf from '@tensorflow/tfjs-core';
import { KernelFn, type HeapBackend } from './util.js';

/** The cpu backend's block size along the inner dimension (tfjs-backend-cpu's `blockSize`). */
const BLOCK = 48;

/** The cpu backend's BatchMatMul (tfjs-backend-cpu's batchMatMul kernel), for int32 a and b. */
function int32MatMul(backend: HeapBackend, a: tf.TensorInfo, b: tf.TensorInfo, attrs: tf.BatchMatMulAttrs) {
  const { transposeA, transposeB } = attrs;
  const ra = a.shape.length;
  const rb = b.shape.length;
  const innerA = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
  const innerB = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
  const outerA = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const outerB = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
  const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
  const outShape = tf.broadcast_util
    .assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2))
    .concat([outerA, outerB]);
  tf.util.assert(
    innerA === innerB,
    () =>
      `Error in matMul: inner shapes (${innerA}) and (${innerB}) of Tensors with shapes ${a.shape} and ` +
      `${b.shape} and transposeA=${transposeA} and transposeB=${transposeB} must match.`,
  );
  const batch = Math.max(batchA, batchB);
  const out = backend.makeOutput([batch, outerA, outerB], 'int32');
  // Views are taken after the allocation: growing the heap detaches older ones.
  const av = backend.typedArrayFromHeap(a);
  const bv = backend.typedArrayFromHeap(b);
  const ov = backend.typedArrayFromHeap(out);
  // a as [batchA, outerA, inner] (or [batchA, inner, outerA]), b as [batchB, inner, outerB] (or transposed).
  const aBatch = outerA * innerA;
  const [aOuter, aInner] = transposeA ? [1, outerA] : [innerA, 1];
  const bBatch = innerB * outerB;
  const [bInner, bOuter] = transposeB ? [1, innerB] : [outerB, 1];
  let o = 0;
  for (let bi = 0; bi < batch; bi++) {
    const aBase = (bi % batchA) * aBatch;
    const bBase = (bi % batchB) * bBatch;
    for (let i = 0; i < outerA; i++) {
      for (let j = 0; j < outerB; j++) {
        let acc = 0;
        for (let k0 = 0; k0 < innerA; k0 += BLOCK) {
          const kEnd = Math.min(k0 + BLOCK, innerA);
          let sum = 0;
          for (let k = k0; k < kEnd; k++)
            sum += av[aBase + i * aOuter + k * aInner] * bv[bBase + k * bInner + j * bOuter];
          // Int32Array's += : the sum's ToInt32.
          acc = (acc + sum) | 0;
        }
        ov[o++] = acc;
      }
    }
  }
  out.shape = outShape;
  return out;
}

/** Wraps upstream `BatchMatMul` so that int32 a and b are multiplied as on the cpu backend. */
export function makeInt32MatMul(upstream: KernelFn | null): KernelFn | null {
  if (upstream == null) return null;
  return (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    if (a.dtype !== 'int32' || b.dtype !== 'int32') return upstream(args);
    return int32MatMul(args.backend as HeapBackend, a, b, args.attrs as unknown as tf.BatchMatMulAttrs);
  };
}
