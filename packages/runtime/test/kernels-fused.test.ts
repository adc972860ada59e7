// tf.fused.conv2d and tf.fused.depthwiseConv2d on wasm against cpu: the
// forward FusedConv2D / FusedDepthwiseConv2D kernels (what every tfjs-layers
// Conv2D with a bias or activation runs at inference) and the gradients that
// flow through the fused ops (tfjs-core's customGrad for 'linear', the
// unfused ops otherwise), over geometry x activation x bias shape.
//
// Tolerance rule: for every output tensor, max |wasm - cpu| <= 1e-5 *
// max(1, max |cpu|): absolute where the tensor's entries are at most 1 in
// magnitude (bias and PReLU-weight gradients are sums with cancellation, so
// an error relative to a small result says nothing), relative to the tensor's
// scale above. Where cpu refuses a call, wasm must refuse it with the same
// message; where cpu answers, wasm must answer. Tensors and wasm buffers must
// stay flat over repeated calls.
import * as tf from '@tensorflow/tfjs-core';
// tfjs-layers registers the gradients (tfjs-core alone has none).
import * as tfl from '@tensorflow/tfjs-layers';
import { registerWasmTrainingKernels } from '../src/kernels/index.js';
import { initWasm, relError, rng, runOn, values, wasmDataIds } from './kernels-helpers.js';

const TOL = 1e-5;

beforeAll(async () => {
  await initWasm();
  registerWasmTrainingKernels();
});

afterAll(async () => {
  await tf.setBackend('cpu');
});

type Explicit = [[number, number], [number, number], [number, number], [number, number]];
type Pad = 'same' | 'valid' | number | Explicit;

interface Geometry {
  n: number;
  h: number;
  w: number;
  c: number;
  /** Output channels (conv2d) or channel multiplier (depthwise). */
  m: number;
  kh: number;
  kw: number;
  stride: [number, number];
  pad: Pad;
  dilation: [number, number];
  round?: 'floor' | 'round' | 'ceil';
}

const g = (
  n: number,
  [h, w, c]: [number, number, number],
  m: number,
  [kh, kw]: [number, number],
  stride: [number, number],
  pad: Pad,
  dilation: [number, number] = [1, 1],
  round?: 'floor' | 'round' | 'ceil',
): Geometry => ({ n, h, w, c, m, kh, kw, stride, pad, dilation, round });

const explicit = (t: number, b: number, l: number, r: number): Explicit => [
  [0, 0],
  [t, b],
  [l, r],
  [0, 0],
];

// Batch 1 and 2, odd and even sizes, 1 to 3 output channels (conv2d) or
// channel multipliers 1 to 3 (depthwise), strides 1, 2 and [1,2]/[2,1], 'same',
// 'valid', a numeric and explicit pads, dilations 1, 2 and [2,1] (tfjs allows
// dilations > 1 with stride 1 only), strides larger than the kernel with
// 'same' (the explicit-padding wrapper's path), and a numeric pad with
// dimRoundingMode.
const GEOMETRIES: Geometry[] = [
  g(1, [5, 5, 2], 1, [3, 3], [1, 1], 'same'),
  g(2, [6, 7, 3], 2, [3, 3], [2, 2], 'valid'),
  g(2, [7, 6, 2], 3, [2, 3], [1, 2], 'same'),
  g(1, [6, 7, 3], 1, [3, 2], [2, 1], 'valid'),
  g(1, [8, 7, 2], 2, [3, 3], [1, 1], 'same', [2, 2]),
  g(2, [7, 8, 3], 2, [2, 3], [1, 1], 'valid', [2, 1]),
  g(2, [6, 5, 2], 3, [3, 2], [2, 2], explicit(1, 2, 0, 1)),
  g(1, [7, 7, 2], 1, [3, 3], [1, 1], explicit(2, 1, 1, 2), [2, 2]),
  g(1, [7, 7, 2], 3, [3, 3], [2, 2], 1),
  g(2, [5, 5, 2], 1, [1, 1], [2, 2], 'same'),
  g(1, [5, 6, 3], 2, [2, 2], [3, 3], 'same'),
  g(1, [6, 6, 2], 2, [3, 3], [2, 2], 1, [1, 1], 'ceil'),
];

