import * as tf from '@tensorflow/tfjs-core';
import { brandDecomposed } from './common.js';
import { DecomposedConv, type DecomposedConvArgs } from './decomposed-conv.js';

/**
 * Arguments of {@link decomposedConv2dTranspose}: those of `tf.layers.conv2dTranspose` plus the
 * decomposition (see {@link DecomposedConvArgs}). Padding `'same'` or `'valid'`, dilationRate 1,
 * channels last.
 */
export type DecomposedConv2DTransposeArgs = DecomposedConvArgs;

/**
 * A Conv2DTranspose layer (the upsampling convolution of decoders and segmentation nets) whose
 * kernel is `magnitude * direction / sqrt(||direction||^2 + epsilon^2)` (the norm over each group;
 * see {@link DecomposedConvArgs.epsilon}), one magnitude per 2-D kernel (`'kernel'`) or per output
 * filter (`'filter'`). Weights, in this order: `direction` `[kh, kw, filters, inChannels]` (the
 * plain Conv2DTranspose kernel's shape, its output filters before its input channels),
 * `magnitude` (`'kernel'`: `[filters, inChannels]`, the kernel's shape without its spatial axes,
 * so `magnitude[o, i]` scales the 2-D kernel from input channel `i` to filter `o`; `'filter'`:
 * `[filters]`, each the norm over axes `[0, 1, 3]`), `bias` `[filters]`. NHWC only. It computes
 * what `tf.layers.conv2dTranspose` computes with the effective kernel: the same output shape
 * (`input * stride`, plus `max(kernel - stride, 0)` for `'valid'`), bias and activation.
 *
 * The constructor throws for an options object that is missing or holds an unknown key (naming
 * the key it likely misspells), a `granularity` other than `'kernel'` or `'filter'`, an `epsilon`
 * outside [1.1e-19, 9.2e18], a `magnitudeInitializer` that is no initializer, `padding` other
 * than `'same'` or `'valid'`, a `dilationRate` other than 1 (tfjs's Conv2DTranspose would ignore
 * it), or `dataFormat: 'channelsFirst'`; building throws for an input whose channel dimension is
 * unknown, or a `magnitudeInitializer` that cannot fill the magnitude's shape (`'identity'` on a
 * `[filters]` magnitude).
 */
export class DecomposedConv2DTranspose extends DecomposedConv {
  /** Serialisation name (`tf.serialization.registerClass`). */
  static className = 'DecomposedConv2DTranspose';
  /** `[kh, kw]`. */
  declare readonly kernelSize: [number, number];
  /** `[sh, sw]`. */
  declare readonly strides: [number, number];
  /** Always `[1, 1]`. */
  declare readonly dilationRate: [number, number];

  /** A Conv2DTranspose layer written as magnitude x unit direction; `args` are Conv2DTranspose's plus `granularity`, `epsilon` and `magnitudeInitializer`. */
  constructor(args: DecomposedConv2DTransposeArgs) {
    super(args, 'conv2dTranspose', 'DecomposedConv2DTranspose');
  }

  /** The kernel the layer applies, `[kh, kw, filters, inChannels]`. A new tensor: the caller disposes it. */
  override effectiveKernel(): tf.Tensor4D {
    return super.effectiveKernel() as tf.Tensor4D;
  }
}
tf.serialization.registerClass(DecomposedConv2DTranspose);
brandDecomposed(DecomposedConv2DTranspose, 'conv2dTranspose');

/**
 * A {@link DecomposedConv2DTranspose} layer, the way `tf.layers.conv2dTranspose` makes a
 * Conv2DTranspose one. Throws as its constructor does (see {@link DecomposedConv2DTranspose}).
 *
 * ```ts
 * const layer = decomposedConv2dTranspose({ filters: 16, kernelSize: 3, strides: 2, padding: 'same', granularity: 'filter' });
 * ```
 */
export function decomposedConv2dTranspose(config: DecomposedConv2DTransposeArgs): DecomposedConv2DTranspose {
  return new DecomposedConv2DTranspose(config);
}
