// Writing pruned models to disk.
//
// 'tfjs': the standard model.json + weight shards (through @normprune/runtime's
// fileSystem handler), which any TensorFlow.js program loads.
//
// 'sparse': the same model.json topology, plus
//   sparse.json  {"format": "normprune-sparse", "version": 1, "data": "sparse.bin",
//                 "weights": [SparseWeightEntry, ...]}
//   sparse.bin   for each weight, in order: [bitmask][values]
// A weight of rank >= 2 is seen as groups over its last two axes (cin, cout):
// a Conv2D 2-D kernel [:, :, i, o] or a single Dense weight [i, o]. With
// encoding 'bitmask', one bit per group (index i * cout + o, bit (index & 7)
// of byte (index >> 3)) says whether the group is stored; then the stored
// groups' values follow, group by group in that index order, each group's
// K = prod(leading axes) values in row-major order of the leading axes.
// Weights where that would not save space are stored 'dense' (row-major). The records follow
// one another from byte 0 to the end of sparse.bin (the reader refuses overlaps, gaps, extra bytes).
// Values are float32 or, with float16, IEEE half precision, little-endian.
// While an export replaces an earlier one, model.json names the manifest to read
// in "sparseManifest" (backup copies of the earlier files; see writeSparse).
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  describeValue as describe,
  fold,
  layerPaths,
  optionsProblem,
  readFiniteWeight,
  restoreConfigs,
} from '@normprune/layers';
import {
  fileSystem,
  makeDirs,
  ModelFileError,
  processGone,
  syncDir,
  writeFileDurably,
} from '@normprune/runtime';
import { brokenConstraints, droppedConstraintWarning, withoutConstraints } from './constraints.js';
import { checkModel, disposeFolded, hasDecomposed } from './folding.js';
import { readSparseModel, toFloat16, type SparseWeightEntry } from './sparse-format.js';
import { checkLoadOptions, loadSparseModelFromUrl, type LoadSparseOptions } from './sparse-url.js';

// Also the package's (sparse-format.ts and sparse-url.ts are shared with the browser build).
export { fromFloat16, toFloat16, type SparseWeightEntry } from './sparse-format.js';
export type { LoadSparseOptions } from './sparse-url.js';

/** Options of {@link exportModel}. */
export interface ExportOptions {
  /**
   * 'tfjs' (default): standard TensorFlow.js files. 'sparse': the same values minus the zero
   * groups of each kernel (2-D kernels of a Conv2D, single weights of a Dense), which a bitmask
   * marks; smaller than 'tfjs' in the same precision only when the model keeps such zeros (about
   * in proportion to them), a few hundred bytes larger when every zero was in a whole neuron or
   * filter that prune removed (the README's Export section has `bench/export-sizes.ts`'s table).
   */
  format?: 'tfjs' | 'sparse';
  /** Store weights as IEEE float16 (half the bytes, ~3 significant digits). Default false. */
  float16?: boolean;
}

/** What {@link exportModel} wrote. */
export interface ExportResult {
  /** Total size of `files` on disk. */
  bytes: number;
  /** Paths of the files written (model.json first): `dir` joined with each name, so relative when `dir` is. */
  files: string[];
  /**
   * One sentence per constraint (a layer's `kernelConstraint`, `biasConstraint`, ...) left out of
   * the export because the model's weights break it, naming the layer (by path in a nested model,
   * `block/fc`), the option (and, for stacked RNN cells, the cell) and the constraint's class;
   * the options of a layer a wrapper (`TimeDistributed`, `Bidirectional`) holds and of a recurrent
   * layer's cell count as the layer's. tfjs applies a layer's constraints when it
   * loads its weights, and would load such an export into another function than the model's.
   * (tfjs applies none while training, so a trained model's weights may break them.) Empty
   * otherwise; `prune` leaves such constraints out of the layers it rewrites, and says so alike.
   */
  warnings: string[];
}

