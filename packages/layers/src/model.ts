import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  type ConvGranularity,
  DEFAULT_EPSILON,
  DECOMPOSED_KINDS,
  decomposedKind,
  type DecomposedKind,
  type DenseGranularity,
  checkEpsilon,
  checkOneOf,
  describeValue,
  type Granularity,
  effectivePartKernel,
  exactMagnitude,
} from './common.js';
import { DecomposedConv1D } from './decomposed-conv1d.js';
import { DecomposedConv2D } from './decomposed-conv2d.js';
import { DecomposedConv2DTranspose } from './decomposed-conv2d-transpose.js';
import { DecomposedDepthwiseConv2D } from './decomposed-depthwise-conv2d.js';
import { DecomposedSeparableConv2D } from './decomposed-separable-conv2d.js';
import { DecomposedDense } from './decomposed-dense.js';
import { firstNonFinite, NonFiniteWeightError, readFiniteWeight } from './errors.js';
import { optionsProblem } from './options.js';
import { ownCalls } from './calls.js';
import { modelConfig } from './config.js';

/** The keys of {@link DecomposeOptions} and of its `granularity`. */
const DECOMPOSE_OPTIONS = ['granularity', 'include', 'epsilon'] as const;
const GRANULARITY_KEYS = DECOMPOSED_KINDS;

/** Options of {@link decompose}. */
export interface DecomposeOptions {
  /**
   * Granularity of the new layers. Default: `{ dense: 'output', conv1d: 'kernel', conv2d: 'kernel',
   * conv2dTranspose: 'kernel', depthwiseConv2d: 'kernel', separableConv2d: 'kernel' }`.
   */
  granularity?: {
    /** Granularity of the new DecomposedDense layers. Default `'output'`. */
    dense?: DenseGranularity;
    /** Granularity of the new DecomposedConv1D layers. Default `'kernel'`. */
    conv1d?: ConvGranularity;
    /** Granularity of the new DecomposedConv2D layers. Default `'kernel'`. */
    conv2d?: ConvGranularity;
    /** Granularity of the new DecomposedConv2DTranspose layers. Default `'kernel'`. */
    conv2dTranspose?: ConvGranularity;
    /** Granularity of the new DecomposedDepthwiseConv2D layers. Default `'kernel'` (`'filter'`: one per input channel). */
    depthwiseConv2d?: ConvGranularity;
    /**
     * Granularity of the new DecomposedSeparableConv2D layers, for both their kernels. Default
     * `'kernel'` (`'filter'`: one per input channel of the depthwise kernel, one per output filter
     * of the pointwise one).
     */
    separableConv2d?: ConvGranularity;
  };
  /**
   * Which Dense / Conv1D / Conv2D / Conv2DTranspose / DepthwiseConv2D / SeparableConv2D layers to decompose: their
   * names, or a predicate. Default: all of them.
   */
  include?: string[] | ((layer: tfl.layers.Layer) => boolean);
  /** `epsilon` of the new layers. Default 1e-6. */
  epsilon?: number;
}

type LayerEntry = { className: string; name?: string; config: tf.serialization.ConfigDict };

/**
 * A decomposed layer: a {@link DecomposedDense}, {@link DecomposedConv1D}, {@link DecomposedConv2D},
 * {@link DecomposedConv2DTranspose}, {@link DecomposedDepthwiseConv2D} or {@link DecomposedSeparableConv2D}.
 */
export type DecomposedLayer =
  | DecomposedDense
  | DecomposedConv1D
  | DecomposedConv2D
  | DecomposedConv2DTranspose
  | DecomposedDepthwiseConv2D
  | DecomposedSeparableConv2D;

/** For each plain class decompose() replaces: its decomposed class and kind. */
const DECOMPOSABLE: Record<string, { className: string; kind: DecomposedKind }> = {
  Dense: { className: DecomposedDense.className, kind: 'dense' },
  Conv1D: { className: DecomposedConv1D.className, kind: 'conv1d' },
  Conv2D: { className: DecomposedConv2D.className, kind: 'conv2d' },
  Conv2DTranspose: { className: DecomposedConv2DTranspose.className, kind: 'conv2dTranspose' },
  DepthwiseConv2D: { className: DecomposedDepthwiseConv2D.className, kind: 'depthwiseConv2d' },
  SeparableConv2D: { className: DecomposedSeparableConv2D.className, kind: 'separableConv2d' },
};

/** The plain class of each kind of decomposed layer (what fold() makes of it). */
const PLAIN_CLASS: Record<DecomposedKind, string> = {
  dense: 'Dense',
  conv1d: 'Conv1D',
  conv2d: 'Conv2D',
  conv2dTranspose: 'Conv2DTranspose',
  depthwiseConv2d: 'DepthwiseConv2D',
  separableConv2d: 'SeparableConv2D',
};

const isDecomposable = (layer: tfl.layers.Layer): boolean =>
  Object.hasOwn(DECOMPOSABLE, layer.getClassName());

/**
 * Whether `layer` is a {@link DecomposedDense}, {@link DecomposedConv1D}, {@link DecomposedConv2D},
 * {@link DecomposedConv2DTranspose}, {@link DecomposedDepthwiseConv2D} or {@link DecomposedSeparableConv2D}, from this or any other copy of the package (ESM and CommonJS builds, two installs): it checks a
 * brand, not `instanceof`.
 */
