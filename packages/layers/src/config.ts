// A model's config as tfjs should give it. tfjs 4.22 gets two layers' configs wrong, so that a
// model rebuilt from its config (decompose, fold, unnest, surgery's prune) or saved and loaded
// back is another model:
// - its SeparableConv2D (and SeparableConv1D) leaves its depthMultiplier out: the copy gets
//   multiplier 1 and cannot take its own weights ("weight 'sep/depthwise_kernel' has shape
//   [3,3,2,1], got [3,3,2,2]");
// - its DepthwiseConv2D writes its depthwiseRegularizer where its depthwiseConstraint goes: the
//   copy loses its constraint, and one with a regularizer gets that as its constraint, which
//   tfjs applies to every weight it loads ("shape of the new value () and previous value
//   (3,3,4,1) must match").
import * as tfl from '@tensorflow/tfjs-layers';

const SEPARABLE = new Set(['SeparableConv2D', 'SeparableConv1D']);

/** How a config names its keys: `getConfig()`'s camelCase, or `toJSON()`'s (Keras's) snake_case. */
export type ConfigKeys = 'camel' | 'snake';

/**
 * A deep copy of `model.getConfig()` in which every separable convolution, nested models'
 * included, states its depthMultiplier and every DepthwiseConv2D its own depthwiseConstraint.
 * @internal
 */
export function modelConfig(model: tfl.LayersModel): Record<string, any> & { layers: any[] } {
  const config = JSON.parse(JSON.stringify(model.getConfig()));
  restoreConfigs(config, model, 'camel');
  return config;
}

/** `name` in snake_case, as tfjs writes a config key into model.json (`maxValue` -> `max_value`). */
function snake(name: string): string {
  return name
    .replace(/(.)([A-Z][a-z0-9]+)/g, '$1_$2')
    .replace(/([a-z])([A-Z])/g, '$1_$2')
    .toLowerCase();
}

/** A config value with every object key in `keys` form (a constraint's config holds numbers and arrays). */
function keyed(value: unknown, keys: ConfigKeys): unknown {
  if (keys === 'camel' || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => keyed(v, keys));
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [snake(k), keyed(v, keys)]));
}

/** A constraint serialised as tfjs serialises it (`{ className, config }`), or null. @internal */
export function serializedConstraint(constraint: unknown, keys: ConfigKeys): unknown {
  const c = constraint as { getClassName?: () => string; getConfig?: () => object } | null | undefined;
  if (typeof c?.getClassName !== 'function' || typeof c.getConfig !== 'function') return null;
  return keyed({ className: c.getClassName(), config: c.getConfig() }, keys);
}

/**
 * Writes into a model config, `model.getConfig()`'s (`keys` 'camel') or `model.toJSON()`'s
 * (`keys` 'snake'), recursing into nested models, what tfjs 4.22 leaves out of it or gets wrong:
 * each separable convolution's depthMultiplier and each DepthwiseConv2D's depthwiseConstraint.
 * @internal
 */
export function restoreConfigs(config: { layers?: any[] }, model: tfl.LayersModel, keys: ConfigKeys): void {
  const classKey = keys === 'camel' ? 'className' : 'class_name';
  const key = (name: string): string => (keys === 'camel' ? name : snake(name));
  for (const entry of config.layers ?? []) {
    const name = entry?.config?.name;
    if (typeof name !== 'string') continue;
    let layer: tfl.layers.Layer;
    try {
      layer = model.getLayer(name);
    } catch {
      continue;
    }
    if (layer instanceof tfl.LayersModel) restoreConfigs(entry.config, layer, keys);
    else if (SEPARABLE.has(entry[classKey]))
      entry.config[key('depthMultiplier')] = (layer as { depthMultiplier?: number }).depthMultiplier ?? 1;
    else if (entry[classKey] === 'DepthwiseConv2D')
      entry.config[key('depthwiseConstraint')] = serializedConstraint(
        (layer as { depthwiseConstraint?: unknown }).depthwiseConstraint,
        keys,
      );
  }
}
