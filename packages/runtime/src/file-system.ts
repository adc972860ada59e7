import * as tf from '@tensorflow/tfjs-core';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { processGone } from './process.js';
import { ModelFileError } from './errors.js';

/** Shard size of the tfjs converter and of tfjs's browser `downloads://` writer. */
const SHARD_BYTES = 4 * 1024 * 1024;
const MODEL_JSON = 'model.json';
/**
 * Above `joinBytes` weight bytes, load hands tfjs the shards as a list of
 * buffers instead of reading them into one. Tests lower it. @internal
 */
export const fileSystemLimits = { joinBytes: 1 << 30 };

/** Bytes per stored element; `string` weights have no fixed size. */
const STORED_BYTES: Record<string, number> = {
  float32: 4,
  int32: 4,
  bool: 1,
  complex64: 8,
  uint8: 1,
  uint16: 2,
  float16: 2,
};

/**
 * The on-disk location of a model: the directory and the name of its JSON
 * file (`model.json` unless the caller pointed at another `.json` file).
 */
interface Location {
  dir: string;
  jsonName: string;
}

/**
 * Creates `dir` and any missing parents, like `mkdir -p`. Node's
 * `mkdir(dir, { recursive: true })` never returns for some paths (under
 * `/proc` on Node 20); this one goes one level at a time and fails at once with
 * the error of the first folder it cannot create.
 */
