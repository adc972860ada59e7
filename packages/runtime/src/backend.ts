import * as tf from '@tensorflow/tfjs-core';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkEngineSupported, releaseSavedTensorsDuringBackprop } from './backprop.js';
import { registerWasmTrainingKernels } from './kernels/index.js';
import { setWasmBackendWithThreads, wasmInitialised } from './kernels/threads.js';
import { isNotInstalled, loadModule, packageRequire } from './modules.js';
import { BACKENDS, resolvePreference, resolveThreads, type Threads } from './environment.js';

export { resolvePreference, resolveThreads };

/** The backends normprune can choose, fastest first: native TensorFlow, WebAssembly, pure JavaScript. */
export type BackendName = 'node' | 'wasm' | 'cpu';

/** What {@link initBackend} chose and why. */
export interface BackendInfo {
  /** The backend that is active now. */
  backend: BackendName;
  /** `tf.getBackend()`: `'tensorflow'`, `'wasm'` or `'cpu'`. */
  tfBackendName: string;
  /** One sentence: why this backend, what was asked for and not got (`notes`), and what failed before it. */
  reason: string;
  /** Whether the wasm backend runs its SIMD build (false for the other backends). */
  simd: boolean;
  /**
   * Threads the backend computes with: XNNPACK's thread count for wasm, 1 for
   * cpu, and for node the cores libtensorflow's thread pool uses by default.
   */
  threads: number;
  /** Whether normprune's wasm training kernels are registered (wasm only). */
  trainingKernels: boolean;
  /** Backends tried before the chosen one, with the reason each was not used. */
  fallbacks: BackendFallback[];
  /**
   * What was asked for and not got, one sentence each (also in `reason`): threads on a
   * backend other than wasm, which ignores them, or more threads than a wasm backend already
   * started with. Empty when everything asked for holds.
   */
  notes: string[];
}

/** A backend {@link initBackend} tried and did not use. */
export interface BackendFallback {
  /** The backend that was tried. */
  backend: BackendName;
  /** Why it was not used: the first line of its load or start error. */
  error: string;
}

/** Options of {@link initBackend}. */
export interface InitBackendOptions {
  /**
   * Backend to try first; the others follow, fastest first. The environment
   * variable `NORMPRUNE_BACKEND` (`node`, `wasm` or `cpu`) overrides it.
   */
  prefer?: BackendName;
  /** Do not print the line that says which backend was chosen. */
  quiet?: boolean;
  /**
   * wasm only: XNNPACK threads. 1 (the default) runs the single-threaded SIMD
   * build. More starts the threaded SIMD build: on an otherwise idle 2-core
   * machine 2 threads trained LeNet-500-300 1.3x and LeNet-5 1.4x faster, but
   * with other jobs on the cores they were about 2x slower, so use it when the
   * cores are yours. Only before the first use of the wasm backend in the
   * process (its binary is chosen once); `BackendInfo.threads` says what
   * runs. The environment variable `NORMPRUNE_THREADS` overrides it.
   */
  threads?: number;
  /**
   * Opt-in, off by default: install {@link releaseSavedTensorsDuringBackprop}
   * for the rest of the process, so that training frees each activation a
   * layer saved for its gradient, and each intermediate gradient, as soon as
   * the backward pass no longer needs it (same gradient bits, lower peak
   * memory on deep models). Throws, before any backend is touched, when the
   * loaded `@tensorflow/tfjs-core` is not a version it was verified with.
   */
  releaseSavedTensorsDuringBackprop?: boolean;
}

/** What a loader reports once its backend is active. @internal */
export interface Activation {
  tfBackendName: string;
  simd: boolean;
  threads: number;
  trainingKernels: boolean;
  /** Something the caller asked for and did not get, added to the reason. */
  note?: string;
}

const ONE_THREAD: Threads = { count: 1, source: 'the threads option' };

/** The start of each note on threads not got: `4 threads were asked for (by NORMPRUNE_THREADS=4)`. */
function askedFor(threads: Threads): string {
  return `${threads.count} threads were asked for (by ${threads.source})`;
}

/**
 * One function per backend that loads its package, activates it and reports
 * on it, or throws saying why it cannot. The seam that lets tests drive the
 * selection without tfjs-node installed. @internal
 */
export type BackendLoaders = Record<BackendName, () => Promise<Activation>>;

const PACKAGES: Record<BackendName, string> = {
  node: '@tensorflow/tfjs-node',
  wasm: '@tensorflow/tfjs-backend-wasm',
  cpu: '@tensorflow/tfjs-backend-cpu',
};

