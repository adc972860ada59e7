// A SeparableConv2D is a DepthwiseConv2D (no bias) followed by a 1x1 Conv2D: tfjs computes it
// as exactly those two ops. prune splits it into those two layers, which it prunes through: the
// Conv2D's filters are units, and a channel the depthwise kernel reads from a dead unit goes.
import * as tfl from '@tensorflow/tfjs-layers';
import { assignWeightsOf, keepModelState, modelConfig, modelFromConfig } from '@normprune/layers';
import { DisconnectedModelError } from './errors.js';
import { readWeights } from './handlers.js';

/** A layer entry of a model config (a Sequential's have no name or inbound nodes). */
interface Entry {
  name?: string;
  className: string;
  config: Record<string, any>;
  inboundNodes?: any[][];
}

/** The two layers a split SeparableConv2D becomes, named under its name. */
export function splitNames(name: string): { depthwise: string; pointwise: string } {
  return { depthwise: `${name}/depthwise`, pointwise: `${name}/pointwise` };
}

/**
 * Whether prune splits this SeparableConv2D: channels last, any depthMultiplier (the DepthwiseConv2D
 * keeps it, and surgery follows it), dilation rate 1 (tfjs 4.22's DepthwiseConv2D ignores its
 * dilationRate: the split would compute an undilated convolution), applied once. Any other stays
 * a layer surgery does not know (refused with advice, or kept whole with `unknownLayers: 'keep'`).
 */
function splits(entry: Entry): boolean {
  const c = entry.config;
  return (
    entry.className === 'SeparableConv2D' &&
    [c.dilationRate ?? 1].flat().every((d: unknown) => d === 1) &&
    (c.dataFormat ?? 'channelsLast') === 'channelsLast' &&
    (entry.inboundNodes ?? [[]]).length <= 1
  );
}

/** The config entries of the two layers computing what a SeparableConv2D entry computes. */
function twoEntries(entry: Entry): [Entry, Entry] {
  const c = entry.config;
  const names = splitNames(c.name);
  const shared = { trainable: c.trainable ?? true, dtype: c.dtype, dataFormat: 'channelsLast' };
  const depthwise: Entry = {
    className: 'DepthwiseConv2D',
    config: {
      ...shared,
      name: names.depthwise,
      kernelSize: c.kernelSize,
      strides: c.strides,
      padding: c.padding,
      dilationRate: c.dilationRate,
      // As modelConfig gives it: tfjs 4.22's own config leaves depthMultiplier out.
      depthMultiplier: c.depthMultiplier ?? 1,
      activation: 'linear',
      useBias: false,
      depthwiseInitializer: c.depthwiseInitializer,
      depthwiseRegularizer: c.depthwiseRegularizer,
      depthwiseConstraint: c.depthwiseConstraint,
      ...(c.batchInputShape ? { batchInputShape: c.batchInputShape } : {}),
    },
  };
  const pointwise: Entry = {
    className: 'Conv2D',
    config: {
      ...shared,
      name: names.pointwise,
      filters: c.filters,
      kernelSize: [1, 1],
      strides: [1, 1],
      padding: 'valid',
      dilationRate: [1, 1],
      activation: c.activation,
      useBias: c.useBias ?? true,
      kernelInitializer: c.pointwiseInitializer,
      biasInitializer: c.biasInitializer,
      kernelRegularizer: c.pointwiseRegularizer,
      biasRegularizer: c.biasRegularizer,
      activityRegularizer: c.activityRegularizer,
      kernelConstraint: c.pointwiseConstraint,
      biasConstraint: c.biasConstraint,
    },
  };
  if (entry.inboundNodes) {
    depthwise.name = names.depthwise;
    depthwise.inboundNodes = entry.inboundNodes;
    pointwise.name = names.pointwise;
    pointwise.inboundNodes = [[[names.depthwise, 0, 0, {}]]];
  }
  return [depthwise, pointwise];
}