type Activation = 'linear' | 'relu' | 'relu6' | 'elu' | 'sigmoid' | 'leakyrelu' | 'prelu';

interface Act {
  name: string;
  activation: Activation;
  /** PReLU weights: one per output channel, one for all, or per output position [OH, OW, C]. */
  alpha?: 'channel' | 'scalar' | 'one' | 'spatial' | 'rows' | 'columns';
}

const ACTIVATIONS: Act[] = [
  { name: 'linear', activation: 'linear' },
  { name: 'relu', activation: 'relu' },
  { name: 'relu6', activation: 'relu6' },
  { name: 'elu', activation: 'elu' },
  { name: 'sigmoid', activation: 'sigmoid' },
  { name: 'leakyrelu(0.3)', activation: 'leakyrelu' },
  { name: 'prelu[C]', activation: 'prelu', alpha: 'channel' },
  { name: 'prelu[]', activation: 'prelu', alpha: 'scalar' },
  { name: 'prelu[1]', activation: 'prelu', alpha: 'one' },
  { name: 'prelu[OH,OW,C]', activation: 'prelu', alpha: 'spatial' },
  { name: 'prelu[OH,1,C]', activation: 'prelu', alpha: 'rows' },
  { name: 'prelu[1,OW,1]', activation: 'prelu', alpha: 'columns' },
];

/** No bias, one per output channel, a scalar, a [1], or one per output position [OH, OW, C]. */
type Bias = 'none' | 'channel' | 'scalar' | 'one' | 'spatial';
const BIASES: Bias[] = ['none', 'channel', 'scalar', 'one', 'spatial'];

type Kind = 'conv2d' | 'depthwise';

function describeGeometry(c: Geometry): string {
  const pad =
    typeof c.pad === 'string' || typeof c.pad === 'number' ? c.pad : JSON.stringify(c.pad.slice(1, 3));
  const d = c.dilation[0] === 1 && c.dilation[1] === 1 ? '' : ` d${c.dilation.join(',')}`;
  return `n${c.n} ${c.h}x${c.w}x${c.c} k${c.kh}x${c.kw} m${c.m} s${c.stride.join(',')} ${pad}${d}${c.round ? ' ' + c.round : ''}`;
}

/** [kh, kw, in, out] for conv2d, [kh, kw, in, multiplier] for depthwise. */
const filterShape = (c: Geometry): [number, number, number, number] => [c.kh, c.kw, c.c, c.m];

