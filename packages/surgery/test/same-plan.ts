// Checks the incremental analysis (src/engine.ts plan) against the round-by-round one it
// replaced (reference-plan.ts): same removed ids, constants, reasons and rounds, and the
// same pruned weights, bit for bit.
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { plan, type PrunePlan } from '../src/engine';
import { buildGraph } from '../src/graph';
import { rebuild } from '../src/rebuild';
import { planReference } from './reference-plan';

/** Float64 entries compared as bits: NaN equals NaN, 0 differs from -0. */
function bits(a: Float64Array): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');
}

function expectSamePlan(actual: PrunePlan, expected: PrunePlan): void {
  expect(actual.iterations).toBe(expected.iterations);
  expect(Array.from(actual.removed)).toEqual(Array.from(expected.removed));
  expect([...actual.reasons].sort((a, b) => a[0] - b[0])).toEqual(
    [...expected.reasons].sort((a, b) => a[0] - b[0]),
  );
  expect(actual.states.length).toBe(expected.states.length);
  actual.states.forEach((s, n) => {
    const e = expected.states[n];
    expect([s.node.name, Array.from(s.ids)]).toEqual([e.node.name, Array.from(e.ids)]);
    expect([s.node.name, bits(s.consts)]).toEqual([e.node.name, bits(e.consts)]);
  });
}

/** Every weight of a model as host values, by layer name. */
export function weightsOf(model: tfl.LayersModel): Map<string, { shape: number[]; values: Float32Array }[]> {
  return new Map(
    model.layers.map((l) => [
      l.name,
      l.weights.map((w) => ({ shape: w.shape as number[], values: w.read().dataSync() as Float32Array })),
    ]),
  );
}

/** Bit-identical weights and architecture. */
export function expectSameWeights(a: tfl.LayersModel, b: tfl.LayersModel): void {
  expect(a.layers.map((l) => [l.name, l.getClassName(), l.outputShape])).toEqual(
    b.layers.map((l) => [l.name, l.getClassName(), l.outputShape]),
  );
  const wa = weightsOf(a);
  const wb = weightsOf(b);
  for (const [name, ws] of wa) {
    const other = wb.get(name)!;
    expect([name, ws.length]).toEqual([name, other.length]);
    ws.forEach((w, j) => {
      expect([name, j, w.shape]).toEqual([name, j, other[j].shape]);
      const same = Buffer.from(w.values.buffer, w.values.byteOffset, w.values.byteLength).equals(
        Buffer.from(other[j].values.buffer, other[j].values.byteOffset, other[j].values.byteLength),
      );
      expect([name, j, same]).toEqual([name, j, true]);
    });
  }
}

/**
 * Runs both analyses on a plain (not decomposed) model, expects the same plan, and returns the
 * model the old analysis prunes to (the caller disposes it) with the new plan. Leaves no tensor.
 */
export function pruneTheOldWay(
  plain: tfl.LayersModel,
  threshold = 0,
): { model: tfl.LayersModel; plan: PrunePlan } {
  const start = tf.memory().numTensors;
  const expected = planReference(buildGraph(plain), threshold);
  const actual = plan(buildGraph(plain), threshold);
  expectSamePlan(actual, expected);
  const old = rebuild(plain, expected).model;
  const now = rebuild(plain, actual).model;
  expectSameWeights(now, old);
  now.dispose();
  expect(tf.memory().numTensors - start).toBe(old.weights.length);
  return { model: old, plan: actual };
}
