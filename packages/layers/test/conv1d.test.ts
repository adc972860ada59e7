// DecomposedConv1D: a Conv1D written as magnitude x unit direction, on the machinery it shares
// with DecomposedConv2D (decomposed-conv.ts). Checked against plain tf.layers.conv1d with the
// kernel computed here from the documented formula, on cpu and on wasm (the backend training
// uses), forward and backward; through decompose, fold, magnitudes and a save/load round trip.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { initBackend } from '@normprune/runtime';
import {
  type ConvGranularity,
  DecomposedConv1D,
  decomposedConv1d,
  decompose,
  fold,
  isDecomposed,
  magnitudes,
} from '../src/index.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';
import { gradientErrors, randn, referenceKernel, referenceKernelOf, scaledError, values } from './helpers.js';

interface Case {
  input: [number, number, number];
  filters: number;
  kernelSize: number;
  strides?: number;
  padding?: 'same' | 'valid';
  dilationRate?: number;
  activation?: string;
  useBias?: boolean;
  granularity: ConvGranularity;
}

const cases: Case[] = [
  { input: [2, 9, 3], filters: 4, kernelSize: 3, granularity: 'kernel' },
  { input: [2, 9, 3], filters: 4, kernelSize: 3, granularity: 'filter', padding: 'same', activation: 'relu' },
  {
    input: [1, 12, 2],
    filters: 5,
    kernelSize: 4,
    strides: 3,
    padding: 'same',
    granularity: 'kernel',
    activation: 'tanh',
  },
  { input: [3, 11, 2], filters: 3, kernelSize: 3, dilationRate: 2, granularity: 'filter', useBias: false },
  {
    input: [2, 10, 4],
    filters: 2,
    kernelSize: 2,
    dilationRate: 3,
    padding: 'same',
    granularity: 'kernel',
    activation: 'elu',
  },
  { input: [2, 6, 1], filters: 3, kernelSize: 1, granularity: 'filter', activation: 'softmax' },
];

/** A plain Conv1D holding the documented kernel of `layer` (computed in the test, not by src). */
function plainTwin(layer: DecomposedConv1D, c: Case): tfl.layers.Layer {
  const { input, granularity: _g, activation, ...rest } = c;
  const plain = tfl.layers.conv1d({ ...rest, activation: activation as any });
  plain.build(input);
  const kernel = referenceKernelOf(layer);
  plain.setWeights(layer.bias ? [kernel, layer.bias.read()] : [kernel]);
  kernel.dispose();
  return plain;
}

const backends = [
  ['cpu', async () => void (await tf.setBackend('cpu'))],
  ['wasm', async () => void (await initBackend({ prefer: 'wasm', quiet: true }))],
] as const;

