// Every option of tf.layers.dense / tf.layers.conv2d, through decompose(), fold(),
// serialisation and training, against the plain tfjs layer as the reference.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  type DecomposedConv2D,
  type DecomposedDense,
  decompose,
  decomposedConv2d,
  decomposedDense,
  effectiveKernel,
  fold,
} from '../src/index.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';
import { randn, scaledError, useCpu } from './helpers.js';
import { saveInMemory } from '../../../tools/testing/memory-io.js';

beforeAll(useCpu);

type Decomposed = DecomposedDense | DecomposedConv2D;
type Options = Record<string, unknown>;

const seeded = (seed: number) => tfl.initializers.glorotNormal({ seed });
// A bias far from zero, so that a lost bias, or a bias constraint applied on copy, shows.
const biasInit = () => tfl.initializers.randomNormal({ mean: -0.2, stddev: 0.5, seed: 5 });

// Every activation tfjs-layers has; gelu and gelu_new came in tfjs 4.19, so
// the suite runs against older versions (scripts/tfjs-versions.mjs) without them.
const GELU_SINCE = 19;
const ALL_ACTIVATIONS = [
  'elu',
  'hardSigmoid',
  'linear',
  'relu',
  'relu6',
  'selu',
  'sigmoid',
  'softmax',
  'softplus',
  'softsign',
  'tanh',
  'swish',
  'mish',
  'gelu',
  'gelu_new',
] as const;
const tfjsMinor = Number(tfl.version_layers.split('.')[1]);
const ACTIVATIONS = ALL_ACTIVATIONS.filter((a) => !a.startsWith('gelu') || tfjsMinor >= GELU_SINCE);

// Small limits, so that the glorot kernels (and the random biases) violate every constraint.
const CONSTRAINTS: [string, () => Options][] = [
  ['maxNorm', () => ({ kernelConstraint: tfl.constraints.maxNorm({ maxValue: 0.3 }) })],
  ['maxNorm axis 1', () => ({ kernelConstraint: tfl.constraints.maxNorm({ maxValue: 0.3, axis: 1 }) })],
  ['unitNorm', () => ({ kernelConstraint: tfl.constraints.unitNorm({}) })],
  ['nonNeg', () => ({ kernelConstraint: tfl.constraints.nonNeg() })],
  [
    'minMaxNorm',
    () => ({ kernelConstraint: tfl.constraints.minMaxNorm({ minValue: 0.5, maxValue: 0.6, rate: 0.7 }) }),
  ],
  ['biasConstraint nonNeg', () => ({ biasConstraint: tfl.constraints.nonNeg() })],
];

const DENSE_CASES: [string, () => Options, number[]][] = [
  ['defaults', () => ({}), [6]],
  ['useBias false', () => ({ useBias: false }), [6]],
  ...ACTIVATIONS.map((a): [string, () => Options, number[]] => [
    `activation ${a}`,
    () => ({ activation: a }),
    [6],
  ]),
  [
    'kernelRegularizer, biasRegularizer',
    () => ({
      kernelRegularizer: tfl.regularizers.l1l2({ l1: 0.01, l2: 0.1 }),
      biasRegularizer: tfl.regularizers.l2({ l2: 0.3 }),
    }),
    [6],
  ],
  ...CONSTRAINTS.map(([n, o]): [string, () => Options, number[]] => [n, o, [6]]),
  ['trainable false', () => ({ trainable: false }), [6]],
  ['dtype float32', () => ({ dtype: 'float32' }), [6]],
  ['inputDType float32', () => ({ inputDType: 'float32' }), [6]],
  ['batchInputShape', () => ({ batchInputShape: [null, 6], inputShape: undefined }), [6]],
  ['rank-3 input', () => ({ activation: 'softmax' }), [3, 6]],
  ['rank-4 input', () => ({ activation: 'tanh' }), [2, 3, 6]],
];

