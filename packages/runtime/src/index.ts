// The whole public surface of @normprune/runtime.
import { registerFileUrlRouters } from './file-url.js';

export { initBackend } from './backend.js';
export { backendEnvironmentProblem } from './environment.js';
export type { BackendFallback, BackendInfo, BackendName, InitBackendOptions } from './backend.js';
export { registerWasmTrainingKernels } from './kernels/index.js';
export { releaseSavedTensorsDuringBackprop } from './backprop.js';
export {
  fileSystem,
  isSaveFile,
  killedSaveTemp,
  makeDirs,
  syncDir,
  writeFileDurably,
} from './file-system.js';
export { ModelFileError } from './errors.js';
export type { ModelFileErrorCode } from './errors.js';
export { processGone } from './process.js';

// As with tfjs-node, importing the package makes tfjs route `file://` strings
// (`model.save('file://dir')`, `loadLayersModel('file://dir/model.json')`) to
// fileSystem; it steps aside for tfjs-node's own router when that is loaded.
registerFileUrlRouters();
