import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  type ActivationFn,
  brandDecomposed,
  type ConvGranularity,
  createDecomposedWeights,
  decomposedConfig,
  type DecomposedPart,
  effectivePartKernel,
  exactlyOne,
  exactlyOneShape,
  fusedActivation,
  type Initializer,
  resolveInitializer,
  type SeparableConvLayerArgs,
  setInitialWeights,
} from './common.js';
import { DecomposedBase } from './decomposed-base.js';
import { convOutputLength, type DecomposedConvArgs, readConvArgs } from './decomposed-conv.js';
import { checkLayerArgs } from './options.js';

/**
 * Arguments of {@link decomposedSeparableConv2d}: what `tf.layers.separableConv2d` accepts
 * (channels last), plus the decomposition (`granularity`, `epsilon`, `magnitudeInitializer`, as
 * {@link DecomposedConvArgs} has them, for both kernels). `depthwiseInitializer` and
 * `pointwiseInitializer` initialise the two directions; `depthwise*` and `pointwise*`
 * regularizers and constraints act on the two effective kernels. `kernelInitializer`,
 * `kernelConstraint` and `kernelRegularizer`, which tfjs's SeparableConv2D refuses, are refused.
 */
export interface DecomposedSeparableConv2DArgs
  extends
    Omit<SeparableConvLayerArgs, 'kernelInitializer' | 'kernelConstraint' | 'kernelRegularizer'>,
    Pick<DecomposedConvArgs, 'epsilon' | 'magnitudeInitializer'> {
  /**
   * `'kernel'` (default, the thesis): one magnitude per 2-D depthwise kernel, shape `[inChannels,
   * depthMultiplier]`, and one per pointwise kernel (a single weight of the 1x1 kernel), shape
   * `[inChannels * depthMultiplier, filters]`. `'filter'`: one per input channel (its
   * `depthMultiplier` depthwise kernels), shape `[inChannels]`, and one per output filter, shape
   * `[filters]`.
   */
  granularity?: ConvGranularity;
}

const WHO = 'DecomposedSeparableConv2D';

/**
 * A SeparableConv2D layer (a DepthwiseConv2D followed by a 1x1 Conv2D, in one layer) whose two
 * kernels are each `magnitude * direction / sqrt(||direction||^2 + epsilon^2)` (the norm over
 * each group; see {@link DecomposedConvArgs.epsilon}). Its depthwise kernel is decomposed as a
 * {@link DecomposedDepthwiseConv2D}'s, its pointwise kernel as a 1x1 {@link DecomposedConv2D}'s, at
 * one `granularity`. Weights, in this order: `depthwise_direction` `[kh, kw, inChannels,
 * depthMultiplier]`, `depthwise_magnitude` (`'kernel'`: `[inChannels, depthMultiplier]`;
 * `'filter'`: `[inChannels]`), `pointwise_direction` `[1, 1, inChannels * depthMultiplier,
 * filters]`, `pointwise_magnitude` (`'kernel'`: `[inChannels * depthMultiplier, filters]`;
 * `'filter'`: `[filters]`), `bias` `[filters]`. NHWC only. It computes what
 * `tf.layers.separableConv2d` computes with the effective kernels: strides, padding, dilation,
 * bias and activation. `magnitudes()` lists its two magnitudes as two entries,
 * `<layer>:depthwise` and `<layer>:pointwise`.
 *
 * tfjs 4.22's SeparableConv2D initialises its pointwise kernel with the `depthwiseInitializer`
 * (it ignores `pointwiseInitializer`); this layer initialises it with `pointwiseInitializer`
 * when it is given. A dilationRate above 1 is computed, but tfjs 4.22 has no gradient for it
 * (training throws), as for a plain SeparableConv2D.
 *
 * The constructor throws for an options object that is missing or holds an unknown key (naming
 * the key it likely misspells; `kernelInitializer`, `kernelConstraint` and `kernelRegularizer`
 * included), a `granularity` other than `'kernel'` or `'filter'`, an `epsilon` outside
 * [1.1e-19, 9.2e18], a `magnitudeInitializer` or `pointwiseInitializer` that is no initializer,
 * `padding` other than `'same'` or `'valid'`, or `dataFormat: 'channelsFirst'`; building throws
 * for an input whose channel dimension is unknown, or a `magnitudeInitializer` that cannot fill a
 * magnitude's shape (`'identity'` on an `[inChannels]` magnitude).
 */