export function isDecomposed(layer: tfl.layers.Layer): layer is DecomposedLayer {
  return decomposedKind(layer) != null;
}

function isDecomposedDense(layer: tfl.layers.Layer): layer is DecomposedDense {
  return decomposedKind(layer) === 'dense';
}

/**
 * `model.getConfig()` with every layer entry passed through `rewrite`,
 * recursing into nested models (a model used as a layer).
 */
function rewriteConfig(
  model: tfl.LayersModel,
  rewrite: (layer: tfl.layers.Layer, entry: LayerEntry) => LayerEntry | null,
): { layers: LayerEntry[] } & tf.serialization.ConfigDict {
  const config = modelConfig(model) as {
    layers: LayerEntry[];
  } & tf.serialization.ConfigDict;
  config.layers = config.layers.map((entry) => {
    const layer = model.getLayer(entry.config.name as string);
    if (layer instanceof tfl.LayersModel) return { ...entry, config: rewriteConfig(layer, rewrite) };
    return rewrite(layer, entry) ?? entry;
  });
  return config;
}

/** Copies weights layer by layer (by name, recursing into nested models), through `weightsOf` when it has an answer. */
function copyWeights(
  from: tfl.LayersModel,
  to: tfl.LayersModel,
  weightsOf: (oldLayer: tfl.layers.Layer, newLayer: tfl.layers.Layer) => tf.Tensor[] | null,
): void {
  for (const newLayer of to.layers) {
    const oldLayer = from.getLayer(newLayer.name);
    if (newLayer instanceof tfl.LayersModel) {
      copyWeights(oldLayer as tfl.LayersModel, newLayer, weightsOf);
      keepFrozen(oldLayer as tfl.LayersModel, newLayer);
      continue;
    }
    if (newLayer.weights.length === 0) continue;
    const weights = weightsOf(oldLayer, newLayer);
    if (weights == null) {
      assignWeights(newLayer, oldLayer.getWeights());
    } else {
      assignWeights(newLayer, weights);
      tf.dispose(weights);
    }
  }
}

/**
 * Freezes `to` when `from` is frozen. A model's `trainable` flag is not in its config (a layer's
 * is), so a nested model frozen as a whole (`base.trainable = false`, the transfer-learning idiom)
 * would come back trainable from `fromConfig`, and with it every weight of its layers.
 */
function keepFrozen(from: tfl.LayersModel, to: tfl.LayersModel): void {
  if (!from.trainable) to.trainable = false;
}

/**
 * Writes `values` into `layer`'s weights as they are. `setWeights` would also
 * apply each weight's constraint (tfjs applies a `kernelConstraint` or
 * `biasConstraint` on every write), and a trained or freshly initialised
 * weight need not satisfy it (tfjs applies no constraint while training):
 * a copy through `setWeights` would change the model's outputs.
 */
export function assignWeights(layer: tfl.layers.Layer, values: tf.Tensor[]): void {
  const vars = layer.weights;
  if (values.length !== vars.length)
    throw new Error(`layer '${layer.name}' has ${vars.length} weights, got ${values.length} values`);
  vars.forEach((w, i) => {
    if (w.shape.join(',') !== values[i].shape.join(','))
      throw new Error(
        `layer '${layer.name}': weight '${w.originalName}' has shape [${w.shape}], got [${values[i].shape}]`,
      );
  });
  vars.forEach((w, i) => (w.read() as tf.Variable).assign(values[i]));
}

/**
 * Writes the values of the weights `from` into `layer`'s as they are ({@link assignWeights}), each
 * as trainable as the weight it copies. @internal
 */
export function assignWeightsOf(layer: tfl.layers.Layer, from: readonly tfl.LayerVariable[]): void {
  assignWeights(
    layer,
    from.map((w) => w.read()),
  );
  layer.weights.forEach((w, i) => (w.trainable = from[i].trainable));
}

/**
 * Rebuilds `model` from its own config with some layer entries rewritten,
 * then copies the weights. Going through the config keeps every connection
 * of a functional graph (branches, merges, shared layers, nested models)
 * without walking it ourselves.
 */
function rebuild(
  model: tfl.LayersModel,
  rewrite: (layer: tfl.layers.Layer, entry: LayerEntry) => LayerEntry | null,
  weightsOf: (oldLayer: tfl.layers.Layer, newLayer: tfl.layers.Layer) => tf.Tensor[] | null,
): tfl.LayersModel {
  const config = rewriteConfig(model, rewrite);
  const rebuilt = modelFromConfig(model instanceof tfl.Sequential, config);
  copyWeights(model, rebuilt, weightsOf);
  keepModelState(model, rebuilt);
  return rebuilt;
}

/**
 * A Sequential (or functional model) built from `config` with its weights left uninitialised
 * (tfjs's fastWeightInit), for a copy whose every weight is written next. @internal
 */
export function modelFromConfig(sequential: boolean, config: object): tfl.LayersModel {
  const cls = sequential ? tfl.Sequential : tfl.LayersModel;
  return disposesEveryCall((cls as any).fromConfig(cls, config, undefined, true) as tfl.LayersModel);
}

