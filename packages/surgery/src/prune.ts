import type * as tfl from '@tensorflow/tfjs-layers';
import {
  analyzeLayer,
  callsOf,
  layerCalls,
  totals,
  unknownMacs,
  type Counts,
  type LayerAnalysis,
} from './analyze.js';
import { droppedConstraintWarning } from './constraints.js';
import { plan } from './engine.js';
import { checkModel, checkOptions, checkThreshold, withPrunable } from './folding.js';
import { buildGraph } from './graph.js';
import { rebuild, type LayerPruneResult } from './rebuild.js';

/** A layer {@link prune} kept whole because surgery does not know its class (`unknownLayers: 'keep'`). */
export interface KeptWholeLayer {
  /** The layer's name. */
  name: string;
  /** Its class (`LSTM`, `Reshape`, a custom layer's `className`). */
  className: string;
}

/** Options of {@link prune}. */
export interface PruneOptions {
  /**
   * Zero test, in the weights' own units (absolute value, not relative to the layer). A single
   * Dense kernel weight, or a whole Conv2D, Conv2DTranspose or DepthwiseConv2D 2-D kernel `[kh, kw]` (a Conv1D's
   * 1-D, a Conv3D's 3-D kernel) whose weights are all <= threshold in absolute value, counts as
   * zero and is written as exact zeros; a Dense neuron or a convolution's filter left with no
   * non-zero weight is then removed (a depthwise channel
   * left so emits a constant, as with an exactly zero kernel). (Here a Dense weight is
   * tested on its own, not as part of the row or column that is its group in
   * `@normprune/layers`: on Dense layers a threshold is magnitude pruning of single weights.)
   * Default 0: only exact zeros, and the pruned model computes exactly what the input model
   * computes. A negative, NaN or infinite threshold, or one that is not a number, throws.
   */
  threshold?: number;
  /**
   * What to do with a layer of a class surgery does not know how to prune through (an LSTM, a
   * Reshape that moves entries across channels, a SeparableConv2D of dilation rate above 1, a
   * custom layer). `'refuse'` (the default) throws, naming the
   * layer and how to rebuild the model so that it prunes. `'keep'` keeps the layer whole, as
   * surgery keeps a Softmax: every channel it reads is kept, its outputs count as live, its
   * weights are copied unchanged; Dense and Conv2D units elsewhere are pruned as usual, so the
   * pruned model still computes what the input model computes. Such layers are listed in
   * {@link PruneReport.keptWhole}. A known layer in a setting surgery does not support
   * (channels-first data, a Concatenate off the channel axis) is refused either way. Anything
   * else throws.
   */
  unknownLayers?: 'refuse' | 'keep';
}

/** The keys of {@link PruneOptions}: any other key is refused. */
const PRUNE_OPTIONS = ['threshold', 'unknownLayers'] as const;

/** What {@link prune} returns. */
export interface PruneResult {
  /** The pruned model: plain layers only, not compiled. */
  model: tfl.LayersModel;
  /** Before/after figures. */
  report: PruneReport;
}

