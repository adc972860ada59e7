// DecomposedDepthwiseConv2D: against tfjs's own DepthwiseConv2D given the effective kernel, its
// gradients against finite differences and autodiff, serialisation, decompose / fold / magnitudes,
// leaks and refusals, on the cpu backend and (last) on wasm with @normprune/runtime's training kernels.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '@normprune/runtime';
import {
  type ConvGranularity,
  DecomposedDepthwiseConv2D,
  decompose,
  decomposedDepthwiseConv2d,
  fold,
  isDecomposed,
  magnitudes,
} from '../src/index.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';
import {
  gradientErrors,
  randn,
  referenceKernelOf,
  scaledError,
  scaledErrorOf,
  useCpu,
  disposeWeights,
} from './helpers.js';

beforeAll(useCpu);

interface Case {
  input: [number, number, number, number];
  kernelSize: number | [number, number];
  depthMultiplier?: number;
  strides?: number | [number, number];
  padding?: 'same' | 'valid';
  activation?: string;
  useBias?: boolean;
  granularity: ConvGranularity;
}

const cases: Case[] = [
  { input: [2, 5, 5, 3], kernelSize: 3, granularity: 'kernel' },
  {
    input: [2, 5, 5, 3],
    kernelSize: 3,
    depthMultiplier: 2,
    strides: 2,
    padding: 'same',
    granularity: 'filter',
  },
  {
    input: [1, 4, 6, 2],
    kernelSize: [2, 3],
    depthMultiplier: 2,
    strides: 2,
    granularity: 'kernel',
    activation: 'relu',
  },
  {
    input: [1, 4, 6, 2],
    kernelSize: [2, 3],
    strides: [2, 1],
    padding: 'same',
    granularity: 'filter',
    activation: 'tanh',
    useBias: false,
  },
  { input: [2, 3, 3, 4], kernelSize: 1, granularity: 'kernel', useBias: false },
  { input: [2, 3, 3, 4], kernelSize: 1, depthMultiplier: 2, strides: 2, granularity: 'filter' },
  {
    input: [1, 5, 4, 2],
    kernelSize: 3,
    depthMultiplier: 2,
    padding: 'same',
    granularity: 'kernel',
    useBias: false,
  },
];

const layerArgs = ({ input: _input, activation, ...rest }: Case) => ({
  ...rest,
  activation: activation as any,
});

/**
 * A plain DepthwiseConv2D whose kernel is the documented formula applied to the decomposed
 * layer's direction and magnitude (in the test, not by effectiveKernel()).
 */
function plainTwin(layer: DecomposedDepthwiseConv2D, c: Case): tfl.layers.Layer {
  const { granularity: _g, ...args } = layerArgs(c);
  const plain = tfl.layers.depthwiseConv2d(args);
  plain.build(c.input);
  const kernel = referenceKernelOf(layer);
  plain.setWeights(layer.bias ? [kernel, layer.bias.read()] : [kernel]);
  kernel.dispose();
  return plain;
}

/** A MobileNet-style block: Conv2D, DepthwiseConv2D (multiplier 2, stride 2), 1x1 Conv2D, DepthwiseConv2D. */
function mobile(): tfl.LayersModel {
  const seeded = (seed: number) => tfl.initializers.glorotNormal({ seed });
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        inputShape: [6, 6, 2],
        filters: 3,
        kernelSize: 3,
        padding: 'same',
        activation: 'relu',
        kernelInitializer: seeded(1),
        name: 'stem',
      }),
      tfl.layers.depthwiseConv2d({
        kernelSize: 3,
        depthMultiplier: 2,
        strides: 2,
        padding: 'same',
        activation: 'relu',
        depthwiseInitializer: seeded(2),
        biasInitializer: tfl.initializers.randomNormal({ seed: 3 }),
        name: 'dw1',
      }),
      tfl.layers.conv2d({ filters: 4, kernelSize: 1, kernelInitializer: seeded(4), name: 'pw' }),
      tfl.layers.depthwiseConv2d({
        kernelSize: [2, 3],
        depthwiseInitializer: seeded(5),
        useBias: false,
        name: 'dw2',
      }),
    ],
  });
}

