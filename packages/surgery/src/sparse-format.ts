// The sparse format's reader: validating model.json and the manifest,
// decoding sparse.bin into weights, and assembling the model. Where the bytes
// come from is a SparseFiles, given by the caller: files on disk for Node's
// loadSparseModel (export.ts), fetched URLs for the browser build's and for
// Node's given an http(s) URL (sparse-url.ts). It imports nothing from Node
// (no fs, path, Buffer or process), so the browser build bundles it: one
// decoder. The format is described in export.ts.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { disposesEveryCall } from '@normprune/layers';
import { ModelFileError } from '@normprune/runtime';

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

/** `count` values at the start of `bytes`, as float32. */
function decodeValues(bytes: Uint8Array, count: number, float16: boolean): Float32Array {
  // A copy: the bytes may be a view at any alignment (a Node Buffer is one into a shared pool).
  const copy = new Uint8Array(bytes.subarray(0, count * (float16 ? 2 : 4))).buffer;
  if (!float16) return new Float32Array(copy);
  const h = new Uint16Array(copy);
  return Float32Array.from(h, fromFloat16);
}

function parseJson(bytes: Uint8Array, file: string): any {
  try {
    // As Node's Buffer#toString('utf8') reads it: a byte order mark is kept (and refused by JSON.parse).
    return JSON.parse(new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes));
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
 * Where a sparse export's files come from: a folder on disk (Node) or a folder URL (fetch).
 * @internal
 */
export interface SparseFiles {
  /** The folder, as messages name it. */
  folder: string;
  /** model.json, as messages name it (and as `read` takes it). */
  modelFile: string;
  /**
   * Whether the caller named a JSON file not called model.json (`sparse.json`, `config.json`),
   * rather than a folder or a model.json: one that is no model is then the wrong file, not a
   * damaged export.
   */
  namedOtherJson: boolean;
  /** The file `name` of the folder, as messages name it and `read` takes it; undefined when `name` is not a file in the folder. */
  locate(name: unknown): string | undefined;
  /**
   * The bytes of `file` (model.json or a `locate` result), or a ModelFileError naming it:
   * `missing` for a model.json that is not there, `damaged` for another file that is not.
   */
  read(file: string): Promise<Uint8Array>;
  /** What to do with a 'tfjs' export instead, completing "load it with ...". */
  tfjsLoader: string;
}

/**
 * The model of a sparse export: model.json, then the manifest its `sparseManifest` names (else
 * sparse.json), then the data file the manifest names, each checked before the next is read.
 * @internal
 */
export async function readSparseModel(files: SparseFiles): Promise<tfl.LayersModel> {
  const { folder: dir, modelFile } = files;
  const modelJson = parseJson(await files.read(modelFile), modelFile);
  if (
    modelJson === null ||
    typeof modelJson !== 'object' ||
    Array.isArray(modelJson) ||
    modelJson.modelTopology === null ||
    typeof modelJson.modelTopology !== 'object'
  ) {
    // A .json file the caller named (not the model.json of a folder): the wrong file, not a damaged one.
    if (modelJson?.format === 'normprune-sparse')
      throw new ModelFileError(
        'invalid-argument',
        modelFile,
        `loadSparseModel: ${modelFile} is a sparse export's manifest, not its model.json: pass the folder that holds them (${dir}) or its model.json`,
      );
    if (files.namedOtherJson)
      throw new ModelFileError(
        'invalid-argument',
        modelFile,
        `loadSparseModel: ${modelFile} is not a model.json (a JSON object with "modelTopology"): pass the model.json that exportModel wrote, or its folder`,
      );
    throw new ModelFileError(
      'damaged',
      modelFile,
      `loadSparseModel: ${modelFile} is not a model.json (a JSON object with "modelTopology"); export the model again`,
    );
  }
  if (Array.isArray(modelJson?.weightsManifest) && modelJson.weightsManifest.length > 0)
    throw new ModelFileError(
      'unsupported',
      modelFile,
      `loadSparseModel: ${modelFile} is a 'tfjs' export (its weights are in its manifest): load it with ${files.tfjsLoader}`,
    );
  // model.json names its manifest while an export replaces an earlier one (see writeSparse).
  const manifestName = modelJson.sparseManifest ?? 'sparse.json';
  const manifestFile = files.locate(manifestName);
  if (manifestFile === undefined)
    throw new ModelFileError(
      'unsafe-path',
      modelFile,
      `loadSparseModel: ${modelFile} names the manifest ${JSON.stringify(manifestName)}, not a file in ${dir}`,
    );
  const manifest = parseJson(await files.read(manifestFile), manifestFile);
  // A later version of the format is not a damaged file: this reader is too old for it.
  if (
    manifest?.format === 'normprune-sparse' &&
    Number.isSafeInteger(manifest.version) &&
    manifest.version > 1
  )
    throw new ModelFileError(
      'unsupported',
      manifestFile,
      `loadSparseModel: ${manifestFile} is a normprune-sparse v${manifest.version} manifest, written by a newer ` +
        '@normprune/surgery; this version reads v1 only: upgrade @normprune/surgery to load it',
    );
  if (manifest?.format !== 'normprune-sparse' || manifest.version !== 1) {
    throw new ModelFileError(
      'damaged',
      manifestFile,
      `loadSparseModel: ${manifestFile} is not a normprune-sparse v1 manifest`,
    );
  }
  const dataFile = files.locate(manifest.data);
  if (dataFile === undefined)
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
  const bin = await files.read(dataFile);
  const { specs, data } = decodeSparseWeights(manifest.weights as SparseWeightEntry[], bin, dataFile, refuse);
  // tfl.loadLayersModel(tf.io.fromMemory(...)) would do this too, but when the weights do not fit
  // it throws after building the model and leaves the model's weights allocated: here the model
  // is built first and disposed if its weights are refused. The cost: the model's initialisers
  // run, which tfjs's loader skips (about 50 ms more per million weights, measured on the cpu
  // backend with a 20M-weight model: 1.4 s against 0.4 s).
  const named = tf.io.decodeWeights(data.buffer as ArrayBuffer, specs);
  let model: tfl.LayersModel | undefined;
  try {
    model = await buildModel(modelJson.modelTopology as tf.io.ModelJSON['modelTopology']);
    const built = model;
    // tfjs's LayerVariable.write assigns a constrained weight the constraint's output and keeps
    // no reference to free it: one tensor per weight with a kernelConstraint or biasConstraint
    // (tfl.loadLayersModel leaves them allocated). The variables hold their values either way.
    tf.tidy(() => built.loadWeights(named));
  } catch (e) {
    model?.dispose();
    // The entries are well formed, so what tfjs refuses is their fit to the topology
    // (a weight missing, unknown or of another shape), or the topology itself.
    throw new ModelFileError(
      'damaged',
      manifestFile,
      `loadSparseModel: the weights of ${manifestFile} do not fit the model in ${modelFile} (${(e as Error).message}); export the model again`,
    );
  } finally {
    tf.dispose(named);
  }
  // model.setUserDefinedMetadata, as tfjs's loaders restore it from a 'tfjs' model.json.
  if (modelJson.userDefinedMetadata != null) {
    try {
      model.setUserDefinedMetadata(modelJson.userDefinedMetadata);
    } catch (e) {
      model.dispose();
      throw new ModelFileError(
        'damaged',
        modelFile,
        `loadSparseModel: the "userDefinedMetadata" of ${modelFile} is not what tfjs takes (${(e as Error).message}); export the model again`,
      );
    }
  }
  return model;
}

/**
 * The model `topology` describes, built with tfjs's `modelFromJSON`. When tfjs refuses the
 * topology part way (a layer of a class it does not know, such as a custom layer whose module was
 * not imported, or a config it refuses), the layers it built before are unreachable and their
 * weights stayed allocated (4 tensors for a Sequential of two Dense layers and an unknown third):
 * those variables are disposed before the refusal passes on. tfjs builds the layers synchronously
 * inside `modelFromJSON` (it awaits nothing before without a weights manifest), so the variables
 * registered between the call and its return are the model's alone. The model's `dispose()` frees
 * every weight, also of a layer or nested model it applies more than once (see
 * `disposesEveryCall` of @normprune/layers; tfjs's loaders leave those allocated).
 */
async function buildModel(topology: tf.io.ModelJSON['modelTopology']): Promise<tfl.LayersModel> {
  const registered = () => tf.engine().registeredVariables;
  const before = new Set(Object.keys(registered()));
  const building = tfl.models.modelFromJSON({ modelTopology: topology });
  const made = Object.entries(registered())
    .filter(([name]) => !before.has(name))
    .map(([, v]) => v);
  try {
    // A layer or nested model the file's model applies more than once: freed by dispose() too.
    return disposesEveryCall(await building);
  } catch (e) {
    tf.dispose(made.filter((v) => !v.isDisposed));
    throw e;
  }
}

/**
 * The float32 weights that `entries` (checked by {@link badSparseEntry}) store in `bin`, the
 * bytes of the data file `dataFile`: their specs and their values joined in one buffer, as
 * `tf.io.fromMemory` takes them. Throws for a file cut short, or, through `refuse`, for a
 * bitmask whose set bits disagree with its entry's value count.
 */
function decodeSparseWeights(
  entries: SparseWeightEntry[],
  bin: Uint8Array,
  dataFile: string,
  refuse: (why: string) => Error,
): { specs: tf.io.WeightsManifestEntry[]; data: Float32Array } {
  const specs: tf.io.WeightsManifestEntry[] = [];
  const arrays: Float32Array[] = [];
  // Where the records before this one end: each weight's record follows the previous one's.
  let expected = 0;
  entries.forEach((w, j) => {
    const float16 = w.valueDtype === 'float16';
    const size = w.shape.reduce((a, b) => a * b, 1);
    // Records overlapping or leaving gaps would read another weight's bytes as this one's.
    if (w.offset !== expected)
      throw refuse(
        `weights[${j}] (${JSON.stringify(w.name)}): its record starts at byte ${w.offset} of the data file, ` +
          `but ${j === 0 ? 'the first record starts at byte 0' : `the records before it end at byte ${expected}`} ` +
          '(each weight follows the one before it)',
      );
    const end = w.offset + w.maskBytes + w.values * (float16 ? 2 : 4);
    expected = end;
    if (end > bin.length)
      throw new ModelFileError(
        'damaged',
        dataFile,
        `loadSparseModel: ${dataFile} is truncated (weight '${w.name}' needs bytes up to ${end}, ` +
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
  // Bytes past the last record: the data file of another export (a larger one), whose values
  // would otherwise be read at this manifest's offsets as this model's weights.
  if (bin.length !== expected)
    throw new ModelFileError(
      'damaged',
      dataFile,
      `loadSparseModel: ${dataFile} has ${bin.length} bytes, but the weights its manifest lists end at byte ${expected}: ` +
        'it is not the data file of that manifest (one from another export?): copy or export the model again',
    );
  const data = new Float32Array(arrays.reduce((a, x) => a + x.length, 0));
  let off = 0;
  for (const a of arrays) {
    data.set(a, off);
    off += a.length;
  }
  return { specs, data };
}
