// The layer graph surgery works on: one node per layer call, built from the
// model's own serialised topology so that Sequential and functional models
// take the same path (and the rebuilt model comes from the same config).
import * as tfl from '@tensorflow/tfjs-layers';
import { modelConfig, ownCalls } from '@normprune/layers';
import { shapeResolver, type ShapeResolver } from './shapes.js';

/** One layer of the graph (internal). */
export interface GraphNode {
  index: number;
  name: string;
  className: string;
  /** Undefined only for the implicit input of a Sequential model. */
  layer: tfl.layers.Layer | undefined;
  /** Node indices feeding this layer, in call order. */
  inputs: number[];
  /** Node indices reading this layer's output. */
  consumers: number[];
  /** Output shape without the batch dimension. */
  shape: (number | null)[];
}

/** The whole model as a DAG, topologically ordered (internal). */
export interface LayerGraph {
  nodes: GraphNode[];
  inputs: number[];
  outputs: number[];
  /** `model.getConfig()` (deep copy); surgery patches it and rebuilds from it. */
  config: any;
  byName: Map<string, GraphNode>;
}

/**
 * The output shape, without the batch, of a layer's call in the model (`own`: its calls there, as
 * `ownCalls` gives them), sizes tfjs leaves unknown worked out by `resolve` (see shapes.ts).
 */
function outputShape(layer: tfl.layers.Layer, own: number[], resolve: ShapeResolver): (number | null)[] {
  const node = own.length === 1 ? layer.inboundNodes[own[0]] : undefined;
  const shapes = node ? (node.outputShapes as unknown[]) : [layer.outputShape];
  const shape = shapes.length === 1 ? shapes[0] : shapes;
  if (!Array.isArray(shape) || (shape.length > 0 && Array.isArray(shape[0]))) {
    throw new Error(
      `surgery: layer '${layer.name}' (${layer.getClassName()}) has several outputs; only single-output layers ` +
        `are supported: build it with one (for a recurrent layer, returnState: false), then prune. ${SPARSE_FALLBACK}`,
    );
  }
  const tensor = node?.outputTensors?.[0];
  return (tensor ? resolve(tensor) : (shape as (number | null)[])).slice(1);
}

/** Builds the layer graph of a built model. */
export function buildGraph(model: tfl.LayersModel): LayerGraph {
  const config = modelConfig(model);
  const resolve = shapeResolver();
  const calls = ownCalls(model);
  const nodes: GraphNode[] = [];
  const byName = new Map<string, GraphNode>();
  const add = (n: Omit<GraphNode, 'index' | 'consumers'>): GraphNode => {
    const node: GraphNode = { ...n, index: nodes.length, consumers: [] };
    nodes.push(node);
    byName.set(node.name, node);
    for (const i of node.inputs) nodes[i].consumers.push(node.index);
    return node;
  };

  if (!model.inputs?.length)
    throw new Error(
      `surgery: model '${model.name}' has no layers yet (an empty tf.sequential()); add its layers first`,
    );
  if (!Array.isArray(config.inputLayers)) {
    // Sequential: a chain; its InputLayer is not part of `layers`.
    const inShape = model.inputs[0].shape;
    add({ name: '<input>', className: 'InputLayer', layer: undefined, inputs: [], shape: inShape.slice(1) });
    for (const layer of model.layers) {
      const own = calls.get(layer) ?? [];
      if (own.length > 1 || (!own.length && layer.inboundNodes.length > 1)) throw sharedError(layer);
      add({
        name: layer.name,
        className: layer.getClassName(),
        layer,
        inputs: [nodes.length - 1],
        shape: outputShape(layer, own, resolve),
      });
    }
    return { nodes, inputs: [0], outputs: [nodes.length - 1], config, byName };
  }

  const getLayer = layerLookup(model);
  // Before ordering: a layer applied to its own output (shared in a chain) reads itself, and
  // the order below would never place it.
  for (const entry of config.layers) {
    const layer = getLayer(entry.name);
    if ((entry.inboundNodes ?? []).length > 1) throw sharedError(layer);
  }
  const pending: any[] = [...config.layers];
  // getConfig lists layers in depth order already; the loop only guards against surprises.
  while (pending.length) {
    const idx = pending.findIndex((l) =>
      (l.inboundNodes ?? []).every((node: any[]) => node.every((t: any[]) => byName.has(t[0]))),
    );
    if (idx < 0) throw new Error('surgery: could not order the model topologically');
    const entry = pending.splice(idx, 1)[0];
    const layer = getLayer(entry.name);
    const inbound: any[] = entry.inboundNodes?.[0] ?? [];
    for (const t of inbound) {
      if (t[2] !== 0)
        throw new Error(
          `surgery: layer '${entry.name}' reads output ${t[2]} of '${t[0]}'; multi-output layers are not supported`,
        );
    }
    const own = calls.get(layer) ?? [];
    add({
      name: entry.name,
      className: entry.className,
      layer,
      inputs: inbound.map((t) => byName.get(t[0])!.index),
      shape: outputShape(layer, own, resolve),
    });
  }
  const ref = (t: any[]): number => {
    if (t[2] !== 0) throw new Error(`surgery: model input/output '${t[0]}' index ${t[2]} not supported`);
    return byName.get(t[0])!.index;
  };
  return {
    nodes,
    inputs: config.inputLayers.map(ref),
    outputs: config.outputLayers.map(ref),
    config,
    byName,
  };
}

