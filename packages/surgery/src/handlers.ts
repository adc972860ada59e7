// One small handler per layer class, in the spirit of Torch-Pruning's
// pruner/function.py: surgery never special-cases an architecture, it asks the
// handler of each layer how channels flow through it.
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { readFiniteWeight } from '@normprune/layers';
import { SPARSE_FALLBACK, type GraphNode } from './graph.js';

/** A weight copied to the host: its short name ('kernel', 'bias', 'gamma', ...), shape and values. */
export interface HostWeight {
  name: string;
  shape: number[];
  values: Float32Array;
}

/**
 * Host copies of a layer's weights, in the layer's own order. Throws a
 * `NonFiniteWeightError` (@normprune/layers), naming the layer, the weight and
 * its first bad entry, for a NaN or an infinity: `|NaN| > threshold` is false,
 * so such a weight would count as zero, and a diverged model would be reported
 * compressed.
 */
export function readWeights(layer: tfl.layers.Layer | undefined): HostWeight[] {
  if (!layer) return [];
  return layer.weights.map((w) => {
    // dataSync may hand back the backend's own buffer: copy before anyone slices or edits it.
    const values = (
      readFiniteWeight(
        layer,
        w,
        'surgery',
        'no weight can be told zero or not. ' +
          'The model has diverged or its weights are corrupt: restore a checkpoint, or retrain with a lower learning rate',
      ) as Float32Array
    ).slice();
    const shape = w.shape.map((d) => d as number);
    return { name: w.originalName.split('/').pop()!.replace(/_\d+$/, ''), shape, values };
  });
}

/** The number of entries of a tensor of shape `shape`. */
export const elementCount = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

/** The weight named `name`, or undefined. */
export function weightNamed(ws: HostWeight[], name: string): HostWeight | undefined {
  return ws.find((w) => w.name === name);
}

/**
 * How a layer moves channels (the last axis) from its inputs to its output:
 * - `input`: a model input; its channels can never be removed.
 * - `unit`: Dense, Conv1D, Conv2D, Conv3D, Conv2DTranspose; creates one new channel per unit from all input channels.
 * - `channelwise`: output channel c depends only on input channel c (activations, pooling, BN, dropout);
 *   with `repeats` m, output channels c * m to c * m + m - 1 depend only on input channel c
 *   (DepthwiseConv2D of depthMultiplier m), and carry its id.
 * - `flatten`: positions x channels -> features in NHWC order `(h * W + w) * C + c`.
 * - `join`: elementwise merge of same-sized inputs (Add, Multiply, ...): channel c of every input is coupled.
 * - `concat`: concatenation along the channel axis: channels keep their identity at an offset.
 * - `opaque`: mixes channels in a way surgery cannot follow (softmax, and with `unknownLayers: 'keep'`
 *   any layer class surgery does not know); its inputs and outputs stay whole.
 */
export type LayerKind = 'input' | 'unit' | 'channelwise' | 'flatten' | 'join' | 'concat' | 'opaque';

/** Per-class behaviour (internal). */
export interface LayerHandler {
  kind: LayerKind;
  /**
   * unit: the order of the kernel's last two axes. `'in-out'` (the default: Dense, Conv1D/2D/3D)
   * is `[..., cin, cout]`; `'out-in'` is `[..., cout, cin]`, a Conv2DTranspose's `[kh, kw,
   * filters, inChannels]`. Surgery reads every unit kernel as `[..., cin, cout]` (see
   * {@link UnitView}) and writes the layer's own order back.
   */
  kernelLayout?: 'in-out' | 'out-in';
  /** Throws when this instance's config is outside what the handler understands. */
  check?(node: GraphNode, config: any): void;
  /**
   * channelwise: how many output channels each input channel feeds, one after another (a
   * DepthwiseConv2D's depthMultiplier); 1 when absent. Those channels carry the input channel's
   * id, so they are removed together, with it, and only together.
   */
  repeats?(config: any): number;
  /**
   * channelwise: the value of each constant channel after this layer. `channels` are the
   * channel indices of `values`. NaN means the channel is no longer constant.
   */
  mapConstants?(
    node: GraphNode,
    weights: HostWeight[],
    values: Float64Array,
    channels: Int32Array,
  ): Float64Array;
  /**
   * channelwise layers with their own per-channel kernel (DepthwiseConv2D): all output constants
   * from all input constants (NaN = varies), since a zero kernel makes a channel constant whatever
   * its input. Used instead of `mapConstants`.
   */
  outputConstants?(
    node: GraphNode,
    weights: HostWeight[],
    inputs: Float64Array,
    inShape: (number | null)[],
    config: any,
  ): Float64Array;
  /**
   * Layers with groups of their own that are not units (DepthwiseConv2D's per-channel 2-D kernels):
   * writes as exact zeros, in place, each group whose weights are all <= `threshold` in absolute
   * value, the groups `analyze` counts dead at that threshold.
   */
  zeroGroups?(weights: HostWeight[], threshold: number): void;
  /** channelwise layers with per-channel weights (BatchNormalization): keep only `keep`. */
  pruneChannels?(weights: HostWeight[], keep: number[]): HostWeight[];
  /** join: combine the per-input constants of one channel. */
  join?(xs: number[]): number;
  /** opaque: a class surgery does not know, kept whole at the caller's request (`unknownLayers: 'keep'`). */
  unknown?: true;
}

