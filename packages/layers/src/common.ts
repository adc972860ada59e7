import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

/** Plain Dense arguments, as `tf.layers.dense` accepts them. */
export type DenseLayerArgs = Parameters<typeof tfl.layers.dense>[0];
/** Plain Conv1D / Conv2D arguments, as `tf.layers.conv1d` and `tf.layers.conv2d` accept them. */
export type ConvLayerArgs = Parameters<typeof tfl.layers.conv2d>[0];
/** Plain DepthwiseConv2D arguments, as `tf.layers.depthwiseConv2d` accepts them. */
export type DepthwiseConvLayerArgs = Parameters<typeof tfl.layers.depthwiseConv2d>[0];
/** Plain SeparableConv2D arguments, as `tf.layers.separableConv2d` accepts them. */
export type SeparableConvLayerArgs = Parameters<typeof tfl.layers.separableConv2d>[0];
/** What a `kernelInitializer` may be: an identifier such as `'glorotNormal'`, a serialised config, or an instance. */
export type InitializerSpec = NonNullable<DenseLayerArgs['kernelInitializer']>;

/** Groups of a Dense layer: one per output neuron (a kernel column) or one per input feature (a kernel row). */
export type DenseGranularity = 'output' | 'input';
/**
 * Groups of a convolution: one per kernel (thesis; a Conv2D's 2-D kernel `[kh, kw]`, a Conv1D's
 * 1-D kernel `[k]`), or one per output filter (`[kh, kw, cin]`, `[k, cin]`; a DepthwiseConv2D's
 * filter is the `depthMultiplier` kernels of one input channel, `[kh, kw, depthMultiplier]`).
 */
export type ConvGranularity = 'kernel' | 'filter';
/** Any granularity. */
export type Granularity = DenseGranularity | ConvGranularity;

/** Default epsilon: small enough to be invisible next to a unit-norm direction, large enough that `epsilon^2` is a normal float32. */
export const DEFAULT_EPSILON = 1e-6;

/**
 * The smallest epsilon whose square is a normal float32 (2^-63, about 1.08e-19): below it the
 * square underflows, and an all-zero group divides 0 by 0.
 */
const MIN_EPSILON = 2 ** -63;

/**
 * The largest epsilon whose square is a finite float32 with room for a group's norm (2^63, about
 * 9.2e18): above it the square overflows, every group's norm is Infinity, and the kernel
 * Infinity * 0 = NaN.
 */
const MAX_EPSILON = 2 ** 63;

/** `epsilon` if it is a number from {@link MIN_EPSILON} to {@link MAX_EPSILON}; else an error naming `who`. @internal */
export function checkEpsilon(who: string, epsilon: unknown): number {
  if (typeof epsilon !== 'number' || !(epsilon >= MIN_EPSILON && epsilon <= MAX_EPSILON))
    throw new Error(
      `${who} epsilon must be a finite number >= 1.1e-19 and <= 9.2e18 (its square must be a normal ` +
        `float32: smaller, an all-zero group gives 0 / 0; larger, every kernel entry is NaN), ` +
        `got ${describeValue(epsilon)}`,
    );
  return epsilon;
}

/** The minimal part of tfjs's Activation we use. */
export interface ActivationFn {
  apply(x: tf.Tensor): tf.Tensor;
  getClassName(): string;
}

/** tfjs-layers' Initializer, seen through the public `initializers` namespace. */
export type Initializer = ReturnType<typeof tfl.initializers.ones>;

/**
 * tfjs-layers keeps its argument parsers (`getActivation`, `getInitializer`,
 * ...) private and ships only a bundle, so deep imports would load a second
 * copy with its own class registry. A plain layer built from the same
 * arguments (never built, so it owns no weights) parses them for us, exactly
 * the way `tf.layers.dense` / `tf.layers.conv2d` would, and serialises them
 * the same way too.
 */
export function parseDenseArgs(args: DenseLayerArgs): tfl.layers.Layer & Record<string, any> {
  return tfl.layers.dense({
    ...args,
    activation: activationName(args.activation),
    name: specName(args.name),
  }) as any;
}

/** The plain convolutions a decomposed convolution stands for, as `tf.layers` names their factories. */
export type ConvKind = 'conv1d' | 'conv2d' | 'conv2dTranspose' | 'depthwiseConv2d' | 'separableConv2d';

/**
 * See {@link parseDenseArgs}; `kind` says which of `tf.layers.conv1d`, `conv2d`, `conv2dTranspose`,
 * `depthwiseConv2d` and `separableConv2d` parses them.
 */
export function parseConvArgs(
  args: ConvLayerArgs | DepthwiseConvLayerArgs | SeparableConvLayerArgs,
  kind: ConvKind,
): tfl.layers.Layer & Record<string, any> {
  const factory = tfl.layers[kind] as (a: typeof args) => tfl.layers.Layer;
  return factory({
    ...args,
    activation: activationName(args.activation),
    name: specName(args.name),
  }) as any;
}