/**
 * Makes `model.dispose()` free the weights of the layers and nested models that `model` applies
 * more than once, and returns `model`. tfjs 4.22 counts a reference to a layer per call (a nested
 * model's count starts at 1), but a model's `dispose()` disposes each of its layers once (a
 * nested model twice), so a layer or nested model applied k times kept a count of k - 1 and its
 * weights stayed allocated for good (2 tensors for a block of one Dense applied twice). `model`
 * is a copy just built, so every call of its layers is its own: once tfjs's `dispose()` has freed
 * the model, each such layer is disposed k - 1 more times by its own `dispose()`. A layer the
 * caller has applied in another model since keeps its weights while that model holds it: tfjs
 * disposes a nested model twice for each model applying it, so such a nested model is disposed
 * once less per call of the other models. For a model built from a config or a file by the
 * caller alone (decompose, fold, unnest, surgery's loadSparseModel). @internal
 */
export function disposesEveryCall(model: tfl.LayersModel): tfl.LayersModel {
  const extra: { layer: tfl.layers.Layer; calls: number; nodes: number }[] = [];
  const visit = (m: tfl.LayersModel) => {
    for (const layer of m.layers) {
      const nested = layer instanceof tfl.LayersModel;
      // A nested model holds one node of its own, and tfjs disposes it twice.
      const calls = layer.inboundNodes.length - (nested ? 2 : 1);
      if (calls > 0) extra.push({ layer, calls, nodes: layer.inboundNodes.length });
      if (nested) visit(layer);
    }
  };
  visit(model);
  if (extra.length === 0) return model;
  const dispose = model.dispose.bind(model);
  model.dispose = () => {
    const result = dispose();
    if (result.refCountAfterDispose !== 0) return result;
    // In order: a nested model frees its own layers before their extra calls are disposed.
    for (const { layer, calls, nodes } of extra) {
      const elsewhere = layer instanceof tfl.LayersModel ? layer.inboundNodes.length - nodes : 0;
      for (let i = 0; i < calls - elsewhere; i++) {
        const after = layer.dispose();
        result.numDisposedVariables += after.numDisposedVariables;
        if (after.refCountAfterDispose === 0) break;
      }
    }
    return result;
  };
  return model;
}

/**
 * What a copy built from `from`'s config does not get from it: `from` frozen as a whole (its
 * `trainable` flag is not in its config) and the user's metadata (labels, preprocessing, which
 * tfjs saves with the model: a copy, as tfjs takes JSON only). @internal
 */
export function keepModelState(from: tfl.LayersModel, to: tfl.LayersModel): void {
  keepFrozen(from, to);
  const metadata = from.getUserDefinedMetadata();
  if (metadata !== undefined) to.setUserDefinedMetadata(JSON.parse(JSON.stringify(metadata)));
}

/**
 * A new model in which every Dense, Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D and SeparableConv2D layer (or those `include`
 * selects) is a {@link DecomposedDense} / {@link DecomposedConv1D} / {@link DecomposedConv2D} /
 * {@link DecomposedConv2DTranspose} / {@link DecomposedDepthwiseConv2D} / {@link DecomposedSeparableConv2D} with the
 * same name and config, `direction = kernel` and, for each group of the
 * kernel, `magnitude = sqrt(||group||^2 + epsilon^2)` (0 for an all-zero
 * group): the effective kernel is then the original kernel, and the outputs
 * equal the original's to float rounding. Works on Sequential and functional models, branching graphs
 * and nested models (a model used as a layer) included; the original model
 * is left untouched (weights are copied as they are: no constraint is applied).
 * The new model is not compiled.
 *
 * Throws, naming the function, for a `model` that is not a LayersModel, a
 * `granularity` that is not an object or names an unknown granularity, an
 * `include` that is neither a list of names nor a predicate, an `include`
 * name that is not a Dense, Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D or SeparableConv2D layer of the model, a selected
 * convolution with `dataFormat: 'channelsFirst'`, a selected Conv1D with `padding: 'causal'`
 * (tfjs 4.22 cannot apply it), a selected DepthwiseConv2D with a dilationRate other than 1 (tfjs
 * 4.22 ignores it), and a selected layer holding a
 * NaN or an infinity (naming the weight and the first such entry).
 *
 * Warns (`console.warn`) about a selected layer whose every group is zero (it
 * could not train), and about wrapper layers (`TimeDistributed`,
 * `Bidirectional`) holding a Dense, Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D or SeparableConv2D: those stay plain, since only the
 * model's own layers and those of nested models are replaced, unless `include`
 * leaves them out (a list of names always does; a predicate does when it
 * returns false for the wrapped layer).
 *
 * ```ts
 * const decomposed = decompose(model, { granularity: { dense: 'output', conv2d: 'filter' } });
 * // Train `decomposed` with a proximal optimiser of @normprune/prox, then:
 * const trained = fold(decomposed); // plain layers again, loadable by tfjs alone
 * decomposed.dispose();
 * ```
 */
