import * as tf from '@tensorflow/tfjs-core';
import { describeValue, optionsProblem } from '@normprune/layers';

/**
 * `v` if it is a finite number >= 0; otherwise an error `<label> must be a
 * finite number >= 0, got <v with its type>`. The one check behind lambda,
 * schedule parameters and layer multipliers.
 */
export function finiteNonnegative(label: string, v: unknown): number {
  if (typeof v !== 'number' || !(v >= 0) || !Number.isFinite(v))
    throw new Error(`${label} must be a finite number >= 0, got ${describeValue(v)}`);
  return v;
}

/**
 * How many entries of `x` are NaN, as a float32 scalar. `x != x` holds for NaN
 * only; `tf.isNaN` would do, but the wasm backend of tfjs 4.0 has no
 * `IsNan` kernel.
 */
export function countNaN(x: tf.Tensor): tf.Scalar {
  return tf.sum(tf.cast(tf.notEqual(x, x), 'float32'));
}

/**
 * Throws `<who>: unknown option ...` for a key of `o` not among `keys` (a misspelled optional
 * key would otherwise silently give its default), or for `o` not an object (`example` shows one;
 * undefined is no options at all, unless `required`).
 */
export function checkOptionKeys(
  who: string,
  o: unknown,
  keys: readonly string[],
  example: string,
  required = false,
): void {
  if (required && o === undefined)
    throw new Error(`${who}: options must be an object such as ${example}, got undefined`);
  const problem = optionsProblem(o, keys, example);
  if (problem) throw new Error(`${who}: ${problem}`);
}

/** `value` if it is a boolean; otherwise an error naming the option ('no' would be truthy). */
export function checkBoolean(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean')
    throw new Error(`${name} must be true or false, got ${describeValue(value)}`);
  return value;
}
