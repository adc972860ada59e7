// The dependency analysis on deep chains, where death cascades one layer per round, and on
// random graphs: the incremental analysis must decide exactly what the round-by-round one it
// replaced decided (test/reference-plan.ts), and do a bounded amount of work per layer.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { prune } from '../src/index';
import { layerConfigEntry } from '../src/graph';
import { editWeight, outputDiff, rng } from './helpers';
import { expectSameWeights, pruneTheOldWay } from './same-plan';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Writes a layer's kernel (`kernel(i, o)` for every entry [..., i, o]) and bias. */
function setWeights(
  layer: tfl.layers.Layer,
  kernel: (i: number, o: number) => number,
  bias: (o: number) => number,
): void {
  const s = layer.weights[0].shape as number[];
  const cin = s[s.length - 2];
  const cout = s[s.length - 1];
  const kv = new Float32Array(s.reduce((a, b) => a * b, 1));
  for (let p = 0; p < kv.length; p++) kv[p] = kernel(Math.floor((p % (cin * cout)) / cout), p % cout);
  const ts = [
    tf.tensor(kv, s),
    tf.tensor(
      Float32Array.from({ length: cout }, (_, o) => bias(o)),
      [cout],
    ),
  ];
  layer.setWeights(ts);
  tf.dispose(ts);
}

/** The unit (beyond 0 and 1) that hidden layer `l` kills outright, or -1: one layer in three. */
const extraDead = (l: number, width: number): number => (l % 3 === 0 ? 2 + (l % (width - 2)) : -1);

/**
 * A chain of `depth` hidden layers of `width` units where unit 0 of each reads only unit 0 of
 * the layer before (the first layer's unit 0 is dead, so every unit 0 becomes constant in turn,
 * front to back) and unit 1 of each is read only by unit 1 of the layer after (the classifier
 * ignores unit 1, so every unit 1 becomes unused in turn, back to front).
 */
function cascade(l: number, width: number, r: () => number): (i: number, o: number) => number {
  return (i, o) => {
    if (o === extraDead(l, width)) return 0;
    if (o === 0) return l > 0 && i === 0 ? 0.5 + r() : 0;
    if (i === 1 && o !== 1) return 0;
    return r() - 0.5;
  };
}

function denseChain(depth: number, width: number): tfl.LayersModel {
  const r = rng(5);
  const hidden = Array.from({ length: depth }, (_, l) =>
    tfl.layers.dense({
      ...(l === 0 ? { inputShape: [width] } : {}),
      units: width,
      activation: 'relu',
      name: `d${l}`,
    }),
  );
  const out = tfl.layers.dense({ units: 3, name: 'out' });
  const model = tfl.sequential({ layers: [...hidden, out] });
  // Positive biases: a dead unit emits relu(bias) > 0, which must be folded into the next bias.
  hidden.forEach((layer, l) => setWeights(layer, cascade(l, width, r), () => 0.1 + 0.4 * r()));
  setWeights(
    out,
    (i) => (i === 1 ? 0 : r() - 0.5),
    () => r() - 0.5,
  );
  return model;
}

/** Counts the calls of every Dense/Conv2D layer's activation (surgery evaluates constants with it). */
function countActivations(model: tfl.LayersModel): () => number {
  let calls = 0;
  for (const layer of model.layers) {
    const act = (layer as any).activation;
    if (!act) continue;
    const apply = act.apply.bind(act);
    act.apply = (x: tf.Tensor) => {
      calls++;
      return apply(x);
    };
  }
  return () => calls;
}

