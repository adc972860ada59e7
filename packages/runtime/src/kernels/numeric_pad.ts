// A numeric `pad` with a geometry that is not the same in both dimensions:
// tfjs-core's computeConv2DInfo / computePool2DInfo (4.22) size BOTH output
// dimensions from the filter's height and the stride's height when `pad` is a
// number, and the cpu backend computes on that geometry. Upstream wasm hands
// the pads to XNNPACK, which sizes the output from the real filter width and
// stride, and writes that many pixels into the buffer tfjs allocated: wrong
// values, or a write past the buffer ("memory access out of bounds"), after
// which every wasm call in the process may fail (a threaded build can hang).
// Such calls are refused here, before upstream runs, with the fix.
import * as tf from '@tensorflow/tfjs-core';
import { KernelFn, pair } from './util.js';

/**
 * Throws when `pad` is a number and the filter, strides or dilations differ
 * between height and width; `what` names the kernel in the message. @internal
 */
export function refuseUnevenNumericPad(
  what: string,
  pad: unknown,
  filter: [number, number],
  strides: number | [number, number],
  dilations?: number | [number, number],
): void {
  if (typeof pad !== 'number') return;
  const [s, d] = [pair(strides), pair(dilations)];
  if (filter[0] === filter[1] && s[0] === s[1] && d[0] === d[1]) return;
  throw new Error(
    `normprune: ${what} on wasm with a numeric pad (${pad}) and a ${filter[0]}x${filter[1]} filter, strides ` +
      `[${s}]${d[0] !== 1 || d[1] !== 1 ? `, dilations [${d}]` : ''}: with a numeric pad tfjs-core sizes both ` +
      "output dimensions from the filter's and the stride's height (a tfjs bug the cpu backend follows), and " +
      "the wasm backend would write past its output. Give pad as 'same', 'valid' or explicit " +
      '[[0, 0], [top, bottom], [left, right], [0, 0]]',
  );
}

/** Wraps an upstream pooling kernel (`MaxPool`, `AvgPool`) with {@link refuseUnevenNumericPad}. */
export function poolNumericPad(upstream: KernelFn | null, what: string): KernelFn | null {
  if (upstream == null) return null;
  return (args) => {
    const attrs = args.attrs as unknown as tf.MaxPoolAttrs;
    refuseUnevenNumericPad(what, attrs.pad, pair(attrs.filterSize), attrs.strides);
    return upstream(args);
  };
}
