import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { magnitudes as findMagnitudes, type MagnitudeInfo } from '@normprune/layers';
import { keepLargest } from './operators.js';
import { costWeights, type CostWeighting } from './weights.js';

/** Options of `l1Penalty`. */
export interface L1PenaltyOptions {
  /** Penalty strength (default 1, i.e. the unscaled weighted L1 norm). */
  lambda?: number;
  /** Penalty weight of each group (default `'uniform'`). */
  costWeighting?: CostWeighting;
  /** Multiplies the weight of every group of the named layer. */
  layerMultipliers?: Record<string, number>;
}

export function magnitudesOf(
  modelOrMagnitudes: tfl.LayersModel | readonly MagnitudeInfo[],
): readonly MagnitudeInfo[] {
  return Array.isArray(modelOrMagnitudes)
    ? modelOrMagnitudes
    : findMagnitudes(modelOrMagnitudes as tfl.LayersModel);
}

/**
 * The value of the regulariser `lambda * sum_k c_k * |g_k|` over every
 * decomposed layer of a model (or the given magnitudes), for logging: the
 * proximal optimisers apply the penalty themselves, it is never added to the loss.
 */
export function l1Penalty(
  modelOrMagnitudes: tfl.LayersModel | readonly MagnitudeInfo[],
  o: L1PenaltyOptions = {},
): number {
  const infos = magnitudesOf(modelOrMagnitudes);
  if (infos.length === 0) return 0;
  const c = costWeights(infos, o.costWeighting ?? 'uniform', o.layerMultipliers ?? {});
  const lambda = o.lambda ?? 1;
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
 * neurons feed, so the final model is smaller still.
 */
export async function measureSparsity(
  modelOrMagnitudes: tfl.LayersModel | readonly MagnitudeInfo[],
): Promise<SparsityReport> {
  const infos = magnitudesOf(modelOrMagnitudes);
  const liveGroups: Record<string, number> = {};
  const totalGroups: Record<string, number> = {};
  if (infos.length === 0) return { liveGroups, totalGroups, liveParams: 0, totalParams: 0, compression: 0 };
  const counts = tf.tidy(() =>
    tf.stack(infos.map((m) => tf.sum(tf.cast(tf.notEqual(m.magnitude, 0), 'int32')))),
  );
  const live = await counts.data();
  counts.dispose();
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
 * Keeps at most `keep[name]` groups of each named decomposed layer alive: the
 * ones with the largest magnitudes ({@link keepLargest}); the others' magnitudes
 * become exactly 0, so surgery removes them. On a freshly decomposed model the
 * magnitudes are the groups' weight norms, so this is norm-based structured
 * pruning to a fixed size; after proximal training it caps what the L1
 * penalty left alive. Layers not named are left as they are. A name that is
 * not a decomposed layer is an error.
 */
export function keepLargestGroups(
  modelOrMagnitudes: tfl.LayersModel | readonly MagnitudeInfo[],
  keep: Record<string, number>,
): void {
  const infos = magnitudesOf(modelOrMagnitudes);
  const names = new Set(infos.map((m) => m.layerName));
  // Every entry is checked before any magnitude changes.
  for (const [name, k] of Object.entries(keep)) {
    if (!names.has(name))
      throw new Error(
        `keepLargestGroups: no decomposed layer named '${name}'; decomposed layers: ${[...names].join(', ') || '(none)'}`,
      );
    if (!Number.isInteger(k) || k < 0)
      throw new Error(`keepLargestGroups: ${name}: k must be an integer >= 0, got ${k}`);
  }
  for (const m of infos) {
    const k = keep[m.layerName];
    if (k === undefined) continue;
    const kept = keepLargest(m.magnitude, k);
    m.magnitude.assign(kept);
    kept.dispose();
  }
}
