import { posix } from 'node:path';
import { DatasetError } from './errors.js';
import { gunzipChecked, isGzip } from './idx.js';
import { readInputFile } from './input.js';

/** One regular file or directory of a tar archive; `data` views the archive's buffer. */
export interface TarEntry {
  name: string;
  type: 'file' | 'directory';
  data: Uint8Array;
}

export interface TarOptions {
  /** Refuse archives whose files add up to more than this (default 2 GiB). */
  maxTotalBytes?: number;
}

const DEFAULT_MAX = 2 * 1024 * 1024 * 1024;
const CUT_SHORT =
  'the archive is cut short (an interrupted download or copy); replace it with a complete copy';
const decoder = new TextDecoder('utf-8');

function field(h: Uint8Array, off: number, len: number): string {
  let end = off;
  while (end < off + len && h[end] !== 0) end++;
  return decoder.decode(h.subarray(off, end));
}

function octal(h: Uint8Array, off: number, len: number, file: string): number {
  if (h[off] & 0x80) {
    // GNU base-256 for sizes >= 8 GiB: far beyond the cap, but parse to report it.
    let v = h[off] & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + h[off + i];
    return v;
  }
  const s = field(h, off, len).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s))
    throw new DatasetError('corrupt-archive', {
      file,
      message: 'bad octal number in tar header (the archive is damaged or not a tar file)',
      found: JSON.stringify(s),
    });
  return parseInt(s, 8);
}

function parsePax(data: Uint8Array, file: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < data.length) {
    let sp = i;
    while (sp < data.length && data[sp] !== 0x20) sp++;
    const digits = decoder.decode(data.subarray(i, sp));
    const len = /^\d+$/.test(digits) ? Number(digits) : NaN;
    if (!Number.isSafeInteger(len) || len <= sp - i + 1 || i + len > data.length) {
      throw new DatasetError('corrupt-archive', { file, message: 'bad pax extended header record' });
    }
    const rec = decoder.decode(data.subarray(sp + 1, i + len - 1));
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    i += len;
  }
  return out;
}

/**
 * The byte size of an entry: a pax `size` record (decimal digits only, so
 * `-1536`, `1e3` or `0x10` cannot move the reader backwards or sideways),
 * else the ustar octal field. Anything else is a broken header.
 */
function entrySize(h: Uint8Array, pax: Record<string, string>, member: string): number {
  // An empty pax value deletes the record (POSIX): the ustar field counts.
  if (pax.size === undefined || pax.size === '') return octal(h, 124, 12, member);
  const size = /^\d+$/.test(pax.size) ? Number(pax.size) : NaN;
  if (!Number.isSafeInteger(size)) {
    throw new DatasetError('corrupt-archive', {
      file: member,
      message:
        'bad size in pax extended header: it must be decimal digits; the archive is damaged or not a tar file',
      found: JSON.stringify(pax.size),
    });
  }
  return size;
}

/**
 * Normalises an entry path and refuses anything that could land outside the
 * archive's root if extracted (absolute paths, drive letters, `..`): even
 * though we never extract, such an archive is hostile or broken.
 */
function safeName(raw: string, file: string): string {
  if (raw.startsWith('/') || /^[A-Za-z]:/.test(raw) || raw.includes('\\')) {
    throw new DatasetError('unsafe-archive', { file, message: 'absolute path in archive', found: raw });
  }
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..'))
    throw new DatasetError('unsafe-archive', { file, message: "'..' in archive path", found: raw });
  return parts.join('/');
}

/** Resolves a link target inside the archive, refusing targets that leave it. */
function linkTarget(entry: string, target: string, hard: boolean, file: string): string {
  if (target.startsWith('/') || /^[A-Za-z]:/.test(target)) {
    throw new DatasetError('unsafe-archive', {
      file,
      message: `link ${entry} points to an absolute path`,
      found: target,
    });
  }
  const joined = hard ? posix.normalize(target) : posix.normalize(posix.join(posix.dirname(entry), target));
  if (joined === '..' || joined.startsWith('../')) {
    throw new DatasetError('unsafe-archive', {
      file,
      message: `link ${entry} points outside the archive`,
      found: target,
    });
  }
  return joined.replace(/^\.\/?/, '');
}

/**
 * Refuses, by their first bytes, the files most often given where a tar
 * archive is expected, which the tar reader would otherwise report as a
 * baffling header checksum or octal error (or, for a small file, as a truncated archive): a
 * single IDX file (raw or gunzipped: magic 0x00 0x00 0x08, then the number of dimensions), a
 * zip, and archives compressed with xz, bzip2 or zstd, 7-Zip and RAR.
 */
