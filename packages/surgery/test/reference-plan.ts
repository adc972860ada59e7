// The dependency analysis's rounds as they were before the analysis became incremental (git show
// 98af8c2:packages/surgery/src/engine.ts): every round recomputes the constants and the blocked
// ids over the whole graph, which is quadratic on deep chains where death cascades one layer per
// round. Kept as the oracle the new plan() must match exactly (removed ids, constants, reasons and
// rounds), in the tests and the deep-chain bench. The channel-id graph (buildStates), one round's
// verdict (blockPass) and the constants (propagateConstants) are the old code, moved into
// functions of src/engine.ts unchanged; only the loop over rounds is the old one kept here.
import {
  blockPass,
  buildStates,
  propagateConstants,
  type BlockReason,
  type PrunePlan,
} from '../src/engine.js';
import type { LayerGraph } from '../src/graph.js';

/** Builds the channel-id graph and runs the fixed-point analysis, every round over the whole graph. */
export function planReference(graph: LayerGraph, threshold: number): PrunePlan {
  const cg = buildStates(graph, threshold);
  const { states, nIds } = cg;
  const removed = new Uint8Array(nIds);
  let reasons = new Map<number, BlockReason>();
  let iterations = 0;
  for (;;) {
    iterations++;
    propagateConstants(states, removed);
    const verdict = blockPass(cg, removed);
    reasons = verdict.reasons;
    let changed = false;
    for (const s of states) {
      for (const id of s.ids) {
        if (!removed[id] && !verdict.blocked[id]) {
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