/** What {@link handlerFor} does with a layer class surgery does not know (see `PruneOptions.unknownLayers`). */
export type UnknownLayers = 'refuse' | 'keep';

const KEPT_WHOLE: LayerHandler = { kind: 'opaque', unknown: true };

/** Applies a tfjs activation (or an activation layer's `call`) to constants. */
export function applyElementwise(fn: (x: tf.Tensor) => tf.Tensor, values: Float64Array): Float64Array {
  if (values.length === 0) return new Float64Array(0);
  const out = tf.tidy(() => fn(tf.tensor1d(Float32Array.from(values))).dataSync());
  return Float64Array.from(out as Float32Array);
}

const identity = (_n: GraphNode, _w: HostWeight[], v: Float64Array): Float64Array => v;

function requireChannelsLast(node: GraphNode, config: any): void {
  if (config.dataFormat && config.dataFormat !== 'channelsLast') {
    throw new Error(
      `surgery: layer '${node.name}' (${node.className}) uses dataFormat '${config.dataFormat}'; only channelsLast is supported: ` +
        `build the model with dataFormat 'channelsLast' (the default, inputs as [batch, height, width, channels]), then prune. ${SPARSE_FALLBACK}`,
    );
  }
}

function requireLastAxis(node: GraphNode, axis: unknown): void {
  const rank = node.shape.length + 1;
  const a = Array.isArray(axis) ? axis : [axis];
  if (a.length !== 1 || (a[0] !== -1 && a[0] !== rank - 1)) {
    throw new Error(
      `surgery: layer '${node.name}' (${node.className}) works on axis ${JSON.stringify(axis)}; only the last (channel) axis is supported: ` +
        `build the model with its channels last (axis -1, the default), then prune. ${SPARSE_FALLBACK}`,
    );
  }
}

/** Activations that mix channels: a dead unit under them does not emit a constant. */
export const CROSS_CHANNEL_ACTIVATIONS = new Set(['softmax', 'logSoftmax']);

const pass: LayerHandler = { kind: 'channelwise', check: requireChannelsLast, mapConstants: identity };

const activationLayer: LayerHandler = {
  kind: 'channelwise',
  mapConstants: (node, _w, v) => applyElementwise((x) => (node.layer as any).activation.apply(x), v),
};

const advancedActivation: LayerHandler = {
  kind: 'channelwise',
  mapConstants: (node, _w, v) => applyElementwise((x) => (node.layer as any).call(x, {}), v),
};

const batchNormalization: LayerHandler = {
  kind: 'channelwise',
  check: (node, config) => requireLastAxis(node, config.axis ?? -1),
  mapConstants: (node, ws, v, channels) => {
    const eps = (node.layer as any).epsilon as number;
    const gamma = weightNamed(ws, 'gamma');
    const beta = weightNamed(ws, 'beta');
    const mean = weightNamed(ws, 'moving_mean')!;
    const variance = weightNamed(ws, 'moving_variance')!;
    return v.map((x, k) => {
      const c = channels[k];
      const g = gamma ? gamma.values[c] : 1;
      const b = beta ? beta.values[c] : 0;
      return ((x - mean.values[c]) * g) / Math.sqrt(variance.values[c] + eps) + b;
    });
  },
  pruneChannels: (ws, keep) =>
    ws.map((w) => ({
      name: w.name,
      shape: [keep.length],
      values: Float32Array.from(keep, (c) => w.values[c]),
    })),
};

