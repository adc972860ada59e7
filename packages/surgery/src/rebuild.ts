// Turns a plan into a new, physically smaller tfjs model: patched configs
// (fewer units / filters) rebuilt with the model's own fromConfig, then the
// sliced weights (with folded biases) written in.
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { emptiedLayers, type NodeState, type PrunePlan } from './engine.js';
import { brokenConstraints, clearConstraints } from './constraints.js';
import { DisconnectedModelError } from './errors.js';
import { layerConfigEntry, layerLookup } from './graph.js';
import { known } from './shapes.js';
import { pruneInChannels, pruneOutChannels, pruneVector, type HostWeight } from './handlers.js';

/**
 * A dead unit that had to stay. A unit is one output channel of a layer: a Dense neuron (the
 * group of granularity `'output'`, a kernel column) or a convolution's filter.
 */
export interface KeptConstantUnit {
  /** Neuron (Dense) or filter (Conv1D/2D/3D, Conv2DTranspose) index in the original layer. */
  unit: number;
  /** The constant it emits (after its activation). */
  value: number;
  /** Why it could not be removed. */
  reason: string;
}

/** A unit kept as a placeholder: see {@link LayerPruneResult.placeholders}. */
export interface PlaceholderUnit {
  /** Neuron (Dense) or filter (Conv1D/2D/3D, Conv2DTranspose) index in the original layer. */
  unit: number;
  /** Why the layer keeps it. */
  reason: string;
}

/** What happened to one Dense, Conv1D/2D/3D or Conv2DTranspose layer. */
export interface LayerPruneResult {
  /** Layer name (unchanged in the pruned model). */
  name: string;
  /** 'Dense', 'Conv1D', 'Conv2D', 'Conv3D' or 'Conv2DTranspose'. */
  className: string;
  /** Neurons (Dense) or filters (convolutions) before pruning. */
  unitsBefore: number;
  /** Neurons or filters left. */
  unitsAfter: number;
  /** Indices (in the original layer) of the removed units. */
  removed: number[];
  /** Of `removed`: units that emitted a constant, now folded into the consumers' biases. */
  removedConstant: number;
  /** Of `removed`: units whose output no live unit read (pruning in the backward direction). */
  removedUnused: number;
  /** Input channels (or features, after Flatten) removed from this layer's kernel. */
  inputsRemoved: number;
  /**
   * Units that emit a constant (dead) but had to stay, each with why: typically a following
   * 'same'-padded convolution, whose borders would see the padding instead of the constant.
   */
  keptConstant: KeptConstantUnit[];
  /**
   * The units kept as placeholders (usually none; one). When every unit of a layer is dead or
   * unused but a model output after it still depends on the input (the layer is in a branch
   * beside another input of an Add or a Concatenate after it, e.g. a residual branch the L1
   * penalty killed whole), the layer keeps one unit, since a tfjs layer cannot have 0: its
   * weights are zeros, every Dense or Conv2D layer reading its channel (through BatchNormalization,
   * pooling and the like, which keep it) reads it with zero weights, and the constant it emitted
   * is folded into their biases as for a removed unit. A unit whose channel an elementwise join
   * (Add, Multiply, ...) couples with a placeholder's is one too. Placeholders are not in `removed`, and count in `unitsAfter`.
   */
  placeholders: PlaceholderUnit[];
}

/** A constraint that the pruned model leaves out of one of its layers: see {@link rebuild}. */
export interface DroppedConstraint {
  /** The layer's name. */
  layer: string;
  /** The layer's class. */
  className: string;
  /** The layer's option that held it (`kernelConstraint`, `biasConstraint`, `gammaConstraint`, ...). */
  option: string;
  /** The constraint's class (`NonNeg`, `UnitNorm`, ...). */
  constraint: string;
  /** For the cells of stacked cells (`rnn({ cell: [...] })`), which cell held it (from 0). */
  cell?: number;
}

/**
 * Builds the pruned model described by `p`. A layer whose weights surgery rewrote (Dense and
 * Conv2D, and the layers that lose channels with them, such as BatchNormalization) loses each
 * constraint that its new weights break, listed in `droppedConstraints`: folding a removed unit's
 * constant into a bias can make a `nonNeg` bias negative, and removing inputs changes the norms a
 * `unitNorm` kernel keeps. The pruned model computes what `model` does either way (tfjs applies
 * no constraint while training, nor here), but tfjs applies a layer's constraints when it loads
 * its weights, so an export that kept them would compute something else once loaded.
 */
