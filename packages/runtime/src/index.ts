// The whole public surface of @normprune/runtime.
export { initBackend } from './backend.js';
export type { BackendFallback, BackendInfo, BackendName, InitBackendOptions } from './backend.js';
export { registerWasmTrainingKernels } from './kernels/index.js';
export { releaseSavedTensorsDuringBackprop } from './backprop.js';
export { fileSystem, makeDirs, syncDir, writeFileDurably } from './file-system.js';
export { ModelFileError } from './errors.js';
export type { ModelFileErrorCode } from './errors.js';
export { processGone } from './process.js';
