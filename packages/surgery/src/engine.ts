// The dependency analysis (Torch-Pruning's DepGraph, made exact).
//
// Every channel a Dense/Conv2D unit (or a model input) creates gets an id;
// pass-through layers carry ids unchanged, Flatten repeats them per position,
// Concatenate lays them side by side, and elementwise joins (Add, Multiply...)
// merge the ids of coupled channels with union-find, so one id = one set of
// channels that must be removed together.
//
// An id is removed when every place that reads one of its channels agrees:
// the reading unit layer either does not use it (all weights from it to live
// units are zero) or sees a constant it can fold exactly into its bias. Model
// outputs, model inputs and cross-channel layers never agree. Which units are
// constant follows from the weights alone (a unit reading only constants is
// one, whether they are removed or kept); removing ids only ever makes more
// ids removable (fewer live units read a channel), so iterating from "nothing
// removed" reaches the least fixed point, where every removal is justified.
//
// The rounds are the old ones (each removes every id unblocked after the
// previous round), but a round only revisits what the previous round's
// removals changed: a cascade of deaths along a chain of n layers takes n
// rounds, and recomputing the whole graph in each made the analysis O(n^2).
import * as tf from '@tensorflow/tfjs-core';
import type { GraphNode, LayerGraph } from './graph.js';
import { layerConfigEntry, SPARSE_FALLBACK } from './graph.js';
import {
  applyElementwise,
  CROSS_CHANNEL_ACTIVATIONS,
  handlerFor,
  type UnknownLayers,
  readWeights,
  unitView,
  type HostWeight,
  type LayerHandler,
  type UnitView,
} from './handlers.js';

/** Per-node channel bookkeeping. */
export interface NodeState {
  node: GraphNode;
  handler: LayerHandler;
  config: any;
  weights: HostWeight[];
  /** Unit layers only. */
  unit?: UnitView & {
    /** nz[i * cout + o]: the 2-D kernel (or Dense weight) from input i to unit o has a weight above threshold. */
    nz: Uint8Array;
    /** Sum of the kernel slice [:, i, o], for folding a constant input channel i. */
    sumK(i: number, o: number): number;
  };
  /** Output channel ids (root ids after `resolve`), one per entry of the last axis (per feature after Flatten). */
  ids: Int32Array;
  /** Per entry: constant value, or NaN when the entry varies with the input. */
  consts: Float64Array;
}

/** Why a channel could not be removed. */
export type BlockReason = string;

/** The result of the analysis (internal). */
export interface PrunePlan {
  graph: LayerGraph;
  states: NodeState[];
  /** removed[id] for root ids. */
  removed: Uint8Array;
  /** Why each kept id was kept (only recorded for ids that are constant somewhere). */
  reasons: Map<number, BlockReason>;
  iterations: number;
  threshold: number;
}

class UnionFind {
  parent: number[] = [];
  fixed: boolean[] = [];
  /** For a fixed set: what fixed it, as the warnings name it ("a channel of model input 'x'"). */
  why: (string | undefined)[] = [];
  make(n: number, fixedBy?: string): number {
    const start = this.parent.length;
    for (let i = 0; i < n; i++) {
      this.parent.push(start + i);
      this.fixed.push(fixedBy !== undefined);
      this.why.push(fixedBy);
    }
    return start;
  }
  find(x: number): number {
    while (this.parent[x] !== x) {
      this.parent[x] = this.parent[this.parent[x]];
      x = this.parent[x];
    }
    return x;
  }
  union(a: number, b: number): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra === rb) return;
    this.parent[rb] = ra;
    this.fixed[ra] = this.fixed[ra] || this.fixed[rb];
    this.why[ra] = this.why[ra] ?? this.why[rb];
  }
}

function range(start: number, n: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => start + i);
}

/** The channel-id graph of a model, before any analysis (internal). */
export interface ChannelGraph {
  graph: LayerGraph;
  states: NodeState[];
  /** Ids made; only root ids appear in `states[*].ids`. */
  nIds: number;
  /** fixed[id]: a root id that can never be removed (a model input's or a cross-channel layer's channel, or coupled with one). */
  fixed: boolean[];
  /** For a fixed root id: what fixed it, as the warnings name it. */
  why: (string | undefined)[];
}

