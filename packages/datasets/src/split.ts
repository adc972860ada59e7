import { DatasetError, shown } from './errors.js';
import type { Split, Stats, TrainValidation } from './types.js';

/** A typed array's kind for an error message: `Float32Array`, `Array`, `undefined`. */
function kindOf(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  return (v as object).constructor?.name ?? typeof v;
}

/** Byte arrays a split's pixels and labels may be held in (a canvas's ImageData is clamped). */
const isBytes = (v: unknown): boolean => v instanceof Uint8Array || v instanceof Uint8ClampedArray;

/**
 * Catches hand-built splits that are not what the tensor helpers read before they reach tfjs:
 * pixels and labels that are not bytes (a Float32Array of pixels already scaled to [0, 1]
 * would make every pixel NaN through the byte lookup table; a label of -1 would set a 1 in the
 * previous row of a one-hot tensor), a shape that is not [h, w, c], and arrays whose lengths
 * disagree with `count` and `shape`.
 */
export function checkSplit(split: Split): void {
  if (typeof split !== 'object' || split === null)
    throw new DatasetError('invalid-argument', {
      message: "a split must be an object { images, labels, count, shape } (a loader's ds.train or ds.test)",
      found: String(split),
    });
  const shape = split.shape as unknown;
  if (
    !Array.isArray(shape) ||
    shape.length !== 3 ||
    !shape.every((d) => typeof d === 'number' && Number.isInteger(d) && d > 0)
  )
    throw new DatasetError('invalid-argument', {
      message: 'split.shape must be [h, w, c] of positive integers (one grayscale image is [28, 28, 1])',
      found: JSON.stringify(shape) ?? String(shape),
    });
  if (typeof split.count !== 'number' || !Number.isInteger(split.count) || split.count < 0)
    throw new DatasetError('invalid-argument', {
      message: 'split.count must be an integer >= 0 (the number of images)',
      found: shown(split.count),
    });
  if (!isBytes(split.images))
    throw new DatasetError('invalid-argument', {
      message:
        'split.images must be a Uint8Array of pixel bytes 0..255, NHWC (the tensors are scaled from bytes; pixels already scaled to [0, 1] would all be NaN): Uint8Array.from(pixels) for bytes held in another array',
      found: kindOf(split.images),
    });
  if (!isBytes(split.labels))
    throw new DatasetError('invalid-argument', {
      message:
        'split.labels must be a Uint8Array of class indices 0..255: Uint8Array.from(labels) for labels held in another array',
      found: kindOf(split.labels),
    });
  const [h, w, c] = split.shape;
  const want = split.count * h * w * c;
  if (split.images.length !== want) {
    throw new DatasetError('size-mismatch', {
      message: 'split.images length differs from count * h * w * c',
      expected: want,
      found: split.images.length,
    });
  }
  if (split.labels.length !== split.count) {
    throw new DatasetError('size-mismatch', {
      message: 'split.labels length differs from count',
      expected: split.count,
      found: split.labels.length,
    });
  }
}

/**
 * Per-channel mean and std over a whole split, in [0, 1] units. Counting a
 * histogram of byte values per channel makes this exact and fast (no float
 * accumulation over 150 M values). Pass it to `batches` or `toTensors` as `stats` for
 * `normalize: 'standardize'`.
 *
 * Throws a {@link DatasetError} (`invalid-argument`, `size-mismatch`) for a split whose fields do
 * not agree (`images` not `count * h * w * c` bytes, `labels` not `count` long).
 */
export function computeStats(split: Split): Stats {
  checkSplit(split);
  const c = split.shape[2];
  const hist = Array.from({ length: c }, () => new Float64Array(256));
  const px = split.images;
  const n = split.count * split.shape[0] * split.shape[1] * c;
  if (c === 1) {
    const h = hist[0];
    for (let i = 0; i < n; i++) h[px[i]]++;
  } else {
    for (let i = 0; i < n; i += c) for (let k = 0; k < c; k++) hist[k][px[i + k]]++;
  }
  const mean: number[] = [];
  const std: number[] = [];
  for (let k = 0; k < c; k++) {
    let total = 0;
    let s = 0;
    for (let v = 0; v < 256; v++) {
      total += hist[k][v];
      s += hist[k][v] * (v / 255);
    }
    const m = total > 0 ? s / total : 0;
    let sq = 0;
    for (let v = 0; v < 256; v++) sq += hist[k][v] * (v / 255 - m) ** 2;
    mean.push(m);
    std.push(total > 0 ? Math.sqrt(sq / total) : 0);
  }
  return { mean, std };
}

function slice(split: Split, from: number, to: number): Split {
  const per = split.shape[0] * split.shape[1] * split.shape[2];
  const out: Split = {
    images: split.images.subarray(from * per, to * per),
    labels: split.labels.subarray(from, to),
    count: to - from,
    shape: [...split.shape] as [number, number, number],
  };
  if (split.numClasses !== undefined) out.numClasses = split.numClasses;
  return out;
}

/**
 * Holds out the last `n` images as a validation split (views, no copy). `n` is
 * a count of images, not a fraction as in tfjs `fit({ validationSplit })`: for
 * a tenth, pass `Math.round(0.1 * split.count)`. The loaders order CIFAR image
 * folders class-interleaved, so the tail is balanced.
 *
 * Throws a {@link DatasetError} `invalid-argument` for an `n` that is not an integer in
 * `1..count - 1` (saying so when it looks like a fraction), and as {@link computeStats} does for a
 * split whose fields do not agree.
 *
 * ```ts
 * const { train } = await loadMnist();
 * const { train: fit, validation } = validationSplit(train, 5000); // the last 5,000 images
 * ```
 */
export function validationSplit(split: Split, n: number): TrainValidation {
  checkSplit(split);
  if (typeof n === 'number' && n > 0 && n < 1) {
    throw new DatasetError('invalid-argument', {
      message: `validationSplit: n is a count of images, not a fraction as in tfjs fit({ validationSplit }); for that share of this split pass Math.round(${n} * split.count) = ${Math.round(n * split.count)}`,
      expected: `an integer in 1..${split.count - 1}`,
      found: n,
    });
  }
  if (!Number.isInteger(n) || n <= 0 || n >= split.count) {
    throw new DatasetError('invalid-argument', {
      message: 'validationSplit: n must be an integer between 1 and count - 1',
      expected: `1..${split.count - 1}`,
      found: n,
    });
  }
  return { train: slice(split, 0, split.count - n), validation: slice(split, split.count - n, split.count) };
}
