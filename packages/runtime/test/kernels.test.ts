import * as tf from '@tensorflow/tfjs-core';
// tfjs-layers registers the gradients (tfjs-core alone has none).
import '@tensorflow/tfjs-layers';
import {
  registerWasmTrainingKernels,
  unregisterWasmTrainingKernels,
  wasmTrainingKernelNames,
  wasmTrainingKernelsRegistered,
} from '../src/kernels/index.js';
import { im2colLimits } from '../src/kernels/col2im.js';
import { GUARDED, MallocModule } from '../src/kernels/malloc_guard.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';
import { initWasm, int, relError, rng, runOn, values, wasmDataIds } from './kernels-helpers.js';

// Error relative to the largest reference entry; measured at most 6e-7 over every case.
const TOL = 1e-5;

beforeAll(async () => {
  await initWasm();
  registerWasmTrainingKernels();
});

afterAll(async () => {
  await tf.setBackend('cpu');
});

type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

interface ConvCase {
  n: number;
  h: number;
  w: number;
  cin: number;
  cout: number;
  kh: number;
  kw: number;
  stride: [number, number];
  pad: Pad;
}

function convCases(seed: number, count: number): ConvCase[] {
  const r = rng(seed);
  const cases: ConvCase[] = [];
  while (cases.length < count) {
    const kh = int(r, 1, 5);
    const kw = int(r, 1, 5);
    const h = int(r, kh, 13);
    const w = int(r, kw, 11);
    const s = int(r, 1, 2);
    const stride: [number, number] = r() < 0.2 ? [s, 3 - s] : [s, s];
    const which = int(r, 0, 4);
    const pad: Pad =
      which <= 1
        ? 'same'
        : which <= 3
          ? 'valid'
          : [
              [0, 0],
              [int(r, 0, kh - 1), int(r, 0, kh - 1)],
              [int(r, 0, kw - 1), int(r, 0, kw - 1)],
              [0, 0],
            ];
    cases.push({ n: int(r, 1, 8), h, w, cin: int(r, 1, 16), cout: int(r, 1, 16), kh, kw, stride, pad });
  }
  return cases;
}

function outShape(c: ConvCase): [number, number, number, number] {
  const info = tf.backend_util.computeConv2DInfo(
    [c.n, c.h, c.w, c.cin],
    [c.kh, c.kw, c.cin, c.cout],
    c.stride,
    1,
    c.pad as 'same',
  );
  return info.outShape as [number, number, number, number];
}

const describeCase = (c: ConvCase) =>
  `n${c.n} ${c.h}x${c.w}x${c.cin} k${c.kh}x${c.kw}->${c.cout} s${c.stride.join(',')} ${JSON.stringify(c.pad)}`;

describe('registration', () => {
  it('is idempotent and keeps the upstream setupFunc', () => {
    const before = wasmTrainingKernelNames.map((k) => tf.getKernel(k, 'wasm'));
    registerWasmTrainingKernels();
    const after = wasmTrainingKernelNames.map((k) => tf.getKernel(k, 'wasm'));
    expect(after).toEqual(before);
    for (const k of ['BatchMatMul', '_FusedMatMul', 'Conv2DBackpropInput']) {
      const ours = tf.getKernel(k, 'wasm')!;
      expect(typeof ours.setupFunc).toBe('function');
      // The registered setupFunc is upstream's, which binds the C++ entry points.
      expect(ours.setupFunc!.toString()).toMatch(/cwrap/);
    }
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeDefined();
  });

  it('guards the _malloc of a backend started before registration', () => {
    // This suite starts the backend first; malloc-guard.test.ts registers first.
    const backend = tf.findBackend('wasm') as unknown as { wasm: MallocModule };
    expect(backend.wasm[GUARDED]).toBe(true);
    // A setupFunc that did not exist upstream runs the guard (idempotent).
    const setup = tf.getKernel('Identity', 'wasm')!.setupFunc!;
    const wrapped = backend.wasm._malloc;
    setup(backend);
    expect(backend.wasm._malloc).toBe(wrapped);
  });

  it('can put the upstream kernels back and register again', () => {
    const ours = tf.getKernel('BatchMatMul', 'wasm');
    unregisterWasmTrainingKernels();
    expect(wasmTrainingKernelsRegistered()).toBe(false);
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeUndefined();
    const upstream = tf.getKernel('BatchMatMul', 'wasm')!;
    expect(upstream).not.toBe(ours);
    expect(upstream.setupFunc).toBe(ours!.setupFunc);
    registerWasmTrainingKernels();
    expect(wasmTrainingKernelsRegistered()).toBe(true);
    expect(tf.getKernel('BatchMatMul', 'wasm')!.setupFunc).toBe(upstream.setupFunc);
  });
});

