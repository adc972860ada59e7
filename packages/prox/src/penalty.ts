import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import {
  describeValue as describe,
  magnitudes as findMagnitudes,
  type MagnitudeInfo,
} from '@normprune/layers';
import { checkOptionKeys, countNaN, finiteNonnegative } from './checks.js';
import { keepLargest } from './operators.js';
import type { LayerMultiplier } from './optimizers.js';
import { costWeights, type CostWeighting, multipliersRecord } from './weights.js';

/** Options of `l1Penalty`. */
export interface L1PenaltyOptions {
  /** Penalty strength (default 1, i.e. the unscaled weighted L1 norm). */
  lambda?: number;
  /**
   * Penalty weight of each group (default `'uniform'`). `'flops'` is a
   * deprecated alias of `'macs'` (same weights; warns once).
   */
  costWeighting?: CostWeighting | 'flops';
  /**
   * Multiplies the weight of every group of the named layer: `{ fc1: 0.5 }`, or the list an
   * optimiser's `getConfig()` saves, `[{ name: 'fc1', multiplier: 0.5 }]` (as the optimisers take).
   */
  layerMultipliers?: Record<string, number> | readonly LayerMultiplier[];
}

/**
 * The magnitudes of a model's decomposed layers, or the given list itself.
 * Anything else is an error that names what was passed (`who` prefixes it).
 * With `requireDecomposed`, a model without decomposed layers is an error
 * too: what needs magnitudes would otherwise silently do nothing.
 */
export function magnitudesOf(
  modelOrMagnitudes: tfl.LayersModel | readonly MagnitudeInfo[],
  who = 'magnitudes',
  requireDecomposed = false,
): readonly MagnitudeInfo[] {
  if (Array.isArray(modelOrMagnitudes)) {
    // Without this, a list of something else failed deep in tfjs ("Argument 'x' passed to 'abs'
    // must be a Tensor or TensorLike, but got 'null'"). The magnitude variables themselves are
    // the likely mistake: the entries must also say which layer and groups they belong to.
    const list = modelOrMagnitudes as readonly unknown[];
    const bad = list.findIndex((m) => !isMagnitudeInfo(m));
    if (bad >= 0) {
      const item = list[bad];
      const hint =
        item instanceof tf.Tensor
          ? ' (a tensor: pass the MagnitudeInfo entries magnitudes(model) returns, which carry the layer and its groups, not their .magnitude)'
          : typeof item === 'object' &&
              item !== null &&
              typeof (item as tfl.layers.Layer).getClassName === 'function'
            ? ' (a layer: pass the model, or magnitudes(model))'
            : '';
      throw new Error(
        `${who}: expected a LayersModel or a list of magnitudes (magnitudes(model) from @normprune/layers), ` +
          `got a list whose entry ${bad} is ${describe(item)}${hint}`,
      );
    }
    return modelOrMagnitudes;
  }
  const model = modelOrMagnitudes as tfl.LayersModel | null | undefined;
  if (model == null || typeof model !== 'object' || !Array.isArray((model as { layers?: unknown }).layers))
    throw new Error(
      `${who}: expected a LayersModel or a list of magnitudes (magnitudes(model) from @normprune/layers), got ${describe(model)}`,
    );
  const infos = findMagnitudes(model);
  if (requireDecomposed && infos.length === 0) throw new Error(noDecomposedLayers(who, model));
  return infos;
}

/** Whether `m` looks like an entry of magnitudes(model): a magnitude tensor and its layer's name and groups. */
function isMagnitudeInfo(m: unknown): m is MagnitudeInfo {
  const i = m as Partial<MagnitudeInfo> | null;
  return (
    typeof i === 'object' &&
    i !== null &&
    i.magnitude instanceof tf.Tensor &&
    i.direction instanceof tf.Tensor &&
    typeof i.layerName === 'string' &&
    Array.isArray(i.normAxes)
  );
}

