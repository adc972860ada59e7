import * as tf from '@tensorflow/tfjs-core';
import { brandDecomposed } from './common.js';
import { DecomposedConv, type DecomposedDepthwiseConvArgs } from './decomposed-conv.js';

/**
 * Arguments of {@link decomposedDepthwiseConv2d}: those of `tf.layers.depthwiseConv2d` plus the
 * decomposition (see {@link DecomposedDepthwiseConvArgs}). Padding `'same'` or `'valid'`,
 * dilationRate 1, channels last.
 */
export type DecomposedDepthwiseConv2DArgs = DecomposedDepthwiseConvArgs;

/**
 * A DepthwiseConv2D layer (the per-channel convolution of MobileNet-style nets) whose kernel is
 * `magnitude * direction / sqrt(||direction||^2 + epsilon^2)` (the norm over each group; see
 * {@link DecomposedConvArgs.epsilon}), one magnitude per 2-D kernel (`'kernel'`) or per input
 * channel (`'filter'`: its `depthMultiplier` kernels). Weights, in this order: `direction`
 * `[kh, kw, inChannels, depthMultiplier]` (the plain DepthwiseConv2D's kernel shape),
 * `magnitude` (`'kernel'`: `[inChannels, depthMultiplier]`, the kernel's shape without its
 * spatial axes, so `magnitude[c, j]` scales the 2-D kernel of output channel
 * `c * depthMultiplier + j`; `'filter'`: `[inChannels]`, each the norm over axes `[0, 1, 3]`),
 * `bias` `[inChannels * depthMultiplier]`. NHWC only. It computes what
 * `tf.layers.depthwiseConv2d` computes with the effective kernel: strides, padding, bias and
 * activation. `depthwiseInitializer` initialises the direction, `depthwiseRegularizer` and
 * `depthwiseConstraint` act on the effective kernel (as `kernel*` do on the other decomposed
 * convolutions). A SeparableConv2D is {@link DecomposedSeparableConv2D}'s.
 *
 * The constructor throws for an options object that is missing or holds an unknown key (naming
 * the key it likely misspells; `kernelInitializer`, `kernelConstraint` and `kernelRegularizer`,
 * which tfjs's DepthwiseConv2D ignores, included), a `granularity` other than `'kernel'` or
 * `'filter'`, an `epsilon` outside [1.1e-19, 9.2e18], a `magnitudeInitializer` that is no
 * initializer, `padding` other than `'same'` or `'valid'`, a `dilationRate` other than 1 (tfjs's
 * DepthwiseConv2D would ignore it), or `dataFormat: 'channelsFirst'`; building throws for an
 * input whose channel dimension is unknown, or a `magnitudeInitializer` that cannot fill the
 * magnitude's shape (`'identity'` on an `[inChannels]` magnitude).
 */
export class DecomposedDepthwiseConv2D extends DecomposedConv {
  /** Serialisation name (`tf.serialization.registerClass`). */
  static className = 'DecomposedDepthwiseConv2D';
  /** `[kh, kw]`. */
  declare readonly kernelSize: [number, number];
  /** `[sh, sw]`. */
  declare readonly strides: [number, number];
  /** Always `[1, 1]`. */
  declare readonly dilationRate: [number, number];
  /** Output channels per input channel. */
  declare readonly depthMultiplier: number;

  /** A DepthwiseConv2D layer written as magnitude x unit direction; `args` are DepthwiseConv2D's plus `granularity`, `epsilon` and `magnitudeInitializer`. */
  constructor(args: DecomposedDepthwiseConv2DArgs) {
    super(args, 'depthwiseConv2d', 'DecomposedDepthwiseConv2D');
  }

  /** The kernel the layer applies, `[kh, kw, inChannels, depthMultiplier]`. A new tensor: the caller disposes it. */
  override effectiveKernel(): tf.Tensor4D {
    return super.effectiveKernel() as tf.Tensor4D;
  }
}
tf.serialization.registerClass(DecomposedDepthwiseConv2D);
brandDecomposed(DecomposedDepthwiseConv2D, 'depthwiseConv2d');

/**
 * A {@link DecomposedDepthwiseConv2D} layer, the way `tf.layers.depthwiseConv2d` makes a
 * DepthwiseConv2D one. Throws as its constructor does (see {@link DecomposedDepthwiseConv2D}).
 *
 * ```ts
 * const layer = decomposedDepthwiseConv2d({ kernelSize: 3, depthMultiplier: 1, padding: 'same', activation: 'relu' });
 * ```
 */
export function decomposedDepthwiseConv2d(config: DecomposedDepthwiseConv2DArgs): DecomposedDepthwiseConv2D {
  return new DecomposedDepthwiseConv2D(config);
}
