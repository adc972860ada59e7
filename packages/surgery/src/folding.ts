// Decomposed layers are a training-time form: everything surgery counts or
// cuts is the plain layer they fold into, whose kernel is exactly zero where
// the magnitude is zero.
import * as tfl from '@tensorflow/tfjs-layers';
import {
  describeValue as describe,
  fold,
  hasNested,
  isDecomposed,
  layerPaths,
  NonFiniteWeightError,
  optionsProblem,
  readFiniteWeight,
  unnest,
} from '@normprune/layers';
import { DisconnectedModelError } from './errors.js';
import { SPARSE_FALLBACK } from './graph.js';
import { ofSplit, splitSeparable } from './separable.js';

/** Every layer of `model`, with the layers of nested models (a model used as a layer) in place of the model. */
export function allLayers(model: tfl.LayersModel): tfl.layers.Layer[] {
  return layerPaths(model).map((l) => l.layer);
}

/**
 * Whether the model contains decomposed layers (DecomposedDense, DecomposedConv1D, DecomposedConv2D,
 * DecomposedConv2DTranspose, DecomposedDepthwiseConv2D), nested models included,
 * and inside wrapper layers (`TimeDistributed(decomposedDense(...))`, built by hand): `fold`
 * refuses those, naming the wrapper, where surgery would otherwise pass them on as they are (a
 * pruned model or an export holding a normprune class, which plain tfjs cannot load).
 */
export function hasDecomposed(model: tfl.LayersModel): boolean {
  return allLayers(model).some((l) => isDecomposed(l) || wrappedDecomposed(l) !== undefined);
}

/** The decomposed layer a wrapper layer (`TimeDistributed`, `Bidirectional`) holds, however deeply wrapped. */
export function wrappedDecomposed(layer: tfl.layers.Layer): tfl.layers.Layer | undefined {
  let inner = layer;
  for (;;) {
    const next = (inner as { layer?: unknown }).layer;
    if (!(next instanceof tfl.layers.Layer)) return undefined;
    if (isDecomposed(next)) return next;
    inner = next;
  }
}

/** Refuses anything but a LayersModel (a lone layer, null, a path), naming the function. */
export function checkModel(model: unknown, who: string): asserts model is tfl.LayersModel {
  if (!(model instanceof tfl.LayersModel) && !Array.isArray((model as { layers?: unknown } | null)?.layers))
    throw new Error(
      `${who}: expected a tfjs LayersModel (tf.sequential() or tf.model()), got ${describe(model)}`,
    );
}

/**
 * Refuses options of `who` (analyze, prune) that are not an object, or that hold a key other
 * than `keys` (`example` shows an options object; a misspelling would otherwise silently give the default), as the options'
 * values are refused: with a plain Error naming the function.
 */
export function checkOptions(options: unknown, keys: readonly string[], example: string, who: string): void {
  const problem = optionsProblem(options, keys, example);
  if (problem !== undefined) throw new Error(`${who}: ${problem}`);
}

/** The threshold below which a weight counts as zero: a finite number >= 0 (default 0). */
export function checkThreshold(threshold: unknown, who: string): number {
  const t = threshold ?? 0;
  if (typeof t !== 'number' || !(t >= 0) || !Number.isFinite(t))
    throw new Error(
      `${who}: threshold must be a finite number >= 0 (|w| <= threshold counts as zero), got ${describe(t)}`,
    );
  return t;
}

/**
 * Runs `fn` on `copy`, or on `model` itself when there is no copy (`undefined`): errors pass
 * through `mapError` (which names what `model` holds, not the copy's layers), and the copy is
 * disposed after.
 */
function withCopy<T>(
  model: tfl.LayersModel,
  copy: tfl.LayersModel | undefined,
  fn: (m: tfl.LayersModel) => T,
  mapError: (e: unknown) => unknown,
): T {
  if (copy === undefined) return fn(model);
  try {
    return fn(copy);
  } catch (e) {
    throw mapError(e);
  } finally {
    disposeFolded(copy);
  }
}