/**
 * How to get each backend when it failed and a slower one was used instead. The wasm backend is
 * named at the loaded tfjs-core's version: each tfjs 4.x backend takes its own tfjs-core version
 * as an exact peer, so an unversioned install beside an older tfjs-core stops with ERESOLVE (or,
 * with --legacy-peer-deps, pairs mismatched versions).
 */
const HINTS: Record<Exclude<BackendName, 'cpu'>, () => string> = {
  node: () =>
    'for native speed install @tensorflow/tfjs-node, which needs libtensorflow: its download from Google ' +
    'is refused since Aug 2026 (tensorflow/tfjs#8742), so point TFJS_NODE_CDN_STORAGE at a mirror that has it',
  wasm: () =>
    `the pure-JS cpu backend is a last resort: install @tensorflow/tfjs-backend-wasm@${tf.version_core} ` +
    "(your tfjs-core's version; binaries included, no download) to train much faster",
};

function firstLine(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  const line = text.split('\n').find((l) => l.trim() !== '') ?? text;
  return line.trim();
}

/**
 * The selection itself: tries the backends in order (the preferred one, then
 * the rest fastest first), records each failure, and returns the first that
 * activates plus the line to print. Throws only on an invalid preference or
 * when no backend at all can start. @internal
 */
export async function selectBackend(
  prefer: BackendName | undefined,
  env: Record<string, string | undefined>,
  loaders: BackendLoaders,
  threads: Threads = ONE_THREAD,
): Promise<{ info: BackendInfo; line: string }> {
  const { first, source } = resolvePreference(prefer, env);
  const order = first ? [first, ...BACKENDS.filter((b) => b !== first)] : [...BACKENDS];
  const fallbacks: BackendInfo['fallbacks'] = [];
  for (const backend of order) {
    let activation: Activation;
    try {
      activation = await loaders[backend]();
    } catch (e) {
      fallbacks.push({ backend, error: firstLine(e) });
      continue;
    }
    const why = !source
      ? 'the fastest backend that loaded'
      : backend === first
        ? `requested by ${source}`
        : `${first} was requested by ${source} but did not load, so the fastest other one that did`;
    const failed = fallbacks.map((f) => `${f.backend} was not used (${f.error})`);
    const notes = activation.note ? [activation.note] : [];
    if (threads.count > 1 && backend !== 'wasm')
      notes.push(
        `${askedFor(threads)}, but threads are the wasm backend's only: ` +
          `the ${backend} backend ignores them${backend === 'cpu' ? ' and runs on one thread' : ''}`,
      );
    const reason = `${backend}: ${[why, ...notes, ...failed].join('; ')}.`;
    const { note: _note, ...active } = activation;
    const info: BackendInfo = { backend, ...active, reason, fallbacks, notes };
    return { info, line: describe(info) };
  }
  throw new Error(
    `normprune: no TensorFlow.js backend could start: ${fallbacks.map((f) => `${f.backend}: ${f.error}`).join('; ')}`,
  );
}

function describe(info: BackendInfo): string {
  const details =
    info.backend === 'wasm'
      ? ` (SIMD ${info.simd ? 'on' : 'off'}, ${info.threads} thread${info.threads === 1 ? '' : 's'}, ` +
        `training kernels ${info.trainingKernels ? 'on' : 'off'})`
      : '';
  let line = `normprune: using the ${info.backend} backend${details}`;
  // Point at one faster backend that failed: wasm when we ended on cpu (it
  // installs from the registry alone), else tfjs-node.
  const faster = info.fallbacks.filter((f) => BACKENDS.indexOf(f.backend) < BACKENDS.indexOf(info.backend));
  const hint = faster.find((f) => f.backend === 'wasm') ?? faster.find((f) => f.backend === 'node');
  if (hint && hint.backend !== 'cpu') {
    line += `; ${hint.backend} unavailable (${hint.error}); ${HINTS[hint.backend]()}`;
  }
  for (const note of info.notes) line += `; ${note}`;
  return line;
}

/**
 * Activates a registered tfjs backend. tfjs reports a failed initialisation
 * only through console warnings and a `false`; capture the warning so the
 * failure reason lands in `fallbacks` instead of on the console. @internal
 */
