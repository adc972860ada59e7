// What every decomposed layer does with its magnitude / direction pairs (one, or a separable
// convolution's two) and its bias: the order of its weights, setting them, freeing them, and the
// check for an all-zero kernel at its first call.
import type * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  type DecomposedPart,
  decomposedWeights,
  releaseConstraintOutputs,
  setDecomposedWeights,
  warnIfZeroKernel,
} from './common.js';

/**
 * The base class of DecomposedDense, the decomposed convolutions and DecomposedSeparableConv2D:
 * their weights are each part's `[direction, magnitude]`, then the bias.
 */
export abstract class DecomposedBase extends tfl.layers.Layer {
  /** The `bias` weight; null until built or when `useBias` is false. */
  abstract bias: tfl.LayerVariable | null;
  /** Added as `epsilon^2` under the square root of each group's norm. */
  abstract readonly epsilon: number;
  // Whether the first call has looked for an all-zero kernel (see warnIfZeroKernel).
  private zeroChecked = false;

  /** Its magnitude / direction pairs, in the order of its weights; none until it is built. */
  abstract parts(): DecomposedPart[];

  /**
   * `[direction, magnitude, bias]` (each part's pair, then the bias), the order of `getWeights()`
   * and `setWeights()`, also when some are frozen (`layer.magnitude.trainable = false`), where
   * tfjs would list the trainable ones first.
   */
  override get weights(): tfl.LayerVariable[] {
    return decomposedWeights(this);
  }

  /**
   * Sets the weights: this layer's `[direction, magnitude, bias]`, or the plain layer's
   * `[kernel, bias]` (`getWeights()` of the layer it replaces), whose kernel becomes the
   * direction and its exact magnitude the magnitude (a separable convolution's: `[depthwise_kernel,
   * pointwise_kernel, bias]`, or its own five weights). Any other list is an error naming both.
   */
  override setWeights(weights: tf.Tensor[]): void {
    setDecomposedWeights(this, weights, (w) => super.setWeights(w));
  }

  /** Also frees the outputs the weights' constraints still hold (tfjs's write keeps none). */
  protected override disposeWeights(): number {
    releaseConstraintOutputs(this.weights);
    return super.disposeWeights();
  }

  /** At the first call only: warns about an all-zero kernel (see warnIfZeroKernel). */
  protected checkZeroKernelOnce(): void {
    if (this.zeroChecked) return;
    this.zeroChecked = true;
    warnIfZeroKernel(this);
  }
}
