// The layer graph surgery works on: one node per layer call, built from the
// model's own serialised topology so that Sequential and functional models
// take the same path (and the rebuilt model comes from the same config).
import * as tfl from '@tensorflow/tfjs-layers';
import { modelConfig, ownCalls } from '@normprune/layers';

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

function withoutBatch(shape: unknown, layer: tfl.layers.Layer): (number | null)[] {
  if (!Array.isArray(shape) || (shape.length > 0 && Array.isArray(shape[0]))) {
    throw new Error(
      `surgery: layer '${layer.name}' (${layer.getClassName()}) has several outputs; only single-output layers ` +
        `are supported: build it with one (for a recurrent layer, returnState: false), then prune. ${SPARSE_FALLBACK}`,
    );
  }
  return (shape as (number | null)[]).slice(1);
}

/** The output shape of call `i` of `layer` (a list of shapes for a layer with several outputs). */
export function callOutputShape(layer: tfl.layers.Layer, i: number): unknown {
  const shapes = layer.inboundNodes[i].outputShapes as unknown[];
  return shapes.length === 1 ? shapes[0] : shapes;
}

/** Builds the layer graph of a built model. */
export function buildGraph(model: tfl.LayersModel): LayerGraph {
  const config = modelConfig(model);
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
    const calls = ownCalls(model);
    for (const layer of model.layers) {
      const own = calls.get(layer) ?? [];
      if (own.length > 1 || (!own.length && layer.inboundNodes.length > 1)) throw sharedError(layer);
      add({
        name: layer.name,
        className: layer.getClassName(),
        layer,
        inputs: [nodes.length - 1],
        shape: withoutBatch(own.length ? callOutputShape(layer, own[0]) : layer.outputShape, layer),
      });
    }
    resolveReshapes(nodes);
    return { nodes, inputs: [0], outputs: [nodes.length - 1], config, byName };
  }

  const getLayer = layerLookup(model);
  const calls = ownCalls(model);
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
      shape: withoutBatch(own.length === 1 ? callOutputShape(layer, own[0]) : layer.outputShape, layer),
    });
  }
  resolveReshapes(nodes);
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

/**
 * A Reshape's `targetShape` with its -1 resolved from `inShape` (fully known, without the batch):
 * the -1 stands for the input's entries over those of the other axes. Undefined where it does not
 * resolve (no -1, or the other axes do not divide the input's size).
 */
export function resolveTarget(target: unknown, inShape: number[]): number[] | undefined {
  // The layer holds its -1 as null (its config writes -1 back).
  const unknown = (d: unknown) => d == null || d === -1;
  if (!Array.isArray(target) || target.filter(unknown).length !== 1) return undefined;
  const size = inShape.reduce((a, b) => a * b, 1);
  const rest = target.reduce((a: number, d: unknown) => (unknown(d) ? a : a * Number(d)), 1);
  if (!(rest > 0) || size % rest !== 0) return undefined;
  return target.map((d: unknown) => (unknown(d) ? size / rest : Number(d)));
}

export const known = (shape: (number | null)[]): shape is number[] =>
  shape.every((d) => typeof d === 'number' && d >= 0);

/**
 * tfjs 4.22 leaves the -1 of a Reshape's targetShape unknown (null) in the output shape it infers,
 * even where the input's shape is fully known, and so the shapes of the layers after it (an
 * activation, a dropout, another Reshape's input). Where the Reshape's input shape is known, the
 * -1 follows from it, and the shapes of the layers after it from their own computeOutputShape:
 * the nodes' shapes are resolved so (in place, in topological order). A shape tfjs knows is kept.
 */
function resolveReshapes(nodes: GraphNode[]): void {
  const resolved = new Set<number>();
  for (const node of nodes) {
    if (!node.layer || !node.inputs.length || known(node.shape)) continue;
    const inShapes = node.inputs.map((i) => nodes[i].shape);
    if (!inShapes.every(known)) continue;
    let shape: (number | null)[] | undefined;
    if (node.className === 'Reshape')
      shape = resolveTarget((node.layer as unknown as { targetShape?: unknown }).targetShape, inShapes[0]);
    else if (node.inputs.some((i) => resolved.has(i)))
      try {
        const batched = inShapes.map((s) => [null, ...s]);
        const out = node.layer.computeOutputShape(batched.length === 1 ? batched[0] : batched);
        if (Array.isArray(out) && !Array.isArray(out[0])) shape = (out as (number | null)[]).slice(1);
      } catch {
        shape = undefined; // tfjs's shape stays
      }
    if (shape && known(shape) && shape.length === node.shape.length) {
      node.shape = shape;
      resolved.add(node.index);
    }
  }
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
