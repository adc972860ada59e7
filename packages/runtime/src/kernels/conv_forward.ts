// Upstream wasm convolutions hand XNNPACK the padding tfjs computes plus a
// SAME flag, and XNNPACK works out the output size itself. Two cases come out
// wrong (in tfjs-backend-wasm 4.22 without normprune too):
// * 'same' padding with a stride larger than the (dilated) kernel: XNNPACK's
//   TensorFlow SAME flag pads differently; a 5x5 input, 3x3 kernel, stride 5
//   gives zeros where the cpu backend does not (bench/upstream-faults.ts row 1);
// * a numeric or explicit pad with dimRoundingMode 'ceil' or 'round' that
//   rounds the output size up: XNNPACK computes the floor size and writes a
//   smaller image into the larger output, so every row after the first is
//   shifted (off by about 1.4 on a 6x6 input, 3x3 kernel, stride 2, pad 1,
//   'ceil': row 2).
// Both go to upstream as explicit padding: the padding tfjs computes for
// 'same', and for a rounded-up size extra bottom/right padding that makes the
// floor size tfjs's size (the extra output rows read only padding there, as
// they do on the cpu backend). A (dilated) filter larger than the padded input
// gives an output with a 0 height or width, which upstream wrote into ("memory
// access out of bounds", and later wasm calls trapped): the empty output is
// returned without calling upstream, as in pool_forward.ts. Every other call
// goes to upstream untouched.
import * as tf from '@tensorflow/tfjs-core';
import { refuseUnevenNumericPad } from './numeric_pad.js';
import {
  ConvGeometryAttrs,
  emptyOutput,
  forwardConvInfo,
  HeapBackend,
  KernelFn,
  padFor,
  pair,
  release,
} from './util.js';

/** A float32 buffer of `shape` holding zeros. */
function zeros(backend: HeapBackend, shape: number[]): tf.TensorInfo {
  const out = backend.makeOutput(shape, 'float32');
  backend.typedArrayFromHeap(out).fill(0);
  return out;
}

/**
 * Wraps an upstream Conv2D-like kernel (`Conv2D`, `FusedConv2D`,
 * `DepthwiseConv2dNative`, `FusedDepthwiseConv2D`): 'same' padding with a
 * stride larger than the dilated kernel in either dimension, and a
 * dimRoundingMode that rounds the output size up, go to upstream as the
 * explicit padding that gives tfjs's output.
 */
export function explicitPadding(upstream: KernelFn | null, depthwise: boolean): KernelFn | null {
  if (upstream == null) return null;
  const padded = paddedCall(upstream, depthwise);
  return (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const filter = args.inputs.filter as tf.TensorInfo;
    // No input channels: XNNPACK reads no weights and leaves the output unwritten (a
    // depthwise one divides by the 0 channels: a wasm trap). A convolution's output is then
    // the empty sum, 0, plus the bias, through the activation: the same call on one zero
    // channel gives it. A depthwise one has no output channels, an empty output.
    if (
      x.shape[3] === 0 &&
      (args.attrs as unknown as ConvGeometryAttrs).dataFormat !== 'NCHW' &&
      !depthwise
    ) {
      const b = args.backend as HeapBackend;
      const one = zeros(b, [...x.shape.slice(0, 3), 1]);
      const weights = zeros(b, [filter.shape[0], filter.shape[1], 1, filter.shape[3]]);
      try {
        return padded({ ...args, inputs: { ...args.inputs, x: one, filter: weights } });
      } finally {
        release(b, one, weights);
      }
    }
    return padded(args);
  };
}

