import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { type ConvGranularity, DecomposedConv2D, decompose, decomposedConv2d } from '../src/index.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';
import {
  allFinite,
  gradientErrors,
  randn,
  referenceKernel,
  referenceKernelOf,
  scaledError,
  useCpu,
  values,
  disposeWeights,
} from './helpers.js';

beforeAll(useCpu);

interface Case {
  input: [number, number, number, number];
  filters: number;
  kernelSize: number | [number, number];
  strides?: number | [number, number];
  padding?: 'same' | 'valid';
  dilationRate?: number | [number, number];
  activation?: string;
  useBias?: boolean;
  granularity: ConvGranularity;
}

const cases: Case[] = [
  { input: [2, 7, 7, 3], filters: 4, kernelSize: 3, granularity: 'kernel' },
  {
    input: [2, 7, 7, 3],
    filters: 4,
    kernelSize: 3,
    granularity: 'filter',
    padding: 'same',
    activation: 'relu',
  },
  {
    input: [1, 9, 8, 2],
    filters: 5,
    kernelSize: [3, 2],
    strides: 2,
    granularity: 'kernel',
    padding: 'same',
    activation: 'tanh',
  },
  {
    input: [1, 9, 8, 2],
    filters: 5,
    kernelSize: [2, 3],
    strides: [2, 1],
    granularity: 'filter',
    activation: 'sigmoid',
    useBias: false,
  },
  {
    input: [2, 10, 10, 2],
    filters: 3,
    kernelSize: 3,
    dilationRate: 2,
    granularity: 'kernel',
    activation: 'elu',
  },
  {
    input: [2, 10, 10, 2],
    filters: 3,
    kernelSize: 3,
    dilationRate: [2, 1],
    padding: 'same',
    granularity: 'filter',
    activation: 'relu6',
  },
  { input: [3, 6, 6, 1], filters: 2, kernelSize: 5, granularity: 'kernel', activation: 'softmax' },
];

/**
 * A plain Conv2D whose kernel is the documented formula applied to the
 * decomposed layer's direction and magnitude (computed in the test, not by
 * effectiveKernel(), so a wrong formula in src cannot agree with itself).
 */
function plainTwin(layer: DecomposedConv2D, c: Case): tfl.layers.Layer {
  const plain = tfl.layers.conv2d({
    filters: c.filters,
    kernelSize: c.kernelSize,
    strides: c.strides,
    padding: c.padding,
    dilationRate: c.dilationRate,
    activation: c.activation as any,
    useBias: c.useBias,
  });
  plain.build(c.input);
  const kernel = referenceKernelOf(layer);
  plain.setWeights(layer.bias ? [kernel, layer.bias.read()] : [kernel]);
  kernel.dispose();
  return plain;
}