/** The bytes of `values`, as float32 (a view, not a copy) or float16. */
function encodeValues(values: Float32Array, float16: boolean, name: string): Uint8Array {
  if (!float16) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    // Half precision tops out at 65504: refuse rather than store Infinity.
    if (Math.abs(values[i]) > 65504)
      throw new Error(
        `exportModel: weight '${name}' holds ${values[i]}, outside the float16 range (|x| <= 65504); export without float16`,
      );
    out[i] = toFloat16(values[i]);
  }
  return new Uint8Array(out.buffer);
}

/** A weight's manifest entry and its tensor (the model's own, not a copy). */
interface NamedWeight {
  spec: tf.io.WeightsManifestEntry;
  tensor: tf.Tensor;
}

/**
 * What `model.save()` hands an IO handler, but without the weight data: the
 * weights' entries (in model.save's order and form) and their tensors, to be
 * read one at a time. model.save reads every weight and joins the copies into
 * one buffer (twice the weight bytes at its peak), before the handler sees
 * any of it. Tests check that this agrees with model.save.
 * @internal
 */
export function modelArtifacts(model: tfl.LayersModel): {
  artifacts: tf.io.ModelArtifacts;
  weights: NamedWeight[];
} {
  const tensors = model.getWeights();
  const weights = model.weights.map((w, i) => ({
    spec: {
      name: w.originalName,
      shape: tensors[i].shape,
      dtype: tensors[i].dtype,
    } as tf.io.WeightsManifestEntry,
    tensor: tensors[i],
  }));
  const topology = model.toJSON(null, false) as { config?: { layers?: unknown[] } };
  // tfjs leaves a separable convolution's depthMultiplier out (its own loader would take 1) and
  // writes a DepthwiseConv2D's depthwiseRegularizer as its depthwiseConstraint.
  if (topology.config) restoreConfigs(topology.config, model, 'snake');
  const artifacts: tf.io.ModelArtifacts = {
    modelTopology: topology as tf.io.ModelArtifacts['modelTopology'],
    format: 'layers-model',
    generatedBy: `TensorFlow.js tfjs-layers v${tfl.version_layers}`,
    convertedBy: null,
  };
  const metadata = model.getUserDefinedMetadata();
  if (metadata != null) artifacts.userDefinedMetadata = metadata;
  for (const { spec } of weights) {
    if (spec.dtype !== 'float32')
      throw new Error(
        `exportModel: weight '${spec.name}' is ${spec.dtype}; only float32 weights are supported`,
      );
  }
  return { artifacts, weights };
}

/**
 * Refuses two weights of one name: layers of one name in different nested models (`blockA/fc`,
 * `blockB/fc`) both name their kernel `fc/kernel`, and tfjs's loaders match saved weights to
 * layers by that name, so they refuse such a model ("Duplicate weight name"), as
 * `loadSparseModel` refuses such a manifest: an export that nothing loads is not written.
 */
function sharedWeightNameProblem(model: tfl.LayersModel): string | undefined {
  const seen = new Map<string, tfl.LayerVariable>();
  for (const w of model.weights) {
    const first = seen.get(w.originalName);
    if (first === undefined) {
      seen.set(w.originalName, w);
      continue;
    }
    const owners = weightOwners(model);
    const loaders =
      "tfjs's loaders match weights to layers by name and refuse a model that lists one twice, and so " +
      'would loadSparseModel';
    if (first === w)
      return (
        `the layer at ${(owners.get(w) ?? []).map((p) => `'${p}'`).join(' and ')} is one layer, inside a nested ` +
        `model and applied by the model around it too, so its weight '${w.originalName}' is listed twice: ` +
        `${loaders}. Apply the nested model, not its layer, or build the model without the nested one`
      );
    return (
      `layers '${owners.get(first)?.[0]}' and '${owners.get(w)?.[0]}' both name a weight '${w.originalName}' (tfjs names ` +
      `a weight by its layer, without the nested models around it): ${loaders}. Give the layers distinct ` +
      'names (e.g. blockA_fc, blockB_fc) and export again'
    );
  }
  return undefined;
}

