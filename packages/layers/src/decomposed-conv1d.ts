import * as tf from '@tensorflow/tfjs-core';
import { brandDecomposed } from './common.js';
import { DecomposedConv, type DecomposedConvArgs } from './decomposed-conv.js';

/**
 * Arguments of {@link decomposedConv1d}: those of `tf.layers.conv1d` plus the decomposition (see
 * {@link DecomposedConvArgs}). Padding `'same'` or `'valid'`: tfjs 4.22 cannot apply a `'causal'` one.
 */
export type DecomposedConv1DArgs = DecomposedConvArgs;

/**
 * A Conv1D layer whose kernel is `magnitude * direction / sqrt(||direction||^2 + epsilon^2)`
 * (the norm over each group; see {@link DecomposedConvArgs.epsilon}), one magnitude per 1-D
 * kernel (`'kernel'`) or per output filter (`'filter'`). Weights, in this order: `direction`
 * `[k, cin, cout]`, `magnitude` (`[cin, cout]` or `[cout]`), `bias` `[cout]`. Inputs
 * `[batch, steps, channels]`.
 *
 * The constructor throws for an options object that is missing or holds an unknown key (naming
 * the key it likely misspells), a `granularity` other than `'kernel'` or `'filter'`, an `epsilon`
 * outside [1.1e-19, 9.2e18], a `magnitudeInitializer` that is no initializer, `padding` other
 * than `'same'` or `'valid'`, or `dataFormat: 'channelsFirst'`; building throws for an input
 * whose channel dimension is unknown, or a `magnitudeInitializer` that cannot fill the
 * magnitude's shape (`'identity'` on a `[cout]` magnitude).
 */
export class DecomposedConv1D extends DecomposedConv {
  /** Serialisation name (`tf.serialization.registerClass`). */
  static className = 'DecomposedConv1D';
  /** `[k]`. */
  declare readonly kernelSize: [number];
  /** `[s]`. */
  declare readonly strides: [number];
  /** `[d]`. */
  declare readonly dilationRate: [number];

  /** A Conv1D layer written as magnitude x unit direction; `args` are Conv1D's plus `granularity`, `epsilon` and `magnitudeInitializer`. */
  constructor(args: DecomposedConv1DArgs) {
    super(args, 'conv1d', 'DecomposedConv1D');
  }

  /** The kernel the layer applies, `[k, cin, cout]`. A new tensor: the caller disposes it. */
  override effectiveKernel(): tf.Tensor3D {
    return super.effectiveKernel() as tf.Tensor3D;
  }
}
tf.serialization.registerClass(DecomposedConv1D);
brandDecomposed(DecomposedConv1D, 'conv1d');

/**
 * A {@link DecomposedConv1D} layer, the way `tf.layers.conv1d` makes a Conv1D one. Throws as
 * its constructor does (see {@link DecomposedConv1D}).
 *
 * ```ts
 * const layer = decomposedConv1d({ filters: 16, kernelSize: 5, activation: 'relu', granularity: 'kernel' });
 * ```
 */
export function decomposedConv1d(config: DecomposedConv1DArgs): DecomposedConv1D {
  return new DecomposedConv1D(config);
}