/**
 * Builds the channel-id graph: one state per node, with its ids (resolved to roots) and its
 * constants, computed here once: they follow from the weights alone, so no removal changes them.
 */
export function buildStates(
  graph: LayerGraph,
  threshold: number,
  unknownLayers: UnknownLayers = 'refuse',
): ChannelGraph {
  const uf = new UnionFind();
  const states: NodeState[] = [];
  for (const node of graph.nodes) {
    const config = node.layer ? layerConfigEntry(graph.config, node.name).config : {};
    const handler = handlerFor(node, config, unknownLayers, states[node.inputs[0]]?.node.shape);
    const weights = readWeights(node.layer);
    // Unit layers' groups at or below the threshold are found through `nz` below.
    if (threshold > 0) handler.zeroGroups?.(weights, threshold);
    const inputs = node.inputs.map((i) => states[i]);
    const channels = node.shape.length ? node.shape[node.shape.length - 1] : null;
    if (channels == null) throw new Error(`surgery: layer '${node.name}' has an unknown channel count`);
    let ids: Int32Array;
    let unit: NodeState['unit'];
    switch (handler.kind) {
      case 'input':
        ids = range(
          uf.make(
            channels,
            node.layer ? `a channel of model input '${node.name}'` : 'a channel of the model input',
          ),
          channels,
        );
        break;
      case 'opaque':
        ids = range(
          uf.make(
            channels,
            `an output of ${node.className} layer '${node.name}', which ` +
              (handler.unknown ? 'surgery keeps whole' : 'mixes channels'),
          ),
          channels,
        );
        break;
      case 'unit': {
        const inShape = inputs[0].node.shape;
        const view = unitView(node, weights, config, inShape, handler.kernelLayout);
        if (view.cin !== inputs[0].ids.length) {
          throw new Error(
            `surgery: layer '${node.name}' reads ${inputs[0].ids.length} channels but its kernel expects ${view.cin}`,
          );
        }
        const { K, cin, cout } = view;
        const cc = cin * cout;
        const nz = new Uint8Array(cc);
        const w = view.kernel.values;
        for (let k = 0; k < K; k++) {
          const base = k * cc;
          if (threshold === 0) {
            for (let p = 0; p < cc; p++) if (w[base + p] !== 0) nz[p] = 1;
          } else {
            for (let p = 0; p < cc; p++) if (Math.abs(w[base + p]) > threshold) nz[p] = 1;
          }
        }
        // Only the rows of constant input channels are ever summed: compute those on demand.
        const rows = new Map<number, Float64Array>();
        const sumK = (i: number, o: number): number => {
          let row = rows.get(i);
          if (!row) {
            row = new Float64Array(cout);
            for (let k = 0; k < K; k++) {
              const base = k * cc + i * cout;
              for (let q = 0; q < cout; q++) row[q] += w[base + q];
            }
            rows.set(i, row);
          }
          return row[o];
        };
        unit = { ...view, nz, sumK };
        ids = range(
          uf.make(
            cout,
            view.crossChannel
              ? `a unit of '${node.name}', whose ${config.activation} mixes its units`
              : undefined,
          ),
          cout,
        );
        break;
      }
      case 'channelwise': {
        // Output channel c * m + j of a DepthwiseConv2D of depthMultiplier m reads input channel c.
        const m = handler.repeats?.(config) ?? 1;
        const inIds = inputs[0].ids;
        ids =
          m === 1
            ? Int32Array.from(inIds)
            : Int32Array.from({ length: inIds.length * m }, (_, g) => inIds[Math.floor(g / m)]);
        if (ids.length !== channels)
          throw new Error(`surgery: layer '${node.name}' changes the channel count; not supported`);
        break;
      }
      case 'flatten': {
        const inIds = inputs[0].ids;
        const C = inIds.length;
        if (channels % C !== 0)
          throw new Error(`surgery: cannot map '${node.name}' back to its input channels`);
        ids = Int32Array.from({ length: channels }, (_, f) => inIds[f % C]);
        break;
      }
      case 'join': {
        const n = inputs[0].ids.length;
        for (const s of inputs) {
          if (s.ids.length !== n) {
            // tfjs broadcasts a 1-channel input over the others' channels.
            const [narrow, wide] = s.ids.length < n ? [s, inputs[0]] : [inputs[0], s];
            const w = wide.ids.length;
            throw new Error(
              `surgery: layer '${node.name}' (${node.className}) broadcasts its input from '${narrow.node.name}' ` +
                `(${narrow.ids.length} channel${narrow.ids.length === 1 ? '' : 's'}) over the ${w} channels of ` +
                `'${wide.node.name}'; surgery follows joins of inputs with equal channel counts only. ${w} copies of ` +
                `that channel compute the same: where a Dense or Conv2D layer makes it, build that layer with ${w} ` +
                `units, its kernel and bias repeated in each, then prune. ${SPARSE_FALLBACK}`,
            );
          }
        }
        for (const s of inputs.slice(1)) for (let c = 0; c < n; c++) uf.union(inputs[0].ids[c], s.ids[c]);
        ids = Int32Array.from(inputs[0].ids);
        break;
      }
      case 'concat': {
        const parts = inputs.map((s) => s.ids);
        ids = new Int32Array(parts.reduce((a, p) => a + p.length, 0));
        let off = 0;
        for (const p of parts) {
          ids.set(p, off);
          off += p.length;
        }
        break;
      }
    }
    states.push({
      node,
      handler,
      config,
      weights,
      unit,
      ids,
      consts: new Float64Array(ids.length).fill(NaN),
    });
  }
  for (const s of states) for (let e = 0; e < s.ids.length; e++) s.ids[e] = uf.find(s.ids[e]);
  propagateConstants(states);
  return { graph, states, nIds: uf.parent.length, fixed: uf.fixed, why: uf.why };
}