const CONV_CASES: [string, () => Options][] = [
  ['defaults', () => ({})],
  ['useBias false', () => ({ useBias: false })],
  ...ACTIVATIONS.map((a): [string, () => Options] => [`activation ${a}`, () => ({ activation: a })]),
  ['strides 2, padding same', () => ({ strides: 2, padding: 'same' })],
  ['strides [2, 1], padding valid', () => ({ strides: [2, 1], padding: 'valid' })],
  ['kernelSize [3, 2]', () => ({ kernelSize: [3, 2] })],
  ['dilationRate 2', () => ({ dilationRate: 2, padding: 'same' })],
  ['dilationRate [2, 1]', () => ({ dilationRate: [2, 1] })],
  [
    'kernelRegularizer, biasRegularizer',
    () => ({
      kernelRegularizer: tfl.regularizers.l2({ l2: 0.1 }),
      biasRegularizer: tfl.regularizers.l1({ l1: 0.2 }),
    }),
  ],
  ...CONSTRAINTS,
  [
    'maxNorm axis [0, 1, 2] (as Keras advises for Conv2D; tfjs types say a number, its code takes axes)',
    () => ({ kernelConstraint: tfl.constraints.maxNorm({ maxValue: 0.5, axis: [0, 1, 2] as never }) }),
  ],
  ['trainable false', () => ({ trainable: false })],
];

function plainDense(options: Options, inputShape: number[]): tfl.Sequential {
  return tfl.sequential({
    layers: [
      tfl.layers.dense({
        inputShape,
        units: 4,
        kernelInitializer: seeded(1),
        biasInitializer: biasInit(),
        name: 'd',
        ...options,
      } as never),
    ],
  });
}

function plainConv(options: Options): tfl.Sequential {
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        inputShape: [7, 6, 2],
        filters: 3,
        kernelSize: 3,
        kernelInitializer: seeded(1),
        biasInitializer: biasInit(),
        name: 'c',
        ...options,
      } as never),
    ],
  });
}

function predict(m: tfl.LayersModel, x: tf.Tensor): tf.Tensor {
  return m.predict(x) as tf.Tensor;
}

/** Output error of `b` against the reference `a`, scale-aware. */
function outputError(a: tfl.LayersModel, b: tfl.LayersModel, x: tf.Tensor): number {
  return tf.tidy(() => scaledError(predict(b, x), predict(a, x)));
}

async function saveLoad(m: tfl.LayersModel): Promise<tfl.LayersModel> {
  const artifacts = await saveInMemory(m);
  return tfl.loadLayersModel(tf.io.fromMemory(artifacts));
}

/** Writes a layer's weights back (copies: tfjs skips the write of a variable onto itself). */
function rewrite(layer: tfl.layers.Layer): void {
  const copies = layer.getWeights().map((w) => w.clone());
  layer.setWeights(copies);
  tf.dispose(copies);
}

const penalty = (m: tfl.LayersModel) =>
  tf.tidy(() => {
    const losses = m.layers.flatMap((l) => l.calculateLosses());
    return losses.length === 0 ? 0 : tf.addN(losses).dataSync()[0];
  });

/**
 * The gradients the decomposed weights must get from the plain kernel's gradient G by the
 * chain rule of W = g V s, s = 1 / sqrt(||V||^2 + eps^2) per group:
 * dL/dg = sum(G V) s, dL/dV = g s G - V g s^3 sum(G V).
 */
function chainRule(layer: Decomposed, G: tf.Tensor): { dV: tf.Tensor; dg: tf.Tensor } {
  return tf.tidy(() => {
    const axes = layer.normAxes;
    const V = layer.direction!.read();
    const g = layer.magnitude!.read();
    const keep = (t: tf.Tensor) => tf.sum(t, axes, true);
    const s = tf.rsqrt(tf.add(keep(tf.square(V)), layer.epsilon ** 2));
    const gk = tf.reshape(g, s.shape);
    const gv = keep(tf.mul(G, V));
    const dg = tf.reshape(tf.mul(gv, s), g.shape);
    const dV = tf.sub(tf.mul(tf.mul(gk, s), G), tf.mul(V, tf.mul(tf.mul(gk, tf.pow(s, 3)), gv)));
    return { dV, dg };
  });
}

function gradsOf(m: tfl.LayersModel, x: tf.Tensor, r: tf.Tensor): tf.Tensor[] {
  const vars = m.trainableWeights.map((w) => w.read() as tf.Variable);
  const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(predict(m, x), r)) as tf.Scalar, vars);
  value.dispose();
  return vars.map((v) => grads[v.name]);
}

