import { DatasetError, shown } from './errors.js';

/**
 * mulberry32: a tiny 32-bit PRNG, good enough for shuffling and augmentation,
 * and identical on every platform so a seed reproduces a run exactly. It is
 * the generator behind {@link batches}' `seed`; use it for any other choice
 * (subsets, splits) that must replay with the same seed. A seed that is not
 * an integer from 0 to 2^32 - 1 is an `invalid-argument` error.
 */
export function mulberry32(seed: number): () => number {
  // seed >>> 0 would quietly turn 1.7, NaN, -1 or 'x' into some other seed.
  if (!(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32))
    throw new DatasetError('invalid-argument', {
      message: 'mulberry32: seed must be an integer from 0 to 2^32 - 1',
      found: String(shown(seed)),
    });
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Fisher-Yates permutation of 0..n-1, drawn from `rand` (e.g. {@link mulberry32}).
 * `rand` must return numbers in [0, 1), as `Math.random` does: a draw outside
 * it (1, a negative, NaN, a string) would index past the array and repeat an
 * index, so it is an `invalid-argument` error naming the value.
 */
export function permutation(n: number, rand: () => number): Uint32Array {
  if (!(Number.isInteger(n) && n >= 0) || typeof rand !== 'function')
    throw new DatasetError('invalid-argument', {
      message: 'permutation(n, rand) needs an integer n >= 0 and a generator such as mulberry32(seed)',
      found: `n ${shown(n)}, rand ${typeof rand}`,
    });
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const r: unknown = rand();
    if (!(typeof r === 'number' && r >= 0 && r < 1))
      throw new DatasetError('invalid-argument', {
        message: 'permutation: rand() must return a number in [0, 1), as Math.random and mulberry32(seed) do',
        found: String(shown(r)),
      });
    const j = Math.floor(r * (i + 1));
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}