/** {@link explicitPadding}'s call, for inputs with at least one channel (a depthwise one: any). */
function paddedCall(upstream: KernelFn, depthwise: boolean): KernelFn {
  return (args) => {
    const attrs = args.attrs as unknown as ConvGeometryAttrs;
    const x = args.inputs.x as tf.TensorInfo;
    const filter = args.inputs.filter as tf.TensorInfo;
    const shape = filter.shape;
    if (typeof attrs.pad === 'number')
      refuseUnevenNumericPad(
        depthwise ? 'a depthwise convolution' : 'a convolution',
        attrs.pad,
        [shape[0], shape[1]],
        attrs.strides,
        attrs.dilations,
      );
    // Only an empty x ('same'), a (dilated) filter larger than x (otherwise) or no channels
    // (depthwise) can leave no output.
    const nchw = attrs.dataFormat === 'NCHW';
    const h = x.shape[nchw ? 2 : 1];
    const w = x.shape[nchw ? 3 : 2];
    const [dh, dw] = pair(attrs.dilations);
    if (
      (depthwise && x.shape[nchw ? 1 : 3] === 0) ||
      (attrs.pad === 'same' ? h === 0 || w === 0 : h < (shape[0] - 1) * dh + 1 || w < (shape[1] - 1) * dw + 1)
    ) {
      const empty = emptyOutput(
        args.backend as tf.KernelBackend,
        forwardConvInfo(x, filter, attrs, depthwise).outShape,
      );
      if (empty != null) return empty;
    }
    // The common cases (stride 1 with 'same', 'valid' or a pad without
    // dimRoundingMode) go straight to upstream.
    const same = attrs.pad === 'same';
    const s = attrs.strides;
    if (same ? s === 1 || (typeof s !== 'number' && s[0] === 1 && s[1] === 1) : attrs.dimRoundingMode == null)
      return upstream(args);
    const info = forwardConvInfo(x, filter, attrs, depthwise);
    const p = info.padInfo;
    const bottom = padFor(
      info.outHeight,
      info.strideHeight,
      info.effectiveFilterHeight,
      info.inHeight,
      p.top,
    );
    const right = padFor(info.outWidth, info.strideWidth, info.effectiveFilterWidth, info.inWidth, p.left);
    if (same) {
      if (info.strideHeight <= info.effectiveFilterHeight && info.strideWidth <= info.effectiveFilterWidth)
        return upstream(args);
    } else if (bottom <= p.bottom && right <= p.right) {
      // Rounding gave the floor size.
      return upstream(args);
    }
    const pad = [
      [0, 0],
      [p.top, same ? p.bottom : Math.max(p.bottom, bottom)],
      [p.left, same ? p.right : Math.max(p.right, right)],
      [0, 0],
    ];
    // The explicit padding now gives the rounded size with the floor rule.
    const rest = { ...(args.attrs as tf.NamedAttrMap), pad } as tf.NamedAttrMap;
    delete rest.dimRoundingMode;
    return upstream({ ...args, attrs: rest });
  };
}

/**
 * Wraps upstream `DepthwiseConv2dNative` / `FusedDepthwiseConv2D` to refuse a
 * stride and a dilation both above 1, as the cpu backend's kernel does (with
 * its message); upstream computed an answer tfjs-core defines nowhere else.
 * tf.depthwiseConv2d does not check this itself, so the kernel's refusal is
 * the op's.
 */
export function depthwiseStridesOrDilations(upstream: KernelFn | null): KernelFn | null {
  if (upstream == null) return null;
  return (args) => {
    const attrs = args.attrs as unknown as ConvGeometryAttrs;
    const dilations = attrs.dilations ?? [1, 1];
    tf.util.assert(
      tf.backend_util.eitherStridesOrDilationsAreOne(attrs.strides, dilations),
      () =>
        'Error in depthwiseConv2d: Either strides or dilations must be ' +
        `1. Got strides ${attrs.strides} and dilations '${dilations}'`,
    );
    return upstream(args);
  };
}

/**
 * Wraps upstream `DepthwiseConv2dNative` / `FusedDepthwiseConv2D` to refuse
 * `dataFormat` `'NCHW'`, which tf.depthwiseConv2d passes on: upstream reads
 * the input as NHWC whatever it says (x [1, 2, 3, 3] NCHW with a [2, 2, 2, 1]
 * filter came back [1, 1, 2, 3], values of the wrong axes), and the cpu
 * backend ignores it too (NaN where it reads past the input). tfjs-layers
 * transposes a channelsFirst layer's input to NHWC itself, so only a direct
 * call is refused.
 */
export function depthwiseChannelsLast(upstream: KernelFn | null): KernelFn | null {
  if (upstream == null) return null;
  return (args) => {
    if ((args.attrs as unknown as ConvGeometryAttrs).dataFormat === 'NCHW')
      throw new Error(
        "Error in depthwiseConv2d: dataFormat 'NCHW' is not supported by the wasm backend (it would read the " +
          'input as NHWC and return wrong values): transpose x to NHWC (tf.transpose(x, [0, 2, 3, 1])), ' +
          "convolve with dataFormat 'NHWC', and transpose the result back ([0, 3, 1, 2])",
      );
    return upstream(args);
  };
}