/** The ids a model output, a model input or a cross-channel layer pins: never removed, whatever else is removed. */
function pinnedIds(cg: ChannelGraph): Uint8Array {
  const pinned = new Uint8Array(cg.nIds);
  for (let id = 0; id < cg.nIds; id++) if (cg.fixed[id]) pinned[id] = 1;
  for (const o of cg.graph.outputs) for (const id of cg.states[o].ids) pinned[id] = 1;
  for (const s of cg.states)
    if (s.handler.kind === 'opaque')
      for (const i of s.node.inputs) for (const id of cg.states[i].ids) pinned[id] = 1;
  return pinned;
}

/**
 * One round's verdict at the removal state `removed` (with the constants propagated for it):
 * which ids must stay, and why, the first reason found in graph order.
 */
export function blockPass(
  cg: ChannelGraph,
  removed: Uint8Array,
): { blocked: Uint8Array; reasons: Map<number, BlockReason> } {
  const { graph, states, nIds } = cg;
  const blocked = new Uint8Array(nIds);
  const reasons = new Map<number, BlockReason>();
  const block = (id: number, why: string): void => {
    if (!blocked[id]) {
      blocked[id] = 1;
      reasons.set(id, why);
    }
  };
  // Only a unit coupled with a fixed channel by a join can be dead and fixed (a cross-channel
  // layer's own units are never constant), so that is what a kept unit's warning says.
  for (let id = 0; id < nIds; id++)
    if (cg.fixed[id])
      block(
        id,
        `coupled by an elementwise join with ${cg.why[id] ?? 'a fixed channel'}, which is never removed`,
      );
  for (const o of graph.outputs) for (const id of states[o].ids) block(id, 'model output');
  for (const s of states) {
    if (s.handler.kind === 'opaque') {
      for (const i of s.node.inputs)
        for (const id of states[i].ids) block(id, `read by ${s.node.className} layer '${s.node.name}'`);
    }
    if (s.handler.kind !== 'unit') continue;
    const u = s.unit!;
    const input = states[s.node.inputs[0]];
    const live: number[] = [];
    for (let o = 0; o < u.cout; o++) if (!removed[s.ids[o]]) live.push(o);
    for (let i = 0; i < u.cin; i++) {
      const id = input.ids[i];
      if (removed[id] || blocked[id]) continue;
      let used = false;
      const row = i * u.cout;
      for (const o of live) {
        if (u.nz[row + o]) {
          used = true;
          break;
        }
      }
      if (!blocks(s, input, used ? 1 : 0, i)) continue;
      const k = input.consts[i];
      // Only shown for units that are constant at their own output: then something between
      // them and this reader made the channel vary.
      block(
        id,
        Number.isNaN(k)
          ? `its channel is no longer constant where '${s.node.name}' reads it (joined with a varying channel, ` +
              `zero padding, or a 'same'-padded depthwise convolution on the way)`
          : `read by '${s.node.name}' as a constant other than 0 (after the layers between), where ${u.foldLimit}`,
      );
    }
  }
  return { blocked, reasons };
}