describe('plan: a 200-layer Dense chain where death cascades both ways', () => {
  const depth = 200;
  const width = 6;

  it('removes exactly the cascading units, computes the same function, and matches the old analysis', () => {
    const start = tf.memory().numTensors;
    const model = denseChain(depth, width);
    const { model: old, plan } = pruneTheOldWay(model);
    // one round per layer the cascades cross, plus the round that finds nothing left
    expect(plan.iterations).toBe(depth + 1);
    const { model: pruned, report } = prune(model);
    expectSameWeights(pruned, old);
    for (let l = 0; l < depth; l++) {
      const layer = report.layers[l];
      const extra = extraDead(l, width);
      expect([layer.name, layer.removed]).toEqual([`d${l}`, extra < 0 ? [0, 1] : [0, 1, extra]]);
      // unit 0 and the extra unit emit a constant; unit 1 varies but nobody reads it
      expect([layer.name, layer.removedConstant, layer.removedUnused]).toEqual([
        `d${l}`,
        extra < 0 ? 1 : 2,
        1,
      ]);
      const before = l === 0 ? -1 : extraDead(l - 1, width);
      expect([layer.name, layer.inputsRemoved]).toEqual([`d${l}`, l === 0 ? 0 : before < 0 ? 2 : 3]);
    }
    const out = report.layers[depth];
    expect([out.name, out.unitsAfter, out.inputsRemoved]).toEqual([
      'out',
      3,
      extraDead(depth - 1, width) < 0 ? 2 : 3,
    ]);
    expect(report.warnings).toEqual([]);
    const { abs, scale } = outputDiff(model, pruned);
    expect(scale).toBeGreaterThan(0);
    expect(abs).toBeLessThanOrEqual(1e-5 * Math.max(1, scale));
    for (const m of [model, old, pruned]) m.dispose();
    expect(tf.memory().numTensors).toBe(start);
  });

  it('evaluates each layer a bounded number of times, not once per round', () => {
    // The round-by-round analysis evaluated every layer's constants in every round: about
    // depth * depth activation calls here. The incremental one revisits a layer only when a
    // round changes one of its inputs: a handful of times per layer.
    const model = denseChain(depth, width);
    const calls = countActivations(model);
    const { model: pruned } = prune(model);
    expect(calls()).toBeLessThanOrEqual(8 * (depth + 1));
    pruned.dispose();
    model.dispose();
  });
});

describe('plan: a 60-layer Conv2D chain, dead filters emitting 0 through "same" padding', () => {
  it('removes exactly the cascading filters and matches the old analysis', () => {
    const depth = 60;
    const width = 4;
    const r = rng(9);
    const convs = Array.from({ length: depth }, (_, l) =>
      tfl.layers.conv2d({
        ...(l === 0 ? { inputShape: [5, 5, width] } : {}),
        filters: width,
        kernelSize: 3,
        padding: 'same',
        activation: 'relu',
        name: `c${l}`,
      }),
    );
    const out = tfl.layers.dense({ units: 2, name: 'out' });
    const model = tfl.sequential({
      layers: [...convs, tfl.layers.globalAveragePooling2d({ name: 'gap' }), out],
    });
    const dead = (l: number, o: number) => o === 0 || o === extraDead(l, width);
    // Dead filters get bias 0: their constant relu(0) = 0 is what 'same' zero padding adds anyway.
    convs.forEach((c, l) => setWeights(c, cascade(l, width, r), (o) => (dead(l, o) ? 0 : 0.1 + 0.4 * r())));
    setWeights(
      out,
      (i) => (i === 1 ? 0 : r() - 0.5),
      () => r() - 0.5,
    );

    const { model: old, plan } = pruneTheOldWay(model);
    expect(plan.iterations).toBe(depth + 1);
    const { model: pruned, report } = prune(model);
    expectSameWeights(pruned, old);
    for (let l = 0; l < depth; l++) {
      const extra = extraDead(l, width);
      expect([`c${l}`, report.layers[l].removed]).toEqual([`c${l}`, extra < 0 ? [0, 1] : [0, 1, extra]]);
    }
    const { abs, scale } = outputDiff(model, pruned);
    expect(scale).toBeGreaterThan(0);
    expect(abs).toBeLessThanOrEqual(1e-5 * Math.max(1, scale));
    for (const m of [model, old, pruned]) m.dispose();
  });
});

/**
 * A random functional model of Dense blocks: plain layers, residual Adds, Concatenates of two
 * branches, BatchNormalization, a Softmax head or not; kernels with random dead columns (units),
 * dead rows (unused inputs) and weights near zero (for thresholds), and random biases.
 */
