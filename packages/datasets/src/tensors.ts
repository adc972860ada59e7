import * as tf from '@tensorflow/tfjs-core';
import { DatasetError, shown } from './errors.js';
import { checkBoolean, checkKeys } from './options.js';
import { mulberry32, permutation } from './random.js';
import { checkSplit, computeStats } from './split.js';
import type {
  AugmentOptions,
  Batch,
  BatchesOptions,
  Normalize,
  Split,
  SplitTensors,
  Stats,
  ToTensorsOptions,
} from './types.js';

function numClassesOf(split: Split): number {
  if (split.numClasses !== undefined) return split.numClasses;
  let max = 0;
  for (let i = 0; i < split.count; i++) if (split.labels[i] > max) max = split.labels[i];
  return max + 1;
}

/** Largest padding `augment` takes: half a CIFAR image; more would crop mostly zeros. */
const MAX_PADDING = 16;
const NORMALIZE: Normalize[] = ['unit', 'standardize'];
const AUGMENT_KEYS = ['padding', 'flip'] as const;
const TO_TENSORS_KEYS = ['normalize', 'stats', 'oneHot', 'labelDtype'] as const;
const BATCHES_KEYS = [
  'batchSize',
  'shuffle',
  'seed',
  'augment',
  'normalize',
  'stats',
  'oneHot',
  'labelDtype',
  'dropRemainder',
  'start',
] as const;
/** Names from other libraries a user may reach for (squashed: lower case, no `_` or `-`). */
const TENSOR_SYNONYMS: Record<string, string[]> = {
  normalization: ['normalize'],
  standardize: ['normalize'],
  categorical: ['oneHot'],
  onehotlabels: ['oneHot'],
  batch: ['batchSize'],
  droplast: ['dropRemainder'],
  randomseed: ['seed'],
  augmentation: ['augment'],
  skip: ['start'],
  skipbatches: ['start'],
  startbatch: ['start'],
  initialbatch: ['start'],
  firstbatch: ['start'],
  dtype: ['labelDtype'],
  labelsdtype: ['labelDtype'],
  ydtype: ['labelDtype'],
};

/**
 * One-hot depth of a split, with every label checked against it: a label >=
 * depth would otherwise set a 1 in the next row's first columns.
 */
function oneHotDepth(split: Split): number {
  if (split.numClasses === undefined && split.count === 0) {
    throw new DatasetError('invalid-argument', {
      message:
        "an empty split without numClasses has no one-hot depth (it comes from the largest label + 1); set split.numClasses, e.g. to the training split's",
      found: 'count 0, numClasses undefined',
    });
  }
  const depth = numClassesOf(split);
  if (!Number.isInteger(depth) || depth <= 0) {
    throw new DatasetError('invalid-argument', {
      message: 'split.numClasses must be a positive integer (the one-hot depth)',
      found: depth,
    });
  }
  labelsBelow(split, depth, `one-hot encoding has depth ${depth} (split.numClasses)`);
  return depth;
}

/**
 * Refuses a label >= `depth` (`what` says where the depth comes from). Integer labels are
 * checked too when the split gives numClasses: a class index past it trains a model's
 * sparse cross-entropy on a class the model has no output for, silently.
 */
function labelsBelow(split: Split, depth: number, what: string): void {
  for (let i = 0; i < split.count; i++) {
    if (split.labels[i] >= depth) {
      throw new DatasetError('label-out-of-range', {
        message: `label #${i} is ${split.labels[i]}, but ${what}; fix the label or numClasses`,
        expected: `0..${depth - 1}`,
        found: split.labels[i],
      });
    }
  }
}

function checkNormalize(normalize: unknown): Normalize {
  if (normalize === undefined) return 'unit';
  if (!NORMALIZE.includes(normalize as Normalize)) {
    throw new DatasetError('invalid-argument', {
      message: "normalize must be 'unit' or 'standardize'",
      expected: NORMALIZE.map((n) => `'${n}'`).join(' or '),
      found: JSON.stringify(normalize),
    });
  }
  return normalize as Normalize;
}

