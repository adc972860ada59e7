import * as tf from '@tensorflow/tfjs-core';
import { brandDecomposed } from './common.js';
import { DecomposedConv, type DecomposedConvArgs } from './decomposed-conv.js';

/** Arguments of {@link decomposedConv2d}: those of `tf.layers.conv2d` plus the decomposition (see {@link DecomposedConvArgs}). */
export type DecomposedConv2DArgs = DecomposedConvArgs;

/**
 * A Conv2D layer whose kernel is `magnitude * direction / sqrt(||direction||^2 + epsilon^2)`
 * (the norm over each group; see {@link DecomposedConvArgs.epsilon}), one magnitude per 2-D
 * kernel (`'kernel'`) or per output filter (`'filter'`). Weights, in this order: `direction`
 * `[kh, kw, cin, cout]`, `magnitude` (`[cin, cout]` or `[cout]`), `bias` `[cout]`. NHWC only.
 *
 * The constructor throws for an options object that is missing or holds an unknown key (naming
 * the key it likely misspells), a `granularity` other than `'kernel'` or `'filter'`, an `epsilon`
 * outside [1.1e-19, 9.2e18], a `magnitudeInitializer` that is no initializer, `padding` other
 * than `'same'` or `'valid'`, or `dataFormat: 'channelsFirst'`; building throws for an input
 * whose channel dimension is unknown, or a `magnitudeInitializer` that cannot fill the
 * magnitude's shape (`'identity'` on a `[cout]` magnitude).
 */
export class DecomposedConv2D extends DecomposedConv {
  /** Serialisation name (`tf.serialization.registerClass`). */
  static className = 'DecomposedConv2D';
  /** `[kh, kw]`. */
  declare readonly kernelSize: [number, number];
  /** `[sh, sw]`. */
  declare readonly strides: [number, number];
  /** `[dh, dw]`. */
  declare readonly dilationRate: [number, number];

  /** A Conv2D layer written as magnitude x unit direction; `args` are Conv2D's plus `granularity`, `epsilon` and `magnitudeInitializer`. */
  constructor(args: DecomposedConv2DArgs) {
    super(args, 'conv2d', 'DecomposedConv2D');
  }

  /** The kernel the layer applies, `[kh, kw, cin, cout]`. A new tensor: the caller disposes it. */
  override effectiveKernel(): tf.Tensor4D {
    return super.effectiveKernel() as tf.Tensor4D;
  }
}
tf.serialization.registerClass(DecomposedConv2D);
brandDecomposed(DecomposedConv2D, 'conv2d');

/**
 * A {@link DecomposedConv2D} layer, the way `tf.layers.conv2d` makes a Conv2D one. Throws as
 * its constructor does (see {@link DecomposedConv2D}).
 *
 * ```ts
 * const layer = decomposedConv2d({ filters: 20, kernelSize: 5, activation: 'relu', granularity: 'kernel' });
 * ```
 */
export function decomposedConv2d(config: DecomposedConv2DArgs): DecomposedConv2D {
  return new DecomposedConv2D(config);
}