/**
 * Whether unit layer `s` makes its input channel `i` stay: a live unit reads it (`used` of
 * them) and it is not a constant that folds exactly. {@link blockPass} and the incremental
 * rounds of {@link plan} both decide by it.
 */
function blocks(s: NodeState, input: NodeState, used: number, i: number): boolean {
  if (used === 0) return false;
  const k = input.consts[i];
  return Number.isNaN(k) || (!s.unit!.exactFold && k !== 0);
}

/** Ids grouped by a key, as compressed rows: the entries of key `id` are `data[start[id]..start[id + 1])`. */
function groupBy(
  nIds: number,
  keys: number[],
  values: number[][],
): { start: Int32Array; data: Int32Array[] } {
  const start = new Int32Array(nIds + 1);
  for (const id of keys) start[id + 1]++;
  for (let id = 0; id < nIds; id++) start[id + 1] += start[id];
  const fill = start.slice(0, nIds);
  const data = values.map(() => new Int32Array(keys.length));
  keys.forEach((id, e) => {
    const at = fill[id]++;
    values.forEach((v, c) => (data[c][at] = v[e]));
  });
  return { start, data };
}

/**
 * Builds the channel-id graph and runs the fixed-point analysis.
 *
 * Round r removes every id that round r - 1's state leaves unblocked, as {@link blockPass}
 * would find it, so the rounds (and `iterations`) are those of running propagateConstants and
 * blockPass over the whole graph each round. Instead, each id keeps a count of the reasons
 * blocking it (one per unit layer whose live units read it while it varies or does not fold,
 * plus one for a pin), and a round only rechecks the channels read by the units its removals
 * took away (the constants, computed once by {@link buildStates}, do not change): the work of a
 * round is proportional to what changes in it, so a cascade along a deep chain costs linear, not
 * quadratic, time. A last full round checks the fixed point and finds the reasons, exactly as the
 * last round of the full recomputation did.
 */
