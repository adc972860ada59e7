import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { DecomposedDense, decomposedDense, type DenseGranularity } from '../src/index.js';
import { computeEffectiveKernel, scaleBiasActivate } from '../src/common.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';
import { allFinite, gradientErrors, randn, scaledError, useCpu, values } from './helpers.js';

beforeAll(useCpu);

/** A plain Dense with the decomposed layer's effective kernel and bias. */
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
  const kernel = layer.effectiveKernel();
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
    const norms = tf.norm(k, 'euclidean', axis);
    expect(scaledError(norms, tf.abs(layer.magnitude!.read()))).toBeLessThan(1e-5);
    tf.dispose([x, y, yPlain, k, norms]);
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
      for (const error of errors) expect(error).toBeLessThan(1e-2);
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
    expect(() => decomposedDense({ units: 2, epsilon: 0 })).toThrow(
      /DecomposedDense epsilon must be a finite number > 0, got 0/,
    );
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
