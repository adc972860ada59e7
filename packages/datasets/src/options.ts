// Options objects checked the same way in every exported function: a key the
// function does not know is an error naming it, not something silently ignored
// (a misspelled `dir` would otherwise load another data set without a word).
import { DatasetError, shown } from './errors.js';

/** Edit distance between two short strings: insertions, deletions, substitutions and swaps of neighbours. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

const squash = (s: string) => s.toLowerCase().replace(/[_-]/g, '');

/**
 * The allowed key a misspelled one most likely meant: the same name in another
 * case or with underscores (`cache_dir`), a synonym (`directory` for `dir`), one
 * a prefix of the other (`pad`, `padding`), or one or two typos away.
 */
function closest(
  key: string,
  allowed: readonly string[],
  synonyms: Record<string, string[]>,
): string[] | undefined {
  const k = squash(key);
  const exact = allowed.find((a) => squash(a) === k);
  if (exact) return [exact];
  // Only those `allowed` here: synonyms are shared by toTensors and batches, which take fewer or more keys.
  const meant = Object.hasOwn(synonyms, k) ? synonyms[k].filter((s) => allowed.includes(s)) : [];
  if (meant.length) return meant;
  let best: string | undefined;
  let bestD = Infinity;
  for (const a of allowed) {
    const d = distance(k, squash(a));
    if (d < bestD) [best, bestD] = [a, d];
  }
  if (best !== undefined && bestD <= (k.length <= 4 ? 1 : 2)) return [best];
  const prefix = allowed.find((a) => k.length >= 3 && (squash(a).startsWith(k) || k.startsWith(squash(a))));
  return prefix === undefined ? undefined : [prefix];
}

/**
 * Refuses the keys of `o` that `allowed` lacks: an `invalid-argument`
 * DatasetError naming the unknown key, the closest allowed one when one is near,
 * and every allowed key. `what` names the options in the message
 * (`loadMnist options`, `batches options`, `augment`).
 */
export function checkKeys(
  o: object,
  allowed: readonly string[],
  what: string,
  synonyms: Record<string, string[]> = {},
): void {
  for (const key of Object.keys(o)) {
    if (allowed.includes(key)) continue;
    const near = closest(key, allowed, synonyms);
    throw new DatasetError('invalid-argument', {
      message:
        `${what}: unknown option \`${key}\`` +
        (near ? ` (did you mean ${near.map((n) => `\`${n}\``).join(' or ')}?)` : ''),
      expected: `one of ${allowed.join(', ')}`,
      found: key,
    });
  }
}

/** A boolean option: true, false or undefined (the default); `'false'`, 0 or 1 would be read as their truthiness. */
export function checkBoolean(value: unknown, name: string): boolean | undefined {
  if (value === undefined || typeof value === 'boolean') return value;
  throw new DatasetError('invalid-argument', {
    message: `${name} must be true or false`,
    found: typeof value === 'string' ? String(shown(value)) : `${typeof value} ${String(value)}`,
  });
}
