import { readFileSync, readdirSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { DatasetError } from './errors.js';
import { checkBoolean, checkKeys } from './options.js';
import type { Dataset, LoadOptions } from './types.js';

const LOAD_KEYS = ['dir', 'file', 'offline', 'cacheDir', 'mirror'] as const;
/** Names a user may reach for instead of the load options' own (squashed: lower case, no `_` or `-`). */
const LOAD_SYNONYMS: Record<string, string[]> = {
  directory: ['dir'],
  folder: ['dir'],
  datadir: ['dir'],
  datadirectory: ['dir'],
  root: ['dir'],
  path: ['file', 'dir'],
  archive: ['file'],
  tar: ['file'],
  tarball: ['file'],
  filename: ['file'],
  cache: ['cacheDir'],
  cachedirectory: ['cacheDir'],
  cachepath: ['cacheDir'],
  url: ['mirror'],
  baseurl: ['mirror'],
  download: ['offline'],
};

/** `ds` with the path it was read from ({@link Dataset.source}). */
export function sourced(source: string, ds: Dataset): Dataset {
  return { ...ds, source };
}

function errnoOf(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException).code;
}

/** A failed stat or read of a file the user pointed at, as a DatasetError naming it. */
function unreadable(e: unknown, file: string, what: string): DatasetError {
  const errno = errnoOf(e);
  if (errno === 'ENOENT')
    return new DatasetError('missing-file', { file, message: `${what} not found`, cause: e });
  if (errno === 'ELOOP') {
    return new DatasetError('missing-file', {
      file,
      message: `${what} is a symbolic link loop; point at the real file`,
      cause: e,
    });
  }
  return new DatasetError('missing-file', {
    file,
    message: `${what} cannot be read (${(e as Error).message}); check its permissions`,
    cause: e,
  });
}

/**
 * Reads a whole file the user pointed at (`file`, a batch or IDX file in
 * `dir`). Missing, unreadable, a directory, or not a regular file (a FIFO or
 * a device would block or never end) is a DatasetError naming it, never a raw
 * ENOENT / EISDIR.
 */
export function readInputFile(file: string, what: string): Buffer {
  let st: Stats;
  try {
    st = statSync(file);
  } catch (e) {
    throw unreadable(e, file, what);
  }
  if (st.isDirectory()) {
    throw new DatasetError('invalid-argument', {
      file,
      message: `${what} is a directory, not a file; pass a directory as { dir }, or name the file inside it`,
    });
  }
  if (!st.isFile()) {
    throw new DatasetError('invalid-argument', {
      file,
      message: `${what} is not a regular file (a device, FIFO or socket); copy the data into a file`,
    });
  }
  return readTreeFile(file, what);
}

/** Reads a file `listTreeFiles` found (already known to be a regular file); a failure is a DatasetError naming it. */
export function readTreeFile(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw unreadable(e, file, what);
  }
}

/** One regular file of a directory tree: absolute path, path relative to the root (with '/'), and its stat. */
export interface TreeFile {
  path: string;
  rel: string;
  stat: Stats;
}

/** Why an entry of an image folder cannot be used, when stat failed on it. */
function badTreeEntry(e: unknown, p: string): DatasetError {
  const errno = errnoOf(e);
  const why =
    errno === 'ENOENT'
      ? 'is a symbolic link whose target does not exist (or was removed while the folder was read); remove the link or restore its target'
      : errno === 'ELOOP'
        ? 'is a symbolic link loop; remove the link'
        : `cannot be read (${(e as Error).message}); check its permissions`;
  return new DatasetError('bad-image', { file: p, message: `an entry of the image folder ${why}`, cause: e });
}

/**
 * Every regular file under `dir`, in sorted order, following symbolic links.
 * A dangling link, a link loop (also one through folders, e.g. `loop -> ..`),
 * or an entry that is neither file nor folder is a `bad-image` DatasetError
 * naming it; hidden entries (`.name`) that cannot be used are skipped, as the
 * image-folder reader ignores them anyway (an editor's `.#lock` link, say).
 */
