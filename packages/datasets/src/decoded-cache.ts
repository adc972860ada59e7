import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { writeAtomic } from './cache.js';
import { listTreeFiles } from './input.js';
import type { Dataset, Split } from './types.js';

/**
 * The decoded file's format and decode version. A file is keyed by its source's bytes (or tree)
 * alone, so a change to what decoding yields (pixels, order, labels, classes) must change this
 * (NPDSET02, ...): files of the old decode then read as foreign and are decoded again.
 */
const MAGIC = Buffer.from('NPDSET01', 'ascii');

interface Header {
  key: string;
  classes: string[];
  splits: { name: 'train' | 'test'; count: number; shape: [number, number, number] }[];
  payloadSha256: string;
  /** The archive or folder it was decoded from (absolute): a newer decode of it replaces this file. */
  source?: string;
}

/**
 * Identity of a directory tree: paths, sizes and mtimes of every file. Hashing
 * 60,000 small image files' bytes would cost more than it saves; an edit
 * changes the mtime, and that is what we need to notice.
 */
export function treeKey(dir: string): string {
  const h = createHash('sha256');
  for (const f of listTreeFiles(dir)) h.update(`${f.rel}\0${f.stat.size}\0${f.stat.mtimeMs}\n`);
  return 'tree-' + h.digest('hex');
}

export function cachePath(cacheRoot: string, name: string, key: string): string {
  return join(cacheRoot, 'decoded', `${name}-${key.replace(/^tree-/, 't').slice(0, 24)}.bin`);
}

/**
 * Reads a decoded data set back, or returns undefined when the file is
 * missing, from another source, truncated or corrupt: a bad cache costs a
 * re-decode, never a crash or wrong data.
 */
export function readDecoded(path: string, key: string): Dataset | undefined {
  if (!existsSync(path)) return undefined;
  try {
    const buf = readFileSync(path);
    if (buf.length < 12 || !buf.subarray(0, 8).equals(MAGIC)) return undefined;
    const hlen = buf.readUInt32LE(8);
    if (12 + hlen > buf.length) return undefined;
    const header = JSON.parse(buf.subarray(12, 12 + hlen).toString('utf8')) as Header;
    if (header.key !== key || !Array.isArray(header.splits) || !Array.isArray(header.classes))
      return undefined;
    const payload = buf.subarray(12 + hlen);
    let expected = 0;
    for (const s of header.splits) expected += s.count * (s.shape[0] * s.shape[1] * s.shape[2] + 1);
    if (payload.length !== expected) return undefined;
    if (createHash('sha256').update(payload).digest('hex') !== header.payloadSha256) return undefined;
    const out: Partial<Record<'train' | 'test', Split>> = {};
    let off = 0;
    for (const s of header.splits) {
      const per = s.shape[0] * s.shape[1] * s.shape[2];
      const images = payload.subarray(off, off + s.count * per);
      off += s.count * per;
      const labels = payload.subarray(off, off + s.count);
      off += s.count;
      for (const l of labels) if (l >= header.classes.length) return undefined;
      out[s.name] = { images, labels, count: s.count, shape: s.shape, numClasses: header.classes.length };
    }
    if (!out.train || !out.test) return undefined;
    return { train: out.train, test: out.test, classes: header.classes };
  } catch {
    return undefined;
  }
}

/**
 * Writes a decoded data set atomically (temporary file + rename). With `source`, the archive or
 * folder it was decoded from (absolute), the other decoded files of that source in the same
 * folder (its earlier contents: an archive re-made, a file of an image folder touched) are
 * removed: each is as large as the data set, and no load would read them again unless the
 * source went back to exactly those bytes (which then costs one decode).
 */
export function writeDecoded(path: string, key: string, ds: Dataset, source?: string): void {
  const parts: Uint8Array[] = [ds.train.images, ds.train.labels, ds.test.images, ds.test.labels];
  const sha = createHash('sha256');
  for (const p of parts) sha.update(p);
  const header: Header = {
    key,
    classes: ds.classes,
    splits: (['train', 'test'] as const).map((name) => ({
      name,
      count: ds[name].count,
      shape: ds[name].shape,
    })),
    payloadSha256: sha.digest('hex'),
    ...(source !== undefined ? { source } : {}),
  };
  const hbuf = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(hbuf.length, 0);
  writeAtomic(path, [MAGIC, len, hbuf, ...parts]);
  if (source !== undefined) removeEarlier(path, source);
}

/** Removes the decoded files beside `path` (same data set name) whose header names `source`. */
function removeEarlier(path: string, source: string): void {
  const dir = dirname(path);
  const prefix = basename(path).replace(/-[^-]*\.bin$/, '-');
  for (const f of readdirSync(dir)) {
    const other = join(dir, f);
    if (other === path || !f.startsWith(prefix) || !f.endsWith('.bin')) continue;
    if (headerOf(other)?.source === source) rmSync(other, { force: true });
  }
}

/** The header of a decoded file, read without its payload; undefined for anything else. */
function headerOf(path: string): Header | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const head = Buffer.alloc(12);
    if (readSync(fd, head, 0, 12, 0) !== 12 || !head.subarray(0, 8).equals(MAGIC)) return undefined;
    const hlen = head.readUInt32LE(8);
    if (hlen > 1 << 20) return undefined;
    const hbuf = Buffer.alloc(hlen);
    if (readSync(fd, hbuf, 0, hlen, 12) !== hlen) return undefined;
    return JSON.parse(hbuf.toString('utf8')) as Header;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
