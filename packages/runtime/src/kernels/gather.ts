// Upstream wasm GatherV2, for an x with no elements, returns its output before
// giving it tf.gather's shape: the flattened [batch, outer, indices, slice]
// shape instead (tf.gather of a [0, 3] x on [] indices, axis 0, came back
// [1, 1, 0, 3], where cpu gives [0, 3]), and without disposing the two
// reshapes it made of x and of the indices, so that x's and the indices'
// buffers outlived their tensors (the wasm backend's numDataIds grew by 2 a
// call when both were made and disposed around it). Such a call is answered
// here as on cpu: the indices checked against x's axis (cpu's error), then an
// empty output of cpu's shape and x's dtype. Every call with a non-empty x,
// empty indices included, goes to upstream untouched.
import * as tf from '@tensorflow/tfjs-core';
import { KernelFn, type HeapBackend } from './util.js';

/** Wraps upstream `GatherV2` so that an x with no elements gives cpu's empty output. */
export function makeGather(upstream: KernelFn | null): KernelFn | null {
  if (upstream == null) return null;
  return (args) => {
    const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
    if (tf.util.sizeFromShape(x.shape) !== 0) return upstream(args);
    const { axis, batchDims } = args.attrs as unknown as tf.GatherV2Attrs;
    const backend = args.backend as HeapBackend;
    const parsedAxis = tf.util.parseAxisParam(axis, x.shape)[0];
    const axisDim = x.shape[parsedAxis];
    const values = backend.readSync(indices.dataId) as tf.backend_util.TypedArray;
    for (let i = 0; i < values.length; i++) {
      const index = values[i];
      tf.util.assert(
        index <= axisDim - 1 && index >= 0,
        () => `GatherV2: the index value ${index} is not in [0, ${axisDim - 1}]`,
      );
    }
    const info = tf.backend_util.segment_util.collectGatherOpShapeInfo(
      x as tf.Tensor,
      indices as tf.Tensor,
      parsedAxis,
      batchDims ?? 0,
    );
    return backend.makeOutput(info.outputShape, x.dtype);
  };
}