/** `augment` as padding and flip, or undefined when off; refuses what would silently do something else. */
function augmentOf(augment: unknown): { pad: number; flip: boolean } | undefined {
  if (augment === undefined || augment === false) return undefined;
  if (augment === true) return { pad: 4, flip: true };
  if (augment === null || typeof augment !== 'object' || Array.isArray(augment)) {
    throw new DatasetError('invalid-argument', {
      message: 'augment must be true, false or { padding?, flip? }',
      found: JSON.stringify(augment),
    });
  }
  checkKeys(augment, AUGMENT_KEYS, 'augment', { crop: ['padding'], hflip: ['flip'], mirror: ['flip'] });
  const { padding = 4, flip = true } = augment as AugmentOptions;
  if (!Number.isInteger(padding) || padding < 0 || padding > MAX_PADDING) {
    throw new DatasetError('invalid-argument', {
      message: `augment.padding must be an integer from 0 (no crop) to ${MAX_PADDING} pixels`,
      expected: `0..${MAX_PADDING}`,
      found: typeof padding === 'number' ? String(padding) : JSON.stringify(padding),
    });
  }
  return { pad: padding, flip: checkBoolean(flip, 'augment.flip') ?? true };
}

/** Per-channel affine map byte -> float as a 256-entry table per channel: one lookup per pixel. */
function lookupTables(c: number, normalize: Normalize, stats: Stats | undefined): Float32Array[] {
  const tables: Float32Array[] = [];
  for (let k = 0; k < c; k++) {
    const t = new Float32Array(256);
    const mean = normalize === 'standardize' ? stats!.mean[k] : 0;
    const std = normalize === 'standardize' ? stats!.std[k] || 1 : 1;
    for (let v = 0; v < 256; v++) t[v] = (v / 255 - mean) / std;
    tables.push(t);
  }
  return tables;
}

/**
 * `stats` must hold one finite mean and one finite std >= 0 per channel (a
 * std of 0, a constant channel, divides by 1); anything else would turn every
 * pixel into NaN or flip its sign without a word.
 */
function checkStats(stats: Stats, c: number): void {
  const show = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v) : String(v));
  const s = stats as unknown as { mean?: unknown; std?: unknown } | null;
  if (typeof s !== 'object' || s === null || !Array.isArray(s.mean) || !Array.isArray(s.std)) {
    throw new DatasetError('invalid-argument', {
      message:
        'stats must be { mean: number[], std: number[] } with one entry per channel (computeStats(train) gives it)',
      found: JSON.stringify(stats),
    });
  }
  if (s.mean.length !== c || s.std.length !== c) {
    throw new DatasetError('invalid-argument', {
      message: 'stats must have one mean and one std per channel',
      expected: c,
      found: `${s.mean.length}/${s.std.length}`,
    });
  }
  for (let k = 0; k < c; k++) {
    const [m, d] = [s.mean[k], s.std[k]];
    if (
      typeof m !== 'number' ||
      !Number.isFinite(m) ||
      typeof d !== 'number' ||
      !Number.isFinite(d) ||
      d < 0
    ) {
      throw new DatasetError('invalid-argument', {
        message: `stats for channel ${k} must be a finite mean and a finite std >= 0`,
        found: `mean ${show(m)}, std ${show(d)}`,
      });
    }
  }
}

/** `labelDtype`, checked against `oneHot`: class indices as int32 (the default) or float32. */
function checkLabelDtype(labelDtype: unknown, oneHot: boolean): 'int32' | 'float32' {
  if (labelDtype === undefined) return oneHot ? 'float32' : 'int32';
  if (labelDtype !== 'int32' && labelDtype !== 'float32')
    throw new DatasetError('invalid-argument', {
      message:
        "labelDtype must be 'int32' or 'float32' ('float32' for tfjs-layers' sparseCategoricalCrossentropy)",
      found: String(shown(labelDtype)),
    });
  if (oneHot && labelDtype === 'int32')
    throw new DatasetError('invalid-argument', {
      message: "labelDtype 'int32' with oneHot: true: one-hot labels are float32; drop labelDtype",
      found: "labelDtype 'int32', oneHot true",
    });
  return labelDtype;
}

function labelsTensor(
  split: Split,
  indices: ArrayLike<number>,
  oneHot: boolean,
  depth: number,
  dtype: 'int32' | 'float32' = 'int32',
): tf.Tensor {
  const n = indices.length;
  if (!oneHot) {
    const y = dtype === 'float32' ? new Float32Array(n) : new Int32Array(n);
    for (let i = 0; i < n; i++) y[i] = split.labels[indices[i]];
    return tf.tensor1d(y, dtype);
  }
  const y = new Float32Array(n * depth);
  for (let i = 0; i < n; i++) y[i * depth + split.labels[indices[i]]] = 1;
  return tf.tensor2d(y, [n, depth], 'float32');
}

