// unnest(): a model without nested models (a model used as a layer), its layers
// applied directly and named by their paths, so that code working on one flat
// graph (surgery) takes models built from blocks, as Keras users build them.
import * as tfl from '@tensorflow/tfjs-layers';
import { modelConfig } from './config.js';
import { assignWeightsOf, checkModel, keepModelState, layerPaths, modelFromConfig } from './model.js';

/** A model or layer config: JSON of any layer's shape. */
type Dict = Record<string, any>;
/** A layer entry of a model config; a Sequential's entries have neither a name nor inbound nodes. */
interface Entry {
  name?: string;
  className: string;
  config: Dict;
  inboundNodes?: unknown[][];
}
/** An input of a layer call, `[layer, node, tensor, kwargs]`. */
type Ref = [string, number, number, ...unknown[]];

const MODEL_CLASSES = new Set(['Sequential', 'Model', 'Functional']);

/**
 * Whether `model` holds a nested model (a model used as a layer), which {@link unnest} would
 * replace by its layers. Throws for a `model` that is not a LayersModel.
 */
export function hasNested(model: tfl.LayersModel): boolean {
  checkModel(model, 'hasNested');
  return model.layers.some((l) => l instanceof tfl.LayersModel);
}

/**
 * A copy of `model` in which every nested model (a model used as a layer: a
 * `tf.sequential` block, a functional base model with a head on it) is
 * replaced by its layers, applied directly to what the nested model was
 * applied to. Each layer of a nested model is named by its path, the names of
 * the nested models holding it first (`block/fc`, as {@link layerPaths} and
 * surgery's `analyze` name it), so names stay unique; the model's own layers
 * keep their names. The copy computes what `model` computes and holds copies
 * of its weights (written as they are: no constraint is applied), with the
 * same weights frozen (a nested model frozen as a whole, the transfer-learning
 * idiom, freezes its layers in the copy, their configs included). The layers of
 * a nested model's output that nothing reads are left out, as tfjs leaves them
 * out of a flat model; a layer shared inside a nested model stays shared. A
 * Sequential whose nested models are all Sequential stays a Sequential; any
 * other model becomes a functional one.
 * A model without nested models is copied as it is. `model` is left untouched;
 * the copy is not compiled, and the caller disposes it.
 *
 * Throws, naming it, for a nested model applied more than once (its weights are
 * shared between the calls; a flat model would need one copy per call), for a
 * layer that is both inside a nested model and applied around it, and for a
 * path that is also the name of another layer; and for a `model` that is not a
 * LayersModel.
 */
export function unnest(model: tfl.LayersModel): tfl.LayersModel {
  checkModel(model, 'unnest');
  if (!model.inputs?.length)
    throw new Error(
      `unnest: model '${model.name}' has no layers yet (an empty tf.sequential()); add its layers first`,
    );
  const paths = layerPaths(model);
  const byPath = new Map<string, tfl.layers.Layer>();
  const pathsOf = new Map<tfl.layers.Layer, string[]>();
  for (const { path, layer } of paths) {
    if (byPath.has(path))
      throw new Error(
        `unnest: two layers of model '${model.name}' go by '${path}' (a layer named like the path of a ` +
          `nested model's layer); rename one of them`,
      );
    byPath.set(path, layer);
    pathsOf.set(layer, [...(pathsOf.get(layer) ?? []), path]);
  }
  for (const [layer, at] of pathsOf)
    if (at.length > 1)
      throw new Error(
        `unnest: layer '${layer.name}' is at ${at.map((p) => `'${p}'`).join(' and ')}: one layer inside a nested ` +
          `model and applied around it too, so its weights are shared; build one layer per place, each holding ` +
          `the weights of this one`,
      );
  const config = modelConfig(model) as Dict & { layers: Entry[] };
  const sequential = model instanceof tfl.Sequential && onlySequential(config.layers);
  const entries: Entry[] = [];
  let flat: Dict;
  if (sequential) {
    spliceChain(config.layers, '', entries);
    // The chain's input, which tfjs reads from its first layer's config.
    for (const e of entries) e.config = withoutInputShape(e.config);
    const [input] = model.inputs;
    if ((entries[0].config.dtype ?? 'float32') === input.dtype)
      entries[0].config.batchInputShape = input.shape;
    else {
      // An input of another dtype than its first layer (int32 ids into an Embedding, from a Keras
      // InputLayer): given by an input layer of its own, as the layer's dtype is its weights'.
      const taken = new Set(entries.map((e) => e.config.name as string));
      const name = uniqueName(input.sourceLayer?.name ?? `${model.name}_input`, taken);
      entries.unshift({
        className: 'InputLayer',
        config: { batchInputShape: input.shape, dtype: input.dtype, sparse: false, name },
      });
    }
    flat = { name: model.name, layers: entries };
  } else {
    const form = functionalForm(model, config);
    const outputs = inline(form, new Map(), '', entries);
    flat = {
      name: model.name,
      layers: reaching(entries, outputs, form.inputLayers),
      inputLayers: form.inputLayers,
      outputLayers: outputs.map((r) => r.slice(0, 3)),
    };
  }
  const copy = modelFromConfig(sequential, flat);
  const frozen = frozenPaths(model, '', false);
  for (const layer of copy.layers) {
    const from = byPath.get(layer.name);
    if (!from || !layer.weights.length) continue;
    assignWeightsOf(layer, from.weights);
    // A frozen nested model froze its layers' weights, not their config's `trainable`: frozen here
    // as the layer itself, so that its config says so (a save, or prune's rebuild, keeps it frozen).
    if (frozen.has(layer.name)) layer.trainable = false;
  }
  keepModelState(model, copy);
  return copy;
}