describe('BatchMatMul', () => {
  const r = rng(7);
  const cases: { a: number[]; b: number[]; ta: boolean; tb: boolean }[] = [];
  for (let i = 0; i < 24; i++) {
    const ta = i % 2 === 1;
    const tb = Math.floor(i / 2) % 2 === 1;
    const batch = i < 8 ? [] : i < 16 ? [int(r, 1, 4)] : [int(r, 1, 3), int(r, 1, 3)];
    const m = int(r, 1, 40);
    const k = int(r, 1, 40);
    const n = int(r, 1, 40);
    cases.push({
      a: [...batch, ...(ta ? [k, m] : [m, k])],
      b: [...batch, ...(tb ? [n, k] : [k, n])],
      ta,
      tb,
    });
  }
  it.each(cases)('matches cpu for a=$a b=$b transposeA=$ta transposeB=$tb', async ({ a, b, ta, tb }) => {
    const va = values(
      r,
      a.reduce((x, y) => x * y, 1),
    );
    const vb = values(
      r,
      b.reduce((x, y) => x * y, 1),
    );
    const f = () => tf.matMul(tf.tensor(va, a), tf.tensor(vb, b), ta, tb);
    const [ref] = await runOn('cpu', f);
    const ids = wasmDataIds();
    const [got] = await expectNoLeak(() => runOn('wasm', f));
    expect(wasmDataIds()).toBe(ids);
    expect(relError(got, ref)).toBeLessThan(TOL);
  });

  it('fused matMul with bias and relu matches cpu, transposed', async () => {
    const va = values(r, 6 * 9);
    const vb = values(r, 5 * 9);
    const vc = values(r, 5);
    const f = () =>
      tf.fused.matMul({
        a: tf.tensor(va, [9, 6]),
        b: tf.tensor(vb, [5, 9]),
        transposeA: true,
        transposeB: true,
        bias: tf.tensor(vc, [5]),
        activation: 'relu',
      });
    const [ref] = await runOn('cpu', f);
    const [got] = await runOn('wasm', f);
    expect(relError(got, ref)).toBeLessThan(TOL);
  });
});

function runConvGrad(
  kernel: 'Conv2DBackpropFilter' | 'Conv2DBackpropInput',
  c: ConvCase,
  vx: Float32Array,
  vw: Float32Array,
  vdy: Float32Array,
) {
  const ys = outShape(c);
  return () => {
    const dy = tf.tensor(vdy, ys);
    if (kernel === 'Conv2DBackpropFilter') {
      const x = tf.tensor(vx, [c.n, c.h, c.w, c.cin]);
      return tf.engine().runKernel(kernel, { x, dy }, {
        strides: c.stride,
        pad: c.pad,
        dataFormat: 'NHWC',
        filterShape: [c.kh, c.kw, c.cin, c.cout],
      } as unknown as tf.NamedAttrMap) as tf.Tensor;
    }
    const filter = tf.tensor(vw, [c.kh, c.kw, c.cin, c.cout]);
    return tf.engine().runKernel(kernel, { dy, filter }, {
      strides: c.stride,
      pad: c.pad,
      dataFormat: 'NHWC',
      inputShape: [c.n, c.h, c.w, c.cin],
    } as unknown as tf.NamedAttrMap) as tf.Tensor;
  };
}

describe.each(['Conv2DBackpropFilter', 'Conv2DBackpropInput'] as const)('%s', (kernel) => {
  const cases = convCases(kernel === 'Conv2DBackpropFilter' ? 11 : 12, 40);
  // Both forms of the input gradient: flipped-filter convolution ('same', many
  // input channels) and matMul + col2im ('valid' 5x5, few channels, stride 2).
  cases.push(
    { n: 3, h: 9, w: 7, cin: 12, cout: 5, kh: 3, kw: 3, stride: [1, 1], pad: 'same' },
    { n: 2, h: 12, w: 10, cin: 3, cout: 7, kh: 5, kw: 5, stride: [2, 2], pad: 'valid' },
  );
  it.each(cases.map((c) => [describeCase(c), c] as const))('matches cpu: %s', async (_name, c) => {
    const r = rng(c.n * 1000 + c.h * 31 + c.cout);
    const ys = outShape(c);
    const vx = values(r, c.n * c.h * c.w * c.cin);
    const vw = values(r, c.kh * c.kw * c.cin * c.cout);
    const vdy = values(
      r,
      ys.reduce((a, b) => a * b, 1),
    );
    const f = runConvGrad(kernel, c, vx, vw, vdy);
    const [ref] = await runOn('cpu', f);
    const ids = wasmDataIds();
    const [got] = await expectNoLeak(() => runOn('wasm', f));
    expect(wasmDataIds()).toBe(ids);
    expect(got.length).toBe(ref.length);
    expect(relError(got, ref)).toBeLessThan(TOL);
  });
});