function randomModel(seed: number): tfl.LayersModel {
  const r = rng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
  const acts = ['relu', 'tanh', 'sigmoid', 'linear', 'elu'] as const;
  const input = tfl.input({ shape: [6], name: 'x' });
  let x = input as tfl.SymbolicTensor;
  let width = 6;
  let n = 0;
  const dense = (from: tfl.SymbolicTensor, units: number) =>
    tfl.layers
      .dense({ units, activation: pick([...acts]), name: `d${n++}` })
      .apply(from) as tfl.SymbolicTensor;
  const blocks = 6 + Math.floor(r() * 10);
  for (let b = 0; b < blocks; b++) {
    const kind = r();
    if (kind < 0.45) {
      width = 3 + Math.floor(r() * 6);
      x = dense(x, width);
    } else if (kind < 0.65) {
      x = tfl.layers.add({ name: `add${b}` }).apply([x, dense(x, width)]) as tfl.SymbolicTensor;
    } else if (kind < 0.85) {
      const a = dense(x, 2 + Math.floor(r() * 4));
      const c = dense(x, 2 + Math.floor(r() * 4));
      x = tfl.layers.concatenate({ name: `cat${b}` }).apply([a, c]) as tfl.SymbolicTensor;
      width = x.shape[1] as number;
    } else {
      x = tfl.layers.batchNormalization({ name: `bn${b}` }).apply(x) as tfl.SymbolicTensor;
    }
  }
  let y = tfl.layers.dense({ units: 3, name: 'head' }).apply(x) as tfl.SymbolicTensor;
  if (r() < 0.3) y = tfl.layers.softmax({ name: 'sm' }).apply(y) as tfl.SymbolicTensor;
  const model = tfl.model({ inputs: input, outputs: y });
  for (const layer of model.layers) {
    if (layer.getClassName() === 'Dense') {
      const s = layer.weights[0].shape as number[];
      // Per unit: dead (a zero column), or reading one input only (it dies when that input
      // does: cascades), or reading every input; a few inputs nobody reads (zero rows).
      const reads = Array.from({ length: s[1] }, () => {
        const u = r();
        return u < 0.2 ? -2 : u < 0.5 ? Math.floor(r() * s[0]) : -1;
      });
      const deadRows = new Set(Array.from({ length: s[0] }, (_, i) => i).filter(() => r() < 0.2));
      setWeights(
        layer,
        (i, o) =>
          reads[o] === -2 || (reads[o] >= 0 && reads[o] !== i) || deadRows.has(i)
            ? 0
            : r() < 0.15
              ? 0.01 * (r() - 0.5)
              : r() - 0.5,
        () => (r() < 0.3 ? 0 : r() - 0.3),
      );
    } else if (layer.getClassName() === 'BatchNormalization') {
      const ts = layer.weights.map((w, j) =>
        tf.tensor(
          Float32Array.from({ length: w.shape[0] as number }, () => (j === 3 ? 0.5 + r() : r() - 0.5)),
        ),
      );
      layer.setWeights(ts);
      tf.dispose(ts);
    }
  }
  return model;
}

/**
 * Writes as exact zeros, in place, every Dense kernel weight with |w| <= threshold: what prune
 * with that threshold treats as zero (a Dense weight is its own group there).
 */
function zeroBelow(model: tfl.LayersModel, threshold: number): void {
  for (const layer of model.layers)
    if (layer.getClassName() === 'Dense')
      editWeight(model, layer.name, 'kernel', (v) =>
        v.forEach((w, p) => Math.abs(w) <= threshold && (v[p] = 0)),
      );
}

