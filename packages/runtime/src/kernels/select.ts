// tf.where(condition, t, e) broadcasts the condition to t's shape with
// tf.broadcastTo, which (tfjs-core 4.22) returns it unchanged when that shape
// has a 0 dimension. Upstream wasm Select then writes one value per condition
// element into the empty output: 4096 floats for a [4096, 1] condition and a
// [4096, 0] t ("memory access out of bounds", and later wasm calls trapped).
// tfjs-core's prelu gradient makes that call for x [N, 1] and weights [0].
// The cpu backend writes past its typed array, which ignores it, and returns
// the empty output. So does this, without calling upstream.
//
// Upstream Select also copies 4-byte floats whatever the dtype: bool t and e,
// 1 byte an element, were read 4 elements at a time and past their end, and
// 4 bytes an element were written into the bool output, past its end (wrong
// values, then "memory access out of bounds" in later wasm calls). Bool t and
// e are selected here, on the wasm heap, with the cpu backend's loop.
import * as tf from '@tensorflow/tfjs-core';
import { emptyOutput, KernelFn, type HeapBackend } from './util.js';

/** The cpu backend's Select (tfjs-backend-cpu's select kernel), for bool t and e. */
function selectBool(
  backend: HeapBackend,
  condition: tf.TensorInfo,
  t: tf.TensorInfo,
  e: tf.TensorInfo,
): tf.TensorInfo {
  const out = backend.makeOutput(t.shape, 'bool');
  // Views are taken after the allocation: growing the heap detaches older ones.
  const c = backend.typedArrayFromHeap(condition);
  const tv = backend.typedArrayFromHeap(t);
  const ev = backend.typedArrayFromHeap(e);
  const ov = backend.typedArrayFromHeap(out);
  const offset =
    condition.shape.length === 0 || condition.shape.length > 1 || t.shape.length === 1
      ? 1
      : tf.util.sizeFromShape(t.shape.slice(1));
  let index = 0;
  for (let i = 0; i < c.length; i++) {
    for (let j = 0; j < offset; j++) ov[index++] = c[i] === 1 ? tv[i] : ev[i];
  }
  return out;
}

/**
 * Wraps upstream `Select`: an empty output is returned as it is, bool t and e are selected as on
 * the cpu backend; every other call goes to upstream untouched.
 */
export function makeSelect(upstream: KernelFn | null): KernelFn | null {
  if (upstream == null) return null;
  return (args) => {
    const { condition, t, e } = args.inputs as {
      condition: tf.TensorInfo;
      t: tf.TensorInfo;
      e: tf.TensorInfo;
    };
    const backend = args.backend as HeapBackend;
    const empty = emptyOutput(backend, t.shape, t.dtype);
    if (empty != null) return empty;
    if (t.dtype === 'bool' && e.dtype === 'bool') return selectBool(backend, condition, t, e);
    return upstream(args);
  };
}