describe('DecomposedConv2D', () => {
  it.each(cases)('equals tf.layers.conv2d with the effective kernel: %j', (c) => {
    const { input, granularity, activation, ...rest } = c;
    const layer = decomposedConv2d({ ...rest, activation: activation as any, granularity });
    const x = randn(input, 1);
    layer.apply(x);
    tf.tidy(() => {
      layer.magnitude!.write(tf.mul(randn(layer.magnitude!.shape as number[], 2), 2));
    });
    if (layer.bias)
      tf.tidy(() => {
        layer.bias!.write(randn([c.filters], 3));
      });
    const y = layer.apply(x) as tf.Tensor;
    const plain = plainTwin(layer, c);
    const yPlain = plain.apply(x) as tf.Tensor;
    expect(y.shape).toEqual(yPlain.shape);
    expect(layer.computeOutputShape([null, ...input.slice(1)] as any)).toEqual([
      null,
      ...yPlain.shape.slice(1),
    ]);
    expect(scaledError(y, yPlain)).toBeLessThan(1e-5);
    const k = layer.effectiveKernel();
    const reference = referenceKernelOf(layer);
    expect(scaledError(k, reference)).toBeLessThan(1e-5);
    const norms = tf.tidy(() => tf.sqrt(tf.sum(tf.square(k), granularity === 'kernel' ? [0, 1] : [0, 1, 2])));
    const magnitudes = tf.abs(layer.magnitude!.read());
    expect(scaledError(norms, magnitudes)).toBeLessThan(1e-5);
    tf.dispose([x, y, yPlain, k, reference, norms, magnitudes]);
  });

  it('weights are direction [kh, kw, cin, cout], magnitude ([cin, cout] or [cout]), bias; fresh magnitude = ||direction||', () => {
    for (const granularity of ['kernel', 'filter'] as const) {
      const layer = decomposedConv2d({ filters: 6, kernelSize: [3, 2], granularity });
      layer.build([null, 8, 8, 4]);
      const [direction, magnitude, bias] = layer.getWeights();
      expect(layer.weights.map((w) => w.originalName.split('/').pop())).toEqual([
        'direction',
        'magnitude',
        'bias',
      ]);
      expect(direction.shape).toEqual([3, 2, 4, 6]);
      expect(magnitude.shape).toEqual(granularity === 'kernel' ? [4, 6] : [6]);
      expect(bias.shape).toEqual([6]);
      expect(layer.normAxes).toEqual(granularity === 'kernel' ? [0, 1] : [0, 1, 2]);
      const k = layer.effectiveKernel();
      expect(scaledError(k, direction)).toBeLessThan(1e-5);
      k.dispose();
    }
  });

  it('rejects channelsFirst with a clear error', () => {
    expect(() =>
      decomposedConv2d({ filters: 2, kernelSize: 3, dataFormat: 'channelsFirst', name: 'c' }),
    ).toThrow(/channelsLast.*only.*'channelsFirst'.*layer 'c'/);
    expect(() => decomposedConv2d({ filters: 2, kernelSize: 3, granularity: 'output' as any })).toThrow(
      /'kernel', 'filter'/,
    );
  });

  it('getConfig round-trips', () => {
    const layer = decomposedConv2d({
      filters: 3,
      kernelSize: [3, 1],
      strides: [1, 2],
      padding: 'same',
      dilationRate: 1,
      activation: 'relu',
      granularity: 'filter',
      epsilon: 1e-5,
      kernelRegularizer: 'l1l2',
      name: 'conv_x',
    });
    const config = layer.getConfig();
    expect(config).toMatchObject({
      filters: 3,
      kernelSize: [3, 1],
      strides: [1, 2],
      padding: 'same',
      granularity: 'filter',
      epsilon: 1e-5,
      name: 'conv_x',
    });
    const again = new DecomposedConv2D(JSON.parse(JSON.stringify(config)));
    expect(again.getConfig()).toEqual(config);
  });

  it.each([
    ['kernel', 1, 'valid'],
    ['filter', 2, 'same'],
    ['kernel', 2, 'same'],
    ['filter', 1, 'valid'],
  ] as const)(
    'gradients agree with central finite differences (%s, stride %d, %s)',
    (granularity, strides, padding) => {
      const layer = decomposedConv2d({
        filters: 2,
        kernelSize: 2,
        strides,
        padding,
        activation: 'tanh',
        granularity,
      });
      const x = randn([2, 4, 4, 2], 41);
      layer.apply(x);
      // Measured (seeded, cpu, tanh): at most 3.5e-5.
      for (const error of gradientErrors(layer, x, 42)) expect(error).toBeLessThan(1e-4);
      x.dispose();
    },
  );

  it.each(['kernel', 'filter'] as const)(
    'a zero magnitude or zero direction gives a zero group and no NaN (%s)',
    (granularity) => {
      const layer = decomposedConv2d({ filters: 3, kernelSize: 2, granularity, activation: 'relu' });
      const x = randn([2, 5, 5, 2], 51);
      layer.apply(x);
      // Zero the whole direction of output channel 0 and the magnitude of (0, 1) / filter 1.
      const direction = tf.tidy(() => tf.mul(randn([2, 2, 2, 3], 52), tf.tensor1d([0, 1, 1])));
      const magnitude =
        granularity === 'kernel'
          ? tf.tensor2d([
              [1, 0, 2],
              [1, 3, 2],
            ])
          : tf.tensor1d([1, 0, 2]);
      layer.setWeights([direction, magnitude, tf.zeros([3])]);
      const k = layer.effectiveKernel();
      const kv = k.arraySync() as number[][][][];
      for (let a = 0; a < 2; a++)
        for (let b = 0; b < 2; b++)
          for (let i = 0; i < 2; i++) {
            expect(Math.abs(kv[a][b][i][0])).toBe(0);
            if (granularity === 'filter' || i === 0) expect(Math.abs(kv[a][b][i][1])).toBe(0);
          }
      const vars = [layer.direction!, layer.magnitude!].map((w) => w.read() as tf.Variable);
      const { value, grads } = tf.variableGrads(
        () => tf.sum(tf.square(layer.apply(x) as tf.Tensor)) as tf.Scalar,
        vars,
      );
      expect(allFinite(value)).toBe(true);
      for (const v of vars) expect(allFinite(grads[v.name])).toBe(true);
      tf.dispose([x, direction, magnitude, k, value, ...Object.values(grads)]);
    },
  );

  it('call() leaves no tensor behind', async () => {
    const layer = decomposedConv2d({ filters: 2, kernelSize: 3, activation: 'softmax', padding: 'same' });
    const x = randn([1, 5, 5, 2], 61);
    layer.apply(x);
    await expectNoLeak(() => {
      const y = layer.apply(x) as tf.Tensor;
      y.dispose();
    });
    x.dispose();
  });
});