/** Everything one plain model with one option must survive; `granularity` of the decomposed layer. */
async function checkOption(
  make: () => tfl.LayersModel,
  granularity: { dense?: 'output' | 'input'; conv2d?: 'kernel' | 'filter' },
  x: tf.Tensor,
  trainable: boolean,
  differentiable = true,
): Promise<void> {
  const plain = make();
  const ref = plain.layers[0];
  const dec = decompose(plain, { granularity });
  const layer = dec.layers[0] as Decomposed;
  // Same outputs, same options, the regularisation losses of the same kernel.
  expect(outputError(plain, dec, x)).toBeLessThan(1e-5);
  const { granularity: gr, epsilon: _e, ...options } = layer.getConfig();
  expect(gr).toBe(granularity.dense ?? granularity.conv2d);
  expect(options).toEqual(ref.getConfig());
  expect(layer.name).toBe(ref.name);
  expect(penalty(dec)).toBeCloseTo(penalty(plain), 5);
  // fold gives the plain layer back: class, config, weights (names too), outputs.
  const folded = fold(dec);
  const back = folded.layers[0];
  expect(back.getClassName()).toBe(ref.getClassName());
  expect(back.getConfig()).toEqual(ref.getConfig());
  expect(folded.getConfig()).toEqual(plain.getConfig());
  expect(back.weights.map((w) => w.originalName)).toEqual(ref.weights.map((w) => w.originalName));
  const [pw, fw] = [ref.getWeights(), back.getWeights()];
  expect(fw.length).toBe(pw.length);
  fw.forEach((w, i) => expect(scaledError(w, pw[i])).toBeLessThan(1e-6));
  expect(outputError(plain, folded, x)).toBeLessThan(1e-5);
  // getConfig / fromConfig and save / load keep the option.
  const config = JSON.parse(JSON.stringify(dec.getConfig()));
  const again = tfl.Sequential.fromConfig(tfl.Sequential, config) as tfl.Sequential;
  expect(again.getConfig()).toEqual(dec.getConfig());
  // Loading writes the weights, which applies a kernel constraint (on the plain layer too):
  // the reference is the plain model saved and loaded.
  const loaded = await saveLoad(dec);
  let plainLoaded: tfl.LayersModel;
  if (ref.getConfig().activation === 'gelu_new') {
    // tfjs 4.22 cannot load a plain layer with gelu_new (it reads the name back as geluNew); the
    // decomposed layers read it back right, so their checkpoints load.
    await expect(saveLoad(plain)).rejects.toThrow(/Unknown activation: geluNew/);
    plainLoaded = fold(loaded);
    expect(outputError(plain, plainLoaded, x)).toBeLessThan(1e-5);
  } else {
    plainLoaded = await saveLoad(plain);
  }
  expect(loaded.getConfig()).toEqual(dec.getConfig());
  expect(loaded.layers[0].trainable).toBe(ref.trainable);
  expect(outputError(plainLoaded, loaded, x)).toBeLessThan(1e-5);
  expect(outputError(fold(loaded), plainLoaded, x)).toBeLessThan(1e-5);
  // Training: the decomposed weights get the plain kernel's gradient through W = g V / ||V||.
  expect(dec.trainableWeights.length).toBe(trainable ? plain.trainableWeights.length + 1 : 0);
  if (trainable && differentiable) {
    tf.tidy(() => {
      const r = randn(
        (plain.outputs[0].shape as number[]).map((d) => d ?? x.shape[0]),
        8,
      );
      const [G, ...gb] = gradsOf(plain, x, r);
      const [dV, dg, ...db] = gradsOf(dec, x, r);
      const expected = chainRule(layer, G);
      expect(scaledError(dV, expected.dV)).toBeLessThan(1e-5);
      expect(scaledError(dg, expected.dg)).toBeLessThan(1e-5);
      expect(db.length).toBe(gb.length);
      db.forEach((t, i) => expect(scaledError(t, gb[i])).toBeLessThan(1e-5));
    });
  }
  [plain, dec, folded, again, loaded, plainLoaded].forEach((m) => m.dispose());
}

