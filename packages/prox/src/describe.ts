/**
 * A value as an error message shows it: numbers as they are, anything else
 * with its type, so that `'0.1'` (a string) does not read as the number 0.1.
 */
export function describe(v: unknown): string {
  if (typeof v === 'number') return String(v);
  if (v === null || v === undefined) return String(v);
  if (typeof v === 'string') return `${JSON.stringify(v)} (a string)`;
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (typeof v === 'object') return `an object (${(v as object).constructor?.name ?? 'Object'})`;
  return `${String(v)} (a ${typeof v})`;
}