/**
 * PReLU: `x < 0 ? alpha * x : x`, alpha one entry per input entry (sharedAxes unset: [units], or
 * [h, w, c] after a Conv2D) or shared (size 1) over the axes sharedAxes names. Channel c reads only
 * alpha[..., c] (or alpha[..., 0] when the channel axis is shared): pruning keeps those entries, as
 * BatchNormalization keeps its own; a constant channel stays constant where its alpha entries agree
 * (or where the constant is not negative: PReLU(0) = 0, PReLU(b) = b for a dead unit's bias b >= 0).
 */
function preluAlphaChannels(node: GraphNode): number | undefined {
  const alpha = (node.layer as any)?.alpha;
  const shape: (number | null)[] | undefined = alpha?.shape;
  return shape?.[shape.length - 1] ?? undefined;
}

const prelu: LayerHandler = {
  kind: 'channelwise',
  check: (node, config) => {
    const rank = node.shape.length + 1;
    const shared: unknown[] =
      config.sharedAxes == null
        ? []
        : Array.isArray(config.sharedAxes)
          ? config.sharedAxes
          : [config.sharedAxes];
    const bad = shared.some((a) => !Number.isInteger(a) || (a as number) < 1 || (a as number) > rank - 1);
    const C = node.shape[node.shape.length - 1];
    const alphaC = preluAlphaChannels(node);
    if (bad || (alphaC !== undefined && alphaC !== 1 && alphaC !== C)) {
      throw new Error(
        `surgery: layer '${node.name}' (PReLU) has sharedAxes ${JSON.stringify(config.sharedAxes)}, which surgery ` +
          `cannot follow: tfjs 4.22 shares alpha only over the axes 1 to ${rank - 1} of its input (1 the first after ` +
          `the batch, ${rank - 1} the channels) and ignores a 0 or negative axis. Leave sharedAxes unset (one alpha per ` +
          `entry), or name positive axes (sharedAxes [1, 2] for one alpha per channel of an image), then prune. ${SPARSE_FALLBACK}`,
      );
    }
  },
  mapConstants: (_node, ws, v, channels) => {
    const alpha = weightNamed(ws, 'alpha')!;
    const A = alpha.shape[alpha.shape.length - 1];
    const rows = alpha.values.length / A;
    return v.map((x, k) => {
      if (x >= 0) return x;
      const c = A === 1 ? 0 : channels[k];
      const a = alpha.values[c];
      for (let r = 1; r < rows; r++) if (alpha.values[r * A + c] !== a) return NaN;
      return a * x;
    });
  },
  pruneChannels: (ws, keep) =>
    ws.map((w) => (w.shape[w.shape.length - 1] === 1 ? w : pruneOutChannels(w, keep))),
};

// Zero padding only keeps a channel constant when the constant is itself 0.
const zeroPadding: LayerHandler = {
  kind: 'channelwise',
  check: requireChannelsLast,
  mapConstants: (_n, _w, v) => v.map((x) => (x === 0 ? 0 : NaN)),
};

const unit: LayerHandler = {
  kind: 'unit',
  check: (node, config) => {
    requireChannelsLast(node, config);
    // tfjs 4.22 builds a Conv1D with causal padding but cannot run it (conv1dWithBias throws
    // NotImplementedError), and the other classes refuse it: no output to keep.
    if (config.padding === 'causal') {
      throw new Error(
        `surgery: layer '${node.name}' (${node.className}) uses causal padding, which tfjs cannot compute ` +
          `(a Conv1D throws "not implemented" when applied): pad the sequence with (kernelSize - 1) * dilationRate ` +
          `zeros at its start (a ZeroPadding2D on [1, steps, channels], or in your data) and use padding 'valid'`,
      );
    }
  },
};

// A Conv2DTranspose is a unit layer like Conv2D (one filter per output channel, reading every input
// channel), its kernel's last two axes swapped: [kh, kw, filters, inChannels].
const transposedUnit: LayerHandler = { ...unit, kernelLayout: 'out-in' };

