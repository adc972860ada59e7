// DecomposedSeparableConv2D: against tfjs's own SeparableConv2D given the effective kernels, its
// gradients against finite differences and autodiff, serialisation, decompose / fold / magnitudes,
// leaks and refusals, on the cpu backend and (last) on wasm with @normprune/runtime's training kernels.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '@normprune/runtime';
import {
  type ConvGranularity,
  DecomposedSeparableConv2D,
  decompose,
  decomposedSeparableConv2d,
  effectiveKernel,
  fold,
  isDecomposed,
  magnitudes,
  restoreConfigs,
} from '../src/index.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';
import {
  disposeWeights,
  expectTrainingLeavesNothing,
  gradientErrors,
  outputsAndGrads,
  randn,
  referenceKernel,
  scaledError,
  scaledErrorOf,
  useCpu,
  values,
} from './helpers.js';

beforeAll(useCpu);

interface Case {
  input: [number, number, number, number];
  filters: number;
  kernelSize: number | [number, number];
  depthMultiplier?: number;
  strides?: number | [number, number];
  padding?: 'same' | 'valid';
  activation?: string;
  useBias?: boolean;
  granularity: ConvGranularity;
}

const cases: Case[] = [
  { input: [2, 5, 5, 3], filters: 4, kernelSize: 3, granularity: 'kernel' },
  { input: [2, 5, 5, 3], filters: 4, kernelSize: 3, granularity: 'filter' },
  {
    input: [2, 5, 5, 3],
    filters: 2,
    kernelSize: 3,
    depthMultiplier: 2,
    strides: 2,
    padding: 'same',
    granularity: 'filter',
  },
  {
    input: [1, 4, 6, 2],
    filters: 5,
    kernelSize: [2, 3],
    depthMultiplier: 2,
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
  {
    input: [1, 5, 4, 2],
    filters: 3,
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

/** Both effective kernels by the documented formula, in float64 (helpers' referenceKernel), from the layer's weights. */
function referenceKernels(layer: DecomposedSeparableConv2D): tf.Tensor[] {
  return layer.parts().map((p) => {
    const v = p.direction.read();
    const k = referenceKernel(values(v), v.shape, p.normAxes, values(p.magnitude.read()), layer.epsilon);
    return tf.tensor(Array.from(k), v.shape);
  });
}

/** A plain SeparableConv2D holding the reference kernels of `layer` (computed in the test, not by effectiveKernels()). */
function plainTwin(layer: DecomposedSeparableConv2D, c: Case): tfl.layers.Layer {
  const { granularity: _g, ...args } = layerArgs(c);
  const plain = tfl.layers.separableConv2d(args);
  plain.build(c.input);
  const kernels = referenceKernels(layer);
  plain.setWeights(layer.bias ? [...kernels, layer.bias.read()] : kernels);
  tf.dispose(kernels);
  return plain;
}

/** stem Conv2D, SeparableConv2D (multiplier 2, stride 2), SeparableConv2D without bias. */
function separableNet(): tfl.LayersModel {
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
      tfl.layers.separableConv2d({
        filters: 4,
        kernelSize: 3,
        depthMultiplier: 2,
        strides: 2,
        padding: 'same',
        activation: 'relu',
        depthwiseInitializer: seeded(2),
        biasInitializer: tfl.initializers.randomNormal({ seed: 3 }),
        name: 'sep1',
      }),
      tfl.layers.separableConv2d({
        filters: 2,
        kernelSize: [2, 3],
        depthwiseInitializer: seeded(5),
        useBias: false,
        name: 'sep2',
      }),
    ],
  });
}

/** Sets every weight of `layer` to seeded values, magnitudes to positive ones. */
function randomise(layer: DecomposedSeparableConv2D, seed: number): void {
  tf.tidy(() => {
    for (const p of layer.parts()) {
      p.direction.write(randn(p.direction.shape as number[], seed++));
      p.magnitude.write(tf.abs(tf.mul(randn(p.magnitude.shape as number[], seed++), 2)));
    }
    layer.bias?.write(randn(layer.bias.shape as number[], seed));
  });
}

