// The browser build of @normprune/surgery, which bundlers pick through the
// `browser` condition of package.json `exports`; Node never loads it. analyze,
// prune and kernelMask are the same code as in Node. loadSparseModel loads a
// sparse export from a URL with fetch, through the same reader as Node's
// (sparse-format.ts). exportModel writes files: it keeps its name and type, so
// code shared with Node still bundles, and throws when called, saying what to
// use in a browser instead.
import type * as node from './index.js';
import { loadSparseModelFromUrl } from './sparse-url.js';

export {
  analyze,
  formatAnalysis,
  type AnalyzeOptions,
  type Counts,
  type GroupCount,
  type LayerAnalysis,
  type ModelAnalysis,
} from './analyze.js';
export {
  prune,
  type KeptWholeLayer,
  type PruneOptions,
  type PruneReport,
  type PruneResult,
} from './prune.js';
export type { KeptConstantUnit, LayerPruneResult, PlaceholderUnit } from './rebuild.js';
// prune's refusal of a surgery that would leave a model output independent of the input.
export { DisconnectedModelError, type DisconnectedModelCode } from './errors.js';
export { kernelMask, type KernelMask, type MaskedLayer } from './mask.js';
// exportModel's and loadSparseModel's file errors, the class fileSystem throws too.
export { ModelFileError, type ModelFileErrorCode } from '@normprune/runtime';
// analyze's and prune's refusal of a NaN or an infinity, the class decompose throws too.
export { NonFiniteWeightError, type NonFiniteWeightCode } from '@normprune/layers';
export type { ExportOptions, ExportResult, SparseWeightEntry } from './export.js';
export type { LoadSparseOptions } from './sparse-url.js';

export const exportModel: typeof node.exportModel = async () => {
  throw new Error(
    "@normprune/surgery: exportModel() writes files, in Node only (this is the package's browser build). " +
      "In a browser, save the pruned model with tfjs's own IO: await model.save('indexeddb://name') " +
      "(or 'localstorage://name', 'downloads://name'), after fold() from @normprune/layers if it still has " +
      "decomposed layers, and load it with loadLayersModel('indexeddb://name') of @tensorflow/tfjs-layers. " +
      "A 'sparse' export (smaller than 'tfjs' when the model keeps zero 2-D kernels or weights) is written in Node " +
      'and served with your site: loadSparseModel(url) loads it here.',
  );
};

/**
 * Loads a model that `exportModel(model, dir, { format: 'sparse' })` wrote in Node and a server
 * serves: `url` is the URL of its model.json, as tfjs's `loadLayersModel(url)` takes it (e.g.
 * `'/models/pruned/model.json'`, resolved against the page's address), or of the folder that holds
 * it (`'/models/pruned/'`). sparse.json and sparse.bin are fetched from model.json's folder, with
 * model.json's query string, as tfjs fetches weight files; `options.requestInit` goes with every
 * request (headers, credentials), and `options.fetchFunc` replaces the global `fetch`. Gives the
 * same model as Node's `loadSparseModel(dir)` of the same files, and throws the same errors, naming
 * the URL (a `ModelFileError`: code `missing` for a model.json the server does not have, `damaged`
 * for another file it does not have, `read-failed` for other HTTP errors or a failed fetch).
 */
export const loadSparseModel: typeof node.loadSparseModel = (url, options) =>
  loadSparseModelFromUrl(url, options);