describe.each([false, true])(
  'conv2d, fused conv2d and their gradients together (col2im batch split into chunks: %s)',
  (chunked) => {
    const saved = im2colLimits.maxFloats;
    beforeAll(() => {
      if (chunked) im2colLimits.maxFloats = 200;
    });
    afterAll(() => {
      im2colLimits.maxFloats = saved;
    });
    const cases = convCases(chunked ? 21 : 22, 20);
    it.each(cases.map((c, i) => [describeCase(c), c, i] as const))('matches cpu: %s', async (_name, c, i) => {
      const r = rng(i + 100);
      const ys = outShape(c);
      const vx = values(r, c.n * c.h * c.w * c.cin);
      const vw = values(r, c.kh * c.kw * c.cin * c.cout);
      const vb = values(r, c.cout);
      const vdy = values(
        r,
        ys.reduce((a, b) => a * b, 1),
      );
      const activation = (['linear', 'relu', 'elu', 'sigmoid'] as const)[i % 4];
      const f = () => {
        const x = tf.tensor4d(vx, [c.n, c.h, c.w, c.cin]);
        const w = tf.tensor4d(vw, [c.kh, c.kw, c.cin, c.cout]);
        const plain = tf.conv2d(x, w, c.stride, c.pad);
        const fused = tf.fused.conv2d({
          x,
          filter: w,
          strides: c.stride,
          pad: c.pad,
          bias: tf.tensor1d(vb),
          activation,
        });
        // The three kernels together, also in the chunked configuration.
        const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad), tf.tensor(vdy, ys))),
        )([x, w]);
        return [plain, fused, dx, dw];
      };
      const ref = await runOn('cpu', f);
      const ids = wasmDataIds();
      const got = await expectNoLeak(() => runOn('wasm', f));
      expect(wasmDataIds()).toBe(ids);
      ref.forEach((rv, k) => expect([k, relError(got[k], rv) < TOL]).toEqual([k, true]));
    });
  },
);

describe("forward convolutions with 'same' padding and a stride larger than the kernel", () => {
  // Upstream wasm (XNNPACK's TensorFlow SAME flag) gets these wrong, by up to 1.3 here.
  const cases: [number, number, number, number, number, number][] = [
    // h, w, kh, kw, sh, sw
    [5, 5, 3, 3, 5, 5],
    [10, 10, 3, 3, 5, 5],
    [4, 4, 3, 3, 4, 4],
    [9, 9, 2, 2, 3, 3],
    [7, 7, 2, 2, 4, 4],
    [9, 7, 2, 3, 3, 4],
    [6, 6, 3, 3, 4, 4],
    [8, 8, 3, 3, 2, 2],
  ];
  it.each(cases)(
    '%ix%i k%ix%i s%i,%i: conv2d, fused, depthwise and the conv2d gradients match cpu',
    async (h, w, kh, kw, sh, sw) => {
      const r = rng(h * 100 + kh * 10 + sh);
      const [n, cin, cout] = [2, 3, 4];
      const ys = tf.backend_util.computeConv2DInfo(
        [n, h, w, cin],
        [kh, kw, cin, cout],
        [sh, sw],
        1,
        'same',
      ).outShape;
      const vx = values(r, n * h * w * cin);
      const vw = values(r, kh * kw * cin * cout);
      const vd = values(r, kh * kw * cin * 2);
      const vdy = values(
        r,
        ys.reduce((a, b) => a * b, 1),
      );
      const f = () => {
        const x = tf.tensor4d(vx, [n, h, w, cin]);
        const k = tf.tensor4d(vw, [kh, kw, cin, cout]);
        const d = tf.tensor4d(vd, [kh, kw, cin, 2]);
        const bias = tf.tensor1d(values(rng(5), cout));
        const [dx, dk] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, [sh, sw], 'same'), tf.tensor(vdy, ys))),
        )([x, k]);
        return [
          tf.conv2d(x, k, [sh, sw], 'same'),
          tf.fused.conv2d({ x, filter: k, strides: [sh, sw], pad: 'same', bias, activation: 'relu' }),
          tf.depthwiseConv2d(x, d, [sh, sw], 'same'),
          tf.fused.depthwiseConv2d({
            x,
            filter: d,
            strides: [sh, sw],
            pad: 'same',
            bias: tf.zeros([cin * 2]),
          }),
          dx,
          dk,
        ];
      };
      const ref = await runOn('cpu', f);
      const ids = wasmDataIds();
      const got = await expectNoLeak(() => runOn('wasm', f));
      expect(wasmDataIds()).toBe(ids);
      ref.forEach((rv, i) => expect([i, relError(got[i], rv) < TOL]).toEqual([i, true]));
    },
  );
});

