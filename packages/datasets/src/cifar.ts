import { createHash } from 'node:crypto';
import { existsSync, rmSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { cacheRoot, isOffline, missingDataDirNote, offlineEnvNote } from './cache.js';
import { cachePath, readDecoded, treeKey, writeDecoded } from './decoded-cache.js';
import { downloadFile } from './download.js';
import { DatasetError } from './errors.js';
import {
  checkChosenDir,
  checkLoadOptions,
  listTreeFiles,
  mirrorOf,
  readInputFile,
  readTreeFile,
  sourced,
} from './input.js';
import { readTar } from './tar.js';
import type { Dataset, LoadOptions, Split } from './types.js';

/** Label order of the official `batches.meta.txt`. */
export const CIFAR10_CLASSES = [
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
];
export const CIFAR10_URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz';
export const CIFAR10_MD5 = 'c32a1d4ab5d03f1284b67883e8d87530';
const BINARY_ARCHIVE = 'cifar-10-binary.tar.gz';
const TRAIN_BATCHES = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`);
const TEST_BATCH = 'test_batch.bin';
const BATCH_FILES = [...TRAIN_BATCHES, TEST_BATCH];
const RECORD = 1 + 3072;
const IMAGE_EXT = /\.(jpe?g|png)$/i;

// ---------------------------------------------------------------- binary layout

function readBatches(files: { name: string; data: Uint8Array }[], classes: string[]): Split {
  let count = 0;
  for (const f of files) count += f.data.length / RECORD;
  const images = new Uint8Array(count * 3072);
  const labels = new Uint8Array(count);
  let n = 0;
  for (const f of files) {
    const d = f.data;
    for (let r = 0; r < d.length; r += RECORD, n++) {
      const label = d[r];
      if (label >= classes.length) {
        throw new DatasetError('label-out-of-range', {
          file: f.name,
          message: `record #${r / RECORD} has label ${label}, but CIFAR-10 has labels 0..${classes.length - 1}: not a CIFAR-10 batch (CIFAR-100's records have two label bytes); use the batches of cifar-10-binary.tar.gz`,
          expected: `0..${classes.length - 1}`,
          found: label,
        });
      }
      labels[n] = label;
      // Records store the 1024 R, then G, then B bytes (planar); tfjs wants NHWC.
      const o = n * 3072;
      const p = r + 1;
      for (let i = 0; i < 1024; i++) {
        images[o + i * 3] = d[p + i];
        images[o + i * 3 + 1] = d[p + 1024 + i];
        images[o + i * 3 + 2] = d[p + 2048 + i];
      }
    }
  }
  return { images, labels, count, shape: [32, 32, 3], numClasses: classes.length };
}

/**
 * The official binary release: five training batches and one test batch of
 * 3,073-byte records. Every batch must hold whole records, and all six the
 * same number, so a file cut at a record boundary still fails loudly.
 * `where` prefixes a batch's name in errors (`/data/cifar-10-batches-bin/`,
 * `archive.tar.gz:cifar-10-batches-bin/`); every missing batch is named.
 */
export function parseCifarBinary(
  get: (name: string) => { name: string; data: Uint8Array } | undefined,
  where: string,
): Dataset {
  const missing = BATCH_FILES.filter((n) => !get(n));
  if (missing.length > 0)
    throw new DatasetError('missing-file', {
      file: `${where}${missing[0]}`,
      message:
        `CIFAR-10 binary batch missing: ${missing.join(', ')} (the release has ${BATCH_FILES.join(', ')}); ` +
        'put the missing batch files there from cifar-10-binary.tar.gz',
    });
  const all = BATCH_FILES.map((n) => {
    const f = get(n)!;
    if (f.data.length === 0 || f.data.length % RECORD !== 0) {
      throw new DatasetError('truncated', {
        file: f.name,
        message: `CIFAR-10 batch must be whole ${RECORD}-byte records: this one is cut short (an interrupted download or extraction); replace it with the one in cifar-10-binary.tar.gz`,
        expected: `a multiple of ${RECORD} bytes`,
        found: `${f.data.length} bytes`,
      });
    }
    return f;
  });
  const size = all[all.length - 1].data.length;
  for (const f of all) {
    if (f.data.length !== size) {
      throw new DatasetError('size-mismatch', {
        file: f.name,
        message:
          'CIFAR-10 batches must all hold the same number of records: this one is not from the same copy as the others; ' +
          'take all six batches from one copy of cifar-10-binary.tar.gz',
        expected: `${size / RECORD} records (as ${TEST_BATCH})`,
        found: `${f.data.length / RECORD} records`,
      });
    }
  }
  const meta = get('batches.meta.txt');
  if (meta) {
    const names = Buffer.from(meta.data)
      .toString('utf8')
      .split(/\r?\n/)
      .map((s) => s.trim())
      .filter(Boolean);
    if (names.join(',') !== CIFAR10_CLASSES.join(',')) {
      throw new DatasetError('unknown-class', {
        file: meta.name,
        message: 'class names differ from CIFAR-10',
        expected: CIFAR10_CLASSES.join(','),
        found: names.join(','),
      });
    }
  }
  return {
    train: readBatches(all.slice(0, 5), CIFAR10_CLASSES),
    test: readBatches(all.slice(5), CIFAR10_CLASSES),
    classes: [...CIFAR10_CLASSES],
  };
}