export function plan(
  graph: LayerGraph,
  threshold: number,
  unknownLayers: UnknownLayers = 'refuse',
): PrunePlan {
  const cg = buildStates(graph, threshold, unknownLayers);
  const { states, nIds } = cg;
  const removed = new Uint8Array(nIds);

  // Which units each id is (unit node, unit).
  const unitKeys: number[] = [];
  const unitNode: number[] = [];
  const unitIndex: number[] = [];
  for (const s of states) {
    if (s.handler.kind !== 'unit') continue;
    for (let o = 0; o < s.ids.length; o++) {
      unitKeys.push(s.ids[o]);
      unitNode.push(s.node.index);
      unitIndex.push(o);
    }
  }
  const units = groupBy(nIds, unitKeys, [unitNode, unitIndex]);

  // used[n][i]: live units of unit node n that read its input channel i; blocking[n][i]: whether
  // that channel then counts in blockers of its id.
  const used: Int32Array[] = [];
  const blocking: Uint8Array[] = [];
  const pinned = pinnedIds(cg);
  const blockers = new Int32Array(nIds);
  for (const s of states) {
    if (s.handler.kind !== 'unit') continue;
    const u = s.unit!;
    const input = states[s.node.inputs[0]];
    const n = new Int32Array(u.cin);
    const b = new Uint8Array(u.cin);
    for (let i = 0; i < u.cin; i++) {
      const row = i * u.cout;
      for (let o = 0; o < u.cout; o++) n[i] += u.nz[row + o];
      if (blocks(s, input, n[i], i)) {
        b[i] = 1;
        blockers[input.ids[i]]++;
      }
    }
    used[s.node.index] = n;
    blocking[s.node.index] = b;
  }

  // Ids to remove in the next round: unpinned, present, with nothing blocking them.
  let next: number[] = [];
  const listed = new Uint8Array(nIds);
  const present = new Uint8Array(nIds);
  for (const s of states) for (const id of s.ids) present[id] = 1;
  const consider = (id: number): void => {
    if (blockers[id] === 0 && present[id] && !pinned[id] && !removed[id] && !listed[id]) {
      listed[id] = 1;
      next.push(id);
    }
  };
  for (let id = 0; id < nIds; id++) consider(id);
  const recheck = (n: number, i: number): void => {
    const s = states[n];
    const input = states[s.node.inputs[0]];
    const b = blocks(s, input, used[n][i], i) ? 1 : 0;
    if (b === blocking[n][i]) return;
    blocking[n][i] = b;
    const id = input.ids[i];
    blockers[id] += b ? 1 : -1;
    consider(id);
  };

  let iterations = 0;
  while (next.length) {
    iterations++;
    const round = next;
    next = [];
    for (const id of round) removed[id] = 1;
    for (const id of round) {
      // Units that stopped being live: their input channels lose a reader.
      for (let e = units.start[id]; e < units.start[id + 1]; e++) {
        const n = units.data[0][e];
        const o = units.data[1][e];
        const u = states[n].unit!;
        for (let i = 0; i < u.cin; i++) {
          if (!u.nz[i * u.cout + o]) continue;
          if (--used[n][i] === 0) recheck(n, i);
        }
      }
    }
    // Which units are constant does not depend on what is removed (buildStates computed them): a
    // removal changes only who reads a channel, which `used` and recheck follow.
  }

  // The last round, over the whole graph as every round used to be: it finds nothing left to
  // remove (else the bookkeeping above missed something, and the rounds go on the old way).
  const full = fullRounds(cg, removed);
  return { graph, states, removed, reasons: full.reasons, iterations: iterations + full.rounds, threshold };
}

/** The unit layers (Dense, Conv2D, ...) every unit of which `removed` removes, in graph order. */
export function emptiedLayers(states: NodeState[], removed: Uint8Array): NodeState[] {
  return states.filter((s) => s.handler.kind === 'unit' && s.ids.every((id) => removed[id]));
}

/**
 * Rounds over the whole graph, from the removal state `removed` (updated in place) to the fixed
 * point: each round the verdict (on the constants {@link buildStates} computed), removing
 * every id not blocked. Returns the reasons of the last round and the number of rounds. @internal
 */
export function fullRounds(
  cg: ChannelGraph,
  removed: Uint8Array,
): { reasons: Map<number, BlockReason>; rounds: number } {
  let rounds = 0;
  for (;;) {
    rounds++;
    const verdict = blockPass(cg, removed);
    let changed = false;
    for (const s of cg.states) {
      for (const id of s.ids) {
        if (!removed[id] && !verdict.blocked[id]) {
          removed[id] = 1;
          changed = true;
        }
      }
    }
    if (!changed) return { reasons: verdict.reasons, rounds };
  }
}

/** The softmax an opaque node applies over its channels (the last axis), if it is one. */
function softmaxOf(s: NodeState): ((x: tf.Tensor) => tf.Tensor) | undefined {
  const { className } = s.node;
  const config = s.config as { activation?: string; axis?: number | number[] };
  if (className === 'Softmax') {
    const axis = Array.isArray(config.axis) ? config.axis : [config.axis ?? -1];
    const rank = s.node.shape.length;
    return axis.length === 1 && (axis[0] === -1 || axis[0] === rank) ? (x) => tf.softmax(x) : undefined;
  }
  if (className !== 'Activation' || !CROSS_CHANNEL_ACTIVATIONS.has(config.activation ?? '')) return undefined;
  // The layer's own activation, as a unit layer's constants use theirs.
  const act = (s.node.layer as unknown as { activation: { apply(x: tf.Tensor): tf.Tensor } }).activation;
  return (x) => act.apply(x);
}

