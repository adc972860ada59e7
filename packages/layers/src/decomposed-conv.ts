// The machinery DecomposedConv1D, DecomposedConv2D, DecomposedConv2DTranspose and
// DecomposedDepthwiseConv2D share: a convolution whose kernel is magnitude x unit direction, of
// spatial rank 1 or 2, or a transposed or depthwise 2-D one. Each subclass only names its class
// and kind.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  type ActivationFn,
  checkOneOf,
  computeEffectiveKernel,
  type ConvGranularity,
  type ConvKind,
  type ConvLayerArgs,
  type DecomposedPart,
  type DepthwiseConvLayerArgs,
  checkEpsilon,
  DEFAULT_EPSILON,
  exactlyOne,
  exactlyOneShape,
  fusedActivation,
  createDecomposedWeights,
  setInitialWeights,
  type Initializer,
  type InitializerSpec,
  parseConvArgs,
  resolveInitializer,
  decomposedConfig,
  singlePart,
} from './common.js';
import { DecomposedBase } from './decomposed-base.js';
import { serializedConstraint } from './config.js';
import { checkLayerArgs } from './options.js';

/**
 * Arguments of a decomposed convolution: what `tf.layers.conv1d` / `tf.layers.conv2d` /
 * `tf.layers.conv2dTranspose` accept (channels last only), plus the decomposition.
 * `kernelInitializer` initialises the direction (the effective kernel starts equal to it);
 * `kernelRegularizer` penalises and `kernelConstraint` constrains the effective kernel (the
 * kernel the layer applies), as on the plain layer: the constraint on every write of the weights
 * (`setWeights`, loading), where tfjs applies it to a plain kernel.
 *
 * Any other key is an error naming it and the key it likely misspells
 * (`granularty`: did you mean `granularity`?), where tfjs would ignore it.
 */
export interface DecomposedConvArgs extends ConvLayerArgs {
  /**
   * `'kernel'` (default, the thesis): one magnitude per kernel, shape `[cin, cout]` (a transposed
   * convolution's `[cout, cin]`, its kernel's order). `'filter'`: one per output filter, shape `[cout]`.
   */
  granularity?: ConvGranularity;
  /** Added as `epsilon^2` under the square root of each group's norm, so a zero direction yields a zero kernel, not NaN. Default 1e-6. */
  epsilon?: number;
  /** Initial magnitudes. Default: `sqrt(norm^2 + epsilon^2)` of each group of the initial direction, so a fresh layer applies its initial direction exactly and is distributed like the plain layer. */
  magnitudeInitializer?: InitializerSpec;
}

/**
 * Arguments of a decomposed DepthwiseConv2D: what `tf.layers.depthwiseConv2d` accepts (channels
 * last, dilationRate 1), plus the decomposition (`granularity`, `epsilon`, `magnitudeInitializer`,
 * as {@link DecomposedConvArgs} has them). `depthwiseInitializer` initialises the direction;
 * `depthwiseRegularizer` penalises and `depthwiseConstraint` constrains the effective kernel, as
 * `kernel*` do for the other convolutions. `kernelInitializer`, `kernelConstraint` and
 * `kernelRegularizer`, which tfjs's DepthwiseConv2D takes and ignores, are refused.
 */