/** The error for a model that has no decomposed layer where one is needed. */
export function noDecomposedLayers(who: string, model: tfl.LayersModel): string {
  return (
    `${who}: model '${model.name}' has no decomposed layers (DecomposedDense / DecomposedConv1D / DecomposedConv2D / DecomposedConv2DTranspose / DecomposedDepthwiseConv2D / DecomposedSeparableConv2D), so it has no magnitudes ` +
    `to penalise or measure: decompose it first, const decomposed = decompose(model) from @normprune/layers, and train ` +
    `the decomposed model (or build the model from decomposedDense / decomposedConv1d / decomposedConv2d / decomposedConv2dTranspose / decomposedDepthwiseConv2d / decomposedSeparableConv2d)`
  );
}

/**
 * The value of the regulariser `lambda * sum_k c_k * |g_k|` over every
 * decomposed layer of a model (or the given magnitudes), for logging: the
 * proximal optimisers apply the penalty themselves, it is never added to the loss.
 * `lambda` defaults to 1 (the sum itself); pass the optimiser's `lambda`, `costWeighting` and
 * `layerMultipliers` for the penalty it applies. A model without decomposed layers gives 0.
 *
 * Throws for an unknown option key, a `lambda` that is not a finite number >= 0, an unknown
 * `costWeighting`, bad `layerMultipliers`, or a first argument that is neither a model nor
 * `magnitudes()` entries.
 *
 * ```ts
 * const optimizer = new ProximalSGD({ learningRate: 0.05, lambda: 1e-4, magnitudes: model });
 * console.log('penalty', l1Penalty(model, { lambda: optimizer.lambda }));
 * ```
 */
export function l1Penalty(
  modelOrMagnitudes: tfl.LayersModel | readonly MagnitudeInfo[],
  o: L1PenaltyOptions = {},
): number {
  checkOptionKeys('l1Penalty', o, ['lambda', 'costWeighting', 'layerMultipliers'], '{ lambda: 1e-4 }');
  const lambda = finiteNonnegative('l1Penalty: lambda', o.lambda ?? 1);
  const infos = magnitudesOf(modelOrMagnitudes, 'l1Penalty');
  if (infos.length === 0) return 0;
  const c = costWeights(infos, o.costWeighting ?? 'uniform', multipliersRecord(o.layerMultipliers));
  const total = tf.tidy(() => tf.addN(infos.map((m, i) => tf.mul(tf.sum(tf.abs(m.magnitude)), c[i]))));
  const value = total.dataSync()[0];
  total.dispose();
  return lambda * value;
}

/** Live and dead groups of a model's decomposed layers, and the compression they give. */
export interface SparsityReport {
  /** Groups with a nonzero magnitude, per layer name. */
  liveGroups: Record<string, number>;
  /** All groups, per layer name. */
  totalGroups: Record<string, number>;
  /** Kernel parameters of the decomposed layers still controlled by a live group. */
  liveParams: number;
  /** Kernel parameters of the decomposed layers. */
  totalParams: number;
  /** `1 - liveParams / totalParams` (0 when nothing is decomposed). */
  compression: number;
}

/**
 * Counts the groups whose magnitude is exactly 0 (dead) in every decomposed
 * layer. Compression counts only the kernels of the decomposed layers
 * themselves; surgery also removes the inputs of the next layer that dead
 * neurons feed, so the final model is smaller still. A NaN magnitude (training
 * has diverged) is an error naming the layer.
 */
export async function measureSparsity(
  modelOrMagnitudes: tfl.LayersModel | readonly MagnitudeInfo[],
): Promise<SparsityReport> {
  return sparsityReport(magnitudesOf(modelOrMagnitudes, 'measureSparsity'), 'measureSparsity: ');
}

/**
 * {@link measureSparsity} of a list of magnitudes. A NaN magnitude is an error
 * (`prefix` starts it): it is neither live nor dead, and it means training
 * has diverged.
 */
export async function sparsityReport(
  infos: readonly MagnitudeInfo[],
  prefix: string,
): Promise<SparsityReport> {
  return summarizeSparsity(infos, await liveCounts(infos, prefix));
}

/**
 * The live groups of each entry of `infos`, read from the backend in one transfer. A NaN
 * magnitude is an error (`prefix` starts it), as in {@link sparsityReport}.
 */