export function rebuild(
  model: tfl.LayersModel,
  p: PrunePlan,
): {
  model: tfl.LayersModel;
  layers: LayerPruneResult[];
  weights: Map<string, HostWeight[]>;
  droppedConstraints: DroppedConstraint[];
} {
  const { graph, states, removed, reasons } = p;
  const config = graph.config;
  const newWeights = new Map<string, HostWeight[]>();
  // The layers whose weights surgery wrote anew (the others keep theirs as they were).
  const rewritten = new Set<string>();
  const droppedConstraints: DroppedConstraint[] = [];
  const layers: LayerPruneResult[] = [];

  const all = emptiedLayers(states, removed);
  // A layer emptied with every model output after it constant: those outputs no longer depend on
  // the input, the model is broken there, and the layer is named.
  const varyingOutputs = new Set(graph.outputs.filter((o) => states[o].consts.some((k) => Number.isNaN(k))));
  const emptied = all.filter((s) => !reaches(states, s, varyingOutputs));
  // Otherwise each emptied layer keeps one unit as a placeholder (one per channel id: the layers
  // an Add couples with it share it), standing for the branch the model does without.
  const placeholders = new Map<number, string>();
  if (!emptied.length)
    for (const s of all)
      if (!s.ids.some((id) => placeholders.has(id))) placeholders.set(s.ids[0], s.node.name);
  // A layer coupled with the placeholder's owner died whole too, or is only coupled with it.
  const emptiedNames = new Set(all.map((s) => s.node.name));
  const placeholderReason = (owner: string, layer: string): string =>
    (owner === layer
      ? `every unit of '${owner}' is dead or unused`
      : emptiedNames.has(layer)
        ? `every unit of '${layer}' is dead or unused, as are those of '${owner}', with whose placeholder ` +
          'an elementwise join couples it'
        : `coupled by an elementwise join with the placeholder of '${owner}': every unit of '${owner}' is ` +
          'dead or unused') +
    ', but a model output after it still depends on the input through another input of a join, and a ' +
    'layer cannot have 0 units';
  // Whether a channel is cut out of the layers that carry it: placeholders stay, read as zeros.
  const gone = (id: number): boolean => removed[id] === 1 && !placeholders.has(id);
  if (emptied.length) {
    // The emptied layers upstream of those (a dead residual branch that also fed a layer before a
    // constant output: the branch is the cause), and those themselves.
    const refused = new Set(emptied.map((s) => s.node.index));
    const involved = all.filter((s) => reaches(states, s, refused));
    const names = involved.map((s) => s.node.name);
    const left = `layers left without a live unit: ${names.map((n) => `'${n}'`).join(', ')}`;
    // Name the layer whose units are dead first: the emptied layers after it are only so because of it.
    const dead = involved.find((s) => s.consts.every((k) => !Number.isNaN(k)));
    if (dead) {
      // The outputs it leaves constant, named where the model has several.
      const lost = graph.outputs.filter((o) => !varyingOutputs.has(o) && reaches(states, dead, new Set([o])));
      const which =
        graph.outputs.length > 1 && lost.length
          ? `the model's output${lost.length > 1 ? 's' : ''} ${lost.map((o) => `'${states[o].node.name}'`).join(', ')} no longer depend${lost.length > 1 ? '' : 's'}`
          : "the model's output no longer depends";
      const detail = `${which} on its input, and removing them would disconnect the model (${left})`;
      throw new DisconnectedModelError(
        { code: 'dead', layer: dead.node.name, emptied: names, detail },
        `surgery: every unit of layer '${dead.node.name}' (${dead.node.className}, ${dead.ids.length} units) is dead: ` +
          `${detail}. If the L1 penalty killed them, train again with a ` +
          `smaller lambda, or give the layer a smaller multiplier in @normprune/prox (layerMultipliers: ` +
          `{ '${dead.node.name}': 0 } leaves it unpenalised)`,
      );
    }
    // None is dead, only unused: a unit layer after them reads none of their units (its weights
    // from them are zero, or its own units are all dead but stay as the model's output).
    const last = emptied[emptied.length - 1].node.name;
    const reader = unitReaderAfter(states, emptied[emptied.length - 1]);
    const detail =
      (reader
        ? `layer '${reader.node.name}' (${reader.node.className}) reads none of them (its weights from them are zero, or its own groups are all dead); `
        : '') + `removing them would disconnect the model (${left})`;
    throw new DisconnectedModelError(
      { code: 'unused', layer: last, emptied: names, detail },
      `surgery: no unit of layer '${last}' is used${reader ? ': ' : '; '}${detail}`,
    );
  }

  // For each channel id: the first unit layer with a unit of that id that varies. A dead unit an
  // elementwise join couples with it stays for that reason, whatever reads the joined channel.
  const varyingPartner = new Map<number, string>();
  for (const s of states)
    if (s.handler.kind === 'unit')
      s.ids.forEach((id, o) => {
        if (Number.isNaN(s.consts[o]) && !varyingPartner.has(id)) varyingPartner.set(id, s.node.name);
      });

  for (const s of states) {
    const node = s.node;
    if (!node.layer) continue;
    if (s.handler.kind === 'unit') {
      const u = s.unit!;
      const input = states[node.inputs[0]];
      const keepIn: number[] = [];
      for (let i = 0; i < u.cin; i++) if (!gone(input.ids[i])) keepIn.push(i);
      const keepOut: number[] = [];
      const removedUnits: number[] = [];
      for (let o = 0; o < u.cout; o++) (gone(s.ids[o]) ? removedUnits : keepOut).push(o);
      const own = new Set(keepOut.filter((o) => placeholders.has(s.ids[o])));
      const readsPlaceholder = keepIn.some((i) => placeholders.has(input.ids[i]));
      // Groups at or below the threshold are treated as zero; write them as exact zeros. So are a
      // placeholder's weights, and the weights that read one.
      const cc = u.cin * u.cout;
      const kernel: HostWeight =
        p.threshold > 0 || own.size > 0 || readsPlaceholder
          ? { ...u.kernel, values: u.kernel.values.slice() }
          : u.kernel;
      for (let k = 0; k < u.K; k++) {
        if (p.threshold > 0) for (let q = 0; q < cc; q++) if (!u.nz[q]) kernel.values[k * cc + q] = 0;
        for (let i = 0; i < u.cin; i++) {
          const row = k * cc + i * u.cout;
          if (placeholders.has(input.ids[i])) kernel.values.fill(0, row, row + u.cout);
          else for (const o of own) kernel.values[row + o] = 0;
        }
      }
      // Fold the constants of removed input channels into the bias of every kept unit.
      const bias = new Float64Array(u.cout);
      if (u.bias) bias.set(u.bias.values);
      let folded = false;
      for (let i = 0; i < u.cin; i++) {
        const k = input.consts[i];
        if (!removed[input.ids[i]] || Number.isNaN(k) || k === 0) continue;
        for (const o of keepOut) {
          if (!u.nz[i * u.cout + o]) continue;
          bias[o] += k * u.sumK(i, o);
          folded = true;
        }
      }
      const ws: HostWeight[] = [u.toLayer(pruneOutChannels(pruneInChannels(kernel, keepIn), keepOut))];
      for (const o of own) bias[o] = 0;
      if (u.bias || folded) {
        ws.push(pruneVector({ name: 'bias', shape: [u.cout], values: Float32Array.from(bias) }, keepOut));
      }
      newWeights.set(node.name, ws);
      rewritten.add(node.name);
      const cfg = layerConfigEntry(config, node.name).config;
      if (node.className === 'Dense') cfg.units = keepOut.length;
      else cfg.filters = keepOut.length;
      if (folded && !u.bias) cfg.useBias = true;

      const keptConstant: LayerPruneResult['keptConstant'] = [];
      for (const o of keepOut) {
        if (!own.has(o) && !Number.isNaN(s.consts[o])) {
          const partner = varyingPartner.get(s.ids[o]);
          const reason =
            partner !== undefined && partner !== node.name
              ? `coupled by an elementwise join with a varying unit of '${partner}'`
              : (reasons.get(s.ids[o]) ?? 'kept');
          keptConstant.push({ unit: o, value: s.consts[o], reason });
        }
      }
      const removedConstant = removedUnits.filter((o) => !Number.isNaN(s.consts[o])).length;
      layers.push({
        name: node.name,
        className: node.className,
        unitsBefore: u.cout,
        unitsAfter: keepOut.length,
        removed: removedUnits,
        removedConstant,
        removedUnused: removedUnits.length - removedConstant,
        inputsRemoved: u.cin - keepIn.length,
        keptConstant,
        placeholders: [...own].map((o) => ({
          unit: o,
          reason: placeholderReason(placeholders.get(s.ids[o])!, node.name),
        })),
      });
    } else if (s.handler.pruneChannels && s.weights.length) {
      const keep: number[] = [];
      for (let c = 0; c < s.ids.length; c++) if (!gone(s.ids[c])) keep.push(c);
      newWeights.set(node.name, s.handler.pruneChannels(s.weights, keep));
      rewritten.add(node.name);
    } else if (s.weights.length) {
      newWeights.set(node.name, s.weights);
    }
  }

  // A layer past the first may declare the shape of its input (tfjs keeps the batchInputShape a
  // layer was built with in its config): where that input lost channels, the declaration does
  // too, or the config would state the input model's width and tfjs warn, at every build or load
  // of the pruned model, that the tensor it reads does not match it.
  for (const s of states) {
    if (!s.node.layer || !s.node.inputs.length) continue;
    const declared = layerConfigEntry(config, s.node.name).config.batchInputShape;
    if (!Array.isArray(declared) || !declared.length) continue;
    declared[declared.length - 1] = states[s.node.inputs[0]].ids.filter((id) => !gone(id)).length;
  }
  // A Reshape surgery follows keeps the channels on its last axis: its targetShape's last entry
  // counts the features left there. A -1 elsewhere, which tfjs would write as null (and leave the
  // shapes after it unknown in the pruned model), is written as the count its input's fully known
  // shape resolves it to (see shapes.ts), in a Reshape kept whole too.
  for (const s of states) {
    if (s.node.className !== 'Reshape') continue;
    const follows = s.handler.kind === 'flatten';
    if (!follows && !known(s.node.shape)) continue;
    const entry = layerConfigEntry(config, s.node.name).config;
    const target: (number | null)[] = known(s.node.shape) ? [...s.node.shape] : entry.targetShape;
    if (follows) target[target.length - 1] = s.ids.filter((id) => !gone(id)).length;
    entry.targetShape = target;
  }

  const cls = model.constructor as any;
  // fastWeightInit: every weight is overwritten below, so skip the initialisers.
  const pruned: tfl.LayersModel = cls.fromConfig(cls, config, undefined, true);
  // A layer's trainable flag is in its config; the model's is not.
  if (!model.trainable) pruned.trainable = false;
  // Nor the user's metadata (labels, preprocessing), which tfjs saves with the model.
  const metadata = model.getUserDefinedMetadata();
  if (metadata !== undefined) pruned.setUserDefinedMetadata(JSON.parse(JSON.stringify(metadata)));
  const getLayer = layerLookup(pruned);
  for (const [name, ws] of newWeights) {
    const layer = getLayer(name);
    // Matched by short name, in order: a layer may hold several weights of one short name (a
    // Bidirectional's forward and backward 'kernel'), which come in the same order in both lists.
    const used = new Set<HostWeight>();
    const ordered = layer.weights.map((w) => {
      const short = shortName(w);
      const hw = ws.find((x) => x.name === short && !used.has(x));
      if (!hw) throw new Error(`surgery: no value for weight '${short}' of layer '${name}'`);
      used.add(hw);
      return hw;
    });
    // Assigned as they are: setWeights would apply each weight's constraint (a kernelConstraint,
    // a biasConstraint), which the weights need not satisfy (tfjs applies none while training),
    // and change what the model computes.
    tf.tidy(() =>
      layer.weights.forEach((w, i) =>
        (w.read() as tf.Variable).assign(tf.tensor(ordered[i].values, ordered[i].shape, 'float32')),
      ),
    );
    if (rewritten.has(name)) droppedConstraints.push(...dropBrokenConstraints(layer));
  }
  return { model: pruned, layers, weights: newWeights, droppedConstraints };
}