function outShape(kind: Kind, c: Geometry): [number, number, number, number] {
  return tf.backend_util.computeConv2DInfo(
    [c.n, c.h, c.w, c.c],
    filterShape(c),
    c.stride,
    c.dilation,
    c.pad as 'same',
    c.round,
    kind === 'depthwise',
  ).outShape;
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function shapeOf(which: Bias | Act['alpha'], out: number[]): number[] | null {
  const channels = out[3];
  switch (which) {
    case 'channel':
      return [channels];
    case 'scalar':
      return [];
    case 'one':
      return [1];
    case 'spatial':
      return out.slice(1);
    case 'rows':
      return [out[1], 1, channels];
    case 'columns':
      return [1, out[2], 1];
    default:
      return null;
  }
}

interface Prepared {
  /** The fused op on fresh tensors; `grad` also returns the gradients. */
  run: (grad: boolean) => () => tf.Tensor[];
}

/** Input, filter, bias and PReLU weights, and dy for sum(fused(...) * dy). */
function prepare(kind: Kind, c: Geometry, act: Act, bias: Bias, seed: number): Prepared {
  const r = rng(seed);
  const ys = outShape(kind, c);
  const fs = filterShape(c);
  // x in [-3, 3) so relu6 clips and sigmoid/elu see their curved parts.
  const vx = values(r, c.n * c.h * c.w * c.c).map((v) => 3 * v);
  const vf = values(r, size(fs));
  const biasShape = shapeOf(bias, ys);
  const vb = biasShape ? values(r, size(biasShape)) : null;
  const alphaShape = act.alpha ? shapeOf(act.alpha, ys) : null;
  const va = alphaShape ? values(r, size(alphaShape)).map((v) => (v + 1) / 4) : null;
  const vdy = values(r, size(ys));
  const op = kind === 'conv2d' ? tf.fused.conv2d : tf.fused.depthwiseConv2d;
  return {
    run: (grad) => () => {
      const x = tf.tensor4d(vx, [c.n, c.h, c.w, c.c]);
      const filter = tf.tensor4d(vf, fs);
      const b = vb ? tf.tensor(vb, biasShape!) : undefined;
      const alpha = va ? tf.tensor(va, alphaShape!) : undefined;
      const f = (xx: tf.Tensor, ff: tf.Tensor, bb?: tf.Tensor, aa?: tf.Tensor) =>
        op({
          x: xx as tf.Tensor4D,
          filter: ff as tf.Tensor4D,
          strides: c.stride,
          pad: c.pad as 'same',
          dilations: c.dilation,
          dimRoundingMode: c.round,
          bias: bb,
          activation: act.activation,
          preluActivationWeights: aa,
          leakyreluAlpha: act.activation === 'leakyrelu' ? 0.3 : undefined,
        });
      if (!grad) return [f(x, filter, b, alpha)];
      const args = [x, filter, ...(b ? [b] : []), ...(alpha ? [alpha] : [])];
      const dy = tf.tensor(vdy, ys);
      let y: tf.Tensor | null = null;
      const grads = tf.grads((...ts: tf.Tensor[]) => {
        const bb = b ? ts[2] : undefined;
        const aa = alpha ? ts[b ? 3 : 2] : undefined;
        y = tf.keep(f(ts[0], ts[1], bb, aa));
        return tf.sum(tf.mul(y, dy));
      })(args);
      return [y!, ...grads];
    },
  };
}

type Outcome = { values: Float32Array[] } | { error: string };

/** Runs on a backend and returns the outputs or the refusal's message. */
async function outcome(backend: 'cpu' | 'wasm', fn: () => tf.Tensor[]): Promise<Outcome> {
  try {
    return { values: await runOn(backend, fn) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

/** Largest relError per output seen so far, per kernel (printed at the end). */
const worst = new Map<string, number>();
function record(key: string, e: number): void {
  worst.set(key, Math.max(worst.get(key) ?? 0, e));
}

afterAll(() => {
  const lines = [...worst].map(([k, v]) => `${k}: ${v.toExponential(2)}`);
  if (process.env.NORMPRUNE_PRINT_ERRORS) console.log(lines.join('\n'));
});

/** Error against the reference, absolute up to magnitude 1 and relative above: max |a - ref| / max(1, max |ref|). */
function scaledError(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < ref.length; i++) m = Math.max(m, Math.abs(ref[i]));
  return relError(a, ref) * (m > 1 || m === 0 ? 1 : m);
}

/**
 * Compares wasm with cpu on `fn`, run twice on wasm: outputs within TOL, the
 * same refusal if cpu refuses, and no tensor or wasm buffer left behind by
 * either call (numTensors and the backend's buffers stay flat). A refused
 * gradient leaves the tensors its forward pass taped behind in tfjs-core, on
 * every backend; there wasm must leave exactly what cpu leaves, and no
 * buffer that is not a leaked tensor's.
 */
async function compare(
  fn: () => tf.Tensor[],
  names: string[],
  key: string,
  anyRefusal = false,
): Promise<string[]> {
  const problems: string[] = [];
  await tf.setBackend('cpu');
  const cpuTensors = tf.memory().numTensors;
  const ref = await outcome('cpu', fn);
  const cpuLeak = tf.memory().numTensors - cpuTensors;
  await tf.setBackend('wasm');
  const tensors = tf.memory().numTensors;
  const ids = wasmDataIds();
  const got = await outcome('wasm', fn);
  const again = await outcome('wasm', fn);
  const leaked = tf.memory().numTensors - tensors;
  if (leaked !== 2 * cpuLeak) problems.push(`leaked ${leaked} tensors in 2 calls (cpu ${cpuLeak} in 1)`);
  if (wasmDataIds() - ids > leaked) problems.push(`leaked ${wasmDataIds() - ids - leaked} wasm buffers`);
  if ('error' in ref) {
    if (!('error' in got)) problems.push(`cpu refuses (${ref.error}) but wasm answers`);
    else if (got.error !== ref.error && !anyRefusal)
      problems.push(`cpu refuses (${ref.error}), wasm with: ${got.error}`);
    return problems;
  }
  if ('error' in got) {
    problems.push(`wasm refuses: ${got.error}`);
    return problems;
  }
  ref.values.forEach((rv, k) => {
    const name = names[k] ?? `#${k}`;
    const e = scaledError(got.values[k], rv);
    const e2 = 'values' in again ? scaledError(again.values[k], rv) : Infinity;
    record(`${key} ${name}`, Math.max(e, e2));
    if (!(e < TOL && e2 < TOL)) problems.push(`${name} off by ${e.toExponential(2)}`);
  });
  return problems;
}

describe.each(['conv2d', 'depthwise'] as Kind[])('tf.fused.%s on wasm matches cpu', (kind) => {
  const cases = GEOMETRIES.flatMap((geo, i) =>
    ACTIVATIONS.map((act, j) => [describeGeometry(geo), act.name, geo, act, 100 * i + j] as const),
  );

  it.each(cases)('forward %s %s, every bias shape', async (_g, _a, geo, act, seed) => {
    const problems: Record<string, string[]> = {};
    for (const bias of BIASES) {
      const p = prepare(kind, geo, act, bias, seed);
      const key = kind === 'conv2d' ? 'FusedConv2D' : 'FusedDepthwiseConv2D';
      const found = await compare(p.run(false), ['y'], key);
      if (found.length) problems[bias] = found;
    }
    expect(problems).toEqual({});
  });

  it.each(cases)('gradients %s %s, bias none, [C] and scalar', async (_g, _a, geo, act, seed) => {
    const problems: Record<string, string[]> = {};
    for (const bias of ['none', 'channel', 'scalar'] as Bias[]) {
      const p = prepare(kind, geo, act, bias, seed);
      const names = [
        'y',
        'dx',
        'dfilter',
        ...(bias !== 'none' ? ['dbias'] : []),
        ...(act.alpha ? ['dalpha'] : []),
      ];
      const found = await compare(p.run(true), names, `grad ${kind}`);
      if (found.length) problems[bias] = found;
    }
    expect(problems).toEqual({});
  });
});

describe('refusals and defaults the fused convolutions share with cpu', () => {
  const x = () => tf.tensor4d(values(rng(3), 2 * 7 * 7 * 2), [2, 7, 7, 2]);
  const w = () => tf.tensor4d(values(rng(4), 3 * 3 * 2 * 2), [3, 3, 2, 2]);

  it.each([
    ['fused conv2d', () => [tf.fused.conv2d({ x: x(), filter: w(), strides: 2, pad: 'same', dilations: 2 })]],
    [
      'fused depthwiseConv2d',
      () => [tf.fused.depthwiseConv2d({ x: x(), filter: w(), strides: [1, 2], pad: 'valid', dilations: 2 })],
    ],
    ['conv2d', () => [tf.conv2d(x(), w(), 2, 'same', 'NHWC', 2)]],
    ['depthwiseConv2d', () => [tf.depthwiseConv2d(x(), w(), 2, 'valid', 'NHWC', 2)]],
    [
      "'same' with dimRoundingMode",
      () => [tf.fused.conv2d({ x: x(), filter: w(), strides: 2, pad: 'same', dimRoundingMode: 'ceil' })],
    ],
    [
      'a bias that does not broadcast',
      () => [tf.fused.conv2d({ x: x(), filter: w(), strides: 1, pad: 'same', bias: tf.zeros([3]) })],
    ],
  ] as [string, () => tf.Tensor[]][])('%s: wasm refuses as cpu does, with its message', async (_name, fn) => {
    const ref = await outcome('cpu', fn);
    expect(ref).toEqual({ error: expect.any(String) });
    expect(await compare(fn, ['y'], 'refusals')).toEqual([]);
  });

  it.each([
    [
      'an unknown activation',
      () => [
        tf.fused.conv2d({
          x: x(),
          filter: w(),
          strides: 1,
          pad: 'same',
          activation: 'swish' as 'relu',
        }),
      ],
    ],
  ] as [string, () => tf.Tensor[]][])(
    '%s: wasm refuses as cpu does (each backend names itself)',
    async (_name, fn) => {
      const ref = await outcome('cpu', fn);
      expect(ref).toEqual({ error: expect.any(String) });
      expect(await compare(fn, ['y'], 'refusals', true)).toEqual([]);
    },
  );

  it.each([
    ['dilations 2 with strides 2', { strides: 2, dilations: 2 }],
    ['dilations [1,2] with strides [2,1]', { strides: [2, 1], dilations: [1, 2] }],
  ] as [string, tf.NamedAttrMap][])(
    'the kernels called directly with %s give the cpu result or its refusal',
    async (_name, geo) => {
      for (const [kernel, filterShape] of [
        ['FusedConv2D', [3, 3, 2, 3]],
        ['FusedDepthwiseConv2D', [3, 3, 2, 2]],
        ['Conv2D', [3, 3, 2, 3]],
        ['DepthwiseConv2dNative', [3, 3, 2, 2]],
      ] as [string, number[]][]) {
        for (const pad of ['same', 'valid']) {
          const fn = () => [
            tf.engine().runKernel(
              kernel,
              {
                x: x(),
                filter: tf.tensor4d(values(rng(6), size(filterShape)), filterShape as [1, 1, 1, 1]),
              },
              { ...geo, pad, dataFormat: 'NHWC', activation: 'relu' },
            ) as tf.Tensor,
          ];
          expect([kernel, pad, await compare(fn, ['y'], kernel)]).toEqual([kernel, pad, []]);
        }
      }
    },
  );

  it("'leakyrelu' without leakyreluAlpha is tf.leakyRelu's default 0.2, fused or not", async () => {
    // cpu's fused kernel gives NaN for every negative output here (alpha
    // undefined), upstream wasm used 0; tfjs-core's unfused path (inside a
    // gradient tape) uses 0.2.
    for (const kind of ['conv2d', 'depthwise'] as Kind[]) {
      for (const bias of [
        tf.tensor1d([0.1, -0.2, 0.3, 0.4].slice(0, kind === 'conv2d' ? 2 : 4)),
        tf.scalar(0.1),
      ]) {
        const op = kind === 'conv2d' ? tf.fused.conv2d : tf.fused.depthwiseConv2d;
        const fused = () => [
          op({ x: x(), filter: w(), strides: 1, pad: 'same', bias, activation: 'leakyrelu' }),
        ];
        const unfused = () => {
          const conv =
            kind === 'conv2d' ? tf.conv2d(x(), w(), 1, 'same') : tf.depthwiseConv2d(x(), w(), 1, 'same');
          return [tf.leakyRelu(tf.add(conv, bias))];
        };
        const ref = await runOn('cpu', unfused);
        const got = await runOn('wasm', fused);
        expect([kind, bias.rank, scaledError(got[0], ref[0]) < TOL]).toEqual([kind, bias.rank, true]);
        expect(ref[0].some((v) => v < 0)).toBe(true);
        bias.dispose();
      }
    }
  });
});

describe('plain conv2d and depthwiseConv2d with dimRoundingMode on wasm', () => {
  // Upstream wasm wrote XNNPACK's floor-sized image into the rounded-up
  // output (off by about 1.4); the gradients crop dy as cpu does.
  it.each([
    ['conv2d', 'ceil', 1],
    ['conv2d', 'round', 1],
    ['depthwise', 'ceil', 1],
    ['depthwise', 'round', 0],
    ['conv2d', 'ceil', 0],
  ] as [Kind, 'ceil' | 'round', number][])(
    '%s %s pad %i: forward and gradients match cpu',
    async (kind, round, pad) => {
      const r = rng(77);
      const vx = values(r, 2 * 6 * 7 * 3);
      const vw = values(r, 3 * 3 * 3 * 2);
      const fn = () => {
        const xx = tf.tensor4d(vx, [2, 6, 7, 3]);
        const ww = tf.tensor4d(vw, [3, 3, 3, 2]);
        const conv = (a: tf.Tensor, b: tf.Tensor) =>
          kind === 'conv2d'
            ? tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, pad, 'NHWC', 1, round)
            : tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, pad, 'NHWC', 1, round);
        const y = conv(xx, ww);
        const dy = tf.tensor(values(rng(78), y.size), y.shape);
        return [y, ...tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv(a, b), dy)))([xx, ww])];
      };
      expect(await compare(fn, ['y', 'dx', 'dfilter'], `plain ${kind} rounding`)).toEqual([]);
    },
  );
});

