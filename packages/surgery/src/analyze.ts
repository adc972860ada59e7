// Counting: parameters, non-zeros, multiply-accumulates and live/dead groups.
import * as tfl from '@tensorflow/tfjs-layers';
import { elementCount, readWeights, weightNamed, type HostWeight } from './handlers.js';
import { atPath, checkModel, checkOptions, checkThreshold, withFolded } from './folding.js';
import { describeValue, ownCalls } from '@normprune/layers';
import { nestedResolver, shapeResolver, type ShapeResolver, type Source } from './shapes.js';

/** Live and dead groups of one kind in one layer. */
export interface GroupCount {
  /**
   * The group granularity of `@normprune/layers`: 'output' (Dense column: the weights into
   * one output unit), 'input' (Dense row: the weights out of one input feature), 'filter'
   * (Conv2D [:, :, :, o]; DepthwiseConv2D [:, :, c, :], an input channel's kernels) or 'kernel'
   * (Conv2D 2-D kernel [:, :, i, o]; DepthwiseConv2D per-channel kernel [:, :, c, j]). Every
   * Dense layer gets both Dense kinds and every Conv2D (and DepthwiseConv2D) both Conv2D kinds,
   * whatever granularity it was trained with. Conv1D and Conv3D
   * get the same two kinds, with 1-D and 3-D kernels, and Conv2DTranspose them too (its filter
   * `[:, :, o, :]`, its 2-D kernel `[:, :, o, i]`). A SeparableConv2D gets both kinds for each
   * of its kernels, told apart by `part`: its depthwise kernel's as a DepthwiseConv2D's, its
   * pointwise kernel's as a 1x1 Conv2D's (each 'kernel' group a single weight).
   */
  kind: 'output' | 'input' | 'filter' | 'kernel';
  /** Which kernel of a SeparableConv2D the groups are in; absent for the other layers. */
  part?: 'depthwise' | 'pointwise';
  /** Groups of this kind in the layer. */
  total: number;
  /** Groups whose weights are all zero (|w| <= threshold). */
  dead: number;
}

/** Counts for one layer (or the whole model). */
export interface Counts {
  /** Every weight of the layer: kernel, bias, and BatchNormalization's 4 vectors. */
  params: number;
  /** Weights that are not exactly zero (|w| > threshold). */
  nonzeros: number;
  /**
   * Multiply-accumulates per sample of the kernels: Dense `in * units` (times positions when
   * applied to a sequence or image), Conv2D `kh * kw * cin * cout * outH * outW` (Conv1D and
   * Conv3D alike), DepthwiseConv2D `kh * kw * channels * outH * outW`, SeparableConv2D its
   * depthwise plus its pointwise kernel times `outH * outW`, Conv2DTranspose
   * `kh * kw * cin * cout * inH * inW`. Bias adds, BatchNormalization, activations and
   * pooling are not counted. A layer the model applies more than once (shared, or in a nested
   * model called twice) counts once per call. NaN when the layer's output size is unknown (a model built
   * for inputs of any height and width): build it with a fixed input shape to count MACs (a size
   * tfjs leaves unknown that the input shape fixes, after a Reshape's -1, is worked out and counted,
   * and a nested model's layers at the sizes its call reads, a model built for any size included);
   * NaN too for any other layer with a kernel (recurrent layers, wrappers), which analyze
   * cannot count.
   */
  macs: number;
  /**
   * The MACs a sparse kernel would do: non-zero kernel weights times output positions (input
   * positions for a Conv2DTranspose).
   */
  nonzeroMacs: number;
  /**
   * Kernel weights lying in an all-zero group: a Conv2D (or Conv2DTranspose) 2-D kernel, or a Dense row or column
   * (each weight counted once). These are what pruning keeps as exact zeros.
   */
  zeroGroupParams: number;
}

/** Counts and groups of one layer. */
export interface LayerAnalysis extends Counts {
  /** Layer name; a layer inside a nested model (a model used as a layer) is named by its path, `inner/dense`. */
  name: string;
  /** Layer class ('Dense', 'Conv2D', 'BatchNormalization', ...). */
  className: string;
  /** Empty for layers without prunable groups. */
  groups: GroupCount[];
}

/** The result of {@link analyze}. */
export interface ModelAnalysis {
  /** One entry per layer, in model order. */
  layers: LayerAnalysis[];
  /** Sums over all layers. */
  total: Counts;
  /** A fixed-width text table, one row per layer with weights plus a total row. */
  table(): string;
}

