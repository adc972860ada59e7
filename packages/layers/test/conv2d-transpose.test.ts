// DecomposedConv2DTranspose: against tfjs's own Conv2DTranspose given the effective kernel, its
// gradients against finite differences, serialisation, decompose / fold / magnitudes, leaks and
// refusals, on the cpu backend and (last) on wasm with @normprune/runtime's training kernels.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '@normprune/runtime';
import {
  type ConvGranularity,
  DecomposedConv2DTranspose,
  decompose,
  decomposedConv2dTranspose,
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
  filters: number;
  kernelSize: number | [number, number];
  strides?: number | [number, number];
  padding?: 'same' | 'valid';
  activation?: string;
  useBias?: boolean;
  granularity: ConvGranularity;
}

const cases: Case[] = [
  { input: [2, 5, 5, 3], filters: 4, kernelSize: 3, granularity: 'kernel' },
  { input: [2, 5, 5, 3], filters: 4, kernelSize: 3, strides: 2, padding: 'same', granularity: 'filter' },
  {
    input: [1, 4, 6, 2],
    filters: 3,
    kernelSize: [2, 3],
    strides: 2,
    granularity: 'kernel',
    activation: 'relu',
  },
  {
    input: [1, 4, 6, 2],
    filters: 3,
    kernelSize: [2, 3],
    strides: [2, 1],
    padding: 'same',
    granularity: 'filter',
    activation: 'tanh',
    useBias: false,
  },
  { input: [2, 3, 3, 4], filters: 2, kernelSize: 1, granularity: 'kernel', useBias: false },
  { input: [2, 3, 3, 4], filters: 2, kernelSize: 1, strides: 2, padding: 'valid', granularity: 'filter' },
  // A kernel smaller than the stride: 'valid' adds nothing past input * stride.
  { input: [1, 3, 2, 2], filters: 2, kernelSize: [1, 3], strides: [3, 2], granularity: 'kernel' },
];

const layerArgs = ({ input: _input, activation, ...rest }: Case) => ({
  ...rest,
  activation: activation as any,
});

/**
 * A plain Conv2DTranspose whose kernel is the documented formula applied to the decomposed
 * layer's direction and magnitude (in the test, not by effectiveKernel()).
 */
function plainTwin(layer: DecomposedConv2DTranspose, c: Case): tfl.layers.Layer {
  const { granularity: _g, ...args } = layerArgs(c);
  const plain = tfl.layers.conv2dTranspose(args);
  plain.build(c.input);
  const kernel = referenceKernelOf(layer);
  plain.setWeights(layer.bias ? [kernel, layer.bias.read()] : [kernel]);
  kernel.dispose();
  return plain;
}

/** A decoder: Conv2D, then two Conv2DTranspose layers (stride 2 'same', stride 1 'valid'). */
function decoder(): tfl.LayersModel {
  const seeded = (seed: number) => tfl.initializers.glorotNormal({ seed });
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        inputShape: [4, 4, 2],
        filters: 3,
        kernelSize: 3,
        padding: 'same',
        activation: 'relu',
        kernelInitializer: seeded(1),
        name: 'enc',
      }),
      tfl.layers.conv2dTranspose({
        filters: 4,
        kernelSize: 3,
        strides: 2,
        padding: 'same',
        activation: 'relu',
        kernelInitializer: seeded(2),
        biasInitializer: tfl.initializers.randomNormal({ seed: 3 }),
        name: 'up1',
      }),
      tfl.layers.conv2dTranspose({
        filters: 2,
        kernelSize: [2, 3],
        kernelInitializer: seeded(4),
        name: 'up2',
      }),
    ],
  });
}