/** The paths of the layer holding each weight, through nested models (`blockA/fc`); two for a layer in two places. */
function weightOwners(
  model: tfl.LayersModel,
  prefix = '',
  out = new Map<tfl.LayerVariable, string[]>(),
): Map<tfl.LayerVariable, string[]> {
  for (const layer of model.layers) {
    const nested = (layer as Partial<tfl.LayersModel>).layers;
    if (Array.isArray(nested)) weightOwners(layer as tfl.LayersModel, `${prefix}${layer.name}/`, out);
    else for (const w of layer.weights) out.set(w, [...(out.get(w) ?? []), prefix + layer.name]);
  }
  return out;
}

/** What an export writes of one weight: its bytes, and for `'sparse'` its record's manifest fields. */
interface Encoded {
  bytes: Uint8Array;
  encoding: SparseWeightEntry['encoding'];
  maskBytes: number;
  count: number;
}

/**
 * What `format` writes of a weight of shape `shape` holding `values`: for `'tfjs'` its bytes
 * (float32: a view of `values`, not a copy); for `'sparse'` its record, the weight's bytes
 * or, when smaller, a bitmask of its live groups (2-D kernels, single Dense weights) and their values.
 */
function encodeWeight(
  values: Float32Array,
  shape: number[],
  format: 'tfjs' | 'sparse',
  float16: boolean,
  name: string,
): Encoded {
  const dense = (): Encoded => ({
    bytes: encodeValues(values, float16, name),
    encoding: 'dense',
    maskBytes: 0,
    count: values.length,
  });
  if (format === 'tfjs' || shape.length < 2) return dense();
  const valueBytes = float16 ? 2 : 4;
  const cin = shape[shape.length - 2];
  const cout = shape[shape.length - 1];
  const groups = cin * cout;
  const K = values.length / groups;
  const mask = new Uint8Array(Math.ceil(groups / 8));
  let live = 0;
  for (let q = 0; q < groups; q++) {
    let nz = false;
    for (let k = 0; k < K && !nz; k++) nz = values[k * groups + q] !== 0;
    if (nz) {
      mask[q >> 3] |= 1 << (q & 7);
      live++;
    }
  }
  if (mask.length + live * K * valueBytes >= values.length * valueBytes) return dense();
  const packed = new Float32Array(live * K);
  let p = 0;
  for (let q = 0; q < groups; q++) {
    if (!(mask[q >> 3] & (1 << (q & 7)))) continue;
    for (let k = 0; k < K; k++) packed[p++] = values[k * groups + q];
  }
  const vals = encodeValues(packed, float16, name);
  const bytes = new Uint8Array(mask.length + vals.length);
  bytes.set(mask, 0);
  bytes.set(vals, mask.length);
  return { bytes, encoding: 'bitmask', maskBytes: mask.length, count: live * K };
}

/**
 * What the export writes of `tensor`: taken from `encoded` (and let go of there) when the
 * export's checks encoded it as they read it, else read now (on the cpu backend the weight's own
 * array, on wasm a copy out of the heap) and encoded.
 */
async function encodedWeight(
  tensor: tf.Tensor,
  encoded: Map<tf.Tensor, Encoded>,
  format: 'tfjs' | 'sparse',
  float16: boolean,
  name: string,
): Promise<Encoded> {
  const done = encoded.get(tensor);
  if (done !== undefined) {
    encoded.delete(tensor);
    return done;
  }
  return encodeWeight((await tensor.data()) as Float32Array, tensor.shape, format, float16, name);
}

/** The whole buffer of `bytes`: its own when it spans all of it, else a copy of its range. */
function ownBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
    ? (bytes.buffer as ArrayBuffer)
    : (bytes.slice().buffer as ArrayBuffer);
}

async function sizes(files: string[]): Promise<number> {
  let total = 0;
  for (const f of files) total += (await fs.promises.stat(f)).size;
  return total;
}

/**
 * The directory an export is written to or loaded from: a path or a `file://` URL. A `.json`
 * path (what `fileSystem` takes to name a model file) or an existing file is refused, since
 * the export's file names are fixed (loadSparseModel takes a model.json path before this).
 */
