/**
 * What went wrong while `fileSystem` saved or loaded a model. One code per
 * failure a caller may want to tell apart:
 *
 * - `missing`: nothing to load (the folder or its JSON file does not exist);
 * - `damaged`: the files are there but unusable (a JSON file that is no JSON or
 *   no tfjs model.json, a bad weights manifest, a weight shard missing, of the
 *   wrong size or not a regular file): the folder was cut short or edited, so
 *   copy or save it again;
 * - `unsafe-path`: the manifest names a weight file outside the model's folder;
 * - `read-failed`: reading failed (permissions, an I/O error, a shard that
 *   changed while it was read): the files may be fine, so look at the cause or
 *   load again;
 * - `save-failed`: a save could not create the folder or write its files (the
 *   previous model, if any, is unchanged);
 * - `unsupported`: files or a model of a kind this function does not handle (a
 *   GraphDef to save; a 'tfjs' export given to @normprune/surgery's
 *   `loadSparseModel`);
 * - `shard-clash`: a save whose weight file another model in the folder lists;
 * - `invalid-argument`: `fileSystem()` was given no usable path, or its save
 *   was given artifacts its load would refuse (no `modelTopology`, weight data
 *   whose size does not match the weight specs, a bad weight spec): nothing
 *   was written.
 */
export type ModelFileErrorCode =
  | 'missing'
  | 'damaged'
  | 'unsafe-path'
  | 'read-failed'
  | 'save-failed'
  | 'unsupported'
  | 'shard-clash'
  | 'invalid-argument';

/** Set on every ModelFileError by every copy of this package (see its `Symbol.hasInstance`). */
const BRAND = Symbol.for('normprune.ModelFileError');

/**
 * The error `fileSystem`'s save and load throw (and @normprune/surgery's
 * `exportModel` and `loadSparseModel`, for their files). The message names the file and
 * the fix; `code` tells the kinds apart without reading the message, and
 * `file` is the file (or folder) concerned.
 *
 * ```ts
 * try {
 *   model = await tfl.loadLayersModel(fileSystem(dir));
 * } catch (e) {
 *   if (e instanceof ModelFileError && e.code === 'missing') model = await trainFromScratch();
 *   else throw e;
 * }
 * ```
 */
export class ModelFileError extends Error {
  /**
   * `instanceof` that also holds for an error made by another copy of this package in the same
   * process (its CommonJS and ES module builds both loaded, or two installed versions of it); a
   * subclass's `instanceof` stays a plain prototype check.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return (
      Function.prototype[Symbol.hasInstance].call(this, value) ||
      (this === ModelFileError && typeof value === 'object' && value !== null && BRAND in value)
    );
  }

  /** Machine-readable kind of failure. */
  readonly code: ModelFileErrorCode;
  /** The file or folder the problem was found in. */
  readonly file: string;

  /** Builds the error; `cause` is the underlying error (an `fs` error), when there is one. */
  constructor(code: ModelFileErrorCode, file: string, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'ModelFileError';
    Object.defineProperty(this, BRAND, { value: true });
    this.code = code;
    this.file = file;
  }
}
