// Every output file is written to a temporary name and renamed into place, so
// an interrupted or failed run never leaves a half-written file behind.
import { accessSync, constants, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { makeDirs } from '@normprune/runtime';

export { makeDirs };

let counter = 0;

/** Writes a file atomically (temp file in the same folder, then rename). */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  makeDirs(dirname(file));
  const tmp = join(dirname(file), `.${process.pid}.${++counter}.tmp`);
  writeFileSync(tmp, data);
  renameSync(tmp, file);
}

/** Writes JSON atomically, pretty-printed. */
export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n');
}

/**
 * Replaces folder `dir` by the folder `fill` writes into a temporary sibling:
 * the old copy stays until the new one is complete.
 */
export async function writeDirAtomic(dir: string, fill: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = `${dir}.tmp`;
  const old = `${dir}.old`;
  rmSync(tmp, { recursive: true, force: true });
  makeDirs(tmp);
  await fill(tmp);
  rmSync(old, { recursive: true, force: true });
  if (existsSync(dir)) renameSync(dir, old);
  renameSync(tmp, dir);
  rmSync(old, { recursive: true, force: true });
}

/** Throws a clear error unless `dir` exists (or can be created) and is writable. */
export function ensureWritableDir(dir: string): void {
  try {
    makeDirs(dir);
    accessSync(dir, constants.W_OK);
    const probe = join(dir, `.write-probe-${process.pid}`);
    writeFileSync(probe, '');
    rmSync(probe);
  } catch (e) {
    throw new Error(`output directory ${dir} is not writable: ${(e as Error).message}`);
  }
}

/**
 * Reads a JSON file; a missing, truncated or malformed file throws an error
 * naming the file and `fix` (what to do about it), not a bare parser message.
 */
/**
 * Reads back what a run wrote: JSON has no NaN, so an error rate that could not be
 * measured (no validation split) was written as null; it reads back as NaN ("n/a"),
 * not as 0 once multiplied into a percentage.
 */
export function unmeasuredAsNaN(key: string, value: unknown): unknown {
  return value === null && /Error(Pct)?$/.test(key) ? NaN : value;
}

export function readJsonFile<T = any>(
  file: string,
  fix: string,
  reviver?: (key: string, value: unknown) => unknown,
): T {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(
      `cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); ${fix}`,
    );
  }
  try {
    return JSON.parse(text, reviver) as T;
  } catch (e) {
    throw new Error(`${file} is not valid JSON (${(e as Error).message}); ${fix}`);
  }
}