describe('tfjs-layers Conv2D (bias, activation) and DepthwiseConv2D train on wasm as on cpu', () => {
  function model(): tfl.Sequential {
    const init = (seed: number) => tfl.initializers.glorotUniform({ seed });
    return tfl.sequential({
      layers: [
        // Linear with a bias: tf.fused.conv2d's own gradient (customGrad).
        tfl.layers.conv2d({ inputShape: [9, 8, 2], filters: 3, kernelSize: 3, kernelInitializer: init(1) }),
        // relu and elu: fused at inference, unfused in the gradient tape.
        tfl.layers.conv2d({
          filters: 4,
          kernelSize: 3,
          strides: 2,
          padding: 'same',
          activation: 'relu',
          kernelInitializer: init(2),
          biasInitializer: tfl.initializers.constant({ value: 0.05 }),
        }),
        tfl.layers.depthwiseConv2d({
          kernelSize: 2,
          depthMultiplier: 2,
          useBias: true,
          activation: 'elu',
          depthwiseInitializer: init(3),
        }),
        tfl.layers.conv2d({ filters: 2, kernelSize: 1, activation: 'elu', kernelInitializer: init(4) }),
        tfl.layers.flatten(),
        tfl.layers.dense({ units: 3, kernelInitializer: init(5) }),
      ],
    });
  }

  async function train(backend: 'cpu' | 'wasm', steps: number) {
    await tf.setBackend(backend);
    const m = model();
    m.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
    const r = rng(9);
    const xs = tf.tensor4d(values(r, 4 * 9 * 8 * 2), [4, 9, 8, 2]);
    const ys = tf.tensor2d(values(r, 4 * 3), [4, 3]);
    const losses: number[] = [(await m.trainOnBatch(xs, ys)) as number];
    const tensors = tf.memory().numTensors;
    const ids = backend === 'wasm' ? wasmDataIds() : 0;
    for (let s = 1; s < steps; s++) losses.push((await m.trainOnBatch(xs, ys)) as number);
    const predicted = tf.tidy(() => (m.predict(xs) as tf.Tensor).dataSync() as Float32Array);
    expect(tf.memory().numTensors).toBe(tensors);
    if (backend === 'wasm') expect(wasmDataIds()).toBe(ids);
    const weights = m.getWeights().map((t) => t.dataSync() as Float32Array);
    tf.dispose([xs, ys]);
    m.dispose();
    return { weights, losses, predicted };
  }

  it('four sgd steps give the same weights and predictions, nothing leaks', async () => {
    const ref = await train('cpu', 4);
    const got = await train('wasm', 4);
    expect(got.losses[3]).toBeLessThan(got.losses[0]);
    const errors = got.weights.map((w, k) => scaledError(w, ref.weights[k]));
    errors.forEach((e) => record('layers weights', e));
    record('layers predict', scaledError(got.predicted, ref.predicted));
    expect(errors.filter((e) => !(e < TOL))).toEqual([]);
    expect(scaledError(got.predicted, ref.predicted)).toBeLessThan(TOL);
  });
});