describe('DecomposedConv2DTranspose', () => {
  it.each(cases)('equals tf.layers.conv2dTranspose with the effective kernel: %j', (c) => {
    const layer = decomposedConv2dTranspose(layerArgs(c));
    const x = randn(c.input, 1);
    layer.apply(x);
    tf.tidy(() => {
      layer.magnitude!.write(tf.abs(tf.mul(randn(layer.magnitude!.shape as number[], 2), 2)));
    });
    if (layer.bias)
      tf.tidy(() => {
        layer.bias!.write(randn([c.filters], 3));
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

  it('weights are direction [kh, kw, filters, inChannels], magnitude ([filters, inChannels] or [filters]), bias', () => {
    for (const granularity of ['kernel', 'filter'] as const) {
      const layer = decomposedConv2dTranspose({ filters: 6, kernelSize: [3, 2], granularity });
      layer.build([null, 5, 5, 4]);
      const [direction, magnitude, bias] = layer.getWeights();
      expect(layer.weights.map((w) => w.originalName.split('/').pop())).toEqual([
        'direction',
        'magnitude',
        'bias',
      ]);
      expect(direction.shape).toEqual([3, 2, 6, 4]);
      expect(magnitude.shape).toEqual(granularity === 'kernel' ? [6, 4] : [6]);
      expect(bias.shape).toEqual([6]);
      expect(layer.normAxes).toEqual(granularity === 'kernel' ? [0, 1] : [0, 1, 3]);
      expect(layer.transposed).toBe(true);
      expect(isDecomposed(layer)).toBe(true);
      // A fresh layer applies its initial direction exactly.
      const k = layer.effectiveKernel();
      expect(scaledError(k, direction)).toBeLessThan(1e-5);
      k.dispose();
      disposeWeights(layer);
    }
  });

  it("setWeights takes the plain Conv2DTranspose's [kernel, bias] and applies that kernel", () => {
    for (const granularity of ['kernel', 'filter'] as const) {
      const plain = tfl.layers.conv2dTranspose({ filters: 3, kernelSize: 2, strides: 2 });
      const layer = decomposedConv2dTranspose({ filters: 3, kernelSize: 2, strides: 2, granularity });
      const x = randn([1, 3, 3, 2], 7);
      plain.apply(x);
      layer.apply(x);
      tf.tidy(() => plain.setWeights([randn([2, 2, 3, 2], 8), randn([3], 9)]));
      layer.setWeights(plain.getWeights());
      const [a, b] = [layer.apply(x), plain.apply(x)] as tf.Tensor[];
      expect(scaledError(a, b)).toBeLessThan(1e-5);
      tf.dispose([x, a, b]);
      disposeWeights(layer);
      disposeWeights(plain);
    }
  });

  it.each(['kernel', 'filter'] as const)(
    'the kernel constraint and regularizer act on the effective kernel, as on the plain layer (%s)',
    (granularity) => {
      const layer = decomposedConv2dTranspose({
        filters: 3,
        kernelSize: 2,
        strides: 2,
        granularity,
        kernelConstraint: 'nonNeg',
        kernelRegularizer: tfl.regularizers.l2({ l2: 0.5 }),
      });
      layer.build([null, 3, 3, 2]);
      const kernel = randn([2, 2, 3, 2], 31);
      layer.setWeights([kernel, tf.zeros([3])]);
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

  it('getConfig round-trips, without a dilationRate (as Conv2DTranspose leaves it out)', () => {
    const layer = decomposedConv2dTranspose({
      filters: 3,
      kernelSize: [3, 1],
      strides: [1, 2],
      padding: 'same',
      activation: 'relu',
      granularity: 'filter',
      epsilon: 1e-5,
      name: 'up_x',
    });
    const config = layer.getConfig();
    expect(config).toMatchObject({
      filters: 3,
      kernelSize: [3, 1],
      strides: [1, 2],
      padding: 'same',
      granularity: 'filter',
      epsilon: 1e-5,
      name: 'up_x',
    });
    expect(config).not.toHaveProperty('dilationRate');
    const again = new DecomposedConv2DTranspose(JSON.parse(JSON.stringify(config)));
    expect(again.getConfig()).toEqual(config);
  });

  it.each([
    ['kernel', 1, 'valid', 2],
    ['filter', 2, 'same', 2],
    ['kernel', 2, 'same', 3],
    ['filter', 1, 'valid', 3],
    ['kernel', 2, 'valid', 1],
    ['filter', 2, 'valid', 1],
  ] as const)(
    'gradients agree with central finite differences (%s, stride %d, %s, kernel %d)',
    (granularity, strides, padding, kernelSize) => {
      const layer = decomposedConv2dTranspose({
        filters: 2,
        kernelSize,
        strides,
        padding,
        activation: 'tanh',
        granularity,
      });
      const x = randn([2, 3, 3, 2], 41);
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
      const layer = decomposedConv2dTranspose({ filters: 3, kernelSize: [2, 3], strides: 2, granularity });
      const x = randn([2, 3, 4, 2], 11);
      layer.apply(x);
      const v = layer.direction!.read() as tf.Variable;
      const g = layer.magnitude!.read() as tf.Variable;
      tf.tidy(() => g.assign(tf.abs(randn(g.shape, 12))));
      const r = tf.tidy(() => randn((layer.apply(x) as tf.Tensor).shape, 13));
      const axes = layer.normAxes;
      const reference = () => {
        const inv = tf.rsqrt(tf.add(tf.sum(tf.square(v), axes, true), layer.epsilon ** 2));
        const gb = tf.reshape(
          g,
          v.shape.map((d, a) => (axes.includes(a) ? 1 : d)),
        );
        const kernel = tf.mul(tf.mul(v, gb), inv) as tf.Tensor4D;
        const [n, h, w] = x.shape;
        const y = tf.conv2dTranspose(x as tf.Tensor4D, kernel, [n, h * 2, w * 2 + 1, 3], 2, 'valid');
        return tf.sum(tf.mul(tf.add(y, layer.bias!.read()), r)) as tf.Scalar;
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
    const layer = decomposedConv2dTranspose({ filters: 2, kernelSize: 3, strides: 2, padding: 'same' });
    const x = randn([1, 3, 3, 2], 61);
    layer.apply(x);
    await expectNoLeak(() => {
      for (let i = 0; i < 5; i++) (layer.apply(x) as tf.Tensor).dispose();
    });
    const m = decompose(decoder(), { granularity: { conv2dTranspose: 'filter' } });
    const opt = tf.train.adam(0.01);
    const xs = randn([2, 4, 4, 2], 62);
    const ys = randn([2, 9, 10, 2], 63);
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

  it('refuses an unknown option, dilationRate 2, channelsFirst, causal padding and a bad granularity, naming them', () => {
    expect(() =>
      decomposedConv2dTranspose({ filters: 2, kernelSize: 3, granularty: 'filter' } as never),
    ).toThrow(
      /^DecomposedConv2DTranspose: unknown option `granularty` \(did you mean `granularity`\?\); the options are `granularity`, `epsilon`, `magnitudeInitializer` and those of tf\.layers\.conv2dTranspose: /,
    );
    expect(() => new DecomposedConv2DTranspose({ filters: 2, kernelSize: 3, units: 4 } as never)).toThrow(
      /^DecomposedConv2DTranspose: unknown option `units`; the options are/,
    );
    expect(() => new DecomposedConv2DTranspose(null as never)).toThrow(
      'DecomposedConv2DTranspose: expected an options object, as tf.layers.conv2dTranspose takes ({ filters: 8, kernelSize: 3 }), got null',
    );
    expect(() =>
      decomposedConv2dTranspose({ filters: 2, kernelSize: 3, dilationRate: 2, name: 'up' }),
    ).toThrow(
      /^DecomposedConv2DTranspose supports dilationRate 1 only \(tfjs's Conv2DTranspose ignores any other\), got 2 for layer 'up'$/,
    );
    expect(() => decomposedConv2dTranspose({ filters: 2, kernelSize: 3, dilationRate: [1, 2] })).toThrow(
      /dilationRate 1 only.*got \[1,2\]$/,
    );
    expect(() =>
      decomposedConv2dTranspose({ filters: 2, kernelSize: 3, dataFormat: 'channelsFirst', name: 'up' }),
    ).toThrow(
      "DecomposedConv2DTranspose supports dataFormat 'channelsLast' only, got 'channelsFirst' for layer 'up'",
    );
    // tfjs's own refusal, as for the plain layer.
    expect(() => decomposedConv2dTranspose({ filters: 2, kernelSize: 3, padding: 'causal' })).toThrow(
      /Conv2DTranspose currently supports only padding modes 'same' and 'valid'/,
    );
    expect(() =>
      decomposedConv2dTranspose({ filters: 2, kernelSize: 3, granularity: 'output' as never }),
    ).toThrow(`DecomposedConv2DTranspose granularity must be one of 'kernel', 'filter', got "output"`);
  });
});

describe('DecomposedConv2DTranspose in models', () => {
  const x = () => randn([3, 4, 4, 2], 21);

  it.each(['kernel', 'filter'] as const)(
    'decompose() replaces Conv2DTranspose layers and fold() gives them back, outputs kept (%s)',
    (conv2dTranspose) => {
      const plain = decoder();
      const input = x();
      const d = decompose(plain, { granularity: { conv2d: 'filter', conv2dTranspose } });
      expect(d.layers.map((l) => l.getClassName())).toEqual([
        'DecomposedConv2D',
        'DecomposedConv2DTranspose',
        'DecomposedConv2DTranspose',
      ]);
      expect((d.getLayer('up1') as DecomposedConv2DTranspose).granularity).toBe(conv2dTranspose);
      const y0 = plain.predict(input) as tf.Tensor;
      const y1 = d.predict(input) as tf.Tensor;
      expect(scaledError(y1, y0)).toBeLessThan(1e-5);
      // Kill some groups, as the proximal step does, then fold.
      const up1 = magnitudes(d).find((m) => m.layerName === 'up1')!;
      tf.tidy(() =>
        up1.magnitude.assign(
          tf.mul(
            up1.magnitude,
            tf.cast(tf.greater(tf.randomUniform(up1.magnitude.shape, 0, 1, 'float32', 5), 0.5), 'float32'),
          ),
        ),
      );
      const y2 = d.predict(input) as tf.Tensor;
      const f = fold(d);
      expect(f.layers.map((l) => l.getClassName())).toEqual(['Conv2D', 'Conv2DTranspose', 'Conv2DTranspose']);
      expect(f.getLayer('up1').getConfig()).toEqual(plain.getLayer('up1').getConfig());
      const y3 = f.predict(input) as tf.Tensor;
      expect(scaledError(y3, y2)).toBeLessThan(1e-5);
      // Folding the unchanged model gives the plain model's outputs back.
      const f0 = fold(decompose(plain, { granularity: { conv2dTranspose } }));
      const y4 = f0.predict(input) as tf.Tensor;
      expect(scaledError(y4, y0)).toBeLessThan(1e-5);
      tf.dispose([input, y0, y1, y2, y3, y4]);
      for (const m of [plain, d, f, f0]) m.dispose();
    },
  );

  it('include selects Conv2DTranspose layers by name', () => {
    const plain = decoder();
    const d = decompose(plain, { include: ['up2'] });
    expect(d.layers.map((l) => l.getClassName())).toEqual([
      'Conv2D',
      'Conv2DTranspose',
      'DecomposedConv2DTranspose',
    ]);
    plain.dispose();
    d.dispose();
  });

  it('magnitudes() lists it: groups, params and MACs per group (input positions, as surgery counts them)', () => {
    const plain = decoder();
    for (const conv2dTranspose of ['kernel', 'filter'] as const) {
      const d = decompose(plain, { granularity: { conv2dTranspose } });
      const info = magnitudes(d).map(
        ({ layerName, granularity, groups, paramsPerGroup, macsPerGroup, normAxes }) => ({
          layerName,
          granularity,
          groups,
          paramsPerGroup,
          macsPerGroup,
          normAxes,
        }),
      );
      const kernel = conv2dTranspose === 'kernel';
      expect(info).toEqual([
        {
          layerName: 'enc',
          granularity: 'kernel',
          groups: 6,
          paramsPerGroup: 9,
          macsPerGroup: 9 * 16,
          normAxes: [0, 1],
        },
        {
          layerName: 'up1',
          granularity: conv2dTranspose,
          groups: kernel ? 12 : 4,
          paramsPerGroup: kernel ? 9 : 27,
          // Input 4 x 4 (output 8 x 8).
          macsPerGroup: (kernel ? 9 : 27) * 16,
          normAxes: kernel ? [0, 1] : [0, 1, 3],
        },
        {
          layerName: 'up2',
          granularity: conv2dTranspose,
          groups: kernel ? 8 : 2,
          paramsPerGroup: kernel ? 6 : 24,
          macsPerGroup: (kernel ? 6 : 24) * 64,
          normAxes: kernel ? [0, 1] : [0, 1, 3],
        },
      ]);
      d.dispose();
    }
    plain.dispose();
  });

  it('decompose refuses a channelsFirst Conv2DTranspose, and checks granularity.conv2dTranspose', () => {
    const cf = tfl.sequential({
      layers: [
        tfl.layers.conv2dTranspose({
          inputShape: [2, 3, 3],
          filters: 2,
          kernelSize: 2,
          dataFormat: 'channelsFirst',
          name: 'cf_up',
        }),
      ],
    });
    expect(() => decompose(cf)).toThrow(
      /^decompose: Conv2DTranspose layer 'cf_up' uses dataFormat 'channelsFirst'; only 'channelsLast' is supported\..*layer\.name !== 'cf_up'/,
    );
    expect(() => decompose(cf, { granularity: { conv2dTranspose: 'input' as never } })).toThrow(
      `decompose: granularity.conv2dTranspose must be one of 'kernel', 'filter', got "input"`,
    );
    expect(() => decompose(cf, { granularity: { conv2DTranspose: 'kernel' } as never })).toThrow(
      /decompose: granularity: unknown option `conv2DTranspose` \(did you mean `conv2dTranspose`\?\); the options are `dense`, `conv1d`, `conv2d`, `conv2dTranspose`/,
    );
    cf.dispose();
  });

  it('serialises: toJSON / modelFromJSON and save / load through tf.io keep the outputs', async () => {
    const d = decompose(decoder(), { granularity: { conv2dTranspose: 'filter' } });
    const input = x();
    const y = d.predict(input) as tf.Tensor;
    const fromJson = await tfl.models.modelFromJSON({
      modelTopology: JSON.parse(d.toJSON() as string),
    });
    fromJson.setWeights(d.getWeights());
    expect(fromJson.getLayer('up1')).toBeInstanceOf(DecomposedConv2DTranspose);
    const y1 = fromJson.predict(input) as tf.Tensor;
    expect(scaledError(y1, y)).toBeLessThan(1e-6);
    let artifacts: tf.io.ModelArtifacts | undefined;
    await d.save(tf.io.withSaveHandler(async (a) => ((artifacts = a), { modelArtifactsInfo: {} as any })));
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts!));
    expect(loaded.layers.map((l) => l.getClassName())).toEqual([
      'DecomposedConv2D',
      'DecomposedConv2DTranspose',
      'DecomposedConv2DTranspose',
    ]);
    const y2 = loaded.predict(input) as tf.Tensor;
    expect(scaledError(y2, y)).toBeLessThan(1e-6);
    tf.dispose([input, y, y1, y2]);
    for (const m of [d, fromJson, loaded]) m.dispose();
  });
});

describe('DecomposedConv2DTranspose on the wasm backend', () => {
  beforeAll(async () => {
    const info = await initBackend({ prefer: 'wasm', quiet: true });
    expect(info.backend).toBe('wasm');
  });
  afterAll(useCpu);

  /** Output and the gradients of a fixed loss with respect to every weight, as arrays. */
  function outputsAndGrads(m: tfl.LayersModel, xv: Float32Array, rv: Float32Array): Float32Array[] {
    return tf.tidy(() => {
      const input = tf.tensor(xv, [2, 4, 4, 2]);
      const r = tf.tensor(rv, [2, 9, 10, 2]);
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
    async (conv2dTranspose) => {
      await tf.setBackend('cpu');
      const m = decompose(decoder(), { granularity: { conv2dTranspose } });
      const xv = tf.tidy(() => randn([2, 4, 4, 2], 5).dataSync() as Float32Array);
      const rv = tf.tidy(() => randn([2, 9, 10, 2], 6).dataSync() as Float32Array);
      const onCpu = outputsAndGrads(m, xv, rv);
      await tf.setBackend('wasm');
      const onWasm = await expectNoLeak(() => outputsAndGrads(m, xv, rv));
      expect(onWasm.length).toBe(onCpu.length);
      // Against each array's own scale, as wasm.test.ts checks the other layers.
      onWasm.forEach((w, i) => expect(scaledErrorOf(w, onCpu[i])).toBeLessThan(1e-5));
      const opt = tf.train.adam(0.01);
      const xs = tf.tensor(xv, [2, 4, 4, 2]);
      const ys = tf.tensor(rv, [2, 9, 10, 2]);
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