export async function activate(tfName: string): Promise<void> {
  const captured: unknown[][] = [];
  const warn = console.warn;
  console.warn = (...args: unknown[]) => void captured.push(args);
  let ok: boolean;
  try {
    ok = await tf.setBackend(tfName);
  } finally {
    console.warn = warn;
  }
  const marker = captured.findIndex((args) =>
    String(args[0]).startsWith(`Initialization of backend ${tfName} failed`),
  );
  const others = captured.filter((_, i) => i !== marker && i !== marker + 1);
  for (const args of marker < 0 ? captured : others) warn(...args);
  if (!ok) {
    const detail = marker >= 0 && captured[marker + 1] ? String(captured[marker + 1][0]) : 'no reason given';
    throw new Error(`tf.setBackend('${tfName}') failed: ${detail}`);
  }
}

async function loadPackage(load: (name: string) => Promise<unknown>, backend: BackendName): Promise<unknown> {
  const name = PACKAGES[backend];
  try {
    return await load(name);
  } catch (e) {
    if (isNotInstalled(e, name)) throw new Error(`${name} is not installed`);
    throw new Error(`${name} failed to load: ${firstLine(e)}`);
  }
}

interface WasmPackage {
  setWasmPaths(prefix: string): void;
  getThreadsCount(): number;
}

/**
 * The real loaders. `load` is injectable so tests can simulate a package
 * that is missing, broken, or (tfjs-node) present. @internal
 */
export function defaultLoaders(
  load: (name: string) => Promise<unknown> = loadModule,
  asked: Threads = ONE_THREAD,
): BackendLoaders {
  const threads = asked.count;
  return {
    async node() {
      await loadPackage(load, 'node');
      // tfjs-node registers 'tensorflow' with the tfjs-core it depends on; if
      // that is another copy than ours, this copy never sees the backend.
      if (tf.findBackendFactory('tensorflow') == null) {
        throw new Error(
          '@tensorflow/tfjs-node loaded but registered its backend with another copy of @tensorflow/tfjs-core (align the tfjs versions)',
        );
      }
      await activate('tensorflow');
      return {
        tfBackendName: 'tensorflow',
        simd: false,
        threads: os.availableParallelism(),
        trainingKernels: false,
      };
    },
    async wasm() {
      const wasm = (await loadPackage(load, 'wasm')) as WasmPackage;
      if (threads > 1 && !wasmInitialised()) {
        registerWasmTrainingKernels();
        await setWasmBackendWithThreads(threads);
        return {
          tfBackendName: 'wasm',
          simd: Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')),
          threads: wasm.getThreadsCount(),
          trainingKernels: true,
        };
      }
      const note =
        threads > 1
          ? `${askedFor(asked)}, but the wasm backend was already started with ${wasm.getThreadsCount()} (threads must be set before its first use in the process)`
          : undefined;
      // Point the backend at the binaries inside the installed package: no
      // network, and correct even when this package is bundled elsewhere. Only
      // before first initialisation; tfjs refuses to change paths afterwards.
      if (!wasmInitialised()) {
        const dist = path.join(
          path.dirname(packageRequire().resolve(`${PACKAGES.wasm}/package.json`)),
          'dist',
        );
        if (!fs.existsSync(path.join(dist, 'tfjs-backend-wasm.wasm'))) {
          throw new Error(`the wasm binaries are missing from ${dist} (reinstall ${PACKAGES.wasm})`);
        }
        wasm.setWasmPaths(dist + path.sep);
      }
      // Before activation: upstream wasm cannot train conv nets without them.
      registerWasmTrainingKernels();
      await activate('wasm');
      return {
        tfBackendName: 'wasm',
        // The backend loads its SIMD binary exactly when this flag is true.
        simd: Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')),
        threads: wasm.getThreadsCount(),
        trainingKernels: true,
        ...(note && wasm.getThreadsCount() < threads ? { note } : {}),
      };
    },
    async cpu() {
      await loadPackage(load, 'cpu');
      await activate('cpu');
      // The cpu backend greets its first tensor in Node with advice to install
      // tfjs-node; the line initBackend prints already gives the accurate version.
      const backend = tf.backend() as { firstUse?: boolean };
      if (backend.firstUse === true) backend.firstUse = false;
      return { tfBackendName: 'cpu', simd: false, threads: 1, trainingKernels: false };
    },
  };
}

