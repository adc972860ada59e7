// Upstream wasm caches one XNNPACK operator per (weights, bias) pair of a
// fused matMul or convolution, and files the operator's key under the weights'
// id and under the bias's id; each list goes only when its tensor is disposed.
// The operator goes with the weights, but the bias's list keeps the key. A
// bias that outlives the weights it meets therefore gains one stale key per
// call: a kernel computed afresh on every call (a decomposed or weight-
// normalised layer at inference, a kernel trained with its bias frozen, the
// transposed weights our transpose-first _FusedMatMul makes) with a bias
// variable grows the wasm heap without bound, by 24 (matMul) to 72
// (convolution) bytes per call plus the list's reallocations: about 275 bytes
// per predict() of a conv + dense decomposed model, 5.5 MB per 20,000 calls.
// Such a bias goes to upstream as a copy made for the call and freed after it:
// freeing the copy deletes the operator and drops its keys. A bias that meets
// the same weights again (any plain layer's inference) goes as it is, so the
// cached operator keeps serving it.
import * as tf from '@tensorflow/tfjs-core';
import { KernelFn, release, runWasm } from './util.js';

/** The part of BackendWasm used here: whether a buffer still exists. */
interface DataIdBackend extends tf.KernelBackend {
  dataIdMap: { has(dataId: tf.DataId): boolean };
}

/** Per bias buffer, the weights buffer it last went to upstream with. */
const lastWeights = new WeakMap<tf.DataId, tf.DataId>();

/**
 * Wraps upstream `_FusedMatMul` (weights `b`) or `FusedConv2D` /
 * `FusedDepthwiseConv2D` (weights `filter`) so that a bias whose previous
 * weights are gone is passed as a copy freed after the call.
 */
export function freshBias(upstream: KernelFn | null, weights: 'b' | 'filter'): KernelFn | null {
  if (upstream == null) return null;
  return (args) => {
    const bias = args.inputs.bias as tf.TensorInfo | undefined;
    if (bias == null) return upstream(args);
    const backend = args.backend as DataIdBackend;
    const current = (args.inputs[weights] as tf.TensorInfo).dataId;
    const previous = lastWeights.get(bias.dataId);
    lastWeights.set(bias.dataId, current);
    if (previous === undefined || previous === current || backend.dataIdMap.has(previous)) {
      return upstream(args);
    }
    const copy = runWasm('Identity', { x: bias }, backend);
    try {
      return upstream({ ...args, inputs: { ...args.inputs, bias: copy } });
    } finally {
      release(backend, copy);
    }
  };
}
