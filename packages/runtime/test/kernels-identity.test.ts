// Identity (tf.clone, tensor.clone()) and same-dtype Cast share the input's buffer on wasm (upstream
// copies it): values, gradients, reference counting in every dispose order,
// variables, and the heap bytes they no longer allocate.
import * as tf from '@tensorflow/tfjs-core';
// tfjs-layers registers the gradients (tfjs-core alone has none).
import '@tensorflow/tfjs-layers';
import { registerWasmTrainingKernels, unregisterWasmTrainingKernels } from '../src/kernels/index.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';
import { initWasm, relError, rng, values, wasmDataIds } from './kernels-helpers.js';

interface MallocBackend {
  wasm: { _malloc(bytes: number): number };
}

beforeAll(async () => {
  await initWasm();
  registerWasmTrainingKernels();
});

afterAll(async () => {
  registerWasmTrainingKernels();
  await tf.setBackend('cpu');
});

beforeEach(async () => {
  await tf.setBackend('wasm');
});

/** Bytes the wasm backend asks its allocator for while `fn` runs. */
function mallocBytes<T>(fn: () => T): { result: T; bytes: number } {
  const wasm = (tf.backend() as unknown as MallocBackend).wasm;
  const malloc = wasm._malloc;
  let bytes = 0;
  wasm._malloc = (n: number) => ((bytes += n), malloc(n));
  try {
    return { result: fn(), bytes };
  } finally {
    wasm._malloc = malloc;
  }
}

const SHAPES = [[7], [3, 5], [2, 3, 4, 5], [64, 256]];

describe('values', () => {
  it.each(SHAPES)('identity, clone and same-dtype cast of shape %j return the input', async (...shape) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = values(rng(n), n);
    const x = tf.tensor(v, shape);
    const xi = tf.tensor(
      Int32Array.from(v, (u) => Math.round(100 * u)),
      shape,
      'int32',
    );
    const xb = tf.tensor(
      Uint8Array.from(v, (u) => (u > 0 ? 1 : 0)),
      shape,
      'bool',
    );
    await expectNoLeak(() => {
      const outs = [tf.clone(x), x.clone(), tf.cast(x, 'float32')];
      for (const o of outs) {
        expect(o.shape).toEqual(shape);
        expect(o.dtype).toBe('float32');
        expect(o.dataSync()).toEqual(v);
      }
      for (const [src, dtype] of [
        [xi, 'int32'],
        [xb, 'bool'],
      ] as const) {
        const copies = [tf.clone(src), src.clone(), tf.cast(src, dtype)];
        for (const c of copies) {
          expect(c.dtype).toBe(dtype);
          expect(c.dataSync()).toEqual(src.dataSync());
        }
        tf.dispose(copies);
      }
      tf.dispose(outs);
    });
    tf.dispose([x, xi, xb]);
  });

  it('string tensors: identity and clone keep the strings', () => {
    const s = tf.tensor(['a', 'bc', ''], [3], 'string');
    const outs = [tf.clone(s), s.clone()];
    s.dispose();
    for (const o of outs) expect(o.arraySync()).toEqual(['a', 'bc', '']);
    tf.dispose(outs);
  });

  it('a cast to another dtype still converts, as on cpu', async () => {
    const v = Float32Array.from([-2.7, -1, -0.5, 0, 0.4, 1.5, 3.99]);
    const run = () =>
      tf.tidy(() => {
        const x = tf.tensor1d(v);
        const i = tf.cast(x, 'int32');
        return [i, tf.cast(i, 'float32'), tf.cast(tf.tensor1d([0, 1, 0, 1], 'int32'), 'bool')].map((t) =>
          Array.from(t.dataSync()),
        );
      });
    const wasm = run();
    await tf.setBackend('cpu');
    expect(wasm).toEqual(run());
  });
});

describe('gradients', () => {
  it.each(SHAPES)('through tf.clone, tensor.clone() and tf.cast match cpu (shape %j)', async (...shape) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = values(rng(3 * n), n);
    const w = values(rng(5 * n), n);
    const run = async (backend: 'cpu' | 'wasm') => {
      await tf.setBackend(backend);
      return tf.tidy(() => {
        const x = tf.tensor(v, shape);
        const y = tf.tensor(w, shape);
        const f = (a: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.mul(tf.mul(tf.clone(a), tf.cast(tf.square(b), 'float32')).clone(), a.clone()));
        const [ga, gb] = tf.grads(f)([x, y]);
        return [ga.dataSync(), gb.dataSync(), f(x, y).dataSync()] as Float32Array[];
      });
    };
    const ref = await run('cpu');
    const got = await expectNoLeak(() => run('wasm'));
    for (let k = 0; k < ref.length; k++) expect(relError(got[k], ref[k])).toBeLessThan(1e-5);
  });
});

