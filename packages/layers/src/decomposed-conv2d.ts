import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  type ActivationFn,
  brandDecomposed,
  checkOneOf,
  computeEffectiveKernel,
  type Conv2DGranularity,
  type ConvLayerArgs,
  checkEpsilon,
  DEFAULT_EPSILON,
  exactlyOne,
  exactlyOneShape,
  fusedActivation,
  warnIfZeroKernel,
  createDecomposedWeights,
  decomposedWeights,
  setDecomposedWeights,
  setInitialWeights,
  type Initializer,
  type InitializerSpec,
  parseConvArgs,
  resolveInitializer,
  decomposedConfig,
} from './common.js';
import { checkLayerArgs } from './options.js';

/**
 * Arguments of {@link decomposedConv2d}: what `tf.layers.conv2d` accepts (channelsLast only),
 * plus the decomposition. `kernelInitializer` initialises the direction (the effective kernel
 * starts equal to it); `kernelRegularizer` penalises and `kernelConstraint` constrains the
 * effective kernel (the kernel the layer applies), as on the plain layer: the constraint on
 * every write of the weights (`setWeights`, loading), where tfjs applies it to a plain kernel.
 *
 * Any other key is an error naming it and the key it likely misspells
 * (`granularty`: did you mean `granularity`?), where `tf.layers.conv2d` would ignore it.
 */
export interface DecomposedConv2DArgs extends ConvLayerArgs {
  /** `'kernel'` (default, the thesis): one magnitude per 2-D kernel, shape `[cin, cout]`. `'filter'`: one per output filter, shape `[cout]`. */
  granularity?: Conv2DGranularity;
  /** Added as `epsilon^2` under the square root of each group's norm, so a zero direction yields a zero kernel, not NaN. Default 1e-6. */
  epsilon?: number;
  /** Initial magnitudes. Default: `sqrt(norm^2 + epsilon^2)` of each group of the initial direction, so a fresh layer applies its initial direction exactly and is distributed like `tf.layers.conv2d`. */
  magnitudeInitializer?: InitializerSpec;
}

/** Output length of one spatial axis, as Keras computes it. */
export function convOutputLength(
  inputLength: number | null,
  kernelSize: number,
  padding: 'same' | 'valid',
  stride: number,
  dilation: number,
): number | null {
  if (inputLength == null) return null;
  const dilated = kernelSize + (kernelSize - 1) * (dilation - 1);
  const length = padding === 'same' ? inputLength : inputLength - dilated + 1;
  return Math.floor((length + stride - 1) / stride);
}

/**
 * A Conv2D layer whose kernel is `magnitude * direction / sqrt(||direction||^2 + epsilon^2)`
 * (the norm over each group; see {@link DecomposedConv2DArgs.epsilon}), one magnitude per 2-D
 * kernel (`'kernel'`) or per output filter (`'filter'`). Weights, in this order: `direction`
 * `[kh, kw, cin, cout]`, `magnitude` (`[cin, cout]` or `[cout]`), `bias` `[cout]`. NHWC only.
 */
export class DecomposedConv2D extends tfl.layers.Layer {
  /** Serialisation name (`tf.serialization.registerClass`). */
  static className = 'DecomposedConv2D';

  /** Number of output filters. */
  readonly filters: number;
  /** `[kh, kw]`. */
  readonly kernelSize: [number, number];
  /** `[sh, sw]`. */
  readonly strides: [number, number];
  /** Padding mode. */
  readonly padding: 'same' | 'valid';
  /** `[dh, dw]`. */
  readonly dilationRate: [number, number];
  /** Which weights share one magnitude. */
  readonly granularity: Conv2DGranularity;
  /** See {@link DecomposedConv2DArgs.epsilon}. */
  readonly epsilon: number;
  /** Whether the layer adds a bias. */
  readonly useBias: boolean;
  /** Axes of `direction` reduced for each group's norm: `[0, 1]` for `'kernel'`, `[0, 1, 2]` for `'filter'`. */
  readonly normAxes: number[];
  /** The `direction` weight (kernel shape); null until built. */
  direction: tfl.LayerVariable | null = null;
  /** The `magnitude` weight; null until built. */
  magnitude: tfl.LayerVariable | null = null;
  /** The `bias` weight; null until built or when `useBias` is false. */
  bias: tfl.LayerVariable | null = null;

  private readonly spec: tfl.layers.Layer & Record<string, any>;
  private readonly activation: ActivationFn;
  private readonly magnitudeInit: { initializer: Initializer; config: unknown } | null;
  // Whether the first call has looked for an all-zero kernel (see warnIfZeroKernel).
  private zeroChecked = false;

