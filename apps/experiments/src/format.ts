// How figures are written in every report, table and closing line of the CLI,
// and in the docs' results table (docs/scripts/results-table.mjs imports the
// built module): one formatting per kind of figure. Plain functions, no tfjs.

/** `85.89%`, or `n/a` for a missing figure. */
export const pct = (v: number | undefined, digits = 2): string =>
  v !== undefined && Number.isFinite(v) ? `${v.toFixed(digits)}%` : 'n/a';

/**
 * A percentage written beside the bound it is judged against (a bisection's target): with more
 * decimals, up to 4, while two would show it equal to the bound, so that 99.8992% against a
 * target of 99.9% reads `99.899%`, a miss, not `99.90%`.
 */
export const pctBeside = (v: number | undefined, bound: number): string => {
  if (v === undefined || !Number.isFinite(v)) return 'n/a';
  let d = 2;
  while (d < 4 && v !== bound && v.toFixed(d) === bound.toFixed(d)) d++;
  return `${v.toFixed(d)}%`;
};

/** A change in percentage points with its sign: `+0.23 pp`, `-0.10 pp`. */
export const pp = (v: number | undefined): string =>
  v !== undefined && Number.isFinite(v) ? `${v >= 0 ? '+' : ''}${v.toFixed(2)} pp` : 'n/a';

/** A count with thousands separators: `266,610`. */
export const int = (v: number | undefined): string =>
  v !== undefined && Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : 'n/a';

/** A latency: two decimals below 10 ms, one above. */
export const ms = (v: number | undefined): string =>
  v !== undefined && Number.isFinite(v) ? `${v.toFixed(v < 10 ? 2 : 1)} ms` : 'n/a';

/**
 * A duration: whole seconds from 10 s (`443 s`), tenths below (`3.2 s`), and `< 0.1 s` for a
 * phase that took less (a tiny run's are not `0 s`, which only a phase that did not run shows).
 */
export const seconds = (v: number | undefined): string =>
  v === undefined || !Number.isFinite(v)
    ? 'n/a'
    : v >= 9.95
      ? `${Math.round(v)} s`
      : v >= 0.05
        ? `${v.toFixed(1)} s`
        : v > 0
          ? '< 0.1 s'
          : '0 s';

/**
 * An exact p-value with two significant digits. One below 1e-300 reads `< 1e-300`: below
 * 2.2e-308 a double loses digits (8.4e-323 comes out of the sum as 7.9e-323) and then becomes 0.
 */
export const pValueText = (p: number): string =>
  p >= 1e-300 ? p.toPrecision(2) : p >= 0 ? '< 1e-300' : 'n/a';

/**
 * `[-0.05, +0.51 pp]`: the 95% interval of a test error change. Two models that never
 * disagree give no interval (the paired test's bounds are then both exactly 0), and say so.
 */
export function ciText(ci: [number, number]): string {
  if (ci[0] === 0 && ci[1] === 0) return 'n/a (the models never disagree)';
  return `[${pp(ci[0]).replace(' pp', '')}, ${pp(ci[1])}]`;
}

/** The budget cell of a results row: `reduced`, `full`, or a named budget marked `(reduced)`. */
export function budgetText(r: { budget?: string; reduced?: boolean }): string {
  return r.reduced && r.budget !== 'reduced' ? `${r.budget} (reduced)` : (r.budget ?? 'n/a');
}

/** Names as a message lists them: the first three in sorted order, `...` for more. */
export const firstNames = (names: readonly string[]): string =>
  [...names].sort().slice(0, 3).join(', ') + (names.length > 3 ? ', ...' : '');