export function decompose(model: tfl.LayersModel, options: DecomposeOptions = {}): tfl.LayersModel {
  checkModel(model, 'decompose');
  const problem = optionsProblem(options, DECOMPOSE_OPTIONS, "{ granularity: { dense: 'input' } }");
  if (problem) throw new Error(`decompose: ${problem}`);
  const g = options.granularity;
  if (g !== undefined && (g === null || typeof g !== 'object' || Array.isArray(g)))
    throw new Error(
      `decompose: granularity must be an object such as { dense: 'input', conv2d: 'filter' }, got ${describeValue(g)}`,
    );
  const gProblem = optionsProblem(g, GRANULARITY_KEYS, "{ dense: 'input', conv2d: 'filter' }");
  if (gProblem) throw new Error(`decompose: granularity: ${gProblem}`);
  // Checked even where the model has no layer of that kind: a typo should not wait for one.
  const granularityOf: Record<DecomposedKind, Granularity> = {
    dense: checkOneOf('decompose: granularity.dense', options.granularity?.dense ?? 'output', [
      'output',
      'input',
    ] as const),
    conv1d: checkOneOf('decompose: granularity.conv1d', options.granularity?.conv1d ?? 'kernel', [
      'kernel',
      'filter',
    ] as const),
    conv2d: checkOneOf('decompose: granularity.conv2d', options.granularity?.conv2d ?? 'kernel', [
      'kernel',
      'filter',
    ] as const),
    conv2dTranspose: checkOneOf(
      'decompose: granularity.conv2dTranspose',
      options.granularity?.conv2dTranspose ?? 'kernel',
      ['kernel', 'filter'] as const,
    ),
    depthwiseConv2d: checkOneOf(
      'decompose: granularity.depthwiseConv2d',
      options.granularity?.depthwiseConv2d ?? 'kernel',
      ['kernel', 'filter'] as const,
    ),
    separableConv2d: checkOneOf(
      'decompose: granularity.separableConv2d',
      options.granularity?.separableConv2d ?? 'kernel',
      ['kernel', 'filter'] as const,
    ),
  };
  const epsilon = checkEpsilon('decompose:', options.epsilon ?? DEFAULT_EPSILON);
  const include = options.include;
  if (
    include != null &&
    typeof include !== 'function' &&
    !(Array.isArray(include) && include.every((n) => typeof n === 'string'))
  )
    throw new Error(
      `decompose: include must be a list of layer names or a predicate (layer) => boolean, got ${describeValue(include)}`,
    );
  // A name in `include` is a layer's name (every layer of that name) or its path through nested
  // models, as magnitudes() reports it ('blockA/fc': that one only).
  const included = new Set<tfl.layers.Layer>();
  if (Array.isArray(include)) {
    const all = layerPaths(model);
    for (const name of include) {
      const layers = all.filter((l) => l.path === name || l.layer.name === name).map((l) => l.layer);
      if (layers.length === 0) {
        const wrapper = wrappedLayers(model).find((w) => w.inner.name === name);
        throw new Error(
          wrapper == null
            ? `decompose: include names layer '${name}', which model '${model.name}' does not have`
            : `decompose: include names layer '${name}', which is inside the ${wrapper.chain} layer '${wrapper.path}'; ` +
                `decompose() does not reach into wrapper layers` +
                (wrapper.inner.getClassName() === 'Dense' ? `. ${DENSE_HINT}` : ''),
        );
      }
      for (const layer of layers) {
        if (!isDecomposable(layer)) {
          throw new Error(
            `decompose: include names layer '${name}', a ${layer.getClassName()}; only Dense, Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D and SeparableConv2D layers can be decomposed`,
          );
        }
        included.add(layer);
      }
    }
  }
  const selected = (layer: tfl.layers.Layer): boolean => {
    if (!isDecomposable(layer)) return false;
    if (include == null) return true;
    return Array.isArray(include) ? included.has(layer) : include(layer);
  };
  const chosen = new Set(
    layerPaths(model)
      .filter((l) => selected(l.layer))
      .map((l) => l.path),
  );
  for (const { path, layer } of layerPaths(model)) if (selected(layer)) checkFinite(layer, path);
  const decomposed = rebuild(
    model,
    (layer, entry) => {
      if (!selected(layer)) return null;
      const cls = layer.getClassName();
      const leaveOut = `Leave it out with the include option (e.g. include: (layer) => layer.name !== '${layer.name}')`;
      if (entry.config.dataFormat === 'channelsFirst') {
        throw new Error(
          `decompose: ${cls} layer '${layer.name}' uses dataFormat 'channelsFirst'; only 'channelsLast' is supported. ` +
            `${leaveOut}, or rebuild it with channelsLast`,
        );
      }
      if (entry.config.padding === 'causal') {
        throw new Error(
          `decompose: ${cls} layer '${layer.name}' uses padding 'causal', which tfjs 4.22 cannot apply ` +
            `(a Conv1D throws "not implemented" when called). Pad the sequence with (kernelSize - 1) * dilationRate ` +
            `zeros at its start and use padding 'valid', or ${leaveOut.charAt(0).toLowerCase()}${leaveOut.slice(1)}`,
        );
      }
      const dilation = entry.config.dilationRate;
      if (
        cls === 'DepthwiseConv2D' &&
        dilation != null &&
        (Array.isArray(dilation) ? dilation : [dilation]).some((d) => d !== 1)
      ) {
        throw new Error(
          `decompose: DepthwiseConv2D layer '${layer.name}' has dilationRate ${JSON.stringify(dilation)}, which ` +
            `tfjs 4.22's DepthwiseConv2D ignores (it computes dilation 1); a DecomposedDepthwiseConv2D supports ` +
            `dilationRate 1 only. Rebuild it with dilationRate 1 (what tfjs computes), or ${leaveOut.charAt(0).toLowerCase()}${leaveOut.slice(1)}`,
        );
      }
      const { className, kind } = DECOMPOSABLE[cls];
      return { ...entry, className, config: { ...entry.config, granularity: granularityOf[kind], epsilon } };
    },
    (oldLayer, newLayer) => {
      if (!isDecomposed(newLayer) || isDecomposed(oldLayer)) return null;
      // The plain layer's kernels (a SeparableConv2D's depthwise and pointwise ones), then its bias.
      const plain = oldLayer.getWeights();
      const parts = newLayer.parts();
      return [
        ...parts.flatMap((p, i) => [
          plain[i].clone(),
          exactMagnitude(plain[i], p.normAxes, p.magnitude.shape as number[], newLayer.epsilon),
        ]),
        ...plain.slice(parts.length).map((t) => t.clone()),
      ];
    },
  );
  for (const { path, layer } of layerPaths(decomposed)) {
    if (!chosen.has(path) || !isDecomposed(layer)) continue;
    const parts = layer.parts().map((p) => ({ p, g: p.magnitude.read().dataSync() }));
    // A group norm past sqrt(float32 max), about 1.8e19, overflows its sum of squares.
    const overflow = parts
      .map(({ p, g }) => ({ p, bad: firstNonFinite(g, p.magnitude.shape as number[]) }))
      .find((b) => b.bad != null);
    if (overflow) {
      const { p, bad } = overflow;
      decomposed.dispose();
      throw new NonFiniteWeightError(
        {
          code: 'overflow',
          layer: path,
          className: layer.getClassName(),
          weight: p.magnitude.originalName,
          ...bad!,
        },
        'decompose',
        'its magnitude would be infinite and its outputs NaN. The model has diverged; ' +
          'restore a checkpoint or retrain it with a lower learning rate, then decompose',
      );
    }
    // Every group zero (a zero-initialised kernel): a zero direction gets no gradient, so the layer
    // could never leave 0. A few zero groups are pruned ones, and stay zero by design.
    const zero = parts.find(({ g }) => g.length > 0 && g.every((v) => v === 0));
    if (zero)
      console.warn(
        `decompose: every group of layer '${path}'${zero.p.name == null ? '' : ` (of its ${zero.p.name} kernel)`} ` +
          'is zero (a zero-initialised kernel?): a decomposed ' +
          'layer cannot grow a zero group back (its direction gets no gradient), so this layer will not ' +
          'train. Initialise its kernel randomly (e.g. glorotUniform) before decompose, or leave it out with include',
      );
  }
  // tfjs 4.22 computes a dilated convolution but has no gradient for it (conv2d's gradient throws
  // "dilation rates greater than 1 are not yet supported in gradients"): such a decomposed layer
  // gives the same outputs, and fold() gives it back, but the first training step throws inside tfjs.
  const dilated = layerPaths(decomposed).filter(
    ({ path, layer }) =>
      chosen.has(path) &&
      (layer instanceof DecomposedConv1D ||
        layer instanceof DecomposedConv2D ||
        layer instanceof DecomposedSeparableConv2D) &&
      layer.dilationRate.some((d) => d > 1),
  );
  if (dilated.length > 0)
    console.warn(
      `decompose: ${dilated
        .map(
          ({ path, layer }) =>
            `'${path}' (${layer.getClassName()}, dilationRate ${JSON.stringify((layer as DecomposedConv2D).dilationRate)})`,
        )
        .join(
          ', ',
        )} cannot be trained: tfjs 4.22 has no gradient for a convolution of dilation rate above 1 ` +
        '(training throws "dilation rates greater than 1 are not yet supported in gradients"). Rebuild ' +
        `${dilated.length === 1 ? 'it' : 'them'} with dilationRate 1 (a kernelSize of (kernelSize - 1) * dilationRate + 1 ` +
        'covers the same span), or leave it out with include and freeze it (trainable = false; tfjs cannot train a ' +
        'plain dilated layer either, nor any layer before it)',
    );
  // Wrappers (TimeDistributed, Bidirectional) are not Dense / Conv1D / Conv2D / Conv2DTranspose / DepthwiseConv2D / SeparableConv2D themselves: whatever they hold
  // stays plain, and magnitudes() would list nothing for it. Say so, unless include left it out.
  const plain = wrappedLayers(model).filter(
    (w) => include == null || (typeof include === 'function' && include(w.inner)),
  );
  if (plain.length > 0)
    console.warn(
      `decompose: ${plain.length === 1 ? 'a wrapper layer holds' : `${plain.length} wrapper layers hold`} a ` +
        `Dense, Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D or SeparableConv2D that stays plain: ${plain
          .map((w) => `'${w.path}' (${w.chain} of ${w.inner.getClassName()} '${w.inner.name}')`)
          .join(
            ', ',
          )}. decompose() replaces only the Dense, Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D and SeparableConv2D layers of the model and of its nested ` +
        `models, not a layer inside a wrapper, so magnitudes() does not list it and the proximal optimisers do not ` +
        `prune it. ${plain.some((w) => w.inner.getClassName() === 'Dense') ? `${DENSE_HINT}. ` : ''}` +
        `Leave it out with include to silence this warning`,
    );
  // A layer decomposed already is kept as it is: the granularity asked for here applies to plain
  // Dense / Conv1D / Conv2D / Conv2DTranspose / DepthwiseConv2D / SeparableConv2D layers only. Said where it differs, unless include chose the layers (the
  // two-call idiom, one granularity per call, leaves the other call's layers out on purpose).
  if (include == null) {
    const kept = layerPaths(model).filter(({ layer }) => {
      if (!isDecomposed(layer)) return false;
      const asked = options.granularity?.[decomposedKind(layer)!];
      return asked !== undefined && asked !== layer.granularity;
    });
    if (kept.length > 0)
      console.warn(
        `decompose: ${kept
          .map(
            ({ path, layer }) =>
              `'${path}' (${layer.getClassName()}) keeps its granularity '${(layer as DecomposedDense).granularity}', ` +
              `not '${granularityOf[decomposedKind(layer)!]}'`,
          )
          .join(', ')}: ${kept.length === 1 ? 'it is' : 'they are'} decomposed already, and decompose() ` +
          'replaces only plain Dense, Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D and SeparableConv2D layers. To decompose a layer anew at another granularity, ' +
          'fold() the model first (decompose(fold(model), { granularity }))',
      );
  }
  return decomposed;
}

