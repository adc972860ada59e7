import * as tf from '@tensorflow/tfjs-core';
// tfjs-layers registers the gradients (tfjs-core alone has none).
import * as tfl from '@tensorflow/tfjs-layers';
import { registerWasmTrainingKernels, unregisterWasmTrainingKernels } from '../src/kernels/index.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';
import { initWasm, int, relError, rng, runOn, values, wasmDataIds } from './kernels-helpers.js';

const TOL = 1e-5;

beforeAll(async () => {
  await initWasm();
  registerWasmTrainingKernels();
});

afterAll(async () => {
  await tf.setBackend('cpu');
});

type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

interface DepthwiseCase {
  n: number;
  h: number;
  w: number;
  c: number;
  /** Channel multiplier: the filter is [kh, kw, c, m]. */
  m: number;
  kh: number;
  kw: number;
  stride: [number, number];
  pad: Pad;
}

const FIXED: DepthwiseCase[] = [
  // A MobileNet block, its strided variant, and 'valid' with multiplier 2.
  { n: 2, h: 8, w: 8, c: 4, m: 1, kh: 3, kw: 3, stride: [1, 1], pad: 'same' },
  { n: 2, h: 9, w: 7, c: 3, m: 1, kh: 3, kw: 3, stride: [2, 2], pad: 'same' },
  { n: 3, h: 7, w: 9, c: 2, m: 2, kh: 3, kw: 3, stride: [1, 1], pad: 'valid' },
  { n: 1, h: 10, w: 10, c: 5, m: 2, kh: 5, kw: 5, stride: [2, 2], pad: 'valid' },
  { n: 2, h: 6, w: 11, c: 3, m: 2, kh: 2, kw: 4, stride: [1, 2], pad: 'same' },
  { n: 1, h: 5, w: 5, c: 1, m: 3, kh: 1, kw: 1, stride: [1, 1], pad: 'valid' },
  {
    n: 2,
    h: 6,
    w: 7,
    c: 3,
    m: 1,
    kh: 3,
    kw: 2,
    stride: [2, 1],
    pad: [
      [0, 0],
      [2, 0],
      [1, 1],
      [0, 0],
    ],
  },
];

function randomCases(seed: number, count: number): DepthwiseCase[] {
  const r = rng(seed);
  const cases: DepthwiseCase[] = [];
  while (cases.length < count) {
    const kh = int(r, 1, 5);
    const kw = int(r, 1, 5);
    const s = int(r, 1, 2);
    const which = int(r, 0, 2);
    cases.push({
      n: int(r, 1, 4),
      h: int(r, kh, 12),
      w: int(r, kw, 12),
      c: int(r, 1, 6),
      m: int(r, 1, 3),
      kh,
      kw,
      stride: r() < 0.25 ? [s, 3 - s] : [s, s],
      pad:
        which === 0
          ? 'same'
          : which === 1
            ? 'valid'
            : [
                [0, 0],
                [int(r, 0, kh - 1), 0],
                [0, int(r, 0, kw - 1)],
                [0, 0],
              ],
    });
  }
  return cases;
}

const describeCase = (c: DepthwiseCase) =>
  `n${c.n} ${c.h}x${c.w}x${c.c} k${c.kh}x${c.kw} x${c.m} s${c.stride.join(',')} ${JSON.stringify(c.pad)}`;

function outShape(c: DepthwiseCase): number[] {
  return tf.backend_util.computeConv2DInfo(
    [c.n, c.h, c.w, c.c],
    [c.kh, c.kw, c.c, c.m],
    c.stride,
    1,
    c.pad as 'same',
    undefined,
    true,
  ).outShape;
}

/** The forward pass and both gradients of sum(depthwiseConv2d(x, w) * dy). */
function forwardAndGradients(c: DepthwiseCase, seed: number): () => tf.Tensor[] {
  const r = rng(seed);
  const ys = outShape(c);
  const vx = values(r, c.n * c.h * c.w * c.c);
  const vw = values(r, c.kh * c.kw * c.c * c.m);
  const vdy = values(
    r,
    ys.reduce((a, b) => a * b, 1),
  );
  return () => {
    const x = tf.tensor4d(vx, [c.n, c.h, c.w, c.c]);
    const w = tf.tensor4d(vw, [c.kh, c.kw, c.c, c.m]);
    const conv = (a: tf.Tensor, b: tf.Tensor) =>
      tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad);
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv(a, b), tf.tensor(vdy, ys))))(
      [x, w],
    );
    return [conv(x, w), dx, dw];
  };
}

