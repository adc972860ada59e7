// tf.where(condition, t, e) broadcasts the condition to t's shape with
// tf.broadcastTo, which (tfjs-core 4.22) returns it unchanged when that shape
// has a 0 dimension. Upstream wasm Select then writes one value per condition
// element into the empty output: 4096 floats for a [4096, 1] condition and a
// [4096, 0] t ("memory access out of bounds", and later wasm calls trapped).
// tfjs-core's prelu gradient makes that call for x [N, 1] and weights [0].
// The cpu backend writes past its typed array, which ignores it, and returns
// the empty output. So does this, without calling upstream.
import * as tf from '@tensorflow/tfjs-core';
import { emptyOutput, KernelFn } from './util.js';

/** Wraps upstream `Select`: an empty output is returned as it is; every other call goes to upstream untouched. */
export function makeSelect(upstream: KernelFn | null): KernelFn | null {
  if (upstream == null) return null;
  return (args) => {
    const t = args.inputs.t as tf.TensorInfo;
    return emptyOutput(args.backend as tf.KernelBackend, t.shape, t.dtype) ?? upstream(args);
  };
}