/**
 * Throws for a decomposed layer inside a wrapper (a `TimeDistributed(decomposedDense(...))` built
 * by hand): `magnitudes()` would not list it, so nothing would penalise or count it, and `fold()`
 * would leave it decomposed, a model plain tfjs cannot load.
 */
function refuseWrappedDecomposed(model: tfl.LayersModel, who: string): void {
  const wrapped = wrappedLayers(model, true);
  if (wrapped.length === 0) return;
  const w = wrapped[0];
  throw new Error(
    `${who}: layer '${w.path}' (${w.chain}) wraps the decomposed layer '${w.inner.name}' ` +
      `(${w.inner.getClassName()})${wrapped.length > 1 ? ` (and ${wrapped.length - 1} more)` : ''}: a decomposed ` +
      'layer inside a wrapper is not supported (its magnitudes would go unpenalised and uncounted, and fold() ' +
      `could not make it plain). ${w.inner.getClassName() === 'DecomposedDense' ? `${DENSE_HINT}, and decompose it. ` : ''}` +
      'Otherwise keep the layer inside the wrapper plain',
  );
}

const DENSE_HINT =
  'A TimeDistributed(Dense) computes what a Dense applied to the same input does (a Dense acts on the last ' +
  'axis of any rank), so build the model with the Dense itself to decompose it';

