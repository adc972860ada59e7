// Upstream wasm caches one XNNPACK operator per (weights, bias) pair of a
// fused matMul or convolution, and files the operator's key under the weights'
// id and under the bias's id; each list goes only when its tensor is disposed.
// The operator goes with either tensor, but the other one's list keeps the
// key. A tensor that outlives the partners it meets therefore gains one stale
// key per call, and the wasm heap grows without bound, by 24 (matMul) to 72
// (convolution) bytes per call plus the list's reallocations:
// * a bias that outlives its weights: a kernel computed afresh on every call
//   (a decomposed or weight-normalised layer at inference, a kernel trained
//   with its bias frozen, the transposed weights our transpose-first
//   _FusedMatMul makes) with a bias variable; about 275 bytes per predict() of
//   a conv + dense decomposed model, 5.5 MB per 20,000 calls;
// * weights that outlive their biases: a bias computed on every call.
// Such a tensor goes to upstream as a copy made for the call and freed after
// it: freeing the copy deletes the operator and drops its keys. The operator
// was going to be rebuilt on the next call anyway, since its partner is new.
// A pair met again (any plain layer's inference) goes as it is, so the cached
// operator keeps serving it.
import * as tf from '@tensorflow/tfjs-core';
import { copy, KernelFn, release } from './util.js';

/** The part of BackendWasm used here: whether a buffer still exists. */
interface DataIdBackend extends tf.KernelBackend {
  dataIdMap: { has(dataId: tf.DataId): boolean };
}

/** Per buffer, the buffer it last went to upstream with (bias -> weights, weights -> bias). */
const lastPartner = new WeakMap<tf.DataId, tf.DataId>();

/**
 * Whether `info` must go as a copy: it has met another partner before
 * `partner`, and that partner is gone. Records `partner` as its last one.
 */
function outlivedPartner(backend: DataIdBackend, info: tf.TensorInfo, partner: tf.TensorInfo): boolean {
  const previous = lastPartner.get(info.dataId);
  lastPartner.set(info.dataId, partner.dataId);
  return previous !== undefined && previous !== partner.dataId && !backend.dataIdMap.has(previous);
}

/**
 * Wraps upstream `_FusedMatMul` (weights `b`) or `FusedConv2D` /
 * `FusedDepthwiseConv2D` (weights `filter`) so that a bias or weights whose
 * previous partner is gone are passed as a copy freed after the call.
 */
export function freshOperands(upstream: KernelFn | null, weights: 'b' | 'filter'): KernelFn | null {
  if (upstream == null) return null;
  return (args) => {
    const bias = args.inputs.bias as tf.TensorInfo | undefined;
    if (bias == null) return upstream(args);
    const backend = args.backend as DataIdBackend;
    const w = args.inputs[weights] as tf.TensorInfo;
    const copyBias = outlivedPartner(backend, bias, w);
    const copyWeights = outlivedPartner(backend, w, bias);
    if (!copyBias && !copyWeights) return upstream(args);
    // A copy with an id of its own (the Identity kernel would share the id).
    const biasCopy = copyBias ? copy(backend, bias) : null;
    const weightsCopy = copyWeights ? copy(backend, w) : null;
    try {
      return upstream({
        ...args,
        inputs: { ...args.inputs, bias: biasCopy ?? bias, [weights]: weightsCopy ?? w },
      });
    } finally {
      release(backend, biasCopy, weightsCopy);
    }
  };
}
