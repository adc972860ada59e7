// Upstream wasm PReLU (the standalone Prelu kernel and the activation fused
// into FusedConv2D / FusedDepthwiseConv2D) reads the weights as
// alpha[i % alpha.size] for output element i. That is the broadcast result only
// when alpha's shape, without leading 1s, is a suffix of x's shape (or alpha
// has one element); a [OH, 1, C] or [1, OW, 1] alpha, which tfjs-core allows
// for the fused convolutions and tf.prelu, gives wrong outputs (off by 0.6
// against the cpu backend on a 6x7 image). Such weights are repeated to x's
// trailing shape first.
import * as tf from '@tensorflow/tfjs-core';
import { broadcastTo, KernelFn, release } from './util.js';

/** Whether upstream's alpha[i % alpha.size] is alpha broadcast to `xShape`. */
export function preluBroadcastsAsSuffix(alphaShape: number[], xShape: number[]): boolean {
  let lead = 0;
  while (lead < alphaShape.length && alphaShape[lead] === 1) lead++;
  const core = alphaShape.slice(lead);
  if (core.length > xShape.length) return false;
  const offset = xShape.length - core.length;
  return core.every((d, i) => d === xShape[offset + i]);
}

/**
 * PReLU weights repeated to the trailing axes of `xShape` they cover, when
 * upstream would misread them; `alpha` itself otherwise, and when alpha would
 * broadcast x to a larger shape (left to upstream).
 */
export function preluWeightsFor(
  backend: tf.KernelBackend,
  alpha: tf.TensorInfo,
  xShape: number[],
): tf.TensorInfo {
  if (preluBroadcastsAsSuffix(alpha.shape, xShape) || alpha.shape.length > xShape.length) return alpha;
  const target = xShape.slice(xShape.length - alpha.shape.length);
  if (!alpha.shape.every((d, i) => d === 1 || d === target[i])) return alpha;
  return broadcastTo(backend, alpha, target);
}

/** Wraps upstream Prelu: weights that do not broadcast as a suffix of x's shape are repeated first. */
export function makePrelu(upstream: KernelFn | null): KernelFn | null {
  if (upstream == null) return null;
  return (args) => {
    const { x, alpha } = args.inputs as { x: tf.TensorInfo; alpha: tf.TensorInfo };
    const weights = preluWeightsFor(args.backend as tf.KernelBackend, alpha, x.shape);
    if (weights === alpha) return upstream(args);
    const out = upstream({ ...args, inputs: { x, alpha: weights } });
    release(args.backend as tf.KernelBackend, weights);
    return out;
  };
}