export async function liveCounts(infos: readonly MagnitudeInfo[], prefix: string): Promise<number[]> {
  if (infos.length === 0) return [];
  const counts = tf.tidy(() =>
    tf.stack(
      infos.map((m) =>
        tf.stack([tf.sum(tf.cast(tf.notEqual(m.magnitude, 0), 'float32')), countNaN(m.magnitude)]),
      ),
    ),
  );
  const values = await counts.data();
  counts.dispose();
  const live = infos.map((_, i) => values[2 * i]);
  infos.forEach((m, i) => {
    const nans = values[2 * i + 1];
    if (nans > 0)
      throw new Error(
        `${prefix}layer '${m.layerName}' has ${nans} NaN magnitude(s); training has diverged or the weights are corrupt: lower the learning rate or restore a checkpoint`,
      );
  });
  return live;
}

/** {@link sparsityReport} of `infos` whose live groups {@link liveCounts} gave as `live`. */
export function summarizeSparsity(infos: readonly MagnitudeInfo[], live: readonly number[]): SparsityReport {
  const liveGroups: Record<string, number> = {};
  const totalGroups: Record<string, number> = {};
  let liveParams = 0;
  let totalParams = 0;
  infos.forEach((m, i) => {
    liveGroups[m.layerName] = (liveGroups[m.layerName] ?? 0) + live[i];
    totalGroups[m.layerName] = (totalGroups[m.layerName] ?? 0) + m.groups;
    liveParams += live[i] * m.paramsPerGroup;
    totalParams += m.groups * m.paramsPerGroup;
  });
  return {
    liveGroups,
    totalGroups,
    liveParams,
    totalParams,
    compression: totalParams === 0 ? 0 : 1 - liveParams / totalParams,
  };
}

/**
 * Checks a `keep` map (layer name -> k) against the decomposed layers before
 * anything changes, and returns the named layers' magnitudes. `who` names
 * the function in errors; `check` refuses a layer the function cannot apply to.
 */
function keepTargets(
  infos: readonly MagnitudeInfo[],
  keep: Record<string, number>,
  who: string,
  check?: (m: MagnitudeInfo) => string | undefined,
): MagnitudeInfo[] {
  const names = new Set(infos.map((m) => m.layerName));
  if (keep == null || typeof keep !== 'object' || Array.isArray(keep))
    throw new TypeError(
      `${who}: keep must be an object of layer name -> k ({dense1: 300}), got ${describe(keep)}`,
    );
  for (const [name, k] of Object.entries(keep)) {
    if (!names.has(name))
      throw new RangeError(
        `${who}: no decomposed layer named '${name}'; decomposed layers: ${[...names].join(', ') || '(none)'}`,
      );
    if (!Number.isInteger(k) || k < 0)
      throw new RangeError(`${who}: ${name}: k must be an integer >= 0, got ${describe(k)}`);
  }
  const named = infos.filter((m) => keep[m.layerName] !== undefined);
  for (const m of named) {
    const why = check?.(m);
    if (why) throw new TypeError(`${who}: ${m.layerName}: ${why}`);
  }
  if (named.length > 0) {
    const nans = tf.tidy(() => tf.stack(named.map((m) => countNaN(m.magnitude))));
    const counts = nans.dataSync();
    nans.dispose();
    named.forEach((m, i) => {
      if (counts[i] > 0)
        throw new Error(
          `${who}: layer '${m.layerName}' has ${counts[i]} NaN magnitude(s), so there is no largest to keep; training has diverged or the weights are corrupt: lower the learning rate or restore a checkpoint`,
        );
    });
  }
  return named;
}

/**
 * Keeps at most `keep[name]` groups of each named decomposed layer alive: the
 * ones with the largest magnitudes ({@link keepLargest}); the others' magnitudes
 * become exactly 0, so surgery removes them. On a freshly decomposed model the
 * magnitudes are the groups' weight norms, so this is norm-based structured
 * pruning to a fixed size; after proximal training it caps what the L1
 * penalty left alive. Layers not named are left as they are. A name that is
 * not a decomposed layer, or a NaN magnitude in a named layer, is an error,
 * and nothing changes.
 *
 * A refused `keep` throws a `RangeError` (an unknown layer name, a `k` that
 * is not an integer >= 0) or a `TypeError` (`keep` not an object), so a
 * caller can tell its own bad argument from a NaN magnitude (a plain `Error`:
 * the training, not the argument, is at fault).
 */
