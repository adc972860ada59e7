// The threaded SIMD wasm build does not start under Node as shipped, for three
// reasons, each worked around here for the duration of backend initialisation:
//  1. tfjs reports WASM_HAS_MULTITHREAD_SUPPORT = false whenever IS_NODE
//     (tensorflow/tfjs#3830), so the threaded binary is never chosen;
//  2. Emscripten's pthread workers are created from a `blob:` URL, which
//     Node's Worker refuses (ERR_WORKER_PATH), and each worker then loads the
//     main script from another blob (or from the whole tfjs bundle, which does
//     not evaluate inside a worker);
//  3. the C++ side caps XNNPACK's thread pool at os.cpus().length / 2 (it
//     assumes hyper-threading), i.e. 1 thread on a 2-core machine.
// The fix writes the Emscripten worker and the threaded module factory, both
// taken verbatim from the installed tfjs-backend-wasm bundle, to files in a
// private folder under os.tmpdir(), points the workers at them, and reports twice the cores while
// the module starts.
import * as tf from '@tensorflow/tfjs-core';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModule, packageRequire } from '../modules.js';
import { processGone } from '../process.js';
import { checkTfjsVersion } from './index.js';

interface WasmPackage {
  setThreadsCount(n: number): void;
  getThreadsCount(): number;
}

const FACTORY_START = 'var WasmBackendModuleThreadedSimd = (function () {';
const FACTORY_END = 'module.exports = WasmBackendModuleThreadedSimd;';
const WORKER = /var wasmWorkerContents = ("(?:[^"\\]|\\.)*");/;
// Module-level names the factory borrows from the rollup bundle around it.
const PRELUDE =
  "var require$$0 = require('fs'), require$$1 = require('path'), require$$3 = require('perf_hooks'), " +
  "require$$4 = require('os'); var commonjsGlobal = globalThis;\n";

const FOLDER_PREFIX = 'normprune-wasm-threads-';

/**
 * Removes the folders a killed process left (its exit handler never ran):
 * this user's own folders whose process no longer exists.
 */
function removeStaleFolders(): void {
  const tmp = os.tmpdir();
  const uid = process.getuid?.();
  let names: string[];
  try {
    names = fs.readdirSync(tmp);
  } catch {
    return;
  }
  for (const name of names) {
    const m = new RegExp(`^${FOLDER_PREFIX}(\\d+)-\\w{6}$`).exec(name);
    if (!m || !processGone(Number(m[1]))) continue;
    const st = fs.lstatSync(path.join(tmp, name), { throwIfNoEntry: false });
    if (!st?.isDirectory() || (uid !== undefined && st.uid !== uid)) continue;
    fs.rmSync(path.join(tmp, name), { recursive: true, force: true });
  }
}

/**
 * Writes the worker and factory files the pthreads load, into a folder of this
 * process's own: `mkdtemp` makes it with mode 0700 under an unpredictable
 * name, so no other user can place code the workers would run (a fixed,
 * shared folder under /tmp could be created first, or written into, by
 * anyone). The folder is removed when the process exits, or by the next
 * process that starts threads if this one was killed.
 */
function writeThreadFiles(bundleFile: string): { worker: string; factory: string } {
  const bundle = fs.readFileSync(bundleFile, 'utf8');
  const start = bundle.indexOf(FACTORY_START);
  const end = start < 0 ? -1 : bundle.indexOf(FACTORY_END, start);
  const worker = WORKER.exec(bundle);
  if (start < 0 || end < 0 || !worker) {
    throw new Error(
      `normprune: cannot find the threaded wasm factory in ${bundleFile} (unsupported tfjs-backend-wasm version)`,
    );
  }
  removeStaleFolders();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${FOLDER_PREFIX}${process.pid}-`));
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const factory = path.join(dir, 'threaded-simd.js');
  const workerFile = path.join(dir, 'threaded-simd.worker.js');
  // tfjs escapes newlines the same way before making its blob.
  const workerSource = (JSON.parse(worker[1]) as string)
    .replace(/\n/g, '\\n')
    .replace('importScripts:function(f){', `importScripts:function(f){f=${JSON.stringify(factory)};`);
  fs.writeFileSync(factory, PRELUDE + bundle.slice(start, end), { mode: 0o600 });
  fs.writeFileSync(workerFile, workerSource, { mode: 0o600 });
  return { worker: workerFile, factory };
}

/**
 * Whether the wasm backend has been initialised in this process (its binary,
 * threaded or not, is then fixed). Unlike `tf.findBackend`, never starts it.
 * @internal
 */
export function wasmInitialised(): boolean {
  return (tf.engine() as unknown as { registry: Record<string, unknown> }).registry.wasm != null;
}

/**
 * Initialises the `wasm` backend with its threaded SIMD build under Node and
 * makes it current; returns the thread count XNNPACK actually uses. Must run
 * before the wasm backend is first initialised in the process (the binary is
 * chosen once). Throws, leaving the backend uninitialised, when the bundle is
 * not one this knows how to start.
 * @internal
 */
export async function setWasmBackendWithThreads(threads: number): Promise<number> {
  checkTfjsVersion('initBackend({ threads })');
  if (wasmInitialised()) {
    throw new Error(
      'normprune: the wasm backend is already initialised; threads must be set up before its first use',
    );
  }
  const wasm = (await loadModule('@tensorflow/tfjs-backend-wasm')) as WasmPackage;
  const dist = path.join(
    path.dirname(packageRequire().resolve('@tensorflow/tfjs-backend-wasm/package.json')),
    'dist',
  );
  const files = writeThreadFiles(path.join(dist, 'tf-backend-wasm.node.js'));

  // The CommonJS module object the bundle reads (an ES namespace is read-only).
  const nodeOs = packageRequire()('os') as { cpus: typeof os.cpus };
  const createObjectURL = URL.createObjectURL;
  const cpus = nodeOs.cpus;
  URL.createObjectURL = (obj: Blob | MediaSource) =>
    (obj as Blob)?.type === 'application/javascript' ? files.worker : createObjectURL(obj as Blob);
  nodeOs.cpus = () => {
    const real = cpus();
    return Array.from({ length: 2 * threads }, (_, i) => real[i % real.length]);
  };
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  wasm.setThreadsCount(threads);
  try {
    if (!(await tf.setBackend('wasm')))
      throw new Error('normprune: the threaded wasm backend failed to initialise');
  } finally {
    URL.createObjectURL = createObjectURL;
    nodeOs.cpus = cpus;
  }
  // XNNPACK's pool threads run for the life of the module; referenced workers
  // would keep Node from exiting when the program is done.
  const module = (tf.backend() as unknown as { wasm?: { PThread?: { runningWorkers: { unref(): void }[] } } })
    .wasm;
  for (const worker of module?.PThread?.runningWorkers ?? []) worker.unref();
  return wasm.getThreadsCount();
}
