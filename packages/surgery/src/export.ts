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
// Weights where that would not save space are stored 'dense' (row-major).
// Values are float32 or, with float16, IEEE half precision, little-endian.
// While an export replaces an earlier one, model.json names the manifest to read
// in "sparseManifest" (backup copies of the earlier files; see writeSparse).
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describeValue as describe, fold } from '@normprune/layers';
import {
  fileSystem,
  makeDirs,
  ModelFileError,
  processGone,
  syncDir,
  writeFileDurably,
} from '@normprune/runtime';
import { checkModel, hasDecomposed } from './folding.js';

/** Options of {@link exportModel}. */
export interface ExportOptions {
  /** 'tfjs' (default): standard TensorFlow.js files. 'sparse': zero groups stored as a bitmask. */
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
}

/** One weight in `sparse.json`. */
export interface SparseWeightEntry {
  /** The tfjs weight name (as in a standard weights manifest). */
  name: string;
  /** The weight's shape. */
  shape: number[];
  /** 'bitmask': a bit per group over the last two axes, then the stored groups' values; 'dense': all values. */
  encoding: 'dense' | 'bitmask';
  /** Storage type of the values. */
  valueDtype: 'float32' | 'float16';
  /** Byte offset of this weight's record in sparse.bin. */
  offset: number;
  /** Bitmask bytes at `offset` (0 for 'dense'). */
  maskBytes: number;
  /** Values stored after the bitmask. */
  values: number;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 -> IEEE half bits, round to nearest even (the same values tfjs' float16 decoder reads back). */
export function toFloat16(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

/** IEEE half bits -> number. */
export function fromFloat16(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
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

function decodeValues(bytes: Uint8Array, count: number, float16: boolean): Float32Array {
  // A copy: Node Buffers are views into a shared pool, at any alignment.
  const copy = new Uint8Array(bytes.subarray(0, count * (float16 ? 2 : 4))).buffer;
  if (!float16) return new Float32Array(copy);
  const h = new Uint16Array(copy);
  return Float32Array.from(h, fromFloat16);
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
  const artifacts: tf.io.ModelArtifacts = {
    modelTopology: model.toJSON(null, false) as tf.io.ModelArtifacts['modelTopology'],
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
 * A weight's values: on the cpu backend its own array (nothing is copied),
 * on wasm a copy out of the heap.
 */
async function readValues(tensor: tf.Tensor): Promise<Float32Array> {
  return (await tensor.data()) as Float32Array;
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
 * the sparse format's file names are fixed.
 */
async function modelDir(dir: unknown, who: string): Promise<string> {
  if (typeof dir !== 'string' || dir === '')
    throw new ModelFileError(
      'invalid-argument',
      String(dir),
      `${who}: dir must be a directory path or a file:// URL, got ${describe(dir)}`,
    );
  const plain = dir.startsWith('file://') ? fileURLToPath(dir) : dir;
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
 * Saves a model under `dir` and returns the bytes on disk and the files written. Decomposed
 * layers are folded first, so the files contain only standard layers. `'tfjs'` loads with
 * plain `tfl.loadLayersModel` (e.g. through `fileSystem(dir)` from @normprune/runtime);
 * `'sparse'` loads with {@link loadSparseModel}. `dir` is a directory path or a `file://` URL.
 * Exporting again into the same directory replaces the earlier export, in either format: its
 * weight files are removed once the new files are in place, so a loader never mixes the two.
 * While a `'sparse'` export replaces an earlier sparse one, the earlier model.json carries a
 * `sparseManifest` entry naming backup copies of its files (see the package README).
 * The directory is created if missing. Throws for a `dir` that is not a string, names a `.json`
 * file or an existing non-directory, or cannot be created, and for an unknown `format`.
 */
export async function exportModel(
  model: tfl.LayersModel,
  dir: string,
  options: ExportOptions = {},
): Promise<ExportResult> {
  checkModel(model, 'exportModel');
  dir = await modelDir(dir, 'exportModel');
  // A string where the options go (exportModel(m, dir, 'sparse')) would otherwise be read as
  // no options at all, and a string float16 ('false' from a CLI or JSON) as true.
  if (options === null || typeof options !== 'object' || Array.isArray(options))
    throw new Error(
      `exportModel: options must be an object such as { format: 'sparse', float16: true }, got ${describe(options)}`,
    );
  const format = options.format ?? 'tfjs';
  const float16 = options.float16 ?? false;
  if (format !== 'tfjs' && format !== 'sparse')
    throw new Error(`exportModel: unknown format '${String(format)}' (use 'tfjs' or 'sparse')`);
  if (typeof float16 !== 'boolean')
    throw new Error(
      `exportModel: float16 must be true (weights stored as float16, half the bytes) or false, got ${describe(float16)}`,
    );
  const plain = hasDecomposed(model) ? fold(model) : model;
  try {
    const { artifacts, weights } = modelArtifacts(plain);
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
        weightData.push(ownBuffer(encodeValues(await readValues(tensor), float16, spec.name)));
      }
      await fileSystem(dir).save!({ ...artifacts, weightSpecs: specs, weightData });
      const json = JSON.parse(await fs.promises.readFile(path.join(dir, 'model.json'), 'utf8'));
      const files = [
        path.join(dir, 'model.json'),
        ...json.weightsManifest.flatMap((g: any) => g.paths.map((p: string) => path.join(dir, p))),
      ];
      await removeStale(previous, files);
      return { bytes: await sizes(files), files };
    }

    const entries: SparseWeightEntry[] = [];
    const chunks: Uint8Array[] = [];
    let offset = 0;
    for (const { spec, tensor } of weights) {
      const values = await readValues(tensor);
      const shape = spec.shape;
      const valueBytes = float16 ? 2 : 4;
      let encoding: SparseWeightEntry['encoding'] = 'dense';
      let record = encodeValues(values, float16, spec.name);
      let maskBytes = 0;
      let count = values.length;
      if (shape.length >= 2) {
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
        if (mask.length + live * K * valueBytes < values.length * valueBytes) {
          const packed = new Float32Array(live * K);
          let p = 0;
          for (let q = 0; q < groups; q++) {
            if (!(mask[q >> 3] & (1 << (q & 7)))) continue;
            for (let k = 0; k < K; k++) packed[p++] = values[k * groups + q];
          }
          const vals = encodeValues(packed, float16, spec.name);
          record = new Uint8Array(mask.length + vals.length);
          record.set(mask, 0);
          record.set(vals, mask.length);
          encoding = 'bitmask';
          maskBytes = mask.length;
          count = live * K;
        }
      }
      entries.push({
        name: spec.name,
        shape,
        encoding,
        valueDtype: float16 ? 'float16' : 'float32',
        offset,
        maskBytes,
        values: count,
      });
      chunks.push(record);
      offset += record.length;
    }
    const files = [path.join(dir, 'model.json'), path.join(dir, 'sparse.json'), path.join(dir, 'sparse.bin')];
    const modelJson = {
      modelTopology: artifacts.modelTopology,
      format: artifacts.format,
      generatedBy: artifacts.generatedBy,
      convertedBy:
        'normprune-surgery (sparse weights in sparse.json / sparse.bin: load with loadSparseModel)',
      weightsManifest: [],
    };
    await writeSparse(dir, files, [
      JSON.stringify(modelJson),
      JSON.stringify({ format: 'normprune-sparse', version: 1, data: 'sparse.bin', weights: entries }),
      chunks,
    ]);
    await removeStale(previous, files);
    await removeLeftovers(dir);
    return { bytes: await sizes(files), files };
  } finally {
    if (plain !== model) plain.dispose();
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
function parseJson(bytes: Buffer, file: string): any {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new ModelFileError(
      'damaged',
      file,
      `loadSparseModel: ${file} is not valid JSON (${(e as Error).message}); export the model again`,
    );
  }
}

/**
 * Most weight elements loadSparseModel holds (1 GiB of float32): a bitmask weight's size is not
 * bounded by the file (a dead group takes one bit), so a damaged shape could otherwise ask for
 * any allocation.
 */
const MAX_SPARSE_ELEMENTS = 2 ** 28;

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** Why `w`, a `weights` entry of a sparse manifest, is unusable (or undefined), before any byte is read. */
function badSparseEntry(w: unknown): string | undefined {
  if (w === null || typeof w !== 'object' || Array.isArray(w)) return 'it is not an object';
  const e = w as Record<string, unknown>;
  if (typeof e.name !== 'string' || e.name === '') return '"name" must be a non-empty string';
  if (!Array.isArray(e.shape) || !e.shape.every(isCount))
    return '"shape" must be an array of non-negative integers';
  if (e.encoding !== 'dense' && e.encoding !== 'bitmask') return '"encoding" must be "dense" or "bitmask"';
  if (e.valueDtype !== 'float32' && e.valueDtype !== 'float16')
    return '"valueDtype" must be "float32" or "float16"';
  if (!isCount(e.offset) || !isCount(e.maskBytes) || !isCount(e.values))
    return '"offset", "maskBytes" and "values" must be non-negative integers';
  const shape = e.shape as number[];
  const size = shape.reduce((a, b) => a * b, 1);
  const shown = `[${shape.join(',')}]`;
  if (size > MAX_SPARSE_ELEMENTS)
    return `its shape ${shown} has ${size} elements, more than loadSparseModel holds (${MAX_SPARSE_ELEMENTS})`;
  if (e.encoding === 'dense') {
    if (e.values !== size || e.maskBytes !== 0)
      return `a 'dense' weight of shape ${shown} stores ${size} values and no bitmask, not ${e.values} values and ${e.maskBytes} bitmask bytes`;
    return undefined;
  }
  if (shape.length < 2) return `a 'bitmask' weight needs at least 2 axes, shape is ${shown}`;
  const groups = shape[shape.length - 2] * shape[shape.length - 1];
  if (e.maskBytes !== Math.ceil(groups / 8))
    return `a 'bitmask' weight of shape ${shown} has a bitmask of ${Math.ceil(groups / 8)} bytes (a bit per group of its last two axes), not ${e.maskBytes}`;
  return undefined;
}

/**
 * Loads a model written by `exportModel(model, dir, { format: 'sparse' })` (`dir` a path or a
 * `file://` URL): model.json, then the manifest its `sparseManifest` names (else sparse.json),
 * then the data file the manifest names. Throws, naming the file, when a file cannot be read,
 * is not JSON or not a normprune-sparse v1 manifest, is truncated, or lies outside `dir`, when a
 * manifest entry is malformed (shape, encoding, value type, bitmask size or value count that
 * disagree, a repeated name, more than 2^28 elements) or does not fit the topology, and for a
 * `'tfjs'` export (load that with `tfl.loadLayersModel`).
 */
export async function loadSparseModel(dir: string): Promise<tfl.LayersModel> {
  dir = await modelDir(dir, 'loadSparseModel');
  const read = async (f: string) => {
    const file = path.join(dir, f);
    try {
      return await fs.promises.readFile(file);
    } catch (e) {
      // No model.json: nothing exported there; a file model.json names is gone: a damaged export.
      const code =
        (e as NodeJS.ErrnoException).code !== 'ENOENT'
          ? 'read-failed'
          : f === 'model.json'
            ? 'missing'
            : 'damaged';
      throw new ModelFileError(
        code,
        file,
        `loadSparseModel: cannot read ${file}: ${(e as Error).message}`,
        e,
      );
    }
  };
  const modelFile = path.join(dir, 'model.json');
  const modelJson = parseJson(await read('model.json'), modelFile);
  if (
    modelJson === null ||
    typeof modelJson !== 'object' ||
    Array.isArray(modelJson) ||
    modelJson.modelTopology === null ||
    typeof modelJson.modelTopology !== 'object'
  )
    throw new ModelFileError(
      'damaged',
      modelFile,
      `loadSparseModel: ${modelFile} is not a model.json (a JSON object with "modelTopology"); export the model again`,
    );
  if (Array.isArray(modelJson?.weightsManifest) && modelJson.weightsManifest.length > 0)
    throw new ModelFileError(
      'unsupported',
      modelFile,
      `loadSparseModel: ${modelFile} is a 'tfjs' export (its weights are in its manifest): load it with tfl.loadLayersModel(fileSystem(dir)) from @normprune/runtime`,
    );
  // model.json names its manifest while an export replaces an earlier one (see writeSparse).
  const manifestName = modelJson.sparseManifest ?? 'sparse.json';
  if (inside(dir, manifestName) === undefined)
    throw new ModelFileError(
      'unsafe-path',
      modelFile,
      `loadSparseModel: ${modelFile} names the manifest ${JSON.stringify(manifestName)}, not a file in ${dir}`,
    );
  const manifest = parseJson(await read(manifestName), path.join(dir, manifestName));
  const manifestFile = path.join(dir, manifestName);
  if (manifest?.format !== 'normprune-sparse' || manifest.version !== 1) {
    throw new ModelFileError(
      'damaged',
      manifestFile,
      `loadSparseModel: ${manifestFile} is not a normprune-sparse v1 manifest`,
    );
  }
  if (inside(dir, manifest.data) === undefined)
    throw new ModelFileError(
      'unsafe-path',
      manifestFile,
      `loadSparseModel: ${manifestFile} names the data file ${JSON.stringify(manifest.data)}, not a file in ${dir}`,
    );
  // Every entry is checked before the data file is read: the manifest is untrusted input.
  const refuse = (why: string) =>
    new ModelFileError(
      'damaged',
      manifestFile,
      `loadSparseModel: ${manifestFile}: ${why}; export the model again`,
    );
  if (!Array.isArray(manifest.weights)) throw refuse('"weights" must be an array');
  const seen = new Map<string, number>();
  let total = 0;
  (manifest.weights as unknown[]).forEach((w, j) => {
    const name = (w as { name?: unknown } | null)?.name;
    const label = `weights[${j}]${typeof name === 'string' ? ` (${JSON.stringify(name)})` : ''}`;
    const why = badSparseEntry(w);
    if (why !== undefined) throw refuse(`${label}: ${why}`);
    const e = w as SparseWeightEntry;
    if (seen.has(e.name)) throw refuse(`${label}: the name is also weights[${seen.get(e.name)}]'s`);
    seen.set(e.name, j);
    total += e.shape.reduce((a, b) => a * b, 1);
    if (total > MAX_SPARSE_ELEMENTS)
      throw refuse(
        `${label}: the weights up to here have ${total} elements, more than loadSparseModel holds (${MAX_SPARSE_ELEMENTS})`,
      );
  });
  const bin = await read(manifest.data);
  const specs: tf.io.WeightsManifestEntry[] = [];
  const arrays: Float32Array[] = [];
  (manifest.weights as SparseWeightEntry[]).forEach((w, j) => {
    const float16 = w.valueDtype === 'float16';
    const size = w.shape.reduce((a, b) => a * b, 1);
    const end = w.offset + w.maskBytes + w.values * (float16 ? 2 : 4);
    if (end > bin.length)
      throw new ModelFileError(
        'damaged',
        path.join(dir, manifest.data),
        `loadSparseModel: ${path.join(dir, manifest.data)} is truncated (weight '${w.name}' needs bytes up to ${end}, ` +
          `file has ${bin.length}): copy or export the model again`,
      );
    let out: Float32Array;
    if (w.encoding === 'dense') out = decodeValues(bin.subarray(w.offset), w.values, float16);
    else {
      const cin = w.shape[w.shape.length - 2];
      const cout = w.shape[w.shape.length - 1];
      const groups = cin * cout;
      const K = groups === 0 ? 0 : size / groups;
      const mask = bin.subarray(w.offset, w.offset + w.maskBytes);
      let stored = 0;
      for (let q = 0; q < groups; q++) if (mask[q >> 3] & (1 << (q & 7))) stored++;
      if (stored * K !== w.values)
        throw refuse(
          `weights[${j}] (${JSON.stringify(w.name)}): its bitmask stores ${stored} groups of ${K} values (${stored * K} values), but "values" says ${w.values}`,
        );
      const vals = decodeValues(bin.subarray(w.offset + w.maskBytes), w.values, float16);
      out = new Float32Array(size);
      let p = 0;
      for (let q = 0; q < groups; q++) {
        if (!(mask[q >> 3] & (1 << (q & 7)))) continue;
        for (let k = 0; k < K; k++) out[k * groups + q] = vals[p++];
      }
    }
    specs.push({ name: w.name, shape: w.shape, dtype: 'float32' });
    arrays.push(out);
  });
  const data = new Float32Array(arrays.reduce((a, x) => a + x.length, 0));
  let off = 0;
  for (const a of arrays) {
    data.set(a, off);
    off += a.length;
  }
  try {
    return await tfl.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: modelJson.modelTopology,
        weightSpecs: specs,
        weightData: data.buffer,
      }),
    );
  } catch (e) {
    // The entries are well formed, so what tfjs refuses is their fit to the topology
    // (a weight missing, unknown or of another shape), or the topology itself.
    throw new ModelFileError(
      'damaged',
      manifestFile,
      `loadSparseModel: the weights of ${manifestFile} do not fit the model in ${modelFile} (${(e as Error).message}); export the model again`,
    );
  }
}
