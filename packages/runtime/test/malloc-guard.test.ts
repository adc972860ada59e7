// A tensor that does not fit in the wasm heap throws a clear error instead of
// being written over the start of the heap (upstream's move() does not check
// what _malloc returns). The allocations that fail here ask for more than the
// heap's 4 GB maximum, which the allocator refuses without growing the heap.
import * as tf from '@tensorflow/tfjs-core';
import { registerWasmTrainingKernels } from '../src/kernels/index.js';
import {
  allocationError,
  checkedMalloc,
  GUARDED,
  guardMalloc,
  HEADROOM,
  MallocModule,
  MAX_HEAP,
} from '../src/kernels/malloc_guard.js';
import { initWasm, wasmDataIds } from './kernels-helpers.js';

interface WasmBackend {
  wasm: MallocModule;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
}

/**
 * Floats in a buffer of 4,294,967,280 bytes: below 2^32, so not truncated, but
 * above the heap's maximum (4,294,901,760 bytes), so _malloc returns 0 without
 * growing the heap. (A request a little below the maximum succeeds by growing
 * the heap to 4 GB of address space.)
 */
const TOO_MANY = 2 ** 30 - 4;

beforeAll(async () => {
  // Registered before the backend starts: the guard comes with the kernels' setup.
  registerWasmTrainingKernels();
  await initWasm();
});

afterAll(async () => {
  await tf.setBackend('cpu');
});

describe('checkedMalloc', () => {
  it('returns what malloc returns', () => {
    const calls: number[] = [];
    const malloc = checkedMalloc(
      (n) => (calls.push(n), 4096 + n),
      () => 1 << 20,
    );
    expect(malloc(16)).toBe(4112);
    // A zero-byte request may get 0; nothing is written there.
    expect(
      checkedMalloc(
        () => 0,
        () => 1 << 20,
      )(0),
    ).toBe(0);
    // Above 2 GB wasm returns a negative (signed) address: valid, not a failure.
    expect(
      checkedMalloc(
        () => -2147483632,
        () => 3 * 2 ** 30,
      )(64),
    ).toBe(-2147483632);
    expect(calls).toEqual([16]);
  });

  it.each([
    [1, 16 << 20],
    [150 * 2 ** 20, 2 ** 31],
    [3 * 2 ** 30 + 5, 2 ** 32 - 2 ** 16],
  ])('throws when malloc returns 0 for %d bytes (heap %d bytes)', (bytes, heap) => {
    const malloc = checkedMalloc(
      () => 0,
      () => heap,
    );
    expect(() => malloc(bytes)).toThrow(allocationError(bytes, heap).message);
    expect(() => malloc(bytes)).toThrow(`cannot allocate`);
    expect(() => malloc(bytes)).toThrow(`(${bytes.toLocaleString('en-US')} bytes) for a tensor`);
    expect(() => malloc(bytes)).toThrow(`its heap holds`);
    expect(() => malloc(bytes)).toThrow(`(${heap.toLocaleString('en-US')} bytes)`);
    expect(() => malloc(bytes)).toThrow('smaller batch size or a narrower model');
    expect(() => malloc(bytes)).toThrow('@tensorflow/tfjs-node');
  });

  it('refuses 4 GB or more without calling malloc (wasm would truncate the size to 32 bits)', () => {
    const calls: number[] = [];
    const malloc = checkedMalloc(
      (n) => (calls.push(n), 64),
      () => 1 << 20,
    );
    expect(() => malloc(2 ** 32)).toThrow('more than a wasm heap can address (4 GB)');
    expect(() => malloc(2 ** 32 + 20)).toThrow('4.00 GB (4,294,967,316 bytes)');
    expect(calls).toEqual([]);
  });

  it('names sizes in readable units', () => {
    expect(allocationError(1536, 2 ** 20).message).toContain('1.50 KB (1,536 bytes)');
    expect(allocationError(100, 2 ** 20).message).toContain('100 bytes (100 bytes)');
    expect(allocationError(2 ** 20, 3 * 2 ** 30).message).toContain('heap holds 3.00 GB');
  });
});

