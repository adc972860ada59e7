// Upstream wasm Reverse copies 4-byte floats whatever the dtype: a bool x
// (1 byte an element) was read 4 elements at a time, past its end, and 4
// bytes an element were written into the bool output, past its end (wrong
// values, then "memory access out of bounds" in later wasm calls). A bool x
// is reversed here as int32, then cast back to bool; every other call goes to
// upstream untouched.
import * as tf from '@tensorflow/tfjs-core';
import { boolViaInt32, KernelFn } from './util.js';

/** Wraps upstream `Reverse` so that a bool x is reversed as int32. */
export function makeReverse(upstream: KernelFn | null): KernelFn | null {
  if (upstream == null) return null;
  return (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    if (x.dtype !== 'bool') return upstream(args);
    return boolViaInt32(
      args.backend as tf.KernelBackend,
      x,
      (xi) => upstream({ ...args, inputs: { x: xi } }) as tf.TensorInfo,
    );
  };
}