/** What a model surgery refuses can still get: its zero groups stored compactly. */
export const SPARSE_FALLBACK =
  "Without pruning, exportModel(model, dir, { format: 'sparse' }) still stores the model's all-zero groups " +
  'compactly (decomposed layers are folded first; a JavaScript call, which the normprune CLI has no flag for)';

function sharedError(layer: tfl.layers.Layer): Error {
  return new Error(
    `surgery: layer '${layer.name}' (${layer.getClassName()}) is called more than once (shared weights); shared layers are not supported: ` +
      'build the model with one layer per call, each holding the weights of this one (copies compute what the ' +
      `shared layer does, and each is pruned on its own), then prune. ${SPARSE_FALLBACK}`,
  );
}

/** The names a config entry answers to: its config's name, then its own. */
function entryNames(entry: any): string[] {
  return [entry?.config?.name, entry?.name].filter((key): key is string => typeof key === 'string');
}

// Per list of config entries: the index of each name's first entry, so that looking up every layer
// is linear, not quadratic, in depth. A hit is checked against the list (the entry at that index
// still answers to the name), so a list changed after a lookup is indexed again, never served stale.
const indexByName = new WeakMap<any[], Map<string, number>>();

function indexNames(layers: any[]): Map<string, number> {
  const byName = new Map<string, number>();
  // The first entry whose config name or name matches, as a search in order would find.
  layers.forEach((l, i) => {
    for (const key of entryNames(l)) if (!byName.has(key)) byName.set(key, i);
  });
  indexByName.set(layers, byName);
  return byName;
}

/** The config entry of a layer inside a (deep-copied) model config. */
export function layerConfigEntry(config: any, name: string): any {
  const layers = config.layers as any[];
  let i = indexByName.get(layers)?.get(name);
  if (i === undefined || !entryNames(layers[i]).includes(name)) i = indexNames(layers).get(name);
  if (i === undefined) throw new Error(`surgery: layer '${name}' missing from the model config`);
  return layers[i];
}

/**
 * `model.getLayer`, through a map built once: getLayer searches the layers in order, which made
 * looking up every layer of a deep model quadratic. Unknown names still get tfjs's own error.
 */
export function layerLookup(model: tfl.LayersModel): (name: string) => tfl.layers.Layer {
  const byName = new Map<string, tfl.layers.Layer>();
  for (const l of model.layers) if (!byName.has(l.name)) byName.set(l.name, l);
  return (name) => byName.get(name) ?? model.getLayer(name);
}