describe('Dense options through decompose, fold, serialisation and gradients', () => {
  describe.each(['output', 'input'] as const)("granularity '%s'", (dense) => {
    test.each(DENSE_CASES)('%s', async (_name, options, inputShape) => {
      const o = options();
      const x = randn([3, ...inputShape], 2);
      const make = () =>
        o.batchInputShape != null ? plainDense(o, undefined as never) : plainDense(o, inputShape);
      await checkOption(make, { dense }, x, o.trainable !== false);
      x.dispose();
    });
  });
});

describe('Conv2D options through decompose, fold, serialisation and gradients', () => {
  describe.each(['kernel', 'filter'] as const)("granularity '%s'", (conv2d) => {
    test.each(CONV_CASES)('%s', async (_name, options) => {
      const o = options();
      const x = randn([2, 7, 6, 2], 3);
      // tfjs-core has no gradient for a dilated convolution, plain or decomposed (below).
      const dilated = o.dilationRate != null;
      await checkOption(() => plainConv(o), { conv2d }, x, o.trainable !== false, !dilated);
      x.dispose();
    });
  });
});

describe('kernel constraints act on the effective kernel, where tfjs applies them', () => {
  const kernelConstraints = CONSTRAINTS.filter(([, o]) => o().kernelConstraint != null);
  const layouts = [
    ['output', () => plainDense({}, [6]), [3, 6]],
    ['input', () => plainDense({}, [6]), [3, 6]],
    ['kernel', () => plainConv({}), [2, 7, 6, 2]],
    ['filter', () => plainConv({}), [2, 7, 6, 2]],
  ] as const;

  test.each(kernelConstraints.flatMap(([name, o]) => layouts.map(([gr]) => [name, gr, o] as const)))(
    '%s, granularity %s: setWeights and loading constrain the kernel the layer applies, as on the plain layer',
    async (_name, gr, options) => {
      const [, , shape] = layouts.find(([g]) => g === gr)!;
      const make = () =>
        shape.length === 2 ? plainDense(options(), [6]) : (plainConv(options()) as tfl.LayersModel);
      const plain = make();
      const dense = shape.length === 2;
      const dec = decompose(plain, { granularity: dense ? { dense: gr as never } : { conv2d: gr as never } });
      const x = randn([...shape], 4);
      // A round trip through setWeights applies the constraint: to W on the plain layer, to
      // g V / ||V|| on the decomposed one (before the fix, to V: nothing, or something else).
      const layer = dec.layers[0] as Decomposed;
      // Written as often (minMaxNorm with rate < 1 moves the norms a step each time).
      for (let i = 0; i < 4; i++) rewrite(plain.layers[0]);
      rewrite(layer);
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) rewrite(layer);
      expect(tf.memory().numTensors).toBe(before);
      const applied = effectiveKernel(layer);
      expect(scaledError(applied, plain.layers[0].getWeights()[0])).toBeLessThan(1e-5);
      expect(tf.tidy(() => tf.min(layer.magnitude!.read()).dataSync()[0])).toBeGreaterThanOrEqual(0);
      expect(outputError(plain, dec, x)).toBeLessThan(1e-5);
      // LayerVariable.write, which tfjs's batchSetValue calls weight by weight outside
      // Layer.setWeights' tidy, applies the constraint too, and keeps the count as flat.
      const g = layer.magnitude!.read().clone();
      layer.magnitude!.write(g);
      const written = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) layer.magnitude!.write(g);
      expect(tf.memory().numTensors).toBe(written);
      g.dispose();
      applied.dispose();
      [plain, dec].forEach((m) => m.dispose());
      x.dispose();
    },
  );

  test.each(['maxNorm', 'unitNorm', 'nonNeg'].flatMap((name) => layouts.map(([gr]) => [name, gr] as const)))(
    '%s, granularity %s: setWeights of a new direction with the magnitude getWeights() gave constrains the new kernel',
    (name, gr) => {
      const options = CONSTRAINTS.find(([n]) => n === name)![1];
      const [, , shape] = layouts.find(([g]) => g === gr)!;
      const make = () => (shape.length === 2 ? plainDense(options(), [6]) : plainConv(options()));
      const plain = make();
      const dense = shape.length === 2;
      const dec = decompose(plain, { granularity: dense ? { dense: gr as never } : { conv2d: gr as never } });
      const layer = dec.layers[0] as Decomposed;
      const x = randn([...shape], 4);
      // The idiom "change one weight, keep the others": the magnitude is the variable's own
      // tensor, which tfjs does not write again (nor constrain); the kernel still changed.
      const [v, g, ...rest] = layer.getWeights();
      const direction = tf.tidy(() => tf.sub(tf.mul(randn(v.shape, 9), 2), 0.5));
      // The kernel those weights make (g is the variable itself: computed before the write).
      const unconstrained = tf.tidy(() => {
        const axes = layer.normAxes;
        const norm = tf.sqrt(tf.add(tf.sum(tf.square(direction), axes, true), layer.epsilon ** 2));
        const groupShape = direction.shape.map((d, i) => (axes.includes(i) ? 1 : d));
        return tf.div(tf.mul(direction, tf.reshape(g, groupShape)), norm);
      });
      const before = tf.memory().numTensors;
      layer.setWeights([direction, g, ...rest]);
      expect(tf.memory().numTensors).toBe(before);
      // The plain layer written with that kernel applies it constrained.
      const ref = make();
      ref.layers[0].setWeights([unconstrained, ...rest]);
      const applied = effectiveKernel(layer);
      expect(scaledError(applied, ref.layers[0].getWeights()[0])).toBeLessThan(1e-5);
      expect(outputError(ref, dec, x)).toBeLessThan(1e-5);
      tf.dispose([direction, unconstrained, applied, x]);
      [plain, dec, ref].forEach((m) => m.dispose());
    },
  );

  it.each(['output', 'input'] as const)(
    "a constraint the kernel satisfies leaves direction and magnitude as written (granularity %s): a pruned group's unit direction stays",
    (granularity) => {
      const dec = decompose(
        plainDense({ kernelConstraint: tfl.constraints.maxNorm({ maxValue: 100 }) }, [6]),
        {
          granularity: { dense: granularity },
        },
      );
      const layer = dec.layers[0] as Decomposed;
      // group 1 pruned: magnitude 0, its direction still unit (as the proximal step leaves it)
      const g = Float32Array.from(layer.magnitude!.read().dataSync());
      g[1] = 0;
      const pruned = tf.tensor(g, layer.magnitude!.shape as number[]);
      layer.magnitude!.write(pruned);
      pruned.dispose();
      const before = layer.getWeights().map((w) => Array.from(w.dataSync()));
      rewrite(layer);
      expect(layer.getWeights().map((w) => Array.from(w.dataSync()))).toEqual(before);
      const tensors = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) rewrite(layer);
      expect(tf.memory().numTensors).toBe(tensors);
      expect(layer.getWeights().map((w) => Array.from(w.dataSync()))).toEqual(before);
      dec.dispose();
    },
  );

  it('training applies no constraint, to the plain kernel or the effective kernel (tfjs 4.22 applies constraints only on writes)', async () => {
    const plain = plainDense({ kernelConstraint: tfl.constraints.nonNeg() }, [6]);
    const dec = decompose(plain);
    const x = randn([8, 6], 6);
    const y = randn([8, 4], 7);
    for (const m of [plain, dec]) {
      m.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
      await m.trainOnBatch(x, y);
      await expectNoLeak(async () => {
        for (let i = 0; i < 3; i++) await m.trainOnBatch(x, y);
      });
    }
    const min = (t: tf.Tensor) => tf.tidy(() => tf.min(t).dataSync()[0]);
    const applied = effectiveKernel(dec.layers[0] as Decomposed);
    expect(min(plain.layers[0].getWeights()[0])).toBeLessThan(0);
    expect(min(applied)).toBeLessThan(0);
    // Written back, both are constrained.
    for (const m of [plain, dec]) rewrite(m.layers[0]);
    const after = effectiveKernel(dec.layers[0] as Decomposed);
    expect(min(plain.layers[0].getWeights()[0])).toBe(0);
    expect(min(after)).toBeGreaterThanOrEqual(0);
    tf.dispose([x, y, applied, after]);
  });

  it('a fresh layer starts unconstrained, as a plain one does, with the plain layer seeded initial weights', () => {
    const args = {
      kernelConstraint: tfl.constraints.nonNeg(),
      kernelInitializer: seeded(11),
      biasInitializer: biasInit(),
    };
    const pairs: [tfl.layers.Layer, Decomposed, number[]][] = [
      [
        tfl.layers.dense({ units: 4, ...args }),
        decomposedDense({ units: 4, granularity: 'input', ...args }),
        [2, 6],
      ],
      [
        tfl.layers.conv2d({ filters: 3, kernelSize: [3, 2], ...args }),
        decomposedConv2d({ filters: 3, kernelSize: [3, 2], granularity: 'filter', ...args }),
        [2, 5, 5, 2],
      ],
    ];
    for (const [plainLayer, layer, shape] of pairs) {
      const x = randn(shape, 3);
      const [py, dy] = tf.tidy(() => [plainLayer.apply(x) as tf.Tensor, layer.apply(x) as tf.Tensor]);
      const [w, b] = plainLayer.getWeights();
      const applied = effectiveKernel(layer);
      expect(scaledError(applied, w)).toBeLessThan(1e-6);
      expect(tf.tidy(() => tf.min(applied).dataSync()[0])).toBeLessThan(0);
      expect(scaledError(layer.getWeights()[2], b)).toBe(0);
      expect(scaledError(dy, py)).toBeLessThan(1e-5);
      tf.dispose([x, py, dy, applied]);
    }
  });
});