/** One entry of {@link wrappedLayers}. */
interface WrappedLayer {
  /** The wrapper's path (see {@link layerPaths}). */
  path: string;
  /** The wrappers' classes, outermost first (`TimeDistributed`, `TimeDistributed of TimeDistributed`). */
  chain: string;
  /** The Dense, Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D or SeparableConv2D inside. */
  inner: tfl.layers.Layer;
}

/**
 * The wrapper layers of `model` (nested models included) that hold a plain
 * Dense, Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D or SeparableConv2D (a decomposed layer when `decomposed`), however deeply
 * wrapped: a wrapper keeps the layer it wraps in `layer` (tfjs-layers'
 * `Wrapper`: `TimeDistributed`, `Bidirectional`).
 */
function wrappedLayers(model: tfl.LayersModel, decomposed = false): WrappedLayer[] {
  const out: WrappedLayer[] = [];
  for (const { path, layer } of layerPaths(model)) {
    const chain: string[] = [];
    let inner = layer;
    for (;;) {
      const next = (inner as { layer?: unknown }).layer;
      if (!(next instanceof tfl.layers.Layer)) break;
      chain.push(inner.getClassName());
      inner = next;
    }
    if (chain.length > 0 && (decomposed ? isDecomposed(inner) : isDecomposable(inner)))
      out.push({ path, chain: chain.join(' of '), inner });
  }
  return out;
}

/**
 * The inverse of {@link decompose}: a new model in which every decomposed
 * layer is a plain Dense / Conv1D / Conv2D / Conv2DTranspose / DepthwiseConv2D / SeparableConv2D with the same name, config and outputs,
 * holding the effective kernel `magnitude * direction / sqrt(||direction||^2 + epsilon^2)`
 * ({@link effectiveKernel}).
 * The result contains no normprune class, so plain TensorFlow.js loads it
 * (except a layer with activation `'gelu_new'`: tfjs 4.22 saves it, then
 * reads it back as `'geluNew'` and refuses it, for any plain model).
 * A model without decomposed layers gives a copy of itself. Throws for a
 * `model` that is not a LayersModel.
 */
export function fold(model: tfl.LayersModel): tfl.LayersModel {
  checkModel(model, 'fold');
  refuseWrappedDecomposed(model, 'fold');
  return rebuild(
    model,
    (layer, entry) => {
      if (!isDecomposed(layer)) return null;
      const config = { ...entry.config };
      delete config.granularity;
      delete config.epsilon;
      delete config.magnitudeInitializer;
      return { ...entry, className: PLAIN_CLASS[decomposedKind(layer)!], config };
    },
    (oldLayer) => {
      if (!isDecomposed(oldLayer)) return null;
      // Each part's kernel (a SeparableConv2D's depthwise and pointwise ones), then the bias.
      const kernels = oldLayer.parts().map((p) => effectivePartKernel(p, oldLayer.epsilon));
      return oldLayer.bias == null ? kernels : [...kernels, oldLayer.bias.read().clone()];
    },
  );
}

