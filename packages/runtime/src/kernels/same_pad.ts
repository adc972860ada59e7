// Upstream wasm convolutions pass 'same' padding to XNNPACK as its TensorFlow
// SAME-padding flag, which gives wrong outputs when the stride exceeds the
// (dilated) kernel: a 5x5 input, 3x3 kernel, stride 5 is off by up to 0.4
// against the cpu backend, in tfjs-backend-wasm 4.22 without normprune too.
// The padding tfjs itself computes for 'same', passed as explicit numbers,
// gives the right result; these wrappers do that in exactly those cases and
// leave every other call to upstream untouched.
import * as tf from '@tensorflow/tfjs-core';
import { KernelFn } from './util.js';

type ConvAttrs = {
  strides: number | [number, number];
  pad: unknown;
  dilations?: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dataFormat?: 'NHWC' | 'NCHW';
};

/**
 * Wraps an upstream Conv2D-like kernel (`Conv2D`, `FusedConv2D`,
 * `DepthwiseConv2dNative`, `FusedDepthwiseConv2D`): 'same' padding with a
 * stride larger than the dilated kernel in either dimension goes to upstream
 * as the explicit padding tfjs computes for it.
 */
export function explicitSamePadding(upstream: KernelFn | null, depthwise: boolean): KernelFn | null {
  if (upstream == null) return null;
  return (args) => {
    const attrs = args.attrs as unknown as ConvAttrs;
    // The common cases (any 'valid' or explicit pad, stride 1) go straight to upstream.
    const strides = typeof attrs.strides === 'number' ? [attrs.strides, attrs.strides] : attrs.strides;
    if (attrs.pad !== 'same' || (strides[0] === 1 && strides[1] === 1)) return upstream(args);
    const x = args.inputs.x as tf.TensorInfo;
    const filter = args.inputs.filter as tf.TensorInfo;
    const info = tf.backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      filter.shape as [number, number, number, number],
      attrs.strides,
      attrs.dilations ?? 1,
      'same',
      attrs.dimRoundingMode,
      depthwise,
      tf.backend_util.convertConv2DDataFormat(attrs.dataFormat ?? 'NHWC'),
    );
    if (info.strideHeight <= info.effectiveFilterHeight && info.strideWidth <= info.effectiveFilterWidth)
      return upstream(args);
    const p = info.padInfo;
    const pad = [
      [0, 0],
      [p.top, p.bottom],
      [p.left, p.right],
      [0, 0],
    ];
    return upstream({ ...args, attrs: { ...(args.attrs as tf.NamedAttrMap), pad } as tf.NamedAttrMap });
  };
}