describe.each(backends)('DecomposedConv1D on %s', (_backend, init) => {
  beforeAll(init);

  it.each(cases)('equals tf.layers.conv1d with the effective kernel: %j', (c) => {
    const { input, granularity, activation, ...rest } = c;
    const layer = decomposedConv1d({ ...rest, activation: activation as any, granularity });
    const x = randn(input, 1);
    layer.apply(x);
    tf.tidy(() => void layer.magnitude!.write(tf.mul(randn(layer.magnitude!.shape as number[], 2), 2)));
    if (layer.bias) tf.tidy(() => void layer.bias!.write(randn([c.filters], 3)));
    const y = layer.apply(x) as tf.Tensor;
    const plain = plainTwin(layer, c);
    const yPlain = plain.apply(x) as tf.Tensor;
    expect(y.shape).toEqual(yPlain.shape);
    expect(layer.computeOutputShape([null, ...input.slice(1)] as any)).toEqual([
      null,
      ...yPlain.shape.slice(1),
    ]);
    expect(scaledError(y, yPlain)).toBeLessThan(1e-5);
    // Each group's norm is its magnitude's absolute value.
    const k = layer.effectiveKernel();
    const norms = tf.tidy(() => tf.sqrt(tf.sum(tf.square(k), granularity === 'kernel' ? [0] : [0, 1])));
    const m = tf.abs(layer.magnitude!.read());
    expect(scaledError(norms, m)).toBeLessThan(1e-5);
    tf.dispose([x, y, yPlain, k, norms, m]);
    for (const w of [...layer.weights, ...plain.weights]) w.dispose();
  });

  it.each([
    ['kernel', 1, 'valid'],
    ['filter', 2, 'same'],
    ['kernel', 2, 'same'],
  ] as const)(
    'gradients agree with central finite differences (%s, stride %d, %s)',
    (granularity, strides, padding) => {
      const layer = decomposedConv1d({
        filters: 2,
        kernelSize: 3,
        strides,
        padding,
        activation: 'tanh',
        granularity,
      });
      const x = randn([2, 7, 2], 41);
      layer.apply(x);
      for (const error of gradientErrors(layer, x, 42)) expect(error).toBeLessThan(1e-4);
      x.dispose();
    },
  );

  it('call() leaves no tensor behind', async () => {
    const layer = decomposedConv1d({ filters: 3, kernelSize: 3, padding: 'same', activation: 'relu' });
    const x = randn([2, 8, 2], 61);
    layer.apply(x);
    await expectNoLeak(() => (layer.apply(x) as tf.Tensor).dispose());
    x.dispose();
  });
});