/**
 * The folder holding the binary batches: `dir` or its cifar-10-batches-bin/. Any one batch file
 * marks it (not only data_batch_1.bin), so a folder that lacks some is named with the missing
 * files rather than passed over as holding no CIFAR-10.
 */
function binaryDir(dir: string): string | undefined {
  for (const d of [dir, join(dir, 'cifar-10-batches-bin')])
    if (BATCH_FILES.some((n) => existsSync(join(d, n)))) return d;
  return undefined;
}

function fromBinaryDir(dir: string): Dataset {
  return parseCifarBinary(
    (n) => {
      const p = join(dir, n);
      return existsSync(p) ? { name: p, data: readInputFile(p, 'CIFAR-10 batch') } : undefined;
    },
    join(dir, '/'),
  );
}

// ---------------------------------------------------------------- image folders

function wrongSize(name: string, w: number, h: number, width: number, height: number): DatasetError {
  return new DatasetError('bad-image', {
    file: name,
    message: 'wrong image size',
    expected: `${w}x${h}`,
    found: `${width}x${height}`,
  });
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * Width and height from a PNG's IHDR chunk (bytes 16-23, after the 8-byte
 * signature, the chunk length and the type 'IHDR' at 12-15). Read before
 * decoding because pngjs allocates the whole bitmap first: a 32 KB file
 * claiming 16384x16384 would cost 1 GB before its size could be refused.
 */
