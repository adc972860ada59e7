import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { homedir, hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';

export function cacheRoot(cacheDir?: string): string {
  if (cacheDir) return cacheDir;
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.cache'), 'normprune');
}

/**
 * For the offline errors: a `NORMPRUNE_DATA_DIR` that does not exist is skipped
 * like an unset one, so say so, or a typo in it would go unseen.
 */
export function missingDataDirNote(): string {
  const env = process.env.NORMPRUNE_DATA_DIR;
  return env && !existsSync(env) ? `. NORMPRUNE_DATA_DIR is set to ${env}, which does not exist` : '';
}

/** Whether `NORMPRUNE_OFFLINE` is set to something other than '', '0' or 'false'. */
function envOffline(): boolean {
  const v = process.env.NORMPRUNE_OFFLINE;
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
}

/**
 * Whether the network is forbidden: by `offline: true`, or by
 * `NORMPRUNE_OFFLINE` in the environment, which wins over `offline: false` so
 * that a CI job setting it can rely on no download happening.
 */
export function isOffline(offline?: boolean): boolean {
  return offline === true || envOffline();
}

/**
 * For the offline errors, when the environment forbade the network and the
 * options did not: say so, and how to allow downloads, or the user who passed
 * `offline: false` would not know why it had no effect.
 */
export function offlineEnvNote(offline?: boolean): string {
  if (offline === true || !envOffline()) return '';
  return (
    `. NORMPRUNE_OFFLINE=${process.env.NORMPRUNE_OFFLINE} is set in the environment, which forbids downloads ` +
    'even with { offline: false }; unset it (`unset NORMPRUNE_OFFLINE`, or NORMPRUNE_OFFLINE=0) to allow them'
  );
}

export function tempPath(final: string): string {
  return `${final}.tmp-${HOST}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/**
 * This machine's name as a temporary file carries it: a process id means nothing on another
 * host, or in another container (its own PID namespace) sharing the cache folder.
 */
const HOST = hostname().replace(/[^A-Za-z0-9.]/g, '_') || 'host';

/** A temporary file of another host (or an unreadable one) older than this is abandoned. */
const ABANDONED_MS = 24 * 3600 * 1000;

/**
 * Deletes the temporary siblings of `final` (`<final>.tmp-<host>-<pid>-<hex>`) that writers
 * killed mid-way left: on this host, when their process no longer exists; from another host or
 * container, whose processes this one cannot see, only when untouched for a day (a live writer
 * there would otherwise lose its file mid-write). Names of earlier versions (`<pid>-<hex>`, no
 * host) are judged as another host's.
 */
export function removeStaleTemps(final: string): void {
  const dir = dirname(final);
  const prefix = `${basename(final)}.tmp-`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(?:(.+)-)?(\d+)-[0-9a-f]{8}$/.exec(name.slice(prefix.length));
    if (!m) continue;
    const path = join(dir, name);
    if (m[1] !== HOST) {
      try {
        if (Date.now() - statSync(path).mtimeMs > ABANDONED_MS) rmSync(path, { force: true });
      } catch {
        // Gone already, or not ours to judge.
      }
      continue;
    }
    if (Number(m[2]) === process.pid) continue;
    try {
      process.kill(Number(m[2]), 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') rmSync(path, { force: true });
    }
  }
}

/**
 * Writes through a temporary file and a rename, so readers never see half a
 * file. No fsync: after a crash the reader's own checks (header, sizes,
 * payload sha256) reject a file the rename got ahead of, which costs a
 * re-decode, while an fsync of 180 MB costs seconds on every first load.
 */
export function writeAtomic(final: string, chunks: Uint8Array[]): void {
  mkdirSync(dirname(final), { recursive: true });
  const tmp = tempPath(final);
  try {
    // Chunk by chunk: concatenating 180 MB first would double the peak memory.
    const fd = openSync(tmp, 'w');
    try {
      for (const c of chunks) {
        let off = 0;
        while (off < c.length) off += writeSync(fd, c, off, c.length - off);
      }
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, final);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  removeStaleTemps(final);
}