/**
 * tfjs saves the activation `'gelu_new'` as it is, and loading converts every
 * snake_case string of the saved config to camelCase, `'geluNew'`, a name no
 * activation is registered under: tfjs 4.22 cannot load its own models that
 * use it (`Unknown activation: geluNew`). Read back, it means `'gelu_new'`.
 */
function activationName<T>(activation: T): T {
  return ((activation as unknown) === 'geluNew' ? 'gelu_new' : activation) as T;
}

// A fixed name keeps the parser layer from consuming a uid, so automatic
// names of the user's own layers ('dense_Dense3') stay what they would be.
function specName(name?: string): string {
  return `${name ?? 'decomposed'}__spec`;
}

/**
 * Resolves the `magnitudeInitializer` (or another initializer `option`) identifier / config /
 * instance of layer class `who` to an instance and its serialised form. tfjs's refusal names no
 * option (`Unknown initializer: nope`), and a layer also takes a kernel and a bias initializer:
 * the error names this one.
 */
export function resolveInitializer(
  who: string,
  spec: InitializerSpec,
  option = 'magnitudeInitializer',
): { initializer: Initializer; config: unknown } {
  let parser: any;
  try {
    parser = tfl.layers.dense({ units: 1, kernelInitializer: spec, name: 'initializer__spec' });
  } catch (e) {
    throw new Error(
      `${who} ${option} must be an initializer (an identifier such as 'ones' or 'zeros', ` +
        `its config, or an instance such as tf.initializers.constant({ value: 1 })), got ${describeValue(spec)}: ` +
        (e as Error).message,
    );
  }
  return { initializer: parser.kernelInitializer, config: parser.getConfig().kernelInitializer };
}

const BASE_KEYS = ['name', 'trainable', 'batchInputShape', 'dtype'];

/** The parser layer's config without the keys that belong to the real layer's base config. */
export function specConfig(spec: tfl.layers.Layer): tf.serialization.ConfigDict {
  const config = { ...spec.getConfig() };
  for (const k of BASE_KEYS) delete config[k];
  return config;
}

/**
 * The layer-specific part of a decomposed layer's config: the plain layer's
 * arguments plus granularity, epsilon and (when set) the magnitude initializer.
 */
export function decomposedConfig(
  spec: tfl.layers.Layer,
  granularity: Granularity,
  epsilon: number,
  magnitudeInit: { config: unknown } | null,
): tf.serialization.ConfigDict {
  const config: tf.serialization.ConfigDict = { ...specConfig(spec), granularity, epsilon };
  if (magnitudeInit != null)
    config.magnitudeInitializer = magnitudeInit.config as tf.serialization.ConfigDictValue;
  return config;
}

/** Which decomposed layer a branded prototype belongs to. */
export type DecomposedKind =
  'dense' | 'conv1d' | 'conv2d' | 'conv2dTranspose' | 'depthwiseConv2d' | 'separableConv2d';

/** Every kind of decomposed layer (the keys of decompose()'s `granularity`). */
export const DECOMPOSED_KINDS = [
  'dense',
  'conv1d',
  'conv2d',
  'conv2dTranspose',
  'depthwiseConv2d',
  'separableConv2d',
] as const satisfies readonly DecomposedKind[];

/**
 * One magnitude / direction pair of a decomposed layer. Every decomposed layer has one, named
 * null; a DecomposedSeparableConv2D has two, its `'depthwise'` and its `'pointwise'` kernel's.
 */
export interface DecomposedPart {
  /** null for the layer's only pair; `'depthwise'` or `'pointwise'` for a separable convolution's. */
  readonly name: 'depthwise' | 'pointwise' | null;
  /** The direction weight (the plain kernel's shape). */
  readonly direction: tfl.LayerVariable;
  /** The magnitude weight. */
  readonly magnitude: tfl.LayerVariable;
  /** Axes of `direction` reduced for each group's norm. */
  readonly normAxes: number[];
}

/** What the plain layer calls a part's kernel (`kernel`, `depthwise_kernel`), and its option prefix (`kernel`, `depthwise`). */
export function partNames(part: Pick<DecomposedPart, 'name'>): { weight: string; option: string } {
  return part.name == null
    ? { weight: 'kernel', option: 'kernel' }
    : { weight: `${part.name}_kernel`, option: part.name };
}

/** The kernel a part applies (see {@link computeEffectiveKernel}). A new tensor: the caller disposes it. */
export function effectivePartKernel(part: DecomposedPart, epsilon: number): tf.Tensor {
  return computeEffectiveKernel(part.direction.read(), part.magnitude.read(), part.normAxes, epsilon);
}