/** `dir`, a path or a `file://` URL, as a path; a URL that names no local file is `invalid-argument`. */
function filePath(dir: string, who: string): string {
  if (!dir.startsWith('file://')) return dir;
  try {
    return fileURLToPath(dir);
  } catch (e) {
    throw new ModelFileError(
      'invalid-argument',
      dir,
      `${who}: '${dir}' is not a file:// URL of a local path (${(e as Error).message}); pass the path itself`,
      e,
    );
  }
}

async function modelDir(dir: unknown, who: string): Promise<string> {
  if (typeof dir !== 'string' || dir === '')
    throw new ModelFileError(
      'invalid-argument',
      String(dir),
      `${who}: dir must be a directory path or a file:// URL, got ${describe(dir)}`,
    );
  const plain = filePath(dir, who);
  if (plain.endsWith('.json'))
    throw new ModelFileError(
      'invalid-argument',
      plain,
      `${who}: '${dir}' names a .json file; ${who} takes the directory that holds model.json: pass '${path.dirname(plain)}'`,
    );
  const stat = await fs.promises.stat(plain).catch(() => undefined);
  if (stat && !stat.isDirectory())
    throw new ModelFileError('invalid-argument', plain, `${who}: '${plain}' exists and is not a directory`);
  return plain;
}

/** `dir/name` if it stays inside `dir` (a manifest is not trusted to name files elsewhere). */
function inside(dir: string, name: unknown): string | undefined {
  if (typeof name !== 'string') return undefined;
  const f = path.join(dir, name);
  return path.dirname(path.resolve(f)) === path.resolve(dir) ? f : undefined;
}

/**
 * The files an earlier export left in `dir`, as its own manifests name them: the weight shards
 * of a tfjs model.json, and a sparse export's sparse.json and data file. Nothing else in the
 * directory is ever touched.
 */
async function previousExport(dir: string): Promise<string[]> {
  const readJson = async (f: string) => {
    try {
      return JSON.parse(await fs.promises.readFile(path.join(dir, f), 'utf8'));
    } catch {
      return undefined;
    }
  };
  const out: (string | undefined)[] = [];
  const model = await readJson('model.json');
  if (Array.isArray(model?.weightsManifest))
    for (const group of model.weightsManifest)
      if (Array.isArray(group?.paths)) for (const p of group.paths) out.push(inside(dir, p));
  const sparse = await readSparseExport(dir);
  if (sparse) out.push(sparse.manifestFile, sparse.data);
  // sparse.json beside a 'tfjs' model.json: left by an export of an earlier version.
  const named = await readJson('sparse.json');
  if (named?.format === 'normprune-sparse') out.push(path.join(dir, 'sparse.json'), inside(dir, named.data));
  return out.filter((f): f is string => f !== undefined);
}

/** Deletes what the previous export wrote and the new one did not (after the new one is complete). */
async function removeStale(previous: string[], written: string[]): Promise<void> {
  const keep = new Set(written.map((f) => path.resolve(f)));
  for (const f of previous) {
    if (keep.has(path.resolve(f))) continue;
    await fs.promises.unlink(f).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
  }
}

/**
 * Saves a model under `dir` and returns the bytes on disk, the files written and the warnings.
 * Decomposed layers are folded first, so the files contain only standard layers. A constraint that
 * the model's weights break is left out of the files, and said in {@link ExportResult.warnings}:
 * what loads computes what the model computes. `'tfjs'` loads with
 * plain `tfl.loadLayersModel` (e.g. through `fileSystem(dir)` from @normprune/runtime);
 * `'sparse'` loads with {@link loadSparseModel}. `dir` is a directory path or a `file://` URL.
 * Exporting again into the same directory replaces the earlier export, in either format: its
 * weight files are removed once the new files are in place, so a loader never mixes the two.
 * While a `'sparse'` export replaces an earlier sparse one, the earlier model.json carries a
 * `sparseManifest` entry naming backup copies of its files (see the package README).
 * The directory is created if missing. Throws a `ModelFileError`: code `invalid-argument`, before
 * anything is written, for a `dir` that is not a string or names a `.json` file or an existing
 * non-directory, for options that are not an object, hold a key other than `format` and
 * `float16` (naming it and the key it likely misspells), an unknown `format` or a `float16`
 * that is not a boolean, for layers of one name in different nested models (their weights would
 * share a name, which tfjs's loaders refuse) and, with `float16`, for a weight outside the float16
 * range (|x| > 65504); `save-failed` for a `dir` that cannot be created or written. A model holding
 * a NaN or an infinity is refused before anything is written with a `NonFiniteWeightError`
 * (`caller` `'exportModel'`), as `analyze` and `prune` refuse it (naming a layer of a nested
 * model by path, `block/fc`).
 *
 * ```ts
 * const { bytes, warnings } = await exportModel(model, dir, { format: 'sparse', float16: true });
 * console.log(`${bytes} bytes`, ...warnings);
 * const loaded = await loadSparseModel(dir);
 * ```
 */
