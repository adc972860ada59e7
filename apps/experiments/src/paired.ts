// The paired test of two models' error rates on one test set: pure arithmetic on their
// per-sample outcomes (`pairedCounts` in measure.ts collects them), so that reports and
// tables can use it without tfjs.

/**
 * Outcomes of two models on the same samples: what a paired test of their error rates needs.
 * `onlyFirstWrong` are samples the first model misclassifies and the second gets right.
 */
export interface PairedCounts {
  n: number;
  bothWrong: number;
  onlyFirstWrong: number;
  onlySecondWrong: number;
}

/** A paired comparison of a compressed model with its baseline on the test set. */
export interface PairedTest {
  /** Test samples. */
  n: number;
  /** Misclassified by both models. */
  bothWrong: number;
  /** Misclassified by the baseline only (the compressed model fixed them). */
  onlyBaselineWrong: number;
  /** Misclassified by the compressed model only (pruning broke them). */
  onlyCompressedWrong: number;
  /** Two-sided exact McNemar p-value for "both models have the same error rate". */
  pValue: number;
  /**
   * 95% confidence interval of the test error change, in percentage points: the exact
   * (Clopper-Pearson) interval of the share of discordant samples that the compressed model
   * gets wrong, conditional on their number, scaled to the whole test set.
   */
  changeCi95Pp: [number, number];
}

// log(k!) for k = 0..n.
function logFactorials(n: number): Float64Array {
  const f = new Float64Array(n + 1);
  for (let k = 1; k <= n; k++) f[k] = f[k - 1] + Math.log(k);
  return f;
}

/** P(X <= k) for X ~ Binomial(m, p). */
function binomialCdf(k: number, m: number, p: number, lf: Float64Array): number {
  if (k < 0) return 0;
  if (k >= m) return 1;
  if (p <= 0) return 1;
  if (p >= 1) return 0;
  const lp = Math.log(p);
  const lq = Math.log1p(-p);
  let s = 0;
  for (let i = 0; i <= k; i++) s += Math.exp(lf[m] - lf[i] - lf[m - i] + i * lp + (m - i) * lq);
  return Math.min(1, s);
}

/**
 * Bisection on [lo, hi] for the point where `below` turns from true to false (`below` must be
 * true up to some x and false after it): at most `steps` halvings, stopping early once the
 * bracket is within `relTol` x hi. Returns the bracket's midpoint.
 */
export function bisect(
  below: (x: number) => boolean,
  lo: number,
  hi: number,
  steps: number,
  relTol = 0,
): number {
  for (let i = 0; i < steps && hi - lo > relTol * hi; i++) {
    const mid = (lo + hi) / 2;
    if (below(mid)) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

// The p in [0, 1] at which `f` (monotone decreasing in p) crosses `level`.
function solveDecreasing(f: (p: number) => number, level: number): number {
  return bisect((p) => f(p) > level, 0, 1, 60);
}

/**
 * The paired test of a compressed model against its baseline from their counts
 * (`pairedCounts(baseline, compressed, ...)`): exact McNemar p-value and the 95% interval of the
 * error change. Of the m samples only one model gets wrong, c are the compressed model's; under
 * "no change" c ~ Binomial(m, 1/2), and the change is (2c - m) / n.
 */
export function pairedTest(counts: PairedCounts): PairedTest {
  const { n, bothWrong } = counts;
  const b = counts.onlyFirstWrong;
  const c = counts.onlySecondWrong;
  const m = b + c;
  const lf = logFactorials(m);
  const pValue = m === 0 ? 1 : Math.min(1, 2 * binomialCdf(Math.min(b, c), m, 0.5, lf));
  // Clopper-Pearson bounds of the compressed model's share of the discordant samples.
  const lower = c === 0 ? 0 : solveDecreasing((p) => binomialCdf(c - 1, m, p, lf), 0.975);
  const upper = c === m ? 1 : solveDecreasing((p) => binomialCdf(c, m, p, lf), 0.025);
  // With no discordant sample the change is exactly 0.
  const change = (share: number) => (m === 0 ? 0 : (100 * m * (2 * share - 1)) / n);
  return {
    n,
    bothWrong,
    onlyBaselineWrong: b,
    onlyCompressedWrong: c,
    pValue,
    changeCi95Pp: [change(lower), change(upper)],
  };
}

/** What `changePp` and `changeSePp` read: a paired test's counts. */
export type PairedOutcome = Pick<PairedTest, 'n' | 'onlyBaselineWrong' | 'onlyCompressedWrong'>;

/** The test error change (pp) a paired test's counts give: (compressed-only - baseline-only) / n. */
export function changePp(t: PairedOutcome): number {
  return (100 * (t.onlyCompressedWrong - t.onlyBaselineWrong)) / t.n;
}

/** Standard error (pp) of `changePp`, from the same counts (the normal approximation). */
export function changeSePp(t: PairedOutcome): number {
  const { n, onlyBaselineWrong: b, onlyCompressedWrong: c } = t;
  return (100 * Math.sqrt(Math.max(0, b + c - (c - b) ** 2 / n))) / n;
}

/** The second (compressed) model's error rate, as a fraction, from the same counts. */
export function compressedError(t: Pick<PairedTest, 'n' | 'bothWrong' | 'onlyCompressedWrong'>): number {
  return (t.bothWrong + t.onlyCompressedWrong) / t.n;
}
