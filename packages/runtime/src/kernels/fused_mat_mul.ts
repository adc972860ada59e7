// Upstream wasm _FusedMatMul (tfjs-backend-wasm 4.22, with or without
// normprune) gives wrong results for some calls the cpu backend computes:
// * a bias with a batch over 1 (a's or b's leading dimension): its loop for
//   batches reads the bias as bias[min(i * N + j, size - 1)], as if it had the
//   output matrix's shape; an [N] bias is off by up to 0.96 relative;
// * a bias that is not [N]: rank 0, 2 and 3 are refused ("only supports
//   rank-1 bias"), and a [1] bias goes to XNNPACK, which reads N entries from
//   a buffer of one;
// * 'prelu' weights that do not broadcast as a suffix of the output's shape,
//   such as [M, 1]: read as alpha[i % alpha.size] (see prelu.ts); and int32
//   weights, whose bytes it read as float32 (2 as 2.8e-45);
// * an inner dimension of 0 with a bias or an activation: the output is
//   whatever its buffer held;
// * empty 'prelu' weights (a [0, N] output): a "divide by zero" trap, as it
//   reads alpha[i % alpha.size].
// tfjs-core keeps a 'linear' fused matMul fused under a gradient tape, so the
// first two reach training too. Those calls run here as the cpu backend runs
// every fused matMul: BatchMatMul, then Add of the bias (broadcast), then the
// activation, each a wasm kernel, the intermediates freed. Every other call
// (a dense layer's [N] bias on a batch of 1, which is what tfjs-core makes of
// a 2-D input) stays on upstream's fused kernel.
// The fallback's PReLU is the Prelu kernel of prelu.ts, which gives cpu's
// output shape: with weights that broadcast the product to a larger shape,
// tfjs-core's reshape to the product's shape then refuses the call with the
// cpu backend's error ("Size(6) must match the product of shape 2,1"), where
// the fallback returned garbage.
import * as tf from '@tensorflow/tfjs-core';
import { ACTIVATION_KERNELS, activate, LEAKY_RELU_ALPHA } from './fused_conv.js';
import { preluBroadcastsAsSuffix } from './prelu.js';
import { KernelFn, release, runWasm } from './util.js';

type Inputs = {
  a: tf.TensorInfo;
  b: tf.TensorInfo;
  bias?: tf.TensorInfo;
  preluActivationWeights?: tf.TensorInfo;
};

/** Whether every leading (batch) dimension of `shape` is 1. */
function batchOfOne(shape: number[]): boolean {
  for (let i = 0; i < shape.length - 2; i++) if (shape[i] !== 1) return false;
  return true;
}

/** Whether upstream's fused kernel computes this call as the cpu backend does. */
function upstreamComputes(inputs: Inputs, attrs: tf._FusedMatMulAttrs, activation: string): boolean {
  const { a, b, bias, preluActivationWeights: alpha } = inputs;
  const ra = a.shape.length;
  const rb = b.shape.length;
  if ((attrs.transposeA ? a.shape[ra - 2] : a.shape[ra - 1]) === 0) return false;
  const n = attrs.transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  if (bias != null) {
    if (bias.shape.length !== 1 || bias.shape[0] !== n) return false;
    if (!batchOfOne(a.shape) || !batchOfOne(b.shape)) return false;
  }
  if (activation === 'prelu' && alpha != null) {
    // Weights not float32 (read as float32 bytes) or empty (upstream divides by their size).
    if (alpha.dtype !== 'float32' || alpha.shape.includes(0)) return false;
    const m = attrs.transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
    const batch = tf.backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
    if (!preluBroadcastsAsSuffix(alpha.shape, [...batch, m, n])) return false;
  }
  return true;
}

/**
 * Wraps `_FusedMatMul`: the calls upstream computes wrongly (see above) run
 * as BatchMatMul, Add and the activation; the rest go to `upstream`.
 */
export function fusedMatMulAsCpu(upstream: KernelFn | null): KernelFn | null {
  if (upstream == null) return null;
  return (args) => {
    const inputs = args.inputs as Inputs;
    const attrs = args.attrs as unknown as tf._FusedMatMulAttrs;
    const activation = attrs.activation ?? 'linear';
    // An activation upstream does not know: its own refusal.
    if (!(activation in ACTIVATION_KERNELS)) return upstream(args);
    if (upstreamComputes(inputs, attrs, activation)) return upstream(args);
    const backend = args.backend as tf.KernelBackend;
    const { a, b, bias, preluActivationWeights } = inputs;
    const product = runWasm('BatchMatMul', { a, b }, backend, {
      transposeA: attrs.transposeA,
      transposeB: attrs.transposeB,
    });
    let sum = product;
    if (bias != null) {
      sum = runWasm('Add', { a: product, b: bias }, backend);
      release(backend, product);
    }
    const alpha = attrs.leakyreluAlpha ?? LEAKY_RELU_ALPHA;
    const out = activate(backend, sum, activation, preluActivationWeights, alpha);
    if (out !== sum) release(backend, sum);
    return out;
  };
}