/** Runs `fn` on the plain form of `model` (folding it first if needed, disposing the folded copy after). */
export function withFolded<T>(model: tfl.LayersModel, fn: (plain: tfl.LayersModel) => T): T {
  return withCopy(model, hasDecomposed(model) ? fold(model) : undefined, fn, (e) =>
    withSeparableKey(model, ofDecomposed(model, e)),
  );
}

/**
 * `e`, or for a {@link DisconnectedModelError} whose dead layer is a DecomposedSeparableConv2D of
 * `model`, the same error whose advice names it as `layerMultipliers` of @normprune/prox takes it,
 * by its parts as `magnitudes()` names them: those holding a zero magnitude (`'sep:depthwise'`
 * when its input channels died, `'sep:pointwise'` when its filters did, both when both have dead
 * groups), the pointwise one when neither does.
 */
function withSeparableKey(model: tfl.LayersModel, e: unknown): unknown {
  if (!(e instanceof DisconnectedModelError) || e.code !== 'dead') return e;
  const key = /layerMultipliers: \{ '([^']+)': 0 \}/.exec(e.message)?.[1];
  const at = layerPaths(model).find((p) => p.path === key || p.layer.name === key);
  if (
    key == null ||
    at == null ||
    !isDecomposed(at.layer) ||
    at.layer.getClassName() !== 'DecomposedSeparableConv2D'
  )
    return e;
  const killed = at.layer
    .parts()
    .filter((p) =>
      p.magnitude
        .read()
        .dataSync()
        .some((v) => v === 0),
    )
    .map((p) => p.name);
  const parts = killed.length > 0 ? killed : ['pointwise'];
  const { code, layer, emptied, detail } = e;
  return new DisconnectedModelError(
    { code, layer, emptied, detail },
    e.message.replace(
      `layerMultipliers: { '${key}': 0 }`,
      `layerMultipliers: { ${parts.map((p) => `'${key}:${p}': 0`).join(', ')} }`,
    ),
  );
}

/**
 * Runs `fn` on `model` without nested models (a model used as a layer): on a copy with their
 * layers applied directly and named by path (`block/fc`), which is disposed after; on `model`
 * itself when it has none. unnest's refusals (a nested model applied twice) come as surgery's.
 */
function withUnnested<T>(model: tfl.LayersModel, fn: (flat: tfl.LayersModel) => T): T {
  return withCopy(model, hasNested(model) ? unnested(model) : undefined, fn, (e) =>
    withMultiplierKey(model, ofNestedWeight(model, e)),
  );
}

/** `unnest(model)`, its refusals as surgery's. */
function unnested(model: tfl.LayersModel): tfl.LayersModel {
  try {
    return unnest(model);
  } catch (e) {
    if (!(e instanceof Error) || !e.message.startsWith('unnest: ')) throw e;
    throw new Error(`surgery: ${e.message.slice('unnest: '.length)}, then prune. ${SPARSE_FALLBACK}`);
  }
}

/**
 * Runs `fn` on `model` with each SeparableConv2D surgery prunes through split into a
 * DepthwiseConv2D and a 1x1 Conv2D (see {@link splitSeparable}), on a copy disposed after; on
 * `model` itself when it has none. A refusal names the SeparableConv2D, not its parts.
 */
function withSplit<T>(model: tfl.LayersModel, fn: (split: tfl.LayersModel) => T): T {
  return withCopy(model, splitSeparable(model), fn, (e) => ofSplit(model, e));
}

/**
 * Runs `fn` on the form of `model` prune works on: folded ({@link withFolded}), unnested
 * ({@link withUnnested}) and with its SeparableConv2D layers split ({@link withSplit}); `fn` also
 * gets the folded model, whose layers (nested ones by path) are those `analyze` counts.
 */
export function withPrunable<T>(
  model: tfl.LayersModel,
  fn: (plain: tfl.LayersModel, folded: tfl.LayersModel) => T,
): T {
  return withFolded(model, (folded) =>
    withUnnested(folded, (flat) => withSplit(flat, (plain) => fn(plain, folded))),
  );
}

/**
 * `e`, or for a `NonFiniteWeightError` about a layer of a nested model (named by path, `block/fc`),
 * the same error naming the weight as the model holds it (`fc/kernel`): the unnested copy's
 * weights are named by path (`block/fc/kernel`), which no weight of the model is.
 */