// One 2-D kernel per (channel, multiplier): output channel c * m + j (m the depthMultiplier) reads
// only input channel c, through depthwise_kernel [:, :, c, j]. The m outputs of a channel carry its
// id (see `repeats`): they go with it, and only together, so the multiplier stays m.
const depthwiseConv2d: LayerHandler = {
  kind: 'channelwise',
  check: (node, config) => requireChannelsLast(node, config),
  repeats: (config) => config.depthMultiplier ?? 1,
  outputConstants: (node, ws, inputs, inShape, config) => {
    const kernel = weightNamed(ws, 'depthwise_kernel')!;
    const bias = weightNamed(ws, 'bias');
    const C = inputs.length;
    const m = kernel.shape[kernel.shape.length - 1];
    const G = C * m; // output channels, one 2-D kernel each
    const K = kernel.values.length / G;
    const exact = padsNothing(inShape, config);
    const pre = new Float64Array(G).fill(NaN);
    for (let g = 0; g < G; g++) {
      const k0 = inputs[Math.floor(g / m)];
      let sum = 0;
      let zero = true;
      for (let k = 0; k < K; k++) {
        const v = kernel.values[k * G + g];
        sum += v;
        if (v !== 0) zero = false;
      }
      const b = bias ? bias.values[g] : 0;
      if (zero) pre[g] = b;
      else if (!Number.isNaN(k0) && (exact || k0 === 0)) pre[g] = k0 * sum + b;
    }
    const which: number[] = [];
    for (let g = 0; g < G; g++) if (!Number.isNaN(pre[g])) which.push(g);
    const post = applyElementwise(
      (x) => (node.layer as any).activation.apply(x),
      Float64Array.from(which, (g) => pre[g]),
    );
    const out = new Float64Array(G).fill(NaN);
    which.forEach((g, k) => (out[g] = post[k]));
    return out;
  },
  zeroGroups: (ws, threshold) => {
    const kernel = weightNamed(ws, 'depthwise_kernel')!;
    const G = kernel.shape[kernel.shape.length - 2] * kernel.shape[kernel.shape.length - 1];
    const K = kernel.values.length / G;
    for (let g = 0; g < G; g++) {
      let dead = true;
      for (let k = 0; k < K && dead; k++) if (Math.abs(kernel.values[k * G + g]) > threshold) dead = false;
      if (dead) for (let k = 0; k < K; k++) kernel.values[k * G + g] = 0;
    }
  },
  // `keep` lists output channels, whole groups of m (they share an id): the kernel keeps their
  // input channels, the bias the output channels themselves.
  pruneChannels: (ws, keep) => {
    const kernel = weightNamed(ws, 'depthwise_kernel')!;
    const m = kernel.shape[kernel.shape.length - 1];
    const inputs = keep.filter((g) => g % m === 0).map((g) => g / m);
    return ws.map((w) => (w.name === 'depthwise_kernel' ? pruneInChannels(w, inputs) : pruneVector(w, keep)));
  },
};

const join = (fn: (xs: number[]) => number): LayerHandler => ({ kind: 'join', join: fn });

const REGISTRY: Record<string, LayerHandler> = {
  InputLayer: { kind: 'input' },
  Dense: unit,
  Conv1D: unit,
  Conv2D: unit,
  Conv3D: unit,
  Conv2DTranspose: transposedUnit,
  DepthwiseConv2D: depthwiseConv2d,
  BatchNormalization: batchNormalization,
  Activation: activationLayer,
  ReLU: advancedActivation,
  LeakyReLU: advancedActivation,
  ELU: advancedActivation,
  ThresholdedReLU: advancedActivation,
  PReLU: prelu,
  Softmax: { kind: 'opaque' },
  MaxPooling1D: pass,
  MaxPooling2D: pass,
  AveragePooling1D: pass,
  AveragePooling2D: pass,
  MaxPooling3D: pass,
  AveragePooling3D: pass,
  GlobalAveragePooling1D: pass,
  GlobalAveragePooling2D: pass,
  GlobalMaxPooling1D: pass,
  GlobalMaxPooling2D: pass,
  UpSampling2D: pass,
  Cropping2D: pass,
  ZeroPadding2D: zeroPadding,
  Dropout: pass,
  SpatialDropout1D: pass,
  GaussianNoise: pass,
  GaussianDropout: pass,
  AlphaDropout: pass,
  Flatten: { kind: 'flatten', check: requireChannelsLast },
  Add: join((xs) => xs.reduce((a, b) => a + b, 0)),
  Subtract: join((xs) => xs[0] - xs[1]),
  Multiply: join((xs) => xs.reduce((a, b) => a * b, 1)),
  Average: join((xs) => xs.reduce((a, b) => a + b, 0) / xs.length),
  Maximum: join((xs) => Math.max(...xs)),
  Minimum: join((xs) => Math.min(...xs)),
  Concatenate: { kind: 'concat', check: (node, config) => requireLastAxis(node, config.axis ?? -1) },
};