export interface DecomposedDepthwiseConvArgs
  extends
    Omit<DepthwiseConvLayerArgs, 'kernelInitializer' | 'kernelConstraint' | 'kernelRegularizer'>,
    Pick<DecomposedConvArgs, 'epsilon' | 'magnitudeInitializer'> {
  /**
   * `'kernel'` (default, the thesis): one magnitude per 2-D kernel, shape `[inChannels,
   * depthMultiplier]`. `'filter'`: one per input channel (its `depthMultiplier` kernels, the
   * channels surgery removes together), shape `[inChannels]`.
   */
  granularity?: ConvGranularity;
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
 * A transposed convolution's output length along one spatial axis, as tfjs-layers' Conv2DTranspose
 * computes it (its `deconvLength`): the input length times the stride, plus for `'valid'` what
 * the kernel reaches past the last stride.
 */
export function deconvOutputLength(
  inputLength: number | null,
  kernelSize: number,
  padding: 'same' | 'valid',
  stride: number,
): number | null {
  if (inputLength == null) return null;
  return inputLength * stride + (padding === 'valid' ? Math.max(kernelSize - stride, 0) : 0);
}

/**
 * What every decomposed convolution's constructor reads from its arguments, checked: the plain
 * layer's arguments parsed by the plain layer of `kind` (see {@link parseConvArgs}), padding
 * `'same'` or `'valid'`, granularity, epsilon and magnitude initializer; channels first is
 * refused. `who` is the class name, for messages. @internal
 */
export function readConvArgs(
  who: string,
  args: Record<string, any> & { granularity?: unknown; epsilon?: unknown; name?: string },
  kind: ConvKind,
): {
  spec: tfl.layers.Layer & Record<string, any>;
  padding: 'same' | 'valid';
  granularity: ConvGranularity;
  epsilon: number;
  magnitudeInit: { initializer: Initializer; config: unknown } | null;
} {
  const { granularity, epsilon, magnitudeInitializer, ...plain } = args;
  if (plain.dataFormat != null && plain.dataFormat !== 'channelsLast') {
    throw new Error(
      `${who} supports dataFormat 'channelsLast' only, got '${plain.dataFormat}'` +
        (args.name ? ` for layer '${args.name}'` : ''),
    );
  }
  const spec = parseConvArgs(plain as ConvLayerArgs, kind);
  return {
    spec,
    // tfjs builds a Conv1D with padding 'causal' but throws NotImplementedError when it applies it.
    padding: checkOneOf(`${who} padding`, spec.getConfig().padding, ['same', 'valid'] as const),
    granularity: checkOneOf(`${who} granularity`, granularity ?? 'kernel', ['kernel', 'filter'] as const),
    epsilon: checkEpsilon(who, epsilon ?? DEFAULT_EPSILON),
    magnitudeInit:
      magnitudeInitializer == null ? null : resolveInitializer(who, magnitudeInitializer as InitializerSpec),
  };
}

/** The spatial rank of a decomposed convolution: 1 (Conv1D) or 2 (Conv2D, Conv2DTranspose, DepthwiseConv2D). */
export type ConvRank = 1 | 2;

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/**
 * A convolution of spatial rank 1 or 2, or a transposed or depthwise 2-D one, whose kernel is
 * `magnitude * direction / sqrt(||direction||^2 + epsilon^2)` (the norm over each group), one
 * magnitude per kernel (`'kernel'`: the spatial axes) or per output filter (`'filter'`: all axes
 * but the output filters'; a depthwise convolution's input channels'). Weights, in this order:
 * `direction` (the plain kernel's shape, `[...kernelSize, cin, cout]`, a transposed convolution's
 * `[kh, kw, cout, cin]`, a depthwise one's `[kh, kw, cin, depthMultiplier]`), `magnitude` (the
 * kernel's shape without the norm axes: `[cin, cout]`, `[cout, cin]`, `[cin, depthMultiplier]`,
 * `[cout]` or `[cin]`), `bias` `[cout]` (depthwise: `[cin * depthMultiplier]`). Channels last
 * only. {@link DecomposedConv1D}, {@link DecomposedConv2D}, {@link DecomposedConv2DTranspose}
 * and {@link DecomposedDepthwiseConv2D} are its classes; their constructors throw for the options
 * each lists, building for an input whose channel dimension is unknown.
 */
export abstract class DecomposedConv extends DecomposedBase {
  /** The spatial rank: 1 for Conv1D (`[batch, steps, channels]`), 2 for Conv2D and Conv2DTranspose (NHWC). */
  readonly rank: ConvRank;
  /**
   * Whether it is a transposed convolution (Conv2DTranspose): its kernel is `[kh, kw, cout, cin]`,
   * the output filters before the input channels, and it maps each input position to a
   * `stride`-times larger output.
   */
  readonly transposed: boolean;
  /**
   * Whether it is a depthwise convolution (DepthwiseConv2D): its kernel is `[kh, kw, cin,
   * depthMultiplier]`, and output channel `c * depthMultiplier + j` reads input channel `c` alone,
   * through the 2-D kernel `[:, :, c, j]`.
   */
  readonly depthwise: boolean;
  /** A depthwise convolution's output channels per input channel; null for the other convolutions. */
  readonly depthMultiplier: number | null;
  /**
   * Number of output filters (channels). A depthwise convolution's is `cin * depthMultiplier`,
   * NaN until it is built.
   */
  readonly filters: number;
  /** The kernel's spatial size, one entry per spatial axis. */
  readonly kernelSize: number[];
  /** Strides, one per spatial axis. */
  readonly strides: number[];
  /** Padding mode. */
  readonly padding: 'same' | 'valid';
  /** Dilation rates, one per spatial axis. */
  readonly dilationRate: number[];
  /** Which weights share one magnitude. */
  readonly granularity: ConvGranularity;
  /** See {@link DecomposedConvArgs.epsilon}. */
  readonly epsilon: number;
  /** Whether the layer adds a bias. */
  readonly useBias: boolean;
  /**
   * Axes of `direction` reduced for each group's norm: the spatial ones for `'kernel'`, those and
   * `cin` for `'filter'` (`[0, 1, 3]` for a transposed convolution, whose `cin` is last, and for a
   * depthwise one, whose filter is an input channel's kernels, `depthMultiplier` last).
   */
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

  /** `who` is the class name, for messages (this.getClassName() is not there before super()). */
  protected constructor(args: DecomposedConvArgs | DecomposedDepthwiseConvArgs, kind: ConvKind, who: string) {
    checkLayerArgs(who, args, kind);
    super(args);
    const rank: ConvRank = kind === 'conv1d' ? 1 : 2;
    this.rank = rank;
    this.transposed = kind === 'conv2dTranspose';
    this.depthwise = kind === 'depthwiseConv2d';
    const read = readConvArgs(who, args, kind);
    this.spec = read.spec;
    const c = this.spec.getConfig();
    this.depthMultiplier = this.depthwise ? (c.depthMultiplier as number) : null;
    this.filters = this.depthwise ? NaN : (c.filters as number);
    this.kernelSize = c.kernelSize as number[];
    this.strides = c.strides as number[];
    // tfjs's Conv2DTranspose takes a dilationRate, then ignores it when it applies the layer
    // (tf.conv2dTranspose has no dilations) and leaves it out of its config; its DepthwiseConv2D
    // keeps it in its config and ignores it too (it passes no dilations to tf.depthwiseConv2d).
    if ((this.transposed || this.depthwise) && (this.spec.dilationRate as number[]).some((d) => d !== 1))
      throw new Error(
        `${who} supports dilationRate 1 only (tfjs's ${this.depthwise ? 'DepthwiseConv2D' : 'Conv2DTranspose'} ` +
          `ignores any other), got ${JSON.stringify(args.dilationRate)}` +
          (args.name ? ` for layer '${args.name}'` : ''),
      );
    this.padding = read.padding;
    this.dilationRate = this.spec.dilationRate as number[];
    this.granularity = read.granularity;
    this.epsilon = read.epsilon;
    // A transposed kernel is [kh, kw, cout, cin], a depthwise one [kh, kw, cin, depthMultiplier]:
    // the filter of either is every axis but the third.
    this.normAxes =
      this.granularity === 'kernel'
        ? range(rank)
        : this.transposed || this.depthwise
          ? [0, 1, 3]
          : range(rank + 1);
    this.useBias = this.spec.useBias;
    this.activation = this.spec.activation;
    this.activityRegularizer = this.spec.activityRegularizer;
    this.magnitudeInit = read.magnitudeInit;
    this.inputSpec = [new tfl.InputSpec({ ndim: rank + 2 })];
  }

  /** Its one magnitude / direction pair; none until it is built. */
  parts(): DecomposedPart[] {
    return singlePart(this);
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = exactlyOneShape(inputShape);
    const channelAxis = this.rank + 1;
    const inputDim = shape[channelAxis];
    if (inputDim == null)
      throw new Error(
        `${this.getClassName()} '${this.name}': the channel dimension of the input must be known`,
      );
    if (this.depthwise) (this as { filters: number }).filters = inputDim * this.depthMultiplier!;
    if (this.direction == null) {
      const channels = this.depthwise
        ? [inputDim, this.depthMultiplier!]
        : this.transposed
          ? [this.filters, inputDim]
          : [inputDim, this.filters];
      // A depthwise convolution's filter is one input channel's kernels.
      const magnitudeShape =
        this.granularity === 'kernel' ? channels : [this.depthwise ? inputDim : this.filters];
      const shapes = {
        direction: [...this.kernelSize, ...channels],
        magnitude: magnitudeShape,
        bias: this.useBias ? [this.filters] : null,
      };
      const s = this.spec;
      const w = createDecomposedWeights(
        `${this.getClassName()} '${this.name}'`,
        (...a) => this.addWeight(...a),
        (loss) => this.addLoss(loss),
        // A DepthwiseConv2D's kernel options are its depthwise* ones.
        this.depthwise
          ? {
              ...s,
              kernelInitializer: s.depthwiseInitializer,
              kernelConstraint: s.depthwiseConstraint,
              kernelRegularizer: s.depthwiseRegularizer,
              biasInitializer: s.biasInitializer,
              biasRegularizer: s.biasRegularizer,
              biasConstraint: s.biasConstraint,
            }
          : s,
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
    this.inputSpec = [new tfl.InputSpec({ ndim: this.rank + 2, axes: { [channelAxis]: inputDim } })];
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const shape = exactlyOneShape(inputShape);
    const channels = shape[this.rank + 1];
    return [
      shape[0],
      ...this.kernelSize.map((k, a) =>
        this.transposed
          ? deconvOutputLength(shape[a + 1], k, this.padding, this.strides[a])
          : convOutputLength(shape[a + 1], k, this.padding, this.strides[a], this.dilationRate[a]),
      ),
      this.depthwise ? (channels == null ? null : channels * this.depthMultiplier!) : this.filters,
    ];
  }

  /**
   * The kernel the layer applies, `[...kernelSize, cin, cout]` (transposed: `[kh, kw, cout, cin]`;
   * depthwise: `[kh, kw, cin, depthMultiplier]`). A new tensor: the caller disposes it.
   */
  effectiveKernel(): tf.Tensor {
    if (this.direction == null || this.magnitude == null) {
      throw new Error(`${this.getClassName()} '${this.name}' is not built yet`);
    }
    return computeEffectiveKernel(this.direction.read(), this.magnitude.read(), this.normAxes, this.epsilon);
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, any>): tf.Tensor {
    this.checkZeroKernelOnce();
    return tf.tidy(() => {
      this.invokeCallHook(inputs, kwargs);
      const input = exactlyOne(inputs);
      const kernel = this.effectiveKernel();
      const bias = this.bias == null ? undefined : this.bias.read();
      if (this.transposed) return this.applyTransposed(input, kernel, bias);
      const fused = fusedActivation(this.activation);
      if (this.depthwise) {
        // DepthwiseConv2D.call of tfjs-layers (channels last), with bias and activation fused.
        if (input.rank !== 4)
          throw new Error(
            `${this.getClassName()} '${this.name}' expects a rank-4 input [batch, height, width, channels], got shape [${input.shape}]`,
          );
        const y = tf.fused.depthwiseConv2d({
          x: input as tf.Tensor4D,
          filter: kernel as tf.Tensor4D,
          strides: this.strides as [number, number],
          pad: this.padding,
          dataFormat: 'NHWC',
          bias,
          activation: fused ?? 'linear',
        });
        return fused == null ? this.activation.apply(y) : y;
      }
      // A 1-D convolution is the 2-D one over a height of 1, as tf.conv1d computes it.
      const flat = this.rank === 1;
      let y: tf.Tensor = tf.fused.conv2d({
        x: (flat ? tf.expandDims(input, 1) : input) as tf.Tensor4D,
        filter: (flat ? tf.expandDims(kernel, 0) : kernel) as tf.Tensor4D,
        strides: (flat ? [1, this.strides[0]] : this.strides) as [number, number],
        pad: this.padding,
        dataFormat: 'NHWC',
        dilations: (flat ? [1, this.dilationRate[0]] : this.dilationRate) as [number, number],
        bias,
        activation: fused ?? 'linear',
      });
      if (flat) y = tf.squeeze(y, [1]);
      if (fused == null) y = this.activation.apply(y);
      return y;
    });
  }

  /** Conv2DTranspose.call of tfjs-layers (channels last): tfjs-core has no fused transposed convolution. */
  private applyTransposed(input: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor | undefined): tf.Tensor {
    if (input.rank !== 4)
      throw new Error(
        `${this.getClassName()} '${this.name}' expects a rank-4 input [batch, height, width, channels], got shape [${input.shape}]`,
      );
    const [batch, height, width] = input.shape;
    const outputShape: [number, number, number, number] = [
      batch,
      deconvOutputLength(height, this.kernelSize[0], this.padding, this.strides[0])!,
      deconvOutputLength(width, this.kernelSize[1], this.padding, this.strides[1])!,
      this.filters,
    ];
    let y: tf.Tensor = tf.conv2dTranspose(
      input as tf.Tensor4D,
      kernel as tf.Tensor4D,
      outputShape,
      this.strides as [number, number],
      this.padding,
    );
    if (bias != null) y = tf.add(y, bias);
    return this.activation.apply(y);
  }

  override getConfig(): tf.serialization.ConfigDict {
    const config = decomposedConfig(this.spec, this.granularity, this.epsilon, this.magnitudeInit);
    // tfjs 4.22's DepthwiseConv2D writes its depthwiseRegularizer there (see config.ts).
    if (this.depthwise)
      config.depthwiseConstraint = serializedConstraint(
        this.spec.depthwiseConstraint,
        'camel',
      ) as tf.serialization.ConfigDictValue;
    return { ...config, ...super.getConfig() };
  }
}