describe('checkedMalloc with headroom', () => {
  /** An allocator of `capacity` bytes that counts what is in use. */
  function arena(capacity: number) {
    let used = 0;
    const sizes = new Map<number, number>();
    let next = 8;
    return {
      used: () => used,
      malloc: (n: number) => {
        if (used + n > capacity) return 0;
        used += n;
        sizes.set(next, n);
        return (next += n) - n;
      },
      free: (at: number) => {
        used -= sizes.get(at) ?? 0;
        sizes.delete(at);
      },
    };
  }

  it('keeps the headroom allocatable after each allocation, and leaves nothing allocated when it cannot', () => {
    const a = arena(1000);
    // A heap at its maximum: the headroom can only come from inside it.
    const malloc = checkedMalloc(a.malloc, () => MAX_HEAP, { free: a.free, headroom: 300 });
    expect(malloc(500)).toBeGreaterThan(0);
    expect(a.used()).toBe(500); // the headroom probe was given back
    expect(malloc(200)).toBeGreaterThan(0);
    expect(a.used()).toBe(700);
    // 100 more bytes fit, but would leave 200 < 300 free: refused, and not kept.
    expect(() => malloc(100)).toThrow(
      "with it, would keep less than 300 bytes (300 bytes) free for the wasm module's own allocations",
    );
    expect(a.used()).toBe(700);
    try {
      malloc(100);
    } catch (e) {
      expect((e as { code?: string }).code).toBe('ERR_NORMPRUNE_WASM_HEAP_FULL');
    }
    // What does not fit at all is the plain heap-full error.
    expect(() => malloc(400)).toThrow('cannot grow by that much');
    expect(a.used()).toBe(700);
  });

  it('asks for nothing more while the heap can still grow by the headroom', () => {
    const calls: number[] = [];
    const malloc = checkedMalloc(
      (n) => (calls.push(n), 64),
      () => MAX_HEAP - 300,
      { free: () => undefined, headroom: 300 },
    );
    malloc(100);
    expect(calls).toEqual([100]);
  });

  it("on a real heap filled with tensors, an operation refuses or is right, never garbage (upstream's own allocations)", async () => {
    await tf.setBackend('wasm');
    const a = tf.randomNormal([64, 48], 0, 1, 'float32', 3);
    // Computed here, not by a wasm kernel: no XNNPACK operator exists yet for the sums below.
    const expected = Float32Array.from(a.dataSync(), (v) => v + v);
    const slot = tf.zeros([64 * 48 + 64]); // a hole an output can take once freed
    const held: tf.Tensor[] = [];
    let last = '';
    // Down to single floats: not even 4 bytes are left for a tensor.
    for (let chunk = 64 * 2 ** 20; chunk >= 1;) {
      try {
        held.push(tf.zeros([chunk]));
      } catch (e) {
        last = (e as Error).message;
        chunk = Math.floor(chunk / 2);
      }
    }
    try {
      slot.dispose();
      // With HEADROOM 0, a + a comes back wrong in every entry (XNNPACK could not allocate its
      // operator, and the output kept what its buffer held).
      for (const [f, want] of [
        [() => tf.add(a, a), expected],
        [() => tf.add(tf.scalar(1), tf.scalar(2)), Float32Array.of(3)],
      ] as const) {
        let got: Float32Array | undefined;
        try {
          got = tf.tidy(() => f().dataSync() as Float32Array);
        } catch (e) {
          expect((e as { code?: string }).code).toBe('ERR_NORMPRUNE_WASM_HEAP_FULL');
        }
        if (got) expect(Array.from(got)).toEqual(Array.from(want));
      }
      // Filled up to the headroom, which the last refusal named.
      expect(last).toMatch(/keep less than 256\.00 MB .* free for the wasm module's own allocations/);
      expect(HEADROOM).toBe(256 * 2 ** 20);
    } finally {
      tf.dispose(held);
    }
    // With the tensors gone, the same operations run, and right.
    expect(Array.from(tf.tidy(() => tf.add(a, a).dataSync()))).toEqual(Array.from(expected));
    expect(Array.from(tf.tidy(() => tf.add(tf.scalar(1), tf.scalar(2)).dataSync()))).toEqual([3]);
    a.dispose();
  });
});

describe('guardMalloc', () => {
  /** A module whose _malloc, like Emscripten's, replaces itself with the raw export on first call. */
  function fakeModule(raw: (n: number) => number): MallocModule {
    const m = {
      HEAPU8: new Uint8Array(64),
      _free: () => undefined,
      _malloc(n: number): number {
        return (m._malloc = raw)(n);
      },
    } as MallocModule;
    return m;
  }

  it('wraps the raw export, and the wrapper stays through later calls', () => {
    let fail = false;
    const m = fakeModule((n) => (fail ? 0 : 8 + n));
    guardMalloc({ wasm: m });
    expect(m[GUARDED]).toBe(true);
    expect(m._malloc(4)).toBe(12);
    expect(m._malloc(4)).toBe(12);
    fail = true;
    expect(() => m._malloc(4)).toThrow('its heap holds 64 bytes (64 bytes)');
  });

  it('wraps once, and leaves anything without a wasm module alone', () => {
    const m = fakeModule(() => 0);
    guardMalloc({ wasm: m });
    const wrapped = m._malloc;
    guardMalloc({ wasm: m });
    expect(m._malloc).toBe(wrapped);
    expect(() => guardMalloc(null)).not.toThrow();
    expect(() => guardMalloc({})).not.toThrow();
    expect(() => guardMalloc(tf.findBackend('cpu'))).not.toThrow();
  });
});

describe('the wasm backend', () => {
  const backend = () => tf.backend() as unknown as WasmBackend;

  beforeEach(async () => {
    await tf.setBackend('wasm');
  });

  it('is guarded when the kernels were registered before it started', () => {
    expect(backend().wasm[GUARDED]).toBe(true);
  });

  it('throws on a tensor the heap cannot hold, writes nothing, and keeps working', () => {
    const x = tf.tensor([1, 2, 3, 4]);
    const tensors = tf.memory().numTensors;
    const ids = wasmDataIds();
    const heap = backend().wasm.HEAPU8.length;
    const message = allocationError(4 * TOO_MANY, heap).message;
    expect(() => backend().makeOutput([TOO_MANY], 'float32')).toThrow(message);
    // The error carries a code, as Node's do, so a program can tell a full heap apart.
    let code: unknown;
    try {
      tf.zeros([TOO_MANY]);
    } catch (e) {
      code = (e as { code?: unknown }).code;
    }
    expect(code).toBe('ERR_NORMPRUNE_WASM_HEAP_FULL');
    // Through the ops: a kernel's output, and a tensor made from values.
    expect(() => tf.zeros([TOO_MANY])).toThrow('cannot allocate 4.00 GB (4,294,967,280 bytes) for a tensor');
    expect(() => tf.tidy(() => tf.tile(x, [TOO_MANY / 4]))).toThrow('smaller batch size');
    expect(() => tf.zeros([2 ** 30 + 5])).toThrow('more than a wasm heap can address');
    expect(tf.memory().numTensors).toBe(tensors);
    expect(wasmDataIds()).toBe(ids);
    expect(backend().wasm.HEAPU8.length).toBe(heap);
    const y = tf.tidy(() => tf.add(x, tf.scalar(1)));
    expect(Array.from(y.dataSync())).toEqual([2, 3, 4, 5]);
    tf.dispose([x, y]);
  });
});