describe('DecomposedDepthwiseConv2D', () => {
  it.each(cases)('equals tf.layers.depthwiseConv2d with the effective kernel: %j', (c) => {
    const layer = decomposedDepthwiseConv2d(layerArgs(c));
    const x = randn(c.input, 1);
    layer.apply(x);
    tf.tidy(() => {
      layer.magnitude!.write(tf.abs(tf.mul(randn(layer.magnitude!.shape as number[], 2), 2)));
    });
    if (layer.bias)
      tf.tidy(() => {
        layer.bias!.write(randn([c.input[3] * (c.depthMultiplier ?? 1)], 3));
      });
    const y = layer.apply(x) as tf.Tensor;
    const plain = plainTwin(layer, c);
    const yPlain = plain.apply(x) as tf.Tensor;
    expect(y.shape).toEqual(yPlain.shape);
    expect(layer.computeOutputShape([null, ...c.input.slice(1)] as any)).toEqual(
      plain.computeOutputShape([null, ...c.input.slice(1)] as any),
    );
    expect(layer.computeOutputShape(c.input)).toEqual(yPlain.shape);
    expect(scaledError(y, yPlain)).toBeLessThan(1e-5);
    const k = layer.effectiveKernel();
    const reference = referenceKernelOf(layer);
    expect(scaledError(k, reference)).toBeLessThan(1e-5);
    const norms = tf.tidy(() =>
      tf.sqrt(tf.sum(tf.square(k), c.granularity === 'kernel' ? [0, 1] : [0, 1, 3])),
    );
    expect(scaledError(norms, layer.magnitude!.read())).toBeLessThan(1e-5);
    tf.dispose([x, y, yPlain, k, reference, norms]);
    disposeWeights(layer);
    disposeWeights(plain);
  });

  it('weights are direction [kh, kw, inChannels, depthMultiplier], magnitude ([inChannels, depthMultiplier] or [inChannels]), bias', () => {
    for (const granularity of ['kernel', 'filter'] as const) {
      const layer = decomposedDepthwiseConv2d({ kernelSize: [3, 2], depthMultiplier: 3, granularity });
      expect(Number.isNaN(layer.filters)).toBe(true);
      layer.build([null, 5, 5, 4]);
      const [direction, magnitude, bias] = layer.getWeights();
      expect(layer.weights.map((w) => w.originalName.split('/').pop())).toEqual([
        'direction',
        'magnitude',
        'bias',
      ]);
      expect(direction.shape).toEqual([3, 2, 4, 3]);
      expect(magnitude.shape).toEqual(granularity === 'kernel' ? [4, 3] : [4]);
      expect(bias.shape).toEqual([12]);
      expect(layer.filters).toBe(12);
      expect(layer.depthMultiplier).toBe(3);
      expect(layer.normAxes).toEqual(granularity === 'kernel' ? [0, 1] : [0, 1, 3]);
      expect(layer.depthwise).toBe(true);
      expect(layer.transposed).toBe(false);
      expect(isDecomposed(layer)).toBe(true);
      // A fresh layer applies its initial direction exactly.
      const k = layer.effectiveKernel();
      expect(scaledError(k, direction)).toBeLessThan(1e-5);
      k.dispose();
      disposeWeights(layer);
    }
  });

  it("setWeights takes the plain DepthwiseConv2D's [kernel, bias] and applies that kernel", () => {
    for (const granularity of ['kernel', 'filter'] as const) {
      const plain = tfl.layers.depthwiseConv2d({ kernelSize: 2, depthMultiplier: 2, strides: 2 });
      const layer = decomposedDepthwiseConv2d({ kernelSize: 2, depthMultiplier: 2, strides: 2, granularity });
      const x = randn([1, 5, 5, 3], 7);
      plain.apply(x);
      layer.apply(x);
      tf.tidy(() => plain.setWeights([randn([2, 2, 3, 2], 8), randn([6], 9)]));
      layer.setWeights(plain.getWeights());
      const [a, b] = [layer.apply(x), plain.apply(x)] as tf.Tensor[];
      expect(scaledError(a, b)).toBeLessThan(1e-5);
      tf.dispose([x, a, b]);
      disposeWeights(layer);
      disposeWeights(plain);
    }
  });

  it.each(['kernel', 'filter'] as const)(
    'the depthwise constraint and regularizer act on the effective kernel, and the initializer on the direction (%s)',
    (granularity) => {
      const layer = decomposedDepthwiseConv2d({
        kernelSize: 2,
        depthMultiplier: 2,
        granularity,
        depthwiseInitializer: 'ones',
        depthwiseConstraint: 'nonNeg',
        depthwiseRegularizer: tfl.regularizers.l2({ l2: 0.5 }),
      });
      layer.build([null, 3, 3, 2]);
      expect(tf.min(layer.direction!.read()).dataSync()[0]).toBe(1);
      expect(tf.max(layer.direction!.read()).dataSync()[0]).toBe(1);
      const kernel = randn([2, 2, 2, 2], 31);
      layer.setWeights([kernel, tf.zeros([4])]);
      const k = layer.effectiveKernel();
      const expected = tf.relu(kernel);
      expect(scaledError(k, expected)).toBeLessThan(1e-6);
      // tfjs keeps a layer's regularizer losses as functions (RegularizerFn).
      const loss = (layer.losses[0] as unknown as () => tf.Scalar)();
      const l2 = tf.tidy(() => tf.mul(0.5, tf.sum(tf.square(expected))));
      expect(scaledError(loss, l2)).toBeLessThan(1e-6);
      tf.dispose([kernel, k, expected, loss, l2]);
      disposeWeights(layer);
    },
  );

  it('getConfig round-trips, with its own depthwiseConstraint (not the regularizer tfjs writes there)', () => {
    const layer = decomposedDepthwiseConv2d({
      kernelSize: [3, 1],
      depthMultiplier: 2,
      strides: [1, 2],
      padding: 'same',
      activation: 'relu',
      granularity: 'filter',
      epsilon: 1e-5,
      depthwiseConstraint: 'maxNorm',
      depthwiseRegularizer: 'l1l2',
      name: 'dw_x',
    });
    const config = layer.getConfig();
    expect(config).toMatchObject({
      kernelSize: [3, 1],
      depthMultiplier: 2,
      strides: [1, 2],
      padding: 'same',
      dilationRate: [1, 1],
      granularity: 'filter',
      epsilon: 1e-5,
      name: 'dw_x',
      depthwiseConstraint: { className: 'MaxNorm' },
      depthwiseRegularizer: { className: 'L1L2' },
    });
    expect(config).not.toHaveProperty('filters');
    const again = new DecomposedDepthwiseConv2D(JSON.parse(JSON.stringify(config)));
    expect(again.getConfig()).toEqual(config);
  });

  it.each([
    ['kernel', 1, 'valid', 2, 1],
    ['filter', 2, 'same', 2, 2],
    ['kernel', 2, 'same', 3, 2],
    ['filter', 1, 'valid', 3, 1],
    ['kernel', 2, 'valid', 1, 2],
    ['filter', 1, 'same', 1, 2],
  ] as const)(
    'gradients agree with central finite differences (%s, stride %d, %s, kernel %d, multiplier %d)',
    (granularity, strides, padding, kernelSize, depthMultiplier) => {
      const layer = decomposedDepthwiseConv2d({
        kernelSize,
        depthMultiplier,
        strides,
        padding,
        activation: 'tanh',
        granularity,
      });
      const x = randn([2, 4, 4, 2], 41);
      layer.apply(x);
      const errors = gradientErrors(layer, x, 42);
      // A 1x1 kernel of granularity 'kernel' has one-weight groups, whose direction gets no
      // gradient (g * eps^2 / |v|^3, about 0): the relative error of two zeros says nothing.
      if (granularity === 'kernel' && kernelSize === 1) errors.shift();
      // The bound conv2d.test.ts uses for DecomposedConv2D.
      for (const error of errors) expect(error).toBeLessThan(1e-4);
      x.dispose();
      disposeWeights(layer);
    },
  );

  it.each(['kernel', 'filter'] as const)(
    'gradients with respect to direction and magnitude equal autodiff of the formula (%s)',
    (granularity) => {
      const layer = decomposedDepthwiseConv2d({
        kernelSize: [2, 3],
        depthMultiplier: 2,
        strides: 2,
        activation: 'relu',
        granularity,
      });
      const x = randn([2, 5, 6, 3], 11);
      layer.apply(x);
      const v = layer.direction!.read() as tf.Variable;
      const g = layer.magnitude!.read() as tf.Variable;
      tf.tidy(() => g.assign(tf.abs(randn(g.shape, 12))));
      tf.tidy(() => {
        layer.bias!.write(randn([6], 14));
      });
      const r = tf.tidy(() => randn((layer.apply(x) as tf.Tensor).shape, 13));
      const axes = layer.normAxes;
      const reference = () => {
        const inv = tf.rsqrt(tf.add(tf.sum(tf.square(v), axes, true), layer.epsilon ** 2));
        const gb = tf.reshape(
          g,
          v.shape.map((d, a) => (axes.includes(a) ? 1 : d)),
        );
        const kernel = tf.mul(tf.mul(v, gb), inv) as tf.Tensor4D;
        const y = tf.depthwiseConv2d(x as tf.Tensor4D, kernel, 2, 'valid');
        return tf.sum(tf.mul(tf.relu(tf.add(y, layer.bias!.read())), r)) as tf.Scalar;
      };
      const ours = tf.variableGrads(
        () => tf.sum(tf.mul(layer.apply(x) as tf.Tensor, r)) as tf.Scalar,
        [v, g],
      );
      const theirs = tf.variableGrads(reference, [v, g]);
      expect(scaledError(ours.value, theirs.value)).toBeLessThan(1e-5);
      for (const w of [v, g])
        expect(scaledError(ours.grads[w.name], theirs.grads[w.name])).toBeLessThan(1e-5);
      tf.dispose([
        x,
        r,
        ours.value,
        theirs.value,
        ...Object.values(ours.grads),
        ...Object.values(theirs.grads),
      ]);
      disposeWeights(layer);
    },
  );

  it('call() and training steps leave no tensor behind', async () => {
    const layer = decomposedDepthwiseConv2d({
      kernelSize: 3,
      depthMultiplier: 2,
      strides: 2,
      padding: 'same',
    });
    const x = randn([1, 4, 4, 2], 61);
    layer.apply(x);
    await expectNoLeak(() => {
      for (let i = 0; i < 5; i++) (layer.apply(x) as tf.Tensor).dispose();
    });
    const m = decompose(mobile(), { granularity: { depthwiseConv2d: 'filter' } });
    const opt = tf.train.adam(0.01);
    const xs = randn([2, 6, 6, 2], 62);
    const ys = randn([2, 2, 1, 4], 63);
    const step = () =>
      opt.minimize(() => tf.losses.meanSquaredError(ys, m.apply(xs) as tf.Tensor) as tf.Scalar);
    step(); // the optimiser's slots
    await expectNoLeak(() => {
      for (let i = 0; i < 3; i++) step();
    });
    m.compile({ optimizer: tf.train.sgd(0.01), loss: 'meanSquaredError' });
    await m.fit(xs, ys, { epochs: 1, verbose: 0 });
    await expectNoLeak(async () => {
      await m.fit(xs, ys, { epochs: 2, verbose: 0 });
    });
    tf.dispose([x, xs, ys]);
    opt.dispose();
    m.dispose();
    disposeWeights(layer);
  });

  it('refuses an unknown option, a kernel* option, dilationRate 2, channelsFirst, causal padding and a bad granularity, naming them', () => {
    expect(() => decomposedDepthwiseConv2d({ kernelSize: 3, granularty: 'filter' } as never)).toThrow(
      /^DecomposedDepthwiseConv2D: unknown option `granularty` \(did you mean `granularity`\?\); the options are `granularity`, `epsilon`, `magnitudeInitializer` and those of tf\.layers\.depthwiseConv2d: .*`depthMultiplier`, `depthwiseInitializer`, `depthwiseConstraint`, `depthwiseRegularizer`$/,
    );
    expect(() => decomposedDepthwiseConv2d({ kernelSize: 3, filters: 4 } as never)).toThrow(
      /^DecomposedDepthwiseConv2D: unknown option `filters`; the options are/,
    );
    expect(() => decomposedDepthwiseConv2d({ kernelSize: 3, kernelInitializer: 'ones' } as never)).toThrow(
      /^DecomposedDepthwiseConv2D: unknown option `kernelInitializer`; .* \(a DepthwiseConv2D ignores kernelInitializer, kernelConstraint and kernelRegularizer: its kernel takes depthwiseInitializer, depthwiseConstraint and depthwiseRegularizer\)$/,
    );
    expect(() => new DecomposedDepthwiseConv2D(null as never)).toThrow(
      'DecomposedDepthwiseConv2D: expected an options object, as tf.layers.depthwiseConv2d takes ({ kernelSize: 3, depthMultiplier: 1 }), got null',
    );
    expect(() => decomposedDepthwiseConv2d({ kernelSize: 3, dilationRate: 2, name: 'dw' })).toThrow(
      /^DecomposedDepthwiseConv2D supports dilationRate 1 only \(tfjs's DepthwiseConv2D ignores any other\), got 2 for layer 'dw'$/,
    );
    expect(() => decomposedDepthwiseConv2d({ kernelSize: 3, dilationRate: [1, 2] })).toThrow(
      /dilationRate 1 only.*got \[1,2\]$/,
    );
    expect(() =>
      decomposedDepthwiseConv2d({ kernelSize: 3, dataFormat: 'channelsFirst', name: 'dw' }),
    ).toThrow(
      "DecomposedDepthwiseConv2D supports dataFormat 'channelsLast' only, got 'channelsFirst' for layer 'dw'",
    );
    expect(() => decomposedDepthwiseConv2d({ kernelSize: 3, padding: 'causal' })).toThrow(
      `DecomposedDepthwiseConv2D padding must be one of 'same', 'valid', got "causal"`,
    );
    expect(() => decomposedDepthwiseConv2d({ kernelSize: 3, granularity: 'output' as never })).toThrow(
      `DecomposedDepthwiseConv2D granularity must be one of 'kernel', 'filter', got "output"`,
    );
    const layer = decomposedDepthwiseConv2d({ kernelSize: 3, name: 'dw' });
    expect(() => layer.build([null, 5, 5, null])).toThrow(
      "DecomposedDepthwiseConv2D 'dw': the channel dimension of the input must be known",
    );
  });
});

describe('DecomposedDepthwiseConv2D in models', () => {
  const x = () => randn([3, 6, 6, 2], 21);

  it.each(['kernel', 'filter'] as const)(
    'decompose() replaces DepthwiseConv2D layers and fold() gives them back, outputs kept (%s)',
    (depthwiseConv2d) => {
      const plain = mobile();
      const input = x();
      const d = decompose(plain, { granularity: { conv2d: 'filter', depthwiseConv2d } });
      expect(d.layers.map((l) => l.getClassName())).toEqual([
        'DecomposedConv2D',
        'DecomposedDepthwiseConv2D',
        'DecomposedConv2D',
        'DecomposedDepthwiseConv2D',
      ]);
      expect((d.getLayer('dw1') as DecomposedDepthwiseConv2D).granularity).toBe(depthwiseConv2d);
      const y0 = plain.predict(input) as tf.Tensor;
      const y1 = d.predict(input) as tf.Tensor;
      expect(scaledError(y1, y0)).toBeLessThan(1e-5);
      // Kill some groups, as the proximal step does, then fold.
      const dw1 = magnitudes(d).find((m) => m.layerName === 'dw1')!;
      tf.tidy(() =>
        dw1.magnitude.assign(
          tf.mul(
            dw1.magnitude,
            tf.cast(tf.greater(tf.randomUniform(dw1.magnitude.shape, 0, 1, 'float32', 5), 0.5), 'float32'),
          ),
        ),
      );
      const y2 = d.predict(input) as tf.Tensor;
      const f = fold(d);
      expect(f.layers.map((l) => l.getClassName())).toEqual([
        'Conv2D',
        'DepthwiseConv2D',
        'Conv2D',
        'DepthwiseConv2D',
      ]);
      expect(f.getLayer('dw1').getConfig()).toEqual(plain.getLayer('dw1').getConfig());
      expect(f.getLayer('dw2').getConfig()).toEqual(plain.getLayer('dw2').getConfig());
      const y3 = f.predict(input) as tf.Tensor;
      expect(scaledError(y3, y2)).toBeLessThan(1e-5);
      // Folding the unchanged model gives the plain model's outputs back.
      const f0 = fold(decompose(plain, { granularity: { depthwiseConv2d } }));
      const y4 = f0.predict(input) as tf.Tensor;
      expect(scaledError(y4, y0)).toBeLessThan(1e-5);
      tf.dispose([input, y0, y1, y2, y3, y4]);
      for (const m of [plain, d, f, f0]) m.dispose();
    },
  );

  it('include selects DepthwiseConv2D layers by name, and leaves the others plain', () => {
    const plain = mobile();
    const d = decompose(plain, { include: ['dw2'] });
    expect(d.layers.map((l) => l.getClassName())).toEqual([
      'Conv2D',
      'DepthwiseConv2D',
      'Conv2D',
      'DecomposedDepthwiseConv2D',
    ]);
    const kept = decompose(plain, { include: (l) => l.getClassName() !== 'DepthwiseConv2D' });
    expect(kept.layers.map((l) => l.getClassName())).toEqual([
      'DecomposedConv2D',
      'DepthwiseConv2D',
      'DecomposedConv2D',
      'DepthwiseConv2D',
    ]);
    for (const m of [plain, d, kept]) m.dispose();
  });

  it('magnitudes() lists it: groups, params and MACs per group (output positions)', () => {
    const plain = mobile();
    for (const depthwiseConv2d of ['kernel', 'filter'] as const) {
      const d = decompose(plain, { granularity: { depthwiseConv2d } });
      const info = magnitudes(d)
        .filter((m) => m.layerName.startsWith('dw'))
        .map(({ layerName, granularity, groups, paramsPerGroup, macsPerGroup, normAxes }) => ({
          layerName,
          granularity,
          groups,
          paramsPerGroup,
          macsPerGroup,
          normAxes,
        }));
      const kernel = depthwiseConv2d === 'kernel';
      expect(info).toEqual([
        {
          layerName: 'dw1',
          granularity: depthwiseConv2d,
          // 3 input channels, multiplier 2; output 3 x 3.
          groups: kernel ? 6 : 3,
          paramsPerGroup: kernel ? 9 : 18,
          macsPerGroup: (kernel ? 9 : 18) * 9,
          normAxes: kernel ? [0, 1] : [0, 1, 3],
        },
        {
          layerName: 'dw2',
          granularity: depthwiseConv2d,
          // 4 input channels, multiplier 1, kernel 2 x 3; output 2 x 1.
          groups: 4,
          paramsPerGroup: 6,
          macsPerGroup: 6 * 2,
          normAxes: kernel ? [0, 1] : [0, 1, 3],
        },
      ]);
      d.dispose();
    }
    plain.dispose();
  });

  it('decompose refuses a channelsFirst or dilated DepthwiseConv2D, and checks granularity.depthwiseConv2d', () => {
    const cf = tfl.sequential({
      layers: [
        tfl.layers.depthwiseConv2d({
          inputShape: [2, 3, 3],
          kernelSize: 2,
          dataFormat: 'channelsFirst',
          name: 'cf_dw',
        }),
      ],
    });
    expect(() => decompose(cf)).toThrow(
      /^decompose: DepthwiseConv2D layer 'cf_dw' uses dataFormat 'channelsFirst'; only 'channelsLast' is supported\..*layer\.name !== 'cf_dw'/,
    );
    expect(() => decompose(cf, { granularity: { depthwiseConv2d: 'input' as never } })).toThrow(
      `decompose: granularity.depthwiseConv2d must be one of 'kernel', 'filter', got "input"`,
    );
    expect(() => decompose(cf, { granularity: { depthwiseConv2D: 'kernel' } as never })).toThrow(
      /decompose: granularity: unknown option `depthwiseConv2D` \(did you mean `depthwiseConv2d`\?\); the options are `dense`, `conv1d`, `conv2d`, `conv2dTranspose`, `depthwiseConv2d`/,
    );
    const dilated = tfl.sequential({
      layers: [
        tfl.layers.depthwiseConv2d({ inputShape: [5, 5, 2], kernelSize: 2, dilationRate: 2, name: 'dil' }),
      ],
    });
    expect(() => decompose(dilated)).toThrow(
      /^decompose: DepthwiseConv2D layer 'dil' has dilationRate \[2,2\], which tfjs 4\.22's DepthwiseConv2D ignores .*leave it out with the include option \(e\.g\. include: \(layer\) => layer\.name !== 'dil'\)$/,
    );
    for (const m of [cf, dilated]) m.dispose();
  });

  it('serialises: toJSON / modelFromJSON and save / load through tf.io keep the outputs', async () => {
    const d = decompose(mobile(), { granularity: { depthwiseConv2d: 'filter' } });
    const input = x();
    const y = d.predict(input) as tf.Tensor;
    const fromJson = await tfl.models.modelFromJSON({
      modelTopology: JSON.parse(d.toJSON() as string),
    });
    fromJson.setWeights(d.getWeights());
    expect(fromJson.getLayer('dw1')).toBeInstanceOf(DecomposedDepthwiseConv2D);
    const y1 = fromJson.predict(input) as tf.Tensor;
    expect(scaledError(y1, y)).toBeLessThan(1e-6);
    let artifacts: tf.io.ModelArtifacts | undefined;
    await d.save(tf.io.withSaveHandler(async (a) => ((artifacts = a), { modelArtifactsInfo: {} as any })));
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts!));
    expect(loaded.layers.map((l) => l.getClassName())).toEqual([
      'DecomposedConv2D',
      'DecomposedDepthwiseConv2D',
      'DecomposedConv2D',
      'DecomposedDepthwiseConv2D',
    ]);
    expect((loaded.getLayer('dw1') as DecomposedDepthwiseConv2D).depthMultiplier).toBe(2);
    const y2 = loaded.predict(input) as tf.Tensor;
    expect(scaledError(y2, y)).toBeLessThan(1e-6);
    tf.dispose([input, y, y1, y2]);
    for (const m of [d, fromJson, loaded]) m.dispose();
  });
});