export async function exportModel(
  model: tfl.LayersModel,
  dir: string,
  options: ExportOptions = {},
): Promise<ExportResult> {
  checkModel(model, 'exportModel');
  dir = await modelDir(dir, 'exportModel');
  // A string where the options go (exportModel(m, dir, 'sparse')) would otherwise be read as
  // no options at all, a misspelled key ({ fp16: true }) as the default, and a string float16
  // ('false' from a CLI or JSON) as true. Refused as a bad dir is, before a file is written.
  const refuse = (why: string) => new ModelFileError('invalid-argument', dir, `exportModel: ${why}`);
  const problem = optionsProblem(options, ['format', 'float16'], "{ format: 'sparse', float16: true }");
  if (problem !== undefined) throw refuse(problem);
  // optionsProblem has refused null values: only an absent option takes the default.
  const format = options.format ?? 'tfjs';
  const float16 = options.float16 ?? false;
  if (format !== 'tfjs' && format !== 'sparse')
    throw refuse(`unknown format '${String(format)}' (use 'tfjs' or 'sparse')`);
  if (typeof float16 !== 'boolean')
    throw refuse(
      `float16 must be true (weights stored as float16, half the bytes) or false, got ${describe(float16)}`,
    );
  // A NaN or an infinity would be exported as it is (float16 refuses an infinity only), and the
  // export would load as a model that outputs NaN: refused as analyze and prune refuse it,
  // naming the user's own weight (a decomposed layer's direction or magnitude, not the fold's).
  // A layer of a nested model is named by path (`block/fc`), as analyze and prune name it.
  //
  // Each weight written is read out of the backend once (on wasm, a copy out of its heap):
  // where the checks read it (the model's own weight, or with float16 a fold's), it is encoded
  // there, into `encoded`, for the export to write. Read again, a weight was held twice, the
  // checks' dead copies waiting for the garbage collector beside the export's (1.33x the weight
  // bytes on wasm); and with float16, encoding later would hold every float32 copy until then.
  const decomposed = hasDecomposed(model);
  const encoded = new Map<tf.Tensor, Encoded>();
  const outOfRange = new Map<tf.Tensor, string>();
  const check = (w: tfl.LayerVariable, values: tf.TypedArray) => {
    if (float16) {
      const at = values.findIndex((v) => Math.abs(v) > 65504);
      if (at >= 0)
        outOfRange.set(
          w.read(),
          `weight '${w.originalName}' holds ${values[at]}, outside the float16 range (|x| <= 65504); export without float16`,
        );
    }
    // Not float32: modelArtifacts refuses it. Nothing more is kept once the export is refused.
    if (values instanceof Float32Array && outOfRange.size === 0)
      encoded.set(w.read(), encodeWeight(values, w.read().shape, format, float16, w.originalName));
  };
  for (const { path: at, layer } of layerPaths(model))
    for (const w of layer.weights) {
      const values = readFiniteWeight(
        layer,
        w,
        'exportModel',
        'an export would load as a model whose outputs are NaN. ' +
          'The model has diverged or its weights are corrupt: restore a checkpoint, or retrain with a lower learning rate',
        at,
      );
      // A decomposed layer's weights are not written: the fold's are.
      if (!decomposed) check(w, values);
    }
  const plain = decomposed ? fold(model) : model;
  try {
    const shared = sharedWeightNameProblem(plain);
    if (shared !== undefined) throw refuse(shared);
    // Before the folder is made: a weight past half precision's range (folded, for a decomposed
    // layer), the first in the model's order of weights.
    if (float16) {
      if (decomposed) for (const w of plain.weights) check(w, w.read().dataSync());
      for (const w of plain.weights) {
        const problem = outOfRange.get(w.read());
        if (problem !== undefined) throw refuse(problem);
      }
    }
    // Left out of the export (the model keeps them): see ExportResult.warnings.
    const broken = layerPaths(plain).flatMap(({ path: at, layer }) =>
      brokenConstraints(layer).map((b) => ({ ...b, layer: at, className: layer.getClassName() })),
    );
    const warnings = broken.map((b) => droppedConstraintWarning(b, 'exported'));
    const { artifacts, weights } = withoutConstraints(broken, () => modelArtifacts(plain));
    try {
      makeDirs(dir);
    } catch (e) {
      throw new ModelFileError(
        'save-failed',
        dir,
        `exportModel: cannot create folder ${dir}: ${(e as Error).message}`,
        e,
      );
    }
    const previous = await previousExport(dir);
    if (format === 'tfjs') {
      const specs = weights.map(({ spec }) =>
        float16 ? { ...spec, quantization: { dtype: 'float16' as const } } : spec,
      );
      // One buffer per weight, read (and encoded) one at a time: fileSystem
      // writes the shards from them without joining them.
      const weightData: ArrayBuffer[] = [];
      for (const { spec, tensor } of weights) {
        weightData.push(ownBuffer((await encodedWeight(tensor, encoded, format, float16, spec.name)).bytes));
      }
      await fileSystem(dir).save!({ ...artifacts, weightSpecs: specs, weightData });
      const json = JSON.parse(await fs.promises.readFile(path.join(dir, 'model.json'), 'utf8'));
      const files = [
        path.join(dir, 'model.json'),
        ...json.weightsManifest.flatMap((g: any) => g.paths.map((p: string) => path.join(dir, p))),
      ];
      await removeStale(previous, files);
      return { bytes: await sizes(files), files, warnings };
    }

    const entries: SparseWeightEntry[] = [];
    const chunks: Uint8Array[] = [];
    let offset = 0;
    for (const { spec, tensor } of weights) {
      const { bytes, encoding, maskBytes, count } = await encodedWeight(
        tensor,
        encoded,
        format,
        float16,
        spec.name,
      );
      entries.push({
        name: spec.name,
        shape: spec.shape,
        encoding,
        valueDtype: float16 ? 'float16' : 'float32',
        offset,
        maskBytes,
        values: count,
      });
      chunks.push(bytes);
      offset += bytes.length;
    }
    const files = [path.join(dir, 'model.json'), path.join(dir, 'sparse.json'), path.join(dir, 'sparse.bin')];
    const modelJson = {
      modelTopology: artifacts.modelTopology,
      format: artifacts.format,
      generatedBy: artifacts.generatedBy,
      convertedBy:
        'normprune-surgery (sparse weights in sparse.json / sparse.bin: load with loadSparseModel)',
      weightsManifest: [],
      // As tfjs's model.json keeps it (and its loaders restore it): labels, preprocessing, ...
      ...(artifacts.userDefinedMetadata != null
        ? { userDefinedMetadata: artifacts.userDefinedMetadata }
        : {}),
    };
    await writeSparse(dir, files, [
      JSON.stringify(modelJson),
      JSON.stringify({ format: 'normprune-sparse', version: 1, data: 'sparse.bin', weights: entries }),
      chunks,
    ]);
    await removeStale(previous, files);
    await removeLeftovers(dir);
    return { bytes: await sizes(files), files, warnings };
  } finally {
    if (plain !== model) disposeFolded(plain);
  }
}

