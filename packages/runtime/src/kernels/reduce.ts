// Sum and Mean over leading axes (e.g. [0, 1, 2] of NHWC: BatchNormalization
// statistics and gradients, bias gradients). Upstream wasm first transposes the
// whole tensor so the reduced axes are innermost; here one pass over the rows
// accumulates each channel in float64.
import * as tf from '@tensorflow/tfjs-core';
import { KernelFn, type HeapBackend } from './util.js';

/** The dtypes whose empty reductions are answered here (no string or complex64 on wasm). */
const NUMERIC: ReadonlySet<tf.DataType> = new Set<tf.DataType>(['float32', 'int32', 'bool']);

/** Number of leading axes reduced when `axes` is exactly 0..k-1 with 0 < k < rank, else 0. */
function leadingAxes(axis: number | number[], shape: number[]): number {
  const axes = [...new Set(tf.util.parseAxisParam(axis, shape))].sort((a, b) => a - b);
  if (axes.length === 0 || axes.length >= shape.length) return 0;
  return axes.every((a, i) => a === i) ? axes.length : 0;
}

/** Sum (mean = false) or Mean over leading axes; other cases go to upstream. */
export function makeLeadingReduce(upstream: KernelFn | null, mean: boolean): KernelFn {
  return (args) => {
    const backend = args.backend as HeapBackend;
    const x = args.inputs.x as tf.TensorInfo;
    const { axis, keepDims } = args.attrs as unknown as tf.SumAttrs;
    const k = x.dtype === 'float32' ? leadingAxes(axis, x.shape) : 0;
    if (tf.util.sizeFromShape(x.shape) === 0 && NUMERIC.has(x.dtype)) {
      // Over an empty axis upstream returned uninitialised memory (and a Mean could trap on a
      // division by zero), for every dtype: the cpu backend's answer, 0, for a sum and a mean
      // alike, in cpu's dtype (a Sum of int32 or bool is int32, a Mean is float32).
      const axes = tf.util.parseAxisParam(axis, x.shape);
      const [reduced] = tf.backend_util.computeOutAndReduceShapes(x.shape, axes);
      const outShape = keepDims ? tf.backend_util.expandShapeToKeepDim(reduced, axes) : reduced;
      const dtype = mean ? 'float32' : tf.backend_util.upcastType(x.dtype, 'int32');
      const out = backend.makeOutput(outShape, dtype);
      backend.typedArrayFromHeap(out).fill(0);
      return out;
    }
    if (k === 0) {
      if (upstream == null) throw new Error('normprune: no upstream wasm reduction');
      return upstream(args);
    }
    const rows = tf.util.sizeFromShape(x.shape.slice(0, k));
    const inner = x.shape.slice(k);
    const C = tf.util.sizeFromShape(inner);
    const outShape = keepDims ? [...x.shape.slice(0, k).map(() => 1), ...inner] : inner;
    const out = backend.makeOutput(outShape, 'float32');
    const src = backend.typedArrayFromHeap(x) as Float32Array;
    const dst = backend.typedArrayFromHeap(out) as Float32Array;
    const acc = new Float64Array(C);
    for (let r = 0, p = 0; r < rows; r++) {
      for (let c = 0; c < C; c++, p++) acc[c] += src[p];
    }
    const scale = mean ? 1 / rows : 1;
    for (let c = 0; c < C; c++) dst[c] = acc[c] * scale;
    return out;
  };
}