/**
 * One image's random augmentation: its crop offsets and whether it is
 * mirrored, in the order they are drawn from `rand` (dy, dx when `pad > 0`,
 * then the flip when `flip`). {@link augmentInto} applies them and
 * `batches`' `start` draws them for the images it skips, so both consume the
 * stream alike.
 */
function augmentDraws(
  pad: number,
  flip: boolean,
  rand: () => number,
): { dy: number; dx: number; mirror: boolean } {
  const dy = pad > 0 ? Math.floor(rand() * (2 * pad + 1)) - pad : 0;
  const dx = pad > 0 ? Math.floor(rand() * (2 * pad + 1)) - pad : 0;
  const mirror = flip && rand() < 0.5;
  return { dy, dx, mirror };
}

/**
 * Writes one image into `out` at `base` through a random crop of its
 * zero-padded version and an optional horizontal flip (the usual CIFAR
 * augmentation), each byte mapped through its channel's table: a pixel of
 * the padding gets the table's entry for byte 0, as the zero byte it stands
 * for. Row by row, each row's part inside the image in one loop, with no
 * test per pixel and no scratch copy of the bytes.
 */
function augmentInto(
  src: Uint8Array,
  srcOff: number,
  out: Float32Array,
  base: number,
  shape: readonly [number, number, number],
  tables: Float32Array[],
  draw: { dy: number; dx: number; mirror: boolean },
): void {
  const [h, w, c] = shape;
  const { dy, dx, mirror } = draw;
  const row = w * c;
  // The output columns whose source column lies inside the image: x + dx, or w - 1 - x + dx
  // when mirrored, in [0, w).
  const x0 = mirror ? Math.max(0, dx) : Math.max(0, -dx);
  const x1 = mirror ? Math.min(w, w + dx) : Math.min(w, w - dx);
  for (let y = 0; y < h; y++) {
    const o = base + y * row;
    const sy = y + dy;
    if (sy < 0 || sy >= h || x0 >= x1) {
      for (let k = 0; k < c; k++) {
        const zero = tables[k][0];
        for (let j = k; j < row; j += c) out[o + j] = zero;
      }
      continue;
    }
    const s = srcOff + sy * row;
    for (let k = 0; k < c; k++) {
      const t = tables[k];
      const zero = t[0];
      for (let x = 0; x < x0; x++) out[o + x * c + k] = zero;
      for (let x = x1; x < w; x++) out[o + x * c + k] = zero;
      if (mirror) {
        // Source column w - 1 - x + dx.
        for (let x = x0, p = s + (w - 1 - x0 + dx) * c + k; x < x1; x++, p -= c)
          out[o + x * c + k] = t[src[p]];
      } else {
        for (let x = x0, p = s + (x0 + dx) * c + k; x < x1; x++, p += c) out[o + x * c + k] = t[src[p]];
      }
    }
  }
}

function imagesTensor(
  split: Split,
  indices: ArrayLike<number>,
  tables: Float32Array[],
  augment: { pad: number; flip: boolean; rand: () => number } | undefined,
): tf.Tensor4D {
  const [h, w, c] = split.shape;
  const per = h * w * c;
  const n = indices.length;
  const out = new Float32Array(n * per);
  const src = split.images;
  for (let i = 0; i < n; i++) {
    const off = indices[i] * per;
    const base = i * per;
    if (augment) {
      const draw = augmentDraws(augment.pad, augment.flip, augment.rand);
      augmentInto(src, off, out, base, split.shape, tables, draw);
    } else if (c === 1) {
      const t = tables[0];
      for (let j = 0; j < per; j++) out[base + j] = t[src[off + j]];
    } else {
      for (let j = 0; j < per; j += c)
        for (let k = 0; k < c; k++) out[base + j + k] = tables[k][src[off + j + k]];
    }
  }
  return tf.tensor4d(out, [n, h, w, c], 'float32');
}

/**
 * How `toTensors` and `batches` turn a split's bytes into tensors, options
 * checked: the pixel lookup tables (with the statistics they standardise by,
 * computed from the split when not given) and the one-hot depth, if any.
 */