/** A copy of a layer config without the keys that give a chain its input shape. */
function withoutInputShape(config: Dict): Dict {
  const { batchInputShape: _b, inputShape: _i, batchSize: _s, ...rest } = config;
  return rest;
}

/** `own`, or `own_1`, `own_2`, ... : the first that `taken` does not hold. */
function uniqueName(own: string, taken: ReadonlySet<string>): string {
  let name = own;
  for (let k = 1; taken.has(name); k++) name = `${own}_${k}`;
  return name;
}

/** The paths of the layers of `model` that are frozen, themselves or as part of a frozen nested model. */
function frozenPaths(
  model: tfl.LayersModel,
  prefix: string,
  frozen: boolean,
  out = new Set<string>(),
): Set<string> {
  for (const layer of model.layers) {
    if (layer instanceof tfl.LayersModel)
      frozenPaths(layer, `${prefix}${layer.name}/`, frozen || !layer.trainable, out);
    else if (frozen || !layer.trainable) out.add(prefix + layer.name);
  }
  return out;
}

function isModelEntry(entry: Entry): boolean {
  return MODEL_CLASSES.has(entry.className);
}

function onlySequential(entries: Entry[]): boolean {
  return entries.every(
    (e) =>
      !isModelEntry(e) ||
      (e.className === 'Sequential' && onlySequential((e.config as { layers: Entry[] }).layers)),
  );
}

function entryName(entry: Entry): string {
  return (entry.name ?? entry.config.name) as string;
}

/** A chain of Sequential entries with the nested Sequentials' layers spliced in, named by path. */
function spliceChain(chain: Entry[], prefix: string, out: Entry[]): void {
  for (const e of chain) {
    if (e.className === 'InputLayer') continue; // the chain's input is its first layer's batchInputShape
    const name = entryName(e);
    if (isModelEntry(e)) spliceChain((e.config as { layers: Entry[] }).layers, `${prefix}${name}/`, out);
    else out.push({ className: e.className, config: { ...e.config, name: prefix + name } });
  }
}

/** A model config in functional form: named entries with inbound nodes, and its inputs and outputs. */
interface Functional {
  name: string;
  layers: Entry[];
  inputLayers: Ref[];
  outputLayers: Ref[];
}

/**
 * The functional form of a config: a functional model's as it is; a Sequential's as a chain
 * whose first entry reads an input layer, made up for the top-level model (from its input
 * tensor) and left unnamed in a nested one (inline binds it to the call's input).
 */