function pngSize(data: Uint8Array, name: string): { width: number; height: number } {
  const ihdr = data.length >= 24 && String.fromCharCode(...data.subarray(12, 16)) === 'IHDR';
  if (!ihdr || PNG_SIGNATURE.some((b, i) => data[i] !== b)) {
    throw new DatasetError('bad-image', {
      file: name,
      message:
        'cannot decode image: not a PNG file (no PNG signature and IHDR chunk at its start); re-encode it as PNG or JPEG',
    });
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

/**
 * Width and height from a JPEG's frame header (SOF0..SOF15 but DHT, JPG and DAC: FF Cn, length,
 * precision, then height and width), found by walking the markers before it; undefined when
 * there is none to find, and decoding then says what is wrong. Read before decoding, as for a
 * PNG, so a large image is named as the wrong size rather than as a damaged file (the decoder
 * refuses more than 1 megapixel with its own message).
 */
function jpegSize(data: Uint8Array): { width: number; height: number } | undefined {
  let at = 2;
  while (at + 9 <= data.length && data[at] === 0xff) {
    const marker = data[at + 1];
    if (marker === 0xff) {
      at++; // fill byte
      continue;
    }
    const length = (data[at + 2] << 8) | data[at + 3];
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc)
      return { height: (data[at + 5] << 8) | data[at + 6], width: (data[at + 7] << 8) | data[at + 8] };
    if (marker === 0xda || length < 2) return undefined; // image data begins: no frame header before it
    at += 2 + length;
  }
  return undefined;
}

/** What an image file holds, by its first bytes: a file's extension may not say (a renamed copy). */
function imageKind(data: Uint8Array): 'png' | 'jpeg' | undefined {
  if (PNG_SIGNATURE.every((b, i) => data[i] === b)) return 'png';
  if (data.length >= 3 && data[0] === 0xff && data[1] === 0xd8 && data[2] === 0xff) return 'jpeg';
  return undefined;
}

/**
 * Decodes one 32x32 JPEG or PNG to RGB bytes at `out[off..]`. The format is read from the
 * content, as image libraries do (a PNG named .jpg is a PNG); a file that is neither, empty,
 * or damaged is a `bad-image` error saying which.
 */
function decodeInto(
  data: Uint8Array,
  name: string,
  out: Uint8Array,
  off: number,
  h: number,
  w: number,
): void {
  const kind = imageKind(data);
  if (!kind) {
    const head = Array.from(data.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new DatasetError('bad-image', {
      file: name,
      message:
        data.length === 0
          ? 'the image file is empty; replace it with a good copy'
          : `neither a JPEG nor a PNG file (it starts with ${head}); re-encode it as PNG or JPEG, or remove it`,
    });
  }
  let width: number;
  let height: number;
  let px: Uint8Array;
  let channels: number;
  try {
    if (kind === 'png') {
      const claimed = pngSize(data, name);
      if (claimed.width !== w || claimed.height !== h)
        throw wrongSize(name, w, h, claimed.width, claimed.height);
      const png = PNG.sync.read(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      ({ width, height } = png);
      px = png.data;
      channels = 4;
    } else {
      const claimed = jpegSize(data);
      if (claimed && (claimed.width !== w || claimed.height !== h))
        throw wrongSize(name, w, h, claimed.width, claimed.height);
      const img = jpeg.decode(data, {
        useTArray: true,
        formatAsRGBA: false,
        maxResolutionInMP: 1,
        maxMemoryUsageInMB: 64,
      });
      ({ width, height } = img);
      px = img.data;
      channels = 3;
    }
  } catch (e) {
    if (e instanceof DatasetError) throw e;
    throw new DatasetError('bad-image', {
      file: name,
      message: `cannot decode the ${kind === 'png' ? 'PNG' : 'JPEG'} image (${(e as Error).message}): it is damaged or cut short; replace it with a good copy`,
      cause: e,
    });
  }
  if (width !== w || height !== h) throw wrongSize(name, w, h, width, height);
  if (px.length !== w * h * channels)
    throw new DatasetError('bad-image', {
      file: name,
      message: 'decoder returned a short image',
      expected: w * h * channels,
      found: px.length,
    });
  if (channels === 3) out.set(px, off);
  else
    for (let i = 0, j = 0; i < w * h; i++, j += 4) {
      out[off + i * 3] = px[j];
      out[off + i * 3 + 1] = px[j + 1];
      out[off + i * 3 + 2] = px[j + 2];
    }
}

/** A source with image folders for one split only: the other's folder is named as missing. */
function halfImageFolder(missing: string, split: 'train' | 'test'): DatasetError {
  const other = split === 'train' ? 'test' : 'train';
  return new DatasetError('missing-file', {
    file: missing,
    message: `CIFAR-10 image folders: ${other}/ is here but ${split}/ is missing; put the ${split}/<class>/ images beside ${other}/ (the data set has both)`,
  });
}

interface ImageFile {
  split: 'train' | 'test';
  cls: string;
  name: string;
  /** The folders above `train/` or `test/` in the archive or folder (`''` or `cifar10/`). */
  prefix: string;
  read: () => Uint8Array;
}

/**
 * Groups `train/<class>/<image>` and `test/<class>/<image>` files. Any folder
 * that is not a known class, or a file that is not an image, is an error
 * rather than something silently skipped.
 */
function buildFromImages(files: ImageFile[], classes: string[], fileOf: (name: string) => string): Dataset {
  const [h, w] = [32, 32];
  const splits = {} as Record<'train' | 'test', Split>;
  for (const split of ['train', 'test'] as const) {
    // A class folder as errors name it: a real path, or archive:member.
    const prefix = (files.find((f) => f.split === split) ?? files[0])?.prefix ?? '';
    if (files.length > 0 && !files.some((f) => f.split === split))
      throw halfImageFolder(fileOf(prefix + split), split);
    const folder = (cls: string) => fileOf(`${prefix}${split}/${cls}`);
    const byClass = classes.map(() => [] as ImageFile[]);
    for (const f of files) {
      if (f.split !== split) continue;
      const k = classes.indexOf(f.cls);
      if (k < 0)
        throw new DatasetError('unknown-class', {
          file: fileOf(`${f.prefix}${split}/${f.cls}`),
          message: 'folder is not a class of CIFAR-10: rename it to one of its classes, or remove it',
          expected: classes.join(', '),
          found: f.cls,
        });
      byClass[k].push(f);
    }
    byClass.forEach((list, k) => {
      if (list.length === 0)
        throw new DatasetError('missing-class', {
          file: folder(classes[k]),
          message: `no images for class '${classes[k]}' in ${split}: every class needs train and test images; put its images in that folder`,
        });
      list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    });
    warnIfUnbalanced(
      byClass.map((l) => l.length),
      classes,
      fileOf(prefix + split),
      split,
    );
    // Interleave the classes (one image of each in turn) so the tail of the
    // split, which validationSplit takes, is class-balanced like the official files.
    const order: { f: ImageFile; k: number }[] = [];
    const longest = Math.max(...byClass.map((l) => l.length));
    for (let i = 0; i < longest; i++) byClass.forEach((l, k) => i < l.length && order.push({ f: l[i], k }));
    const count = order.length;
    const images = new Uint8Array(count * h * w * 3);
    const labels = new Uint8Array(count);
    order.forEach(({ f, k }, i) => {
      decodeInto(f.read(), f.name, images, i * h * w * 3, h, w);
      labels[i] = k;
    });
    splits[split] = { images, labels, count, shape: [h, w, 3], numClasses: classes.length };
  }
  return { train: splits.train, test: splits.test, classes: [...classes] };
}

/** Image folders warned about by {@link warnIfUnbalanced} in this process. */
const unbalancedWarned = new Set<string>();

/**
 * Warns, once per folder in a process, when the classes of an image folder's split are not all of
 * one size: CIFAR-10 has 5000 images of each class in train and 1000 in test, and an extraction or
 * a copy cut short loads with the images it left. The load goes on, as a subset with unequal
 * classes may be what the user meant. (Said when the folder is decoded: a load the decoded cache
 * serves does not say it again.)
 */
function warnIfUnbalanced(
  counts: number[],
  classes: string[],
  folder: string,
  split: 'train' | 'test',
): void {
  const [least, most] = [Math.min(...counts), Math.max(...counts)];
  if (least === most || unbalancedWarned.has(folder)) return;
  unbalancedWarned.add(folder);
  const named = (n: number) => {
    const names = classes.filter((_, k) => counts[k] === n);
    return names.length > 3 ? `${names.slice(0, 3).join(', ')}, ...` : names.join(', ');
  };
  console.warn(
    `@normprune/datasets: the CIFAR-10 images in ${folder} differ in number between classes, ` +
      `${least} (${named(least)}) to ${most} (${named(most)}), where the data set has ${split === 'train' ? 5000 : 1000} ` +
      'of each: if it is not meant to be a subset, extract or copy it again',
  );
}

/**
 * Finds `<prefix>train/...` entries: the folder holding train/ and test/ may
 * sit one level down. `fileOf` names an entry in errors: a real path for a
 * folder's files, `archive:member` for an archive's.
 */
function imageFilesFromNames(
  names: { name: string; read: () => Uint8Array }[],
  fileOf: (name: string) => string,
): ImageFile[] {
  const out: ImageFile[] = [];
  for (const { name, read } of names) {
    const parts = name.split('/');
    const i = parts.findIndex((p) => p === 'train' || p === 'test');
    if (i < 0 || i > 1) continue;
    const rest = parts.slice(i + 1);
    // Hidden files and folders (.DS_Store, .ipynb_checkpoints/) are not images.
    if (rest.length === 0 || rest.some((p) => p.startsWith('.'))) continue;
    if (rest.length !== 2)
      throw new DatasetError('unknown-class', {
        file: fileOf(name),
        message:
          `expected ${parts[i]}/<class>/<image>: ` +
          (rest.length === 1
            ? `a file directly in ${parts[i]}/ belongs in a class folder; move it into ${parts[i]}/<class>/, or remove it`
            : `images sit directly in their class folder; move it up into ${parts[i]}/${rest[0]}/, or remove it`),
        found: name,
      });
    if (!IMAGE_EXT.test(rest[1]))
      throw new DatasetError('bad-image', {
        file: fileOf(name),
        message:
          'not a .jpg/.jpeg/.png file: a class folder holds only images; move it out of the data set, or remove it',
        found: rest[1],
      });
    out.push({
      split: parts[i] as 'train' | 'test',
      cls: rest[0],
      name: fileOf(name),
      prefix: parts.slice(0, i).join('/') + (i > 0 ? '/' : ''),
      read,
    });
  }
  return out;
}

function listTree(dir: string): { name: string; read: () => Uint8Array }[] {
  return listTreeFiles(dir).map((f) => ({ name: f.rel, read: () => readTreeFile(f.path, 'image file') }));
}

function isImageFolder(dir: string): boolean {
  return existsSync(join(dir, 'train')) && existsSync(join(dir, 'test'));
}

// ---------------------------------------------------------------- sources

function fromArchive(file: string, data: Uint8Array): Dataset {
  const entries = readTar(data, file);
  const files = entries.filter((e) => e.type === 'file');
  const bin = files.find((e) => BATCH_FILES.includes(basename(e.name)));
  if (bin) {
    const dir = bin.name.slice(0, bin.name.length - basename(bin.name).length);
    const byName = new Map(files.map((e) => [e.name, e]));
    return parseCifarBinary((n) => {
      const e = byName.get(dir + n);
      return e ? { name: `${file}:${e.name}`, data: e.data } : undefined;
    }, `${file}:${dir}`);
  }
  const member = (name: string) => `${file}:${name}`;
  const images = imageFilesFromNames(
    files.map((e) => ({ name: e.name, read: () => e.data })),
    member,
  );
  if (images.length === 0)
    throw new DatasetError('missing-file', {
      file,
      message:
        'archive holds neither cifar-10-batches-bin/ nor train/<class>/ image folders' +
        (files.some((e) => /(^|\/)data_batch_1$/.test(e.name)) ? PICKLE_RELEASE : ''),
    });
  return buildFromImages(images, CIFAR10_CLASSES, member);
}

/** Archives and image folders are decoded once, then served from the cache. */
function cached(name: string, key: string, o: LoadOptions, source: string, decode: () => Dataset): Dataset {
  const path = cachePath(cacheRoot(o.cacheDir), name, key);
  const hit = readDecoded(path, key);
  if (hit) return hit;
  const ds = decode();
  try {
    // The decoded file of the source's earlier contents goes: one file per archive or folder.
    writeDecoded(path, key, ds, source);
  } catch (e) {
    // A read-only or full cache directory must not stop the load, but every
    // load then decodes again: say so, once per cache file and process.
    if (!unwritable.has(path)) {
      unwritable.add(path);
      console.warn(
        `@normprune/datasets: CIFAR-10 was decoded from ${source}, but the decoded copy could not be written to ${path} ` +
          `(${e instanceof Error ? e.message : String(e)}), so every load decodes it again; ` +
          'pass { cacheDir } (or set XDG_CACHE_HOME) to a writable folder',
      );
    }
  }
  return ds;
}

/** Decoded-cache files this process could not write (warned about once each). */
const unwritable = new Set<string>();

function fromFile(file: string, o: LoadOptions, md5?: string): Dataset {
  const data = readInputFile(file, 'CIFAR-10 archive');
  const key = createHash('sha256').update(data).digest('hex');
  return sourced(
    resolve(file),
    cached('cifar-10', key, o, resolve(file), () => {
      if (md5) {
        const found = createHash('md5').update(data).digest('hex');
        if (found !== md5)
          throw new DatasetError('checksum-mismatch', {
            file,
            message: 'cached download differs from the published file',
            expected: md5,
            found,
          });
      }
      return fromArchive(file, data);
    }),
  );
}

function fromDir(dir: string, o: LoadOptions): Dataset | undefined {
  const bin = binaryDir(dir);
  if (bin) return sourced(resolve(bin), fromBinaryDir(bin));
  for (const d of [dir, join(dir, 'cifar-10-images')]) {
    if (isImageFolder(d)) {
      return sourced(
        resolve(d),
        cached('cifar-10', treeKey(d), o, resolve(d), () =>
          buildFromImages(
            imageFilesFromNames(listTree(d), (name) => join(d, name)),
            CIFAR10_CLASSES,
            (name) => join(d, name),
          ),
        ),
      );
    }
  }
  for (const a of [BINARY_ARCHIVE, 'cifar-10-images.tar.gz'])
    if (existsSync(join(dir, a))) return fromFile(join(dir, a), o);
  return undefined;
}

/** What a message adds when it finds the Python release (torchvision's download): its pickles are not read. */
const PICKLE_RELEASE =
  "; this is CIFAR-10's Python release (cifar-10-python.tar.gz, cifar-10-batches-py/: pickled batches, " +
  "torchvision's download), which normprune does not read: use the binary release, cifar-10-binary.tar.gz " +
  '(cifar-10-batches-bin/), from the same page';

/** CIFAR-10 from a directory the user chose (`dir`, or a CIFAR-named one in NORMPRUNE_DATA_DIR), or `missing-file`. */
function fromDirOrFail(dir: string, o: LoadOptions): Dataset {
  checkChosenDir(dir, 'CIFAR-10', 'cifar-10-batches-bin/ or train/ + test/');
  const ds = fromDir(dir, o);
  if (!ds) {
    for (const d of [dir, join(dir, 'cifar-10-images')]) {
      const [train, test] = [existsSync(join(d, 'train')), existsSync(join(d, 'test'))];
      if (train !== test) throw halfImageFolder(join(d, train ? 'test' : 'train'), train ? 'test' : 'train');
    }
    throw new DatasetError('missing-file', {
      file: dir,
      message:
        'no CIFAR-10 here: expected cifar-10-batches-bin/, data_batch_1.bin, train/ + test/ image folders, ' +
        'cifar-10-binary.tar.gz or cifar-10-images.tar.gz' +
        ([dir, join(dir, 'cifar-10-batches-py')].some((d) => existsSync(join(d, 'data_batch_1'))) ||
        existsSync(join(dir, 'cifar-10-python.tar.gz'))
          ? PICKLE_RELEASE
          : ''),
    });
  }
  return ds;
}

/**
 * CIFAR-10 from, first match wins: `file` (binary or image-folder archive),
 * `dir`, `$NORMPRUNE_DATA_DIR`, a previous download in the cache, the official
 * URL (md5 verified) unless offline.
 */
export async function loadCifar10Dataset(options?: LoadOptions): Promise<Dataset> {
  const o = checkLoadOptions(options, 'CIFAR-10');
  if (o.file) return fromFile(resolve(o.file), o);
  if (o.dir) return fromDirOrFail(resolve(o.dir), o);
  const env = process.env.NORMPRUNE_DATA_DIR;
  if (env) {
    // Only CIFAR-named entries: a bare train/ folder in a directory shared by
    // several data sets could belong to any of them. One that exists is used
    // or fails, like `dir`: a misnamed file must not silently swap in another copy.
    for (const name of ['cifar-10', 'cifar-10-batches-bin', 'cifar-10-images']) {
      const d = join(env, name);
      if (existsSync(d) && statSync(d).isDirectory()) return fromDirOrFail(d, o);
    }
    for (const a of [BINARY_ARCHIVE, 'cifar-10-images.tar.gz'])
      if (existsSync(join(env, a))) return fromFile(join(env, a), o);
  }
  const root = cacheRoot(o.cacheDir);
  const archive = join(root, 'cifar-10', BINARY_ARCHIVE);
  if (existsSync(archive)) {
    try {
      return fromFile(archive, o, CIFAR10_MD5);
    } catch (e) {
      // A download damaged since it was verified: fetch it again (or say so when offline).
      if (!(e instanceof DatasetError) || e.code !== 'checksum-mismatch') throw e;
      // Offline it cannot be fetched again: keep it, and say it is damaged rather than missing.
      if (isOffline(o.offline))
        throw new DatasetError('checksum-mismatch', {
          file: archive,
          message: `CIFAR-10: the cached ${BINARY_ARCHIVE} is damaged (its md5 is not the published one) and cannot be fetched again offline; delete it and load with downloads allowed, or put the official file there${offlineEnvNote(o.offline)}`,
          expected: e.expected,
          found: e.found,
          cause: e,
        });
      rmSync(archive, { force: true });
    }
  }
  if (isOffline(o.offline)) {
    throw new DatasetError('offline', {
      file: archive,
      message: `CIFAR-10 is not available offline: missing ${BINARY_ARCHIVE}. Download ${CIFAR10_URL} (md5 ${CIFAR10_MD5}) to ${archive}, or pass { file } / { dir }, or set NORMPRUNE_DATA_DIR to a folder holding cifar-10-batches-bin/ or ${BINARY_ARCHIVE}${missingDataDirNote()}${offlineEnvNote(o.offline)}`,
    });
  }
  const mirror = mirrorOf(o);
  const url = mirror ? `${mirror}/cifar-10/${BINARY_ARCHIVE}` : CIFAR10_URL;
  await downloadFile({ url, md5: CIFAR10_MD5 }, archive);
  return fromFile(archive, o, CIFAR10_MD5);
}
