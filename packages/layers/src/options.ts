// Options objects of the exported functions (of this package, and of prox and
// surgery, which import these): a key a function does not take (a misspelling
// such as `treshold`, `granularty`) is refused, naming it, the keys the function
// takes, and the one it likely misspells; read as no option at all, it would
// silently give the default. No Node here: browser builds use it too.
import { describeValue as describe } from './common.js';

/** The edit distance of two strings (insertions, deletions, substitutions, adjacent swaps). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.length][b.length];
}

/**
 * The key `word` most likely misspells: the nearest of `keys` by edit distance (case, `_` and
 * `-` ignored), if near enough to be a typo (at most 2 edits, and fewer than half the word;
 * `fp16` is too far from `float16`), else undefined.
 */
export function closestKey(word: string, keys: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[_-]/g, '');
  const w = norm(word);
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of keys) {
    const d = editDistance(w, norm(k));
    if (d < bestD) [best, bestD] = [k, d];
  }
  return bestD <= 2 && bestD < Math.max(2, w.length / 2) ? best : undefined;
}

/**
 * What is wrong with `options`, the options argument of a function taking the keys `keys`
 * (`example` shows an options object in the message), or undefined when nothing is: it must be
 * undefined or an object that is not an array, each of its own enumerable string keys one of
 * `keys` (inherited and symbol keys are not looked at; nor are the entries of a Map), and no
 * value null (a key left out, or undefined, gives the default).
 */
export function optionsProblem(
  options: unknown,
  keys: readonly string[],
  example: string,
): string | undefined {
  if (options === undefined) return undefined;
  if (options === null || typeof options !== 'object' || Array.isArray(options))
    return `options must be an object such as ${example}, got ${describe(options)}`;
  const unknown = Object.keys(options).filter((k) => !keys.includes(k));
  if (unknown.length === 0) {
    // null is what JSON writes for "no value", but no option takes it: read as the default it
    // would hide a mistake; only a key left out (or undefined) gives the default.
    const nulls = keys.filter((k) => (options as Record<string, unknown>)[k] === null);
    return nulls.length === 0
      ? undefined
      : `option${nulls.length > 1 ? 's' : ''} ${nulls.map((k) => `\`${k}\``).join(', ')} ` +
          `${nulls.length > 1 ? 'are' : 'is'} null: leave ${nulls.length > 1 ? 'them' : 'it'} out for the default, or give a value`;
  }
  const named = unknown.map((k) => {
    const meant = closestKey(k, keys);
    return `\`${k}\`${meant ? ` (did you mean \`${meant}\`?)` : ''}`;
  });
  return (
    `unknown option${unknown.length > 1 ? 's' : ''} ${named.join(', ')}; ` +
    `the options are ${keys.map((k) => `\`${k}\``).join(', ')}`
  );
}