/**
 * A copy of `model` with each SeparableConv2D that {@link splits} replaced by a DepthwiseConv2D
 * (`sep/depthwise`, its depthwise kernel) and a 1x1 Conv2D (`sep/pointwise`, its pointwise kernel,
 * bias and activation), holding copies of its weights (written as they are, frozen ones kept
 * frozen); `undefined` when there is none. The caller disposes the copy.
 */
export function splitSeparable(model: tfl.LayersModel): tfl.LayersModel | undefined {
  const config = modelConfig(model) as { layers: Entry[] } & Record<string, any>;
  const split = config.layers.filter(splits).map((e) => e.config.name as string);
  if (!split.length) return undefined;
  const taken = new Set(model.layers.map((l) => l.name));
  for (const name of split)
    for (const part of Object.values(splitNames(name)))
      if (taken.has(part))
        throw new Error(
          `surgery: SeparableConv2D '${name}' is pruned as a DepthwiseConv2D '${splitNames(name).depthwise}' and a ` +
            `1x1 Conv2D '${splitNames(name).pointwise}', but the model has a layer named '${part}': rename it, then prune`,
        );
  // A NaN or an infinity is refused as surgery refuses it, naming the model's layer and weight
  // ('sep/pointwise_kernel'), not the copy's ('sep/pointwise/kernel').
  for (const name of split) readWeights(model.getLayer(name));
  const pointwiseOf = new Map(split.map((n) => [n, splitNames(n).pointwise]));
  const rename = (ref: any[]): any[] =>
    pointwiseOf.has(ref[0]) ? [pointwiseOf.get(ref[0]), ...ref.slice(1)] : ref;
  config.layers = config.layers.flatMap((e) => {
    if (e.inboundNodes) e.inboundNodes = e.inboundNodes.map((node) => node.map(rename));
    return splits(e) ? twoEntries(e) : [e];
  });
  if (Array.isArray(config.outputLayers)) config.outputLayers = config.outputLayers.map(rename);
  const copy = modelFromConfig(model instanceof tfl.Sequential, config);
  for (const layer of model.layers) {
    if (!pointwiseOf.has(layer.name)) {
      assignWeightsOf(copy.getLayer(layer.name), layer.weights);
      continue;
    }
    // SeparableConv2D's weights: depthwise_kernel, pointwise_kernel, then bias.
    const names = splitNames(layer.name);
    assignWeightsOf(copy.getLayer(names.depthwise), layer.weights.slice(0, 1));
    assignWeightsOf(copy.getLayer(names.pointwise), layer.weights.slice(1));
  }
  keepModelState(model, copy);
  return copy;
}

/**
 * `e`, or for a {@link DisconnectedModelError} naming a layer a SeparableConv2D of `model` was split
 * into, the same error naming the SeparableConv2D (`sep (SeparableConv2D, 4 units)`, not
 * `sep/pointwise (Conv2D, 4 units)`): the layer the caller's model holds.
 */
export function ofSplit(model: tfl.LayersModel, e: unknown): unknown {
  if (!(e instanceof DisconnectedModelError)) return e;
  const parts = new Map<string, string>();
  for (const layer of model.layers)
    if (layer.getClassName() === 'SeparableConv2D')
      for (const part of Object.values(splitNames(layer.name))) parts.set(part, layer.name);
  if (![e.layer, ...e.emptied].some((n) => parts.has(n))) return e;
  const rename = (text: string): string => {
    for (const [part, name] of parts)
      text = text
        .replaceAll(`'${part}' (Conv2D`, `'${name}' (SeparableConv2D`)
        .replaceAll(`'${part}'`, `'${name}'`);
    return text;
  };
  const named = (n: string): string => parts.get(n) ?? n;
  return new DisconnectedModelError(
    {
      code: e.code,
      layer: named(e.layer),
      emptied: [...new Set(e.emptied.map(named))],
      detail: rename(e.detail),
    },
    rename(e.message),
  );
}