describe('a numeric pad with a geometry that differs between height and width', () => {
  // tfjs-core sizes both output dimensions from the filter's and stride's height when pad is a
  // number; upstream wasm wrote past its output for these (e.g. [3, 1] filter, pad 1: tfjs allocates
  // 5x5, XNNPACK writes 5x7), and later unrelated calls trapped.
  const x = () => tf.randomUniform([1, 7, 6, 2], -1, 1, 'float32', 3) as tf.Tensor4D;
  const refused: [string, () => tf.Tensor, RegExp][] = [
    [
      'conv2d [3, 1] filter',
      () => tf.conv2d(x(), tf.ones([3, 1, 2, 2]) as tf.Tensor4D, 1, 1),
      /a convolution .*pad \(1\) and a 3x1 filter, strides \[1,1\]/,
    ],
    [
      'conv2d strides [3, 1], pad 0',
      () => tf.conv2d(x(), tf.ones([3, 3, 2, 2]) as tf.Tensor4D, [3, 1], 0),
      /a convolution .*pad \(0\) and a 3x3 filter, strides \[3,1\]/,
    ],
    [
      'conv2d dilations [2, 1]',
      () => tf.conv2d(x(), tf.ones([2, 2, 2, 2]) as tf.Tensor4D, 1, 1, 'NHWC', [2, 1]),
      /strides \[1,1\], dilations \[2,1\]/,
    ],
    [
      'depthwise [1, 3] filter',
      () => tf.depthwiseConv2d(x(), tf.ones([1, 3, 2, 1]) as tf.Tensor4D, 1, 1),
      /a depthwise convolution .*1x3 filter/,
    ],
    [
      'fused conv [3, 1] filter',
      () =>
        tf.fused.conv2d({
          x: x(),
          filter: tf.ones([3, 1, 2, 2]) as tf.Tensor4D,
          strides: 1,
          pad: 1,
          activation: 'relu',
        }),
      /a convolution .*3x1 filter/,
    ],
    [
      'maxPool [2, 1] filter',
      () => tf.maxPool(x(), [2, 1], [3, 1], 2),
      /MaxPool on wasm with a numeric pad \(2\) and a 2x1 filter, strides \[3,1\]/,
    ],
    [
      'avgPool strides [2, 1]',
      () => tf.avgPool(x(), 2, [2, 1], 1),
      /AvgPool on wasm with a numeric pad \(1\) and a 2x2 filter, strides \[2,1\]/,
    ],
  ];
  it.each(refused)(
    '%s is refused on wasm with the fix, and wasm goes on working',
    async (_name, op, message) => {
      await tf.setBackend('wasm');
      const before = tf.memory().numTensors;
      expect(() => tf.tidy(op)).toThrow(message);
      expect(() => tf.tidy(op)).toThrow(
        /Give pad as 'same', 'valid' or explicit \[\[0, 0\], \[top, bottom\], \[left, right\], \[0, 0\]\]/,
      );
      expect(tf.memory().numTensors).toBe(before);
      // The heap is intact: an ordinary call still agrees with cpu.
      const ok = () => tf.conv2d(x(), tf.ones([3, 3, 2, 2]) as tf.Tensor4D, 1, 'same');
      const [cpu] = await runOn('cpu', ok);
      const [wasm] = await runOn('wasm', ok);
      expect(relError(wasm, cpu)).toBeLessThan(TOL);
    },
  );
  it('the same geometry in both dimensions still takes a numeric pad, as on cpu', async () => {
    for (const op of [
      () => tf.conv2d(x(), tf.ones([3, 3, 2, 2]) as tf.Tensor4D, 2, 1),
      () => tf.depthwiseConv2d(x(), tf.ones([2, 2, 2, 1]) as tf.Tensor4D, 1, 1),
      () => tf.maxPool(x(), 2, 2, 1),
      () => tf.avgPool(x(), 3, 1, 1),
    ]) {
      const [cpu] = await runOn('cpu', op);
      const [wasm] = await runOn('wasm', op);
      expect(relError(wasm, cpu)).toBeLessThan(TOL);
    }
  });
});