/** The pairs of a single-pair layer: none until it is built (or still in tfjs's constructor). */
export function singlePart(layer: {
  direction?: tfl.LayerVariable | null;
  magnitude?: tfl.LayerVariable | null;
  readonly normAxes: number[];
}): DecomposedPart[] {
  return layer.direction == null || layer.magnitude == null
    ? []
    : [{ name: null, direction: layer.direction, magnitude: layer.magnitude, normAxes: layer.normAxes }];
}

// `instanceof` only recognises the class of its own copy of this package, and
// an application can hold two (the ESM and CommonJS builds, or two installs):
// a layer built by one copy must still be recognised by the other. A key in
// the global symbol registry is the same in every copy.
const DECOMPOSED_BRAND = Symbol.for('normprune.decomposed');

/** Marks `cls` (and its subclasses) as a decomposed layer of kind `kind`, for {@link decomposedKind}. */
export function brandDecomposed(cls: { prototype: object }, kind: DecomposedKind): void {
  Object.defineProperty(cls.prototype, DECOMPOSED_BRAND, { value: kind });
}

/** The kind of a decomposed layer from any copy of this package, or null for any other layer. */
export function decomposedKind(layer: unknown): DecomposedKind | null {
  if (layer == null || typeof layer !== 'object') return null;
  const kind = (layer as Record<symbol, unknown>)[DECOMPOSED_BRAND];
  return (DECOMPOSED_KINDS as readonly unknown[]).includes(kind) ? (kind as DecomposedKind) : null;
}

/** Activations tfjs fuses into matMul / conv2d (tfjs-layers' own list). */
export function fusedActivation(activation: ActivationFn): 'relu' | 'linear' | 'elu' | null {
  const name = activation.getClassName();
  return name === 'relu' || name === 'linear' || name === 'elu' ? name : null;
}

/**
 * Every granularity reduces the leading axes of the direction (Dense 'output', both Conv2D ones,
 * Conv2DTranspose and DepthwiseConv2D 'kernel'), the trailing ones (Dense 'input'), or both ends
 * around the group axes (Conv2DTranspose 'filter': `[kh, kw, cout, cin]` over axes 0, 1 and 3;
 * DepthwiseConv2D 'filter': `[kh, kw, cin, depthMultiplier]` over the same axes), so the direction can be
 * viewed as a `[rows, groups]`, `[groups, cols]` or `[rows, groups, cols]` array whose group norms
 * are a sum over its other axes. (A `ones[1, rows] @ x` matMul looks cheaper than wasm's
 * transposing Sum, but XNNPACK repacks the right-hand matrix on every call: 10x slower on fresh data.)
 */
interface GroupView {
  viewShape: number[];
  /** Shape of one value per group in the view: `[1, groups]`, `[groups, 1]` or `[1, groups, 1]`. */
  groupShape: number[];
  groupSum(x: tf.Tensor): tf.Tensor;
}

function groupView(shape: number[], normAxes: number[]): GroupView {
  const rank = shape.length;
  const size = (axes: number[]) => axes.reduce((p, a) => p * shape[a], 1);
  // Norm axes 0..lead-1 and trail..rank-1, the group axes lead..trail-1 between them.
  let lead = 0;
  while (lead < normAxes.length && normAxes[lead] === lead) lead++;
  const tail = normAxes.slice(lead);
  const trail = rank - tail.length;
  if (!tail.every((a, i) => a === trail + i) || lead > trail) {
    throw new Error(
      `norm axes [${normAxes}] of a rank-${rank} direction are not leading and trailing axes around the group axes`,
    );
  }
  const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
  const outer = size(range(0, lead));
  const groups = size(range(lead, trail));
  const inner = size(range(trail, rank));
  if (tail.length === 0)
    return {
      viewShape: [outer, groups],
      groupShape: [1, groups],
      groupSum: (x) => tf.sum(x, 0, true),
    };
  if (lead === 0)
    return {
      viewShape: [groups, inner],
      groupShape: [groups, 1],
      groupSum: (x) => tf.sum(x, 1, true),
    };
  return {
    viewShape: [outer, groups, inner],
    groupShape: [1, groups, 1],
    // The trailing sum first: it reduces the contiguous axis, and leaves the leading one a
    // tensor `inner` times smaller to transpose.
    groupSum: (x) => tf.sum(tf.sum(x, 2, true), 0, true),
  };
}

/** `t` reshaped, without an engine op when the shape already matches (ops cost ~10 us each). */
function asShape(t: tf.Tensor, shape: number[]): tf.Tensor {
  return t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i])
    ? t
    : tf.reshape(t, shape);
}

/**
 * Whether the backward pass may read `t` instead of a saved copy: variables
 * outlive the gradient computation (tidy never disposes them), and saving a
 * tensor clones it, which on wasm copies the whole kernel.
 */
function outlivesBackward(t: tf.Tensor): boolean {
  return t instanceof tf.Variable;
}