/** Computes which entries are constant, and their values (which ids are removed changes neither). */
function propagateConstants(states: NodeState[]): void {
  for (const s of states) nodeConstants(s, states);
}

/** Computes `s.consts` from its inputs' constants. */
function nodeConstants(s: NodeState, states: NodeState[]): void {
  const inputs = s.node.inputs.map((i) => states[i]);
  const out = s.consts;
  out.fill(NaN);
  switch (s.handler.kind) {
    case 'input':
      break;
    case 'opaque': {
      // A softmax of channels all constant is constant (a Softmax layer over the last axis, or an
      // Activation of softmax / logSoftmax); other opaque layers' outputs are unknown.
      const src = inputs[0]?.consts;
      const fn = softmaxOf(s);
      if (fn && src && src.length && src.every((k) => !Number.isNaN(k))) out.set(applyElementwise(fn, src));
      break;
    }
    case 'unit': {
      const u = s.unit!;
      const input = inputs[0];
      const pre = new Float64Array(u.cout);
      const constant = new Uint8Array(u.cout).fill(1);
      for (let o = 0; o < u.cout; o++) pre[o] = u.bias ? u.bias.values[o] : 0;
      for (let i = 0; i < u.cin; i++) {
        const k = input.consts[i];
        const gone = !Number.isNaN(k);
        const row = i * u.cout;
        for (let o = 0; o < u.cout; o++) {
          if (!u.nz[row + o]) continue;
          // A unit is constant while every input it really reads is a constant that folds
          // exactly, removed or not: a kept constant channel (a dead unit coupled by a join)
          // gives its readers constant values too. Requiring the inputs removed left cycles
          // undecided (h -> r1 -> r2 -> Add(h, r2) with h dead: h waited for r2 to be constant,
          // r2 for h to be removed), and kept a model whose output is a constant.
          if (!gone || (!u.exactFold && k !== 0)) constant[o] = 0;
          else pre[o] += k * u.sumK(i, o);
        }
      }
      // Softmax mixes units: the output is constant only where every unit is (a layer reading only
      // removed constants), and then it is the activation of them all.
      if (u.crossChannel) {
        if (constant.every((c) => c === 1)) out.set(u.activate(pre));
        break;
      }
      const which: number[] = [];
      for (let o = 0; o < u.cout; o++) if (constant[o]) which.push(o);
      const post = u.activate(Float64Array.from(which, (o) => pre[o]));
      which.forEach((o, k) => (out[o] = post[k]));
      break;
    }
    case 'channelwise': {
      const src = inputs[0].consts;
      if (s.handler.outputConstants) {
        out.set(s.handler.outputConstants(s.node, s.weights, src, inputs[0].node.shape, s.config));
        break;
      }
      const which: number[] = [];
      for (let c = 0; c < src.length; c++) if (!Number.isNaN(src[c])) which.push(c);
      const mapped = s.handler.mapConstants!(
        s.node,
        s.weights,
        Float64Array.from(which, (c) => src[c]),
        Int32Array.from(which),
      );
      which.forEach((c, k) => (out[c] = mapped[k]));
      break;
    }
    case 'flatten': {
      const src = inputs[0].consts;
      for (let f = 0; f < out.length; f++) out[f] = src[f % src.length];
      break;
    }
    case 'join': {
      for (let c = 0; c < out.length; c++) {
        const xs = inputs.map((x) => x.consts[c]);
        if (xs.every((x) => !Number.isNaN(x))) out[c] = s.handler.join!(xs);
      }
      break;
    }
    case 'concat': {
      let off = 0;
      for (const x of inputs) {
        out.set(x.consts, off);
        off += x.consts.length;
      }
      break;
    }
  }
}