describe('MaxPoolGrad', () => {
  const r = rng(31);
  const cases: {
    shape: [number, number, number, number];
    size: [number, number];
    stride: [number, number];
    pad: 'same' | 'valid';
  }[] = [];
  for (let i = 0; i < 24; i++) {
    const size: [number, number] = [int(r, 1, 3), int(r, 1, 3)];
    const shape: [number, number, number, number] = [
      int(r, 1, 8),
      int(r, size[0], 12),
      int(r, size[1], 9),
      int(r, 1, 16),
    ];
    cases.push({ shape, size, stride: [int(r, 1, 2), int(r, 1, 2)], pad: i % 2 ? 'same' : 'valid' });
  }
  // The unrolled 2x2 / stride 2 path, and its fallbacks (odd sizes with 'same' padding).
  cases.push(
    { shape: [3, 8, 6, 5], size: [2, 2], stride: [2, 2], pad: 'valid' },
    { shape: [2, 7, 9, 4], size: [2, 2], stride: [2, 2], pad: 'valid' },
    { shape: [2, 7, 9, 4], size: [2, 2], stride: [2, 2], pad: 'same' },
  );
  it.each(cases)(
    'matches cpu, with ties, for $shape pool $size stride $stride $pad',
    async ({ shape, size, stride, pad }) => {
      // Values on a coarse grid and clipped at 0 make ties common, as after ReLU.
      const vx = values(
        r,
        shape.reduce((a, b) => a * b, 1),
      ).map((v) => Math.max(0, Math.round(v * 3)));
      const f = () => {
        const x = tf.tensor4d(vx, shape);
        return tf.grad((a: tf.Tensor) => {
          const y = tf.maxPool(a as tf.Tensor4D, size, stride, pad);
          return tf.sum(tf.mul(y, tf.reshape(tf.range(1, y.size + 1), y.shape)));
        })(x);
      };
      const [ref] = await runOn('cpu', f);
      const ids = wasmDataIds();
      const [got] = await expectNoLeak(() => runOn('wasm', f));
      expect(wasmDataIds()).toBe(ids);
      expect(relError(got, ref)).toBeLessThan(TOL);
    },
  );
});

describe('Tile', () => {
  const r = rng(77);
  const cases: { shape: number[]; reps: number[]; dtype: 'float32' | 'int32' | 'bool' }[] = [];
  for (let i = 0; i < 18; i++) {
    const rank = int(r, 1, 5);
    const shape = Array.from({ length: rank }, () => int(r, 1, 4));
    const reps = Array.from({ length: rank }, () => int(r, 1, 3));
    cases.push({ shape, reps, dtype: (['float32', 'int32', 'bool'] as const)[i % 3] });
  }
  // The BatchNormalization gradient's case: [1, 1, 1, C] to the activation shape.
  cases.push({ shape: [1, 1, 1, 16], reps: [8, 7, 5, 1], dtype: 'float32' });
  // A rep of 0: an empty output (once written past its zero-byte allocation).
  cases.push({ shape: [1, 4], reps: [0, 1], dtype: 'float32' });
  cases.push({ shape: [2, 3], reps: [2, 0], dtype: 'int32' });
  it('leaves the heap intact after empty outputs', async () => {
    const f = () => {
      const kept = tf.tensor1d([7, 7, 7, 7]);
      const empty = tf.tile(tf.tensor2d([[1, 2, 3, 4, 5, 6, 7, 8]]), [0, 1]);
      const after = tf.tensor1d([5, 5, 5, 5, 5, 5]);
      expect(empty.shape).toEqual([0, 8]);
      return tf.concat([kept, after]);
    };
    const [got] = await runOn('wasm', f);
    expect(Array.from(got)).toEqual([7, 7, 7, 7, 5, 5, 5, 5, 5, 5]);
  });
  it.each(cases)('matches cpu for $shape x $reps ($dtype)', async ({ shape, reps, dtype }) => {
    const v = values(
      r,
      shape.reduce((a, b) => a * b, 1),
    ).map((x) => Math.round(x * 5));
    // Bools come from a comparison: upstream wasm's Cast to bool keeps the integer value.
    const make = () =>
      dtype === 'bool' ? tf.greater(tf.tensor(v, shape), 0) : tf.cast(tf.tensor(v, shape), dtype);
    const f = () => tf.cast(tf.tile(make(), reps), 'float32');
    const [ref] = await runOn('cpu', f);
    const ids = wasmDataIds();
    const [got] = await expectNoLeak(() => runOn('wasm', f));
    expect(wasmDataIds()).toBe(ids);
    expect(Array.from(got)).toEqual(Array.from(ref));
  });
});