describe('DepthwiseConv2dNativeBackpropInput and ...BackpropFilter on wasm', () => {
  const cases = [...FIXED, ...randomCases(41, 24)];
  it.each(cases.map((c, i) => [describeCase(c), c, i] as const))(
    'match cpu to 1e-5, with no tensor or wasm buffer left: %s',
    async (_name, c, i) => {
      const f = forwardAndGradients(c, 500 + i);
      const ref = await runOn('cpu', f);
      const ids = wasmDataIds();
      const got = await expectNoLeak(() => runOn('wasm', f));
      expect(wasmDataIds()).toBe(ids);
      const errors = ['forward', 'dx', 'dw'].map((name, k) => [name, relError(got[k], ref[k]) < TOL]);
      expect(errors).toEqual([
        ['forward', true],
        ['dx', true],
        ['dw', true],
      ]);
    },
  );

  it('refuses dilations other than 1 with an error naming the kernel', async () => {
    await tf.setBackend('wasm');
    const x = tf.zeros([1, 5, 5, 2]);
    const dy = tf.zeros([1, 1, 1, 2]);
    expect(() =>
      tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, {
        strides: 1,
        dilations: 2,
        pad: 'valid',
        filterShape: [3, 3, 2, 1],
      } as unknown as tf.NamedAttrMap),
    ).toThrow(/DepthwiseConv2dNativeBackpropFilter supports dilations 1 only/);
    tf.dispose([x, dy]);
  });

  it("refuses dataFormat 'NCHW', plain and fused, saying how to get NHWC; NHWC of the same data agrees with cpu", async () => {
    // x [1, 2, 3, 3] NCHW: 2 channels; upstream read it as NHWC and returned [1, 1, 2, 3].
    const data = Array.from({ length: 18 }, (_, i) => i + 1);
    const filter = [1, 1, 1, 1, 2, 2, 2, 2];
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const ids = wasmDataIds();
    const x = tf.tensor4d(data, [1, 2, 3, 3]);
    const f = tf.tensor4d(filter, [2, 2, 2, 1]);
    const said =
      /depthwiseConv2d: dataFormat 'NCHW' is not supported by the wasm backend .*transpose x to NHWC/;
    expect(() => tf.depthwiseConv2d(x, f, 1, 'valid', 'NCHW')).toThrow(said);
    // Fused: a [1, 2, 2, 2] x passes tfjs-core's channel check either way.
    const x2 = tf.tensor4d(data.slice(0, 8), [1, 2, 2, 2]);
    expect(() =>
      tf.fused.depthwiseConv2d({ x: x2, filter: f, strides: 1, pad: 'valid', dataFormat: 'NCHW' }),
    ).toThrow(said);
    tf.dispose([x, f, x2]);
    expect(tf.memory().numTensors).toBe(before);
    expect(wasmDataIds()).toBe(ids);
    // The way the message gives, on both backends.
    const viaNhwc = () =>
      tf.tidy(() => {
        const nhwc = tf.transpose(tf.tensor4d(data, [1, 2, 3, 3]), [0, 2, 3, 1]);
        const y = tf.depthwiseConv2d(
          nhwc as tf.Tensor4D,
          tf.tensor4d(filter, [2, 2, 2, 1]),
          1,
          'valid',
          'NHWC',
        );
        return tf.transpose(y, [0, 3, 1, 2]).arraySync();
      });
    const onWasm = viaNhwc();
    await tf.setBackend('cpu');
    expect(onWasm).toEqual(viaNhwc());
  });

  it('are removed again by unregisterWasmTrainingKernels (upstream has none)', () => {
    unregisterWasmTrainingKernels();
    expect(tf.getKernel('DepthwiseConv2dNativeBackpropInput', 'wasm')).toBeUndefined();
    expect(tf.getKernel('DepthwiseConv2dNativeBackpropFilter', 'wasm')).toBeUndefined();
    registerWasmTrainingKernels();
    expect(tf.getKernel('DepthwiseConv2dNativeBackpropInput', 'wasm')).toBeDefined();
  });
});

describe('DepthwiseConv2D and SeparableConv2D layers train on wasm', () => {
  function model(): tfl.Sequential {
    const init = (seed: number) => tfl.initializers.glorotUniform({ seed });
    return tfl.sequential({
      layers: [
        tfl.layers.conv2d({
          inputShape: [9, 9, 2],
          filters: 3,
          kernelSize: 3,
          padding: 'same',
          activation: 'relu',
          kernelInitializer: init(1),
        }),
        tfl.layers.depthwiseConv2d({
          kernelSize: 3,
          depthMultiplier: 2,
          strides: 2,
          activation: 'relu',
          depthwiseInitializer: init(2),
        }),
        tfl.layers.separableConv2d({
          filters: 4,
          kernelSize: 2,
          padding: 'same',
          depthwiseInitializer: init(3),
          pointwiseInitializer: init(4),
        }),
        tfl.layers.flatten(),
        tfl.layers.dense({ units: 3, kernelInitializer: init(5) }),
      ],
    });
  }

  /** Weights after `steps` SGD steps of trainOnBatch, and the losses. */
  async function train(backend: 'cpu' | 'wasm', steps: number) {
    await tf.setBackend(backend);
    const m = model();
    m.compile({ optimizer: tf.train.sgd(0.05), loss: 'meanSquaredError' });
    const r = rng(8);
    const x = tf.tensor4d(values(r, 6 * 9 * 9 * 2), [6, 9, 9, 2]);
    const y = tf.tensor2d(values(r, 6 * 3), [6, 3]);
    const losses: number[] = [];
    losses.push((await m.trainOnBatch(x, y)) as number);
    const before = tf.memory().numTensors;
    const ids = backend === 'wasm' ? wasmDataIds() : 0;
    for (let s = 1; s < steps; s++) losses.push((await m.trainOnBatch(x, y)) as number);
    expect(tf.memory().numTensors).toBe(before);
    if (backend === 'wasm') expect(wasmDataIds()).toBe(ids);
    const weights = m.getWeights().map((t) => t.dataSync() as Float32Array);
    tf.dispose([x, y]);
    m.dispose();
    return { weights, losses };
  }

  it('trainOnBatch gives the weights cpu gives, the loss falls, nothing leaks', async () => {
    const ref = await train('cpu', 4);
    const got = await train('wasm', 4);
    expect(got.losses[3]).toBeLessThan(got.losses[0]);
    const errors = got.weights.map((w, k) => relError(w, ref.weights[k]));
    expect(errors.filter((e) => !(e < 1e-5))).toEqual([]);
  });
});
