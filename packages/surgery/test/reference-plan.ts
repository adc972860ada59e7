// The dependency analysis as it was before it became incremental (git show 98af8c2:packages/
// surgery/src/engine.ts, unchanged but for imports and the name): every round recomputes the
// constants and the blocked ids over the whole graph, which is quadratic on deep chains where
// death cascades one layer per round. Kept as the oracle the new plan() must match exactly
// (removed ids, constants, reasons and rounds), in the tests and the deep-chain bench.
//
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
// outputs, model inputs and cross-channel layers never agree. Removing ids
// only ever makes more ids removable (more units become constant, fewer live
// units read a channel), so iterating from "nothing removed" reaches the least
// fixed point, where every removal is justified.
import type { NodeState, PrunePlan, BlockReason } from '../src/engine.js';
import type { LayerGraph } from '../src/graph.js';
import { layerConfigEntry } from '../src/graph.js';
import { handlerFor, readWeights, unitView } from '../src/handlers.js';

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

/** Builds the channel-id graph and runs the fixed-point analysis. */
export function planReference(graph: LayerGraph, threshold: number): PrunePlan {
  const uf = new UnionFind();
  const states: NodeState[] = [];
  for (const node of graph.nodes) {
    const config = node.layer ? layerConfigEntry(graph.config, node.name).config : {};
    const handler = handlerFor(node, config);
    const weights = readWeights(node.layer);
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
          uf.make(channels, `an output of ${node.className} layer '${node.name}', which mixes channels`),
          channels,
        );
        break;
      case 'unit': {
        const inShape = inputs[0].node.shape;
        const view = unitView(node, weights, config, inShape);
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
      case 'channelwise':
        ids = Int32Array.from(inputs[0].ids);
        if (ids.length !== channels)
          throw new Error(`surgery: layer '${node.name}' changes the channel count; not supported`);
        break;
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
            throw new Error(
              `surgery: layer '${node.name}' (${node.className}) joins inputs with different channel counts (broadcasting); not supported`,
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

  const nIds = uf.parent.length;
  const removed = new Uint8Array(nIds);
  let reasons = new Map<number, BlockReason>();
  let iterations = 0;
  for (;;) {
    iterations++;
    propagateConstants(states, removed);
    const blocked = new Uint8Array(nIds);
    reasons = new Map();
    const block = (id: number, why: string): void => {
      if (!blocked[id]) {
        blocked[id] = 1;
        reasons.set(id, why);
      }
    };
    // Only a unit coupled with a fixed channel by a join can be dead and fixed (a cross-channel
    // layer's own units are never constant), so that is what a kept unit's warning says.
    for (let id = 0; id < nIds; id++)
      if (uf.fixed[id])
        block(
          id,
          `coupled by an elementwise join with ${uf.why[id] ?? 'a fixed channel'}, which is never removed`,
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
        if (!used) continue;
        const k = input.consts[i];
        // Only shown for units that are constant at their own output: then something between
        // them and this reader made the channel vary.
        if (Number.isNaN(k)) {
          block(
            id,
            `its channel is no longer constant where '${s.node.name}' reads it (joined with a varying channel, ` +
              `zero padding, or a 'same'-padded depthwise convolution on the way)`,
          );
        } else if (!u.exactFold && k !== 0) {
          block(
            id,
            `constant ${k} read by '${s.node.name}' whose 'same' zero padding makes the border outputs differ`,
          );
        }
      }
    }
    let changed = false;
    for (const s of states) {
      for (const id of s.ids) {
        if (!removed[id] && !blocked[id]) {
          removed[id] = 1;
          changed = true;
        }
      }
    }
    if (!changed) break;
  }
  propagateConstants(states, removed);
  return { graph, states, removed, reasons, iterations, threshold };
}

/** Recomputes which entries are constant, and their values, given the removed ids. */
function propagateConstants(states: NodeState[], removed: Uint8Array): void {
  for (const s of states) {
    const inputs = s.node.inputs.map((i) => states[i]);
    const out = s.consts;
    out.fill(NaN);
    switch (s.handler.kind) {
      case 'input':
      case 'opaque':
        break;
      case 'unit': {
        const u = s.unit!;
        const input = inputs[0];
        const pre = new Float64Array(u.cout);
        const constant = new Uint8Array(u.cout).fill(1);
        for (let o = 0; o < u.cout; o++) pre[o] = u.bias ? u.bias.values[o] : 0;
        for (let i = 0; i < u.cin; i++) {
          const k = input.consts[i];
          const gone = removed[input.ids[i]] && !Number.isNaN(k);
          const row = i * u.cout;
          for (let o = 0; o < u.cout; o++) {
            if (!u.nz[row + o]) continue;
            // A unit stays constant only while every input it really reads is a removed constant
            // that folds exactly.
            if (!gone || (!u.exactFold && k !== 0)) constant[o] = 0;
            else pre[o] += k * u.sumK(i, o);
          }
        }
        if (u.crossChannel) break;
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
}