// With the default epsilon (1e-6) the epsilon^2 under the square root is
// invisible next to a direction group of norm ~1, so a layer that added
// epsilon instead of epsilon^2 would pass every test above. epsilon 0.5 next
// to direction groups of norm ~0.05 makes the term dominate; the kernel is
// computed here in float64 plain arithmetic (not by effectiveKernel()) and
// convolved by plain tf.conv2d.
describe('DecomposedConv2D forward pass against the epsilon formula', () => {
  it.each(['kernel', 'filter'] as const)(
    'one 1x2 kernel [0.03, 0.04], magnitude 1, epsilon 0.5 (%s, worked by hand)',
    (granularity) =>
      expectNoLeak(() => {
        // One input and one output channel: a 2-D kernel is the whole filter,
        // so both granularities have the single group [0.03, 0.04]:
        // w = [0.03, 0.04] / sqrt(0.03^2 + 0.04^2 + 0.5^2).
        const layer = decomposedConv2d({
          filters: 1,
          kernelSize: [1, 2],
          granularity,
          epsilon: 0.5,
          useBias: false,
        });
        layer.build([null, 1, 3, 1]);
        const direction = tf.tensor4d([0.03, 0.04], [1, 2, 1, 1]);
        const magnitude = tf.ones(granularity === 'kernel' ? [1, 1] : [1]);
        layer.setWeights([direction, magnitude]);
        const x = tf.tensor4d([1, 2, -3], [1, 1, 3, 1]);
        const y = layer.apply(x) as tf.Tensor;
        const n = Math.sqrt(0.0025 + 0.25);
        const expected = [(1 * 0.03 + 2 * 0.04) / n, (2 * 0.03 - 3 * 0.04) / n];
        expect(y.shape).toEqual([1, 1, 2, 1]);
        values(y).forEach((v, i) => expect(Math.abs(v - expected[i])).toBeLessThan(1e-5));
        tf.dispose([direction, magnitude, x, y]);
        disposeWeights(layer);
      }),
  );

  const epsilonCases: Case[] = [
    { input: [2, 5, 5, 3], filters: 4, kernelSize: 3, granularity: 'kernel', useBias: false },
    { input: [2, 5, 5, 3], filters: 4, kernelSize: 3, granularity: 'filter', useBias: false },
    {
      input: [1, 6, 7, 2],
      filters: 3,
      kernelSize: [2, 3],
      strides: 2,
      padding: 'same',
      granularity: 'kernel',
    },
    {
      input: [1, 6, 7, 2],
      filters: 3,
      kernelSize: [3, 2],
      strides: [1, 2],
      padding: 'same',
      granularity: 'filter',
    },
    {
      input: [2, 7, 7, 1],
      filters: 2,
      kernelSize: 2,
      dilationRate: 2,
      granularity: 'kernel',
      activation: 'relu',
    },
    { input: [2, 4, 4, 5], filters: 1, kernelSize: 1, granularity: 'filter', activation: 'relu' },
  ];
  it.each(epsilonCases)(
    'layer.apply(x) = conv(x, g v / sqrt(||v||^2 + eps^2)) (+ bias) with eps 0.5 and small directions: %j',
    (c) =>
      expectNoLeak(() => {
        const { input, granularity, activation, ...rest } = c;
        const layer = decomposedConv2d({ ...rest, activation: activation as any, granularity, epsilon: 0.5 });
        layer.build(input);
        const cin = input[3];
        const [kh, kw] = typeof c.kernelSize === 'number' ? [c.kernelSize, c.kernelSize] : c.kernelSize;
        const shape = [kh, kw, cin, c.filters];
        const normAxes = granularity === 'kernel' ? [0, 1] : [0, 1, 2];
        const direction = tf.tidy(() => tf.mul(randn(shape, 111), 0.05));
        const magnitude = tf.tidy(() =>
          tf.mul(randn(granularity === 'kernel' ? [cin, c.filters] : [c.filters], 112), 2),
        );
        const bias = c.useBias === false ? null : randn([c.filters], 113);
        layer.setWeights(bias == null ? [direction, magnitude] : [direction, magnitude, bias]);
        const x = randn(input, 114);
        const y = layer.apply(x) as tf.Tensor;
        const kernel = referenceKernel(values(direction), shape, normAxes, values(magnitude), 0.5);
        const expected = tf.tidy(() => {
          let z: tf.Tensor = tf.conv2d(
            x as tf.Tensor4D,
            tf.tensor4d(Array.from(kernel), shape as [number, number, number, number]),
            c.strides ?? 1,
            c.padding ?? 'valid',
            'NHWC',
            c.dilationRate ?? 1,
          );
          if (bias != null) z = tf.add(z, bias);
          return activation === 'relu' ? tf.relu(z) : z;
        });
        expect(y.shape).toEqual(expected.shape);
        expect(scaledError(y, expected)).toBeLessThan(1e-5);
        tf.dispose([direction, magnitude, x, y, expected]);
        if (bias != null) bias.dispose();
        disposeWeights(layer);
      }),
  );
});

