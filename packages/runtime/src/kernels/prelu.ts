// Upstream wasm PReLU (the standalone Prelu kernel and the activation fused
// into FusedConv2D / FusedDepthwiseConv2D) reads the weights as
// alpha[i % alpha.size] for output element i. That is the broadcast result only
// when alpha's shape, without leading 1s, is a suffix of x's shape (or alpha
// has one element); a [OH, 1, C] or [1, OW, 1] alpha, which tfjs-core allows
// for the fused convolutions and tf.prelu, gives wrong outputs (off by 0.6
// against the cpu backend on a 6x7 image). Such weights are repeated to x's
// trailing shape first. The standalone kernel also gives the cpu backend's
// output shape, x and alpha broadcast together, where upstream's is x's: an
// empty one is returned as it is (upstream, handed weights repeated to an
// empty x, divided by their size 0: a "divide by zero" trap), and weights that
// broadcast x to a larger shape repeat x to it (upstream returned x's shape
// holding garbage). Weights of another dtype than float32 (int32, which
// tf.prelu accepts) are cast to float32 first: upstream read their bytes as
// float32 (an int32 2 as 2.8e-45), where the cpu backend computes with their
// values; the output is float32 on both.
import * as tf from '@tensorflow/tfjs-core';
import { broadcastTo, emptyOutput, KernelFn, release, reshape, runWasm, type HeapBackend } from './util.js';

/** Whether upstream's alpha[i % alpha.size] is alpha broadcast to `xShape`. */
export function preluBroadcastsAsSuffix(alphaShape: number[], xShape: number[]): boolean {
  let lead = 0;
  while (lead < alphaShape.length && alphaShape[lead] === 1) lead++;
  const core = alphaShape.slice(lead);
  if (core.length > xShape.length) return false;
  const offset = xShape.length - core.length;
  return core.every((d, i) => d === xShape[offset + i]);
}

/** Whether weights of `alphaShape` broadcast an output of `outShape` to a larger shape (or not at all). */
export function broadcastsUp(alphaShape: number[], outShape: number[]): boolean {
  const lead = outShape.length - alphaShape.length;
  return lead < 0 || alphaShape.some((d, i) => d !== 1 && d !== outShape[lead + i]);
}

/**
 * PReLU weights repeated to the trailing axes of `xShape` they cover, when
 * upstream would misread them; `alpha` itself otherwise, and when alpha would
 * broadcast x to a larger shape (which no caller passes here).
 */
export function preluWeightsFor(
  backend: tf.KernelBackend,
  alpha: tf.TensorInfo,
  xShape: number[],
): tf.TensorInfo {
  if (preluBroadcastsAsSuffix(alpha.shape, xShape) || broadcastsUp(alpha.shape, xShape)) return alpha;
  return broadcastTo(backend, alpha, xShape.slice(xShape.length - alpha.shape.length));
}

/**
 * Wraps upstream Prelu, which computes an output of x's shape with
 * alpha[i % alpha.size]. Float32 weights it reads right on a non-empty x
 * that they do not broadcast to a larger shape (what tfjs-layers' PReLU
 * passes) go to it unchanged. Otherwise the output has the cpu backend's shape, x and alpha
 * broadcast together (its error when they do not broadcast):
 * * an empty output is returned as it is (upstream divided by the weights'
 *   size, 0 for [2, 1, 8] weights repeated to an empty [2, 0, 8] x: a
 *   "divide by zero" trap);
 * * x is repeated to that shape when the weights broadcast it up ([3, 1, 1]
 *   weights and a [2, 1] x make [3, 2, 1]; upstream returned x's shape with
 *   whatever its buffer held);
 * * the weights are repeated to its trailing axes (see above);
 * * and weights that are not float32 are cast to it (upstream read their
 *   bytes as float32).
 */
export function makePrelu(upstream: KernelFn | null): KernelFn | null {
  if (upstream == null) return null;
  return (args) => {
    const { x, alpha } = args.inputs as { x: tf.TensorInfo; alpha: tf.TensorInfo };
    if (
      alpha.dtype === 'float32' &&
      alpha.shape.length <= x.shape.length &&
      preluBroadcastsAsSuffix(alpha.shape, x.shape) &&
      !x.shape.includes(0)
    ) {
      return upstream(args);
    }
    const backend = args.backend as HeapBackend;
    const shape = tf.backend_util.assertAndGetBroadcastShape(x.shape, alpha.shape);
    const empty = emptyOutput(backend, shape);
    if (empty != null) return empty;
    let xs = x;
    if (!tf.util.arraysEqual(shape, x.shape)) {
      // Leading 1s only: the same buffer.
      xs =
        tf.util.sizeFromShape(x.shape) === tf.util.sizeFromShape(shape)
          ? reshape(backend, x, shape)
          : broadcastTo(backend, x, shape);
    }
    // Upstream reads the weights' bytes as float32 whatever their dtype.
    const a =
      alpha.dtype === 'float32' ? alpha : runWasm('Cast', { x: alpha }, backend, { dtype: 'float32' });
    const weights = preluWeightsFor(backend, a, shape);
    const out = upstream({ ...args, inputs: { x: xs, alpha: weights } });
    if (xs !== x) release(backend, xs);
    if (weights !== a) release(backend, weights);
    if (a !== alpha) release(backend, a);
    return out;
  };
}