function refuseNotTar(buf: Uint8Array, file: string): void {
  if (buf.length >= 4 && buf[0] === 0 && buf[1] === 0 && buf[2] === 0x08 && buf[3] >= 1 && buf[3] <= 4) {
    throw new DatasetError('invalid-argument', {
      file,
      message:
        'this is an IDX file, not a tar archive: pass its folder as { dir } (the folder holding the four IDX files), or a .tar / .tar.gz of them as { file }',
    });
  }
  if (
    buf.length >= 4 &&
    buf[0] === 0x50 &&
    buf[1] === 0x4b &&
    [3, 5, 7].includes(buf[2]) &&
    buf[3] === buf[2] + 1
  ) {
    throw new DatasetError('invalid-argument', {
      file,
      message:
        'this is a zip archive; expected a .tar or .tar.gz: unzip it and pass the folder as { dir }, or repack it with `tar -czf`',
    });
  }
  // bzip2's "BZh" is followed by the block size, '1' to '9'. A tar whose first name happens to
  // start with these bytes has a valid header checksum: it is read as a tar.
  const other =
    !validHeader(buf) &&
    OTHER_FORMATS.find(
      ({ magic }) =>
        buf.length > magic.length &&
        magic.every((b, i) => buf[i] === b) &&
        (magic[0] !== 0x42 || (buf[3] >= 0x31 && buf[3] <= 0x39)),
    );
  if (other)
    throw new DatasetError('invalid-argument', {
      file,
      message: `this is ${other.what}; expected a .tar or .tar.gz: extract it and pass the folder as { dir }, or repack it with \`tar -czf\``,
    });
}

/** Compressions and archive formats other than gzip and tar, by their first bytes, for {@link refuseNotTar}. */
const OTHER_FORMATS: { magic: number[]; what: string }[] = [
  { magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], what: 'an xz compressed file' },
  { magic: [0x42, 0x5a, 0x68], what: 'a bzip2 compressed file' },
  { magic: [0x28, 0xb5, 0x2f, 0xfd], what: 'a zstd compressed file' },
  { magic: [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c], what: 'a 7-Zip archive' },
  { magic: [0x52, 0x61, 0x72, 0x21, 0x1a, 0x07], what: 'a RAR archive' },
];

/** Whether `buf` starts with a tar header whose checksum holds. */
function validHeader(buf: Uint8Array): boolean {
  if (buf.length < 512) return false;
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : buf[i];
  const stored = field(buf, 148, 8).trim();
  return /^[0-7]+$/.test(stored) && parseInt(stored, 8) === sum;
}

/** Entry types that make a special file when extracted. */
const SPECIAL: Record<string, string> = { '3': 'character device', '4': 'block device', '6': 'FIFO' };

/** Entry types that hold a file this reader cannot restore, and what to do. */
const UNREAD: Record<string, string> = {
  S: 'a GNU sparse file (tar --sparse), which this reader does not expand: make the archive again without --sparse',
  M: 'the rest of a file begun in the previous volume of a multi-volume archive: join the volumes into one archive',
};

/**
 * Reads a ustar / pax / GNU tar archive (optionally gzipped) held in memory,
 * without touching the disk. Hard and symbolic links to files inside the
 * archive resolve to those files' bytes (links to folders add nothing: the folders' files are
 * read under their own names); links that leave the archive, devices, FIFOs
 * and unsafe paths raise `unsafe-archive`; entries it cannot restore (GNU sparse
 * files, multi-volume continuations, unknown types) raise `corrupt-archive`.
 * Metadata-only entries (pax and Solaris headers, GNU volume labels) are read or skipped. A name the archive holds
 * twice is read as its later entry, as extracting it would leave.
 */