  /** A Conv2D layer written as magnitude x unit direction; `args` are Conv2D's plus `granularity`, `epsilon` and `magnitudeInitializer`. */
  constructor(args: DecomposedConv2DArgs) {
    checkLayerArgs('DecomposedConv2D', args, 'conv2d');
    super(args);
    const { granularity, epsilon, magnitudeInitializer, ...plain } = args;
    if (plain.dataFormat != null && plain.dataFormat !== 'channelsLast') {
      throw new Error(
        `DecomposedConv2D supports dataFormat 'channelsLast' (NHWC) only, got '${plain.dataFormat}'` +
          (args.name ? ` for layer '${args.name}'` : ''),
      );
    }
    this.spec = parseConvArgs(plain);
    const c = this.spec.getConfig();
    this.filters = c.filters as number;
    this.kernelSize = c.kernelSize as [number, number];
    this.strides = c.strides as [number, number];
    this.padding = checkOneOf('DecomposedConv2D padding', c.padding, ['same', 'valid'] as const);
    this.dilationRate = c.dilationRate as [number, number];
    this.granularity = checkOneOf('DecomposedConv2D granularity', granularity ?? 'kernel', [
      'kernel',
      'filter',
    ] as const);
    this.epsilon = checkEpsilon('DecomposedConv2D', epsilon ?? DEFAULT_EPSILON);
    this.normAxes = this.granularity === 'kernel' ? [0, 1] : [0, 1, 2];
    this.useBias = this.spec.useBias;
    this.activation = this.spec.activation;
    this.activityRegularizer = this.spec.activityRegularizer;
    this.magnitudeInit =
      magnitudeInitializer == null ? null : resolveInitializer('DecomposedConv2D', magnitudeInitializer);
    this.inputSpec = [new tfl.InputSpec({ ndim: 4 })];
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = exactlyOneShape(inputShape);
    const inputDim = shape[3];
    if (inputDim == null)
      throw new Error(`DecomposedConv2D '${this.name}': the channel dimension of the input must be known`);
    if (this.direction == null) {
      const magnitudeShape = this.granularity === 'kernel' ? [inputDim, this.filters] : [this.filters];
      const shapes = {
        direction: [...this.kernelSize, inputDim, this.filters],
        magnitude: magnitudeShape,
        bias: this.useBias ? [this.filters] : null,
      };
      const w = createDecomposedWeights(
        `DecomposedConv2D '${this.name}'`,
        (...a) => this.addWeight(...a),
        (loss) => this.addLoss(loss),
        this.spec,
        shapes,
        this.normAxes,
        this.magnitudeInit,
        this.epsilon,
      );
      this.direction = w.direction;
      this.magnitude = w.magnitude;
      this.bias = w.bias;
      setInitialWeights(this);
    }
    this.inputSpec = [new tfl.InputSpec({ ndim: 4, axes: { 3: inputDim } })];
    this.built = true;
  }

  /**
   * `[direction, magnitude, bias]`, the order of `getWeights()` and `setWeights()`, also when some
   * are frozen (`layer.magnitude.trainable = false`), where tfjs would list the trainable ones first.
   */
  override get weights(): tfl.LayerVariable[] {
    return decomposedWeights(this);
  }

  /**
   * Sets the weights: this layer's `[direction, magnitude, bias]`, or the plain layer's
   * `[kernel, bias]` (`getWeights()` of the layer it replaces), whose kernel becomes the
   * direction and its exact magnitude the magnitude. Any other list is an error naming both.
   */
  override setWeights(weights: tf.Tensor[]): void {
    setDecomposedWeights(this, weights, (w) => super.setWeights(w));
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const shape = exactlyOneShape(inputShape);
    return [
      shape[0],
      convOutputLength(shape[1], this.kernelSize[0], this.padding, this.strides[0], this.dilationRate[0]),
      convOutputLength(shape[2], this.kernelSize[1], this.padding, this.strides[1], this.dilationRate[1]),
      this.filters,
    ];
  }

  /** The kernel the layer applies, `[kh, kw, cin, cout]`. A new tensor: the caller disposes it. */
  effectiveKernel(): tf.Tensor4D {
    if (this.direction == null || this.magnitude == null) {
      throw new Error(`DecomposedConv2D '${this.name}' is not built yet`);
    }
    return computeEffectiveKernel(
      this.direction.read(),
      this.magnitude.read(),
      this.normAxes,
      this.epsilon,
    ) as tf.Tensor4D;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, any>): tf.Tensor {
    if (!this.zeroChecked) {
      this.zeroChecked = true;
      warnIfZeroKernel(this);
    }
    return tf.tidy(() => {
      this.invokeCallHook(inputs, kwargs);
      const input = exactlyOne(inputs) as tf.Tensor4D;
      const kernel = this.effectiveKernel();
      const bias = this.bias == null ? undefined : this.bias.read();
      const fused = fusedActivation(this.activation);
      let y: tf.Tensor = tf.fused.conv2d({
        x: input,
        filter: kernel,
        strides: this.strides,
        pad: this.padding,
        dataFormat: 'NHWC',
        dilations: this.dilationRate,
        bias,
        activation: fused ?? 'linear',
      });
      if (fused == null) y = this.activation.apply(y);
      return y;
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    const config = decomposedConfig(this.spec, this.granularity, this.epsilon, this.magnitudeInit);
    return { ...config, ...super.getConfig() };
  }
}
tf.serialization.registerClass(DecomposedConv2D);
brandDecomposed(DecomposedConv2D, 'conv2d');

/**
 * A {@link DecomposedConv2D} layer, the way `tf.layers.conv2d` makes a Conv2D one.
 *
 * ```ts
 * const layer = decomposedConv2d({ filters: 20, kernelSize: 5, activation: 'relu', granularity: 'kernel' });
 * ```
 */
export function decomposedConv2d(config: DecomposedConv2DArgs): DecomposedConv2D {
  return new DecomposedConv2D(config);
}