/** Before/after figures of {@link prune}. */
export interface PruneReport {
  /** Counts of the input model (decomposed layers counted as the plain layers they fold into). */
  before: Counts;
  /** Counts of the pruned model. */
  after: Counts;
  /**
   * Per-layer counts of the input model, one entry per layer of its plain form (decomposed layers
   * counted as the plain layers they fold into), with `threshold` applied: what `analyze(model,
   * { threshold })` gives (for a model with nested models, layers named by path, as the pruned
   * model names them; a SeparableConv2D prune splits is one row, and the pruned model's two layers,
   * `sep/depthwise` and `sep/pointwise`, are two). The pruned model's are in
   * {@link PruneReport.layersAfter}.
   */
  layersBefore: LayerAnalysis[];
  /** Per-layer counts of the pruned model. */
  layersAfter: LayerAnalysis[];
  /** What happened to each Dense / Conv2D layer. */
  layers: LayerPruneResult[];
  /** `before.params`. */
  paramsBefore: number;
  /**
   * Parameters the pruned model really needs: `after.params - after.zeroGroupParams`, i.e. all
   * its weights minus the kernel weights lying in all-zero groups (2-D kernels kept as zeros,
   * zero Dense rows/columns), which a sparse store (`exportModel(..., { format: 'sparse' })`)
   * does not keep.
   */
  paramsAfter: number;
  /**
   * `1 - paramsAfter / paramsBefore`: the fraction of parameters removed (cut out, or lying in
   * an all-zero group), in [0, 1]. Not the same figure as `@normprune/prox`'s
   * `SparsityReport.compression` (the decomposed layers' kernels only, before surgery) nor the
   * CLI's "removed" column (every weight that is exactly 0 counts).
   */
  compression: number;
  /**
   * `before.macs / after.nonzeroMacs`: how many times fewer multiply-accumulates a sample
   * needs (NaN when the MACs are unknown: see `Counts.macs`).
   */
  macsSpeedup: number;
  /**
   * Layers of classes surgery does not know, kept whole with `unknownLayers: 'keep'` (the
   * channels they read are kept too); empty otherwise.
   */
  keptWhole: KeptWholeLayer[];
  /**
   * What the pruned model keeps that a reader may not expect, one sentence each: first one per
   * {@link PruneReport.keptWhole} layer, in that order; then, per layer, placeholders (see
   * {@link LayerPruneResult.placeholders}) and units that emit a constant but could not be removed
   * (see {@link LayerPruneResult.keptConstant}); then the constraints (a layer's
   * `kernelConstraint`, `biasConstraint`, ...) left out of the pruned model because its rewritten
   * weights break them (tfjs would apply them when the export is loaded); last, model outputs left
   * constant.
   */
  warnings: string[];
  /** Rounds of the fixed-point analysis. */
  iterations: number;
  /**
   * A printable summary: one row per layer with weights (parameters, non-zeros and MACs before ->
   * after, and units before -> after for the layers in {@link layers}), a total row, a line with
   * the compression and MACs, then one `note:` line per warning.
   */
  table(): string;
}

/** A count as the table shows it; NaN (unknown MACs), or null, as 'unknown'. */
function count(n: number | null): string {
  return typeof n === 'number' && !Number.isNaN(n) ? String(n) : 'unknown';
}

function formatReport(r: Omit<PruneReport, 'table'>): string {
  const rows: string[][] = [['layer', 'class', 'units', 'params', 'nonzeros', 'MACs']];
  const after = new Map(r.layersAfter.map((l) => [l.name, l]));
  for (const b of r.layersBefore) {
    if (!b.params) continue;
    // The pruned model's layer of that name; or the two a split SeparableConv2D became (`sep/...`);
    // or none, for a layer only an unused output of a nested model came from.
    const parts = after.has(b.name)
      ? [after.get(b.name)!]
      : r.layersAfter.filter((x) => x.name.startsWith(`${b.name}/`));
    const sum = (key: 'params' | 'nonzeros' | 'macs'): number => parts.reduce((t, x) => t + x[key], 0);
    const l = r.layers.find((x) => x.name === b.name || x.name === `${b.name}/pointwise`);
    rows.push([
      b.name,
      b.className,
      l ? `${l.unitsBefore} -> ${l.unitsAfter}` : '',
      `${b.params} -> ${sum('params')}`,
      `${b.nonzeros} -> ${sum('nonzeros')}`,
      `${count(b.macs)} -> ${count(sum('macs'))}`,
    ]);
  }
  rows.push([
    'total',
    '',
    '',
    `${r.before.params} -> ${r.after.params}`,
    `${r.before.nonzeros} -> ${r.after.nonzeros}`,
    `${count(r.before.macs)} -> ${count(r.after.macs)}`,
  ]);
  const widths = rows[0].map((_, c) => Math.max(...rows.map((x) => x[c].length)));
  const lines = rows.map((x) =>
    x
      .map((cell, c) => (c < 2 ? cell.padEnd(widths[c]) : cell.padStart(widths[c])))
      .join('  ')
      .trimEnd(),
  );
  lines.push(
    `compression ${(100 * r.compression).toFixed(2)}% (params ${r.paramsBefore} -> ${r.paramsAfter} without all-zero groups), ` +
      (Number.isNaN(r.macsSpeedup)
        ? `MACs unknown: ${unknownMacs(r.layersBefore.filter((l) => l.params)) ?? unknownMacs(r.layersAfter.filter((l) => l.params)) ?? 'see the layers'}`
        : `MACs ${r.before.macs} -> ${r.after.nonzeroMacs} non-zero (${r.macsSpeedup.toFixed(2)}x fewer)`),
  );
  for (const w of r.warnings) lines.push(`note: ${w}`);
  return lines.join('\n');
}