/**
 * Puts a sparse export's three files (`files`: model.json, sparse.json, sparse.bin) in place
 * so that the directory's model.json loads, at every instant, either the earlier export or
 * the new one, whole. New contents go to temporary files first. An earlier sparse export's
 * sparse.json and sparse.bin are about to be replaced under its model.json, so its model.json
 * is first pointed (one rename) at backup copies of them (`sparseManifest`, which
 * {@link loadSparseModel} follows); then the new files are renamed into place, model.json last.
 */
async function writeSparse(dir: string, files: string[], contents: (string | Uint8Array[])[]): Promise<void> {
  const token = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const tmp = files.map((f) => path.join(dir, `.${path.basename(f)}.${token}.tmp`));
  const backups: string[] = [];
  // Whether model.json names none of the backups (which then go at the end).
  let settled = true;
  try {
    for (const k of [2, 1, 0]) await writeFileDurably(tmp[k], contents[k]);
    const prev = await readSparseExport(dir);
    // An earlier export whose data file is missing does not load anyway: nothing to keep loadable.
    if (prev && fs.existsSync(prev.data)) {
      const data = path.join(dir, `.prev-${token}-${path.basename(prev.data)}`);
      // A file system without hard links gets a copy.
      await fs.promises.link(prev.data, data).catch(() => fs.promises.copyFile(prev.data, data));
      backups.push(data);
      const manifest = path.join(dir, `.prev-${token}-${path.basename(prev.manifestFile)}`);
      backups.push(manifest);
      await writeFileDurably(manifest, JSON.stringify({ ...prev.manifest, data: path.basename(data) }));
      const repointed = path.join(dir, `.prev-model.json.${token}.tmp`);
      tmp.push(repointed);
      await writeFileDurably(
        repointed,
        JSON.stringify({ ...prev.modelJson, sparseManifest: path.basename(manifest) }),
      );
      await fs.promises.rename(repointed, files[0]);
      await syncDir(dir);
      settled = false;
    }
    for (const k of [2, 1, 0]) await fs.promises.rename(tmp[k], files[k]);
    await syncDir(dir);
    settled = true;
  } catch (e) {
    await Promise.all(tmp.map((f) => fs.promises.unlink(f).catch(() => undefined)));
    throw new ModelFileError(
      'save-failed',
      dir,
      `exportModel: writing the sparse export to ${dir} failed, the earlier export there (if any) still loads: ${(e as Error).message}`,
    );
  } finally {
    // After a failure, model.json may still load the earlier export from its backups: they stay,
    // and the next export into `dir` removes them with that export.
    if (settled) await Promise.all(backups.map((f) => fs.promises.unlink(f).catch(() => undefined)));
  }
}