/**
 * Whether the computation running now is itself being differentiated: a gradient of a gradient
 * (`tf.grad` inside `tf.grad` or `tf.variableGrads`: a gradient penalty, a Hessian-vector
 * product). The hand-written gradients below are first-order only: to an outer gradient, what a
 * `tf.customGrad` saves is a constant, so its backward pass would give second derivatives with
 * the norm's and the magnitude's terms missing. Then the layers compute the same formula with
 * plain ops, which autodiff differentiates to any order.
 */
function differentiatedTwice(): boolean {
  return tf.engine().state.gradientDepth > 1;
}

// tf.customGrad's declared type cannot express (a, b, save) => ...; the runtime contract is exactly that.
type CustomGradFn = Parameters<typeof tf.customGrad>[0];

/**
 * `direction * magnitude / sqrt(sum(direction^2 over normAxes) + epsilon^2)`.
 * The gradient is written by hand because autodiff of the same expression
 * costs about twice the kernel-sized work (it broadcasts, tiles and
 * transposes), which on wasm rivals the layer's own matMul. Finite at a zero
 * direction because `epsilon^2 > 0` keeps rsqrt away from its pole.
 */
export function computeEffectiveKernel(
  direction: tf.Tensor,
  magnitude: tf.Tensor,
  normAxes: number[],
  epsilon: number,
): tf.Tensor {
  const view = groupView(direction.shape, normAxes);
  if (differentiatedTwice()) {
    const v2 = asShape(direction, view.viewShape);
    const inv = tf.rsqrt(tf.add(view.groupSum(tf.square(v2)), epsilon * epsilon));
    return asShape(tf.mul(v2, tf.mul(asShape(magnitude, view.groupShape), inv)), direction.shape);
  }
  const f = tf.customGrad(((v: tf.Tensor, g: tf.Tensor, save: tf.GradSaveFunc) => {
    const v2 = asShape(v, view.viewShape);
    const inv = tf.rsqrt(tf.add(view.groupSum(tf.square(v2)), epsilon * epsilon));
    const scale = tf.mul(asShape(g, view.groupShape), inv);
    save(outlivesBackward(direction) ? [inv, scale] : [inv, scale, v2]);
    return {
      value: asShape(tf.mul(v2, scale), direction.shape),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sinv, sscale] = saved;
        const sv = saved[2] ?? asShape(direction, view.viewShape);
        const dy2 = asShape(dy, view.viewShape);
        const t = view.groupSum(tf.mul(dy2, sv)); // direction . dy, per group
        // dW/dV = scale * (I - v v^T / n^2): dV = scale * dy - v * (scale * t / n^2).
        const c = tf.mul(sscale, tf.mul(t, tf.square(sinv)));
        const dv = tf.sub(tf.mul(dy2, sscale), tf.mul(sv, c));
        return [asShape(dv, direction.shape), asShape(tf.mul(t, sinv), magnitude.shape)];
      },
    };
  }) as unknown as CustomGradFn);
  return f(direction, magnitude);
}

/**
 * Dense 'output' after its matMul: `activation(z * scale + bias)` with
 * `scale = magnitude / sqrt(sum(direction^2 over axis 0) + epsilon^2)`, one
 * factor per unit. One taped node with a hand-written gradient: on wasm the
 * per-op cost of the engine (tape, allocation) rivals the arithmetic at
 * LeNet sizes, so fewer, fused steps matter more than bytes. `relu` is
 * applied inside (`activation` says whether); other activations are applied
 * by the caller. Returns the `[batch, units]` output.
 */
export function scaleBiasActivate(
  z: tf.Tensor2D,
  direction: tf.Tensor2D,
  magnitude: tf.Tensor,
  bias: tf.Tensor | undefined,
  relu: boolean,
  epsilon: number,
): tf.Tensor2D {
  const withBias = bias != null;
  if (differentiatedTwice()) {
    const inv = tf.rsqrt(tf.add(tf.sum(tf.square(direction), 0, true), epsilon * epsilon));
    let y: tf.Tensor = tf.mul(z, tf.mul(magnitude, inv));
    if (bias != null) y = tf.add(y, bias);
    return (relu ? tf.relu(y) : y) as tf.Tensor2D;
  }
  const f = tf.customGrad(((...args: unknown[]) => {
    const [zz, v, g] = args as tf.Tensor[];
    const b = withBias ? (args[3] as tf.Tensor) : null;
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const inv = tf.rsqrt(tf.add(tf.sum(tf.square(v), 0, true), epsilon * epsilon)); // [1, units]
    const scale = tf.mul(g, inv);
    let y = tf.mul(zz, scale);
    if (b != null) y = tf.add(y, b);
    if (relu) y = tf.relu(y);
    const keepDirection = outlivesBackward(direction);
    save([zz, inv, scale, ...(relu ? [y] : []), ...(keepDirection ? [] : [v])]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sz, sinv, sscale] = saved;
        let next = 3;
        const dr = relu ? tf.mul(dy, tf.step(saved[next++])) : dy;
        const sv = keepDirection ? direction : saved[next];
        const dg = tf.mul(tf.sum(tf.mul(dr, sz), 0, true), sinv); // z . dr / n, per unit
        // d(g / n)/dv = -g v / n^3 = -(scale / n) v.
        const dv = tf.mul(sv, tf.neg(tf.mul(dg, tf.mul(sscale, sinv))));
        const grads = [tf.mul(dr, sscale), dv, tf.reshape(dg, magnitude.shape)];
        if (withBias) grads.push(tf.sum(dr, 0));
        return grads;
      },
    };
  }) as unknown as CustomGradFn);
  return (withBias ? f(z, direction, magnitude, bias) : f(z, direction, magnitude)) as tf.Tensor2D;
}

