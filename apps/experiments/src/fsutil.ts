// Every output file is written to a temporary name and renamed into place, so
// an interrupted or failed run never leaves a half-written file behind.
import {
  accessSync,
  chmodSync,
  closeSync,
  constants,
  cpSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { makeDirs } from '@normprune/runtime';

export { makeDirs };

let counter = 0;

/**
 * Writes a file atomically (temp file in the same folder, then rename). A
 * symlink is written through (its target is replaced, the link stays), and an
 * existing file keeps its permissions. A failed write leaves no temp file.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  let target = file;
  let mode: number | undefined;
  try {
    target = realpathSync(file);
    mode = statSync(target).mode & 0o7777;
  } catch {
    makeDirs(dirname(file)); // a new file
  }
  const tmp = join(dirname(target), `.${process.pid}.${++counter}.tmp`);
  try {
    writeFileNamed(tmp, data);
    if (mode !== undefined) chmodSync(tmp, mode);
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  // A process killed mid-write left its temp file here: the next write clears it.
  for (const f of ourLeftovers(readdirSync(dirname(target))))
    rmSync(join(dirname(target), f), { force: true });
}

/**
 * `writeFileSync` whose errors name the file (Node's ENOSPC says only "write"),
 * and for a full disk, what to do.
 */
export function writeFileNamed(file: string, data: string | Uint8Array): void {
  try {
    writeFileSync(file, data);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(
      `cannot write ${file}: ${(e as Error).message}` +
        (code === 'ENOSPC' || code === 'EDQUOT'
          ? '; the disk is full: free some space and run again (with --resume if a checkpoint was written)'
          : ''),
    );
  }
}

/** Writes JSON atomically, pretty-printed. */
export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n');
}

/**
 * Replaces folder `dir` by the folder `fill` writes into a temporary sibling:
 * the old copy stays until the new one is complete. Entries of the old copy
 * that `keep` accepts are carried over.
 */
export async function writeDirAtomic(
  dir: string,
  fill: (tmp: string) => Promise<void>,
  keep: (name: string) => boolean = () => false,
): Promise<void> {
  const tmp = `${dir}.tmp`;
  const old = `${dir}.old`;
  recoverDir(dir);
  rmSync(tmp, { recursive: true, force: true });
  makeDirs(tmp);
  try {
    await fill(tmp);
    // Entries of the old copy `keep` names (a user's files) go into the new one.
    if (existsSync(dir))
      for (const name of readdirSync(dir))
        if (keep(name) && !existsSync(join(tmp, name)))
          cpSync(join(dir, name), join(tmp, name), { recursive: true });
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true }); // a failed write (a full disk) leaves nothing
    throw e;
  }
  rmSync(old, { recursive: true, force: true });
  if (existsSync(dir)) renameSync(dir, old);
  renameSync(tmp, dir);
  rmSync(old, { recursive: true, force: true });
}

/**
 * Puts back a folder `writeDirAtomic` was replacing when the process died
 * between its two renames: `dir` gone, its complete old copy in `dir.old`.
 */
export function recoverDir(dir: string): void {
  if (!existsSync(dir) && existsSync(`${dir}.old`)) renameSync(`${dir}.old`, dir);
}

/** Removes a folder so that a process killed meanwhile never leaves it half removed: renamed away first. */
export function removeDir(dir: string): void {
  const gone = `${dir}.removing`;
  rmSync(gone, { recursive: true, force: true });
  if (existsSync(dir)) renameSync(dir, gone);
  rmSync(gone, { recursive: true, force: true });
}

/**
 * Replaces folder `dest` by a copy of the entries `names` of `src` that exist,
 * atomically (the old copy stays until the new one is complete); entries of
 * `dest` not among `names` (a user's notes) are kept.
 */
export function copyDirAtomic(src: string, dest: string, names: readonly string[]): void {
  const tmp = `${dest}.${process.pid}.tmp`;
  const old = `${dest}.${process.pid}.old`;
  rmSync(tmp, { recursive: true, force: true });
  try {
    makeDirs(tmp);
    for (const name of names)
      if (existsSync(join(src, name))) cpSync(join(src, name), join(tmp, name), { recursive: true });
    if (existsSync(dest))
      for (const name of readdirSync(dest))
        if (!names.includes(name)) cpSync(join(dest, name), join(tmp, name), { recursive: true });
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  rmSync(old, { recursive: true, force: true });
  if (existsSync(dest)) renameSync(dest, old);
  renameSync(tmp, dest);
  rmSync(old, { recursive: true, force: true });
}

/** Whether process `pid` has ended (a kill with signal 0 finds no such process). */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** The lock file a run holds in its folder while it writes there. */
export const LOCK_FILE = '.normprune.lock';

/**
 * Claims `dir` for this process until the returned function is called: a
 * second process writing the same folder is refused, naming the first; a lock
 * left by a process that died is taken over.
 */
export function lockDir(dir: string, what: string): () => void {
  const file = join(dir, LOCK_FILE);
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeFileSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => rmSync(file, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw e;
      const pid = Number.parseInt(readFileSync(file, 'utf8'), 10);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && !processGone(pid))
        throw new Error(
          `${dir} is being written by another normprune process (pid ${pid}, ${what}); wait for it to end, or choose another --out`,
        );
      rmSync(file, { force: true }); // its process is gone
    }
  }
}

/** Throws a clear error unless `dir` exists (or can be created) and is writable. */
export function ensureWritableDir(dir: string): void {
  try {
    makeDirs(dir);
    accessSync(dir, constants.W_OK);
    // A probe left by a process killed right here is recognised (and removed) by `ourLeftovers`.
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

/**
 * Of a folder's entries, the temporary files of normprune processes that have
 * ended (a write probe, an atomic write's temp file): leftovers of a kill, not
 * files of the user's.
 */
export function ourLeftovers(entries: readonly string[]): string[] {
  return entries.filter((e) => {
    const m = /^\.write-probe-(\d+)$/.exec(e) ?? /^\.(\d+)\.\d+\.tmp$/.exec(e);
    return m !== null && processGone(Number(m[1]));
  });
}