describe("the weights option: a layer's initial weights", () => {
  const cases: [string, () => tfl.layers.Layer, (w: tf.Tensor[]) => tfl.layers.Layer, number[]][] = [
    [
      'Dense, output',
      () => tfl.layers.dense({ units: 3, name: 'p', inputShape: [4] }),
      (weights) => decomposedDense({ units: 3, name: 'd', inputShape: [4], weights }),
      [2, 4],
    ],
    [
      'Dense, input, no bias',
      () => tfl.layers.dense({ units: 3, name: 'p', inputShape: [4], useBias: false }),
      (weights) =>
        decomposedDense({
          units: 3,
          name: 'd',
          inputShape: [4],
          useBias: false,
          granularity: 'input',
          weights,
        }),
      [2, 4],
    ],
    [
      'Conv2D, kernel',
      () => tfl.layers.conv2d({ filters: 2, kernelSize: [2, 3], name: 'p', inputShape: [5, 6, 3] }),
      (weights) =>
        decomposedConv2d({ filters: 2, kernelSize: [2, 3], name: 'd', inputShape: [5, 6, 3], weights }),
      [2, 5, 6, 3],
    ],
    [
      'Conv2D, filter',
      () => tfl.layers.conv2d({ filters: 2, kernelSize: 3, name: 'p', inputShape: [5, 6, 3] }),
      (weights) =>
        decomposedConv2d({
          filters: 2,
          kernelSize: 3,
          name: 'd',
          inputShape: [5, 6, 3],
          granularity: 'filter',
          weights,
        }),
      [2, 5, 6, 3],
    ],
  ];

  test.each(cases)(
    "%s: the plain layer's [kernel, bias] and the layer's own weights both give the plain layer's outputs",
    (_name, makePlain, makeDecomposed, inputShape) => {
      const plain = tfl.sequential({ layers: [makePlain()] });
      const x = randn(inputShape, 3);
      // A bias far from zero, and a kernel with a zero group's worth of zeros, as weights users give.
      const given = plain.getWeights().map((w, i) => tf.tidy(() => (i === 0 ? tf.relu(w) : tf.add(w, 0.7))));
      plain.setWeights(given);
      const expected = plain.predict(x) as tf.Tensor;
      const fromPlain = tfl.sequential({ layers: [makeDecomposed(given)] });
      expect(scaledError(fromPlain.predict(x) as tf.Tensor, expected)).toBeLessThan(1e-5);
      const own = fromPlain.getWeights();
      expect(own).toHaveLength(given.length + 1);
      const fromOwn = tfl.sequential({ layers: [makeDecomposed(own)] });
      expect(scaledError(fromOwn.predict(x) as tf.Tensor, expected)).toBeLessThan(1e-5);
      // A wrong list names both forms, not only a count.
      expect(() => tfl.sequential({ layers: [makeDecomposed(given.slice(0, 1).concat(given))] })).toThrow(
        /'d': weights must be the plain layer's \[kernel.*\] \(.*\) or this layer's \[direction, magnitude.*\); got /,
      );
      // setWeights takes both forms too: the plain layer's getWeights() (a trained Dense's weights
      // into its decomposed twin), and the layer's own.
      const later = tfl.sequential({ layers: [makeDecomposed(undefined as never)] });
      const before = tf.memory().numTensors;
      later.layers[0].setWeights(given);
      expect(tf.memory().numTensors).toBe(before);
      expect(scaledError(later.predict(x) as tf.Tensor, expected)).toBeLessThan(1e-5);
      later.layers[0].setWeights(own);
      expect(scaledError(later.predict(x) as tf.Tensor, expected)).toBeLessThan(1e-5);
      expect(() => later.layers[0].setWeights(given.slice(0, 1).concat(given))).toThrow(
        /'d': weights must be the plain layer's \[kernel.*\] \(.*\) or this layer's \[direction, magnitude.*\); got /,
      );
      tf.dispose([x, expected, ...given]);
      [plain, fromPlain, fromOwn, later].forEach((m) => m.dispose());
    },
  );
});

