// Upstream wasm BatchMatMul handles transposeA/transposeB inside XNNPACK at
// about 1-3 GFLOP/s, against 15-35 GFLOP/s for the untransposed case; every
// backward pass of a dense layer is transposed. An explicit (memory-bound)
// Transpose followed by the untransposed kernel is an order of magnitude faster.
import * as tf from '@tensorflow/tfjs-core';
import { KernelFn, release, swapLastTwo, type HeapBackend } from './util.js';

/** Wraps a matmul-like upstream kernel (BatchMatMul or _FusedMatMul) so it never sees a transpose flag. */
export function transposeFirst(upstream: KernelFn): KernelFn {
  return (args) => {
    const { inputs, backend, attrs } = args;
    const { transposeA, transposeB } = attrs as unknown as tf.BatchMatMulAttrs;
    if (!transposeA && !transposeB) return upstream(args);
    const b = backend as tf.KernelBackend;
    const a0 = inputs.a as tf.TensorInfo;
    const b0 = inputs.b as tf.TensorInfo;
    const a1 = transposeA ? swapLastTwo(b, a0) : null;
    const b1 = transposeB ? swapLastTwo(b, b0) : null;
    try {
      return upstream({
        inputs: { ...inputs, a: a1 ?? a0, b: b1 ?? b0 },
        backend,
        attrs: { ...(attrs as object), transposeA: false, transposeB: false } as unknown as tf.NamedAttrMap,
      });
    } finally {
      release(b, a1, b1);
    }
  };
}

/**
 * Wraps upstream `BatchMatMul`: an inner dimension of 0 (the weight gradient of an empty batch)
 * gives an output of zeros, as on the cpu backend, where upstream wasm returned uninitialised
 * memory; every other call goes to `upstream`. (`_FusedMatMul` sends such calls here, see
 * fused_mat_mul.ts.)
 */
export function zeroInner(upstream: KernelFn): KernelFn {
  return (args) => emptyProduct(args) ?? upstream(args);
}

/** The zeros of a BatchMatMul whose inner dimension is 0; undefined for every other call. */
function emptyProduct(args: Parameters<KernelFn>[0]): tf.TensorInfo | undefined {
  const a = args.inputs.a as tf.TensorInfo;
  const b = args.inputs.b as tf.TensorInfo;
  const { transposeA, transposeB } = args.attrs as unknown as tf.BatchMatMulAttrs;
  const ra = a.shape.length;
  const rb = b.shape.length;
  const inner = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
  if (inner !== 0 || a.dtype !== 'float32') return undefined;
  const batch = tf.backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  const backend = args.backend as HeapBackend;
  const out = backend.makeOutput([...batch, m, n], 'float32');
  backend.typedArrayFromHeap(out).fill(0);
  return out;
}
