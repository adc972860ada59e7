// tfjs applies a layer's constraints (kernelConstraint, biasConstraint, gammaConstraint, ...)
// when weights are written through LayerVariable.write, as setWeights and every loader do, but
// not while training: a trained model's weights may break them, and a saved model that kept them
// would load into another function than the one saved. What prune leaves out of the layers it
// rewrites and what exportModel leaves out of the files it writes are found here, and said in
// one sentence.
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { constraintHolds } from '@normprune/layers';

/** A constraint of a layer that the layer's weights break. */
export interface BrokenConstraint {
  /**
   * The object whose option holds it: the layer, or the layer a wrapper (`TimeDistributed`)
   * holds, whose config the wrapper's config carries.
   */
  holder: Record<string, unknown>;
  /** The option (`kernelConstraint`, `biasConstraint`, `gammaConstraint`, ...). */
  option: string;
  /** The constraint's class (`NonNeg`, `UnitNorm`, ...). */
  constraint: string;
}

/** The layer and the layers it wraps (`TimeDistributed(dense)`), whose options its config carries. */
function holders(layer: tfl.layers.Layer): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (let l: unknown = layer; l != null && typeof l === 'object'; l = (l as { layer?: unknown }).layer)
    out.push(l as Record<string, unknown>);
  return out;
}

/**
 * Each constraint of `layer` (an option ending in `Constraint`, of the layer or of a layer it
 * wraps) that its weights break: one that moves an entry (see `constraintHolds` of
 * @normprune/layers), as loading the weights would. Reads two numbers per constrained weight.
 */
export function brokenConstraints(layer: tfl.layers.Layer): BrokenConstraint[] {
  const found: BrokenConstraint[] = [];
  for (const w of layer.weights) {
    const c = w.constraint;
    if (!c || tf.tidy(() => constraintHolds(w.read(), c.apply(w.read())))) continue;
    // The weight's constraint is the option's object (LayerVariable.write applies it): the
    // option's field is what getConfig writes.
    for (const holder of holders(layer))
      for (const option of Object.keys(holder))
        if (
          option.endsWith('Constraint') &&
          holder[option] === c &&
          !found.some((f) => f.holder === holder && f.option === option)
        )
          found.push({ holder, option, constraint: c.getClassName() });
  }
  return found;
}

/**
 * Runs `fn` with the options `broken` names set to null (so that a config or a topology
 * serialised meanwhile has none), then puts them back.
 */
export function withoutConstraints<T>(broken: BrokenConstraint[], fn: () => T): T {
  const kept = broken.map((b) => b.holder[b.option]);
  broken.forEach((b) => (b.holder[b.option] = null));
  try {
    return fn();
  } finally {
    broken.forEach((b, i) => (b.holder[b.option] = kept[i]));
  }
}

/**
 * The warning for a constraint left out because `layer`'s weights break it: `'pruned'` for the
 * pruned model (prune rewrote the weights), `'exported'` for the files exportModel wrote.
 */
export function droppedConstraintWarning(
  d: { layer: string; className: string; option: string; constraint: string },
  by: 'pruned' | 'exported',
): string {
  const [weights, without, after] =
    by === 'pruned'
      ? ['its pruned weights', 'the pruned model has none', 'the exported model']
      : ['its weights', 'the export has none', 'the model loaded from it'];
  return (
    `${d.className} '${d.layer}': its ${d.option} (${d.constraint}) does not hold for ${weights}, so ${without}: ` +
    `tfjs applies a constraint when it loads weights, and ${after} would compute something else`
  );
}
