// Measurements of a model that the report prints: parameters, non-zeros,
// multiply-accumulates, units per layer, accuracy and latency.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { batches, type Split, type Stats } from '@normprune/datasets';
import { layerPaths } from '@normprune/layers';
import { analyze } from '@normprune/surgery';
import type { PairedCounts } from './paired.js';

/** Size figures of one layer. */
export interface LayerCount {
  name: string;
  className: string;
  /** Units (Dense), filters (Conv1D, Conv2D, Conv2DTranspose) or channels (DepthwiseConv2D); undefined for other layers. */
  units?: number;
  params: number;
  nonzeros: number;
  /** Multiply-accumulates per sample, counting only non-zero kernel weights. */
  macs: number;
}

/** Size figures of a model. */
export interface ModelCount {
  layers: LayerCount[];
  params: number;
  nonzeros: number;
  macs: number;
}

/**
 * Units of a Dense layer, filters of a convolution (Conv1D, Conv2D, Conv2DTranspose), output
 * channels of a DepthwiseConv2D (input channels x depthMultiplier: it has no filters of its own,
 * and surgery removes its channels); plain or decomposed. Undefined for other layers.
 */
function unitsOf(layer: tfl.layers.Layer): number | undefined {
  const cfg = layer.getConfig() as { units?: number; filters?: number };
  const cls = layer.getClassName();
  if (cls.endsWith('Dense')) return cfg.units;
  if (cls.endsWith('DepthwiseConv2D')) {
    // The kernel is [kh, kw, inChannels, depthMultiplier] (a decomposed layer's direction too).
    const kernel = layer.weights.find((w) => w.shape.length === 4);
    const [, , cin, multiplier] = kernel?.shape ?? [];
    return cin != null && multiplier != null ? cin * multiplier : undefined;
  }
  if (/Conv(1D|2D|2DTranspose)$/.test(cls)) return cfg.filters;
  return undefined;
}

/**
 * Counts parameters (every weight, trainable or not), non-zero parameters and MACs per sample
 * (non-zero kernel weights x output positions) of a model, per layer and in total, as
 * `@normprune/surgery`'s `analyze` counts them (its `nonzeroMacs`): the report's figures and
 * `analyze` cannot disagree. A decomposed model is counted as the plain model it folds into.
 * Layers of a nested model are listed by their paths (`block/fc`); layers without weights are
 * left out unless they have units. A layer with a kernel `analyze` cannot count (a recurrent
 * layer) makes its MACs and the total NaN.
 */
export function countModel(model: tfl.LayersModel): ModelCount {
  const units = new Map(layerPaths(model).map(({ path, layer }) => [path, unitsOf(layer)]));
  const layers: LayerCount[] = analyze(model)
    .layers.filter((l) => l.params > 0 || units.get(l.name) !== undefined)
    .map((l) => ({
      name: l.name,
      className: l.className,
      units: units.get(l.name),
      params: l.params,
      nonzeros: l.nonzeros,
      macs: l.nonzeroMacs,
    }));
  return {
    layers,
    params: layers.reduce((s, l) => s + l.params, 0),
    nonzeros: layers.reduce((s, l) => s + l.nonzeros, 0),
    macs: layers.reduce((s, l) => s + l.macs, 0),
  };
}

/** How `errorRate` and `pairedCounts` read a split. */
export interface EvalOptions {
  normalize: 'unit' | 'standardize';
  stats?: Stats;
  batchSize?: number;
}

/**
 * Per batch of `split`, one flag per sample and model: 1 where the model misclassifies it.
 * Leak-free. `o` is every model's options, or one per model: models trained on differently
 * normalised inputs each get theirs (the same samples, in the same order).
 */
async function* misclassified(
  models: tfl.LayersModel[],
  split: Split,
  o: EvalOptions | EvalOptions[],
): AsyncGenerator<Uint8Array[]> {
  const each = models.map((_, i) => (Array.isArray(o) ? o[i] : o));
  // One pass over the split per distinct normalisation.
  const same = (a: EvalOptions, b: EvalOptions) =>
    a.normalize === b.normalize && JSON.stringify(a.stats) === JSON.stringify(b.stats);
  const streams = each.map((e, i) => each.findIndex((f) => same(e, f)) === i);
  const readers = each.map((e, i) =>
    streams[i]
      ? batches(split, {
          batchSize: each[0].batchSize ?? 500,
          shuffle: false,
          normalize: e.normalize,
          stats: e.stats,
        })[Symbol.asyncIterator]()
      : undefined,
  );
  const reader = (i: number) => each.findIndex((f) => same(each[i], f));
  for (;;) {
    const got = await Promise.all(readers.map((r) => r?.next()));
    if (got.some((g) => g?.done)) break;
    const flags = tf.tidy(() => {
      const y = tf.cast(got[reader(0)]!.value.ys, 'int32');
      return models.map((m, i) => {
        const xs = got[reader(i)]!.value.xs;
        // The whole batch in one call: predict's own chunks of 32 each met the weights anew
        // (on wasm each chunk packed every kernel into a new XNNPACK operator, and a decomposed
        // layer recomputed its kernel per chunk), for the same logits, bit for bit: each
        // sample's row is its own dot products, summed in the same order at any chunk size.
        const logits = m.predict(xs, { batchSize: Math.max(1, xs.shape[0]) }) as tf.Tensor;
        return tf.notEqual(tf.argMax(logits, -1), y);
      });
    });
    const out = await Promise.all(flags.map(async (f) => Uint8Array.from(await f.data())));
    tf.dispose([...flags, ...got.flatMap((g) => (g && !g.done ? [g.value.xs, g.value.ys] : []))]);
    yield out;
  }
}