export function makeDirs(dir: string): void {
  const missing: string[] = [];
  let d = path.resolve(dir);
  while (!fs.existsSync(d)) {
    missing.push(d);
    const up = path.dirname(d);
    if (up === d) break;
    d = up;
  }
  for (const m of missing.reverse()) {
    try {
      fs.mkdirSync(m);
    } catch (e) {
      // Another process may have made it between the check and here.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  // Like mkdir -p, a file in the way is an error, not a folder made.
  if (!fs.statSync(dir).isDirectory()) {
    const e: NodeJS.ErrnoException = new Error(`EEXIST: ${path.resolve(dir)} exists and is not a directory`);
    e.code = 'EEXIST';
    throw e;
  }
}

/**
 * Whether a file name is a model JSON file's, as {@link locate} takes one: `.json` in any case
 * (`fileSystem('dir/V1.JSON')` saves and loads `V1.JSON`), so the other models of a folder are
 * found whatever the case of their extension.
 */
function isJsonName(name: string): boolean {
  return name.toLowerCase().endsWith('.json');
}

function locate(target: string): Location {
  if (typeof target !== 'string' || target.length === 0) {
    // JSON.stringify showed a URL object as the string it stands for ('got "file:///m"'), which reads
    // as if that string were refused.
    const given: unknown = target;
    const shown =
      given instanceof URL ? `a URL object ('${given.href}'): pass its string, url.href` : shownValue(given);
    throw new ModelFileError(
      'invalid-argument',
      String(target),
      `fileSystem(dir): expected a directory path or a file:// URL string, got ${shown}`,
    );
  }
  // `file://` is the scheme tfjs-node routes to its own handler; accepting it
  // lets code written for tfjs-node keep its paths. An absolute URL
  // (`file:///abs`, `file://localhost/abs`) is decoded as a URL (one with a
  // `#` fragment or a `?` query is refused: urlToPath); tfjs-node
  // strips the scheme, so `file://./model` and `file://model` are relative
  // paths there, and here too (fileURLToPath would take `.` for a host and throw).
  const rest = target.startsWith('file://') ? target.slice('file://'.length) : undefined;
  if (rest === '') {
    throw new ModelFileError(
      'invalid-argument',
      target,
      "fileSystem(dir): the URL 'file://' names no path; write file:///abs/dir, or file://./dir for a folder of the working directory",
    );
  }
  const plain =
    rest === undefined
      ? target
      : rest.startsWith('/') || rest.toLowerCase().startsWith('localhost/')
        ? urlToPath(target)
        : rest;
  const resolved = path.resolve(plain);
  if (isJsonName(resolved)) return { dir: path.dirname(resolved), jsonName: path.basename(resolved) };
  return { dir: resolved, jsonName: MODEL_JSON };
}

/**
 * An absolute `file:` URL as a path; one Node cannot map to a path is
 * `invalid-argument`, and so is one with a fragment or a query: they are not
 * part of a URL's path, and dropping them (as `fileURLToPath` does) made
 * `file:///ckpt/run#1` and `file:///ckpt/run#2` one folder, `run`, the second
 * save silently replacing the first. In a URL a `#` or `?` of a folder's name
 * is written `%23` or `%3F`, which is decoded like `%20`.
 */
function urlToPath(url: string): string {
  const at = url.search(/[#?]/);
  if (at >= 0) {
    const encoded = url.replace(/#/g, '%23').replace(/\?/g, '%3F');
    let asPath = '';
    try {
      asPath = ` ('${fileURLToPath(encoded)}')`;
    } catch {
      /* the URL names no local path either; the suggestion goes without it */
    }
    throw new ModelFileError(
      'invalid-argument',
      url,
      `fileSystem(dir): '${url}' has a URL ${url[at] === '#' ? 'fragment' : 'query'} ('${url.slice(at)}'), ` +
        "which is not part of a file:// URL's path and would be dropped (two URLs differing only there would name one folder); " +
        `for a folder whose name holds it, write '#' as %23 and '?' as %3F ('${encoded}'), or pass the path itself${asPath}`,
    );
  }
  try {
    return fileURLToPath(url);
  } catch (e) {
    throw new ModelFileError(
      'invalid-argument',
      url,
      `fileSystem(dir): '${url}' is not a file:// URL of a local path (${(e as Error).message}); pass the path itself`,
      e,
    );
  }
}

function tempName(final: string, token: string): string {
  // Dot-prefixed and `.tmp`-suffixed, so neither a loader nor a `ls` glob for
  // shards ever mistakes a leftover from an interrupted save for model data.
  return `.${final}.${token}.tmp`;
}

/**
 * Writes `data` (a string, or byte arrays written one after another, never
 * joined into one copy; a typed array of another type stands for the bytes it
 * views, and anything else is a `TypeError` before the file is created) to the new file `file` and flushes it to disk before
 * returning, so that once the file is renamed into place a crash never leaves
 * it there empty or cut short. The file must not exist (it is opened with
 * `wx`): write under a fresh temporary name, rename it into place, then
 * {@link syncDir} the folder.
 *
 * @throws Node's error (`EEXIST` for a file that exists, `ENOSPC`, ...); a
 *   file left half written by a failed write is the caller's to remove.
 */
export async function writeFileDurably(
  file: string,
  data: string | ArrayBufferView | readonly ArrayBufferView[],
): Promise<void> {
  // A typed array stands for the bytes it views, as in fileSystem's weightData. Checked before the
  // file is created: a Float32Array taken for a list of parts failed in the first write ("The
  // "data" argument must be of type string or ...: Received type number"), leaving an empty file.
  const parts: readonly unknown[] =
    typeof data === 'string' || ArrayBuffer.isView(data) ? [data] : Array.isArray(data) ? data : [data];
  const bad = parts.findIndex((p) => !(typeof p === 'string' || ArrayBuffer.isView(p)));
  if (bad >= 0)
    throw new TypeError(
      `writeFileDurably(${JSON.stringify(file)}, data): data must be a string, a typed array (its bytes) ` +
        `or a list of them, got ${Array.isArray(data) ? `a list whose part ${bad} is ${shownValue(parts[bad])}` : shownValue(data)}; nothing was written`,
    );
  const handle = await fs.promises.open(file, 'wx');
  try {
    // Each writeFile continues where the previous one ended.
    for (const part of parts as readonly (string | ArrayBufferView)[])
      await handle.writeFile(
        typeof part === 'string' ? part : new Uint8Array(part.buffer, part.byteOffset, part.byteLength),
      );
    // Without fsync a crash after the rename can leave a renamed but empty file.
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Flushes the entries of the folder `dir` to disk, which makes renames into
 * it (see {@link writeFileDurably}) survive a crash. Best effort: where a
 * folder cannot be opened for that (Windows), it does nothing, and the renames
 * are still atomic. Never throws.
 */
export async function syncDir(dir: string): Promise<void> {
  let handle: fs.promises.FileHandle | undefined;
  try {
    handle = await fs.promises.open(dir, 'r');
    await handle.sync();
  } catch {
    /* best effort, see above */
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/**
 * What precedes `groupN-shardKofM.bin` in the shard names of `jsonName`.
 * Next to `model.json` nothing: tfjs's standard names, which existing saved
 * models and tfjs tools expect. Any other JSON file prefixes its stem
 * (`a.json` -> `a.group1-shard1of1.bin`), so that several models can share a
 * directory without overwriting each other's weights.
 */
function shardPrefix(jsonName: string): string {
  return jsonName === MODEL_JSON ? '' : `${jsonName.slice(0, -'.json'.length)}.`;
}

function shardPaths(bytes: number, prefix: string): string[] {
  const n = Math.ceil(bytes / SHARD_BYTES);
  return Array.from({ length: n }, (_, i) => `${prefix}group1-shard${i + 1}of${n}.bin`);
}

/**
 * Shards (and the backups an interrupted overwrite may leave referenced) that a
 * save writes whose shard names start with `prefix`, a regular expression.
 */
function shardPattern(prefix: string): RegExp {
  return new RegExp(`^(\\.prev-[0-9a-f-]+-)?${prefix}group\\d+-shard\\d+of\\d+\\.bin$`);
}

/** The shards a save of the JSON file with this shard prefix writes. */
function ownShardPattern(prefix: string): RegExp {
  return shardPattern(prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
}

/** Shards this handler writes for any JSON name. */
const ANY_OWN_SHARD = shardPattern('(.+\\.)?');

function toModelJSON(
  artifacts: tf.io.ModelArtifacts,
  manifest: tf.io.WeightsManifestConfig,
): tf.io.ModelJSON {
  const json: tf.io.ModelJSON = {
    modelTopology: artifacts.modelTopology as object,
    weightsManifest: manifest,
    format: artifacts.format,
    generatedBy: artifacts.generatedBy,
    convertedBy: artifacts.convertedBy,
  };
  if (artifacts.trainingConfig != null) json.trainingConfig = artifacts.trainingConfig;
  if (artifacts.signature != null) json.signature = artifacts.signature;
  if (artifacts.userDefinedMetadata != null) json.userDefinedMetadata = artifacts.userDefinedMetadata;
  if (artifacts.modelInitializer != null) json.modelInitializer = artifacts.modelInitializer;
  if (artifacts.initializerSignature != null) json.initializerSignature = artifacts.initializerSignature;
  return json;
}

/** Reads a model.json that may be absent or broken; such a model has nothing to protect. */
async function readPreviousModel(file: string): Promise<tf.io.ModelJSON | undefined> {
  try {
    const json = JSON.parse(await fs.promises.readFile(file, 'utf8'));
    return Array.isArray(json?.weightsManifest) ? json : undefined;
  } catch {
    return undefined;
  }
}

function manifestPaths(json: tf.io.ModelJSON | undefined): string[] {
  if (!json) return [];
  return json.weightsManifest.flatMap((g) =>
    Array.isArray(g?.paths) ? g.paths.filter((p) => typeof p === 'string') : [],
  );
}

/** True when `p` names a file directly inside the model directory (manifests are untrusted input). */
function isPlainName(p: string): boolean {
  return p.length > 0 && p === path.basename(p) && p !== '.' && p !== '..';
}

async function unlinkQuietly(file: string): Promise<void> {
  await fs.promises.unlink(file).catch(() => undefined);
}

/**
 * Views (no copies) of bytes [start, end) of the weights, which tfjs may hand
 * over as one buffer or as a list of them.
 */
function byteRange(parts: readonly Uint8Array[], start: number, end: number): Uint8Array[] {
  const views: Uint8Array[] = [];
  let offset = 0;
  for (const part of parts) {
    const from = Math.max(start, offset);
    const to = Math.min(end, offset + part.byteLength);
    if (from < to) views.push(part.subarray(from - offset, to - offset));
    offset += part.byteLength;
    if (offset >= end) break;
  }
  return views;
}

/**
 * The bytes of `weightData` as views (no copies): tfjs's type is an
 * ArrayBuffer or a list of them, and tfjs's own savers (browserDownloads,
 * http, indexedDB, localStorage: `CompositeArrayBuffer.join`) take typed
 * arrays too, so those are taken as well, each as the bytes it views (tfjs
 * takes its whole underlying buffer, wrong for a view of part of one).
 * Anything else is refused. Before, a Float32Array's elements were read as
 * an ArrayBuffer's bytes: two floats became a 2-byte shard load refused.
 */
function weightBytes(weightData: unknown, refuse: (problem: string) => never): Uint8Array[] {
  const list: unknown[] = weightData == null ? [] : Array.isArray(weightData) ? weightData : [weightData];
  return list.map((part, i) => {
    // By tag, not instanceof: a buffer made in another realm (a vm context, Jest's) is one too.
    if (isArrayBuffer(part)) return new Uint8Array(part);
    if (ArrayBuffer.isView(part)) return new Uint8Array(part.buffer, part.byteOffset, part.byteLength);
    const what =
      part === null
        ? 'null'
        : typeof part === 'object'
          ? (part.constructor?.name ?? 'an object')
          : typeof part;
    return refuse(
      `weightData${Array.isArray(weightData) ? `[${i}]` : ''} is ${what}, not an ArrayBuffer ` +
        '(or a typed array, or a list of them)',
    );
  });
}

function isArrayBuffer(v: unknown): v is ArrayBuffer {
  return Object.prototype.toString.call(v) === '[object ArrayBuffer]';
}

/**
 * Refuses, before anything is written, artifacts that {@link load} would
 * refuse once saved: a save replaces the previous model, so a model.json
 * without modelTopology, weight entries load rejects, or weight bytes that
 * are not what the weight specs need would leave a folder holding no
 * loadable model, and load would then blame the disk ("truncated"). Returns
 * the weight bytes.
 */
function checkArtifacts(loc: Location, artifacts: tf.io.ModelArtifacts): Uint8Array[] {
  const jsonFile = path.join(loc.dir, loc.jsonName);
  const refuse = (problem: string): never => {
    throw new ModelFileError(
      'invalid-argument',
      jsonFile,
      `fileSystem: cannot save ${jsonFile}: ${problem}; nothing was written (a model already there is unchanged)`,
    );
  };
  if (artifacts == null || typeof artifacts !== 'object')
    refuse(`expected model artifacts, got ${String(artifacts)}`);
  if (isArrayBuffer(artifacts.modelTopology)) {
    throw new ModelFileError(
      'unsupported',
      loc.dir,
      'fileSystem: saving a binary (GraphDef) topology is not supported; save a LayersModel.',
    );
  }
  if (artifacts.modelTopology == null || typeof artifacts.modelTopology !== 'object') {
    refuse(
      'the artifacts have no modelTopology (weights alone), which a model.json must have to load ' +
        '(fileSystem load and tf.loadLayersModel refuse one without it); save the model itself, model.save(fileSystem(dir))',
    );
  }
  const specs: unknown = artifacts.weightSpecs ?? [];
  if (!Array.isArray(specs)) refuse('weightSpecs is not an array');
  (specs as unknown[]).forEach((entry, j) => {
    const why = badWeightEntry(entry);
    if (why !== undefined) {
      const name = (entry as { name?: unknown } | null)?.name;
      refuse(
        `weightSpecs[${j}]${typeof name === 'string' ? ` (${JSON.stringify(name)})` : ''} is not a valid weight entry: ${why}`,
      );
    }
  });
  const weightSpecs = specs as tf.io.WeightsManifestEntry[];
  const parts = weightBytes(artifacts.weightData, refuse);
  const got = parts.reduce((n, b) => n + b.byteLength, 0);
  const want = expectedBytes(weightSpecs);
  if (want.atLeast ? got < want.bytes : got !== want.bytes) {
    refuse(
      `weightData has ${got} bytes, but weightSpecs (${weightSpecs.length} weight${weightSpecs.length === 1 ? '' : 's'}) need ` +
        `${want.atLeast ? 'at least ' : ''}${want.bytes}: the data does not match the specs`,
    );
  }
  if (want.atLeast) {
    // String weights: their length prefixes must lead exactly to the end of the data, as load checks.
    const whole = new Uint8Array(got);
    let at = 0;
    for (const part of parts) {
      whole.set(part, at);
      at += part.byteLength;
    }
    try {
      checkStringWeights(weightSpecs, whole, 'weightData', jsonFile);
    } catch (e) {
      refuse(
        `its string weights do not match weightData (${(e as Error).message.replace(/^Cannot load model: /, '')})`,
      );
    }
  }
  return parts;
}

async function save(loc: Location, artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
  const parts = checkArtifacts(loc, artifacts);
  const { dir, jsonName } = loc;
  try {
    makeDirs(dir);
  } catch (e) {
    throw new ModelFileError(
      'save-failed',
      dir,
      `fileSystem: cannot create model directory ${dir}: ${(e as Error).message}`,
      e,
    );
  }

  // The shards are written from views of the buffers tfjs hands over: the
  // weights are never copied into one buffer, nor sliced into shard copies.
  const totalBytes = parts.reduce((n, b) => n + b.byteLength, 0);
  const shards = shardPaths(totalBytes, shardPrefix(jsonName));
  const manifest: tf.io.WeightsManifestConfig = [{ paths: shards, weights: artifacts.weightSpecs ?? [] }];
  const jsonFile = path.join(dir, jsonName);
  // A shard name another model of the folder lists (a renamed model.json, or
  // one saved by a version that named every model's shards group1-...) would be
  // replaced under it, silently changing that model's weights.
  const listedElsewhere = await pathsListedByOtherModels(dir, jsonName, await readdirSafe(dir));
  const clash = shards.find((p) => listedElsewhere.has(p));
  if (clash !== undefined) {
    throw new ModelFileError(
      'shard-clash',
      path.join(dir, clash),
      `fileSystem: cannot save ${jsonFile}: its weight file ${clash} is listed by ${listedElsewhere.get(clash)}, another model in ` +
        `${dir}, whose weights it would replace. Save into another directory, or under another JSON name ` +
        `(fileSystem('${path.join(dir, 'new-name.json')}')), whose shards are named after it.`,
    );
  }
  const token = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const created: string[] = [];
  const backups: string[] = [];
  let previousPaths: string[] = [];

  try {
    // Phase 1: everything new goes to temporary files. A failure here leaves
    // the directory as it was, apart from temporaries we remove below.
    for (let i = 0; i < shards.length; i++) {
      const tmp = path.join(dir, tempName(shards[i], token));
      created.push(tmp);
      await writeFileDurably(
        tmp,
        byteRange(parts, i * SHARD_BYTES, Math.min((i + 1) * SHARD_BYTES, totalBytes)),
      );
    }
    const jsonTmp = path.join(dir, tempName(jsonName, token));
    created.push(jsonTmp);
    await writeFileDurably(jsonTmp, JSON.stringify(toModelJSON(artifacts, manifest)));

    // Phase 2: the new shards carry this JSON file's names, so they overwrite the
    // previous model's shards. To keep the previous model loadable at every
    // instant, first repoint its model.json at hard-linked copies of the
    // shards about to be overwritten (one atomic rename).
    const previous = await readPreviousModel(jsonFile);
    previousPaths = manifestPaths(previous).filter(isPlainName);
    if (previous && previousPaths.some((p) => shards.includes(p))) {
      const rename = new Map<string, string>();
      for (const p of previousPaths) {
        if (!shards.includes(p)) continue;
        const backup = `.prev-${token}-${p}`;
        try {
          await fs.promises.link(path.join(dir, p), path.join(dir, backup));
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // previous model was already broken
          await fs.promises.copyFile(path.join(dir, p), path.join(dir, backup));
        }
        backups.push(path.join(dir, backup));
        rename.set(p, backup);
      }
      const repointed: tf.io.ModelJSON = {
        ...previous,
        weightsManifest: previous.weightsManifest.map((g) => ({
          ...g,
          paths: g.paths.map((p) => rename.get(p) ?? p),
        })),
      };
      const prevTmp = path.join(dir, tempName(`prev-${jsonName}`, token));
      created.push(prevTmp);
      await writeFileDurably(prevTmp, JSON.stringify(repointed));
      await syncDir(dir);
      await fs.promises.rename(prevTmp, jsonFile);
      await syncDir(dir);
    }

    // Phase 3: shards into place, model.json last. Until that final rename the
    // directory's model.json is the complete previous model.
    for (let i = 0; i < shards.length; i++) {
      await fs.promises.rename(created[i], path.join(dir, shards[i]));
    }
    await syncDir(dir);
    await fs.promises.rename(jsonTmp, jsonFile);
    await syncDir(dir);
  } catch (e) {
    await Promise.all(created.map(unlinkQuietly));
    throw new ModelFileError(
      'save-failed',
      jsonFile,
      `fileSystem: saving the model to ${dir} failed, the previous ${jsonName} (if any) is unchanged: ${(e as Error).message}`,
      e,
    );
  }

  await Promise.all(backups.map(unlinkQuietly));
  await removeObsoleteShards(loc, shards, previousPaths, listedElsewhere);
  await removeLeftovers(dir, listedElsewhere);
  // tfjs counts a typed array's whole underlying buffer; the bytes written are the view's.
  return {
    modelArtifactsInfo: { ...tf.io.getModelArtifactsInfoForJSON(artifacts), weightDataBytes: totalBytes },
  };
}

/**
 * Once the new model is in place, deletes the shards only the previous version
 * of this JSON file referenced, and shards with this JSON file's names that no
 * model references (left by an interrupted save). A shard another JSON file in
 * the directory lists is never deleted: models saved side by side, or by an
 * older version that named every model's shards `group1-...`, stay loadable.
 */
async function removeObsoleteShards(
  loc: Location,
  shards: string[],
  previousPaths: string[],
  others: ReadonlyMap<string, string>,
): Promise<void> {
  const { dir, jsonName } = loc;
  const keep = new Set([...shards, jsonName]);
  const own = ownShardPattern(shardPrefix(jsonName));
  const names = await readdirSafe(dir);
  const candidates = new Set([
    ...previousPaths.filter((f) => ANY_OWN_SHARD.test(f) && !keep.has(f)),
    ...names.filter((f) => own.test(f) && !keep.has(f)),
  ]);
  if (candidates.size === 0) return;
  const obsolete = [...candidates].filter((f) => !others.has(f));
  await Promise.all(obsolete.map((f) => unlinkQuietly(path.join(dir, f))));
}

/**
 * Deletes what saves killed mid-way left in the directory: their temporary
 * files (`.<name>.<pid>-<hex>.tmp`, never read) and backup links
 * (`.prev-<pid>-<hex>-<shard>`) that no other model JSON file lists (`listed`,
 * read once per save; the JSON file just saved lists its new shards only),
 * when the process that made them no longer exists.
 */
async function removeLeftovers(dir: string, listed: ReadonlyMap<string, string>): Promise<void> {
  const names = await readdirSafe(dir);
  const stale = names.filter((f) => {
    const m = LEFTOVER_TEMP.exec(f) ?? LEFTOVER_BACKUP.exec(f);
    return m != null && processGone(Number(m[m.length - 1]));
  });
  await Promise.all(stale.filter((f) => !listed.has(f)).map((f) => unlinkQuietly(path.join(dir, f))));
}

/**
 * Whether `name`, a file in a model's directory, is one (besides the JSON file itself) that a
 * `fileSystem` save of `jsonName` (default `model.json`) writes or leaves behind when it is killed:
 * its shards (`groupN-shardMofK.bin`, with the prefix of a JSON file not named model.json), the
 * backup links of shards it overwrites (`.prev-<pid>-<hex>-<shard>`), and its temporary files
 * (`.<name>.<pid>-<hex>.tmp`). The next save
 * of that JSON file removes those no model lists (`removeObsoleteShards`, `removeLeftovers`): a
 * caller deciding which files in the directory are some other tool's or the user's asks this.
 */
export function isSaveFile(name: string, jsonName: string = MODEL_JSON): boolean {
  return (
    ownShardPattern(shardPrefix(jsonName)).test(name) ||
    LEFTOVER_TEMP.test(name) ||
    LEFTOVER_BACKUP.test(name)
  );
}

/**
 * Whether `name`, a file in a model's directory, is the temporary copy of the JSON file `jsonName`
 * (default `model.json`) that a `fileSystem` save wrote and had not yet renamed into place when its
 * process was killed (`.<jsonName>.<pid>-<hex>.tmp`, the process no longer running). Its content
 * is the model that save was writing: a caller that finds such a file and no `jsonName` can tell
 * whose weights the shards beside it are. The next save into the directory deletes it.
 */
export function killedSaveTemp(name: string, jsonName: string = MODEL_JSON): boolean {
  const m = LEFTOVER_TEMP.exec(name);
  return m != null && m[1] === jsonName && processGone(Number(m[2]));
}

/**
 * Names of a killed save's temporary files (group 1: the file it stands for) and shard backups;
 * the last group is the pid of the saving process.
 */
const LEFTOVER_TEMP = /^\.(.+)\.(\d+)-[0-9a-f]{8}\.tmp$/;
const LEFTOVER_BACKUP = /^\.prev-(\d+)-[0-9a-f]{8}-/;

/** Weight paths that the other model JSON files of the directory list, each with the first that lists it. */
async function pathsListedByOtherModels(
  dir: string,
  jsonName: string,
  names: string[],
): Promise<Map<string, string>> {
  const others = names.filter((f) => isJsonName(f) && f !== jsonName && !f.startsWith('.'));
  const listed = new Map<string, string>();
  for (const f of others.sort()) {
    for (const p of manifestPaths(await readPreviousModel(path.join(dir, f))))
      if (!listed.has(p)) listed.set(p, path.join(dir, f));
  }
  return listed;
}

async function readdirSafe(dir: string): Promise<string[]> {
  return fs.promises.readdir(dir).catch(() => []);
}

/** A value as writeFileDurably's refusal shows it: `5`, `"x"`, `an object (Object)`, `undefined`. */
function shownValue(v: unknown): string {
  if (v === null || v === undefined || typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  return typeof v === 'object' ? `an object (${(v as object).constructor?.name ?? 'Object'})` : typeof v;
}

function describeError(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Bytes a group's weights take, and whether that is only a minimum (string weights). */
interface GroupBytes {
  bytes: number;
  atLeast: boolean;
}

function expectedBytes(specs: tf.io.WeightsManifestEntry[]): GroupBytes {
  let bytes = 0;
  let atLeast = false;
  for (const spec of specs) {
    const dtype = spec.quantization?.dtype ?? spec.dtype;
    const elements = spec.shape.reduce((a, b) => a * b, 1);
    const size = STORED_BYTES[dtype];
    if (size === undefined) {
      // A string is stored as its 4-byte length, then its bytes: the total is
      // known only from the data, but is at least 4 bytes a string.
      atLeast = true;
      bytes += elements * 4;
    } else bytes += elements * size;
  }
  return { bytes, atLeast };
}

/**
 * Follows the length prefixes of a group's string weights through its bytes,
 * which tfjs does without bounds (a length past the end gives a tfjs error
 * naming no file). The walk takes at most `data.byteLength / 4` steps, since
 * the group's size was checked against 4 bytes a string before the read.
 */
function checkStringWeights(
  specs: tf.io.WeightsManifestEntry[],
  data: Uint8Array,
  where: string,
  file: string,
): void {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let offset = 0;
  let last = '';
  for (const spec of specs) {
    const elements = spec.shape.reduce((a, b) => a * b, 1);
    const size = STORED_BYTES[spec.quantization?.dtype ?? spec.dtype];
    if (size !== undefined) {
      offset += elements * size;
      continue;
    }
    last = spec.name;
    for (let k = 0; k < elements; k++) {
      const length = offset + 4 <= data.byteLength ? view.getUint32(offset, true) : Infinity;
      offset += 4 + length;
      if (offset > data.byteLength) {
        throw new ModelFileError(
          'damaged',
          file,
          `Cannot load model: the string weight ${JSON.stringify(spec.name)} in ${where} runs past the end ` +
            `of its ${data.byteLength} bytes (string ${k} of ${elements}): the shards are truncated or do not belong to it`,
        );
      }
    }
  }
  if (offset !== data.byteLength) {
    throw new ModelFileError(
      'damaged',
      file,
      `Cannot load model: the string weight ${JSON.stringify(last)} in ${where} ends at byte ${offset} ` +
        `of ${data.byteLength}: the shards do not belong to it`,
    );
  }
}

const WEIGHT_DTYPES = new Set(['float32', 'int32', 'bool', 'string', 'complex64']);
const QUANTIZED_DTYPES = new Set(['uint8', 'uint16', 'float16']);

/**
 * Why a weightsManifest path may not be read, or undefined when it may. Paths
 * come from the JSON file, which is untrusted input: only files inside the
 * model's folder (subfolders included, as the tfjs converter may write
 * `subdir/group1-shard1of1.bin`) are read. The check is lexical; a symbolic
 * link inside the folder is followed, since whoever can create it there could
 * as well have put the file itself there (git-annex and DVC store files so).
 */
function unsafeWeightPath(dir: string, p: string): string | undefined {
  if (p.length === 0) return 'it is empty';
  if (path.isAbsolute(p)) return 'it is absolute';
  const rel = path.relative(dir, path.resolve(dir, p));
  if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
    return "it leads outside the model's folder";
  }
  return undefined;
}

function checkWeightPaths(paths: string[], where: string, file: string, dir: string): void {
  for (const p of paths) {
    const why = unsafeWeightPath(dir, p);
    if (why !== undefined) {
      throw new ModelFileError(
        'unsafe-path',
        file,
        `${file}: ${where} lists the weight path ${JSON.stringify(p)}, which is not allowed: ${why}. ` +
          `Weight shards must be files inside ${dir}, named relative to it (e.g. "group1-shard1of1.bin").`,
      );
    }
  }
}

/** Why a weightsManifest entry is unusable, or undefined when it is well formed. */
function badWeightEntry(entry: unknown): string | undefined {
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) return 'it is not an object';
  const e = entry as Record<string, unknown>;
  if (typeof e.name !== 'string' || e.name.length === 0) return '"name" must be a non-empty string';
  if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    return '"shape" must be an array of non-negative integers';
  }
  if (typeof e.dtype !== 'string' || !WEIGHT_DTYPES.has(e.dtype)) {
    return `"dtype" must be one of ${[...WEIGHT_DTYPES].join(', ')}`;
  }
  if (e.quantization !== undefined) {
    const q = e.quantization as { dtype?: unknown; scale?: unknown; min?: unknown } | null;
    if (
      q === null ||
      typeof q !== 'object' ||
      typeof q.dtype !== 'string' ||
      !QUANTIZED_DTYPES.has(q.dtype)
    ) {
      return `"quantization.dtype" must be one of ${[...QUANTIZED_DTYPES].join(', ')}`;
    }
    // tfjs decodes these as `v * scale + min`, with no check of either: a
    // string or a missing value would give NaN or string-concatenated weights.
    if (q.dtype === 'float16') {
      if (e.dtype !== 'float32') return '"quantization.dtype" float16 is only for "dtype" float32';
    } else {
      if (e.dtype !== 'float32' && e.dtype !== 'int32') {
        return `"quantization.dtype" ${q.dtype} is only for "dtype" float32 or int32`;
      }
      if (!Number.isFinite(q.scale) || !Number.isFinite(q.min)) {
        return `"quantization" (${q.dtype}) needs finite numbers "scale" and "min"`;
      }
    }
  }
  return undefined;
}

function checkWeightEntries(weights: unknown[], where: string, file: string): void {
  weights.forEach((entry, j) => {
    const why = badWeightEntry(entry);
    if (why !== undefined) {
      const name = (entry as { name?: unknown } | null)?.name;
      const label = typeof name === 'string' ? ` (${JSON.stringify(name)})` : '';
      throw new ModelFileError(
        'damaged',
        file,
        `${file}: ${where}.weights[${j}]${label} is not a valid weight entry: ${why}. ` +
          `Each entry needs {"name": string, "shape": [non-negative integers], "dtype": "float32" | ...}; ` +
          `re-save or re-convert the model.`,
      );
    }
  });
}

/** Checks the whole JSON file, paths and weight entries included, before any shard is opened. */
function validateModelJSON(json: unknown, file: string, dir: string): tf.io.ModelJSON {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new ModelFileError('damaged', file, `${file} is not a tfjs model.json: expected a JSON object`);
  }
  const m = json as Record<string, unknown>;
  if (m.modelTopology == null || typeof m.modelTopology !== 'object') {
    throw new ModelFileError(
      'damaged',
      file,
      `${file} is not a tfjs model.json: the key "modelTopology" is missing`,
    );
  }
  if (!Array.isArray(m.weightsManifest)) {
    throw new ModelFileError(
      'damaged',
      file,
      `${file} is not a tfjs model.json: the key "weightsManifest" is missing or not an array`,
    );
  }
  m.weightsManifest.forEach((g: unknown, i: number) => {
    const group = g as { paths?: unknown; weights?: unknown };
    if (
      group == null ||
      !Array.isArray(group.paths) ||
      !group.paths.every((p) => typeof p === 'string') ||
      !Array.isArray(group.weights)
    ) {
      throw new ModelFileError(
        'damaged',
        file,
        `${file}: weightsManifest[${i}] must have "paths" (strings) and "weights" (an array)`,
      );
    }
    checkWeightPaths(group.paths as string[], `weightsManifest[${i}]`, file, dir);
    checkWeightEntries(group.weights, `weightsManifest[${i}]`, file);
  });
  return json as tf.io.ModelJSON;
}

/**
 * Repairs in place what tfjs 4.22's own save (`model.save()`) writes wrong into a model.json, so
 * that its loader builds the model that was saved:
 * - a SeparableConv2D's depth_multiplier is left out, and read back as 1: one of 2 failed on its
 *   own weights ("Shape mismatch: [3,3,5,1] vs. [3,3,5,2]"). It is the last dimension of the
 *   layer's depthwise_kernel in the weights manifest;
 * - a DepthwiseConv2D's depthwise_regularizer is written as its depthwise_constraint too (its
 *   constraint is lost), and tfjs would apply the regularizer to the kernel as it loads it ("shape
 *   of the new value () and previous value (3,3,4,1) must match"): a regularizer is no constraint,
 *   so that one is dropped.
 */
function repairTopology(json: tf.io.ModelJSON): void {
  const shapes = new Map<string, number[]>();
  for (const group of json.weightsManifest) for (const w of group.weights) shapes.set(w.name, w.shape);
  const walk = (layers: unknown): void => {
    if (!Array.isArray(layers)) return;
    for (const entry of layers as { class_name?: unknown; config?: Record<string, any> }[]) {
      const c = entry?.config;
      if (c === null || typeof c !== 'object') continue;
      // A nested model: a Sequential's config may be its list of layers (Keras 2.1 and before).
      walk(Array.isArray(c) ? c : c.layers);
      if (entry.class_name === 'SeparableConv2D' && c.depth_multiplier === undefined) {
        const shape = shapes.get(`${c.name}/depthwise_kernel`);
        if (shape?.length === 4) c.depth_multiplier = shape[3];
      }
      if (
        entry.class_name === 'DepthwiseConv2D' &&
        c.depthwise_constraint != null &&
        JSON.stringify(c.depthwise_constraint) === JSON.stringify(c.depthwise_regularizer)
      )
        c.depthwise_constraint = null;
    }
  };
  const topology = json.modelTopology as
    { model_config?: { config?: unknown }; config?: unknown } | undefined;
  const config = (topology?.model_config ?? topology)?.config as { layers?: unknown } | unknown[] | undefined;
  walk(Array.isArray(config) ? config : config?.layers);
}

/** Sizes of a group's shards, from `stat`, so that a wrong-sized shard is refused before it is read. */
async function shardSizes(files: string[], jsonFile: string): Promise<number[]> {
  const sizes: number[] = [];
  for (const file of files) {
    let stat: fs.Stats;
    try {
      stat = await fs.promises.stat(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new ModelFileError(
          'damaged',
          file,
          `Cannot load model: weight shard ${file}, listed in ${jsonFile}, does not exist`,
        );
      }
      throw new ModelFileError(
        'read-failed',
        file,
        `Cannot load model: reading weight shard ${file} failed: ${describeError(e)}`,
        e,
      );
    }
    if (!stat.isFile()) {
      throw new ModelFileError(
        'damaged',
        file,
        `Cannot load model: weight shard ${file}, listed in ${jsonFile}, is not a regular file; ` +
          `put the shard file there or fix the path in ${jsonFile}`,
      );
    }
    sizes.push(stat.size);
  }
  return sizes;
}

function shardNames(files: string[]): string {
  return files.length === 1 ? `weight shard ${files[0]}` : `weight shards ${files.join(', ')}`;
}

function checkGroupSize(files: string[], got: number, want: GroupBytes, jsonFile: string, i: number): void {
  if (want.atLeast ? got >= want.bytes : got === want.bytes) return;
  const which = `${shardNames(files)} ${files.length === 1 ? 'has' : 'have'}`;
  throw new ModelFileError(
    'damaged',
    files[files.length - 1],
    `Cannot load model: ${which} ${got} bytes, but ${jsonFile} (weightsManifest[${i}]) needs ` +
      `${want.atLeast ? 'at least ' : ''}${want.bytes} bytes ` +
      `(${got < want.bytes ? 'truncated' : 'does not belong to this model.json'})`,
  );
}

/**
 * Reads exactly `out.length` bytes (the size `stat` gave) into `out`, never
 * more, whatever the file has become since.
 */
async function readShard(file: string, out: Uint8Array): Promise<void> {
  const size = out.length;
  let handle: fs.promises.FileHandle | undefined;
  let got = 0;
  try {
    handle = await fs.promises.open(file, 'r');
    while (got < size) {
      const { bytesRead } = await handle.read(out, got, size - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
  } catch (e) {
    throw new ModelFileError(
      'read-failed',
      file,
      `Cannot load model: reading weight shard ${file} failed: ${describeError(e)}`,
      e,
    );
  } finally {
    await handle?.close().catch(() => undefined);
  }
  if (got < size) {
    throw new ModelFileError(
      'read-failed',
      file,
      `Cannot load model: weight shard ${file} shrank from ${size} to ${got} bytes while it was read; load again`,
    );
  }
}

async function load(loc: Location): Promise<tf.io.ModelArtifacts> {
  const { dir, jsonName } = loc;
  const jsonFile = path.join(dir, jsonName);
  const dirStat = await fs.promises.stat(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT')
      throw new ModelFileError('missing', dir, `Cannot load model: the directory ${dir} does not exist`);
    throw new ModelFileError('read-failed', dir, `Cannot load model from ${dir}: ${e.message}`, e);
  });
  if (!dirStat.isDirectory())
    throw new ModelFileError('missing', dir, `Cannot load model: ${dir} is not a directory`);

  let text: string;
  try {
    text = await fs.promises.readFile(jsonFile, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      // A model saved under another .json name (fileSystem('dir/a.json')) is loaded by that name.
      const others = await fs.promises
        .readdir(dir)
        .then((names) => names.filter((n) => isJsonName(n) && n !== path.basename(jsonFile)))
        .catch(() => [] as string[]);
      throw new ModelFileError(
        'missing',
        jsonFile,
        `Cannot load model: ${jsonFile} does not exist (no model has been saved in ${dir} under that name)` +
          (others.length
            ? `; ${dir} holds ${others
                .slice(0, 3)
                .map((n) => `'${n}'`)
                .join(', ')}${others.length > 3 ? ', ...' : ''}: ` +
              `to load a model saved as one of them, pass its path, fileSystem('${path.join(dir, others[0])}')`
            : ''),
      );
    }
    throw new ModelFileError(
      'read-failed',
      jsonFile,
      `Cannot load model: reading ${jsonFile} failed: ${describeError(e)}`,
      e,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ModelFileError(
      'damaged',
      jsonFile,
      `Cannot load model: ${jsonFile} is not valid JSON (${describeError(e)})`,
      e,
    );
  }
  const modelJSON = validateModelJSON(parsed, jsonFile, dir);
  repairTopology(modelJSON);

  return tf.io.getModelArtifactsForJSON(modelJSON, async (manifest) => {
    // Every shard is checked (exists, is a file, has the size the manifest
    // needs) before any is read.
    const groups: { files: string[]; sizes: number[]; want: GroupBytes }[] = [];
    for (const [i, group] of manifest.entries()) {
      const files = group.paths.map((p) => path.resolve(dir, p));
      const sizes = await shardSizes(files, jsonFile);
      const want = expectedBytes(group.weights);
      checkGroupSize(
        files,
        sizes.reduce((a, b) => a + b, 0),
        want,
        jsonFile,
        i,
      );
      groups.push({ files, sizes, want });
    }
    // tfjs accepts a list of buffers (needed beyond 2 GB), but code reading
    // artifacts often expects one ArrayBuffer: up to fileSystemLimits.joinBytes
    // the shards are read into one (each into its place, never copied), above
    // it each into its own (a group with strings into one, to walk them).
    const total = groups.reduce((n, g) => g.sizes.reduce((a, b) => a + b, n), 0);
    const whole = total <= fileSystemLimits.joinBytes ? new Uint8Array(total) : undefined;
    const buffers: ArrayBuffer[] = [];
    let at = 0;
    for (const [i, { files, sizes, want }] of groups.entries()) {
      const bytes = sizes.reduce((a, b) => a + b, 0);
      const data = whole?.subarray(at, at + bytes) ?? (want.atLeast ? new Uint8Array(bytes) : undefined);
      let offset = 0;
      for (const [k, file] of files.entries()) {
        const out = data?.subarray(offset, offset + sizes[k]) ?? new Uint8Array(sizes[k]);
        await readShard(file, out);
        if (data === undefined) buffers.push(out.buffer);
        offset += sizes[k];
      }
      if (want.atLeast) {
        checkStringWeights(
          manifest[i].weights,
          data!,
          `${shardNames(files)} (${jsonFile}, weightsManifest[${i}])`,
          files[files.length - 1],
        );
      }
      if (data !== undefined && whole === undefined) buffers.push(data.buffer);
      at += bytes;
    }
    const specs = manifest.flatMap((group) => group.weights);
    const weightData: tf.io.WeightData = whole?.buffer ?? (buffers.length === 1 ? buffers[0] : buffers);
    return [specs, weightData];
  });
}

/**
 * A TensorFlow.js IO handler that saves and loads models on the local file
 * system in the standard tfjs format (`model.json` plus 4 MB weight shards
 * `group1-shardNofM.bin`), without tfjs-node. A model saved under another
 * JSON name, e.g. `fileSystem('dir/a.json')`, gets shards prefixed with that
 * name (`a.group1-shard1of1.bin`), so several models can share a directory;
 * loading follows the paths the JSON file's weights manifest lists.
 *
 * ```ts
 * await model.save(fileSystem('/tmp/my-model'));
 * const again = await tfl.loadLayersModel(fileSystem('/tmp/my-model'));
 * ```
 *
 * Importing `@normprune/runtime` in Node also routes tfjs's `file://` strings
 * here, as tfjs-node does: `model.save('file:///tmp/my-model')` and
 * `tfl.loadLayersModel('file:///tmp/my-model/model.json')` work without
 * tfjs-node (when tfjs-node is loaded, its own handler serves them).
 *
 * Saving is atomic: everything is written to temporary files in the same
 * directory, flushed, then renamed into place with `model.json` last, so an
 * interrupted save leaves the previous model loadable. Loading checks the
 * files and throws errors that name the missing or damaged file.
 *
 * @param dir The model directory (created on save). A `file://` URL or a path
 *   ending in `.json` (the model file itself) is accepted too. An absolute
 *   `file:///...` URL is decoded as a URL (`%20` is a space, `%23` a `#`); one
 *   with a `#` fragment or a `?` query is refused (`invalid-argument`), since
 *   those are not part of its path. `file://./dir` and `file://dir` are paths
 *   relative to the working directory, taken literally, as in tfjs-node.
 */
export function fileSystem(dir: string): tf.io.IOHandler {
  const loc = locate(dir);
  return {
    save: (artifacts: tf.io.ModelArtifacts) => save(loc, artifacts),
    load: () => load(loc),
  };
}
