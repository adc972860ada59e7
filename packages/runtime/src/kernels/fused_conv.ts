// The bias and activation of upstream wasm FusedConv2D / FusedDepthwiseConv2D.
// * Upstream refuses any bias but one of shape [outChannels], while tfjs-core's
//   tf.fused.conv2d / depthwiseConv2d and the cpu backend accept every bias
//   that broadcasts to the output: a scalar, [1], [OH, OW, C], ... Those run as
//   the cpu backend runs them: the convolution, then Add, then the activation.
// * PReLU weights that upstream would misread (see prelu.ts) are repeated to
//   the output's trailing shape first; weights that broadcast the output to a
//   larger shape ([3, OW, C] on a one-row output), for which the cpu backend
//   returns that shape and upstream returned the output's holding garbage,
//   and weights that are not float32 (int32), which upstream read as float32
//   bytes, run as the cpu backend runs them (the Prelu kernel of prelu.ts).
// * 'leakyrelu' without leakyreluAlpha: upstream passes alpha 0, while
//   tfjs-core computes the same op, whenever it does not fuse it (inside a
//   gradient tape), with tf.leakyRelu's default 0.2. The default is made 0.2
//   here too, so training and inference see the same function.
import * as tf from '@tensorflow/tfjs-core';
import { broadcastsUp, preluWeightsFor } from './prelu.js';
import { ConvGeometryAttrs, forwardConvInfo, KernelFn, release, runWasm } from './util.js';

type FusedAttrs = ConvGeometryAttrs & {
  activation?: string;
  leakyreluAlpha?: number;
};

/** tf.leakyRelu's default alpha. */
export const LEAKY_RELU_ALPHA = 0.2;

/** The activations upstream fuses, and the wasm kernel each is on its own. */
export const ACTIVATION_KERNELS: Record<string, string | null> = {
  linear: null,
  relu: 'Relu',
  relu6: 'Relu6',
  prelu: 'Prelu',
  leakyrelu: 'LeakyRelu',
  sigmoid: 'Sigmoid',
  elu: 'Elu',
};

/** `x` through `activation` with the standalone wasm kernels (x itself for 'linear'). */
export function activate(
  backend: tf.KernelBackend,
  x: tf.TensorInfo,
  activation: string,
  alpha: tf.TensorInfo | undefined,
  leakyreluAlpha: number,
): tf.TensorInfo {
  const kernel = ACTIVATION_KERNELS[activation];
  if (kernel == null) return x;
  if (kernel === 'Prelu') return runWasm('Prelu', { x, alpha: alpha! }, backend);
  if (kernel === 'LeakyRelu') return runWasm('LeakyRelu', { x }, backend, { alpha: leakyreluAlpha });
  return runWasm(kernel, { x }, backend);
}

/**
 * Wraps upstream `FusedConv2D` / `FusedDepthwiseConv2D` so every bias and
 * PReLU weights tfjs-core accepts give the cpu backend's result; calls with a
 * [outChannels] bias (what tfjs-layers passes) and suffix-shaped PReLU weights
 * go to upstream unchanged.
 */
export function fusedBiasActivation(upstream: KernelFn | null, depthwise: boolean): KernelFn | null {
  if (upstream == null) return null;
  return (args) => {
    const backend = args.backend as tf.KernelBackend;
    const inputs = args.inputs as {
      x: tf.TensorInfo;
      filter: tf.TensorInfo;
      bias?: tf.TensorInfo;
      preluActivationWeights?: tf.TensorInfo;
    };
    let attrs = args.attrs as unknown as FusedAttrs;
    const activation = attrs.activation ?? 'linear';
    // An activation upstream does not know: its own refusal.
    if (!(activation in ACTIVATION_KERNELS)) return upstream(args);
    if (activation === 'leakyrelu' && attrs.leakyreluAlpha == null) {
      attrs = { ...attrs, leakyreluAlpha: LEAKY_RELU_ALPHA };
    }
    const { x, filter, bias, preluActivationWeights } = inputs;
    const attrMap = attrs as unknown as tf.NamedAttrMap;
    const outChannels = depthwise ? filter.shape[2] * filter.shape[3] : filter.shape[3];
    const oddBias = bias != null && !(bias.shape.length === 1 && bias.shape[0] === outChannels);
    let alpha = preluActivationWeights;
    const outShape =
      !oddBias && activation === 'prelu' && alpha != null
        ? forwardConvInfo(x, filter, attrs, depthwise).outShape
        : null;
    // Weights that broadcast the output up, or that are not float32 (upstream reads their bytes
    // as float32: an int32 2 as 2.8e-45), go as on the cpu backend too.
    if (
      oddBias ||
      (outShape != null && (broadcastsUp(alpha!.shape, outShape) || alpha!.dtype !== 'float32'))
    ) {
      // As the cpu backend: the convolution, + bias (broadcast), the activation.
      const conv = upstream({
        ...args,
        inputs: { x, filter },
        attrs: { ...attrMap, activation: 'linear' },
      }) as tf.TensorInfo;
      const sum = bias != null ? runWasm('Add', { a: conv, b: bias }, backend) : conv;
      if (sum !== conv) release(backend, conv);
      const out = activate(backend, sum, activation, preluActivationWeights, attrs.leakyreluAlpha ?? 0);
      if (out !== sum) release(backend, sum);
      return out;
    }
    if (outShape != null) alpha = preluWeightsFor(backend, alpha!, outShape);
    if (alpha === preluActivationWeights && attrMap === args.attrs) return upstream(args);
    const out = upstream({
      ...args,
      inputs: { ...args.inputs, preluActivationWeights: alpha! },
      attrs: attrMap,
    });
    if (alpha !== preluActivationWeights) release(backend, alpha);
    return out;
  };
}
