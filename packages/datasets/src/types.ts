import type * as tf from '@tensorflow/tfjs-core';

/**
 * One split of a data set: `count` images stored NHWC as bytes (0..255), and
 * one label byte per image. Plain typed arrays, so a whole data set costs no
 * tensor memory until a batch is asked for.
 */
export interface Split {
  /** `count * h * w * c` bytes, image after image, row-major, channels last. */
  images: Uint8Array;
  /** `count` class indices. */
  labels: Uint8Array;
  /** Number of images. */
  count: number;
  /** `[h, w, c]` of one image. */
  shape: [number, number, number];
  /**
   * Number of classes (the depth of one-hot labels). Set by the loaders; when
   * absent, one-hot encoding uses the largest label + 1 (an empty split needs it set).
   */
  numClasses?: number;
}

/** A data set as the loaders return it; `classes[i]` names label `i`. */
export interface Dataset {
  /** The training split. */
  train: Split;
  /** The test split. */
  test: Split;
  /** Class names in label order. */
  classes: string[];
  /**
   * Where the loader read the data set from, as an absolute path: the folder
   * of IDX files or images, the archive (a decoded copy served from the cache
   * still names the archive or folder it was decoded from), or the cache
   * folder a download went to. Set by the loaders; absent in data sets built
   * by hand.
   */
  source?: string;
}

/**
 * Where to find a data set; see the package README for the order sources are
 * tried in. A key not listed here (`directory`, `path`, `cache_dir`) is an
 * `invalid-argument` DatasetError naming it and the closest key, never ignored.
 */
export interface LoadOptions {
  /** A directory holding the data set's files (IDX files, `cifar-10-batches-bin/`, or `train/` + `test/` image folders). */
  dir?: string;
  /** One archive (`.tar` / `.tar.gz`) holding the data set. */
  file?: string;
  /**
   * Forbid the network; a missing file then raises a `DatasetError` with code
   * `offline`. `NORMPRUNE_OFFLINE=1` in the environment (anything but `0`,
   * `false` or empty) forbids it too, and wins over `offline: false`: a CI job
   * that sets it gets no download whatever the code passes.
   */
  offline?: boolean;
  /** Where downloads and decoded caches live (default `$XDG_CACHE_HOME/normprune`, else `~/.cache/normprune`). */
  cacheDir?: string;
  /** Base URL to download from instead of the official hosts (also `NORMPRUNE_DATA_MIRROR`); files are fetched as `<mirror>/<dataset>/<file name>`. An http:// or https:// URL; for files in a folder, use `dir`. */
  mirror?: string;
}

/** Per-channel mean and standard deviation, in [0, 1] pixel units. */
export interface Stats {
  /** One mean per channel. */
  mean: number[];
  /** One standard deviation per channel. */
  std: number[];
}

/** CIFAR-style augmentation, applied to the bytes of each batch before the tensor is made. */
export interface AugmentOptions {
  /** Zero padding (pixels on every side) before a random crop back to the original size; 0 disables. Default 4. */
  padding?: number;
  /** Random horizontal flip with probability 1/2: true or false (no other value). Default true. */
  flip?: boolean;
}

/** How pixels become floats: `'unit'` is `pixel / 255`; `'standardize'` is `(pixel / 255 - mean[c]) / std[c]`. */
export type Normalize = 'unit' | 'standardize';

/** The options of `toTensors`. */
export interface ToTensorsOptions {
  /** How pixels become floats (see {@link Normalize}). Default `'unit'`. */
  normalize?: Normalize;
  /**
   * The per-channel statistics for `'standardize'`: those of the training split (`computeStats`)
   * for every split. Without them, `'standardize'` computes and returns the split's own.
   * Refused beside `'unit'`, which would ignore them.
   */
  stats?: Stats;
  /** Labels as one-hot float32 `[n, classes]` instead of int32 `[n]`: true or false. Default false. */
  oneHot?: boolean;
  /**
   * The dtype of the class-index labels `[n]`: `'int32'` (the default; what `tf.oneHot` takes) or
   * `'float32'`, which tfjs-layers' `sparseCategoricalCrossentropy` loss needs (it refuses int32
   * labels: "Argument 'x' passed to 'floor' must be float32 tensor"). One-hot labels are float32;
   * `'int32'` beside `oneHot: true` is refused.
   */
  labelDtype?: 'int32' | 'float32';
}

/** The options of `batches`. */
export interface BatchesOptions extends ToTensorsOptions {
  /** Images per batch: a positive integer (the last batch may be smaller, see `dropRemainder`). */
  batchSize: number;
  /** A random order of the images (one permutation per call): true or false. Default false. */
  shuffle?: boolean;
  /**
   * An integer from 0 to 2^32 - 1 that fixes the shuffled order and the augmentation; without
   * it, both differ from call to call. Pass another seed per epoch (e.g. `seed + epoch`).
   */
  seed?: number;
  /**
   * CIFAR-style augmentation of every batch: `true` is `{ padding: 4, flip: true }`, false or
   * absent is none. Default none.
   */
  augment?: boolean | AugmentOptions;
  /**
   * `'standardize'` needs `stats` here (an iterator cannot hand back statistics it computed).
   * Default `'unit'`.
   */
  normalize?: Normalize;
  /**
   * The per-channel statistics for `'standardize'`, which `batches` refuses without them: those
   * of the training split (`computeStats`), for every split.
   */
  stats?: Stats;
  /** Leave out the last batch when it is smaller than `batchSize`: true or false. Default false. */
  dropRemainder?: boolean;
  /**
   * The index of the first batch to yield (a batch index, not an image index): an integer >= 0.
   * Default 0. The batches before it are skipped without making their tensors, while the shuffle
   * and the augmentation advance past them exactly as if they had been made, so a pass resumed at
   * batch `start` goes on bit for bit as the full pass would have; at or past the last batch,
   * nothing is yielded.
   */
  start?: number;
}

/** One batch (or a whole split) as tensors, owned and disposed by the caller. */
export interface Batch {
  /** float32 images `[n, h, w, c]`. */
  xs: tf.Tensor4D;
  /** int32 labels `[n]` (float32 with `labelDtype: 'float32'`), or one-hot float32 `[n, classes]`. */
  ys: tf.Tensor;
}

/** What `toTensors` returns. */
export interface SplitTensors extends Batch {
  /** The statistics used to standardise (present with `normalize: 'standardize'`). */
  stats?: Stats;
}

/** What `validationSplit` returns: two views of the original split. */
export interface TrainValidation {
  /** The first `count - n` images. */
  train: Split;
  /** The last `n` images. */
  validation: Split;
}