describe('DecomposedConv1D', () => {
  beforeAll(async () => void (await tf.setBackend('cpu')));

  it('weights are direction [k, cin, cout], magnitude ([cin, cout] or [cout]), bias; a fresh layer applies its direction', () => {
    for (const granularity of ['kernel', 'filter'] as const) {
      const layer = decomposedConv1d({ filters: 6, kernelSize: 5, granularity });
      layer.build([null, 20, 4]);
      const [direction, magnitude, bias] = layer.getWeights();
      expect(layer.weights.map((w) => w.originalName.split('/').pop())).toEqual([
        'direction',
        'magnitude',
        'bias',
      ]);
      expect([direction.shape, magnitude.shape, bias.shape]).toEqual([
        [5, 4, 6],
        granularity === 'kernel' ? [4, 6] : [6],
        [6],
      ]);
      expect(layer.normAxes).toEqual(granularity === 'kernel' ? [0] : [0, 1]);
      expect([layer.kernelSize, layer.strides, layer.dilationRate]).toEqual([[5], [1], [1]]);
      const k = layer.effectiveKernel();
      expect(scaledError(k, direction)).toBeLessThan(1e-5);
      k.dispose();
    }
  });

  it('one kernel [0.03, 0.04], magnitude 1, epsilon 0.5, worked by hand', () =>
    expectNoLeak(() => {
      const layer = decomposedConv1d({ filters: 1, kernelSize: 2, epsilon: 0.5, useBias: false });
      layer.build([null, 3, 1]);
      const direction = tf.tensor3d([0.03, 0.04], [2, 1, 1]);
      const magnitude = tf.ones([1, 1]);
      layer.setWeights([direction, magnitude]);
      const x = tf.tensor3d([1, 2, -3], [1, 3, 1]);
      const y = layer.apply(x) as tf.Tensor;
      const n = Math.sqrt(0.0025 + 0.25);
      const expected = [(1 * 0.03 + 2 * 0.04) / n, (2 * 0.03 - 3 * 0.04) / n];
      expect(y.shape).toEqual([1, 2, 1]);
      values(y).forEach((v, i) => expect(Math.abs(v - expected[i])).toBeLessThan(1e-6));
      tf.dispose([direction, magnitude, x, y]);
      for (const w of layer.weights) w.dispose();
    }));

  it('layer.apply(x) = conv1d(x, g v / sqrt(||v||^2 + eps^2)) + bias with eps 0.5 and small directions', () =>
    expectNoLeak(() => {
      for (const granularity of ['kernel', 'filter'] as const) {
        const layer = decomposedConv1d({
          filters: 3,
          kernelSize: 3,
          strides: 2,
          padding: 'same',
          granularity,
          epsilon: 0.5,
        });
        layer.build([2, 9, 2]);
        const shape = [3, 2, 3];
        const direction = tf.tidy(() => tf.mul(randn(shape, 111), 0.05));
        const magnitude = tf.tidy(() => tf.mul(randn(granularity === 'kernel' ? [2, 3] : [3], 112), 2));
        const bias = randn([3], 113);
        layer.setWeights([direction, magnitude, bias]);
        const x = randn([2, 9, 2], 114);
        const y = layer.apply(x) as tf.Tensor;
        const normAxes = granularity === 'kernel' ? [0] : [0, 1];
        const kernel = referenceKernel(values(direction), shape, normAxes, values(magnitude), 0.5);
        const expected = tf.tidy(() =>
          tf.add(
            tf.conv1d(
              x as tf.Tensor3D,
              tf.tensor3d(Array.from(kernel), shape as [number, number, number]),
              2,
              'same',
            ),
            bias,
          ),
        );
        expect(scaledError(y, expected)).toBeLessThan(1e-5);
        tf.dispose([direction, magnitude, bias, x, y, expected]);
        for (const w of layer.weights) w.dispose();
      }
    }));

  it('getConfig round-trips, and a model holding one saves and loads with the same outputs', async () => {
    const layer = decomposedConv1d({
      filters: 3,
      kernelSize: 4,
      strides: 2,
      padding: 'same',
      dilationRate: 1,
      activation: 'relu',
      granularity: 'filter',
      epsilon: 1e-5,
      name: 'conv_x',
    });
    const config = layer.getConfig();
    expect(config).toMatchObject({
      filters: 3,
      kernelSize: [4],
      strides: [2],
      padding: 'same',
      granularity: 'filter',
      epsilon: 1e-5,
    });
    expect(new DecomposedConv1D(JSON.parse(JSON.stringify(config))).getConfig()).toEqual(config);
    const model = tfl.sequential({
      layers: [
        decomposedConv1d({ inputShape: [10, 2], filters: 4, kernelSize: 3, activation: 'relu' }),
        tfl.layers.flatten(),
        tfl.layers.dense({ units: 2 }),
      ],
    });
    let artifacts: tf.io.ModelArtifacts | undefined;
    await model.save(
      tf.io.withSaveHandler(
        async (a) => ((artifacts = a), { modelArtifactsInfo: {} as tf.io.ModelArtifactsInfo }),
      ),
    );
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts!));
    expect(loaded.layers[0].getClassName()).toBe('DecomposedConv1D');
    const x = randn([3, 10, 2], 7);
    const [a, b] = [model, loaded].map((m) => m.predict(x) as tf.Tensor);
    expect(scaledError(b, a)).toBeLessThan(1e-6);
    tf.dispose([x, a, b]);
    model.dispose();
    loaded.dispose();
  });

  it('refuses causal padding (tfjs cannot apply it), channelsFirst and an unknown granularity, naming them', () => {
    expect(() => decomposedConv1d({ filters: 2, kernelSize: 3, padding: 'causal' as any })).toThrow(
      /DecomposedConv1D padding must be one of 'same', 'valid', got "causal"/,
    );
    expect(() =>
      decomposedConv1d({ filters: 2, kernelSize: 3, dataFormat: 'channelsFirst', name: 'c' }),
    ).toThrow(/DecomposedConv1D supports dataFormat 'channelsLast' only, got 'channelsFirst' for layer 'c'/);
    expect(() => decomposedConv1d({ filters: 2, kernelSize: 3, granularity: 'output' as any })).toThrow(
      /'kernel', 'filter'/,
    );
    expect(() => decomposedConv1d({ filters: 2, kernelSize: 3, granularty: 'filter' } as any)).toThrow(
      /DecomposedConv1D: unknown option `granularty` \(did you mean `granularity`\?\)/,
    );
  });
});