function ofNestedWeight(model: tfl.LayersModel, e: unknown): unknown {
  if (!(e instanceof NonFiniteWeightError) || e.code !== 'non-finite') return e;
  const at = layerPaths(model).find((p) => p.path === e.layer);
  if (!at || typeof e.caller !== 'string' || typeof e.advice !== 'string') return e;
  const holders = at.path.slice(0, at.path.length - at.layer.name.length);
  const weight = at.layer.weights.find((w) => holders + w.originalName === e.weight);
  if (!holders || !weight) return e;
  const { code, layer, className, count, index, value } = e;
  return new NonFiniteWeightError(
    { code, layer, className, weight: weight.originalName, count, index, value },
    e.caller,
    e.advice,
  );
}

/**
 * `e`, or for a {@link DisconnectedModelError} about a layer of a nested model (named by path),
 * the same error whose advice names the layer as `layerMultipliers` of @normprune/prox takes it:
 * as `magnitudes()` names it, by its own name unless layers of several nested models share it.
 */
function withMultiplierKey(model: tfl.LayersModel, e: unknown): unknown {
  if (!(e instanceof DisconnectedModelError) || e.code !== 'dead') return e;
  const paths = layerPaths(model);
  const at = paths.find((p) => p.path === e.layer);
  if (!at || paths.filter((p) => p.layer.name === at.layer.name).length > 1) return e;
  const { code, layer, emptied, detail } = e;
  return new DisconnectedModelError(
    { code, layer, emptied, detail },
    e.message.replace(`layerMultipliers: { '${layer}': 0 }`, `layerMultipliers: { '${at.layer.name}': 0 }`),
  );
}

/**
 * `e`, or for a `NonFiniteWeightError` about a layer that `fold` made, the same error about the
 * decomposed layer of `model` it came from: the folded kernel is surgery's copy, and the bad entry
 * is in the layer's direction, magnitude or bias, which the error then names, with the same
 * caller and advice, and the layer by its path (`block/fc`).
 */
function ofDecomposed(model: tfl.LayersModel, e: unknown): unknown {
  if (!(e instanceof NonFiniteWeightError) || e.code !== 'non-finite') return e;
  // Named by its path (`block/fc`), as analyze and prune name a layer of a nested model.
  const paths = layerPaths(model).filter((l) => isDecomposed(l.layer));
  const at = paths.find((l) => l.path === e.layer) ?? paths.find((l) => l.layer.name === e.layer);
  // An error from an older copy of @normprune/layers has no caller or advice fields.
  if (!at || typeof e.caller !== 'string' || typeof e.advice !== 'string') return e;
  for (const w of at.layer.weights) {
    try {
      readFiniteWeight(at.layer, w, e.caller, e.advice, at.path);
    } catch (found) {
      return found;
    }
  }
  return e;
}

/**
 * `e`, or for a `NonFiniteWeightError` that names the layer at `path` (see `layerPaths`) by its
 * own name (`fc`), the same error naming it by that path (`block/fc`), as analyze's rows and
 * prune's unnested copy name it: a layer of a nested model is told from another of its name in
 * another nested model. The weight keeps the name the model holds it by (`fc/kernel`).
 */
export function atPath(e: unknown, path: string): unknown {
  if (!(e instanceof NonFiniteWeightError) || e.code !== 'non-finite' || e.layer === path) return e;
  if (typeof e.caller !== 'string' || typeof e.advice !== 'string') return e;
  const { code, className, weight, count, index, value } = e;
  return new NonFiniteWeightError(
    { code, layer: path, className, weight, count, index, value },
    e.caller,
    e.advice,
  );
}

/**
 * Disposes a model `fold` made, every weight of it: tfjs's `dispose` leaves the weights of a
 * layer applied more than once allocated (its count of uses stays above 0), and no one else
 * holds the folded copy's layers.
 */
export function disposeFolded(plain: tfl.LayersModel): void {
  const weights = plain.weights;
  plain.dispose();
  for (const w of weights) if (allocated(w)) w.dispose();
}

function allocated(w: tfl.LayerVariable): boolean {
  try {
    return !w.read().isDisposed;
  } catch {
    return false; // read() refuses a disposed weight
  }
}
