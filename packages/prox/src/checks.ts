import { describeValue } from '@normprune/layers';

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
