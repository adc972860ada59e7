// @normprune/surgery: turn exactly-zero groups into a physically smaller,
// ordinary TensorFlow.js model, count what was gained, keep the zeros while
// fine-tuning, and store the result densely or sparsely.
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
export {
  exportModel,
  loadSparseModel,
  type ExportOptions,
  type ExportResult,
  type LoadSparseOptions,
  type SparseWeightEntry,
} from './export.js';