export class DecomposedSeparableConv2D extends DecomposedBase {
  /** Serialisation name (`tf.serialization.registerClass`). */
  static className = WHO;
  /** Number of output filters (the pointwise kernel's). */
  readonly filters: number;
  /** `[kh, kw]`, the depthwise kernel's. */
  readonly kernelSize: [number, number];
  /** `[sh, sw]`, the depthwise convolution's. */
  readonly strides: [number, number];
  /** Padding mode of the depthwise convolution. */
  readonly padding: 'same' | 'valid';
  /** `[dh, dw]`, the depthwise convolution's. */
  readonly dilationRate: [number, number];
  /** Depthwise output channels per input channel. */
  readonly depthMultiplier: number;
  /** Which weights share one magnitude, in both kernels. */
  readonly granularity: ConvGranularity;
  /** See {@link DecomposedConvArgs.epsilon}. */
  readonly epsilon: number;
  /** Whether the layer adds a bias. */
  readonly useBias: boolean;
  /** Axes of `depthwise_direction` reduced for each group's norm: `[0, 1]` (`'kernel'`) or `[0, 1, 3]` (`'filter'`). */
  readonly depthwiseNormAxes: number[];
  /** Axes of `pointwise_direction` reduced for each group's norm: `[0, 1]` (`'kernel'`) or `[0, 1, 2]` (`'filter'`). */
  readonly pointwiseNormAxes: number[];
  /** The `depthwise_direction` weight; null until built. */
  depthwiseDirection: tfl.LayerVariable | null = null;
  /** The `depthwise_magnitude` weight; null until built. */
  depthwiseMagnitude: tfl.LayerVariable | null = null;
  /** The `pointwise_direction` weight; null until built. */
  pointwiseDirection: tfl.LayerVariable | null = null;
  /** The `pointwise_magnitude` weight; null until built. */
  pointwiseMagnitude: tfl.LayerVariable | null = null;
  /** The `bias` weight; null until built or when `useBias` is false. */
  bias: tfl.LayerVariable | null = null;

  private readonly spec: tfl.layers.Layer & Record<string, any>;
  private readonly activation: ActivationFn;
  private readonly magnitudeInit: { initializer: Initializer; config: unknown } | null;
  // tfjs's SeparableConv2D parses pointwiseInitializer from depthwiseInitializer (see the class doc).
  private readonly pointwiseInit: { initializer: Initializer; config: unknown } | null;

  /** A SeparableConv2D layer written as two magnitude x unit direction pairs; `args` are SeparableConv2D's plus `granularity`, `epsilon` and `magnitudeInitializer`. */
  constructor(args: DecomposedSeparableConv2DArgs) {
    checkLayerArgs(WHO, args, 'separableConv2d');
    super(args);
    const read = readConvArgs(WHO, args, 'separableConv2d');
    this.spec = read.spec;
    const c = this.spec.getConfig();
    this.filters = c.filters as number;
    this.kernelSize = c.kernelSize as [number, number];
    this.strides = c.strides as [number, number];
    this.padding = read.padding;
    this.dilationRate = this.spec.dilationRate as [number, number];
    // tfjs 4.22 leaves it out of its config (see config.ts); its field has it.
    this.depthMultiplier = this.spec.depthMultiplier as number;
    this.granularity = read.granularity;
    this.epsilon = read.epsilon;
    this.depthwiseNormAxes = this.granularity === 'kernel' ? [0, 1] : [0, 1, 3];
    this.pointwiseNormAxes = this.granularity === 'kernel' ? [0, 1] : [0, 1, 2];
    this.useBias = this.spec.useBias;
    this.activation = this.spec.activation;
    this.activityRegularizer = this.spec.activityRegularizer;
    this.magnitudeInit = read.magnitudeInit;
    this.pointwiseInit =
      args.pointwiseInitializer == null
        ? null
        : resolveInitializer(WHO, args.pointwiseInitializer, 'pointwiseInitializer');
    this.inputSpec = [new tfl.InputSpec({ ndim: 4 })];
  }