function functionalForm(model: tfl.LayersModel | undefined, config: Dict & { layers: Entry[] }): Functional {
  const name = config.name as string;
  if (Array.isArray(config.inputLayers))
    return {
      name,
      layers: config.layers,
      inputLayers: config.inputLayers as Ref[],
      outputLayers: config.outputLayers as Ref[],
    };
  // Its own input layers are left out below: the made-up one takes the model input's name.
  const taken = new Set(config.layers.filter((e) => e.className !== 'InputLayer').map(entryName));
  const input = uniqueName(model?.inputs[0].sourceLayer?.name ?? `${name}_input`, taken);
  const layers: Entry[] = [];
  if (model)
    layers.push({
      name: input,
      className: 'InputLayer',
      config: {
        batchInputShape: model.inputs[0].shape,
        dtype: model.inputs[0].dtype,
        sparse: false,
        name: input,
      },
      inboundNodes: [],
    });
  let previous = input;
  for (const e of config.layers) {
    if (e.className === 'InputLayer') continue; // a Keras Sequential's own input: the chain's is made above
    layers.push({
      name: entryName(e),
      className: e.className,
      config: withoutInputShape(e.config),
      inboundNodes: [[[previous, 0, 0, {}]]],
    });
    previous = entryName(e);
  }
  return { name, layers, inputLayers: [[input, 0, 0]], outputLayers: [[previous, 0, 0]] };
}

/**
 * Appends the entries of `form` to `out`, named under `prefix`, with each nested model's layers in
 * place of the model; `bound` gives the refs its (nested) input layers stand for. Returns the refs
 * of its outputs.
 */
function inline(form: Functional, bound: Map<string, Ref>, prefix: string, out: Entry[]): Ref[] {
  const scope = new Map<string, (node: number, tensor: number) => Ref>();
  for (const [name, ref] of bound) scope.set(name, () => ref);
  const resolve = (r: Ref): Ref => {
    const [source, node, tensor, ...rest] = r;
    const found = scope.get(source);
    if (!found)
      throw new Error(
        `unnest: model '${form.name}' reads '${source}', which it does not hold before that point`,
      );
    return [...found(node, tensor).slice(0, 3), ...rest] as Ref;
  };
  for (const entry of form.layers) {
    const name = entryName(entry);
    if (bound.has(name)) continue;
    const nodes = entry.inboundNodes ?? [];
    if (isModelEntry(entry)) {
      // Counted before its calls are read: a second call applied to the first's output reads the model itself.
      if (nodes.length !== 1)
        throw new Error(
          `unnest: nested model '${prefix}${name}' (a ${entry.className} used as a layer) is applied ${nodes.length} ` +
            `times, so its weights are shared between the calls; build the model with one copy of it per call, ` +
            `each holding its weights`,
        );
      const calls = nodes.map((node) => (node as Ref[]).map(resolve));
      const inner = functionalForm(undefined, entry.config as Dict & { layers: Entry[] });
      const innerBound = new Map(inner.inputLayers.map((r, i): [string, Ref] => [r[0], calls[0][i]]));
      const outputs = inline(inner, innerBound, `${prefix}${name}/`, out);
      scope.set(name, (_node, tensor) => outputs[tensor]);
    } else {
      const flatName = prefix + name;
      // In scope before its calls are read: a layer applied twice in a row (shared) reads its own first call.
      scope.set(name, (node, tensor) => [flatName, node, tensor]);
      out.push({
        name: flatName,
        className: entry.className,
        config: { ...entry.config, name: flatName },
        inboundNodes: nodes.map((node) => (node as Ref[]).map(resolve)),
      });
    }
  }
  return form.outputLayers.map((r) => resolve(r));
}

/**
 * The entries that the outputs are computed from, and the inputs. A nested model's output that
 * nothing reads leaves layers that lead nowhere: tfjs would build them (weights and all) but
 * leave them out of the model, so that disposing the model would not dispose their weights.
 */
function reaching(entries: Entry[], outputs: Ref[], inputs: Ref[]): Entry[] {
  const byName = new Map(entries.map((e) => [e.name!, e]));
  const kept = new Set(inputs.map((r) => r[0]));
  const pending = outputs.map((r) => r[0]);
  for (let name = pending.pop(); name !== undefined; name = pending.pop()) {
    if (kept.has(name)) continue;
    kept.add(name);
    for (const node of byName.get(name)?.inboundNodes ?? [])
      for (const r of node as Ref[]) pending.push(r[0]);
  }
  return entries.filter((e) => kept.has(e.name!));
}