/**
 * The magnitudes that make a decomposed layer with direction `kernel` apply
 * exactly `kernel`: `sqrt(||group||^2 + epsilon^2)` (the effective kernel divides
 * by that), and 0 for an all-zero group. A group of entries so small that their
 * squares underflow to 0 (below about 2.6e-23 in float32) is not all zero: it
 * gets `epsilon`, as the effective kernel then divides by `epsilon` too. A group
 * holding a NaN gets a NaN magnitude, never 0: a corrupt group must not pass
 * for a pruned one.
 */
export function exactMagnitude(
  kernel: tf.Tensor,
  normAxes: number[],
  magnitudeShape: number[],
  epsilon: number,
): tf.Tensor {
  return tf.tidy(() => {
    const sq = tf.reshape(tf.sum(tf.square(kernel), normAxes), magnitudeShape);
    const largest = tf.reshape(tf.max(tf.abs(kernel), normAxes), magnitudeShape);
    const zero = tf.logicalAnd(tf.equal(sq, 0), tf.equal(largest, 0));
    return tf.where(zero, tf.zerosLike(sq), tf.sqrt(tf.add(sq, epsilon * epsilon)));
  });
}

/**
 * Sets the `weights` a decomposed layer was constructed with (tfjs's initial
 * weights, set once the layer is built), through the layer's `setWeights`,
 * which takes both forms {@link decomposedWeightList} does. Called from
 * `build`, which tfjs runs just before it would set them itself.
 */
export function setInitialWeights(layer: tfl.layers.Layer): void {
  const holder = layer as unknown as { initialWeights: tf.Tensor[] | null };
  const given = holder.initialWeights;
  if (given == null) return;
  holder.initialWeights = null;
  layer.setWeights(given);
}

/**
 * Writes `given` to a decomposed layer with `set` (tfjs's own `setWeights`).
 * Besides the layer's own `[direction, magnitude, bias]`, it takes the plain
 * layer's `[kernel, bias]`, what `tf.layers.dense` / `tf.layers.conv2d`
 * `getWeights()` gives and their `weights` option takes: the kernel becomes
 * the direction and its exact magnitude the magnitude, so that the layer
 * applies that kernel. A layer of two parts (a separable convolution) takes
 * `[depthwise_direction, depthwise_magnitude, pointwise_direction,
 * pointwise_magnitude, bias]` or `[depthwise_kernel, pointwise_kernel, bias]`.
 * Any other list is an error naming both forms (tfjs would only say it
 * expected 3 weights).
 */
