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
   * The object whose option getConfig writes: the layer, the layer a wrapper (`TimeDistributed`,
   * `Bidirectional`) holds or the cell of a recurrent layer (`LSTM`), whose config the layer's
   * config carries.
   */
  holder: Record<string, unknown>;
  /**
   * The objects holding copies of `holder`'s options, whose constraint objects the weights hold:
   * a `Bidirectional`'s forward and backward layers (or their cells), which it builds from the
   * config of the layer it wraps. None for other layers, whose weights hold `holder`'s.
   */
  copies: Record<string, unknown>[];
  /** For the cells of stacked cells (`rnn({ cell: [...] })`), which cell holds it (from 0). */
  cell?: number;
  /** The option (`kernelConstraint`, `biasConstraint`, `gammaConstraint`, ...). */
  option: string;
  /** The constraint's class (`NonNeg`, `UnitNorm`, ...). */
  constraint: string;
}

/** An object whose options a layer's config carries, and the objects that hold copies of them. */
interface Holder {
  holder: Record<string, unknown>;
  copies: Record<string, unknown>[];
  cell?: number;
}

type Fields = Record<string, unknown>;
const field = (o: Fields, key: string): Fields | undefined => {
  const v = o[key];
  return v != null && typeof v === 'object' ? (v as Fields) : undefined;
};

/**
 * The layer and the objects whose options its config carries: the layer a wrapper holds
 * (`TimeDistributed(dense)`, `Bidirectional(lstm)`), the cell of a recurrent layer (`LSTM`,
 * `SimpleRNN`, `GRU`: its kernelConstraint is the cell's) and the cells of stacked cells
 * (`rnn({ cell: [...] })`), however nested. A `Bidirectional`'s config carries the layer it
 * wraps, which holds no weights: it computes with a forward and a backward layer deserialized
 * from that layer's config, whose weights hold copies of its constraints.
 */
function holders(layer: tfl.layers.Layer): Holder[] {
  const out: Holder[] = [];
  const visit = (holder: Fields, copies: Fields[], cell?: number): void => {
    out.push({ holder, copies, ...(cell === undefined ? {} : { cell }) });
    const under = (key: string, extra: Fields[] = []) => {
      const inner = field(holder, key);
      if (inner)
        visit(
          inner,
          [...copies.map((c) => field(c, key)).filter((c): c is Fields => c !== undefined), ...extra],
          cell,
        );
    };
    const both = ['forwardLayer', 'backwardLayer']
      .map((key) => field(holder, key))
      .filter((c): c is Fields => c !== undefined);
    under('layer', both);
    under('cell');
    const cells = holder.cells;
    if (Array.isArray(cells))
      cells.forEach((cell, i) => {
        if (cell != null && typeof cell === 'object')
          visit(
            cell as Fields,
            copies
              .map((c) => (Array.isArray(c.cells) ? (c.cells[i] as Fields | undefined) : undefined))
              .filter((c): c is Fields => c != null),
            i,
          );
      });
  };
  visit(layer as unknown as Fields, []);
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
    // The weight's constraint is the option's object (LayerVariable.write applies it), or a
    // copy's: the option's field is what getConfig writes.
    for (const { holder, copies, cell } of holders(layer))
      for (const option of Object.keys(holder))
        if (
          option.endsWith('Constraint') &&
          (holder[option] === c || copies.some((copy) => copy[option] === c)) &&
          !found.some((f) => f.holder === holder && f.option === option)
        )
          found.push({
            holder,
            copies,
            ...(cell === undefined ? {} : { cell }),
            option,
            constraint: c.getClassName(),
          });
  }
  return found;
}

/** The objects whose option `b` names: its holder and the copies. */
const objectsOf = (b: BrokenConstraint): Record<string, unknown>[] => [b.holder, ...b.copies];

/**
 * Sets the options `broken` names to null, in the holders and their copies, and returns the
 * constraint objects they held.
 */
export function clearConstraints(broken: BrokenConstraint[]): Set<unknown> {
  const gone = new Set<unknown>();
  for (const b of broken)
    for (const o of objectsOf(b)) {
      if (o[b.option] != null) gone.add(o[b.option]);
      o[b.option] = null;
    }
  return gone;
}

/**
 * Runs `fn` with the options `broken` names set to null (so that a config or a topology
 * serialised meanwhile has none), then puts them back.
 */
export function withoutConstraints<T>(broken: BrokenConstraint[], fn: () => T): T {
  const kept = broken.map((b) => objectsOf(b).map((o) => [o, o[b.option]] as const));
  clearConstraints(broken);
  try {
    return fn();
  } finally {
    broken.forEach((b, i) => kept[i].forEach(([o, v]) => (o[b.option] = v)));
  }
}

/**
 * The warning for a constraint left out because `layer`'s weights break it: `'pruned'` for the
 * pruned model (prune rewrote the weights), `'exported'` for the files exportModel wrote.
 */
export function droppedConstraintWarning(
  d: { layer: string; className: string; option: string; constraint: string; cell?: number },
  by: 'pruned' | 'exported',
): string {
  const [weights, without, after] =
    by === 'pruned'
      ? ['its pruned weights', 'the pruned model has none', 'the exported model']
      : ['its weights', 'the export has none', 'the model loaded from it'];
  return (
    `${d.className} '${d.layer}': its ${d.option}${d.cell === undefined ? '' : ` of cell ${d.cell}`} (${d.constraint}) does not hold for ${weights}, so ${without}: ` +
    `tfjs applies a constraint when it loads weights, and ${after} would compute something else`
  );
}
