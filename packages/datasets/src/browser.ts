// The browser build of @normprune/datasets, which bundlers pick through the
// `browser` condition of package.json `exports`; Node never loads it. Batching,
// augmentation, normalisation and splits are the same code as in Node. The
// loaders read, cache and download files with Node's fs and http: they keep
// their names and types, so code shared with Node still bundles, and reject
// when called, saying what to use in a browser instead.
import type * as node from './index.js';

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

function nodeOnly(loader: string): Error {
  return new Error(
    `@normprune/datasets: ${loader}() reads, caches and downloads files, in Node only (this is the package's browser build). ` +
      'In a browser, fetch the files yourself: idxSplit(images, labels) makes a Split of MNIST-style IDX bytes (raw or .gz); ' +
      'for other data build the Split ({ images: Uint8Array, labels: Uint8Array, count, shape: [h, w, c] }) yourself. ' +
      'batches(), toTensors(), computeStats() and validationSplit() work there.',
  );
}

export const loadMnist: typeof node.loadMnist = async () => {
  throw nodeOnly('loadMnist');
};

export const loadFashionMnist: typeof node.loadFashionMnist = async () => {
  throw nodeOnly('loadFashionMnist');
};

export const loadCifar10: typeof node.loadCifar10 = async () => {
  throw nodeOnly('loadCifar10');
};