/**
 * The warnings for the dead units of layer `l` that had to stay: one per reason, naming the units
 * (the constant each emits is in {@link LayerPruneResult.keptConstant}).
 */
function keptWarnings(l: LayerPruneResult): string[] {
  const byReason = new Map<string, LayerPruneResult['keptConstant']>();
  for (const k of l.keptConstant) {
    const same = byReason.get(k.reason);
    if (same) same.push(k);
    else byReason.set(k.reason, [k]);
  }
  const placeholder = l.placeholders.map(
    (k) =>
      `${l.className} '${l.name}' unit ${k.unit} was kept as a placeholder with zero weights, which the Dense ` +
      `and Conv2D layers after it read with zero weights: ${k.reason}`,
  );
  return placeholder.concat(
    [...byReason].map(([reason, ks]) =>
      ks.length === 1
        ? `${l.className} '${l.name}' unit ${ks[0].unit} is dead (emits the constant ${ks[0].value}) but was kept: ${reason}`
        : `${l.className} '${l.name}' units ${ks.map((k) => k.unit).join(', ')} (${ks.length} of ${l.unitsBefore}) ` +
          `are dead (each emits a constant) but were kept: ${reason}`,
    ),
  );
}

/**
 * Removes dead units exactly. Decomposed layers are folded first, nested models unnested (their
 * layers named by path, `block/fc`), and each SeparableConv2D of dilation rate 1 split into the
 * DepthwiseConv2D (`sep/depthwise`, its depthMultiplier) and 1x1 Conv2D (`sep/pointwise`) it computes; then every Dense neuron and
 * Conv2D (Conv1D, Conv3D, Conv2DTranspose) filter whose output is constant (its kernel slice is zero) or unused (no live unit
 * of any consumer reads it) is removed, together with the matching inputs of every consumer
 * (Dense rows, Conv2D input channels, BatchNormalization entries, Flatten positions in NHWC
 * order), and the constant it emitted is folded into the consumers' biases. Dead 2-D kernels stay
 * as exact zeros. The input model is not modified.
 *
 * A layer whose every unit is dead or unused keeps one as a placeholder with zero weights when a
 * model output after it still depends on the input (a residual branch that died whole, beside
 * the identity input of its Add): see {@link LayerPruneResult.placeholders}.
 *
 * Throws, naming the layer, when a layer type is unknown (unless `unknownLayers: 'keep'`) or when
 * a whole layer would disappear and no model output after it depends on the input any more (a
 * {@link DisconnectedModelError}, whose fields name the layer); for a model holding a NaN or an
 * infinity (a {@link NonFiniteWeightError}, `caller` `'surgery'`, as `analyze` throws it); and
 * for options that are not an object, hold a key other than `threshold` and `unknownLayers`
 * (naming it and the key it likely misspells), or a bad value.
 *
 * ```ts
 * const { model: pruned, report } = prune(model);
 * console.log(`${report.before.params} -> ${report.after.params} parameters`);
 * console.log(formatAnalysis({ layers: report.layersAfter, total: report.after }));
 * ```
 */