/** Classification error (fraction) of `model` on `split`, in batches, leak-free. */
export async function errorRate(model: tfl.LayersModel, split: Split, o: EvalOptions): Promise<number> {
  let wrong = 0;
  let seen = 0;
  for await (const [w] of misclassified([model], split, o)) {
    for (const v of w) wrong += v;
    seen += w.length;
  }
  return seen ? wrong / seen : NaN;
}

/**
 * Counts, over `split`, the samples each of two models misclassifies alone and both do.
 * Leak-free. `o`: both models' options, or `[first's, second's]` for models trained on
 * differently normalised inputs.
 */
export async function pairedCounts(
  first: tfl.LayersModel,
  second: tfl.LayersModel,
  split: Split,
  o: EvalOptions | [EvalOptions, EvalOptions],
): Promise<PairedCounts> {
  const c: PairedCounts = { n: 0, bothWrong: 0, onlyFirstWrong: 0, onlySecondWrong: 0 };
  for await (const [a, s] of misclassified([first, second], split, o)) {
    for (let i = 0; i < a.length; i++) {
      if (a[i] && s[i]) c.bothWrong++;
      else if (a[i]) c.onlyFirstWrong++;
      else if (s[i]) c.onlySecondWrong++;
    }
    c.n += a.length;
  }
  return c;
}

/**
 * Timed calls behind each latency median (after warm-up): enough that a stall of a shared CPU in
 * a few of them leaves the median alone (5 calls at batch 256 did not: one run read 20 ms for a
 * 6 ms model, measured with three jobs on two cores).
 */
export const LATENCY_RUNS = { batch1: 50, batch256: 15 } as const;

/**
 * Wall time the timed calls of one batch size may take (all models together) before they stop
 * short of `LATENCY_RUNS`, and the fewest rounds they stop at. A small model never meets it (15
 * calls of LeNet-5 at batch 256 take well under a second); a full-width VGG-16 took medians of
 * 3.98 and 3.94 s a call at batch 256 on wasm (the smoke run in the README), so 15 rounds of two
 * models take 2 minutes, and on a loaded machine ten.
 */
export const LATENCY_BUDGET = { ms: 60_000, minRuns: 3 } as const;

/** The median of `values` (the mean of the two middle ones for an even count); sorts a copy. */
export function median(values: number[]): number {
  const t = [...values].sort((a, b) => a - b);
  const m = Math.floor(t.length / 2);
  return t.length % 2 ? t[m] : (t[m - 1] + t[m]) / 2;
}

/** What {@link latencyMs} measured: one median per model, and the rounds behind each. */
export interface LatencyTiming {
  /** Median wall time (ms) of one call, per model, in the order given. */
  ms: number[];
  /** Timed rounds (one call of each model) behind the medians: `runs`, or fewer when the budget ran out. */
  calls: number;
}

/**
 * Median wall time (ms) of one `model.predict` call on a batch of `n` zeros, for each of
 * `models`, after two warm-up calls each. The models run alternately (a, b, a, b, ...) so that
 * load from other processes on a shared CPU hits them alike: compare figures from one call only.
 * The whole batch goes through in one call (predict would otherwise split it into chunks of 32).
 * The timed rounds stop after `runs`, or earlier once they have taken `budgetMs` of wall time and
 * at least `LATENCY_BUDGET.minRuns` (or `runs`, if fewer) are done; `calls` says how many ran.
 */
export async function latencyMs(
  models: tfl.LayersModel[],
  shape: [number, number, number],
  n: number,
  runs: number,
  budgetMs: number = LATENCY_BUDGET.ms,
): Promise<LatencyTiming> {
  const x = tf.zeros([n, ...shape]);
  const once = async (model: tfl.LayersModel) => {
    const t0 = performance.now();
    const y = model.predict(x, { batchSize: n }) as tf.Tensor;
    await y.data();
    y.dispose();
    return performance.now() - t0;
  };
  for (let i = 0; i < 2; i++) for (const m of models) await once(m);
  const times: number[][] = models.map(() => []);
  const minRuns = Math.min(runs, LATENCY_BUDGET.minRuns);
  let spent = 0;
  let calls = 0;
  while (calls < runs && (calls < minRuns || spent < budgetMs)) {
    for (let k = 0; k < models.length; k++) {
      const t = await once(models[k]);
      times[k].push(t);
      spent += t;
    }
    calls++;
  }
  x.dispose();
  return { ms: times.map(median), calls };
}

/**
 * The sentence a report adds when the time budget cut the latency timing short
 * (`calls` below `LATENCY_RUNS` for a batch size), else undefined.
 */
export function latencyCallsNote(
  calls: { batch1: number; batch256: number } | undefined,
): string | undefined {
  if (!calls || (calls.batch1 >= LATENCY_RUNS.batch1 && calls.batch256 >= LATENCY_RUNS.batch256))
    return undefined;
  return (
    `The latency timing of a batch size stops after ${LATENCY_BUDGET.ms / 1000} s of calls ` +
    `(at least ${LATENCY_BUDGET.minRuns} rounds), and this model met that: batch 1 is the median of ` +
    `${calls.batch1} calls and batch 256 of ${calls.batch256} (normally ${LATENCY_RUNS.batch1} and ` +
    `${LATENCY_RUNS.batch256}), so a stall of the shared CPU moves it more easily`
  );
}