/** An earlier sparse export in `dir`: its model.json, and the manifest and data file that model.json loads. */
interface SparseExport {
  modelJson: Record<string, unknown>;
  manifestFile: string;
  manifest: Record<string, unknown>;
  data: string;
}

/**
 * The sparse export `dir` holds, read as {@link loadSparseModel} reads it (model.json's
 * `sparseManifest`, else sparse.json, then the data file it names), or undefined.
 */
async function readSparseExport(dir: string): Promise<SparseExport | undefined> {
  const readJson = async (f: string | undefined) => {
    try {
      return f === undefined ? undefined : JSON.parse(await fs.promises.readFile(f, 'utf8'));
    } catch {
      return undefined;
    }
  };
  const modelJson = await readJson(path.join(dir, 'model.json'));
  if (!Array.isArray(modelJson?.weightsManifest) || modelJson.weightsManifest.length > 0) return undefined;
  const manifestFile = inside(dir, modelJson.sparseManifest ?? 'sparse.json');
  const manifest = await readJson(manifestFile);
  const data = inside(dir, manifest?.data);
  if (manifest?.format !== 'normprune-sparse' || data === undefined) return undefined;
  return { modelJson, manifestFile: manifestFile!, manifest, data };
}

/**
 * Deletes what sparse exports killed mid-way left in `dir`: temporary files
 * (`.<name>.<pid>-<hex>.tmp`) and backups (`.prev-<pid>-<hex>-<name>`) of
 * processes that no longer exist, unless model.json loads them.
 */