describe('buffers and reference counts', () => {
  it('an identity adds a tensor but no buffer; disposing both, in either order, frees it', () => {
    for (const order of ['source first', 'copy first'] as const) {
      for (const op of [
        (t: tf.Tensor) => tf.clone(t),
        (t: tf.Tensor) => t.clone(),
        (t: tf.Tensor) => tf.cast(t, 'float32'),
      ]) {
        const tensors = tf.memory().numTensors;
        const ids = wasmDataIds();
        const x = tf.tensor([1, 2, 3, 4], [2, 2]);
        const y = op(x);
        expect(tf.memory().numTensors).toBe(tensors + 2);
        expect(wasmDataIds()).toBe(ids + 1);
        const [first, second] = order === 'source first' ? [x, y] : [y, x];
        first.dispose();
        // The survivor still reads its values (the buffer was not freed under it).
        expect(Array.from(second.dataSync())).toEqual([1, 2, 3, 4]);
        const sum = tf.add(second, 1);
        expect(sum.dataSync()).toEqual(Float32Array.from([2, 3, 4, 5]));
        sum.dispose();
        expect(wasmDataIds()).toBe(ids + 1);
        second.dispose();
        expect(tf.memory().numTensors).toBe(tensors);
        expect(wasmDataIds()).toBe(ids);
      }
    }
  });

  it('a chain of identities inside tidy keeps only the returned one', () => {
    const tensors = tf.memory().numTensors;
    const ids = wasmDataIds();
    const x = tf.tensor([5, 6, 7]);
    const kept = tf.tidy(() => tf.clone(tf.clone(x).clone()).clone());
    x.dispose();
    expect(Array.from(kept.dataSync())).toEqual([5, 6, 7]);
    expect(tf.memory().numTensors).toBe(tensors + 1);
    expect(wasmDataIds()).toBe(ids + 1);
    kept.dispose();
    expect(wasmDataIds()).toBe(ids);
  });

  it('variables built or assigned from an identity keep their values when the sources go', () => {
    const tensors = tf.memory().numTensors;
    const ids = wasmDataIds();
    const x = tf.tensor([1, 2, 3]);
    const xi = tf.clone(x);
    const v = tf.variable(xi);
    const y = tf.tensor([4, 5, 6]);
    const yi = tf.clone(y);
    const zeros = tf.zeros([3]);
    const w = tf.variable(zeros);
    w.assign(yi);
    const doubled = tf.tidy(() => tf.mul(tf.clone(v), 2));
    v.assign(doubled);
    // Every source goes, the variables' own tensors first.
    tf.dispose([xi, x, zeros, yi, y, doubled]);
    expect(Array.from(v.dataSync())).toEqual([2, 4, 6]);
    expect(Array.from(w.dataSync())).toEqual([4, 5, 6]);
    // An optimizer's update of a variable leaves an identity taken before it alone.
    const snapshot = tf.clone(w);
    const optimizer = tf.train.sgd(1);
    const gradient = tf.tensor([1, 1, 1]);
    optimizer.applyGradients({ [w.name]: gradient });
    expect(Array.from(w.dataSync())).toEqual([3, 4, 5]);
    expect(Array.from(snapshot.dataSync())).toEqual([4, 5, 6]);
    tf.dispose([v, w, snapshot, gradient]);
    optimizer.dispose();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(wasmDataIds()).toBe(ids);
  });
});

describe('heap', () => {
  it.each([[[1024, 1024]], [[3, 224, 224, 8]]])(
    'identity, clone and same-dtype cast of %j allocate no heap bytes (upstream: the tensor size)',
    (shape) => {
      const x = tf.zeros(shape);
      const size = 4 * x.size;
      for (const op of [tf.clone, (t: tf.Tensor) => t.clone(), (t: tf.Tensor) => tf.cast(t, 'float32')]) {
        const { result, bytes } = mallocBytes(() => op(x));
        expect(bytes).toBe(0);
        result.dispose();
      }
      // The measure itself: upstream's kernels copy, asking for the tensor's size.
      unregisterWasmTrainingKernels();
      try {
        const { result, bytes } = mallocBytes(() => tf.clone(x));
        expect(bytes).toBe(size);
        result.dispose();
      } finally {
        registerWasmTrainingKernels();
      }
      x.dispose();
    },
  );
});