export function listTreeFiles(dir: string): TreeFile[] {
  const out: TreeFile[] = [];
  const walk = (d: string, rel: string, ancestors: Set<string>) => {
    let names: string[];
    try {
      names = readdirSync(d).sort();
    } catch (e) {
      throw badTreeEntry(e, d);
    }
    for (const name of names) {
      const p = join(d, name);
      const r = rel ? `${rel}/${name}` : name;
      let st: Stats;
      try {
        st = statSync(p);
      } catch (e) {
        if (name.startsWith('.')) continue;
        throw badTreeEntry(e, p);
      }
      if (st.isDirectory()) {
        const id = `${st.dev}:${st.ino}`;
        if (ancestors.has(id)) {
          throw new DatasetError('bad-image', {
            file: p,
            message:
              'an entry of the image folder is a symbolic link loop: it leads back to a folder that contains it; remove the link',
          });
        }
        walk(p, r, new Set([...ancestors, id]));
      } else if (st.isFile()) {
        out.push({ path: p, rel: r, stat: st });
      } else if (!name.startsWith('.')) {
        throw new DatasetError('bad-image', {
          file: p,
          message: 'an entry of the image folder is not a regular file (a device, FIFO or socket); remove it',
        });
      }
    }
  };
  const root = statSync(dir);
  walk(dir, '', new Set([`${root.dev}:${root.ino}`]));
  return out;
}

/**
 * A folder the user chose (`dir`, or a NORMPRUNE_DATA_DIR folder) that does not exist, or is a
 * file: a DatasetError saying so, rather than one listing the data set's files as missing from
 * it. `holding` says what the folder should hold, for a file given as `dir`.
 */
export function checkChosenDir(dir: string, title: string, holding: string): void {
  let st: Stats;
  try {
    st = statSync(dir);
  } catch (e) {
    if (errnoOf(e) !== 'ENOENT') return;
    throw new DatasetError('missing-file', {
      file: dir,
      message: `${title}: the folder does not exist; check the path (a relative dir is taken from the working directory, ${process.cwd()})`,
      cause: e,
    });
  }
  if (!st.isDirectory())
    throw new DatasetError('invalid-argument', {
      file: dir,
      message: `${title}: this is a file, not a directory; pass an archive as { file }, or the folder holding ${holding} as { dir }`,
    });
}

/**
 * The load options, checked: an object (or nothing) with no key but `dir`,
 * `file`, `offline`, `cacheDir` and `mirror` (a misspelled `dir` must not
 * silently load another copy); `file`, `dir`, `cacheDir` and `mirror`
 * non-empty strings when given (an empty `file` is a mistake, not "no file": it
 * must not silently fall through to another source); `offline` a boolean.
 * `title` names the data set in the message.
 */
export function checkLoadOptions(o: LoadOptions | undefined, title: string): LoadOptions {
  if (o === undefined) return {};
  if (typeof o !== 'object' || o === null || Array.isArray(o))
    throw new DatasetError('invalid-argument', {
      message: 'load options must be an object such as { dir, file, offline }',
      found: JSON.stringify(o) ?? String(o),
    });
  checkKeys(o, LOAD_KEYS, `${title} load options`, LOAD_SYNONYMS);
  for (const key of ['file', 'dir', 'cacheDir', 'mirror'] as const) {
    const v = o[key];
    if (v !== undefined && (typeof v !== 'string' || v === ''))
      throw new DatasetError('invalid-argument', {
        message: `${key} must be a non-empty path${key === 'mirror' ? ' or URL' : ''} string`,
        found: typeof v === 'string' ? '""' : `${typeof v} ${String(v)}`,
      });
  }
  checkBoolean(o.offline, 'offline');
  if (o.mirror !== undefined) checkMirror(o.mirror, 'mirror');
  return o;
}

/**
 * A mirror's base URL, checked to be http(s): a folder path (`/srv/mirror`), a host without a
 * scheme (`localhost:8080`) or a `file:` / `ftp:` URL could never be fetched, and would cost
 * three attempts and an 'Invalid URL' before saying so. `what` names the option or variable.
 */
function checkMirror(mirror: string, what: string): string {
  let protocol: string | undefined;
  try {
    protocol = new URL(mirror).protocol;
  } catch {
    protocol = undefined;
  }
  if (protocol !== 'http:' && protocol !== 'https:')
    throw new DatasetError('invalid-argument', {
      message:
        `${what} must be an http:// or https:// URL (the files are fetched as <mirror>/<dataset>/<file>); ` +
        'for files in a folder, pass { dir } or set NORMPRUNE_DATA_DIR',
      found: JSON.stringify(mirror),
    });
  return mirror.replace(/\/+$/, '');
}

/** The mirror to download from, `mirror` else `NORMPRUNE_DATA_MIRROR` (checked), without a trailing slash. */
export function mirrorOf(o: LoadOptions): string | undefined {
  if (o.mirror !== undefined) return checkMirror(o.mirror, 'mirror');
  const env = process.env.NORMPRUNE_DATA_MIRROR;
  return env ? checkMirror(env, 'NORMPRUNE_DATA_MIRROR') : undefined;
}