export function setDecomposedWeights(
  layer: {
    readonly name: string;
    getClassName(): string;
    parts(): DecomposedPart[];
    bias: tfl.LayerVariable | null;
    readonly epsilon: number;
  },
  given: tf.Tensor[],
  set: (weights: tf.Tensor[]) => void,
): void {
  const parts = layer.parts();
  // Not built yet: tfjs's own check (it has no weights to set).
  if (parts.length === 0) return set(given);
  const kind = layer.getClassName();
  const { epsilon } = layer;
  const n = parts.length;
  const biasShape = (layer.bias?.shape as number[] | undefined) ?? null;
  const rest = biasShape ? [biasShape] : [];
  const plainShapes = [...parts.map((p) => p.direction.shape as number[]), ...rest];
  const ownShapes = [
    ...parts.flatMap((p) => [p.direction.shape as number[], p.magnitude.shape as number[]]),
    ...rest,
  ];
  const same = (ts: tf.Tensor[], want: number[][]) =>
    Array.isArray(ts) &&
    ts.length === want.length &&
    ts.every((t, i) => t instanceof tf.Tensor && tf.util.arraysEqual(t.shape, want[i]));
  if (same(given, plainShapes)) {
    const magnitudes = parts.map((p, i) =>
      exactMagnitude(given[i], p.normAxes, p.magnitude.shape as number[], epsilon),
    );
    try {
      set([...parts.flatMap((_, i) => [given[i], magnitudes[i]]), ...given.slice(n)]);
    } finally {
      tf.dispose(magnitudes);
    }
  } else if (same(given, ownShapes)) {
    // tfjs does not write a variable's own tensor back onto it, and so does not apply its
    // constraint: a new direction with the magnitude getWeights() returned would change the
    // kernel unconstrained. A copy of that magnitude is written, and constrains the kernel.
    const copies: tf.Tensor[] = [];
    const values = given.map((t, i) => {
      const p = parts[i >> 1];
      if (i >= 2 * n || i % 2 === 0) return t;
      if (t.id !== p.magnitude.read().id || given[i - 1].id === p.direction.read().id) return t;
      const copy = tf.clone(t);
      copies.push(copy);
      return copy;
    });
    try {
      set(values);
    } finally {
      tf.dispose(copies);
    }
  } else {
    const show = (s: number[][]) => s.map((x) => `[${x}]`).join(', ');
    const got = Array.isArray(given)
      ? show(given.map((t) => (t instanceof tf.Tensor ? t.shape : [NaN])))
      : describeValue(given);
    const prefix = (p: DecomposedPart) => (p.name == null ? '' : `${p.name}_`);
    const bias = biasShape ? ', bias' : '';
    throw new Error(
      `${kind} '${layer.name}': weights must be the plain layer's [${parts.map((p) => partNames(p).weight).join(', ')}${bias}] ` +
        `(${show(plainShapes)}) or this layer's [${parts.map((p) => `${prefix(p)}direction, ${prefix(p)}magnitude`).join(', ')}${bias}] ` +
        `(${show(ownShapes)}); got ${got}`,
    );
  }
}

/**
 * A decomposed layer's weights in its documented order, `[direction, magnitude, bias]` (each part's
 * pair, then the bias), whichever
 * of them is frozen. tfjs's `Layer.weights` lists the trainable ones first, so with
 * `layer.magnitude.trainable = false` (training the directions alone) it read `[direction, bias,
 * magnitude]`, and `getWeights()` / `setWeights()`, which follow it, swapped the magnitude and the
 * bias (both `[units]` for Dense `'output'`: silently); a frozen direction came last, so the kernel
 * constraint, which acts on the magnitude's write, read the old direction.
 */
export function decomposedWeights(layer: {
  parts(): DecomposedPart[];
  bias: tfl.LayerVariable | null;
  readonly trainableWeights: tfl.LayerVariable[];
  readonly nonTrainableWeights: tfl.LayerVariable[];
}): tfl.LayerVariable[] {
  const parts = layer.parts();
  // Not built (or still in tfjs's constructor, before the fields exist): tfjs's own list.
  if (parts.length === 0) return layer.trainableWeights.concat(layer.nonTrainableWeights);
  const pairs = parts.flatMap((p) => [p.direction, p.magnitude]);
  return layer.bias == null ? pairs : [...pairs, layer.bias];
}

/** Throws a tfjs-style error unless `value` is one of `allowed`. */
export function checkOneOf<T extends string>(what: string, value: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) {
    throw new Error(
      `${what} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(value)}`,
    );
  }
  return value as T;
}

/** Single tensor out of a tfjs `call()` input. */
export function exactlyOne(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
  if (Array.isArray(inputs)) {
    if (inputs.length !== 1) throw new Error(`expected exactly one input tensor, got ${inputs.length}`);
    return inputs[0];
  }
  return inputs;
}

/** Single shape out of a tfjs shape argument. */
export function exactlyOneShape(shape: tfl.Shape | tfl.Shape[]): tfl.Shape {
  if (Array.isArray(shape) && Array.isArray(shape[0])) {
    if (shape.length !== 1) throw new Error(`expected exactly one input shape, got ${shape.length}`);
    return shape[0] as tfl.Shape;
  }
  return shape as tfl.Shape;
}

/** A layer's protected `addWeight`, handed over by the layer itself. */
export type AddWeight = (
  name: string,
  shape: number[],
  dtype: undefined,
  initializer: any,
  regularizer: any,
  trainable: boolean,
  constraint?: any,
) => tfl.LayerVariable;

/**
 * Warns when a decomposed layer's direction and magnitude are all zero, as a zero
 * `kernelInitializer` leaves a layer built from scratch (the zero-initialised head of fine-tuning
 * recipes): a group whose direction and magnitude are both zero gets no gradient on either, so the
 * kernel could never train, where a plain layer's would. A zero magnitude on a random direction
 * starts at the same zero kernel and trains. The layers call it at their first call, when loading
 * or `decompose()` has written their weights (one read of two numbers).
 */