/**
 * The kernel a decomposed layer applies, `magnitude * direction / sqrt(||direction||^2 +
 * epsilon^2)`, the norm taken over each group (plain kernel shape). A new tensor: the caller
 * disposes it. Throws for a layer that is not decomposed (a plain layer's kernel is its
 * `getWeights()[0]`) or not built yet.
 *
 * ```ts
 * for (const { layer } of magnitudes(model)) {
 *   const kernel = effectiveKernel(layer); // [in, units], or [...kernelSize, cin, cout]
 *   console.log(layer.name, kernel.shape);
 *   kernel.dispose();
 * }
 * ```
 */
export function effectiveKernel(layer: DecomposedLayer): tf.Tensor {
  if (!isDecomposed(layer))
    throw new Error(
      `effectiveKernel: expected a DecomposedDense, DecomposedConv1D, DecomposedConv2D, DecomposedConv2DTranspose or DecomposedDepthwiseConv2D layer, got ${describeValue(layer)}` +
        ' (a plain layer applies its own kernel: layer.getWeights()[0])',
    );
  if (layer instanceof DecomposedSeparableConv2D || !('effectiveKernel' in layer))
    throw new Error(
      `effectiveKernel: layer '${layer.name}' is a ${layer.getClassName()}, which applies two kernels: ` +
        'layer.effectiveKernels() gives both, [depthwise, pointwise]',
    );
  return layer.effectiveKernel();
}

/** One decomposed layer's magnitudes and what each group controls; see {@link magnitudes}. */
export interface MagnitudeInfo {
  /** The layer. */
  layer: DecomposedLayer;
  /**
   * Its name. Where layers of different nested models share a name, each goes
   * by its path instead (`blockA/fc`, `blockB/fc`, the nested models' names
   * first), so that keep counts, layer multipliers and sparsity reports keep
   * them apart. The two magnitudes of a {@link DecomposedSeparableConv2D} are two entries,
   * `<name>:depthwise` and `<name>:pointwise` (`:` is in no tfjs layer name).
   */
  layerName: string;
  /**
   * Which kernel of a {@link DecomposedSeparableConv2D} the entry is: its `'depthwise'` one (laid
   * out as a {@link DecomposedDepthwiseConv2D}'s) or its `'pointwise'` one (a 1x1
   * {@link DecomposedConv2D}'s). Absent for the other layers, which have one magnitude.
   */
  part?: 'depthwise' | 'pointwise';
  /** Which weights share one magnitude. */
  granularity: Granularity;
  /** The variable the optimiser updates (`LayerVariable.read()`). */
  magnitude: tf.Variable;
  /** The direction variable (kernel shape). */
  direction: tf.Variable;
  /** Axes of `direction` reduced for each group's norm. */
  normAxes: number[];
  /** The layer's epsilon. */
  epsilon: number;
  /** Number of groups (`magnitude.size`). */
  groups: number;
  /** Kernel weights one group controls (direction entries of one group). */
  paramsPerGroup: number;
  /**
   * Multiply-accumulates per sample one group controls, over every call the
   * model makes of the layer (a layer shared by two branches, a nested model
   * called twice), and only those: another model's calls of the same layer
   * do not count. Needs the layer to be connected in a model with known
   * spatial sizes; NaN when they are not known (e.g. a fully convolutional
   * model with `null` height).
   */
  macsPerGroup: number;
}

/** One shape of a call's `inputShapes` or `outputShapes`; null when the call has several. */
function knownShape(
  node: tfl.layers.Layer['inboundNodes'][number] | undefined,
  which: 'inputShapes' | 'outputShapes',
): (number | null)[] | null {
  if (node == null) return null;
  const shape = node[which] as (number | null)[] | (number | null)[][];
  if (shape.length > 0 && Array.isArray(shape[0]))
    return shape.length === 1 ? (shape[0] as (number | null)[]) : null;
  return shape as (number | null)[];
}

/**
 * Each layer of `model` (nested models' layers included) with the calls it makes per sample, as
 * indices into its `inboundNodes`, one entry per run: a layer of a nested model runs its own
 * calls once per call of that model.
 */
function callsPerSample(
  model: tfl.LayersModel,
  times = 1,
  out = new Map<tfl.layers.Layer, number[]>(),
): Map<tfl.layers.Layer, number[]> {
  const own = ownCalls(model);
  for (const layer of model.layers) {
    const calls = own.get(layer) ?? [];
    if (layer instanceof tfl.LayersModel) callsPerSample(layer, times * calls.length, out);
    else out.set(layer, [...(out.get(layer) ?? []), ...Array.from({ length: times }, () => calls).flat()]);
  }
  return out;
}