/** Options of {@link analyze}. */
export interface AnalyzeOptions {
  /** Weights with |w| <= threshold count as zero. Default 0. */
  threshold?: number;
}

// Layers whose kernel [...spatial, cin, cout] is applied at every output position: one MAC per
// kernel weight per position, groups over the last two axes.
const POSITIONAL = new Set(['Dense', 'Conv1D', 'Conv2D', 'Conv3D']);

// A Conv2DTranspose's kernel is [kh, kw, cout, cin] (its last two axes swapped), and every
// kernel weight scatters each input position once: MACs per input position, groups as a Conv2D's.
const TRANSPOSED = 'Conv2DTranspose';

/** Product of the known sizes; NaN when one is unknown (a model built for inputs of any size). */
function positionsOf(shape: (number | null)[]): number {
  return shape.slice(1, -1).reduce<number>((a, b) => a * (b ?? NaN), 1);
}

/**
 * One application of a layer in the model analysed: its output shape and its (first) input
 * shape, read only when needed (a shared layer's `outputShape` throws when its calls differ).
 */
export interface LayerCall {
  output(): (number | null)[];
  input(): (number | null)[] | undefined;
}

/** The first shape of a node's shapes (one per tensor), or the shape itself. */
function firstShape(s: unknown): (number | null)[] | undefined {
  if (!Array.isArray(s)) return undefined;
  return (Array.isArray(s[0]) ? s[0] : s) as (number | null)[];
}

/** A call's output and (first) input shapes, sizes tfjs leaves unknown resolved where the model fixes them. */
function callOf(layer: tfl.layers.Layer, i: number, resolve: ShapeResolver): LayerCall {
  const node = layer.inboundNodes[i];
  return {
    output: () => {
      const t = node?.outputTensors?.[0];
      return t ? resolve(t) : (firstShape(node?.outputShapes) ?? (layer.outputShape as (number | null)[]));
    },
    input: () => {
      const t = node?.inputTensors?.[0];
      return t ? resolve(t) : firstShape(node?.inputShapes);
    },
  };
}

/** One call of `layer` read from the layer itself (its only call, as prune's models have). */
function singleCall(layer: tfl.layers.Layer, resolve: ShapeResolver = shapeResolver()): LayerCall {
  if (!layer.inboundNodes.length)
    return { output: () => layer.outputShape as (number | null)[], input: () => undefined };
  return callOf(layer, 0, resolve);
}

/** Sum of `f` over the calls of a layer: MACs are per sample, and a shared layer runs once per call. */
function sumOver(calls: LayerCall[], f: (c: LayerCall) => number): number {
  return calls.reduce((a, c) => a + f(c), 0);
}

/**
 * The calls of each layer that `model`'s own graph makes (a layer shared by two branches, or
 * applied to two inputs, runs twice per sample; a call belonging to another model built on the
 * same layer does not count). A layer the graph does not reach gives its single call.
 */
export function callsOf(
  model: tfl.LayersModel,
  resolve: ShapeResolver = shapeResolver(),
): (layer: tfl.layers.Layer) => LayerCall[] {
  const own = ownCalls(model);
  return (layer) => {
    const calls = (own.get(layer) ?? []).map((i) => callOf(layer, i, resolve));
    return calls.length ? calls : [singleCall(layer, resolve)];
  };
}

/**
 * Every layer of `model` with its path (as `layerPaths` of @normprune/layers names it) and its
 * calls per sample: a layer of a nested model runs once per call of that model, at the shapes that
 * call reads (`resolvers`: one per call of `model` itself).
 */
export function layerCalls(
  model: tfl.LayersModel,
  prefix = '',
  resolvers: ShapeResolver[] = [shapeResolver()],
): { path: string; layer: tfl.layers.Layer; calls: LayerCall[] }[] {
  const own = ownCalls(model);
  const callsIn = resolvers.map((resolve) => callsOf(model, resolve));
  return model.layers.flatMap((layer) => {
    if (!(layer instanceof tfl.LayersModel))
      return [{ path: prefix + layer.name, layer, calls: callsIn.flatMap((calls) => calls(layer)) }];
    // A call of it the graph does not make (a model nothing reads) counts once, at its declared shapes.
    const nodes = own.get(layer) ?? [];
    const inner = resolvers.flatMap((resolve) =>
      nodes.length
        ? nodes.map((i) =>
            nestedResolver(
              layer,
              (layer.inboundNodes[i].inputTensors as unknown as Source[]).map(resolve),
              resolve,
            ),
          )
        : [resolve],
    );
    return layerCalls(layer, `${prefix}${layer.name}/`, inner);
  });
}