/**
 * Activates the fastest TensorFlow.js backend available: `@tensorflow/tfjs-node`
 * when it is installed and loads, else `wasm` with normprune's training
 * kernels, else the pure-JS `cpu` backend. Nothing is downloaded.
 *
 * A backend that fails to load is recorded in `fallbacks`, never thrown; the
 * call throws only if `options` is malformed (not an object, an unknown key,
 * a null value, a `quiet` or `releaseSavedTensorsDuringBackprop` that is not a
 * boolean), if `NORMPRUNE_BACKEND`, `NORMPRUNE_THREADS`, `prefer` or `threads` is invalid (an
 * option is checked even where its variable overrides it), if
 * `releaseSavedTensorsDuringBackprop` is asked for with a tfjs-core it was
 * not verified with, or if no backend at all can start. Unless `quiet`,
 * prints one line saying what was chosen and, after a fallback, how to get
 * the faster backend.
 *
 * ```ts
 * const info = await initBackend();          // e.g. { backend: 'wasm', simd: true, threads: 1, ... }
 * await initBackend({ prefer: 'cpu', quiet: true });
 * await initBackend({ threads: 2 });         // wasm's threaded build, when the cores are yours
 * await initBackend({ releaseSavedTensorsDuringBackprop: true }); // opt-in: lower peak memory in training
 * ```
 */
export async function initBackend(options: InitBackendOptions = {}): Promise<BackendInfo> {
  checkInitOptions(options);
  const threads = resolveThreads(options.threads, process.env);
  if (options.releaseSavedTensorsDuringBackprop) checkEngineSupported(tf.version_core, tf.engine());
  const { info, line } = await selectBackend(
    options.prefer,
    process.env,
    defaultLoaders(loadModule, threads),
    threads,
  );
  if (options.releaseSavedTensorsDuringBackprop && !releasingByInitBackend) {
    releaseSavedTensorsDuringBackprop();
    releasingByInitBackend = true;
  }
  if (!options.quiet) console.log(line);
  return info;
}

/** The keys of {@link InitBackendOptions}. */
const INIT_OPTIONS = ['prefer', 'quiet', 'threads', 'releaseSavedTensorsDuringBackprop'];

/**
 * Refuses options that are not an object, and keys initBackend does not take: a misspelled
 * `prefer` would otherwise silently pick another backend.
 */
function checkInitOptions(options: unknown): void {
  const listed = INIT_OPTIONS.map((k) => `\`${k}\``).join(', ');
  if (options === null || typeof options !== 'object' || Array.isArray(options))
    throw new Error(
      `initBackend: options must be an object such as { prefer: 'wasm' }; the options are ${listed}`,
    );
  const unknown = Object.keys(options).filter((k) => !INIT_OPTIONS.includes(k));
  if (unknown.length) {
    // The option a key likely misspells: the same but for case and '_', one a prefix of the other,
    // or one edit away (a letter left out, added, changed, or two swapped).
    const norm = (s: string) => s.toLowerCase().replace(/_/g, '');
    const meant = (k: string) =>
      norm(k).length < 3
        ? undefined
        : INIT_OPTIONS.find(
            (o) =>
              norm(o).startsWith(norm(k)) || norm(k).startsWith(norm(o)) || oneEditApart(norm(k), norm(o)),
          );
    const named = unknown.map((k) => `\`${k}\`${meant(k) ? ` (did you mean \`${meant(k)}\`?)` : ''}`);
    throw new Error(
      `initBackend: unknown option${unknown.length > 1 ? 's' : ''} ${named.join(', ')}; the options are ${listed}`,
    );
  }
  const nulls = INIT_OPTIONS.filter((k) => (options as Record<string, unknown>)[k] === null);
  if (nulls.length)
    throw new Error(
      `initBackend: option${nulls.length > 1 ? 's' : ''} ${nulls.map((k) => `\`${k}\``).join(', ')} ` +
        `${nulls.length > 1 ? 'are null: leave them' : 'is null: leave it'} out for the default, or give a value`,
    );
  for (const flag of ['quiet', 'releaseSavedTensorsDuringBackprop'] as const) {
    const v = (options as InitBackendOptions)[flag];
    if (v !== undefined && typeof v !== 'boolean')
      throw new Error(
        `initBackend: ${flag} must be true or false, got ${typeof v === 'string' ? `${JSON.stringify(v)} (a string)` : String(v)}`,
      );
  }
}

/** Whether `a` becomes `b` by one letter left out, added or changed, or two neighbours swapped. */
function oneEditApart(a: string, b: string): boolean {
  if (a.length > b.length) [a, b] = [b, a];
  if (b.length - a.length > 1) return false;
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  if (i === a.length) return true; // equal, or b has one letter more at the end
  if (a.length < b.length) return a.slice(i) === b.slice(i + 1);
  return (
    a.slice(i + 1) === b.slice(i + 1) ||
    (a[i] === b[i + 1] && a[i + 1] === b[i] && a.slice(i + 2) === b.slice(i + 2))
  );
}

// initBackend installs the release once per process, however often it is called.
let releasingByInitBackend = false;