describe('Sum and Mean', () => {
  const r = rng(91);
  const cases: { shape: number[]; axis: number[]; keepDims: boolean }[] = [
    { shape: [8, 7, 5, 16], axis: [0, 1, 2], keepDims: false },
    { shape: [8, 7, 5, 16], axis: [2, 1, 0], keepDims: true },
    { shape: [64, 30], axis: [0], keepDims: false },
    { shape: [3, 4, 5], axis: [0, 1], keepDims: true },
    { shape: [3, 4, 5], axis: [1, 2], keepDims: false }, // trailing axes: upstream path
    { shape: [3, 4, 5], axis: [0, 1, 2], keepDims: false }, // everything: upstream path
  ];
  it.each(cases)('match cpu over $axis of $shape (keepDims $keepDims)', async ({ shape, axis, keepDims }) => {
    const v = values(
      r,
      shape.reduce((a, b) => a * b, 1),
    );
    const f = () => {
      const x = tf.tensor(v, shape);
      return [tf.sum(x, axis, keepDims), tf.mean(x, axis, keepDims)];
    };
    const ref = await runOn('cpu', f);
    const ids = wasmDataIds();
    const got = await expectNoLeak(() => runOn('wasm', f));
    expect(wasmDataIds()).toBe(ids);
    ref.forEach((rv, k) => expect(relError(got[k], rv)).toBeLessThan(TOL));
  });
});

describe('empty inputs give what cpu gives, not uninitialised memory', () => {
  // Upstream wasm returned whatever the output buffer held for a matMul with an inner dimension
  // of 0 (the weight gradient of an empty batch) and for a Sum or Mean over an empty axis.
  const ops: [string, () => tf.Tensor][] = [
    ['matMul [3, 0] x [0, 4]', () => tf.matMul(tf.zeros([3, 0]), tf.zeros([0, 4]))],
    ['matMul transposeA [0, 3]^T x [0, 5]', () => tf.matMul(tf.zeros([0, 3]), tf.zeros([0, 5]), true, false)],
    [
      'batch matMul [2, 3, 0] x [1, 0, 2]^T...',
      () => tf.matMul(tf.zeros([2, 3, 0]), tf.zeros([1, 2, 0]), false, true),
    ],
    ['fused matMul linear, no bias', () => tf.fused.matMul({ a: tf.zeros([3, 0]), b: tf.zeros([0, 4]) })],
    ['sum over an empty leading axis', () => tf.sum(tf.zeros([0, 5]), 0)],
    ['sum over an empty axis, keepDims', () => tf.sum(tf.zeros([4, 0, 3]), 1, true)],
    ['mean over an empty axis', () => tf.mean(tf.zeros([0, 6]), 0)],
    ['sum over an empty axis of a reused heap', () => tf.sum(tf.zeros([2, 0]), [0, 1])],
  ];
  it.each(ops)('%s', async (_name, op) => {
    // Leave garbage on the heap where the output may land.
    await tf.setBackend('wasm');
    tf.tidy(() => tf.fill([64, 64], 7.5).dataSync());
    const [cpu] = await runOn('cpu', op);
    const got = await expectNoLeak(() => runOn('wasm', op));
    expect(Array.from(got[0])).toEqual(Array.from(cpu));
  });
});

describe('Sum and Mean over an empty axis of int32 and bool tensors', () => {
  // Only a float32 input had the zeros: an int32 or bool one went to upstream, which returned the
  // output buffer's leftovers ([25840, 25840, 16, 1000] for a Sum of an empty int32 mask).
  const sumKernel = (x: tf.Tensor, axis: number | number[], keepDims = false) =>
    tf.engine().runKernel('Sum', { x }, { axis, keepDims }) as tf.Tensor;
  const ops: [string, () => tf.Tensor][] = [
    ['sum int32 [0, 4] over 0', () => tf.sum(tf.zeros([0, 4], 'int32'), 0)],
    ['sum int32 [3, 0, 2] over 1', () => tf.sum(tf.zeros([3, 0, 2], 'int32'), 1)],
    ['sum int32 [3, 0, 2] over 1, keepDims', () => tf.sum(tf.zeros([3, 0, 2], 'int32'), 1, true)],
    ['sum int32 [2, 0] over everything', () => tf.sum(tf.zeros([2, 0], 'int32'))],
    ['sum bool [0, 3] over 0 (tf.sum casts to int32)', () => tf.sum(tf.zeros([0, 3], 'bool'), 0)],
    ['the Sum kernel of bool [0, 3] over 0', () => sumKernel(tf.zeros([0, 3], 'bool'), 0)],
    ['the Sum kernel of bool [4, 0] over 1, keepDims', () => sumKernel(tf.zeros([4, 0], 'bool'), 1, true)],
    ['mean int32 [0, 4] over 0', () => tf.mean(tf.zeros([0, 4], 'int32'), 0)],
    ['mean int32 [5, 0] over 1, keepDims', () => tf.mean(tf.zeros([5, 0], 'int32'), 1, true)],
    ['mean bool [0, 3] over 0', () => tf.mean(tf.zeros([0, 3], 'bool'), 0)],
    ['mean float32 [0, 3] over 0', () => tf.mean(tf.zeros([0, 3]), 0)],
  ];
  it.each(ops)('%s: zeros of cpu dtype and shape', async (_name, op) => {
    const shapeAndDtype = () =>
      tf.tidy(() => {
        const t = op();
        return { shape: t.shape, dtype: t.dtype };
      });
    await tf.setBackend('cpu');
    const want = shapeAndDtype();
    const [cpu] = await runOn('cpu', op);
    for (let i = 0; i < 3; i++) {
      // Leave integers on the heap where the output may land.
      await tf.setBackend('wasm');
      tf.tidy(() => tf.fill([256], 123456, 'int32').dataSync());
      const ids = wasmDataIds();
      const [got] = await expectNoLeak(() => runOn('wasm', op));
      expect(wasmDataIds()).toBe(ids);
      expect(Array.from(got)).toEqual(Array.from(cpu));
    }
    await tf.setBackend('wasm');
    expect(await expectNoLeak(shapeAndDtype)).toEqual(want);
    expect(Array.from(cpu).every((v) => v === 0)).toBe(true);
  });
});