export function keepLargestGroups(
  modelOrMagnitudes: tfl.LayersModel | readonly MagnitudeInfo[],
  keep: Record<string, number>,
): void {
  const infos = magnitudesOf(modelOrMagnitudes, 'keepLargestGroups');
  for (const m of keepTargets(infos, keep, 'keepLargestGroups')) {
    const kept = keepLargest(m.magnitude, keep[m.layerName]);
    m.magnitude.assign(kept);
    kept.dispose();
  }
}

/** Whether `m` is a DecomposedDepthwiseConv2D's magnitude or a DecomposedSeparableConv2D's depthwise one: its filters are its input channels. */
function isDepthwise(m: MagnitudeInfo): boolean {
  return m.part === 'depthwise' || ('depthwise' in m.layer && m.layer.depthwise);
}

/**
 * Keeps at most `keep[name]` output filters of each named Conv1D, Conv2D or Conv2DTranspose layer of
 * granularity `'kernel'` alive (of a DepthwiseConv2D, input channels: the `depthMultiplier` kernels
 * of one input channel, its `'filter'` group, which surgery removes together; of a SeparableConv2D,
 * its two parts by their names in `magnitudes()`: `'sep:depthwise'` keeps input channels as a
 * DepthwiseConv2D does, `'sep:pointwise'` output filters as a Conv2D does): those whose kernels' magnitudes have the
 * largest root sum of squares (on a freshly decomposed model, the filters'
 * weight norms). Every kernel of the other filters gets magnitude exactly 0,
 * so surgery removes those filters, and with them the next layer's inputs
 * they feed. Followed by {@link keepLargestGroups} on the same layer, it
 * selects kernels inside the kept filters only: norm-based pruning that keeps
 * as many filters as a given structure has, not the largest kernels wherever
 * they are. Of filters with equal norms the earlier is kept. A layer that is
 * not a `'kernel'` convolution (a `'filter'` layer's groups are its filters, a depthwise one's its
 * input channels: use `keepLargestGroups`), an unknown name or a NaN magnitude is an error, and
 * nothing changes. Errors are typed as {@link keepLargestGroups}'s are; a
 * layer that is not a `'kernel'` convolution is a `TypeError`.
 */
export function keepLargestFilters(
  modelOrMagnitudes: tfl.LayersModel | readonly MagnitudeInfo[],
  keep: Record<string, number>,
): void {
  const infos = magnitudesOf(modelOrMagnitudes, 'keepLargestFilters');
  const targets = keepTargets(infos, keep, 'keepLargestFilters', (m) =>
    m.granularity !== 'kernel'
      ? `expected a Conv1D, Conv2D, Conv2DTranspose or DepthwiseConv2D layer of granularity 'kernel', got granularity '${m.granularity}'${
          m.granularity !== 'filter'
            ? ''
            : // A DepthwiseConv2D's 'filter' groups (and a SeparableConv2D's depthwise part's) are its
              // input channels, what keepLargestFilters keeps of it; the others' are output filters.
              isDepthwise(m)
              ? ' (its groups are its input channels, each with its depthMultiplier kernels, which keepLargestFilters ' +
                'keeps of a DepthwiseConv2D: use keepLargestGroups)'
              : ' (its groups are its filters: use keepLargestGroups)'
        }`
      : undefined,
  );
  for (const m of targets) {
    // magnitude: [inChannels, filters] (a Conv2DTranspose's [filters, inChannels], its kernel's
    // order; a DepthwiseConv2D's [inChannels, depthMultiplier], whose filters are its input
    // channels, as a SeparableConv2D's depthwise part's; its pointwise part's is a Conv2D's); a
    // filter's norm is the norm of its kernels' magnitudes.
    const filtersFirst = isDepthwise(m) || ('transposed' in m.layer && m.layer.transposed);
    const kept = tf.tidy(() => {
      const filterNorms = tf.sqrt(tf.sum(tf.square(m.magnitude), filtersFirst ? 1 : 0));
      const mask = tf.cast(tf.notEqual(keepLargest(filterNorms, keep[m.layerName]), 0), m.magnitude.dtype);
      return tf.mul(m.magnitude, filtersFirst ? tf.expandDims(mask, 1) : mask);
    });
    m.magnitude.assign(kept);
    kept.dispose();
  }
}
