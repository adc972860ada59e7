// Upstream's BackendWasm.move() takes a tensor's memory with
// `wasm._malloc(numBytes) >>> 0` and writes the values there without a check.
// When the heap cannot grow (it addresses at most 4 GB), _malloc returns 0:
// the tensor is then placed at address 0 and its values are written over the
// start of the heap, corrupting whatever lives there, and training goes on
// with wrong numbers or crashes later somewhere unrelated. A size of 4 GB or
// more is truncated to 32 bits on its way into wasm, with the same effect.
// The guard wraps the module's _malloc so that either case throws at once,
// before anything is written, naming the size and the fix.
//
// The module also allocates for itself, from C++: XNNPACK's operators, the
// weights they pack, their indirection buffers. Those allocations are not
// checked upstream either: with the heap full, an operator is not created and
// the kernel returns whatever its output buffer held (a + a wrong in every
// entry in test/malloc-guard.test.ts's real-heap test with HEADROOM 0), or
// crashes with "memory access out of bounds" (a 4x-wide VGG-16 at the tiny
// budget). So the guard also refuses a tensor
// that would leave less than HEADROOM bytes free for those allocations. While
// the heap can still grow by HEADROOM, that room exists and nothing is
// checked; near the 4 GB maximum, after each allocation the guard asks malloc
// for HEADROOM bytes and gives them back.

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

/**
 * The error a failed allocation of `bytes` throws, with the heap's current
 * size; `headroom` when the allocation itself fitted but would have left less
 * than that free for the module's own allocations. @internal
 */
export function allocationError(
  bytes: number,
  heapBytes: number,
  headroom?: number,
): Error & { code: string } {
  const why =
    bytes >= 2 ** 32
      ? 'more than a wasm heap can address (4 GB)'
      : headroom !== undefined
        ? `its heap holds ${size(heapBytes)} and, with it, would keep less than ${size(headroom)} free for the ` +
          "wasm module's own allocations (XNNPACK's operators and packed weights, which upstream does not check: " +
          'without that room, operations return garbage)'
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
 * Bytes the guard keeps free for the module's own allocations (XNNPACK's
 * operators, packed weights and indirection buffers). The largest packed
 * weights of a full-width VGG-16 layer take 9 MB; 256 MB leaves room for
 * layers many times as wide, and costs 6% of the 4 GB heap. @internal
 */
export const HEADROOM = 256 * 2 ** 20;

/** The most a wasm32 heap can grow to: 4 GB less one 64 KB page. @internal */
export const MAX_HEAP = 2 ** 32 - 2 ** 16;

/**
 * `malloc` that throws {@link allocationError} instead of returning 0 (or of
 * truncating a size of 4 GB or more to 32 bits). With `keep`, once the heap
 * has grown to within `keep.headroom` of {@link MAX_HEAP} (below that the heap
 * can always grow by as much), it also throws, allocating nothing, when after
 * the allocation `keep.headroom` more bytes could not be allocated. @internal
 */
export function checkedMalloc(
  malloc: (bytes: number) => number,
  heapBytes: () => number,
  keep?: { free: (at: number) => void; headroom: number },
): (bytes: number) => number {
  return (bytes: number) => {
    if (bytes >= 2 ** 32) throw allocationError(bytes, heapBytes());
    const at = malloc(bytes);
    if (at === 0 && bytes > 0) throw allocationError(bytes, heapBytes());
    if (keep && keep.headroom > 0 && heapBytes() + keep.headroom > MAX_HEAP) {
      const room = malloc(keep.headroom);
      if (room === 0) {
        keep.free(at);
        throw allocationError(bytes, heapBytes(), keep.headroom);
      }
      keep.free(room);
    }
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
    { free: (at) => wasm._free(at), headroom: HEADROOM },
  );
  wasm[GUARDED] = true;
}
