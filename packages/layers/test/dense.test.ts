import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { DecomposedDense, decomposedConv2d, decomposedDense, type DenseGranularity } from '../src/index.js';
import { computeEffectiveKernel, scaleBiasActivate } from '../src/common.js';
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

/**
 * A plain Dense whose kernel is the documented formula applied to the
 * decomposed layer's direction and magnitude (computed in the test, not by
 * effectiveKernel(), so a wrong formula in src cannot agree with itself).
 */
function plainTwin(
  layer: DecomposedDense,
  activation: string | undefined,
  inputShape: number[],
): tfl.layers.Layer {
  const plain = tfl.layers.dense({
    units: layer.units,
    activation: activation as any,
    useBias: layer.useBias,
  });
  plain.build(inputShape);
  const kernel = referenceKernelOf(layer);
  plain.setWeights(layer.bias ? [kernel, layer.bias.read()] : [kernel]);
  kernel.dispose();
  return plain;
}

/** Random magnitudes (some near zero, some large) so the test does not pass on norm-initialised ones alone. */
function scrambleMagnitude(
  layer: DecomposedDense | { magnitude: tfl.LayerVariable | null },
  seed: number,
): void {
  const m = layer.magnitude!;
  tf.tidy(() => {
    m.write(tf.mul(randn(m.shape as number[], seed), 2));
  });
}