describe('DecomposedSeparableConv2D', () => {
  it.each(cases)('equals tf.layers.separableConv2d with the effective kernels: %j', (c) => {
    const layer = decomposedSeparableConv2d(layerArgs(c));
    const x = randn(c.input, 1);
    layer.apply(x);
    randomise(layer, 2);
    const y = layer.apply(x) as tf.Tensor;
    const plain = plainTwin(layer, c);
    const yPlain = plain.apply(x) as tf.Tensor;
    expect(y.shape).toEqual(yPlain.shape);
    expect(layer.computeOutputShape([null, ...c.input.slice(1)] as any)).toEqual(
      plain.computeOutputShape([null, ...c.input.slice(1)] as any),
    );
    expect(layer.computeOutputShape(c.input)).toEqual(yPlain.shape);
    expect(scaledError(y, yPlain)).toBeLessThan(1e-5);
    const kernels = layer.effectiveKernels();
    const reference = referenceKernels(layer);
    kernels.forEach((k, i) => expect(scaledError(k, reference[i])).toBeLessThan(1e-5));
    // Each magnitude is its group's norm in the effective kernel.
    layer.parts().forEach((p, i) => {
      const norms = tf.tidy(() => tf.sqrt(tf.sum(tf.square(kernels[i]), p.normAxes)));
      expect(scaledError(norms, p.magnitude.read())).toBeLessThan(1e-5);
      norms.dispose();
    });
    tf.dispose([x, y, yPlain, ...kernels, ...reference]);
    disposeWeights(layer);
    disposeWeights(plain);
  });

  it('weights are the depthwise pair, the pointwise pair and the bias, shaped as documented', () => {
    for (const granularity of ['kernel', 'filter'] as const) {
      const layer = decomposedSeparableConv2d({
        filters: 5,
        kernelSize: [3, 2],
        depthMultiplier: 3,
        granularity,
      });
      layer.build([null, 5, 5, 4]);
      expect(layer.weights.map((w) => w.originalName.split('/').pop())).toEqual([
        'depthwise_direction',
        'depthwise_magnitude',
        'pointwise_direction',
        'pointwise_magnitude',
        'bias',
      ]);
      const kernel = granularity === 'kernel';
      expect(layer.getWeights().map((w) => w.shape)).toEqual([
        [3, 2, 4, 3],
        kernel ? [4, 3] : [4],
        [1, 1, 12, 5],
        kernel ? [12, 5] : [5],
        [5],
      ]);
      expect(layer.depthwiseNormAxes).toEqual(kernel ? [0, 1] : [0, 1, 3]);
      expect(layer.pointwiseNormAxes).toEqual(kernel ? [0, 1] : [0, 1, 2]);
      expect(layer.parts().map((p) => p.name)).toEqual(['depthwise', 'pointwise']);
      expect(layer.depthMultiplier).toBe(3);
      expect(layer.filters).toBe(5);
      expect(isDecomposed(layer)).toBe(true);
      // A fresh layer applies its initial directions exactly.
      const kernels = layer.effectiveKernels();
      expect(scaledError(kernels[0], layer.depthwiseDirection!.read())).toBeLessThan(1e-5);
      expect(scaledError(kernels[1], layer.pointwiseDirection!.read())).toBeLessThan(1e-5);
      tf.dispose(kernels);
      expect(() => effectiveKernel(layer)).toThrow(
        /^effectiveKernel: layer '.*' is a DecomposedSeparableConv2D, which applies two kernels: layer\.effectiveKernels\(\) gives both, \[depthwise, pointwise\]$/,
      );
      disposeWeights(layer);
    }
  });

  it("setWeights takes the plain SeparableConv2D's [depthwise_kernel, pointwise_kernel, bias] and applies them", () => {
    for (const granularity of ['kernel', 'filter'] as const) {
      const args = { filters: 3, kernelSize: 2, depthMultiplier: 2, strides: 2 };
      const plain = tfl.layers.separableConv2d(args);
      const layer = decomposedSeparableConv2d({ ...args, granularity, name: 'sw' });
      const x = randn([1, 5, 5, 3], 7);
      plain.apply(x);
      layer.apply(x);
      tf.tidy(() => plain.setWeights([randn([2, 2, 3, 2], 8), randn([1, 1, 6, 3], 9), randn([3], 10)]));
      layer.setWeights(plain.getWeights());
      const [a, b] = [layer.apply(x), plain.apply(x)] as tf.Tensor[];
      expect(scaledError(a, b)).toBeLessThan(1e-5);
      // Its own five weights round-trip.
      const own = layer.getWeights().map((w) => w.clone());
      layer.setWeights(own);
      const c = layer.apply(x) as tf.Tensor;
      expect(scaledError(c, b)).toBeLessThan(1e-6);
      expect(() => layer.setWeights(plain.getWeights().slice(0, 2))).toThrow(
        /^DecomposedSeparableConv2D 'sw': weights must be the plain layer's \[depthwise_kernel, pointwise_kernel, bias\] \(\[2,2,3,2\], \[1,1,6,3\], \[3\]\) or this layer's \[depthwise_direction, depthwise_magnitude, pointwise_direction, pointwise_magnitude, bias\] \(.*\); got \[2,2,3,2\], \[1,1,6,3\]$/,
      );
      tf.dispose([x, a, b, c, ...own]);
      disposeWeights(layer);
      disposeWeights(plain);
    }
  });

  it.each(['kernel', 'filter'] as const)(
    'depthwise and pointwise constraints and regularizers act on the effective kernels, initializers on the directions (%s)',
    (granularity) => {
      const layer = decomposedSeparableConv2d({
        filters: 2,
        kernelSize: 2,
        depthMultiplier: 2,
        granularity,
        depthwiseInitializer: 'ones',
        // tfjs's own SeparableConv2D would initialise the pointwise kernel with 'ones' too.
        pointwiseInitializer: tfl.initializers.constant({ value: 2 }),
        depthwiseConstraint: 'nonNeg',
        pointwiseConstraint: 'nonNeg',
        depthwiseRegularizer: tfl.regularizers.l2({ l2: 0.5 }),
        pointwiseRegularizer: tfl.regularizers.l1({ l1: 0.25 }),
      });
      layer.build([null, 3, 3, 2]);
      expect(Array.from(values(layer.depthwiseDirection!.read())).every((v) => v === 1)).toBe(true);
      expect(Array.from(values(layer.pointwiseDirection!.read())).every((v) => v === 2)).toBe(true);
      const dk = randn([2, 2, 2, 2], 31);
      const pk = randn([1, 1, 4, 2], 32);
      layer.setWeights([dk, pk, tf.zeros([2])]);
      const [d, p] = layer.effectiveKernels();
      const [ed, ep] = [tf.relu(dk), tf.relu(pk)];
      expect(scaledError(d, ed)).toBeLessThan(1e-6);
      expect(scaledError(p, ep)).toBeLessThan(1e-6);
      // tfjs keeps a layer's regularizer losses as functions (RegularizerFn).
      const losses = layer.losses.map((l) => (l as unknown as () => tf.Scalar)());
      const expected = tf.tidy(() => [tf.mul(0.5, tf.sum(tf.square(ed))), tf.mul(0.25, tf.sum(tf.abs(ep)))]);
      expect(losses.length).toBe(2);
      losses.forEach((l, i) => expect(scaledError(l, expected[i])).toBeLessThan(1e-6));
      tf.dispose([dk, pk, d, p, ed, ep, ...losses, ...expected]);
      disposeWeights(layer);
    },
  );

  it('getConfig round-trips, with its depthMultiplier and pointwiseInitializer (which tfjs leaves out or overwrites)', () => {
    const layer = decomposedSeparableConv2d({
      filters: 6,
      kernelSize: [3, 1],
      depthMultiplier: 2,
      strides: [1, 2],
      padding: 'same',
      activation: 'relu',
      granularity: 'filter',
      epsilon: 1e-5,
      magnitudeInitializer: 'ones',
      pointwiseInitializer: 'zeros',
      depthwiseConstraint: 'maxNorm',
      pointwiseRegularizer: 'l1l2',
      name: 'sep_x',
    });
    const config = layer.getConfig();
    expect(config).toMatchObject({
      filters: 6,
      kernelSize: [3, 1],
      depthMultiplier: 2,
      strides: [1, 2],
      padding: 'same',
      dilationRate: [1, 1],
      granularity: 'filter',
      epsilon: 1e-5,
      name: 'sep_x',
      pointwiseInitializer: { className: 'Zeros' },
      depthwiseConstraint: { className: 'MaxNorm' },
      pointwiseRegularizer: { className: 'L1L2' },
      magnitudeInitializer: { className: 'Ones' },
    });
    const again = new DecomposedSeparableConv2D(JSON.parse(JSON.stringify(config)));
    expect(again.getConfig()).toEqual(config);
  });

  it.each([
    ['kernel', 1, 'valid', 2, 1],
    ['filter', 2, 'same', 2, 2],
    ['kernel', 2, 'same', 3, 2],
    ['filter', 1, 'valid', 3, 1],
  ] as const)(
    'gradients agree with central finite differences (%s, stride %d, %s, kernel %d, multiplier %d)',
    (granularity, strides, padding, kernelSize, depthMultiplier) => {
      const layer = decomposedSeparableConv2d({
        filters: 2,
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
      // At 'kernel' the 1x1 pointwise kernel has one-weight groups, whose direction gets no
      // gradient (g * eps^2 / |v|^3, about 0): the relative error of two zeros says nothing.
      if (granularity === 'kernel') errors.splice(2, 1);
      for (const error of errors) expect(error).toBeLessThan(1e-4);
      x.dispose();
      disposeWeights(layer);
    },
  );

  it.each(['kernel', 'filter'] as const)(
    'gradients with respect to every weight equal autodiff of the formula through tf.separableConv2d (%s)',
    (granularity) => {
      const layer = decomposedSeparableConv2d({
        filters: 3,
        kernelSize: [2, 3],
        depthMultiplier: 2,
        strides: 2,
        activation: 'relu',
        granularity,
      });
      const x = randn([2, 5, 6, 3], 11);
      layer.apply(x);
      randomise(layer, 12);
      const r = tf.tidy(() => randn((layer.apply(x) as tf.Tensor).shape, 13));
      const vars = layer.weights.map((w) => w.read() as tf.Variable);
      const kernelOf = (v: tf.Tensor, g: tf.Tensor, axes: number[]) => {
        const inv = tf.rsqrt(tf.add(tf.sum(tf.square(v), axes, true), layer.epsilon ** 2));
        const gb = tf.reshape(
          g,
          v.shape.map((d, a) => (axes.includes(a) ? 1 : d)),
        );
        return tf.mul(tf.mul(v, gb), inv) as tf.Tensor4D;
      };
      const reference = () => {
        const [dv, dg, pv, pg, bias] = vars;
        const y = tf.separableConv2d(
          x as tf.Tensor4D,
          kernelOf(dv, dg, layer.depthwiseNormAxes),
          kernelOf(pv, pg, layer.pointwiseNormAxes),
          2,
          'valid',
        );
        return tf.sum(tf.mul(tf.relu(tf.add(y, bias)), r)) as tf.Scalar;
      };
      const ours = tf.variableGrads(() => tf.sum(tf.mul(layer.apply(x) as tf.Tensor, r)) as tf.Scalar, vars);
      const theirs = tf.variableGrads(reference, vars);
      expect(scaledError(ours.value, theirs.value)).toBeLessThan(1e-5);
      for (const w of vars) {
        // At 'kernel' the 1x1 pointwise kernel has one-weight groups, whose direction gets a
        // gradient of about 0 (g * eps^2 / |v|^3): both sides' are rounding, 1e-5 of the
        // magnitude's gradient at most.
        if (granularity === 'kernel' && w === vars[2]) {
          const largest = (t: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(t)).dataSync()[0]);
          for (const grads of [ours.grads, theirs.grads])
            expect(largest(grads[w.name])).toBeLessThan(1e-5 * largest(grads[vars[3].name]));
        } else expect(scaledError(ours.grads[w.name], theirs.grads[w.name])).toBeLessThan(1e-5);
      }
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
    const layer = decomposedSeparableConv2d({
      filters: 3,
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
    const m = decompose(separableNet(), { granularity: { separableConv2d: 'filter' } });
    const xs = randn([2, 6, 6, 2], 62);
    const ys = randn([2, 2, 1, 2], 63);
    await expectTrainingLeavesNothing(m, xs, ys);
    tf.dispose([x, xs, ys]);
    m.dispose();
    disposeWeights(layer);
  });

  it('warns once about an all-zero kernel, naming the part and its initializer', () => {
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      const layer = decomposedSeparableConv2d({
        filters: 2,
        kernelSize: 2,
        pointwiseInitializer: 'zeros',
        name: 'zero_pw',
      });
      const x = randn([1, 3, 3, 2], 71);
      tf.dispose([layer.apply(x) as tf.Tensor, layer.apply(x) as tf.Tensor]);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(warn.mock.calls[0][0]).toMatch(
        /^DecomposedSeparableConv2D 'zero_pw': its pointwise direction and magnitude are all zero \(a zero pointwiseInitializer\?\), .* will never train its pointwise kernel .* keep a random pointwiseInitializer and give magnitudeInitializer: 'zeros'$/,
      );
      x.dispose();
      disposeWeights(layer);
    } finally {
      warn.mockRestore();
    }
  });

  it('refuses an unknown option, a kernel* option, channelsFirst, causal padding and a bad granularity, naming them', () => {
    expect(() =>
      decomposedSeparableConv2d({ filters: 2, kernelSize: 3, granularty: 'filter' } as never),
    ).toThrow(
      /^DecomposedSeparableConv2D: unknown option `granularty` \(did you mean `granularity`\?\); the options are `granularity`, `epsilon`, `magnitudeInitializer` and those of tf\.layers\.separableConv2d: .*`depthMultiplier`, .*`pointwiseInitializer`/,
    );
    expect(() =>
      decomposedSeparableConv2d({ filters: 2, kernelSize: 3, kernelInitializer: 'ones' } as never),
    ).toThrow(
      /^DecomposedSeparableConv2D: unknown option `kernelInitializer`; .* \(a SeparableConv2D has no kernelInitializer, kernelConstraint or kernelRegularizer: its two kernels take depthwise\* and pointwise\* ones\)$/,
    );
    expect(() => new DecomposedSeparableConv2D(undefined as never)).toThrow(
      'DecomposedSeparableConv2D: expected an options object, as tf.layers.separableConv2d takes ({ filters: 8, kernelSize: 3 }), got undefined',
    );
    expect(() =>
      decomposedSeparableConv2d({ filters: 2, kernelSize: 3, dataFormat: 'channelsFirst', name: 'sp' }),
    ).toThrow(
      "DecomposedSeparableConv2D supports dataFormat 'channelsLast' only, got 'channelsFirst' for layer 'sp'",
    );
    expect(() => decomposedSeparableConv2d({ filters: 2, kernelSize: 3, padding: 'causal' })).toThrow(
      // tfjs's SeparableConv2D refuses it itself.
      /padding/,
    );
    expect(() =>
      decomposedSeparableConv2d({ filters: 2, kernelSize: 3, granularity: 'output' as never }),
    ).toThrow(`DecomposedSeparableConv2D granularity must be one of 'kernel', 'filter', got "output"`);
    expect(() =>
      decomposedSeparableConv2d({ filters: 2, kernelSize: 3, pointwiseInitializer: 'nope' as never }),
    ).toThrow(/^DecomposedSeparableConv2D pointwiseInitializer must be an initializer/);
    const layer = decomposedSeparableConv2d({ filters: 2, kernelSize: 3, name: 'sp' });
    expect(() => layer.build([null, 5, 5, null])).toThrow(
      "DecomposedSeparableConv2D 'sp': the channel dimension of the input must be known",
    );
    const identity = decomposedSeparableConv2d({
      filters: 2,
      kernelSize: 3,
      granularity: 'filter',
      magnitudeInitializer: 'identity',
      name: 'id',
    });
    const before = tf.memory().numTensors;
    expect(() => identity.build([null, 5, 5, 2])).toThrow(
      /^DecomposedSeparableConv2D 'id': its magnitudeInitializer cannot initialise the depthwise_magnitude, of shape \[2\]/,
    );
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('DecomposedSeparableConv2D in models', () => {
  const x = () => randn([3, 6, 6, 2], 21);

  it.each(['kernel', 'filter'] as const)(
    'decompose() replaces SeparableConv2D layers and fold() gives them back, outputs kept (%s)',
    (separableConv2d) => {
      const plain = separableNet();
      const input = x();
      const d = decompose(plain, { granularity: { conv2d: 'filter', separableConv2d } });
      expect(d.layers.map((l) => l.getClassName())).toEqual([
        'DecomposedConv2D',
        'DecomposedSeparableConv2D',
        'DecomposedSeparableConv2D',
      ]);
      const sep1 = d.getLayer('sep1') as DecomposedSeparableConv2D;
      expect(sep1.granularity).toBe(separableConv2d);
      expect(sep1.depthMultiplier).toBe(2);
      const y0 = plain.predict(input) as tf.Tensor;
      const y1 = d.predict(input) as tf.Tensor;
      expect(scaledError(y1, y0)).toBeLessThan(1e-5);
      // Kill some groups of both kernels, as the proximal step does, then fold.
      for (const m of magnitudes(d).filter((i) => i.layerName.startsWith('sep1:')))
        tf.tidy(() =>
          m.magnitude.assign(
            tf.mul(
              m.magnitude,
              tf.cast(tf.greater(tf.randomUniform(m.magnitude.shape, 0, 1, 'float32', 5), 0.5), 'float32'),
            ),
          ),
        );
      const y2 = d.predict(input) as tf.Tensor;
      const f = fold(d);
      expect(f.layers.map((l) => l.getClassName())).toEqual(['Conv2D', 'SeparableConv2D', 'SeparableConv2D']);
      expect((f.getLayer('sep1') as unknown as { depthMultiplier: number }).depthMultiplier).toBe(2);
      for (const name of ['sep1', 'sep2'])
        expect(f.getLayer(name).getConfig()).toEqual(plain.getLayer(name).getConfig());
      const y3 = f.predict(input) as tf.Tensor;
      expect(scaledError(y3, y2)).toBeLessThan(1e-5);
      // Folding the unchanged model gives the plain model's outputs back.
      const f0 = fold(decompose(plain, { granularity: { separableConv2d } }));
      const y4 = f0.predict(input) as tf.Tensor;
      expect(scaledError(y4, y0)).toBeLessThan(1e-5);
      tf.dispose([input, y0, y1, y2, y3, y4]);
      for (const m of [plain, d, f, f0]) m.dispose();
    },
  );

  it('include selects SeparableConv2D layers by name, and leaves the others plain', () => {
    const plain = separableNet();
    const d = decompose(plain, { include: ['sep2'] });
    expect(d.layers.map((l) => l.getClassName())).toEqual([
      'Conv2D',
      'SeparableConv2D',
      'DecomposedSeparableConv2D',
    ]);
    const kept = decompose(plain, { include: (l) => l.getClassName() !== 'SeparableConv2D' });
    expect(kept.layers.map((l) => l.getClassName())).toEqual([
      'DecomposedConv2D',
      'SeparableConv2D',
      'SeparableConv2D',
    ]);
    for (const m of [plain, d, kept]) m.dispose();
  });

  it('magnitudes() lists both of its magnitudes: groups, params and MACs per group (output positions)', () => {
    const plain = separableNet();
    for (const separableConv2d of ['kernel', 'filter'] as const) {
      const d = decompose(plain, { granularity: { separableConv2d } });
      const info = magnitudes(d)
        .filter((m) => m.layerName.startsWith('sep'))
        .map(({ layer, layerName, part, granularity, groups, paramsPerGroup, macsPerGroup, normAxes }) => ({
          layer: layer.name,
          layerName,
          part,
          granularity,
          groups,
          paramsPerGroup,
          macsPerGroup,
          normAxes,
        }));
      const kernel = separableConv2d === 'kernel';
      // One entry per part: its groups, and the weights per group (MACs: times the output positions).
      const entry = (
        layer: string,
        part: string,
        groups: number,
        paramsPerGroup: number,
        positions: number,
      ) => ({
        layer,
        layerName: `${layer}:${part}`,
        part,
        granularity: separableConv2d,
        groups,
        paramsPerGroup,
        macsPerGroup: paramsPerGroup * positions,
        normAxes: kernel ? [0, 1] : part === 'depthwise' ? [0, 1, 3] : [0, 1, 2],
      });
      expect(info).toEqual([
        // sep1: 3 input channels, multiplier 2, 4 filters, kernel 3 x 3; output 3 x 3.
        entry('sep1', 'depthwise', kernel ? 6 : 3, kernel ? 9 : 18, 9),
        entry('sep1', 'pointwise', kernel ? 24 : 4, kernel ? 1 : 6, 9),
        // sep2: 4 input channels, multiplier 1, 2 filters, kernel 2 x 3; output 2 x 1.
        entry('sep2', 'depthwise', 4, 6, 2),
        entry('sep2', 'pointwise', kernel ? 8 : 2, kernel ? 1 : 4, 2),
      ]);
      d.dispose();
    }
    plain.dispose();
  });

  it('decompose refuses a channelsFirst SeparableConv2D, checks granularity.separableConv2d, and warns about a dilated one', () => {
    const cf = tfl.sequential({
      layers: [
        tfl.layers.separableConv2d({
          inputShape: [2, 3, 3],
          filters: 2,
          kernelSize: 2,
          dataFormat: 'channelsFirst',
          name: 'cf_sep',
        }),
      ],
    });
    expect(() => decompose(cf)).toThrow(
      /^decompose: SeparableConv2D layer 'cf_sep' uses dataFormat 'channelsFirst'; only 'channelsLast' is supported\..*layer\.name !== 'cf_sep'/,
    );
    expect(() => decompose(cf, { granularity: { separableConv2d: 'input' as never } })).toThrow(
      `decompose: granularity.separableConv2d must be one of 'kernel', 'filter', got "input"`,
    );
    expect(() => decompose(cf, { granularity: { separableConv2D: 'kernel' } as never })).toThrow(
      /decompose: granularity: unknown option `separableConv2D` \(did you mean `separableConv2d`\?\)/,
    );
    // tfjs computes a dilated SeparableConv2D (tf.depthwiseConv2d takes dilations), but cannot train it.
    const dilated = tfl.sequential({
      layers: [
        tfl.layers.separableConv2d({
          inputShape: [7, 7, 2],
          filters: 2,
          kernelSize: 2,
          dilationRate: 2,
          name: 'dil',
        }),
      ],
    });
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => {});
    let d: tfl.LayersModel;
    try {
      d = decompose(dilated);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(warn.mock.calls[0][0]).toMatch(
        /^decompose: 'dil' \(DecomposedSeparableConv2D, dilationRate \[2,2\]\) cannot be trained: tfjs 4\.22 has no gradient/,
      );
    } finally {
      warn.mockRestore();
    }
    const input = randn([2, 7, 7, 2], 3);
    const [a, b] = [dilated.predict(input), d.predict(input)] as tf.Tensor[];
    expect(scaledError(b, a)).toBeLessThan(1e-5);
    tf.dispose([input, a, b]);
    for (const m of [cf, dilated, d]) m.dispose();
  });

  it('serialises: toJSON / modelFromJSON and save / load through tf.io keep the outputs', async () => {
    const d = decompose(separableNet(), { granularity: { separableConv2d: 'filter' } });
    const input = x();
    const y = d.predict(input) as tf.Tensor;
    const fromJson = await tfl.models.modelFromJSON({
      modelTopology: JSON.parse(d.toJSON() as string),
    });
    fromJson.setWeights(d.getWeights());
    expect(fromJson.getLayer('sep1')).toBeInstanceOf(DecomposedSeparableConv2D);
    const y1 = fromJson.predict(input) as tf.Tensor;
    expect(scaledError(y1, y)).toBeLessThan(1e-6);
    let artifacts: tf.io.ModelArtifacts | undefined;
    await d.save(tf.io.withSaveHandler(async (a) => ((artifacts = a), { modelArtifactsInfo: {} as any })));
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts!));
    expect(loaded.layers.map((l) => l.getClassName())).toEqual([
      'DecomposedConv2D',
      'DecomposedSeparableConv2D',
      'DecomposedSeparableConv2D',
    ]);
    expect((loaded.getLayer('sep1') as DecomposedSeparableConv2D).depthMultiplier).toBe(2);
    expect((loaded.getLayer('sep1') as DecomposedSeparableConv2D).granularity).toBe('filter');
    const y2 = loaded.predict(input) as tf.Tensor;
    expect(scaledError(y2, y)).toBeLessThan(1e-6);
    // The folded model loads in plain tfjs once its topology states the depthMultiplier, which
    // tfjs 4.22's save leaves out (its loader then takes 1: a defect of tfjs's plain
    // SeparableConv2D, which restoreConfigs, and so surgery's exportModel, makes up for).
    const f = fold(d);
    let plainArtifacts: tf.io.ModelArtifacts | undefined;
    await f.save(
      tf.io.withSaveHandler(async (a) => ((plainArtifacts = a), { modelArtifactsInfo: {} as any })),
    );
    await expect(tfl.loadLayersModel(tf.io.fromMemory(plainArtifacts!))).rejects.toThrow(
      'Shape mismatch: [3,3,3,1] vs. [3,3,3,2]',
    );
    const topology = plainArtifacts!.modelTopology as { config: { layers: unknown[] } };
    restoreConfigs(topology.config, f, 'snake');
    const plainLoaded = await tfl.loadLayersModel(tf.io.fromMemory(plainArtifacts!));
    const y3 = plainLoaded.predict(input) as tf.Tensor;
    expect(scaledError(y3, y)).toBeLessThan(1e-5);
    tf.dispose([input, y, y1, y2, y3]);
    for (const m of [d, fromJson, loaded, f, plainLoaded]) m.dispose();
  });
});

describe('DecomposedSeparableConv2D on the wasm backend', () => {
  beforeAll(async () => {
    const info = await initBackend({ prefer: 'wasm', quiet: true });
    expect(info.backend).toBe('wasm');
  });
  afterAll(useCpu);

  it.each(['kernel', 'filter'] as const)(
    'outputs and gradients equal the cpu backend, and training leaves no tensor behind (%s)',
    async (separableConv2d) => {
      await tf.setBackend('cpu');
      const m = decompose(separableNet(), { granularity: { conv2d: 'filter', separableConv2d } });
      const xv = tf.tidy(() => randn([2, 6, 6, 2], 5).dataSync() as Float32Array);
      const rv = tf.tidy(() => randn([2, 2, 1, 2], 6).dataSync() as Float32Array);
      const [x, r] = [
        { values: xv, shape: [2, 6, 6, 2] },
        { values: rv, shape: [2, 2, 1, 2] },
      ];
      const onCpu = outputsAndGrads(m, x, r);
      await tf.setBackend('wasm');
      const onWasm = await expectNoLeak(() => outputsAndGrads(m, x, r));
      expect(onWasm.length).toBe(onCpu.length);
      // Against each array's own scale, as wasm.test.ts checks the other layers; but a 'kernel'
      // pointwise direction has one-weight groups, whose gradient is rounding about 0 on both
      // backends: those are checked to be that.
      onWasm.forEach((w, i) => {
        const oneWeightGroups =
          separableConv2d === 'kernel' &&
          m.trainableWeights[i - 1]?.originalName.endsWith('pointwise_direction');
        if (oneWeightGroups)
          for (const a of [w, onCpu[i]])
            expect(a.reduce((p, v) => Math.max(p, Math.abs(v)), 0)).toBeLessThan(1e-6);
        else expect(scaledErrorOf(w, onCpu[i])).toBeLessThan(1e-5);
      });
      const xs = tf.tensor(xv, [2, 6, 6, 2]);
      const ys = tf.tensor(rv, [2, 2, 1, 2]);
      const loss = () =>
        tf.tidy(() => tf.losses.meanSquaredError(ys, m.apply(xs) as tf.Tensor).dataSync()[0]);
      const loss0 = loss();
      await expectTrainingLeavesNothing(m, xs, ys);
      expect(loss()).toBeLessThan(loss0);
      tf.dispose([xs, ys]);
      m.dispose();
    },
  );
});