describe('plan: random Dense graphs with joins, the same decisions as the old analysis, the same function', () => {
  for (const threshold of [0, 0.004]) {
    it(`60 random models, threshold ${threshold}`, () => {
      const start = tf.memory().numTensors;
      let pruned = 0;
      let refused = 0;
      // pruned models with a placeholder unit (a layer the analysis empties, the output still varying)
      let placeholders = 0;
      // models whose function the threshold changed (where the zeroed model is the reference)
      let changed = 0;
      for (let seed = 1; seed <= 60; seed++) {
        const model = randomModel(seed);
        let old: tfl.LayersModel | undefined;
        let oldError = '';
        try {
          old = pruneTheOldWay(model, threshold).model;
        } catch (e) {
          // the new plan already matched; only rebuild refused it (a layer left without units)
          oldError = (e as Error).message;
          if (!/^surgery: /.test(oldError)) throw e;
        }
        if (old) {
          const { model: now, report } = prune(model, { threshold });
          expectSameWeights(now, old);
          if (report.layers.some((l) => l.placeholders.length > 0)) placeholders++;
          // The pruned model computes what the model computes once its weights at or below the
          // threshold are zero (at threshold 0, the model itself). Zeroed in place: the model
          // is not used afterwards.
          if (threshold > 0) {
            const { abs, scale } = outputDiff(model, now);
            if (abs > 1e-5 * Math.max(1, scale)) changed++;
            zeroBelow(model, threshold);
          }
          // Two batches of 8; measured at most 6.0e-8 of the output scale at either threshold.
          for (const batchSeed of [1, 2]) {
            const { abs, scale } = outputDiff(model, now, 8, batchSeed);
            expect([seed, batchSeed, scale > 0, abs <= 1e-5 * Math.max(1, scale)]).toEqual([
              seed,
              batchSeed,
              true,
              true,
            ]);
          }
          now.dispose();
          old.dispose();
          pruned++;
        } else {
          expect(() => prune(model, { threshold })).toThrow(oldError);
          refused++;
        }
        model.dispose();
      }
      // most models prune (56 and 55; 11 and 13 of them keep placeholders, which the analysis refused before);
      // the rest, with an output that no longer depends on the input, are refused the same way by both
      expect(pruned).toBeGreaterThan(refused);
      expect([threshold, placeholders > 0]).toEqual([threshold, true]);
      // at 0.004, 42 of the 55 models that prune (13 with placeholders) compute something else once zeroed
      if (threshold > 0) expect(changed).toBeGreaterThan(pruned / 2);
      expect(tf.memory().numTensors).toBe(start);
    });
  }
});

describe('layerConfigEntry', () => {
  const entry = (name: string, inner = name) => ({ class_name: 'Dense', name, config: { name: inner } });

  it('finds entries by config name, then by name, the first in order', () => {
    const config = { layers: [entry('a'), entry('b', 'c'), entry('d', 'b'), entry('a')] };
    expect(layerConfigEntry(config, 'a')).toBe(config.layers[0]);
    expect(layerConfigEntry(config, 'c')).toBe(config.layers[1]);
    // 'b' is entry 1's own name and entry 2's config name: the first in order wins.
    expect(layerConfigEntry(config, 'b')).toBe(config.layers[1]);
    expect(() => layerConfigEntry(config, 'x')).toThrow("surgery: layer 'x' missing from the model config");
  });

  it('is never served stale after the list changes', () => {
    const config = { layers: [entry('a'), entry('b'), entry('c')] };
    expect(layerConfigEntry(config, 'b')).toBe(config.layers[1]);
    // Removed before 'b': the cached index now holds 'c'.
    config.layers.splice(0, 1);
    expect(layerConfigEntry(config, 'b')).toBe(config.layers[0]);
    expect(layerConfigEntry(config, 'c')).toBe(config.layers[1]);
    // Renamed in place, and added after the first lookup.
    config.layers[1].config.name = 'renamed';
    config.layers[1].name = 'renamed';
    config.layers.push(entry('e'));
    expect(layerConfigEntry(config, 'renamed')).toBe(config.layers[1]);
    expect(() => layerConfigEntry(config, 'c')).toThrow("layer 'c' missing");
    expect(layerConfigEntry(config, 'e')).toBe(config.layers[2]);
    // A new list under the same config.
    config.layers = [entry('z')];
    expect(layerConfigEntry(config, 'z')).toBe(config.layers[0]);
  });
});
