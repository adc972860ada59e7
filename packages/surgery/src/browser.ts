// The browser build of @normprune/surgery, which bundlers pick through the
// `browser` condition of package.json `exports`; Node never loads it. analyze,
// prune and kernelMask are the same code as in Node. exportModel and
// loadSparseModel write and read files: they keep their names and types, so
// code shared with Node still bundles, and throw when called, saying what to
// use in a browser instead.
import type * as node from './index.js';

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
export type { KeptConstantUnit, LayerPruneResult } from './rebuild.js';
export { kernelMask, type KernelMask, type MaskedLayer } from './mask.js';
// exportModel's and loadSparseModel's file errors, the class fileSystem throws too.
export { ModelFileError, type ModelFileErrorCode } from '@normprune/runtime';
export type { ExportOptions, ExportResult, SparseWeightEntry } from './export.js';

const SAVE_INSTEAD =
  "In a browser, save the pruned model with tfjs's own IO: await model.save('indexeddb://name') " +
  "(or 'localstorage://name', 'downloads://name'), after fold() from @normprune/layers if it still has " +
  "decomposed layers; load it with loadLayersModel('indexeddb://name') of @tensorflow/tfjs-layers. The sparse format has no browser writer.";

export const exportModel: typeof node.exportModel = async () => {
  throw new Error(
    `@normprune/surgery: exportModel() writes files, in Node only (this is the package's browser build). ${SAVE_INSTEAD}`,
  );
};

export const loadSparseModel: typeof node.loadSparseModel = async () => {
  throw new Error(
    `@normprune/surgery: loadSparseModel() reads files, in Node only (this is the package's browser build). ${SAVE_INSTEAD}`,
  );
};
