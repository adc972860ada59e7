// Builds the plain (undecomposed) model an experiment describes. Every
// initializer gets its own seed derived from the run seed, so two runs with
// the same --seed on the same backend start from identical weights.
import * as tfl from '@tensorflow/tfjs-layers';
import { magnitudes } from '@normprune/layers';
import { hardThreshold, keepLargestFilters, keepLargestGroups } from '@normprune/prox';
import { layerNames, type LayerSpec } from './config.js';

/** Builds a plain tfjs-layers model from layer specs; the last dense layer outputs logits. */
export function buildModel(
  layers: LayerSpec[],
  inputShape: [number, number, number],
  seed: number,
): tfl.LayersModel {
  const model = tfl.sequential();
  let seedCounter = 0;
  const init = () => tfl.initializers.glorotUniform({ seed: seed * 1000 + ++seedCounter });
  const names = layerNames(layers);
  let first = true;
  const input = () => {
    const o = first ? { inputShape } : {};
    first = false;
    return o;
  };
  layers.forEach((spec, i) => {
    const [name, bnName, actName] = names[i];
    switch (spec.type) {
      case 'flatten':
        model.add(tfl.layers.flatten({ ...input(), name }));
        break;
      case 'maxPool2d':
        model.add(
          tfl.layers.maxPooling2d({
            ...input(),
            poolSize: spec.poolSize,
            strides: spec.strides ?? spec.poolSize,
            name,
          }),
        );
        break;
      case 'dense':
        model.add(
          tfl.layers.dense({
            ...input(),
            units: spec.units,
            activation: spec.activation,
            kernelInitializer: init(),
            biasInitializer: 'zeros',
            name,
          }),
        );
        break;
      case 'conv2d': {
        model.add(
          tfl.layers.conv2d({
            ...input(),
            filters: spec.filters,
            kernelSize: spec.kernelSize,
            strides: spec.strides,
            padding: spec.padding,
            activation: spec.batchNorm ? 'linear' : spec.activation,
            kernelInitializer: init(),
            biasInitializer: 'zeros',
            name,
          }),
        );
        if (spec.batchNorm) {
          // Momentum 0.9 (not Keras's 0.99): short, reduced-budget runs take a few
          // hundred steps, too few for 0.99 moving statistics to forget their init.
          model.add(tfl.layers.batchNormalization({ axis: -1, momentum: 0.9, name: bnName }));
          if (spec.activation !== 'linear')
            model.add(tfl.layers.activation({ activation: spec.activation, name: actName }));
        }
        break;
      }
    }
  });
  return model;
}

/** Name of the logits layer (the last layer). */
export function logitsLayerName(model: tfl.LayersModel): string {
  return model.layers[model.layers.length - 1].name;
}

/**
 * The group rule of a run's prune step and of `normprune prune`: first at
 * most `keepFilters[layer]` filters of each named 'kernel' Conv2D layer stay
 * alive (those of largest norm), then at
 * most `keep[layer]` groups of each named decomposed layer stay alive (those
 * with the largest magnitudes), then every group whose magnitude is at or
 * below `threshold` dies (its magnitude becomes exactly 0). Surgery then
 * removes the dead groups. The threshold applies to magnitudes, group by
 * group, never to single weights. Changes `model`'s magnitudes in place.
 */
export function pruneMagnitudes(
  model: tfl.LayersModel,
  rule: { threshold: number; keep?: Record<string, number>; keepFilters?: Record<string, number> },
): void {
  if (rule.keepFilters) keepLargestFilters(model, rule.keepFilters);
  if (rule.keep) keepLargestGroups(model, rule.keep);
  if (rule.threshold > 0)
    for (const m of magnitudes(model)) {
      const kept = hardThreshold(m.magnitude, rule.threshold);
      m.magnitude.assign(kept);
      kept.dispose();
    }
}