export function warnIfZeroKernel(layer: {
  readonly name: string;
  getClassName(): string;
  parts(): DecomposedPart[];
  // A DepthwiseConv2D's kernel takes depthwiseInitializer, and it refuses kernelInitializer.
  readonly depthwise?: boolean;
}): void {
  const parts = layer.parts();
  if (parts.length === 0) return;
  const largest = tf.tidy(() =>
    tf
      .stack(parts.flatMap((p) => [tf.max(tf.abs(p.direction.read())), tf.max(tf.abs(p.magnitude.read()))]))
      .dataSync(),
  );
  parts.forEach((part, i) => {
    if (largest[2 * i] !== 0 || largest[2 * i + 1] !== 0) return;
    const option = `${layer.depthwise === true ? 'depthwise' : partNames(part).option}Initializer`;
    const which = part.name == null ? '' : `${part.name} `;
    console.warn(
      `${layer.getClassName()} '${layer.name}': its ${which}direction and magnitude are all zero (a zero ${option}?), ` +
        'and a group whose direction and magnitude are both zero gets no gradient: this layer will never train its ' +
        `${which}kernel (a plain layer would). To start at a zero kernel that trains, keep a random ${option} and give magnitudeInitializer: 'zeros'`,
    );
  });
}

/** A layer's `addLoss`, handed over by the layer itself. */
export type AddLoss = (loss: () => tf.Scalar) => void;

/**
 * A constraint on a decomposed layer's weight that frees its own outputs. tfjs's
 * `LayerVariable.write` assigns the weight the constraint's output and keeps no reference to
 * free it: a tensor per write of a constrained weight stayed allocated for good (tfjs 4.22), on
 * every load of a saved model. The output kept here (the variable holds its values either way)
 * is freed at the next write, and by {@link releaseConstraintOutputs} when the layer disposes its
 * weights.
 */
abstract class KeptOutputConstraint {
  private last: tf.Tensor | null = null;

  protected abstract compute(value: tf.Tensor): tf.Tensor;

  apply(value: tf.Tensor): tf.Tensor {
    this.release();
    this.last = this.compute(value);
    return this.last;
  }

  /** Frees the output of the latest write. */
  release(): void {
    this.last?.dispose();
    this.last = null;
  }
}

/**
 * The plain layer's kernel constraint, applied to the effective kernel `W`
 * where tfjs applies it to a plain kernel: on every write of the weight
 * (`setWeights`, loading a saved model; tfjs 4.22 applies no constraint
 * while training, to plain layers either). It hangs on the magnitude, which
 * every write sets after the direction: when the constraint moves `W`, it
 * replaces the direction by the constrained kernel `c(W)` and the magnitude by
 * `sqrt(||group||^2 + eps^2)` of it, so that the layer applies `c(W)` exactly,
 * with magnitudes >= 0. When it holds already (moves no entry by more than
 * 1e-6 of the largest, or 1e-6 below 1), direction and magnitude stay as
 * written.
 *
 * On the direction, the constraint would mean something else: a per-group
 * norm bound (`maxNorm`, `unitNorm`, `minMaxNorm` over the group's own axes)
 * leaves `V / ||V||` unchanged, so it bounds nothing, and any other one
 * (`nonNeg`, or a norm over other axes) changes the kernel the layer applies
 * without constraining it.
 */
class EffectiveKernelConstraint extends KeptOutputConstraint {
  constructor(
    private readonly constraint: { apply(w: tf.Tensor): tf.Tensor },
    private readonly direction: tfl.LayerVariable,
    private readonly normAxes: number[],
    private readonly epsilon: number,
  ) {
    super();
  }

  protected compute(magnitude: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const kernel = computeEffectiveKernel(this.direction.read(), magnitude, this.normAxes, this.epsilon);
      const constrained = this.constraint.apply(kernel);
      // A kernel the constraint holds for keeps its direction and magnitude as written: rewritten,
      // a unit direction would become the kernel itself (a pruned group's, zero, for good), and
      // training resumed from a checkpoint would take other steps than the one never stopped.
      if (constraintHolds(kernel, constrained)) return tf.clone(magnitude);
      (this.direction.read() as tf.Variable).assign(constrained);
      return exactMagnitude(constrained, this.normAxes, magnitude.shape, this.epsilon);
    });
  }
}

/** A decomposed layer's `biasConstraint`, whose outputs it frees (see {@link KeptOutputConstraint}). */
class BiasConstraint extends KeptOutputConstraint {
  constructor(private readonly constraint: { apply(w: tf.Tensor): tf.Tensor; getClassName(): string }) {
    super();
  }

  protected compute(bias: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.constraint.apply(bias));
  }

  getClassName(): string {
    return this.constraint.getClassName();
  }
}

/**
 * Frees what the constraints of a decomposed layer's weights still hold (see
 * {@link KeptOutputConstraint}); the layers call it when they dispose their weights.
 */