/**
 * The 2-D kernels of `kernel` (one per entry of its last two axes, `rows x cols`, each of `K`
 * weights): its non-zero weights (|w| > threshold), the rows and columns all of whose kernels are
 * zero, and the all-zero kernels.
 */
function kernelStats(
  kernel: HostWeight,
  threshold: number,
): {
  rows: number;
  cols: number;
  K: number;
  nonzeros: number;
  deadRows: number;
  deadCols: number;
  deadKernels: number;
} {
  const s = kernel.shape;
  // The kernel's last two axes, in its own order: [cin, cout], or [cout, cin] when transposed.
  const rows = s[s.length - 2];
  const cols = s[s.length - 1];
  const K = elementCount(s.slice(0, -2));
  // Per 2-D kernel (row, col of the last two axes): does it hold a non-zero, and how many?
  const cc = rows * cols;
  const nzCount = new Int32Array(cc);
  const kv = kernel.values;
  for (let k = 0; k < K; k++) {
    const base = k * cc;
    for (let q = 0; q < cc; q++) if (Math.abs(kv[base + q]) > threshold) nzCount[q]++;
  }
  let kernelNonzeros = 0;
  const rowLive = new Uint8Array(rows);
  const colLive = new Uint8Array(cols);
  let deadKernels = 0;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const n = nzCount[r * cols + c];
      kernelNonzeros += n;
      if (n) {
        rowLive[r] = 1;
        colLive[c] = 1;
      } else deadKernels++;
    }
  }
  const deadRows = rows - rowLive.reduce((a, b) => a + b, 0);
  const deadCols = cols - colLive.reduce((a, b) => a + b, 0);
  return { rows, cols, K, nonzeros: kernelNonzeros, deadRows, deadCols, deadKernels };
}

/**
 * Counts of one plain layer. Dense, Conv1D/2D/3D, Conv2DTranspose, DepthwiseConv2D and
 * SeparableConv2D get MACs and groups. Any other layer with a kernel (recurrent
 * layers, wrappers) gets unknown (NaN) MACs: its weights do multiply-accumulate, and 0 would
 * be wrong.
 */