  /** Its two magnitude / direction pairs, `'depthwise'` then `'pointwise'`; none until it is built. */
  parts(): DecomposedPart[] {
    const {
      depthwiseDirection: dd,
      depthwiseMagnitude: dm,
      pointwiseDirection: pd,
      pointwiseMagnitude: pm,
    } = this;
    // Still in tfjs's constructor (the fields are not there yet), or not built.
    if (dd == null || dm == null || pd == null || pm == null) return [];
    return [
      { name: 'depthwise', direction: dd, magnitude: dm, normAxes: this.depthwiseNormAxes },
      { name: 'pointwise', direction: pd, magnitude: pm, normAxes: this.pointwiseNormAxes },
    ];
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = exactlyOneShape(inputShape);
    const inputDim = shape[3];
    if (inputDim == null)
      throw new Error(`${WHO} '${this.name}': the channel dimension of the input must be known`);
    if (this.depthwiseDirection == null) {
      const who = `${WHO} '${this.name}'`;
      const s = this.spec;
      const m = this.depthMultiplier;
      const channels = inputDim * m;
      const addWeight = (...a: Parameters<tfl.layers.Layer['addWeight']>) => this.addWeight(...a);
      const addLoss = (loss: () => tf.Scalar) => this.addLoss(loss);
      const depthwise = createDecomposedWeights(
        who,
        addWeight,
        addLoss,
        {
          kernelInitializer: s.depthwiseInitializer,
          kernelConstraint: s.depthwiseConstraint,
          kernelRegularizer: s.depthwiseRegularizer,
        },
        {
          direction: [...this.kernelSize, inputDim, m],
          magnitude: this.granularity === 'kernel' ? [inputDim, m] : [inputDim],
          bias: null,
        },
        this.depthwiseNormAxes,
        this.magnitudeInit,
        this.epsilon,
        'depthwise_',
      );
      let pointwise: ReturnType<typeof createDecomposedWeights>;
      try {
        pointwise = createDecomposedWeights(
          who,
          addWeight,
          addLoss,
          {
            ...s,
            kernelInitializer: this.pointwiseInit?.initializer ?? s.pointwiseInitializer,
            kernelConstraint: s.pointwiseConstraint,
            kernelRegularizer: s.pointwiseRegularizer,
          },
          {
            direction: [1, 1, channels, this.filters],
            magnitude: this.granularity === 'kernel' ? [channels, this.filters] : [this.filters],
            bias: this.useBias ? [this.filters] : null,
          },
          this.pointwiseNormAxes,
          this.magnitudeInit,
          this.epsilon,
          'pointwise_',
        );
      } catch (e) {
        // The depthwise weights made already are unreachable once build throws.
        depthwise.direction.dispose();
        depthwise.magnitude.dispose();
        throw e;
      }
      this.depthwiseDirection = depthwise.direction;
      this.depthwiseMagnitude = depthwise.magnitude;
      this.pointwiseDirection = pointwise.direction;
      this.pointwiseMagnitude = pointwise.magnitude;
      this.bias = pointwise.bias;
      setInitialWeights(this);
    }
    this.inputSpec = [new tfl.InputSpec({ ndim: 4, axes: { 3: inputDim } })];
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const shape = exactlyOneShape(inputShape);
    return [
      shape[0],
      ...this.kernelSize.map((k, a) =>
        convOutputLength(shape[a + 1], k, this.padding, this.strides[a], this.dilationRate[a]),
      ),
      this.filters,
    ];
  }

  /**
   * The kernels the layer applies, `[depthwise [kh, kw, inChannels, depthMultiplier], pointwise
   * [1, 1, inChannels * depthMultiplier, filters]]`. New tensors: the caller disposes them.
   */
  effectiveKernels(): [tf.Tensor4D, tf.Tensor4D] {
    const parts = this.parts();
    if (parts.length === 0) throw new Error(`${WHO} '${this.name}' is not built yet`);
    return parts.map((p) => effectivePartKernel(p, this.epsilon)) as [tf.Tensor4D, tf.Tensor4D];
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, any>): tf.Tensor {
    this.checkZeroKernelOnce();
    return tf.tidy(() => {
      this.invokeCallHook(inputs, kwargs);
      const input = exactlyOne(inputs);
      if (input.rank !== 4)
        throw new Error(
          `${WHO} '${this.name}' expects a rank-4 input [batch, height, width, channels], got shape [${input.shape}]`,
        );
      const [depthwise, pointwise] = this.effectiveKernels();
      // SeparableConv2D.call of tfjs-layers (tf.separableConv2d: the depthwise convolution, then a
      // 1x1 one), with bias and activation fused into the second.
      const y = tf.depthwiseConv2d(
        input as tf.Tensor4D,
        depthwise,
        this.strides,
        this.padding,
        'NHWC',
        this.dilationRate,
      );
      const fused = fusedActivation(this.activation);
      const out = tf.fused.conv2d({
        x: y,
        filter: pointwise,
        strides: 1,
        pad: 'valid',
        dataFormat: 'NHWC',
        bias: this.bias == null ? undefined : this.bias.read(),
        activation: fused ?? 'linear',
      });
      return fused == null ? this.activation.apply(out) : out;
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    const config = decomposedConfig(this.spec, this.granularity, this.epsilon, this.magnitudeInit);
    // tfjs 4.22 leaves depthMultiplier out of a SeparableConv2D's config, and writes its
    // depthwiseInitializer as its pointwiseInitializer.
    config.depthMultiplier = this.depthMultiplier;
    if (this.pointwiseInit != null)
      config.pointwiseInitializer = this.pointwiseInit.config as tf.serialization.ConfigDictValue;
    return { ...config, ...super.getConfig() };
  }
}
tf.serialization.registerClass(DecomposedSeparableConv2D);
brandDecomposed(DecomposedSeparableConv2D, 'separableConv2d');

/**
 * A {@link DecomposedSeparableConv2D} layer, the way `tf.layers.separableConv2d` makes a
 * SeparableConv2D one. Throws as its constructor does (see {@link DecomposedSeparableConv2D}).
 *
 * ```ts
 * const layer = decomposedSeparableConv2d({ filters: 16, kernelSize: 3, padding: 'same', activation: 'relu' });
 * ```
 */
export function decomposedSeparableConv2d(config: DecomposedSeparableConv2DArgs): DecomposedSeparableConv2D {
  return new DecomposedSeparableConv2D(config);
}