describe('decompose, fold and magnitudes with Conv1D layers', () => {
  beforeAll(async () => void (await tf.setBackend('cpu')));

  function net(padding: 'same' | 'valid' | 'causal' = 'same'): tfl.Sequential {
    return tfl.sequential({
      layers: [
        tfl.layers.conv1d({
          inputShape: [16, 3],
          filters: 6,
          kernelSize: 5,
          strides: 2,
          padding,
          activation: 'relu',
          name: 'c1',
        }),
        tfl.layers.maxPooling1d({ poolSize: 2, name: 'pool' }),
        tfl.layers.conv1d({ filters: 4, kernelSize: 2, dilationRate: 2, activation: 'relu', name: 'c2' }),
        tfl.layers.globalAveragePooling1d({ name: 'gap' }),
        tfl.layers.dense({ units: 3, name: 'out' }),
      ],
    });
  }

  it.each(['kernel', 'filter'] as const)(
    "decompose makes each Conv1D a DecomposedConv1D of granularity '%s' with the same outputs; fold gives them back",
    (granularity) => {
      const model = net();
      const before = tf.memory().numTensors;
      const dec = decompose(model, { granularity: { conv1d: granularity } });
      expect(dec.layers.map((l) => l.getClassName())).toEqual([
        'DecomposedConv1D',
        'MaxPooling1D',
        'DecomposedConv1D',
        'GlobalAveragePooling1D',
        'DecomposedDense',
      ]);
      expect((dec.getLayer('c1') as DecomposedConv1D).granularity).toBe(granularity);
      const folded = fold(dec);
      expect(folded.layers.map((l) => l.getClassName())).toEqual(model.layers.map((l) => l.getClassName()));
      expect(folded.layers.some(isDecomposed)).toBe(false);
      const x = randn([4, 16, 3], 9);
      const [y, yd, yf] = [model, dec, folded].map((m) => m.predict(x) as tf.Tensor);
      expect(scaledError(yd, y)).toBeLessThan(1e-5);
      expect(scaledError(yf, y)).toBeLessThan(1e-5);
      tf.dispose([x, y, yd, yf]);
      dec.dispose();
      folded.dispose();
      expect(tf.memory().numTensors).toBe(before);
      model.dispose();
    },
  );

  it('magnitudes() counts the parameters and MACs one group controls', () => {
    const model = net();
    for (const granularity of ['kernel', 'filter'] as const) {
      const dec = decompose(model, { granularity: { conv1d: granularity }, include: ['c1', 'c2'] });
      // c1: kernel 5, cin 3, output length 8 ('same', stride 2); c2: kernel 2, cin 6, output length 4 - 2 = 2.
      const per = granularity === 'kernel' ? [5, 2] : [15, 12];
      expect(magnitudes(dec).map((m) => [m.layerName, m.groups, m.paramsPerGroup, m.macsPerGroup])).toEqual([
        ['c1', granularity === 'kernel' ? 18 : 6, per[0], per[0] * 8],
        ['c2', granularity === 'kernel' ? 24 : 4, per[1], per[1] * 2],
      ]);
      dec.dispose();
    }
    model.dispose();
  });

  it('refuses a causal Conv1D, naming it and the way out', () => {
    const model = net('causal');
    expect(() => decompose(model)).toThrow(
      /decompose: Conv1D layer 'c1' uses padding 'causal', which tfjs 4.22 cannot apply .*leave it out with the include option/,
    );
    const dec = decompose(model, { include: ['c2', 'out'] });
    expect(dec.layers.map((l) => l.getClassName())[0]).toBe('Conv1D');
    dec.dispose();
    model.dispose();
  });
});
