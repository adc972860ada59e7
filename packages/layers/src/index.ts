// @normprune/layers: Dense, Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D and SeparableConv2D
// written as magnitude x unit direction. Importing this module registers DecomposedDense,
// DecomposedConv1D, DecomposedConv2D, DecomposedConv2DTranspose, DecomposedDepthwiseConv2D and
// DecomposedSeparableConv2D with tf.serialization, so tfl.loadLayersModel can read models that use them.
export type {
  ConvGranularity,
  ConvKind,
  ConvLayerArgs,
  DenseGranularity,
  DecomposedPart,
  DenseLayerArgs,
  DepthwiseConvLayerArgs,
  SeparableConvLayerArgs,
  Granularity,
  InitializerSpec,
} from './common.js';
export { constraintHolds, DEFAULT_EPSILON, describeValue } from './common.js';
export { closestKey, normKey, optionsProblem } from './options.js';
export { ownCalls } from './calls.js';
export { type ConfigKeys, modelConfig, restoreConfigs } from './config.js';
export { NonFiniteWeightError, type NonFiniteWeightCode, readFiniteWeight } from './errors.js';
export { DecomposedDense, decomposedDense, type DecomposedDenseArgs } from './decomposed-dense.js';
export {
  DecomposedConv,
  type DecomposedConvArgs,
  type DecomposedDepthwiseConvArgs,
  type ConvRank,
} from './decomposed-conv.js';
export { DecomposedConv1D, decomposedConv1d, type DecomposedConv1DArgs } from './decomposed-conv1d.js';
export { DecomposedConv2D, decomposedConv2d, type DecomposedConv2DArgs } from './decomposed-conv2d.js';
export {
  DecomposedConv2DTranspose,
  decomposedConv2dTranspose,
  type DecomposedConv2DTransposeArgs,
} from './decomposed-conv2d-transpose.js';
export {
  DecomposedDepthwiseConv2D,
  decomposedDepthwiseConv2d,
  type DecomposedDepthwiseConv2DArgs,
} from './decomposed-depthwise-conv2d.js';
export {
  DecomposedSeparableConv2D,
  decomposedSeparableConv2d,
  type DecomposedSeparableConv2DArgs,
} from './decomposed-separable-conv2d.js';
export {
  decompose,
  type DecomposedLayer,
  type DecomposeOptions,
  effectiveKernel,
  fold,
  isDecomposed,
  type LayerPath,
  layerPaths,
  type MagnitudeInfo,
  magnitudes,
} from './model.js';
export { hasNested, unnest } from './unnest.js';
export { assignWeightsOf, disposesEveryCall, keepModelState, modelFromConfig } from './model.js';
