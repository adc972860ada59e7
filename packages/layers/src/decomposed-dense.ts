import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  type ActivationFn,
  brandDecomposed,
  checkOneOf,
  computeEffectiveKernel,
  scaleBiasActivate,
  checkEpsilon,
  DEFAULT_EPSILON,
  type DenseGranularity,
  type DenseLayerArgs,
  exactlyOne,
  exactlyOneShape,
  fusedActivation,
  type DecomposedPart,
  singlePart,
  createDecomposedWeights,
  setInitialWeights,
  type Initializer,
  type InitializerSpec,
  parseDenseArgs,
  resolveInitializer,
  decomposedConfig,
} from './common.js';
import { DecomposedBase } from './decomposed-base.js';
import { checkLayerArgs } from './options.js';

/**
 * Arguments of {@link decomposedDense}: everything `tf.layers.dense` accepts, plus the
 * decomposition. `kernelInitializer` initialises the direction (the effective kernel
 * starts equal to it); `kernelRegularizer` penalises and `kernelConstraint` constrains the
 * effective kernel (the kernel the layer applies), as on the plain layer: the constraint on
 * every write of the weights (`setWeights`, loading), where tfjs applies it to a plain kernel.
 *
 * Any other key is an error naming it and the key it likely misspells
 * (`granularty`: did you mean `granularity`?), where `tf.layers.dense` would ignore it.
 */
export interface DecomposedDenseArgs extends DenseLayerArgs {
  /** `'output'` (default): one magnitude per neuron, over its incoming weights (a kernel column). `'input'`: one per input feature (a kernel row). */
  granularity?: DenseGranularity;
  /** Added as `epsilon^2` under the square root of each group's norm, so a zero direction yields a zero kernel, not NaN. Default 1e-6. */
  epsilon?: number;
  /** Initial magnitudes. Default: `sqrt(norm^2 + epsilon^2)` of each group of the initial direction, so a fresh layer applies its initial direction exactly and is distributed like `tf.layers.dense`. */
  magnitudeInitializer?: InitializerSpec;
}

/**
 * A Dense layer whose kernel is `magnitude * direction / sqrt(||direction||^2 + epsilon^2)`
 * (the norm over each group; see {@link DecomposedDenseArgs.epsilon}), one magnitude per group
 * (neuron or input feature). Weights, in this order:
 * `direction` `[in, units]`, `magnitude` (`[units]` or `[in]`), `bias` `[units]`.
 * Accepts inputs of rank > 2 like `tf.layers.dense` (applied on the last axis).
 *
 * The constructor throws for an options object that is missing or holds an unknown key (naming
 * the key it likely misspells), a `granularity` other than `'output'` or `'input'`, an `epsilon`
 * outside [1.1e-19, 9.2e18], or a `magnitudeInitializer` that is no initializer; building throws
 * for an input whose last dimension is unknown, or a `magnitudeInitializer` that cannot fill the
 * magnitude's shape (`'identity'` on a rank-1 magnitude).
 */
export class DecomposedDense extends DecomposedBase {
  /** Serialisation name (`tf.serialization.registerClass`). */
  static className = 'DecomposedDense';

  /** Output size. */
  readonly units: number;
  /** Which weights share one magnitude. */
  readonly granularity: DenseGranularity;
  /** See {@link DecomposedDenseArgs.epsilon}. */
  readonly epsilon: number;
  /** Whether the layer adds a bias. */
  readonly useBias: boolean;
  /** Axes of `direction` reduced for each group's norm: `[0]` for `'output'`, `[1]` for `'input'`. */
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

  /** A Dense layer written as magnitude x unit direction; `args` are Dense's plus `granularity`, `epsilon` and `magnitudeInitializer`. */
  constructor(args: DecomposedDenseArgs) {
    checkLayerArgs('DecomposedDense', args, 'dense');
    super(args);
    const { granularity, epsilon, magnitudeInitializer, ...plain } = args;
    this.spec = parseDenseArgs(plain);
    if (args.batchInputShape == null && args.inputShape == null && args.inputDim != null) {
      // Layer's constructor does not know inputDim; Dense's handles it here.
      this.batchInputShape = [args.batchSize ?? null, args.inputDim];
      // What Layer sets for inputShape, so that getConfig() round-trips.
      this.dtype = args.dtype ?? args.inputDType ?? 'float32';
    }
    this.units = this.spec.units;
    this.granularity = checkOneOf('DecomposedDense granularity', granularity ?? 'output', [
      'output',
      'input',
    ] as const);
    this.epsilon = checkEpsilon('DecomposedDense', epsilon ?? DEFAULT_EPSILON);
    this.normAxes = this.granularity === 'output' ? [0] : [1];
    this.useBias = this.spec.useBias;
    this.activation = this.spec.activation;
    this.activityRegularizer = this.spec.activityRegularizer;
    this.magnitudeInit =
      magnitudeInitializer == null ? null : resolveInitializer('DecomposedDense', magnitudeInitializer);
    this.supportsMasking = true;
    this.inputSpec = [new tfl.InputSpec({ minNDim: 2 })];
  }

