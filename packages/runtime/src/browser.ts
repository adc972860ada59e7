// The browser build of @normprune/runtime, which bundlers pick through the
// `browser` condition of package.json `exports` (Vite, esbuild, webpack 5);
// Node never loads it. The wasm training kernels are the same code as in
// Node. What needs Node (backend selection reads packages and wasm binaries
// from disk, the IO handler writes files) keeps its name and type, so code
// shared with Node still bundles, and throws when called, saying what to use
// in a browser instead.
import type * as node from './index.js';

export type { BackendFallback, BackendInfo, BackendName, InitBackendOptions } from './backend.js';
export { backendEnvironmentProblem } from './environment.js';
export { registerWasmTrainingKernels } from './kernels/index.js';
export { releaseSavedTensorsDuringBackprop } from './backprop.js';
export { ModelFileError } from './errors.js';
export type { ModelFileErrorCode } from './errors.js';

function nodeOnly(what: string, instead: string): Error {
  return new Error(
    `@normprune/runtime: ${what}, in Node only (this is the package's browser build). ${instead}`,
  );
}

export const initBackend: typeof node.initBackend = async () => {
  throw nodeOnly(
    'initBackend() finds the tfjs packages and the wasm binaries on disk',
    "In a browser: import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm', call " +
      "setWasmPaths('<URL of a folder serving its .wasm files>/') and registerWasmTrainingKernels(), " +
      "then await tf.setBackend('wasm') (see the package README, 'In a browser').",
  );
};

export const fileSystem: typeof node.fileSystem = () => {
  throw nodeOnly(
    'fileSystem() saves models to and loads them from files',
    "In a browser, use tfjs's own IO: model.save('indexeddb://name'), 'localstorage://name' or " +
      "'downloads://name', and loadLayersModel('indexeddb://name') (or a URL) of @tensorflow/tfjs-layers.",
  );
};

export const makeDirs: typeof node.makeDirs = () => {
  throw nodeOnly('makeDirs() creates folders on the file system', 'A browser has no file system.');
};

export const writeFileDurably: typeof node.writeFileDurably = async () => {
  throw nodeOnly('writeFileDurably() writes files', 'A browser has no file system.');
};

export const syncDir: typeof node.syncDir = async () => {
  throw nodeOnly('syncDir() flushes a folder to disk', 'A browser has no file system.');
};

export const processGone: typeof node.processGone = () => {
  throw nodeOnly(
    'processGone() asks the operating system about a process',
    'A browser has no processes to ask about.',
  );
};

export const isSaveFile: typeof node.isSaveFile = () => {
  throw nodeOnly(
    'isSaveFile() tells the files of a model folder on disk apart',
    'A browser has no file system.',
  );
};

export const killedSaveTemp: typeof node.killedSaveTemp = () => {
  throw nodeOnly(
    'killedSaveTemp() tells the files of a model folder on disk apart',
    'A browser has no file system.',
  );
};
