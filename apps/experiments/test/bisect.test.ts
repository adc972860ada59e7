// The bisection of `normprune sweep --target-compression`, driven by fake outcomes:
// which lambdas it runs, and what it reports, for the cases a researcher relies on.
import { bisectLambda, bisectionNote, bisectionOutcome } from '../src/sweep';
import type { SweepPoint } from '../src/report';

/** Runs a bisection against `compression(lambda)`; returns the lambdas run, in order, and its points. */
async function path(start: number, target: number, steps: number, compression: (l: number) => number) {
  const points: SweepPoint[] = [];
  const hi = await bisectLambda(start, target, steps, async (lambda) => {
    const p: SweepPoint = {
      label: `lambda-${lambda}`,
      dir: `lambda-${lambda}`,
      lambda,
      compressionPct: compression(lambda),
      validationErrorPct: 2,
      testErrorPct: 2,
      baselineValidationErrorPct: 2,
      baselineTestErrorPct: 2,
    };
    points.push(p);
    return p;
  });
  return { lambdas: points.map((p) => p.lambda), points, hi, ...bisectionOutcome(points, target) };
}

/** A monotone compression: 0% at lambda 0, saturating at 100%. */
const monotone = (l: number) => 100 * (1 - Math.exp(-l / 0.01));

test('monotone: expands by 4 until the target is reached, then bisects geometrically', async () => {
  // 50% at lambda = 0.01 ln 2 = 0.006931...
  const r = await path(0.001, 50, 4, monotone);
  expect(r.lambdas.slice(0, 3)).toEqual([0.001, 0.004, 0.016]);
  expect(r.lambdas).toHaveLength(7);
  expect(r.lambdas[3]).toBe(Number(Math.sqrt(0.004 * 0.016).toPrecision(4)));
  expect(r.ok!.compressionPct).toBeGreaterThanOrEqual(50);
  expect(r.ok!.lambda).toBeGreaterThan(0.01 * Math.LN2);
  // The answer is the smallest lambda run that reached the target; every smaller one missed.
  for (const p of r.points)
    if (p.lambda < r.ok!.lambda) expect(p.compressionPct).toBeLessThan(50);
    else expect(p.compressionPct).toBeGreaterThanOrEqual(50);
  expect(new Set(r.lambdas).size).toBe(r.lambdas.length);
});

test('the target reached exactly counts as reached', async () => {
  const r = await path(0.001, 40, 0, (l) => (l >= 0.004 ? 40 : 10));
  expect(r.lambdas).toEqual([0.001, 0.004]);
  expect(r.ok!.lambda).toBe(0.004);
});

test("the config's own lambda reaching the target: the search goes down for a smaller lambda", async () => {
  const r = await path(0.004, 10, 4, monotone);
  expect(r.lambdas[0]).toBe(0.004);
  expect(r.lambdas[1]).toBe(0.001);
  expect(Math.min(...r.lambdas)).toBeLessThan(0.004);
  expect(r.ok!.lambda).toBeLessThan(0.004);
  // 10% at lambda 0.01 ln(10/9) = 0.001054
  expect(r.ok!.lambda).toBeGreaterThan(0.01 * Math.log(10 / 9));
});

test('a plateau: several lambdas giving the same compression', async () => {
  const plateau = (l: number) => (l < 0.002 ? 5 : l < 0.05 ? 60 : 90);
  const r = await path(0.001, 60, 6, plateau);
  expect(r.ok!.compressionPct).toBe(60);
  expect(r.ok!.lambda).toBeGreaterThanOrEqual(0.002);
  expect(r.ok!.lambda).toBeLessThan(0.0021);
  expect(new Set(r.lambdas).size).toBe(r.lambdas.length);
});

test('a non-monotone compression: the answer is still the smallest lambda run that reached it', async () => {
  // Noise: at 0.008 the compression dips below the target (45%, not 55%); 0.016 reaches it.
  const noisy = (l: number) => (l === 0.008 ? 45 : monotone(l));
  const r = await path(0.001, 50, 4, noisy);
  expect(r.lambdas).toContain(0.008);
  const hits = r.points.filter((p) => p.compressionPct >= 50).map((p) => p.lambda);
  expect(r.ok!.lambda).toBe(Math.min(...hits));
});

test('--bisect-steps 0 and 1', async () => {
  expect((await path(0.001, 50, 0, monotone)).lambdas).toEqual([0.001, 0.004, 0.016]);
  expect((await path(0.001, 50, 1, monotone)).lambdas).toEqual([0.001, 0.004, 0.016, 0.008]);
});

test('never reached: stops after four expansions, without bisecting', async () => {
  const r = await path(0.001, 99, 4, () => 10);
  expect(r.lambdas).toEqual([0.001, 0.004, 0.016, 0.064, 0.256]);
  expect(r.ok).toBeUndefined();
  expect(r.largest.lambda).toBe(0.256);
});

