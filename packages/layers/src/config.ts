// A model's config as tfjs should give it: tfjs 4.22's SeparableConv2D (and SeparableConv1D)
// leaves its depthMultiplier out of getConfig(), so a model rebuilt from its config (decompose,
// fold, unnest, surgery's prune) or saved and loaded back gets multiplier 1 and cannot take its
// own weights ("weight 'sep/depthwise_kernel' has shape [3,3,2,1], got [3,3,2,2]").
import * as tfl from '@tensorflow/tfjs-layers';

const SEPARABLE = new Set(['SeparableConv2D', 'SeparableConv1D']);

/**
 * A deep copy of `model.getConfig()` in which every separable convolution, nested models'
 * included, states its depthMultiplier. @internal
 */
export function modelConfig(model: tfl.LayersModel): Record<string, any> & { layers: any[] } {
  const config = JSON.parse(JSON.stringify(model.getConfig()));
  restoreDepthMultipliers(config, model, 'className', 'depthMultiplier');
  return config;
}

/**
 * Writes each separable convolution's depthMultiplier into a model config, `model.getConfig()`'s
 * (`className`, `depthMultiplier`) or `model.toJSON()`'s (`class_name`, `depth_multiplier`),
 * recursing into nested models. @internal
 */
export function restoreDepthMultipliers(
  config: { layers?: any[] },
  model: tfl.LayersModel,
  classKey: 'className' | 'class_name',
  key: 'depthMultiplier' | 'depth_multiplier',
): void {
  for (const entry of config.layers ?? []) {
    const name = entry?.config?.name;
    if (typeof name !== 'string') continue;
    let layer: tfl.layers.Layer;
    try {
      layer = model.getLayer(name);
    } catch {
      continue;
    }
    if (layer instanceof tfl.LayersModel) restoreDepthMultipliers(entry.config, layer, classKey, key);
    else if (SEPARABLE.has(entry[classKey]))
      entry.config[key] = (layer as { depthMultiplier?: number }).depthMultiplier ?? 1;
  }
}
