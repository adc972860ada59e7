import type * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { describeValue } from './common.js';

/**
 * What a {@link NonFiniteWeightError} found:
 *
 * - `non-finite`: the weight holds a NaN or an infinity;
 * - `overflow`: every entry is finite, but a group of them has a norm past
 *   float32 (entries near 1e19 or larger), so the magnitude `decompose` would
 *   make of it is infinite; the fields then describe that magnitude.
 */
export type NonFiniteWeightCode = 'non-finite' | 'overflow';

/** Set on every NonFiniteWeightError by every copy of this package (see its `Symbol.hasInstance`). */
const BRAND = Symbol.for('normprune.NonFiniteWeightError');

/**
 * A weight that holds a NaN or an infinity, or would once decomposed: the
 * model has diverged or its weights are corrupt. `decompose` (layers) throws
 * it with the message prefix `decompose:`, `analyze` / `prune`
 * (@normprune/surgery) with `surgery:` and `exportModel` (surgery) with
 * `exportModel:`, each with advice of its own; the fields say the same without
 * reading the message.
 *
 * The group-norm overflow `decompose` refuses is this class too, with `code`
 * `'overflow'`, not a class of its own: it is the same problem (a diverged
 * model whose weights are, or would become, non-finite), with the same remedy,
 * so `instanceof NonFiniteWeightError` catches both, and `code` tells them
 * apart for the rare caller that cares.
 *
 * ```ts
 * try {
 *   model = decompose(plain);
 * } catch (e) {
 *   if (!(e instanceof NonFiniteWeightError)) throw e;
 *   console.error(`training diverged: ${e.weight} of layer ${e.layer} holds ${e.value}`);
 * }
 * ```
 */
export class NonFiniteWeightError extends Error {
  /**
   * `instanceof` that also holds for an error made by another copy of this package in the same
   * process (its CommonJS and ES module builds both loaded, or two installed versions of it); a
   * subclass's `instanceof` stays a plain prototype check.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return (
      Function.prototype[Symbol.hasInstance].call(this, value) ||
      (this === NonFiniteWeightError && typeof value === 'object' && value !== null && BRAND in value)
    );
  }

  /** Whether the weight holds the bad values (`non-finite`) or a group norm of it overflows (`overflow`). */
  readonly code: NonFiniteWeightCode;
  /**
   * The layer's name; for `overflow`, its path through nested models (`block/fc`),
   * which is its name for a layer of the model itself.
   */
  readonly layer: string;
  /** The layer's class (`Dense`, `Conv2D`, ...; for `overflow`, the decomposed class, `DecomposedDense`). */
  readonly className: string;
  /** The weight's full name (`fc1/kernel`); for `overflow`, the magnitude decompose would make (`fc1/magnitude`). */
  readonly weight: string;
  /** How many entries of the weight are NaN or infinite (for `overflow`, how many groups overflow). */
  readonly count: number;
  /** The index of the first such entry, one number per axis of the weight (`[]` for a scalar). */
  readonly index: number[];
  /** Its value: NaN, Infinity or -Infinity. */
  readonly value: number;
  /**
   * What is wrong, without the message's prefix and advice
   * (`layer 'fc1' (Dense) has 1 non-finite value in weight 'fc1/kernel' (the first, at [7,2], is NaN)`),
   * for a caller that wraps the error with advice of its own.
   */
  readonly detail: string;
  /** The function that refused (`'decompose'`, `'surgery'`, `'exportModel'`): the message's prefix. */
  readonly caller: string;
  /** What the bad value prevents and what to do: the message's last part. */
  readonly advice: string;

  /**
   * Builds the error. The message is `` `${caller}: ${detail}: ${advice}` ``, the detail
   * composed from the fields.
   */
  constructor(
    found: {
      code?: NonFiniteWeightCode;
      layer: string;
      className: string;
      weight: string;
      count: number;
      index: number[];
      value: number;
    },
    caller: string,
    advice: string,
  ) {
    const code = found.code ?? 'non-finite';
    const detail =
      code === 'overflow'
        ? `layer '${found.layer}' has a group of weights whose norm overflows float32 (entries near 1e19 or larger)`
        : `layer '${found.layer}' (${found.className}) has ${found.count} non-finite ` +
          `value${found.count === 1 ? '' : 's'} in weight '${found.weight}' ` +
          `(the first, at [${found.index}], is ${found.value})`;
    super(`${caller}: ${detail}: ${advice}`);
    // With a target that compiles classes to functions, Error() would leave the prototype Error's.
    Object.setPrototypeOf(this, new.target.prototype);
    this.name = 'NonFiniteWeightError';
    Object.defineProperty(this, BRAND, { value: true });
    this.code = code;
    this.layer = found.layer;
    this.className = found.className;
    this.weight = found.weight;
    this.count = found.count;
    this.index = [...found.index];
    this.value = found.value;
    this.detail = detail;
    this.caller = caller;
    this.advice = advice;
  }
}

/**
 * The values of `weight`, a weight of `layer`, read with `dataSync()` (on some
 * backends the backend's own buffer: copy before changing them). Throws a
 * {@link NonFiniteWeightError} (`code` `'non-finite'`) when one is NaN or
 * infinite, its message `` `${caller}: layer '...' (...) has N non-finite value(s) in weight '...' (the first, at [...], is NaN): ${advice}` ``:
 * `caller` names the function refusing (`'decompose'`), `advice` what the bad value
 * prevents and what to do. `path` names the layer (default its name): give a nested model's layer
 * its path (`block/fc`, see `layerPaths`), which another nested model's `fc` does not share.
 */
export function readFiniteWeight(
  layer: tfl.layers.Layer,
  weight: tfl.LayerVariable,
  caller: string,
  advice: string,
  path: string = layer.name,
): tf.TypedArray {
  // A weight's name (what the message shows) failed with "weight.read is not a function".
  if (typeof (weight as { read?: unknown } | null)?.read !== 'function')
    throw new TypeError(
      `readFiniteWeight: weight must be one of the layer's weights (layer.weights[i], a LayerVariable), got ${describeValue(weight)}`,
    );
  const values = weight.read().dataSync();
  const bad = firstNonFinite(values, weight.shape as number[]);
  if (!bad) return values;
  throw new NonFiniteWeightError(
    { layer: path, className: layer.getClassName(), weight: weight.originalName, ...bad },
    caller,
    advice,
  );
}

/**
 * How many of `values` (a tensor of shape `shape`, row-major) are NaN or
 * infinite, and the index and value of the first; undefined for none. @internal
 */
export function firstNonFinite(
  values: ArrayLike<number>,
  shape: number[],
): { count: number; index: number[]; value: number } | undefined {
  let count = 0;
  let first = -1;
  for (let i = 0; i < values.length; i++)
    if (!Number.isFinite(values[i])) {
      if (first < 0) first = i;
      count++;
    }
  if (count === 0) return undefined;
  const index: number[] = [];
  for (let rest = first, d = shape.length - 1; d >= 0; d--) {
    index.unshift(rest % shape[d]);
    rest = Math.floor(rest / shape[d]);
  }
  return { count, index, value: values[first] };
}