describe('DecomposedDepthwiseConv2D on the wasm backend', () => {
  beforeAll(async () => {
    const info = await initBackend({ prefer: 'wasm', quiet: true });
    expect(info.backend).toBe('wasm');
  });
  afterAll(useCpu);

  /** Output and the gradients of a fixed loss with respect to every weight, as arrays. */
  function outputsAndGrads(m: tfl.LayersModel, xv: Float32Array, rv: Float32Array): Float32Array[] {
    return tf.tidy(() => {
      const input = tf.tensor(xv, [2, 6, 6, 2]);
      const r = tf.tensor(rv, [2, 2, 1, 4]);
      const loss = () => tf.sum(tf.mul(tf.tanh(m.apply(input) as tf.Tensor), r)) as tf.Scalar;
      const vars = m.trainableWeights.map((w) => w.read() as tf.Variable);
      const { grads } = tf.variableGrads(loss, vars);
      return [
        (m.apply(input) as tf.Tensor).dataSync() as Float32Array,
        ...vars.map((v) => grads[v.name].dataSync() as Float32Array),
      ];
    });
  }

  it.each(['kernel', 'filter'] as const)(
    'outputs and gradients equal the cpu backend, and training leaves no tensor behind (%s)',
    async (depthwiseConv2d) => {
      await tf.setBackend('cpu');
      // 'filter' for the 1x1 Conv2D: 'kernel' would give it one-weight groups, whose direction
      // gradient is about 0 on both backends, and the relative error of two zeros says nothing.
      const m = decompose(mobile(), { granularity: { conv2d: 'filter', depthwiseConv2d } });
      const xv = tf.tidy(() => randn([2, 6, 6, 2], 5).dataSync() as Float32Array);
      const rv = tf.tidy(() => randn([2, 2, 1, 4], 6).dataSync() as Float32Array);
      const onCpu = outputsAndGrads(m, xv, rv);
      await tf.setBackend('wasm');
      const onWasm = await expectNoLeak(() => outputsAndGrads(m, xv, rv));
      expect(onWasm.length).toBe(onCpu.length);
      // Against each array's own scale, as wasm.test.ts checks the other layers.
      onWasm.forEach((w, i) => expect(scaledErrorOf(w, onCpu[i])).toBeLessThan(1e-5));
      const opt = tf.train.adam(0.01);
      const xs = tf.tensor(xv, [2, 6, 6, 2]);
      const ys = tf.tensor(rv, [2, 2, 1, 4]);
      const step = () =>
        opt.minimize(() => tf.losses.meanSquaredError(ys, m.apply(xs) as tf.Tensor) as tf.Scalar, true);
      const first = step()!;
      const loss0 = first.dataSync()[0];
      first.dispose();
      await expectNoLeak(() => {
        for (let i = 0; i < 5; i++) step()!.dispose();
      });
      const last = step()!;
      expect(last.dataSync()[0]).toBeLessThan(loss0);
      tf.dispose([xs, ys, last]);
      opt.dispose();
      m.dispose();
    },
  );
});
