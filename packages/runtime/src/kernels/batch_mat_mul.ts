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
    const zero = emptyProduct(args);
    if (zero) return zero;
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
 * A plain BatchMatMul whose inner dimension is 0 (the weight gradient of an empty batch): an
 * output of zeros, as on the cpu backend, where upstream wasm returned uninitialised memory.
 * Undefined for every other call (and for _FusedMatMul, whose bias and activation apply to it).
 */
function emptyProduct(args: Parameters<KernelFn>[0]): tf.TensorInfo | undefined {
  const a = args.inputs.a as tf.TensorInfo;
  const b = args.inputs.b as tf.TensorInfo;
  const activation = (args.attrs as { activation?: string }).activation;
  if (args.inputs.bias !== undefined || (activation !== undefined && activation !== 'linear'))
    return undefined;
  const { transposeA, transposeB } = args.attrs as unknown as tf.BatchMatMulAttrs;
  const [ra, rb] = [a.shape.length, b.shape.length];
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