/** A weight's short name ('kernel', 'bias', 'gamma', ...), as {@link HostWeight} has it. */
function shortName(w: tfl.LayerVariable): string {
  return String((w as any).originalName ?? w.name)
    .split('/')
    .pop()!
    .replace(/_\d+$/, '');
}

/**
 * Removes from `layer` each constraint that its weights break. Also one that the input model's
 * weights broke already (tfjs applies no constraint while training): keeping it would not make the
 * pruned model load as the input model does, since the constraint would act on other weights
 * (a `maxNorm` column that lost rows is scaled by another factor).
 */
function dropBrokenConstraints(layer: tfl.layers.Layer): DroppedConstraint[] {
  const broken = brokenConstraints(layer);
  // The layer's option (its getConfig reads the field), the copies a Bidirectional's forward and
  // backward layers hold, and the weight's own reference, which LayerVariable.write applies.
  const gone = clearConstraints(broken);
  for (const w of layer.weights)
    if (gone.has(w.constraint)) (w as unknown as { constraint: unknown }).constraint = null;
  return broken.map((b) => ({
    layer: layer.name,
    className: layer.getClassName(),
    option: b.option,
    constraint: b.constraint,
    ...(b.cell === undefined ? {} : { cell: b.cell }),
  }));
}

/** Whether one of the nodes `targets` (by index) is `from` or lies after it. */
function reaches(states: NodeState[], from: NodeState, targets: ReadonlySet<number>): boolean {
  const queue = [from.node.index];
  const seen = new Set<number>();
  while (queue.length) {
    const i = queue.shift()!;
    if (seen.has(i)) continue;
    seen.add(i);
    if (targets.has(i)) return true;
    queue.push(...states[i].node.consumers);
  }
  return false;
}

/** The first unit layer (Dense, Conv2D, ...) reached from `from` through its consumers. */
function unitReaderAfter(states: NodeState[], from: NodeState): NodeState | undefined {
  const queue = [...from.node.consumers];
  const seen = new Set<number>();
  while (queue.length) {
    const i = queue.shift()!;
    if (seen.has(i)) continue;
    seen.add(i);
    if (states[i].handler.kind === 'unit') return states[i];
    queue.push(...states[i].node.consumers);
  }
  return undefined;
}