export function readTar(input: Uint8Array, file: string, o: TarOptions = {}): TarEntry[] {
  const max = o.maxTotalBytes ?? DEFAULT_MAX;
  const buf = isGzip(input) ? gunzipChecked(input, file, max + 64 * 1024 * 1024) : input;
  refuseNotTar(buf, file);
  const entries: TarEntry[] = [];
  const files = new Map<string, TarEntry>();
  const symlinks: { name: string; target: string }[] = [];
  let total = 0;
  // Counts an extracted file's bytes (links count their target's again) against the cap.
  const count = (bytes: number, message?: string) => {
    total += bytes;
    if (total > max)
      throw new DatasetError('too-large', {
        file,
        ...(message ? { message } : {}),
        expected: `<= ${max} bytes`,
        found: `> ${total - bytes} bytes`,
      });
  };
  let off = 0;
  let pax: Record<string, string> = {};
  let longName: string | undefined;
  let longLink: string | undefined;
  let ended = false;
  while (off + 512 <= buf.length) {
    const h = buf.subarray(off, off + 512);
    // A real header has a name and a checksum; only then scan all 512 bytes.
    if (h[0] === 0 && h[148] === 0 && h.every((b) => b === 0)) {
      ended = true;
      break;
    }
    const stored = octal(h, 148, 8, file);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
    if (sum !== stored)
      throw new DatasetError('corrupt-archive', {
        file,
        message: `tar header checksum mismatch at byte ${off}`,
        expected: stored,
        found: sum,
      });
    const type = String.fromCharCode(h[156] || 0x30);
    const member = `${file}:${pax.path ?? longName ?? field(h, 0, 100)}`;
    const size = entrySize(h, pax, member);
    const dataStart = off + 512;
    const dataEnd = dataStart + size;
    if (dataEnd > buf.length) {
      throw new DatasetError('truncated', {
        file: member,
        message: `tar entry of ${size} bytes runs past the end of the archive: ${CUT_SHORT}`,
        expected: `${dataEnd} bytes`,
        found: `${buf.length} bytes`,
      });
    }
    const data = buf.subarray(dataStart, dataEnd);
    off = dataStart + Math.ceil(size / 512) * 512;
    // 'X' is Solaris's name for a pax extended header, before POSIX took 'x'.
    if (type === 'x' || type === 'X') {
      pax = { ...pax, ...parsePax(data, file) };
      continue;
    }
    // Metadata that names no file: pax global headers, Solaris ACLs and extended
    // attributes of the next entry, a GNU volume label (`tar -V`).
    if (type === 'g' || type === 'A' || type === 'E' || type === 'V') continue;
    if (type === 'L') {
      longName = field(data, 0, data.length);
      continue;
    }
    if (type === 'K') {
      longLink = field(data, 0, data.length);
      continue;
    }
    // POSIX ustar ("ustar\0") has a name prefix at 345; old GNU ("ustar  ") keeps atime/ctime there.
    const posixUstar = h[257] === 0x75 && field(h, 257, 6) === 'ustar' && h[262] === 0;
    const prefix = posixUstar ? field(h, 345, 155) : '';
    const rawName = pax.path ?? longName ?? (prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100));
    const rawLink = pax.linkpath ?? longLink ?? field(h, 157, 100);
    pax = {};
    longName = undefined;
    longLink = undefined;
    const name = safeName(rawName, file);
    if (type === '0' || type === '7') {
      count(size, 'archive exceeds the size cap');
      const e: TarEntry = { name, type: 'file', data };
      entries.push(e);
      files.set(name, e);
    } else if (type === '5' || type === 'D') {
      // 'D' is GNU's incremental-backup folder: its data lists the folder's names, not a file.
      entries.push({ name, type: 'directory', data: data.subarray(0, 0) });
    } else if (type === '1') {
      const target = linkTarget(name, rawLink, true, file);
      const t = files.get(target);
      if (!t)
        throw new DatasetError('corrupt-archive', {
          file,
          message: `hard link ${name} to a file not in the archive`,
          found: rawLink,
        });
      count(t.data.length);
      const e: TarEntry = { name, type: 'file', data: t.data };
      entries.push(e);
      files.set(name, e);
    } else if (type === '2') {
      symlinks.push({ name, target: linkTarget(name, rawLink, false, file) });
    } else if (SPECIAL[type]) {
      throw new DatasetError('unsafe-archive', {
        file,
        message: `tar entry ${name} is a ${SPECIAL[type]}; a data set archive holds only files, folders and links: make the archive again without it`,
        found: name,
      });
    } else {
      throw new DatasetError('corrupt-archive', {
        file,
        message: `tar entry ${name} has type '${type}', ${UNREAD[type] ?? 'which no tar format defines'}`,
        found: name,
      });
    }
  }
  // Shorter than one header, it never was a tar archive, or was cut within its first block: say
  // both (a text file given as the archive read as "cut short" alone).
  if (buf.length < 512)
    throw new DatasetError('truncated', {
      file,
      message:
        `this file ${buf === input ? 'is' : 'unzips to'} ${buf.length} bytes, shorter than one tar header (512 bytes): it is not a .tar or .tar.gz ` +
        `archive, or one cut short in its first block (an interrupted download or copy: replace it with a complete copy)`,
    });
  // Without the end-of-archive block a cut at a 512-byte boundary would pass as a smaller archive.
  if (!ended)
    throw new DatasetError('truncated', {
      file,
      message: `tar archive has no end-of-archive block: ${CUT_SHORT}`,
    });
  // Folders of the archive: its directory entries and every parent of an entry.
  let folders: Set<string> | undefined;
  const isFolder = (name: string) => {
    if (!folders) {
      folders = new Set(['']);
      for (const e of entries) {
        if (e.type === 'directory') folders.add(e.name);
        for (let i = e.name.indexOf('/'); i >= 0; i = e.name.indexOf('/', i + 1))
          folders.add(e.name.slice(0, i));
      }
    }
    return folders.has(name);
  };
  for (const s of symlinks) {
    const t = files.get(s.target);
    // A link to a folder of the archive adds nothing: its files are read under their own names.
    if (!t && isFolder(s.target.replace(/\/+$/, ''))) continue;
    if (!t)
      throw new DatasetError('unsafe-archive', {
        file,
        message: `symbolic link ${s.name} does not point to a file in the archive`,
        found: s.target,
      });
    count(t.data.length);
    const e: TarEntry = { name: s.name, type: 'file', data: t.data };
    entries.push(e);
    files.set(s.name, e);
  }
  // An archive may hold a name twice (tar -r appends); as when extracting, the later one wins.
  const last = new Map<string, number>();
  entries.forEach((e, i) => last.set(e.name, i));
  return entries.filter((e, i) => last.get(e.name) === i);
}

/** Reads a tar archive from disk; `what` names it in the error when the file is missing or not a file. */
export function readTarFile(path: string, what = 'tar archive', o: TarOptions = {}): TarEntry[] {
  return readTar(readInputFile(path, what), path, o);
}