function encoding(
  split: Split,
  o: ToTensorsOptions,
): {
  normalize: Normalize;
  stats?: Stats;
  tables: Float32Array[];
  oneHot: boolean;
  depth: number;
  labelDtype: 'int32' | 'float32';
} {
  checkSplit(split);
  const normalize = checkNormalize(o.normalize);
  const oneHot = checkBoolean(o.oneHot, 'oneHot') ?? false;
  const labelDtype = checkLabelDtype(o.labelDtype, oneHot);
  const depth = oneHot ? oneHotDepth(split) : 0;
  if (!oneHot && split.numClasses !== undefined)
    labelsBelow(split, split.numClasses, `the split has numClasses ${split.numClasses}`);
  let stats = o.stats;
  if (normalize === 'unit' && stats != null) {
    throw new DatasetError('invalid-argument', {
      message:
        "stats are given but normalize is 'unit' (the default), which divides by 255 and does not use them; " +
        "pass normalize: 'standardize' to standardise by them, or drop stats",
      found: `normalize ${JSON.stringify(o.normalize ?? 'unit')}, stats ${JSON.stringify(stats)}`,
    });
  }
  if (normalize === 'standardize' && !stats) stats = computeStats(split);
  if (stats) checkStats(stats, split.shape[2]);
  return {
    normalize,
    stats,
    tables: lookupTables(split.shape[2], normalize, stats),
    oneHot,
    depth,
    labelDtype,
  };
}

/**
 * The whole split as two tensors: `xs` float32 `[n, h, w, c]` (pixels / 255,
 * or standardised per channel) and `ys` int32 labels `[n]` (float32 with
 * `labelDtype: 'float32'`, as tfjs-layers' `sparseCategoricalCrossentropy`
 * needs; or one-hot float32 `[n, classes]`, with `oneHot: true`; a flag that is not true or
 * false, or an unknown option key, is an `invalid-argument` DatasetError).
 * With `'standardize'` and no `stats`, the split's own stats are computed and
 * returned, to be passed again for the test split.
 * The caller owns (and disposes) both tensors.
 */
export function toTensors(split: Split, o: ToTensorsOptions = {}): SplitTensors {
  if (typeof o !== 'object' || o === null || Array.isArray(o))
    throw new DatasetError('invalid-argument', {
      message: 'toTensors(split, options): options must be an object such as { normalize, stats, oneHot }',
      found: JSON.stringify(o) ?? String(o),
    });
  checkKeys(o, TO_TENSORS_KEYS, 'toTensors options', TENSOR_SYNONYMS);
  const { normalize, stats, tables, oneHot, depth, labelDtype } = encoding(split, o);
  const all = Uint32Array.from({ length: split.count }, (_, i) => i);
  const xs = imagesTensor(split, all, tables, undefined);
  let ys: tf.Tensor;
  try {
    ys = labelsTensor(split, all, oneHot, depth, labelDtype);
  } catch (e) {
    xs.dispose();
    throw e;
  }
  return normalize === 'standardize' ? { xs, ys, stats } : { xs, ys };
}

/**
 * Iterates over a split in batches, making each batch's two tensors only when
 * it is requested, so nothing is held when the consumer stops early. The
 * consumer owns (and disposes) every `{ xs, ys }` it receives. With a `seed`,
 * the order and the augmentation are reproducible; pass a different seed per
 * epoch (e.g. `seed + epoch`) for a fresh order. `'standardize'` needs
 * `stats` (those of the training split, from `computeStats`): unlike
 * {@link toTensors}, an iterator could not hand back statistics it computed.
 * `shuffle`, `oneHot` and `dropRemainder` take true or false (default false);
 * another value, or an option key not listed here, is an `invalid-argument`
 * DatasetError. The iterator makes one pass: iterating it again once it has
 * ended (or was stopped) is an `invalid-argument` DatasetError, not an empty
 * epoch; call `batches` again for each epoch. `start: n` (an integer >= 0,
 * default 0) begins the pass at batch `n`, to resume an epoch: the batches
 * before it are not made, but the shuffle and the augmentation's random stream
 * advance past them exactly as if they had been, so batch `n` and every later
 * one are bit for bit those a full pass with the same options gives (`n` at or
 * past the pass's last batch yields nothing).
 */
