// Fine-tuning a pruned model must not bring its zero 2-D kernels back to life:
// ordinary optimisers (momentum, Adam) move every weight. Re-zeroing after each
// step works with any optimiser and with model.fit, at the cost of one
// multiply per kernel weight per batch.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { isDecomposed } from '@normprune/layers';
import { allLayers, checkModel, wrappedDecomposed } from './folding.js';

/** One layer under a {@link KernelMask}. */
export interface MaskedLayer {
  /** Layer name. */
  name: string;
  /** Kernel weights held at zero. */
  zeros: number;
  /** Kernel weights in total. */
  size: number;
}

/** Keeps a model's zero kernel weights at zero while it trains; see {@link kernelMask}. */
export interface KernelMask {
  /** Masked layers: name, zero weights held at zero, kernel size. Layers without a zero are not masked. */
  layers: MaskedLayer[];
  /** A tfjs-layers callback for `model.fit` / `fitDataset`: re-applies the mask after every batch. */
  callback: tfl.CustomCallback;
  /** Re-applies the mask now (for custom training loops: call it after each optimiser step). */
  apply(): void;
  /** Frees the mask tensors. */
  dispose(): void;
}

/**
 * Captures which kernel weights of the model's Dense, Conv2D and DepthwiseConv2D layers (nested models
 * included) are exactly zero (dead 2-D kernels, zero rows...) and returns a mask that writes those zeros back. Take it from the
 * pruned model before fine-tuning; pass `mask.callback` to `model.fit`, or call `mask.apply()`
 * after each step of a custom loop. Decomposed layers (nested ones too) are refused: prune (or fold) first.
 */
export function kernelMask(model: tfl.LayersModel): KernelMask {
  checkModel(model, 'kernelMask');
  const entries: {
    name: string;
    variable: tfl.LayerVariable;
    mask: tf.Tensor;
    zeros: number;
    size: number;
  }[] = [];
  for (const layer of allLayers(model)) {
    const cls = layer.getClassName();
    if (isDecomposed(layer)) {
      throw new Error(`kernelMask: layer '${layer.name}' is a ${cls}; prune() or fold() the model first`);
    }
    const wrapped = wrappedDecomposed(layer);
    if (wrapped) {
      throw new Error(
        `kernelMask: layer '${layer.name}' (${cls}) wraps the decomposed layer '${wrapped.name}' ` +
          `(${wrapped.getClassName()}), which the mask cannot hold and fold() cannot make plain: ` +
          'build the model with a plain layer inside the wrapper',
      );
    }
    const kernelName =
      cls === 'Dense' || cls === 'Conv2D' ? 'kernel' : cls === 'DepthwiseConv2D' ? 'depthwise_kernel' : null;
    if (!kernelName) continue;
    const variable = layer.weights.find(
      (w) =>
        String((w as any).originalName ?? w.name)
          .split('/')
          .pop() === kernelName,
    );
    if (!variable) continue;
    const mask = tf.tidy(() => tf.cast(tf.notEqual(variable.read(), 0), 'float32'));
    const size = mask.size;
    const zeros = size - (tf.tidy(() => tf.sum(mask).dataSync()[0]) as number);
    if (zeros === 0) {
      mask.dispose();
      continue;
    }
    entries.push({ name: layer.name, variable, mask, zeros, size });
  }
  const apply = (): void => {
    for (const e of entries) {
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
    dispose: () => entries.forEach((e) => e.mask.dispose()),
  };
}