export function analyzeLayer(
  layer: tfl.layers.Layer,
  threshold = 0,
  weights?: HostWeight[],
  calls: LayerCall[] = [singleCall(layer)],
): LayerAnalysis {
  const ws = weights ?? readWeights(layer);
  const className = layer.getClassName();
  const transposed = className === TRANSPOSED;
  const kernel =
    POSITIONAL.has(className) || transposed
      ? weightNamed(ws, 'kernel')
      : className === 'DepthwiseConv2D'
        ? weightNamed(ws, 'depthwise_kernel')
        : undefined;
  let params = 0;
  let nonzeros = 0;
  for (const w of ws) {
    const v = w.values;
    params += v.length;
    if (w === kernel) continue; // counted below, in the same pass as its groups
    for (let i = 0; i < v.length; i++) if (Math.abs(v[i]) > threshold) nonzeros++;
  }
  const out: LayerAnalysis = {
    name: layer.name,
    className,
    params,
    nonzeros,
    macs: 0,
    nonzeroMacs: 0,
    zeroGroupParams: 0,
    groups: [],
  };
  if (!kernel) {
    if (className === 'SeparableConv2D') {
      // A depthwise then a 1x1 pointwise convolution, both at every output position.
      const positions = sumOver(calls, (c) => positionsOf(c.output()));
      const parts = ['depthwise_kernel', 'pointwise_kernel'].map((n) => weightNamed(ws, n)!);
      out.macs = parts.reduce((a, w) => a + w.values.length, 0) * positions;
      // The groups magnitudes() counts for a DecomposedSeparableConv2D: its depthwise kernel's as a
      // DepthwiseConv2D's (input channels, 2-D kernels), its pointwise kernel's as a 1x1 Conv2D's
      // (output filters, single weights).
      const [dw, pw] = parts.map((w) => kernelStats(w, threshold));
      out.nonzeroMacs = (dw.nonzeros + pw.nonzeros) * positions;
      out.groups = [
        { kind: 'filter', part: 'depthwise', total: dw.rows, dead: dw.deadRows },
        { kind: 'kernel', part: 'depthwise', total: dw.rows * dw.cols, dead: dw.deadKernels },
        { kind: 'filter', part: 'pointwise', total: pw.cols, dead: pw.deadCols },
        { kind: 'kernel', part: 'pointwise', total: pw.rows * pw.cols, dead: pw.deadKernels },
      ];
      out.zeroGroupParams = dw.K * dw.deadKernels + pw.K * pw.deadKernels;
    } else if (ws.some((w) => /kernel$/.test(w.name))) {
      out.macs = NaN;
      out.nonzeroMacs = NaN;
    }
    return out;
  }
  const {
    rows,
    cols,
    K,
    nonzeros: kernelNonzeros,
    deadRows: deadRowsOwn,
    deadCols: deadColsOwn,
    deadKernels,
  } = kernelStats(kernel, threshold);
  const [cin, cout] = transposed ? [cols, rows] : [rows, cols];
  // An unknown spatial size (an input of [null, null, 3]) leaves the MACs unknown: NaN, not 1 position.
  const positions = sumOver(calls, (c) => {
    if (!transposed) return positionsOf(c.output());
    const inShape = c.input();
    return inShape ? positionsOf(inShape) : NaN;
  });
  out.nonzeros += kernelNonzeros;
  out.macs = K * cin * cout * positions;
  out.nonzeroMacs = kernelNonzeros * positions;
  // Dead units (outputs) and dead inputs, whichever axis holds them.
  const [deadRows, deadCols] = transposed ? [deadColsOwn, deadRowsOwn] : [deadRowsOwn, deadColsOwn];
  if (className === 'Dense') {
    out.groups = [
      { kind: 'output', total: cout, dead: deadCols },
      { kind: 'input', total: cin, dead: deadRows },
    ];
    // Weights in a zero row or a zero column, counted once.
    out.zeroGroupParams = K * (deadRows * cout + deadCols * cin - deadRows * deadCols);
  } else if (className === 'DepthwiseConv2D') {
    // kernel [kh, kw, channels, multiplier]: one 2-D kernel per (channel, multiplier), and a
    // channel's multiplier kernels, the 'filter' group of a DecomposedDepthwiseConv2D.
    out.groups = [
      { kind: 'filter', total: rows, dead: deadRowsOwn },
      { kind: 'kernel', total: cin * cout, dead: deadKernels },
    ];
    out.zeroGroupParams = K * deadKernels;
  } else {
    out.groups = [
      { kind: 'filter', total: cout, dead: deadCols },
      { kind: 'kernel', total: cin * cout, dead: deadKernels },
    ];
    out.zeroGroupParams = K * deadKernels;
  }
  return out;
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padEnd(n) : s.padStart(n);
}

/** A count; unknown MACs are NaN, or null in a result read back from JSON. */
function fmt(n: number | null): string {
  return typeof n === 'number' && !Number.isNaN(n) ? n.toLocaleString('en-US') : 'unknown';
}

// Classes whose MACs analyze counts: unknown for one of them only when its output size is.
const COUNTED = new Set([...POSITIONAL, 'DepthwiseConv2D', 'SeparableConv2D', 'Conv2DTranspose']);

/**
 * Why some of `layers`' MACs are unknown (NaN, or null read back from JSON), in words naming
 * them; undefined when every layer's are known.
 */
export function unknownMacs(layers: LayerAnalysis[]): string | undefined {
  const seen = new Set<string>();
  // Each layer once (a pruned model's layer has its name before).
  const unknown = layers.filter((l) => {
    if ((typeof l.macs === 'number' && !Number.isNaN(l.macs)) || seen.has(l.name)) return false;
    seen.add(l.name);
    return true;
  });
  if (!unknown.length) return undefined;
  const names = (ls: LayerAnalysis[]) => ls.map((l) => `'${l.name}' (${l.className})`).join(', ');
  const size = unknown.filter((l) => COUNTED.has(l.className));
  const other = unknown.filter((l) => !COUNTED.has(l.className));
  return [
    size.length
      ? `the output size of ${names(size)} is not fixed by the model's input shape (build the model for a fixed input size to count them)`
      : '',
    other.length ? `analyze does not count the MACs of ${names(other)}` : '',
  ]
    .filter(Boolean)
    .join('; ');
}

