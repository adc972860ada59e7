// Upstream wasm BatchMatMul handles transposeA/transposeB inside XNNPACK at
// about 1-3 GFLOP/s, against 15-35 GFLOP/s for the untransposed case; every
// backward pass of a dense layer is transposed. An explicit (memory-bound)
// Transpose followed by the untransposed kernel is an order of magnitude faster.
import * as tf from '@tensorflow/tfjs-core';
import { KernelFn, release, swapLastTwo } from './util.js';

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