describe('convolutions of an input with 0 channels', () => {
  // XNNPACK read no weights and left the output unwritten (heap leftovers: 3.6e-41, NaN), or, for
  // a depthwise one, divided by the 0 channels (the wasm trap "divide by zero"). cpu gives the empty
  // sum: 0, then the bias and the activation; a depthwise one has no output channels.
  const bias = [0.5, -1, 2, -0.25];
  const cases: [string, number[], number, number | [number, number], 'same' | 'valid', number][] = [
    // [name, x shape, filter size, strides, pad, output channels]
    ['3x3 same', [2, 5, 5, 0], 3, 1, 'same', 3],
    ['3x3 valid stride 2', [1, 6, 7, 0], 3, 2, 'valid', 4],
    ['1x1 same stride 3 (stride past the kernel)', [2, 4, 4, 0], 1, 3, 'same', 2],
    ['2x2 valid strides [1, 2]', [3, 3, 5, 0], 2, [1, 2], 'valid', 1],
  ];
  const convOps = (
    xs: number[],
    k: number,
    s: number | [number, number],
    pad: 'same' | 'valid',
    cout: number,
  ) => {
    const x = () => tf.zeros<tf.Rank>(xs) as tf.Tensor4D;
    const w = () => tf.zeros([k, k, 0, cout]) as tf.Tensor4D;
    const b = () => tf.tensor1d(bias.slice(0, cout));
    return [
      ['conv2d', () => tf.conv2d(x(), w(), s, pad)],
      [
        'fused conv2d, bias and relu',
        () => tf.fused.conv2d({ x: x(), filter: w(), strides: s, pad, bias: b(), activation: 'relu' }),
      ],
      [
        'fused conv2d, bias and elu',
        () => tf.fused.conv2d({ x: x(), filter: w(), strides: s, pad, bias: b(), activation: 'elu' }),
      ],
      ['depthwise', () => tf.depthwiseConv2d(x(), tf.zeros([k, k, 0, 2]) as tf.Tensor4D, s, pad)],
      [
        'fused depthwise, bias',
        () =>
          tf.fused.depthwiseConv2d({
            x: x(),
            filter: tf.zeros([k, k, 0, 2]) as tf.Tensor4D,
            strides: s,
            pad,
            bias: tf.zeros([0]),
          }),
      ],
    ] as [string, () => tf.Tensor][];
  };
  it.each(cases)('%s: what cpu gives, leaving nothing behind', async (_name, xs, k, s, pad, cout) => {
    for (const [what, op] of convOps(xs, k, s, pad, cout)) {
      await tf.setBackend('cpu');
      const shape = tf.tidy(() => op().shape);
      const [cpu] = await runOn('cpu', op);
      for (let i = 0; i < 2; i++) {
        // Leave garbage on the heap where the output may land.
        await tf.setBackend('wasm');
        tf.tidy(() => tf.fill([512], -Infinity).dataSync());
        const ids = wasmDataIds();
        const [got] = await expectNoLeak(() => runOn('wasm', op));
        expect(wasmDataIds()).toBe(ids);
        expect([what, Array.from(got)]).toEqual([what, Array.from(cpu)]);
      }
      expect(tf.tidy(() => op().shape)).toEqual(shape);
      if (what.includes('depthwise')) expect(shape[3]).toBe(0);
      else expect(shape[3]).toBe(cout);
    }
    // The backend works on after them.
    expect(
      Array.from(
        tf.tidy(() =>
          tf
            .conv2d(tf.ones([1, 3, 3, 1]) as tf.Tensor4D, tf.ones([3, 3, 1, 1]) as tf.Tensor4D, 1, 'valid')
            .dataSync(),
        ),
      ),
    ).toEqual([9]);
  });
});