test('a lambda of 0 in the config starts the search at 1e-3', async () => {
  expect((await path(0, 50, 0, monotone)).lambdas).toEqual([0.001, 0.004, 0.016]);
});

test('a NaN validation error (a diverged point) does not steer the search: only compression decides', async () => {
  const points: number[] = [];
  await bisectLambda(0.001, 50, 2, async (lambda) => {
    points.push(lambda);
    return { compressionPct: monotone(lambda), validationErrorPct: NaN };
  });
  expect(points).toEqual((await path(0.001, 50, 2, monotone)).lambdas);
});

test('a NaN compression (a diverged point) counts as missing the target: the search goes on', async () => {
  const diverged = (l: number) => (l === 0.004 ? NaN : monotone(l));
  const r = await path(0.001, 50, 2, diverged);
  expect(r.lambdas.slice(0, 3)).toEqual([0.001, 0.004, 0.016]);
  expect(r.ok!.compressionPct).toBeGreaterThanOrEqual(50);
  // In the bisection too: a NaN point is a miss, and the search moves above it.
  const mid = Number(Math.sqrt(0.004 * 0.016).toPrecision(4));
  const r2 = await path(0.001, 50, 2, (l) => (l === mid ? NaN : monotone(l)));
  expect(r2.lambdas[3]).toBe(mid);
  expect(r2.lambdas[4]).toBeGreaterThan(mid);
  expect(r2.ok!.lambda).toBeGreaterThan(mid);
});

test('many steps: no lambda is run twice, and the bisection stops once no 4-digit lambda is left in the bracket', async () => {
  const r = await path(0.001, 50, 40, monotone);
  expect(new Set(r.lambdas).size).toBe(r.lambdas.length);
  expect(r.lambdas.length).toBeLessThan(3 + 40);
  // The bracket is two neighbouring 4-digit lambdas: the answer, and the largest below it, which missed.
  const below = Math.max(...r.lambdas.filter((l) => l < r.ok!.lambda));
  expect(monotone(below)).toBeLessThan(50);
  expect(r.ok!.lambda - below).toBeLessThanOrEqual(1e-6 + 1e-12);
  // And the same with the search going down from the config's lambda.
  const down = await path(0.05, 50, 40, monotone);
  expect(new Set(down.lambdas).size).toBe(down.lambdas.length);
  expect(down.ok!.lambda).toBe(r.ok!.lambda);
});

test('each bisection point is the middle of a bracket of lambdas run: the smallest that reached, the largest below it that missed', async () => {
  for (const [start, f] of [
    [0.001, monotone],
    [0.0015, (l: number) => 100 * (1 - Math.exp(-l / 0.0123))],
    [0.05, monotone],
  ] as const) {
    const r = await path(start, 50, 8, f);
    const first = r.lambdas.findIndex((l) => f(l) >= 50);
    for (let i = first + 1; i < r.lambdas.length; i++) {
      const before = r.points.slice(0, i);
      const hi = Math.min(...before.filter((p) => p.compressionPct >= 50).map((p) => p.lambda));
      const lo = Math.max(0, ...before.filter((p) => p.lambda < hi).map((p) => p.lambda));
      expect(r.lambdas[i]).toBe(Number((lo > 0 ? Math.sqrt(lo * hi) : hi / 4).toPrecision(4)));
    }
  }
});

test('the note gives the answer and the bracket below it, or says that nothing below it was tried', async () => {
  const up = await path(0.001, 50, 2, monotone);
  expect(up.below!.compressionPct).toBeLessThan(50);
  expect(bisectionNote(up.points, 50)).toBe(
    `Bisection for >= 50% of parameters removed: smallest lambda reaching it is ${up.ok!.lambda} ` +
      `(${up.ok!.compressionPct.toFixed(2)}% removed); the largest lambda below it, ${up.below!.lambda}, ` +
      `missed it (${up.below!.compressionPct.toFixed(2)}% removed).`,
  );
  // The config's lambda reaches it, and so does every lambda tried below it: no bracket.
  const down = await path(0.016, 10, 1, monotone);
  expect(down.lambdas).toEqual([0.016, 0.004]);
  expect(down.below).toBeUndefined();
  expect(bisectionNote(down.points, 10)).toMatch(
    /smallest lambda reaching it is 0\.004 \(32\.97% removed\); no smaller lambda was tried, so a smaller one may reach it too\.$/,
  );
  // A NaN point below the answer is named as the miss it counts as.
  const nan = await path(0.001, 50, 0, (l) => (l === 0.004 ? NaN : monotone(l)));
  expect(bisectionNote(nan.points, 50)).toMatch(
    /the largest lambda below it, 0\.004, missed it \(n\/a removed\)\.$/,
  );
  const never = await path(0.001, 99, 4, () => 10);
  expect(bisectionNote(never.points, 99)).toBe(
    'Bisection for >= 99% of parameters removed: no lambda tried reached it (largest 0.256).',
  );
});
