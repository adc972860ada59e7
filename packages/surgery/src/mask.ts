// Fine-tuning a pruned model must not bring its zero 2-D kernels back to life:
// ordinary optimisers (momentum, Adam) move every weight. Re-zeroing after each
// step works with any optimiser and with model.fit, at the cost of one
// multiply per kernel weight per batch.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { isDecomposed, layerPaths } from '@normprune/layers';
import { checkModel, wrappedDecomposed } from './folding.js';

/**
 * The kernels masked, by layer class: a Dense, Conv1D, Conv2D or Conv3D `kernel` ([in, out], [k,
 * cin, cout], [kh, kw, cin, cout], [kd, kh, kw, cin, cout]), a Conv2DTranspose's `kernel` ([kh,
 * kw, cout, cin]), a DepthwiseConv2D's `depthwise_kernel`, and both
 * kernels of a SeparableConv2D, which prune keeps whole when it does not split it.
 */
const KERNELS = new Map<string, string[]>([
  ['Dense', ['kernel']],
  ['Conv1D', ['kernel']],
  ['Conv2D', ['kernel']],
  ['Conv3D', ['kernel']],
  ['Conv2DTranspose', ['kernel']],
  ['DepthwiseConv2D', ['depthwise_kernel']],
  ['SeparableConv2D', ['depthwise_kernel', 'pointwise_kernel']],
]);

/** A weight's short name (`kernel`, `depthwise_kernel`, ...). */
function shortName(w: tfl.LayerVariable): string {
  return String((w as any).originalName ?? w.name)
    .split('/')
    .pop()!;
}

/** One layer under a {@link KernelMask}. */
export interface MaskedLayer {
  /**
   * Layer name; a layer inside a nested model (a model used as a layer) is named by its path,
   * `block/fc`, as analyze, prune, exportModel and kernelMask's errors name it.
   */
  name: string;
  /** Kernel weights held at zero. */
  zeros: number;
  /** Kernel weights in total (of both kernels, for a SeparableConv2D). */
  size: number;
}

/** Keeps a model's zero kernel weights at zero while it trains; see {@link kernelMask}. */
export interface KernelMask {
  /** Masked layers: name, zero weights held at zero, kernel size. Layers without a zero are not masked. */
  layers: MaskedLayer[];
  /** A tfjs-layers callback for `model.fit` / `fitDataset`: re-applies the mask after every batch. */
  callback: tfl.CustomCallback;
  /**
   * Re-applies the mask now (for custom training loops: call it after each optimiser step).
   * After {@link KernelMask.dispose} it throws (as does the callback), saying to take a new mask.
   */
  apply(): void;
  /** Frees the mask tensors; a second call does nothing. */
  dispose(): void;
}

/**
 * Captures which kernel weights of the model's Dense, Conv1D, Conv2D, Conv3D, Conv2DTranspose,
 * DepthwiseConv2D and SeparableConv2D layers (nested models included; both kernels of a SeparableConv2D) are exactly zero (dead 2-D kernels,
 * zero rows...) and returns a mask that writes those zeros back. Take it from the
 * pruned model before fine-tuning; pass `mask.callback` to `model.fit`, or call `mask.apply()`
 * after each step of a custom loop. Decomposed layers (nested ones too, named by path: `block/fc`)
 * are refused: prune (or fold) first.
 */
export function kernelMask(model: tfl.LayersModel): KernelMask {
  checkModel(model, 'kernelMask');
  const entries: {
    name: string;
    /** The layer's kernels that hold a zero, each with its mask. */
    masked: { variable: tfl.LayerVariable; mask: tf.Tensor; zeros: number }[];
    zeros: number;
    size: number;
  }[] = [];
  // A layer of a nested model is named by its path (`block/fc`), in mask.layers and in errors, as
  // analyze, prune and exportModel name it: two nested models may each hold a layer 'fc'. Every
  // layer is checked before any mask is made: a refusal after the masks of the layers before it
  // left them behind.
  const paths = layerPaths(model);
  for (const { path: at, layer } of paths) {
    const cls = layer.getClassName();
    if (isDecomposed(layer)) {
      throw new Error(`kernelMask: layer '${at}' is a ${cls}; prune() or fold() the model first`);
    }
    const wrapped = wrappedDecomposed(layer);
    if (wrapped) {
      throw new Error(
        `kernelMask: layer '${at}' (${cls}) wraps the decomposed layer '${wrapped.name}' ` +
          `(${wrapped.getClassName()}), which the mask cannot hold and fold() cannot make plain: ` +
          'build the model with a plain layer inside the wrapper',
      );
    }
  }
  for (const { path: at, layer } of paths) {
    const kernelNames = KERNELS.get(layer.getClassName());
    if (!kernelNames) continue;
    const kernels = layer.weights.filter((w) => kernelNames.includes(shortName(w)));
    const masked = kernels.flatMap((variable) => {
      const mask = tf.tidy(() => tf.cast(tf.notEqual(variable.read(), 0), 'float32'));
      const zeros = mask.size - (tf.tidy(() => tf.sum(mask).dataSync()[0]) as number);
      if (zeros > 0) return [{ variable, mask, zeros }];
      mask.dispose();
      return [];
    });
    if (masked.length === 0) continue;
    const size = kernels.reduce((n, w) => n + w.read().size, 0);
    entries.push({ name: at, masked, zeros: masked.reduce((n, e) => n + e.zeros, 0), size });
  }
  let disposed = false;
  const apply = (): void => {
    // The freed masks would fail deep in tfjs ("Cannot read properties of undefined").
    if (disposed)
      throw new Error(
        'kernelMask: the mask was disposed (mask.dispose()), so it cannot be applied: ' +
          'take a new mask with kernelMask(model), or dispose it only once training is over',
      );
    for (const e of entries.flatMap((l) => l.masked)) {
      // assign, not LayerVariable.write: write would also apply the layer's kernel constraint
      // after every batch, which tfjs's own training never does.
      tf.tidy(() => {
        (e.variable.read() as tf.Variable).assign(tf.mul(e.variable.read(), e.mask));
      });
    }
  };
  return {
    layers: entries.map(({ name, zeros, size }) => ({ name, zeros, size })),
    callback: new tfl.CustomCallback({
      onTrainBegin: async () => apply(),
      onBatchEnd: async () => apply(),
    }),
    apply,
    dispose: () => {
      disposed = true;
      entries.forEach((l) => l.masked.forEach((e) => e.mask.dispose()));
    },
  };
}