describe('decompose warns about a dilated convolution, which tfjs 4.22 cannot train', () => {
  const net = (dilationRate: number) =>
    tfl.sequential({
      layers: [
        tfl.layers.conv1d({ inputShape: [12, 2], filters: 3, kernelSize: 3, dilationRate, name: 'c1' }),
        tfl.layers.reshape({ targetShape: [12 - 2 * dilationRate, 1, 3] }),
        tfl.layers.conv2d({ filters: 2, kernelSize: [3, 1], dilationRate: [dilationRate, 1], name: 'c2' }),
        tfl.layers.conv2d({ filters: 2, kernelSize: 1, name: 'plain' }),
      ],
    });

  it('names each dilated layer and the fix; training it does throw inside tfjs', async () => {
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      const model = net(2);
      const d = decompose(model);
      expect(warn).toHaveBeenCalledTimes(1);
      const message = String(warn.mock.calls[0][0]);
      expect(message).toMatch(
        /^decompose: 'c1' \(DecomposedConv1D, dilationRate \[2\]\), 'c2' \(DecomposedConv2D, dilationRate \[2,1\]\) cannot be trained: tfjs 4.22 has no gradient[^]*Rebuild them with dilationRate 1[^]*leave it out with include/,
      );
      expect(message).not.toMatch(/'plain'/);
      d.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
      const x = tf.ones([1, 12, 2]);
      const y = tf.ones(d.outputs[0].shape.map((s) => s ?? 1));
      await expect(d.trainOnBatch(x, y)).rejects.toThrow(/dilation rates greater than 1/);
      tf.dispose([x, y]);
      model.dispose();
      d.dispose();
    } finally {
      warn.mockRestore();
    }
  });

  it('says nothing for dilation rate 1', () => {
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      const model = net(1);
      const d = decompose(model);
      expect(warn).not.toHaveBeenCalled();
      model.dispose();
      d.dispose();
    } finally {
      warn.mockRestore();
    }
  });
});