export function prune(model: tfl.LayersModel, options: PruneOptions = {}): PruneResult {
  checkModel(model, 'prune');
  checkOptions(options, PRUNE_OPTIONS, "{ threshold: 0.001, unknownLayers: 'keep' }", 'prune');
  const threshold = checkThreshold(options.threshold, 'prune');
  const unknownLayers = options.unknownLayers ?? 'refuse';
  if (unknownLayers !== 'refuse' && unknownLayers !== 'keep')
    throw new Error(
      `prune: unknownLayers must be 'refuse' or 'keep', got ${JSON.stringify(unknownLayers) ?? String(unknownLayers)}`,
    );
  return withPrunable(model, (plain, folded) => {
    const p = plan(buildGraph(plain), threshold, unknownLayers);
    const { model: pruned, layers, weights, droppedConstraints } = rebuild(plain, p);
    // Count from the host copies surgery already holds instead of reading every weight back.
    const callsBefore = callsOf(plain);
    const flatBefore = plain.layers.map((l) =>
      analyzeLayer(
        l,
        threshold,
        p.graph.byName.get(l.name) && p.states[p.graph.byName.get(l.name)!.index].weights,
        callsBefore(l),
      ),
    );
    // Unnested, the rows are analyze's: by path in the model's order, with the nested models'
    // input layers, and the layers that only an output of a nested model that nothing reads
    // comes from (not in the unnested copy, as they compute nothing the model outputs).
    const byPath = new Map(flatBefore.map((l) => [l.name, l]));
    const layersBefore =
      plain === folded
        ? flatBefore
        : layerCalls(folded).map(
            ({ path, layer, calls }) =>
              byPath.get(path) ?? { ...analyzeLayer(layer, threshold, undefined, calls), name: path },
          );
    const callsAfter = callsOf(pruned);
    const layersAfter = pruned.layers.map((l) =>
      analyzeLayer(l, 0, weights.get(l.name) ?? [], callsAfter(l)),
    );
    const before = totals(layersBefore);
    const after = totals(layersAfter);
    const paramsAfter = after.params - after.zeroGroupParams;
    const keptWhole = p.states
      .filter((s) => s.handler.unknown)
      .map((s) => ({ name: s.node.name, className: s.node.className }));
    const warnings: string[] = [];
    for (const k of keptWhole)
      warnings.push(
        `${k.className} '${k.name}' was kept whole (unknownLayers: 'keep'): surgery does not know its class, ` +
          'so every channel it reads was kept',
      );
    for (const l of layers) warnings.push(...keptWarnings(l));
    for (const d of droppedConstraints) warnings.push(droppedConstraintWarning(d, 'pruned'));
    // An output left constant (a dead branch that also fed it, or all-zero weights of its own) is
    // not refused while another output still varies: it is said.
    for (const o of p.graph.outputs) {
      const s = p.states[o];
      if (s.consts.length && s.consts.every((k) => !Number.isNaN(k)))
        warnings.push(`model output '${s.node.name}' is constant: it no longer depends on the input`);
    }
    const base = {
      before,
      after,
      layersBefore,
      layersAfter,
      layers,
      paramsBefore: before.params,
      paramsAfter,
      compression: before.params ? 1 - paramsAfter / before.params : 0,
      macsSpeedup: Number.isNaN(before.macs + after.nonzeroMacs)
        ? NaN
        : after.nonzeroMacs
          ? before.macs / after.nonzeroMacs
          : Infinity,
      keptWhole,
      warnings,
      iterations: p.iterations,
    };
    return { model: pruned, report: { ...base, table: () => formatReport(base) } };
  });
}