// What a user can do about a layer class surgery refuses, where a supported equivalent exists.
const REBUILD_ADVICE: Record<string, string> = {
  SeparableConv2D:
    'prune splits a SeparableConv2D of dilation rate 1, channels last, applied once, into the ' +
    'DepthwiseConv2D (no bias, its depthMultiplier) and the 1x1 Conv2D it computes, and prunes those; this one is ' +
    "not such a layer (tfjs 4.22's DepthwiseConv2D ignores a dilationRate). With a dilation rate above 1 it " +
    'computes a Conv2D with m filters per input channel (m its depthMultiplier; its kernel size, strides, ' +
    'padding and dilation; kernel [:, :, c, c * m + j] is its depthwise_kernel [:, :, c, j] and 0 elsewhere) ' +
    "followed by a 1x1 Conv2D (the layer's filters, bias and activation; its pointwise_kernel is the kernel): " +
    'build it as those two layers and prune that.',
  Reshape:
    'surgery follows a Reshape that keeps the channels on the last axis, its last axis a multiple of ' +
    "its input's ([h * w, c] -> [h, w, c], [h, w, c] -> [h * w * c], a gate [c] -> [1, 1, c]); this one " +
    "puts entries of one channel on several (its last axis is not a multiple of its input's), or its " +
    "last axis is -1 and its input's shape not fully known (surgery resolves a -1 from a fully known " +
    'input shape; tfjs 4.22 leaves it unknown in the model). ' +
    'If it reshapes the model input, give the model input that shape instead; ' +
    'to feed a Dense layer, use Flatten, which surgery follows.',
};

/**
 * A Reshape whose last axis is a multiple of its input's moves each channel's entries to the
 * positions of output features `f` with `f % channels` = that channel, as Flatten does (row-major
 * order keeps an entry's index modulo the channel count): `[h * w, c] -> [h, w, c]` keeps every
 * channel where it was, `[h, w, c] -> [h * w * c]` flattens, `[c] -> [1, 1, c]` makes a gate
 * broadcast over an image. Pruning it sets the last entry of its targetShape (see rebuild). A -1
 * in its targetShape is resolved from a fully known input shape (see shapes.ts), so a -1 on the
 * last axis counts as that axis's size, and pruning writes the count in its place (and a -1 on
 * another axis the count it stands for).
 */
const reshape: LayerHandler = { kind: 'flatten' };

/** Whether a Reshape from `inShape` to `node.shape` keeps the channels on the last axis (see {@link reshape}). */
function keepsChannelsLast(node: GraphNode, inShape: (number | null)[] | undefined): boolean {
  const inC = inShape?.[inShape.length - 1];
  const outC = node.shape[node.shape.length - 1];
  return typeof inC === 'number' && typeof outC === 'number' && inC > 0 && outC % inC === 0;
}

/**
 * The handler of a node (`inShape`: its input's shape, without the batch). A layer class surgery
 * does not know is refused by name, saying what to do, or with `unknown: 'keep'` kept whole (an
 * opaque layer); so is a Reshape that moves entries across channels.
 */