  /** Its one magnitude / direction pair; none until it is built. */
  parts(): DecomposedPart[] {
    return singlePart(this);
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = exactlyOneShape(inputShape);
    const inputDim = shape[shape.length - 1];
    if (inputDim == null)
      throw new Error(`DecomposedDense '${this.name}': the last input dimension must be known`);
    if (this.direction == null) {
      const magnitudeShape = this.granularity === 'output' ? [this.units] : [inputDim];
      const shapes = {
        direction: [inputDim, this.units],
        magnitude: magnitudeShape,
        bias: this.useBias ? [this.units] : null,
      };
      const w = createDecomposedWeights(
        `DecomposedDense '${this.name}'`,
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
    this.inputSpec = [new tfl.InputSpec({ minNDim: 2, axes: { [-1]: inputDim } })];
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const shape = exactlyOneShape(inputShape).slice();
    shape[shape.length - 1] = this.units;
    return shape;
  }

  /** The kernel the layer applies, `[in, units]`. A new tensor: the caller disposes it. */
  effectiveKernel(): tf.Tensor2D {
    if (this.direction == null || this.magnitude == null) {
      throw new Error(`DecomposedDense '${this.name}' is not built yet`);
    }
    return computeEffectiveKernel(
      this.direction.read(),
      this.magnitude.read(),
      this.normAxes,
      this.epsilon,
    ) as tf.Tensor2D;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, any>): tf.Tensor {
    this.checkZeroKernelOnce();
    return tf.tidy(() => {
      this.invokeCallHook(inputs, kwargs);
      const input = exactlyOne(inputs);
      const bias = this.bias == null ? undefined : this.bias.read();
      const x2d =
        input.rank === 2
          ? (input as tf.Tensor2D)
          : (tf.reshape(input, [-1, input.shape[input.rank - 1]]) as tf.Tensor2D);
      const direction = this.direction!.read() as tf.Tensor2D;
      const magnitude = this.magnitude!.read();
      const fused = fusedActivation(this.activation);
      let y: tf.Tensor;
      if (this.granularity === 'output') {
        // One factor per unit commutes with the matMul: scaling the
        // [batch, units] output costs less than scaling the [in, units]
        // kernel, and a plain (unfused) matMul only computes the input's
        // gradient when something upstream needs it.
        const relu = fused === 'relu';
        y = scaleBiasActivate(tf.matMul(x2d, direction), direction, magnitude, bias, relu, this.epsilon);
        if (!relu) y = this.activation.apply(y);
      } else {
        // One factor per input feature. Scaling the [batch, in] input would
        // be cheaper forward, but makes the matMul compute the input's
        // gradient even at the first layer (an extra matMul as large as the
        // layer's own); the effective kernel keeps that gradient lazy.
        y = tf.fused.matMul({ a: x2d, b: this.effectiveKernel(), bias, activation: fused ?? 'linear' });
        if (fused == null) y = this.activation.apply(y);
      }
      if (input.rank !== 2) y = tf.reshape(y, [...input.shape.slice(0, -1), this.units]);
      return y;
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    const config = decomposedConfig(this.spec, this.granularity, this.epsilon, this.magnitudeInit);
    return { ...config, ...super.getConfig() };
  }
}
tf.serialization.registerClass(DecomposedDense);
brandDecomposed(DecomposedDense, 'dense');

/**
 * A {@link DecomposedDense} layer, the way `tf.layers.dense` makes a Dense one. Throws as its
 * constructor does (see {@link DecomposedDense}).
 *
 * ```ts
 * const layer = decomposedDense({ units: 300, activation: 'relu', granularity: 'output' });
 * ```
 */
export function decomposedDense(config: DecomposedDenseArgs): DecomposedDense {
  return new DecomposedDense(config);
}