export function batches(split: Split, o: BatchesOptions): AsyncIterableIterator<Batch> {
  if (typeof o !== 'object' || o === null || Array.isArray(o))
    throw new DatasetError('invalid-argument', {
      message: 'batches(split, options) needs its options, at least { batchSize }',
      found: String(o),
    });
  checkKeys(o, BATCHES_KEYS, 'batches options', TENSOR_SYNONYMS);
  const shuffle = checkBoolean(o.shuffle, 'shuffle') ?? false;
  const dropRemainder = checkBoolean(o.dropRemainder, 'dropRemainder') ?? false;
  if (!Number.isInteger(o.batchSize) || o.batchSize <= 0) {
    throw new DatasetError('invalid-argument', {
      message: 'batchSize must be a positive integer',
      found: shown(o.batchSize),
    });
  }
  // mulberry32 takes 32 bits: 1.7, NaN or 2 ** 32 would quietly act as 1, 0 and 0.
  if (o.seed !== undefined && !(Number.isInteger(o.seed) && o.seed >= 0 && o.seed < 2 ** 32)) {
    throw new DatasetError('invalid-argument', {
      message: 'seed must be an integer from 0 to 2^32 - 1',
      found: shown(o.seed),
    });
  }
  // A fraction or a sample count would skip a different stretch of the pass than the caller meant.
  if (o.start !== undefined && !(Number.isInteger(o.start) && o.start >= 0)) {
    throw new DatasetError('invalid-argument', {
      message:
        'start must be an integer >= 0: the index of the first batch to yield (0, the default, is the first)',
      found: shown(o.start),
    });
  }
  // toTensors can hand back the stats it computed; an iterator cannot, and a validation or test
  // split standardised by its own statistics would differ from training without a sign.
  // `stats: null` is no stats either (`trainStats ?? null`): it would standardise by the split's own.
  if (o.normalize === 'standardize' && (o.stats === undefined || o.stats === null)) {
    throw new DatasetError('invalid-argument', {
      message:
        "batches: normalize 'standardize' needs stats: pass computeStats(train), the training split's, " +
        'for every split, so that all are standardised alike',
    });
  }
  const { tables, oneHot, depth, labelDtype } = encoding(split, o);
  const aug = augmentOf(o.augment);
  const rand = mulberry32(o.seed ?? Math.floor(Math.random() * 2 ** 32));
  const order = shuffle
    ? permutation(split.count, rand)
    : Uint32Array.from({ length: split.count }, (_, i) => i);
  const augment = aug ? { ...aug, rand } : undefined;
  const batchSize = o.batchSize;
  const end = dropRemainder ? split.count - (split.count % batchSize) : split.count;

  // The images of the batches before `start`: none of them is made, but their augmentation is
  // drawn all the same, so the batches from `start` on are those a full pass would give.
  const skipped = Math.min((o.start ?? 0) * batchSize, end);

  async function* generate(): AsyncGenerator<Batch> {
    if (augment) for (let i = 0; i < skipped; i++) augmentDraws(augment.pad, augment.flip, augment.rand);
    for (let first = skipped; first < end; first += batchSize) {
      const idx = order.subarray(first, Math.min(first + batchSize, end));
      const xs = imagesTensor(split, idx, tables, augment);
      const ys = labelsTensor(split, idx, oneHot, depth, labelDtype);
      yield { xs, ys };
    }
  }
  return onePass(generate());
}

/**
 * `gen` as an iterator that refuses to be iterated again once it has ended (run to its end, or
 * stopped by `break` / `return()`): a generator would give an empty pass instead, so a training
 * loop that reused one `batches()` result for every epoch would silently train on nothing after
 * the first. `next()` after the end still answers `done`, as the protocol wants.
 */
function onePass(gen: AsyncGenerator<Batch>): AsyncIterableIterator<Batch> {
  let ended = false;
  const settle = async (r: Promise<IteratorResult<Batch>>) => {
    try {
      const result = await r;
      if (result.done) ended = true;
      return result;
    } catch (e) {
      ended = true; // a generator that threw has ended
      throw e;
    }
  };
  return {
    next: () => settle(gen.next()),
    return: (value?: unknown) => {
      ended = true;
      return gen.return(value as undefined);
    },
    throw: (e?: unknown) => settle(gen.throw(e)),
    [Symbol.asyncIterator]() {
      if (ended)
        throw new DatasetError('invalid-argument', {
          message:
            'batches() makes one pass over the split, and this one has ended; call batches() again for each epoch ' +
            '(seed + epoch for a fresh order)',
        });
      return this;
    },
  };
}