export function handlerFor(
  node: GraphNode,
  config: any,
  unknown: UnknownLayers = 'refuse',
  inShape?: (number | null)[],
): LayerHandler {
  if (node.className === 'Reshape' && keepsChannelsLast(node, inShape)) return reshape;
  const h = REGISTRY[node.className];
  if (!h) {
    if (unknown === 'keep') return KEPT_WHOLE;
    const advice = REBUILD_ADVICE[node.className];
    throw new Error(
      `surgery: layer '${node.name}' has class ${node.className}, which surgery does not know how to prune through. ` +
        (advice ? `${advice} ` : 'Rebuild the model from the supported layer classes (below) to prune it. ') +
        `Or keep such layers whole and prune the rest: prune(model, { unknownLayers: 'keep' }) ` +
        `keeps every channel they read (in the normprune CLI: --unknown-layers keep). ` +
        `${SPARSE_FALLBACK}. Supported: ${Object.keys(REGISTRY).join(', ')}`,
    );
  }
  if (node.className === 'Activation' && CROSS_CHANNEL_ACTIVATIONS.has(config.activation))
    return REGISTRY.Softmax;
  h.check?.(node, config);
  return h;
}

/** Whether the layer class has a handler. */
export function isSupported(className: string): boolean {
  return className in REGISTRY;
}

/**
 * A Dense or convolution kernel viewed as `[K, cin, cout]` (K = the kernel's positions: k, kh * kw
 * or kd * kh * kw; 1 for Dense; a Conv2DTranspose's `[kh, kw, cout, cin]` with its last two axes
 * swapped), with the activation and the facts surgery needs about it.
 */
export interface UnitView {
  K: number;
  cin: number;
  cout: number;
  /** The kernel as `[..., cin, cout]`, whatever the layer's own order. */
  kernel: HostWeight;
  /** A kernel of this view's order (`[..., cin, cout]`, pruned or not) in the layer's own order. */
  toLayer(kernel: HostWeight): HostWeight;
  bias: HostWeight | undefined;
  /** `act` applied to pre-activations. */
  activate(values: Float64Array): Float64Array;
  /** Whether the activation mixes units (softmax). */
  crossChannel: boolean;
  /**
   * Whether a constant input channel contributes exactly `const * sum(kernel slice)` at every
   * output position: true for Dense and 'valid' convolutions, and for 'same' ones that pad nothing;
   * for a Conv2DTranspose only with a 1x1 kernel and strides 1 (otherwise an output position
   * receives as many kernel taps as input positions overlap it: fewer at the borders, and with
   * strides above 1 a number that varies with the position).
   */
  exactFold: boolean;
  /** Why a constant other than 0 does not fold when `exactFold` is false, as a block reason says it. */
  foldLimit: string;
}

/** Torch-Pruning's get_out_channels / get_in_channels for unit layers. */
export function getOutChannels(view: UnitView): number {
  return view.cout;
}
/** See {@link getOutChannels}. */
export function getInChannels(view: UnitView): number {
  return view.cin;
}

function samePadsNothing(inSize: number | null, k: number, s: number, d: number): boolean {
  if (k === 1) return true;
  if (inSize == null) return false;
  const out = Math.ceil(inSize / s);
  return (out - 1) * s + (k - 1) * d + 1 - inSize <= 0;
}

/**
 * Whether a convolution of any rank (Conv1D/2D/3D, DepthwiseConv2D; channels last) pads nothing on
 * this input, so that a constant input channel gives the same value at every output position:
 * 'valid' never pads; 'same' pads where the kernel overhangs the input.
 */
function padsNothing(inShape: (number | null)[], config: any): boolean {
  if (config.padding !== 'same') return true;
  const rank = inShape.length - 1;
  const axes = (v: unknown): number[] =>
    Array.isArray(v) ? (v.length === 1 ? Array(rank).fill(v[0]) : v) : Array(rank).fill(v ?? 1);
  const ks = axes(config.kernelSize);
  const st = axes(config.strides);
  const dl = axes(config.dilationRate);
  for (let a = 0; a < rank; a++) if (!samePadsNothing(inShape[a], ks[a], st[a], dl[a])) return false;
  return true;
}

/** A kernel size or strides as `3x3` (a config holds an array, or one number for every axis). */
const sizes = (v: unknown): string => (Array.isArray(v) ? v.join('x') : String(v ?? 1));

/**
 * Whether a Conv2DTranspose adds each input position into exactly one output position, through
 * one kernel tap: a 1x1 kernel with strides 1, whatever the padding.
 */
function transposeFoldsExactly(config: any): boolean {
  const ones = (v: unknown): boolean => (Array.isArray(v) ? v : [v ?? 1]).every((x) => x === 1);
  return ones(config.kernelSize) && ones(config.strides);
}