/**
 * Formats an analysis as a text table, then a note naming the layers whose MACs are unknown.
 * Anything but `{ layers: [...], total: {...} }` (the JSON string of one, a prune report, whose
 * counts are `layersBefore` / `before` and `layersAfter` / `after`) is a `TypeError` saying what
 * to pass.
 */
export function formatAnalysis(a: { layers: LayerAnalysis[]; total: Counts }): string {
  checkAnalysis(a);
  const rows: string[][] = [
    ['layer', 'class', 'params', 'nonzeros', 'MACs', 'nonzero MACs', 'groups live/total'],
  ];
  for (const l of a.layers) {
    if (!l.params) continue;
    const groups = l.groups
      .map((g) => `${g.part ? `${g.part} ` : ''}${g.kind}s ${g.total - g.dead}/${g.total}`)
      .join(', ');
    rows.push([l.name, l.className, fmt(l.params), fmt(l.nonzeros), fmt(l.macs), fmt(l.nonzeroMacs), groups]);
  }
  const t = a.total;
  rows.push(['total', '', fmt(t.params), fmt(t.nonzeros), fmt(t.macs), fmt(t.nonzeroMacs), '']);
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const why = unknownMacs(a.layers.filter((l) => l.params));
  return rows
    .map((r) =>
      r
        .map((cell, c) => pad(cell, widths[c], c < 2 || c === 6))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
    .concat(why ? `\nMACs unknown: ${why}` : '');
}

/** formatAnalysis's argument check: without it, tfjs-free code failed with "a.layers is not iterable". */
function checkAnalysis(a: unknown): void {
  const o = a as { layers?: unknown; total?: unknown; layersAfter?: unknown } | null;
  if (
    typeof o === 'object' &&
    o !== null &&
    Array.isArray(o.layers) &&
    typeof o.total === 'object' &&
    o.total
  )
    return;
  const hint =
    typeof a === 'string'
      ? ': JSON.parse it first'
      : typeof o === 'object' && o !== null && Array.isArray(o.layersAfter)
        ? ': for a prune report, formatAnalysis({ layers: report.layersAfter, total: report.after }) ' +
          '(or layersBefore and before)'
        : '';
  throw new TypeError(
    `formatAnalysis: expected an analysis { layers, total } as analyze(model) returns it (or read back from JSON), ` +
      `got ${describeValue(a)}${hint}`,
  );
}

/** Sums per-layer counts. */
export function totals(layers: Counts[]): Counts {
  const t: Counts = { params: 0, nonzeros: 0, macs: 0, nonzeroMacs: 0, zeroGroupParams: 0 };
  for (const l of layers) {
    t.params += l.params;
    t.nonzeros += l.nonzeros;
    t.macs += l.macs;
    t.nonzeroMacs += l.nonzeroMacs;
    t.zeroGroupParams += l.zeroGroupParams;
  }
  return t;
}

/**
 * Parameters, non-zeros, MACs per sample and live/dead groups, per layer and in total.
 * Decomposed layers are counted as the plain layer they fold into (`W = g * V / ||V||`):
 * the magnitude is a training-time reparametrisation, not part of the deployed model.
 * Throws for options that are not an object, hold a key other than `threshold` (naming it),
 * or a bad threshold; and a {@link NonFiniteWeightError} (`caller` `'surgery'`), naming the layer
 * (by path in a nested model, `block/fc`, as its row is named), the weight and its first such entry, for a model holding a NaN or an infinity, of which no
 * weight can be told zero or not.
 */
export function analyze(model: tfl.LayersModel, options: AnalyzeOptions = {}): ModelAnalysis {
  checkModel(model, 'analyze');
  checkOptions(options, ['threshold'], '{ threshold: 0.001 }', 'analyze');
  const threshold = checkThreshold(options.threshold, 'analyze');
  return withFolded(model, (plain) => {
    const layers = layerCalls(plain).map(({ path, layer, calls }) => {
      try {
        return { ...analyzeLayer(layer, threshold, undefined, calls), name: path };
      } catch (e) {
        // A NaN in a nested model's layer: named by path, as its row is.
        throw atPath(e, path);
      }
    });
    const result = { layers, total: totals(layers) };
    return { ...result, table: () => formatAnalysis(result) };
  });
}