describe('what tfjs 4.22 refuses, plain or decomposed, with its own message', () => {
  it('an activityRegularizer is kept in the config, and calling the layer is refused as for a plain layer', () => {
    const activityRegularizer = tfl.regularizers.l2({ l2: 0.1 });
    const plain = tfl.layers.dense({ units: 2, activityRegularizer });
    const layers = [
      decomposedDense({ units: 2, activityRegularizer }),
      decomposedConv2d({ filters: 2, kernelSize: 1, activityRegularizer }),
    ];
    const input = tfl.input({ shape: [3, 3, 2] });
    const refusal = /activity regularizer\(s\) is not supported yet/;
    expect(() => plain.apply(input)).toThrow(refusal);
    for (const layer of layers) {
      expect(layer.getConfig().activityRegularizer).toEqual(plain.getConfig().activityRegularizer);
      expect(() => layer.apply(input)).toThrow(refusal);
    }
  });

  it('a dilated Conv2D cannot be trained: the same tfjs-core error for the plain and the decomposed layer', () => {
    const plain = plainConv({ dilationRate: 2 });
    const dec = decompose(plain);
    const x = randn([1, 7, 6, 2], 1);
    for (const m of [plain, dec]) {
      const vars = m.trainableWeights.map((w) => w.read() as tf.Variable);
      expect(() => tf.variableGrads(() => tf.sum(predict(m, x)) as tf.Scalar, vars)).toThrow(
        /dilation rates greater than 1 are not yet supported in gradients/,
      );
    }
    x.dispose();
  });
});

it('decompose and fold copy the layers they leave alone as they are, without applying their constraints', () => {
  const model = tfl.sequential({
    layers: [
      tfl.layers.dense({ inputShape: [5], units: 4, kernelInitializer: seeded(1), name: 'd' }),
      tfl.layers.batchNormalization({ gammaConstraint: tfl.constraints.nonNeg(), name: 'bn' }),
      tfl.layers.dense({
        units: 3,
        kernelConstraint: tfl.constraints.nonNeg(),
        kernelInitializer: seeded(2),
        name: 'kept',
      }),
    ],
  });
  // A gamma that violates its constraint, as training may leave it (setWeights would apply it).
  const gamma = model.getLayer('bn').weights[0].read() as tf.Variable;
  tf.tidy(() => gamma.assign(tf.fill(gamma.shape, -0.5)));
  const x = randn([3, 5], 2);
  const d = decompose(model, { include: ['d'] });
  expect(outputError(model, d, x)).toBeLessThan(1e-5);
  expect(outputError(model, fold(d), x)).toBeLessThan(1e-5);
  x.dispose();
});