/**
 * The unit view of a Dense, Conv1D/2D/3D or Conv2DTranspose node (`inShape`: its input shape
 * without batch; `layout`: its handler's `kernelLayout`).
 */
export function unitView(
  node: GraphNode,
  weights: HostWeight[],
  config: any,
  inShape: (number | null)[],
  layout: LayerHandler['kernelLayout'] = 'in-out',
): UnitView {
  const own = weightNamed(weights, 'kernel');
  if (!own) throw new Error(`surgery: layer '${node.name}' has no kernel`);
  const transposed = layout === 'out-in';
  const kernel = transposed ? swapLastAxes(own) : own;
  const shape = kernel.shape;
  const cin = shape[shape.length - 2];
  const cout = shape[shape.length - 1];
  const K = shape.slice(0, -2).reduce((a, b) => a * b, 1);
  const exactFold = transposed
    ? transposeFoldsExactly(config)
    : node.className === 'Dense' || padsNothing(inShape, config);
  const foldLimit = transposed
    ? `its transposed convolution (kernel ${sizes(config.kernelSize)}, strides ${sizes(config.strides)}) ` +
      'adds a different number of kernel taps at different output positions'
    : `its '${config.padding}' zero padding would make the border outputs differ`;
  const act = (node.layer as any).activation;
  return {
    K,
    cin,
    cout,
    kernel,
    toLayer: transposed ? swapLastAxes : (w) => w,
    bias: weightNamed(weights, 'bias'),
    activate: (v) => applyElementwise((x) => act.apply(x), v),
    crossChannel: CROSS_CHANNEL_ACTIVATIONS.has(config.activation),
    exactFold,
    foldLimit,
  };
}

/**
 * A weight with its last two axes swapped (`[..., a, b]` -> `[..., b, a]`): a Conv2DTranspose's
 * `[kh, kw, cout, cin]` kernel as `[kh, kw, cin, cout]`, and back (it is its own inverse).
 */
export function swapLastAxes(w: HostWeight): HostWeight {
  const s = w.shape;
  const a = s[s.length - 2];
  const b = s[s.length - 1];
  const ab = a * b;
  const out = new Float32Array(w.values.length);
  for (let base = 0; base < out.length; base += ab)
    for (let i = 0; i < a; i++)
      for (let j = 0; j < b; j++) out[base + j * a + i] = w.values[base + i * b + j];
  return { name: w.name, shape: [...s.slice(0, -2), b, a], values: out };
}

/** Torch-Pruning's prune_out_channels: keep only output units `keep` (kernel last axis, bias). */
export function pruneOutChannels(kernel: HostWeight, keep: number[]): HostWeight {
  const cout = kernel.shape[kernel.shape.length - 1];
  const rows = kernel.values.length / cout;
  const out = new Float32Array(rows * keep.length);
  for (let r = 0; r < rows; r++) {
    const src = r * cout;
    const dst = r * keep.length;
    for (let j = 0; j < keep.length; j++) out[dst + j] = kernel.values[src + keep[j]];
  }
  return { name: kernel.name, shape: [...kernel.shape.slice(0, -1), keep.length], values: out };
}

/** Torch-Pruning's prune_in_channels: keep only input channels `keep` (kernel second-to-last axis). */
export function pruneInChannels(kernel: HostWeight, keep: number[]): HostWeight {
  const s = kernel.shape;
  const cin = s[s.length - 2];
  const cout = s[s.length - 1];
  const K = kernel.values.length / (cin * cout);
  const out = new Float32Array(K * keep.length * cout);
  for (let k = 0; k < K; k++) {
    for (let i = 0; i < keep.length; i++) {
      const src = (k * cin + keep[i]) * cout;
      out.set(kernel.values.subarray(src, src + cout), (k * keep.length + i) * cout);
    }
  }
  return { name: kernel.name, shape: [...s.slice(0, -2), keep.length, cout], values: out };
}

/** Slices a per-unit vector (a bias). */
export function pruneVector(w: HostWeight, keep: number[]): HostWeight {
  return { name: w.name, shape: [keep.length], values: Float32Array.from(keep, (j) => w.values[j]) };
}