describe('DecomposedDense', () => {
  const cases: {
    inputShape: number[];
    units: number;
    activation?: string;
    granularity: DenseGranularity;
    useBias?: boolean;
  }[] = [
    { inputShape: [5, 7], units: 3, granularity: 'output' },
    { inputShape: [5, 7], units: 3, granularity: 'input', activation: 'relu' },
    { inputShape: [4, 16], units: 9, granularity: 'output', activation: 'tanh', useBias: false },
    { inputShape: [4, 16], units: 9, granularity: 'input', activation: 'sigmoid' },
    { inputShape: [2, 3, 6], units: 4, granularity: 'output', activation: 'elu' },
    { inputShape: [2, 3, 5, 6], units: 4, granularity: 'input', activation: 'softmax' },
  ];
  it.each(cases)('equals tf.layers.dense with the effective kernel: %j', (c) => {
    const layer = decomposedDense({
      units: c.units,
      activation: c.activation as any,
      granularity: c.granularity,
      useBias: c.useBias,
    });
    const x = randn(c.inputShape, 1);
    layer.apply(x);
    scrambleMagnitude(layer, 2);
    if (layer.bias)
      tf.tidy(() => {
        layer.bias!.write(randn([c.units], 3));
      });
    const y = layer.apply(x) as tf.Tensor;
    const plain = plainTwin(layer, c.activation, c.inputShape);
    const yPlain = plain.apply(x) as tf.Tensor;
    expect(y.shape).toEqual([...c.inputShape.slice(0, -1), c.units]);
    expect(scaledError(y, yPlain)).toBeLessThan(1e-5);
    // The kernel really is magnitude * direction / ||direction|| per group.
    const axis = c.granularity === 'output' ? 0 : 1;
    const k = layer.effectiveKernel();
    const reference = referenceKernelOf(layer);
    expect(scaledError(k, reference)).toBeLessThan(1e-5);
    const norms = tf.norm(k, 'euclidean', axis);
    const magnitudes = tf.abs(layer.magnitude!.read());
    expect(scaledError(norms, magnitudes)).toBeLessThan(1e-5);
    tf.dispose([x, y, yPlain, k, reference, norms, magnitudes]);
  });

  it('weights are direction [in, units], magnitude, bias, and a fresh layer starts with magnitude = ||direction||', () => {
    for (const granularity of ['output', 'input'] as const) {
      const layer = decomposedDense({ units: 6, granularity, inputShape: [10] });
      layer.build([null, 10]);
      const [direction, magnitude, bias] = layer.getWeights();
      expect(layer.weights.map((w) => w.originalName.split('/').pop())).toEqual([
        'direction',
        'magnitude',
        'bias',
      ]);
      expect(direction.shape).toEqual([10, 6]);
      expect(magnitude.shape).toEqual(granularity === 'output' ? [6] : [10]);
      expect(bias.shape).toEqual([6]);
      const norms = tf.norm(direction, 'euclidean', granularity === 'output' ? 0 : 1);
      expect(scaledError(magnitude, norms)).toBeLessThan(1e-6);
      // So the effective kernel is the direction itself, drawn by the kernel initializer.
      const k = layer.effectiveKernel();
      expect(scaledError(k, direction)).toBeLessThan(1e-5);
      tf.dispose([norms, k]);
    }
  });

  it('magnitudeInitializer overrides the norm initialisation and round-trips through getConfig', () => {
    const layer = decomposedDense({ units: 3, magnitudeInitializer: 'ones', kernelInitializer: 'heNormal' });
    layer.build([null, 4]);
    expect(Array.from(values(layer.magnitude!.read()))).toEqual([1, 1, 1]);
    const config = layer.getConfig();
    expect(config.magnitudeInitializer).toEqual({ className: 'Ones', config: {} });
    const again = new DecomposedDense(JSON.parse(JSON.stringify(config)));
    expect(again.getConfig()).toEqual(config);
  });

  // PyTorch: lin = weight_norm(nn.Linear(3, 2), dim=0) stores weight_g [2, 1]
  // and weight_v [2, 3]; weight = g * v / ||v|| with the norm over dim 1, i.e.
  // over each row of v = the incoming weights of one output neuron. tfjs's
  // kernel is weight^T ([3, 2]), so a row of v is a column of `direction`:
  // exactly granularity 'output' (normAxes [0]).
  it("'output' is PyTorch weight_norm(dim=0) on Linear (worked by hand)", () => {
    // v row 0 = [3, 4, 0], ||.|| = 5;  v row 1 = [1, 2, 2], ||.|| = 3
    // g = [2, 6]  =>  weight row 0 = 2/5 * [3, 4, 0] = [1.2, 1.6, 0]
    //                 weight row 1 = 6/3 * [1, 2, 2] = [2, 4, 4]
    // bias = [0.5, -1]
    // x = [1, 1, 1]:  y0 = 1.2 + 1.6 + 0 + 0.5 = 3.3;   y1 = 2 + 4 + 4 - 1 = 9
    // x = [1, -1, 2]: y0 = 1.2 - 1.6 + 0 + 0.5 = 0.1;   y1 = 2 - 4 + 8 - 1 = 5
    const layer = decomposedDense({ units: 2, granularity: 'output', epsilon: 1e-12 });
    layer.build([null, 3]);
    const vTorch = [
      [3, 4, 0],
      [1, 2, 2],
    ];
    const direction = tf.transpose(tf.tensor2d(vTorch));
    layer.setWeights([direction, tf.tensor1d([2, 6]), tf.tensor1d([0.5, -1])]);
    const x = tf.tensor2d([
      [1, 1, 1],
      [1, -1, 2],
    ]);
    const y = layer.apply(x) as tf.Tensor;
    const expected = [3.3, 9, 0.1, 5];
    values(y).forEach((v, i) => expect(v).toBeCloseTo(expected[i], 5));
    const k = layer.effectiveKernel();
    const weightTorch = [1.2, 2, 1.6, 4, 0, 4]; // [[1.2, 1.6, 0], [2, 4, 4]] transposed, row-major
    values(k).forEach((v, i) => expect(v).toBeCloseTo(weightTorch[i], 5));

    // Gradients of L = sum(y) at x = [1, 1, 1] (what PyTorch's autograd gives):
    // dL/dweight = x for every row.  dL/dg_j = v_j . x / ||v_j||:
    //   g0: (3 + 4 + 0) / 5 = 1.4;   g1: (1 + 2 + 2) / 3 = 5/3
    // dL/dv_j = g_j / ||v_j|| * (x - (u_j . x) u_j), u_j = v_j / ||v_j||:
    //   u0 = [0.6, 0.8, 0], u0 . x = 1.4, x - 1.4 u0 = [0.16, -0.12, 1], * 2/5 = [0.064, -0.048, 0.4]
    //   u1 = [1/3, 2/3, 2/3], u1 . x = 5/3, x - 5/3 u1 = [4/9, -1/9, -1/9], * 6/3 = [8/9, -2/9, -2/9]
    const x1 = tf.tensor2d([[1, 1, 1]]);
    const dirVar = layer.direction!.read() as tf.Variable;
    const magVar = layer.magnitude!.read() as tf.Variable;
    const { grads } = tf.variableGrads(
      () => tf.sum(layer.apply(x1) as tf.Tensor) as tf.Scalar,
      [dirVar, magVar],
    );
    const dg = values(grads[magVar.name]);
    expect(dg[0]).toBeCloseTo(1.4, 5);
    expect(dg[1]).toBeCloseTo(5 / 3, 5);
    const dvTorch = [
      [0.064, -0.048, 0.4],
      [8 / 9, -2 / 9, -2 / 9],
    ];
    const dv = grads[dirVar.name].arraySync() as number[][]; // [3, 2] = dvTorch^T
    for (let i = 0; i < 3; i++) for (let j = 0; j < 2; j++) expect(dv[i][j]).toBeCloseTo(dvTorch[j][i], 5);
    tf.dispose([direction, x, y, k, x1, ...Object.values(grads)]);
  });

  it.each([
    ['output', 'tanh', true],
    ['output', 'relu', true],
    ['output', 'linear', false],
    ['input', 'tanh', true],
    ['input', 'relu', false],
    ['input', 'linear', true],
  ] as const)(
    'gradients agree with central finite differences (%s, %s, bias %s)',
    (granularity, activation, useBias) => {
      const layer = decomposedDense({ units: 3, activation, granularity, useBias });
      const x = randn([4, 5], 11);
      layer.apply(x);
      // Weights are seeded: the check is deterministic (relu's kinks included).
      const errors = gradientErrors(layer, x, 12);
      expect(errors.length).toBe(useBias ? 4 : 3);
      // Measured (seeded, cpu): at most 5e-5 for tanh / linear; relu reaches
      // 2e-3 where a finite-difference step crosses a kink, so it gets 5e-3.
      const bound = activation === 'relu' ? 5e-3 : 1e-4;
      for (const error of errors) expect(error).toBeLessThan(bound);
      x.dispose();
    },
  );

  it.each(['output', 'input'] as const)(
    'a zero magnitude or a zero direction gives a zero group, and no NaN anywhere (%s)',
    (granularity) => {
      const layer = decomposedDense({ units: 3, granularity });
      const x = randn([4, 5], 21);
      layer.apply(x);
      const groups = granularity === 'output' ? 3 : 5;
      const direction = tf.tidy(() => {
        const d = randn([5, 3], 22).arraySync() as number[][];
        // group 0 has a zero direction (and magnitude 1), group 1 a zero magnitude.
        for (let i = 0; i < 5; i++)
          for (let j = 0; j < 3; j++) if ((granularity === 'output' ? j : i) === 0) d[i][j] = 0;
        return tf.tensor2d(d);
      });
      const magnitude = tf.tensor1d(Array.from({ length: groups }, (_, i) => (i === 1 ? 0 : 1 + i)));
      layer.setWeights([direction, magnitude, tf.zeros([3])]);
      const k = layer.effectiveKernel();
      const kv = k.arraySync() as number[][];
      for (let i = 0; i < 5; i++) {
        for (let j = 0; j < 3; j++) {
          const g = granularity === 'output' ? j : i;
          if (g === 0 || g === 1) expect(Math.abs(kv[i][j])).toBe(0);
        }
      }
      expect(allFinite(k)).toBe(true);
      const vars = [layer.direction!, layer.magnitude!].map((w) => w.read() as tf.Variable);
      const { value, grads } = tf.variableGrads(
        () => tf.sum(tf.square(layer.apply(x) as tf.Tensor)) as tf.Scalar,
        vars,
      );
      expect(allFinite(value)).toBe(true);
      for (const v of vars) expect(allFinite(grads[v.name])).toBe(true);
      // All-zero direction and magnitude: still a zero kernel with finite gradients.
      layer.setWeights([tf.zeros([5, 3]), tf.zeros([groups]), tf.zeros([3])]);
      const k0 = layer.effectiveKernel();
      expect(values(k0).every((v) => v === 0)).toBe(true);
      const g0 = tf.variableGrads(() => tf.sum(layer.apply(x) as tf.Tensor) as tf.Scalar, vars);
      for (const v of vars) expect(allFinite(g0.grads[v.name])).toBe(true);
      tf.dispose([
        x,
        direction,
        magnitude,
        k,
        k0,
        value,
        g0.value,
        ...Object.values(grads),
        ...Object.values(g0.grads),
      ]);
    },
  );

  it('accepts inputDim like tf.layers.dense and round-trips it', () => {
    const model = tfl.sequential({ layers: [decomposedDense({ units: 2, inputDim: 3, name: 'first' })] });
    expect(model.inputs[0].shape).toEqual([null, 3]);
    const config = model.layers[0].getConfig();
    expect(config.batchInputShape).toEqual([null, 3]);
    expect(new DecomposedDense(JSON.parse(JSON.stringify(config))).getConfig()).toEqual(config);
  });

  it('rejects a bad granularity or epsilon with a clear error', () => {
    expect(() => decomposedDense({ units: 2, granularity: 'kernel' as any })).toThrow(
      /granularity must be one of 'output', 'input'/,
    );
    for (const [epsilon, shown] of [
      [0, '0'],
      [1e-20, '1e-20'],
      ['1e-3', '"1e-3" \\(a string\\)'],
      [2e19, '20000000000000000000'],
      [1e30, '1e\\+30'],
    ] as const)
      expect(() => decomposedDense({ units: 2, epsilon: epsilon as number })).toThrow(
        new RegExp(`DecomposedDense epsilon must be a finite number >= 1.1e-19 .*, got ${shown}`),
      );
    // Above 2^63 epsilon^2 overflows float32: every group's norm was Infinity, its fresh
    // magnitude too, and the kernel Infinity * 0 = NaN. 2^63 is the largest accepted, and a fresh
    // layer applies its initial kernel, as at any epsilon.
    for (const [make, shape] of [
      [(epsilon: number) => decomposedDense({ units: 3, epsilon }), [2, 4]],
      [(epsilon: number) => decomposedConv2d({ filters: 2, kernelSize: 2, epsilon }), [1, 3, 3, 2]],
    ] as const) {
      expect(() => make(2 ** 63 * 1.01)).toThrow(/epsilon must be a finite number .* <= 9.2e18/);
      const big = make(2 ** 63);
      const x = randn([...shape], 5);
      const y = big.apply(x) as tf.Tensor;
      const applied = big.effectiveKernel();
      expect(allFinite(y)).toBe(true);
      expect(scaledError(applied, big.direction!.read())).toBeLessThan(1e-6);
      tf.dispose([x, y, applied]);
      disposeWeights(big);
    }
    // At 1e-20 epsilon^2 underflows float32, and an all-zero group gave NaN outputs; 2^-63 is the
    // smallest epsilon whose square is a normal float32, and gives a zero group exactly 0.
    const layer = decomposedDense({
      units: 2,
      epsilon: 2 ** -63,
      kernelInitializer: 'zeros',
      useBias: false,
    });
    const y = layer.apply(tf.ones([1, 3])) as tf.Tensor;
    expect(Array.from(y.dataSync())).toEqual([0, 0]);
    tf.dispose(y);
    layer.dispose();
  });

  it('call() leaves no tensor behind', async () => {
    const layer = decomposedDense({ units: 4, activation: 'softmax' });
    const x = randn([3, 2, 5], 31);
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
// epsilon instead of epsilon^2 (or dropped it) would pass every test above.
// epsilon 0.5 next to direction groups of norm ~0.05 makes the term dominate
// the norm, and the expected outputs are computed here, in float64 plain
// arithmetic, not through effectiveKernel().
describe('DecomposedDense forward pass against the epsilon formula', () => {
  /** `x @ kernel + bias`, then relu or nothing, in plain arithmetic; `kernel` is `[in, units]` row-major. */
  function denseForward(
    x: ArrayLike<number>,
    batch: number,
    kernel: ArrayLike<number>,
    inputDim: number,
    units: number,
    bias: ArrayLike<number> | null,
    relu: boolean,
  ): number[] {
    const y: number[] = [];
    for (let b = 0; b < batch; b++)
      for (let j = 0; j < units; j++) {
        let s = bias == null ? 0 : bias[j];
        for (let i = 0; i < inputDim; i++) s += x[b * inputDim + i] * kernel[i * units + j];
        y.push(relu ? Math.max(0, s) : s);
      }
    return y;
  }

  it.each(['output', 'input'] as const)(
    'one small direction column [0.03, 0.04], magnitude 1, epsilon 0.5 (%s, worked by hand)',
    (granularity) =>
      expectNoLeak(() => {
        const layer = decomposedDense({ units: 1, granularity, epsilon: 0.5, useBias: false });
        layer.build([null, 2]);
        const direction = tf.tensor2d([[0.03], [0.04]]);
        const magnitude = tf.ones(granularity === 'output' ? [1] : [2]);
        layer.setWeights([direction, magnitude]);
        const x = tf.tensor2d([
          [1, 2],
          [-3, 0.5],
        ]);
        const y = layer.apply(x) as tf.Tensor;
        // 'output': one group, the column: w = [0.03, 0.04] / sqrt(0.03^2 + 0.04^2 + 0.5^2)
        //   = [0.03, 0.04] / 0.50249...  (with epsilon instead of epsilon^2: / 0.70888...)
        // 'input': one group per row: w_i = v_i / sqrt(v_i^2 + 0.5^2).
        const w =
          granularity === 'output'
            ? [0.03 / Math.sqrt(0.0025 + 0.25), 0.04 / Math.sqrt(0.0025 + 0.25)]
            : [0.03 / Math.sqrt(0.0009 + 0.25), 0.04 / Math.sqrt(0.0016 + 0.25)];
        const expected = [1 * w[0] + 2 * w[1], -3 * w[0] + 0.5 * w[1]];
        expect(y.shape).toEqual([2, 1]);
        values(y).forEach((v, i) => expect(Math.abs(v - expected[i])).toBeLessThan(1e-5));
        const k = layer.effectiveKernel();
        values(k).forEach((v, i) => expect(Math.abs(v - w[i])).toBeLessThan(1e-5));
        tf.dispose([direction, magnitude, x, y, k]);
        disposeWeights(layer);
      }),
  );

  it.each([
    { batch: 3, inputDim: 2, units: 1, granularity: 'output', useBias: false, activation: 'linear' },
    { batch: 3, inputDim: 2, units: 1, granularity: 'input', useBias: false, activation: 'linear' },
    { batch: 4, inputDim: 5, units: 3, granularity: 'output', useBias: true, activation: 'linear' },
    { batch: 4, inputDim: 5, units: 3, granularity: 'input', useBias: true, activation: 'linear' },
    { batch: 2, inputDim: 7, units: 6, granularity: 'output', useBias: true, activation: 'relu' },
    { batch: 2, inputDim: 7, units: 6, granularity: 'input', useBias: true, activation: 'relu' },
    { batch: 5, inputDim: 1, units: 4, granularity: 'output', useBias: false, activation: 'relu' },
    { batch: 5, inputDim: 9, units: 2, granularity: 'input', useBias: false, activation: 'linear' },
  ] as const)(
    'layer.apply(x) = x . g v / sqrt(||v||^2 + eps^2) (+ bias) with eps 0.5 and small directions: %j',
    (c) =>
      expectNoLeak(() => {
        const layer = decomposedDense({
          units: c.units,
          granularity: c.granularity,
          epsilon: 0.5,
          useBias: c.useBias,
          activation: c.activation,
        });
        layer.build([null, c.inputDim]);
        const groups = c.granularity === 'output' ? c.units : c.inputDim;
        const direction = tf.tidy(() => tf.mul(randn([c.inputDim, c.units], 91), 0.05));
        const magnitude = tf.tidy(() => tf.mul(randn([groups], 92), 2));
        const bias = c.useBias ? randn([c.units], 93) : null;
        layer.setWeights(bias == null ? [direction, magnitude] : [direction, magnitude, bias]);
        const x = randn([c.batch, c.inputDim], 94);
        const y = layer.apply(x) as tf.Tensor;
        const kernel = referenceKernel(
          values(direction),
          [c.inputDim, c.units],
          c.granularity === 'output' ? [0] : [1],
          values(magnitude),
          0.5,
        );
        const expected = denseForward(
          values(x),
          c.batch,
          kernel,
          c.inputDim,
          c.units,
          bias == null ? null : values(bias),
          c.activation === 'relu',
        );
        expect(y.shape).toEqual([c.batch, c.units]);
        const expectedT = tf.tensor2d(expected, [c.batch, c.units]);
        expect(scaledError(y, expectedT)).toBeLessThan(1e-5);
        // effectiveKernel() too: 'input' goes through it, 'output' through scaleBiasActivate.
        const k = layer.effectiveKernel();
        const kernelT = tf.tensor2d(Array.from(kernel), [c.inputDim, c.units]);
        expect(scaledError(k, kernelT)).toBeLessThan(1e-5);
        tf.dispose([direction, magnitude, x, y, expectedT, k, kernelT]);
        if (bias != null) bias.dispose();
        disposeWeights(layer);
      }),
  );

  it('a rank-3 input applies the same formula on its last axis', () =>
    expectNoLeak(() => {
      const layer = decomposedDense({ units: 3, epsilon: 0.5 });
      layer.build([null, 2, 4]);
      const direction = tf.tidy(() => tf.mul(randn([4, 3], 95), 0.05));
      const magnitude = randn([3], 96);
      const bias = randn([3], 97);
      layer.setWeights([direction, magnitude, bias]);
      const x = randn([2, 2, 4], 98);
      const y = layer.apply(x) as tf.Tensor;
      const kernel = referenceKernel(values(direction), [4, 3], [0], values(magnitude), 0.5);
      const expected = tf.tensor(denseForward(values(x), 4, kernel, 4, 3, values(bias), false), [2, 2, 3]);
      expect(y.shape).toEqual([2, 2, 3]);
      expect(scaledError(y, expected)).toBeLessThan(1e-5);
      tf.dispose([direction, magnitude, bias, x, y, expected]);
      disposeWeights(layer);
    }));
});

describe('hand-written gradients', () => {
  // The layers pass variables, which the backward pass reads directly; a
  // plain tensor must be saved instead. Both must give the autodiff gradient.
  it.each([
    [[6, 4], [0], [4]],
    [[6, 4], [1], [6]],
    [
      [3, 2, 5, 4],
      [0, 1],
      [5, 4],
    ],
    [[3, 2, 5, 4], [0, 1, 2], [4]],
  ])(
    'computeEffectiveKernel matches autodiff of the formula (direction %j, norm axes %j)',
    (shape, normAxes, magShape) => {
      const r = randn(shape, 71);
      const reference = (v: tf.Tensor, g: tf.Tensor) => {
        const sumSq = tf.sum(tf.square(v), normAxes, true);
        return tf.sum(
          tf.mul(r, tf.mul(v, tf.mul(tf.reshape(g, sumSq.shape), tf.rsqrt(tf.add(sumSq, 1e-12))))),
        );
      };
      const ours = (v: tf.Tensor, g: tf.Tensor) =>
        tf.sum(tf.mul(r, computeEffectiveKernel(v, g, normAxes, 1e-6)));
      const v = randn(shape, 72);
      const g = randn(magShape, 73);
      const expected = tf.grads(reference)([v, g]);
      const fromTensor = tf.grads(ours)([v, g]);
      const vv = tf.variable(v);
      const gv = tf.variable(g);
      const fromVariable = tf.variableGrads(() => ours(vv, gv) as tf.Scalar, [vv, gv]).grads;
      for (let i = 0; i < 2; i++) {
        expect(scaledError(fromTensor[i], expected[i])).toBeLessThan(1e-5);
        expect(scaledError(fromVariable[[vv, gv][i].name], expected[i])).toBeLessThan(1e-5);
      }
      tf.dispose([r, v, g, vv, gv, ...expected, ...fromTensor, ...Object.values(fromVariable)]);
    },
  );

  it.each([true, false])('scaleBiasActivate matches autodiff of the formula (relu %s)', (relu) => {
    const z = randn([5, 4], 81);
    const v = randn([3, 4], 82);
    const g = randn([4], 83);
    const b = randn([4], 84);
    const r = randn([5, 4], 85);
    const reference = (zz: tf.Tensor, vv: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => {
      const scale = tf.mul(gg, tf.rsqrt(tf.add(tf.sum(tf.square(vv), 0, true), 1e-12)));
      const y = tf.add(tf.mul(zz, scale), bb);
      return tf.sum(tf.mul(r, relu ? tf.relu(y) : y));
    };
    const ours = (zz: tf.Tensor, vv: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) =>
      tf.sum(tf.mul(r, scaleBiasActivate(zz as tf.Tensor2D, vv as tf.Tensor2D, gg, bb, relu, 1e-6)));
    const expected = tf.grads(reference)([z, v, g, b]);
    const actual = tf.grads(ours)([z, v, g, b]);
    expected.forEach((e, i) => expect(scaledError(actual[i], e)).toBeLessThan(1e-5));
    tf.dispose([z, v, g, b, r, ...expected, ...actual]);
  });
});
