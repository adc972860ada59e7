// Upstream's BackendWasm.move() takes a tensor's memory with
// `wasm._malloc(numBytes) >>> 0` and writes the values there without a check.
// When the heap cannot grow (it addresses at most 4 GB), _malloc returns 0:
// the tensor is then placed at address 0 and its values are written over the
// start of the heap, corrupting whatever lives there, and training goes on
// with wrong numbers or crashes later somewhere unrelated. A size of 4 GB or
// more is truncated to 32 bits on its way into wasm, with the same effect.
// The guard wraps the module's _malloc so that either case throws at once,
// before anything is written, naming the size and the fix.

/** Marks a module whose _malloc is wrapped. @internal */
export const GUARDED = Symbol.for('normprune.mallocGuard');

/** The parts of the Emscripten module the guard reads and wraps. */
export interface MallocModule {
  _malloc(bytes: number): number;
  _free(offset: number): void;
  HEAPU8: Uint8Array;
  [GUARDED]?: true;
}

/** Bytes as "1.61 GB (1,606,418,432 bytes)". */
function size(bytes: number): string {
  const units: [number, string][] = [
    [2 ** 30, 'GB'],
    [2 ** 20, 'MB'],
    [2 ** 10, 'KB'],
  ];
  const [unit, name] = units.find(([u]) => bytes >= u) ?? [1, 'bytes'];
  const short = unit === 1 ? `${bytes} bytes` : `${(bytes / unit).toFixed(2)} ${name}`;
  return `${short} (${bytes.toLocaleString('en-US')} bytes)`;
}

/** The `code` of the error a full wasm heap throws (as Node's errors carry one), for programs to tell it apart. */
export const HEAP_FULL = 'ERR_NORMPRUNE_WASM_HEAP_FULL';

/** The error a failed allocation of `bytes` throws, with the heap's current size. @internal */
export function allocationError(bytes: number, heapBytes: number): Error & { code: string } {
  const why =
    bytes >= 2 ** 32
      ? 'more than a wasm heap can address (4 GB)'
      : `its heap holds ${size(heapBytes)} and cannot grow by that much (a wasm heap addresses at most 4 GB)`;
  const e = new Error(
    `normprune: the wasm backend cannot allocate ${size(bytes)} for a tensor: ${why}. ` +
      'Nothing was written. Train with a smaller batch size or a narrower model, or use ' +
      '@tensorflow/tfjs-node, whose memory is not limited to 4 GB.',
  ) as Error & { code: string };
  e.code = HEAP_FULL;
  return e;
}

/**
 * `malloc` that throws {@link allocationError} instead of returning 0 (or of
 * truncating a size of 4 GB or more to 32 bits). @internal
 */
export function checkedMalloc(
  malloc: (bytes: number) => number,
  heapBytes: () => number,
): (bytes: number) => number {
  return (bytes: number) => {
    if (bytes >= 2 ** 32) throw allocationError(bytes, heapBytes());
    const at = malloc(bytes);
    if (at === 0 && bytes > 0) throw allocationError(bytes, heapBytes());
    return at;
  };
}

/**
 * Wraps `backend.wasm._malloc` (once per module) with {@link checkedMalloc}.
 * Anything but a wasm backend is left alone. @internal
 */
export function guardMalloc(backend: unknown): void {
  const wasm = (backend as { wasm?: MallocModule } | null)?.wasm;
  if (wasm == null || typeof wasm._malloc !== 'function' || wasm[GUARDED]) return;
  // Emscripten's exported _malloc may be a stub that, on its first call,
  // replaces itself on the module with the raw export: call it once so that
  // the function wrapped below is the one that stays.
  wasm._free(wasm._malloc(1));
  const malloc = wasm._malloc;
  wasm._malloc = checkedMalloc(
    (bytes) => malloc(bytes),
    () => wasm.HEAPU8.length,
  );
  wasm[GUARDED] = true;
}
