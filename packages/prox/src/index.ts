// @normprune/prox: the proximal half of the method. Importing this module
// registers ProximalSGD and ProximalAdam with tf.serialization, so a model
// saved with its optimiser loads again.
export {
  groupSoftThreshold,
  hardThreshold,
  keepLargest,
  nonnegSoftThreshold,
  softThreshold,
} from './operators.js';
export {
  constantLambda,
  lambdaSchedule,
  type LambdaSchedule,
  type ConstantLambdaConfig,
  type LambdaScheduleConfig,
  type StepLambdaConfig,
  type TargetLambdaConfig,
  type WarmupLambdaConfig,
  type ScheduleState,
  type ScheduleUnit,
  stepLambda,
  targetLambda,
  warmupLambda,
} from './schedules.js';
export {
  COST_WEIGHTINGS,
  type CostWeighting,
  FORMER_COST_WEIGHTINGS,
  formerCostWeighting,
} from './weights.js';
export {
  type LayerMultiplier,
  type NamedTensor,
  ProximalAdam,
  type ProximalAdamConfig,
  type ProximalConfig,
  ProximalOptimizer,
  type ProximalAdamOptions,
  type ProximalOptions,
  type ProximalSGDOptions,
  ProximalSGD,
  type ProximalSGDConfig,
  type TrainingProgress,
} from './optimizers.js';
export {
  keepLargestFilters,
  keepLargestGroups,
  l1Penalty,
  type L1PenaltyOptions,
  measureSparsity,
  type SparsityReport,
} from './penalty.js';
export { SparsityCallback, type SparsityCallbackOptions, type SparsityRecord } from './callback.js';
