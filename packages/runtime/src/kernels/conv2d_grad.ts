// Convolution gradients for the wasm backend, expressed as forward Conv2D calls
// so that they run on XNNPACK's fast convolution instead of upstream's scalar
// loops (Conv2DBackpropInput) or not at all (Conv2DBackpropFilter is missing
// upstream, so conv nets cannot train on wasm).
import * as tf from '@tensorflow/tfjs-core';
import { release, reshape, runWasm, transpose } from './util.js';

type Pads = [[number, number], [number, number], [number, number], [number, number]];

function convInfoOf(
  xShape: number[],
  filterShape: number[],
  attrs: { strides: number | [number, number]; pad: unknown; dataFormat: string; dimRoundingMode?: string },
  kernel: string,
): tf.backend_util.Conv2DInfo {
  const dataFormat = tf.backend_util.convertConv2DDataFormat(attrs.dataFormat as 'NHWC' | 'NCHW');
  if (dataFormat !== 'channelsLast') {
    throw new Error(`normprune: wasm ${kernel} supports dataFormat 'NHWC' only, got '${attrs.dataFormat}'`);
  }
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad as 'same',
    attrs.dimRoundingMode as 'floor' | undefined,
    false,
    dataFormat,
  );
}

/**
 * dW[i, j, c, o] = sum over n, p, q of x[n, p*sh + i - top, q*sw + j - left, c] * dy[n, p, q, o]:
 * a convolution of x (batch and channels swapped, [C, H, W, N]) with dy as the
 * filter ([OH, OW, N, O]) dilated by the forward stride.
 */
export function conv2DBackpropFilter(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const backend = args.backend as tf.KernelBackend;
  const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const attrs = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  const info = convInfoOf(x.shape, attrs.filterShape, attrs, 'Conv2DBackpropFilter');
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  const { inHeight: H, inWidth: W, outHeight: OH, outWidth: OW, inChannels: C, outChannels: O } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  // Bottom/right padding that makes the output exactly kh x kw; when the
  // forward pass never read the last rows/columns it is negative, and the extra
  // output rows are sliced away instead.
  const bottom = kh + (OH - 1) * sh - H - top;
  const right = kw + (OW - 1) * sw - W - left;
  const xT = transpose(backend, x, [3, 1, 2, 0]);
  const dyT = transpose(backend, dy, [1, 2, 0, 3]);
  const pad: Pads = [
    [0, 0],
    [top, Math.max(0, bottom)],
    [left, Math.max(0, right)],
    [0, 0],
  ];
  const conv = runWasm('Conv2D', { x: xT, filter: dyT }, backend, {
    strides: [1, 1],
    dilations: [sh, sw],
    pad: pad as unknown as tf.NamedAttrMap[string],
    dataFormat: 'NHWC',
    dimRoundingMode: null as unknown as string,
  });
  release(backend, xT, dyT);
  let cropped = conv;
  if (conv.shape[1] !== kh || conv.shape[2] !== kw) {
    cropped = runWasm('Slice', { x: conv }, backend, { begin: [0, 0, 0, 0], size: [C, kh, kw, O] });
    release(backend, conv);
  }
  const out = transpose(backend, cropped, [1, 2, 0, 3]);
  release(backend, cropped);
  return out;
}

/**
 * dx is the full correlation of dy, with stride - 1 zeros inserted between its
 * rows and columns, against the filter rotated by 180 degrees with in/out
 * channels swapped: one stride-1 Conv2D.
 */
export function conv2DBackpropInput(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const backend = args.backend as tf.KernelBackend;
  const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const attrs = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
  const info = convInfoOf(attrs.inputShape, filter.shape, attrs, 'Conv2DBackpropInput');
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  const { batchSize: N, inHeight: H, inWidth: W, outHeight: OH, outWidth: OW, outChannels: O } = info;

  const flipped = runWasm('Reverse', { x: filter }, backend, { dims: [0, 1] });
  const wT = transpose(backend, flipped, [0, 1, 3, 2]);
  release(backend, flipped);

  // Zero insertion as a pad of a rank-6 view: [N, OH, 1, OW, 1, O] padded to
  // [N, OH, sh, OW, sw, O] is dy dilated by the stride, plus stride - 1 zero
  // rows/columns at the end (accounted for below).
  let dyD = dy;
  if (sh > 1 || sw > 1) {
    const v = reshape(backend, dy, [N, OH, 1, OW, 1, O]);
    const p = runWasm('PadV2', { x: v }, backend, {
      paddings: [
        [0, 0],
        [0, 0],
        [0, sh - 1],
        [0, 0],
        [0, sw - 1],
        [0, 0],
      ],
      constantValue: 0,
    });
    release(backend, v);
    dyD = reshape(backend, p, [N, OH * sh, OW * sw, O]);
    release(backend, p);
  }
  const LH = dyD.shape[1];
  const LW = dyD.shape[2];
  // Full correlation needs kh - 1 - top rows before and enough after to give H outputs.
  const loH = kh - 1 - info.padInfo.top;
  const hiH = H + kh - 1 - loH - LH;
  const loW = kw - 1 - info.padInfo.left;
  const hiW = W + kw - 1 - loW - LW;
  let src = dyD;
  if (loH < 0 || hiH < 0 || loW < 0 || hiW < 0) {
    const b0 = Math.max(0, -loH);
    const b1 = Math.max(0, -loW);
    src = runWasm('Slice', { x: dyD }, backend, {
      begin: [0, b0, b1, 0],
      size: [N, LH - b0 - Math.max(0, -hiH), LW - b1 - Math.max(0, -hiW), O],
    });
  }
  const pad: Pads = [
    [0, 0],
    [Math.max(0, loH), Math.max(0, hiH)],
    [Math.max(0, loW), Math.max(0, hiW)],
    [0, 0],
  ];
  const out = runWasm('Conv2D', { x: src, filter: wT }, backend, {
    strides: [1, 1],
    dilations: [1, 1],
    pad: pad as unknown as tf.NamedAttrMap[string],
    dataFormat: 'NHWC',
    dimRoundingMode: null as unknown as string,
  });
  release(backend, wT);
  if (src !== dyD) release(backend, src);
  if (dyD !== dy) release(backend, dyD);
  return out;
}
