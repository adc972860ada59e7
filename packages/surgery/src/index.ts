// @normprune/surgery: turn exactly-zero groups into a physically smaller,
// ordinary TensorFlow.js model, and count what was gained.
export { analyze, formatAnalysis, type AnalyzeOptions, type Counts, type GroupCount, type LayerAnalysis, type ModelAnalysis } from './analyze.js';
export { prune, type PruneOptions, type PruneReport } from './prune.js';
export type { LayerPruneResult } from './rebuild.js';
