// The dependency analysis's rounds as they were before the analysis became incremental (git show
// 98af8c2:packages/surgery/src/engine.ts): every round recomputes the blocked ids over the whole
// graph, which is quadratic on deep chains where death cascades one layer per round. Kept as the
// oracle the new plan() must match exactly (removed ids, constants, reasons and rounds), in the
// tests and the deep-chain bench. The channel-id graph (buildStates, which since fc9a271 also
// computes the constants once: they follow from the weights alone) and one round's verdict
// (blockPass) are the old code, moved into functions of src/engine.ts, and so is the old loop over
// rounds (fullRounds), which the new analysis runs only once its incremental rounds are done: here
// it runs from the start.
import { buildStates, fullRounds, type PrunePlan } from '../src/engine.js';
import type { LayerGraph } from '../src/graph.js';

/** Builds the channel-id graph and runs the fixed-point analysis, every round over the whole graph. */
export function planReference(graph: LayerGraph, threshold: number): PrunePlan {
  const cg = buildStates(graph, threshold);
  const removed = new Uint8Array(cg.nIds);
  const { reasons, rounds } = fullRounds(cg, removed);
  return { graph, states: cg.states, removed, reasons, iterations: rounds, threshold };
}