describe('AvgPool past 8,192 channels', () => {
  // Upstream's XNNPACK pool puts a buffer of `channels` floats on the 64 KB
  // wasm stack: with a window of 8 or more it ran off the stack past about
  // 16,000 channels ("memory access out of bounds", and every later wasm call
  // failed). Each case here crashed the upstream kernel or sits on a slice edge.
  const cases: {
    shape: [number, number, number, number];
    size: [number, number];
    stride: [number, number];
    pad: 'same' | 'valid';
  }[] = [
    { shape: [1, 9, 1, 16384], size: [9, 1], stride: [1, 1], pad: 'valid' },
    { shape: [1, 25, 1, 16400], size: [25, 1], stride: [1, 1], pad: 'valid' },
    { shape: [2, 5, 4, 8193], size: [3, 3], stride: [1, 1], pad: 'same' },
    { shape: [1, 6, 7, 2 * 8192 + 5], size: [3, 3], stride: [2, 2], pad: 'same' },
    { shape: [1, 4, 4, 8192], size: [2, 2], stride: [2, 2], pad: 'valid' },
    { shape: [1, 9, 9, 16500], size: [9, 9], stride: [1, 1], pad: 'valid' },
  ];
  const r = rng(53);
  it.each(cases)(
    'matches cpu for $shape pool $size stride $stride $pad',
    async ({ shape, size, stride, pad }) => {
      const v = values(
        r,
        shape.reduce((a, b) => a * b, 1),
      );
      const f = () => tf.avgPool(tf.tensor4d(v, shape), size, stride, pad);
      const [ref] = await runOn('cpu', f);
      const ids = wasmDataIds();
      const [got] = await expectNoLeak(() => runOn('wasm', f));
      expect(wasmDataIds()).toBe(ids);
      expect(relError(got, ref)).toBeLessThan(TOL);
      // The same bits as upstream's kernel on channel slices it can take.
      const [sliced] = await runOn('wasm', () => {
        const x = tf.tensor4d(v, shape);
        const parts: tf.Tensor4D[] = [];
        for (let c = 0; c < shape[3]; c += 4096) {
          const w = Math.min(4096, shape[3] - c);
          parts.push(
            tf.avgPool(tf.slice(x, [0, 0, 0, c], [-1, -1, -1, w]), size, stride, pad) as tf.Tensor4D,
          );
        }
        return tf.concat(parts, 3);
      });
      expect(Array.from(got)).toEqual(Array.from(sliced));
    },
  );

  it('gradient matches cpu past the limit', async () => {
    const shape: [number, number, number, number] = [1, 5, 3, 16400];
    const v = values(
      r,
      shape.reduce((a, b) => a * b, 1),
    );
    const f = () =>
      tf.grad((a: tf.Tensor) => {
        const y = tf.avgPool(a as tf.Tensor4D, [3, 3], 1, 'same');
        return tf.sum(tf.mul(y, y));
      })(tf.tensor4d(v, shape));
    const [ref] = await runOn('cpu', f);
    const [got] = await expectNoLeak(() => runOn('wasm', f));
    expect(relError(got, ref)).toBeLessThan(TOL);
  });

  it('an allocation that fails midway leaves no buffer behind, its output included', async () => {
    await tf.setBackend('wasm');
    const wasm = (tf.backend() as unknown as { wasm: MallocModule }).wasm;
    const x = tf.ones([1, 9, 1, 3 * 8192]) as tf.Tensor4D;
    const ids = wasmDataIds();
    const tensors = tf.memory().numTensors;
    const malloc = wasm._malloc;
    // The output, the first slice and its pool are allocated; the second slice is refused.
    for (const failAt of [2, 3, 4]) {
      let calls = 0;
      wasm._malloc = (n: number) => {
        if (++calls === failAt) throw new Error('refused by the test');
        return malloc(n);
      };
      try {
        expect(() => tf.avgPool(x, [9, 1], 1, 'valid')).toThrow('refused by the test');
      } finally {
        wasm._malloc = malloc;
      }
      expect(wasmDataIds()).toBe(ids);
      expect(tf.memory().numTensors).toBe(tensors);
    }
    const y = tf.avgPool(x, [9, 1], 1, 'valid');
    expect(Array.from(y.dataSync().slice(0, 3))).toEqual([1, 1, 1]);
    tf.dispose([x, y]);
  });

  it('leaves the backend working after a pool of 262,144 channels (a 512 x 512 kernel grouping)', async () => {
    const [got] = await runOn('wasm', () =>
      tf.avgPool(tf.ones([1, 9, 1, 512 * 512]) as tf.Tensor4D, [9, 1], 1, 'valid'),
    );
    expect(got.length).toBe(512 * 512);
    expect(got.every((x) => Math.abs(x - 1) < 1e-6)).toBe(true);
    const [after] = await runOn('wasm', () => tf.sum(tf.ones([4, 4])));
    expect(after[0]).toBe(16);
  });
});