async function removeLeftovers(dir: string): Promise<void> {
  const inUse = await readSparseExport(dir);
  const keep = new Set(inUse ? [inUse.manifestFile, inUse.data].map((f) => path.basename(f)) : []);
  const names = await fs.promises.readdir(dir).catch(() => [] as string[]);
  const stale = names.filter((f) => {
    const m = /^\..+\.(\d+)-[0-9a-f]{8}\.tmp$/.exec(f) ?? /^\.prev-(\d+)-[0-9a-f]{8}-/.exec(f);
    return m != null && !keep.has(f) && processGone(Number(m[1]));
  });
  await Promise.all(stale.map((f) => fs.promises.unlink(path.join(dir, f)).catch(() => undefined)));
}

/**
 * The folder of the sparse export `dir` names and its model.json: `dir` is the folder, or the
 * model.json itself (a `.json` path that is not a folder), as `fileSystem` and
 * `loadLayersModel` take a tfjs model.
 */
async function sparseModelFile(
  dir: unknown,
): Promise<{ folder: string; modelFile: string; namedOtherJson: boolean }> {
  if (typeof dir === 'string' && dir !== '') {
    const plain = filePath(dir, 'loadSparseModel');
    const stat = await fs.promises.stat(plain).catch(() => undefined);
    if (stat?.isDirectory())
      return { folder: plain, modelFile: path.join(plain, 'model.json'), namedOtherJson: false };
    if (plain.endsWith('.json'))
      return {
        folder: path.dirname(plain),
        modelFile: plain,
        namedOtherJson: path.basename(plain) !== 'model.json',
      };
  }
  const folder = await modelDir(dir, 'loadSparseModel');
  return { folder, modelFile: path.join(folder, 'model.json'), namedOtherJson: false };
}

/**
 * Loads a model written by `exportModel(model, dir, { format: 'sparse' })`. `dir` is the
 * export's directory or its model.json (a path or a `file://` URL), or an `http://` or
 * `https://` URL of its model.json or its folder, which is fetched as the browser build's
 * `loadSparseModel` does (with `options`, which are not used on disk but are checked there
 * too: an unknown key or a value of the wrong type is an `invalid-argument` error). Reads model.json, then the manifest its
 * `sparseManifest` names (else sparse.json), then the data file the manifest names. Throws,
 * naming the file, when a file cannot be read, is not JSON or not a normprune-sparse v1
 * manifest, is truncated, is longer than its records, or lies outside `dir`, when a manifest entry is malformed (shape,
 * encoding, value type, bitmask size or value count that disagree, a repeated name, more than
 * 2^28 elements) or does not fit the topology, and for a `'tfjs'` export (load that with
 * `tfl.loadLayersModel`); each a {@link ModelFileError} whose `code` says which. A refusal leaves
 * no tensor behind, and the loaded model's `dispose()` frees all its weights.
 *
 * ```ts
 * const loaded = await loadSparseModel(dir); // or loadSparseModel(`${dir}/model.json`)
 * const y = loaded.predict(xs) as tf.Tensor;
 * ```
 */
export async function loadSparseModel(dir: string, options?: LoadSparseOptions): Promise<tfl.LayersModel> {
  if (typeof dir === 'string' && /^https?:\/\//i.test(dir)) return loadSparseModelFromUrl(dir, options);
  const { folder, modelFile, namedOtherJson } = await sparseModelFile(dir);
  checkLoadOptions(options, modelFile);
  return readSparseModel({
    folder,
    modelFile,
    namedOtherJson,
    locate: (name) => inside(folder, name),
    async read(file) {
      try {
        return await fs.promises.readFile(file);
      } catch (e) {
        // No model.json: nothing exported there; a file model.json names is gone: a damaged export.
        const code =
          (e as NodeJS.ErrnoException).code !== 'ENOENT'
            ? 'read-failed'
            : file === modelFile
              ? 'missing'
              : 'damaged';
        throw new ModelFileError(
          code,
          file,
          `loadSparseModel: cannot read ${file}: ${(e as Error).message}`,
          e,
        );
      }
    },
    tfjsLoader: 'tfl.loadLayersModel(fileSystem(dir)) from @normprune/runtime',
  });
}