function product(dims: (number | null)[]): number {
  return dims.reduce<number>((p, d) => p * (d == null ? NaN : d), 1);
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

/**
 * Refuses anything but a LayersModel (a lone layer, null, a path), naming the
 * function; a single layer gets the way to wrap it.
 */
export function checkModel(model: unknown, who: string): asserts model is tfl.LayersModel {
  if (model instanceof tfl.LayersModel || Array.isArray((model as { layers?: unknown } | null)?.layers))
    return;
  const layerHint =
    model instanceof tfl.layers.Layer ? ' (a single layer: wrap it, tf.sequential({ layers: [layer] }))' : '';
  throw new Error(`${who}: expected a tfjs LayersModel, got ${describeValue(model)}${layerHint}`);
}

/**
 * Throws a {@link NonFiniteWeightError}, naming the layer, the weight, how many
 * entries and the first one, when a layer to decompose holds a NaN or an
 * infinity: its magnitudes would be NaN (or its direction 0 / 0), and training
 * would only report the divergence an epoch later with the wrong advice.
 */
function checkFinite(layer: tfl.layers.Layer, path: string): void {
  for (const w of layer.weights)
    readFiniteWeight(
      layer,
      w,
      'decompose',
      'no magnitude can be computed from it. The model has diverged or its weights are corrupt: ' +
        'restore a checkpoint or retrain it with a lower learning rate, then decompose',
      path,
    );
}

/** One entry of {@link layerPaths}. */
export interface LayerPath {
  /** The layer's name under the names of the nested models holding it (`block/fc`). */
  path: string;
  /** The layer. */
  layer: tfl.layers.Layer;
}

/**
 * Every layer of `model` in order, with the layers of nested models (a model
 * used as a layer) in place of the model, each with its path: its name under
 * the names of the nested models holding it (`block/fc`). Throws for a `model` that is not a
 * LayersModel.
 */
export function layerPaths(model: tfl.LayersModel): LayerPath[] {
  checkModel(model, 'layerPaths');
  return pathsUnder(model, '');
}

/** {@link layerPaths} of a model nested under `prefix` (its holders' names, each with a `/`). */
function pathsUnder(model: tfl.LayersModel, prefix: string): LayerPath[] {
  return model.layers.flatMap((layer) =>
    layer instanceof tfl.LayersModel
      ? pathsUnder(layer, `${prefix}${layer.name}/`)
      : [{ path: prefix + layer.name, layer }],
  );
}

/**
 * Every decomposed layer of `model` (nested models included), with its
 * magnitude variable and the parameters and MACs each group controls:
 * the proximal optimiser's cost-aware penalty and surgery read this. A
 * model without decomposed layers gives `[]` (the proximal optimisers'
 * `attach(model)` refuses such a model). Throws for a `model` that is not a
 * LayersModel, and for a decomposed layer that is not built yet.
 *
 * ```ts
 * for (const m of magnitudes(model)) {
 *   const zero = (await m.magnitude.data()).filter((v) => v === 0).length;
 *   console.log(`${m.layerName}: ${zero} of ${m.groups} groups zero, ${m.paramsPerGroup} weights each`);
 * }
 * ```
 */
export function magnitudes(model: tfl.LayersModel): MagnitudeInfo[] {
  checkModel(model, 'magnitudes');
  refuseWrappedDecomposed(model, 'magnitudes');
  const out: MagnitudeInfo[] = [];
  const paths = layerPaths(model);
  const calls = callsPerSample(model);
  // A name two nested models' layers share is ambiguous: those layers go by their paths.
  const count = new Map<string, number>();
  for (const { layer } of paths) count.set(layer.name, (count.get(layer.name) ?? 0) + 1);
  for (const { path: fullPath, layer } of paths) {
    if (!isDecomposed(layer)) continue;
    const path = count.get(layer.name)! > 1 ? fullPath : layer.name;
    const parts = layer.parts();
    if (parts.length === 0) {
      throw new Error(`magnitudes: layer '${path}' is not built yet`);
    }
    // A layer the model's graph does not reach (no outputs yet) counts its first call.
    const found = calls.get(layer) ?? [];
    const nodes = (found.length ? found : [0]).map((i) => layer.inboundNodes[i]);
    // The product of axes [from, to) of each call's shape, summed over the calls (NaN if one is unknown).
    const positions = (which: 'inputShapes' | 'outputShapes', from: number, to: number): number =>
      sum(
        nodes.map((node) => {
          const shape = knownShape(node, which);
          return shape == null ? NaN : product(shape.slice(from, to));
        }),
      );
    // Per call: one group's weights at each position, of the input for a Dense (1 for a flat
    // one) and a transposed convolution (each input position scatters the whole kernel, as
    // surgery's analyze counts it), of the output for a convolution (its spatial axes; both
    // kernels of a separable one, the pointwise convolution keeping the depthwise one's).
    const byInput = isDecomposedDense(layer) || ('transposed' in layer && layer.transposed);
    const perGroup = byInput ? positions('inputShapes', 1, -1) : positions('outputShapes', 1, -1);
    for (const part of parts) {
      const direction = part.direction.read() as tf.Variable;
      const magnitude = part.magnitude.read() as tf.Variable;
      // The direction entries of one group: the product of the axes its norm reduces.
      const paramsPerGroup = part.normAxes.reduce((p, a) => p * direction.shape[a], 1);
      out.push({
        layer,
        layerName: part.name == null ? path : `${path}:${part.name}`,
        ...(part.name == null ? {} : { part: part.name }),
        granularity: layer.granularity,
        magnitude,
        direction,
        normAxes: part.normAxes.slice(),
        epsilon: layer.epsilon,
        groups: magnitude.size,
        paramsPerGroup,
        macsPerGroup: paramsPerGroup * perGroup,
      });
    }
  }
  return out;
}