export function releaseConstraintOutputs(weights: readonly tfl.LayerVariable[]): void {
  for (const w of weights) if (w.constraint instanceof KeptOutputConstraint) w.constraint.release();
}

/**
 * Creates the weights every decomposed layer owns: the direction (with the
 * plain layer's kernel initializer), the magnitude (by default
 * `sqrt(norm^2 + epsilon^2)` of each initial direction group, so the
 * effective kernel starts as the initial direction exactly, as the plain
 * layer's kernel would) and the bias.
 *
 * The plain layer's kernel regularizer penalises the effective kernel, the
 * kernel the layer applies, as it does on the plain layer: on the direction,
 * which the proximal optimisers keep at unit norm, an L2 penalty would add a
 * constant to the loss and decay nothing, so `decompose()` would silently
 * drop a model's weight decay. The kernel constraint, likewise, constrains
 * the effective kernel (see {@link EffectiveKernelConstraint}).
 */
export function createDecomposedWeights(
  who: string,
  addWeight: AddWeight,
  addLoss: AddLoss,
  spec: Record<string, any>,
  shapes: { direction: number[]; magnitude: number[]; bias: number[] | null },
  normAxes: number[],
  magnitudeInit: { initializer: Initializer } | null,
  epsilon: number,
  prefix = '',
): { direction: tfl.LayerVariable; magnitude: tfl.LayerVariable; bias: tfl.LayerVariable | null } {
  const direction = addWeight(
    `${prefix}direction`,
    shapes.direction,
    undefined,
    spec.kernelInitializer,
    undefined,
    true,
  );
  const kernelConstraint = spec.kernelConstraint;
  let magnitude: tfl.LayerVariable;
  try {
    magnitude = addWeight(
      `${prefix}magnitude`,
      shapes.magnitude,
      undefined,
      magnitudeInit?.initializer ?? tfl.initializers.ones(),
      undefined,
      true,
      kernelConstraint == null
        ? undefined
        : new EffectiveKernelConstraint(kernelConstraint, direction, normAxes, epsilon),
    );
  } catch (e) {
    // The direction made already is unreachable once build throws: it was left behind.
    direction.dispose();
    if (magnitudeInit == null) throw e;
    // Initialisers for matrices ('identity', 'orthogonal') refuse the magnitude's shape in words
    // that name neither the option nor the weight.
    throw new Error(
      `${who}: its magnitudeInitializer cannot initialise the ${prefix}magnitude, of shape [${shapes.magnitude}]: ` +
        `${(e as Error).message} (give one that fills any shape, such as 'ones' or 'zeros')`,
    );
  }
  if (magnitudeInit == null) {
    // The layer starts out applying its initialised kernel exactly (and, as
    // a plain layer's initial kernel, unconstrained: no write).
    const norm = exactMagnitude(direction.read(), normAxes, shapes.magnitude, epsilon);
    (magnitude.read() as tf.Variable).assign(norm);
    norm.dispose();
  }
  const kernelRegularizer = spec.kernelRegularizer;
  if (kernelRegularizer != null)
    addLoss(() =>
      kernelRegularizer.apply(computeEffectiveKernel(direction.read(), magnitude.read(), normAxes, epsilon)),
    );
  const bias =
    shapes.bias == null
      ? null
      : addWeight(
          'bias',
          shapes.bias,
          undefined,
          spec.biasInitializer,
          spec.biasRegularizer,
          true,
          spec.biasConstraint == null ? undefined : new BiasConstraint(spec.biasConstraint),
        );
  return { direction, magnitude, bias };
}

/**
 * Whether a constraint holds for `value`, given what it makes of it (`constrained`): it moves no
 * entry by more than 1e-6 of the largest (or by 1e-6, when all are below 1). A satisfied `maxNorm`
 * or `unitNorm` still moves entries by about 1e-7 of their column's norm (its epsilon). Reads two
 * numbers from the backend. Used by @normprune/surgery for the constraints of pruned layers.
 * @internal
 */
export function constraintHolds(value: tf.Tensor, constrained: tf.Tensor): boolean {
  const [moved, scale] = tf.tidy(() => [
    tf.max(tf.abs(tf.sub(constrained, value))).dataSync()[0],
    tf.max(tf.abs(value)).dataSync()[0],
  ]);
  return moved <= 1e-6 * Math.max(1, scale);
}

/**
 * A value as normprune's error messages show it: numbers as they are,
 * anything else with its type, so that `'0.1'` (a string) does not read as
 * the number 0.1 and a layer passed for a model says so.
 */
export function describeValue(v: unknown): string {
  if (typeof v === 'number' || v === null || v === undefined) return String(v);
  if (typeof v === 'string') return `${JSON.stringify(v)} (a string)`;
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (typeof v === 'object') return `an object (${(v as object).constructor?.name ?? 'Object'})`;
  return `${String(v)} (a ${typeof v})`;
}
