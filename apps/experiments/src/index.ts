/**
 * @normprune/experiments: the `normprune` CLI that reproduces the thesis
 * (LeNet-500-300, LeNet-5, VGG-16) and writes reports. The exports are the
 * CLI's building blocks, for scripts and tests.
 * @packageDocumentation
 */
export { main } from './cli.js';
export {
  applyBudget,
  isReduced,
  BUDGET_PRESETS,
  configJsonSchema,
  configsDir,
  decomposedLayers,
  experimentSchema,
  listExperiments,
  mergeConfig,
  loadConfigFile,
  loadExperiment,
  parseBudget,
  layerNames,
  parseConfig,
  UsageError,
  type Budget,
  type DistillSpec,
  type ExperimentConfig,
  type ExperimentConfigInput,
  type LayerSpec,
} from './config.js';
export { buildModel } from './model.js';
export {
  runExperiment,
  Interrupted,
  type RunOptions,
  type RunResults,
  type ModelStats,
  type GroupCount,
  type Phase,
} from './pipeline.js';
export { runSweep, type SweepOptions } from './sweep.js';
export {
  countModel,
  errorRate,
  latencyMs,
  LATENCY_BUDGET,
  LATENCY_RUNS,
  type LatencyTiming,
  pairedCounts,
  type EvalOptions,
  type ModelCount,
} from './measure.js';
export {
  changePp,
  changeSePp,
  compressedError,
  pairedTest,
  type PairedCounts,
  type PairedOutcome,
  type PairedTest,
} from './paired.js';
export { cpuLoad, loadText, loadWarning, oversubscribed, type CpuLoad } from './load.js';
export { budgetText, ciText, int, ms, pct, pp, seconds } from './format.js';
export { resultsTable, seedsTable, tableRow, type TableRow, type SweepPoint } from './report.js';
