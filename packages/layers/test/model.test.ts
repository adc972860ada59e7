import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { fileSystem } from '@normprune/runtime';
import {
  DEFAULT_EPSILON,
  DecomposedConv2D,
  DecomposedDense,
  decompose,
  decomposedConv2d,
  decomposedDense,
  effectiveKernel,
  fold,
  magnitudes,
} from '../src/index.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';
import { randn, scaledError, useCpu } from './helpers.js';
import { saveInMemory } from '../../../tools/testing/memory-io.js';

beforeAll(useCpu);

function lenet5(): tfl.Sequential {
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        inputShape: [12, 12, 1],
        filters: 4,
        kernelSize: 5,
        activation: 'relu',
        name: 'conv1',
      }),
      tfl.layers.maxPooling2d({ poolSize: 2 }),
      tfl.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'relu', name: 'conv2' }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: 10, activation: 'relu', name: 'fc1' }),
      tfl.layers.dense({ units: 3, activation: 'softmax', name: 'fc2' }),
    ],
  });
}

/** Two branches (conv and dense-on-rank-4) merged by concatenate and add: every kind of edge. */
function branching(): tfl.LayersModel {
  const input = tfl.input({ shape: [8, 8, 2], name: 'img' });
  const a = tfl.layers
    .conv2d({ filters: 3, kernelSize: 3, padding: 'same', activation: 'relu', name: 'a_conv' })
    .apply(input) as tfl.SymbolicTensor;
  const b = tfl.layers
    .conv2d({ filters: 3, kernelSize: 1, strides: 1, name: 'b_conv' })
    .apply(input) as tfl.SymbolicTensor;
  const sum = tfl.layers.add({ name: 'sum' }).apply([a, b]) as tfl.SymbolicTensor;
  const bn = tfl.layers.batchNormalization({ name: 'bn' }).apply(sum) as tfl.SymbolicTensor;
  const perPixel = tfl.layers
    .dense({ units: 4, name: 'per_pixel', activation: 'tanh' })
    .apply(bn) as tfl.SymbolicTensor;
  const cat = tfl.layers.concatenate({ name: 'cat' }).apply([perPixel, a]) as tfl.SymbolicTensor;
  const flat = tfl.layers.flatten({ name: 'flat' }).apply(cat) as tfl.SymbolicTensor;
  const out1 = tfl.layers.dense({ units: 5, name: 'head1' }).apply(flat) as tfl.SymbolicTensor;
  const out2 = tfl.layers
    .dense({ units: 2, activation: 'sigmoid', name: 'head2' })
    .apply(flat) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: [out1, out2], name: 'branching' });
}

function predictAll(model: tfl.LayersModel, x: tf.Tensor): tf.Tensor[] {
  const y = model.predict(x);
  return Array.isArray(y) ? y : [y];
}

function expectSameOutputs(a: tfl.LayersModel, b: tfl.LayersModel, x: tf.Tensor, tol = 1e-5): void {
  const ya = predictAll(a, x);
  const yb = predictAll(b, x);
  expect(ya.length).toBe(yb.length);
  ya.forEach((t, i) => expect(scaledError(t, yb[i])).toBeLessThan(tol));
  tf.dispose([...ya, ...yb]);
}

/** Non-trivial BatchNormalization statistics so that copying them matters. */
function randomizeNonKernelWeights(model: tfl.LayersModel, seed: number): void {
  for (const layer of model.layers) {
    if (layer.getClassName() === 'BatchNormalization') {
      layer.setWeights(layer.getWeights().map((w, i) => tf.add(tf.abs(randn(w.shape, seed + i)), 0.5)));
    }
  }
}

describe('decompose and fold', () => {
  it.each([
    ['output', 'kernel'],
    ['input', 'filter'],
  ] as const)(
    'Sequential: decompose keeps the outputs, fold gives them back (dense %s, conv2d %s)',
    (dense, conv2d) => {
      const model = lenet5();
      const x = randn([3, 12, 12, 1], 1);
      const d = decompose(model, { granularity: { dense, conv2d } });
      expect(d).toBeInstanceOf(tfl.Sequential);
      expect(d.layers.map((l) => l.getClassName())).toEqual([
        'DecomposedConv2D',
        'MaxPooling2D',
        'DecomposedConv2D',
        'Flatten',
        'DecomposedDense',
        'DecomposedDense',
      ]);
      expect(d.layers.map((l) => l.name)).toEqual(model.layers.map((l) => l.name));
      expect((d.getLayer('fc1') as DecomposedDense).granularity).toBe(dense);
      expect((d.getLayer('conv1') as DecomposedConv2D).granularity).toBe(conv2d);
      expectSameOutputs(model, d, x);
      // Train-like change of the magnitudes, then fold: same outputs as the decomposed model.
      for (const info of magnitudes(d))
        tf.tidy(() =>
          info.magnitude.assign(tf.mul(info.magnitude, tf.add(tf.abs(randn(info.magnitude.shape, 7)), 0.5))),
        );
      const f = fold(d);
      expect(f.layers.map((l) => l.getClassName())).toEqual(model.layers.map((l) => l.getClassName()));
      expectSameOutputs(d, f, x);
      x.dispose();
    },
  );

  it.each([
    [0.1, 'output', 'kernel'],
    [0.5, 'input', 'filter'],
    [0.5, 'output', 'filter'],
  ] as const)(
    'at a large epsilon (%s) decompose still applies the original kernels exactly (dense %s, conv2d %s)',
    (epsilon, dense, conv2d) => {
      const model = lenet5();
      // An all-zero group (fc1's unit 0, or its input 0) gets magnitude 0, the others sqrt(norm^2 + eps^2).
      const fc1 = model.getLayer('fc1');
      const [k, b] = fc1.getWeights();
      const zeroed = tf.tidy(() => {
        const [rows, cols] = k.shape as [number, number];
        const mask = dense === 'output' ? tf.oneHot([0], cols) : tf.transpose(tf.oneHot([0], rows));
        return tf.mul(k, tf.sub(1, mask));
      });
      fc1.setWeights([zeroed, b]);
      const x = randn([3, 12, 12, 1], 1);
      const d = decompose(model, { granularity: { dense, conv2d }, epsilon });
      for (const name of ['conv1', 'conv2', 'fc1', 'fc2']) {
        const layer = d.getLayer(name) as DecomposedDense | DecomposedConv2D;
        const original = model.getLayer(name).getWeights()[0];
        const applied = effectiveKernel(layer);
        expect(scaledError(applied, original)).toBeLessThan(1e-6);
        applied.dispose();
      }
      const g = Array.from((d.getLayer('fc1') as DecomposedDense).getWeights()[1].dataSync());
      expect(g[0]).toBe(0);
      const norms = tf.tidy(
        () => tf.sqrt(tf.sum(tf.square(zeroed), dense === 'output' ? 0 : 1)).arraySync() as number[],
      );
      for (let i = 1; i < g.length; i++) expect(g[i]).toBeCloseTo(Math.sqrt(norms[i] ** 2 + epsilon ** 2), 5);
      expectSameOutputs(model, d, x);
      tf.dispose([x, zeroed]);
    },
  );

  it.each([
    ['output', 'kernel', 1],
    ['input', 'filter', 1],
    ['output', 'kernel', -1],
    ['input', 'filter', -1],
  ] as const)(
    'a group of entries whose squares underflow (+-1e-23) is not a zero group (dense %s, conv2d %s, sign %s)',
    (dense, conv2d, sign) => {
      // Its sum of squares is 0 in float32; only the entries tell it from a pruned group.
      const model = tfl.sequential({
        layers: [
          tfl.layers.conv2d({ inputShape: [4, 4, 2], filters: 3, kernelSize: 2, name: 'c', useBias: false }),
          tfl.layers.flatten(),
          tfl.layers.dense({ units: 3, name: 'd', useBias: false }),
        ],
      });
      // Some entries of the group 0 (so that, with sign -1, its largest entry is 0 and only its
      // largest |entry| tells it from a zero group), the others tiny.
      const tinyOrZero = (idx: number[]) =>
        idx.reduce((t, i) => t + i, 0) % 3 === 0 ? 0 : sign * 1e-23 * (1 + idx[0]);
      const tiny = (name: string, where: (idx: number[]) => boolean) => {
        const layer = model.getLayer(name);
        const [k] = layer.getWeights();
        const v = k.arraySync() as unknown;
        const walk = (a: unknown, idx: number[]): unknown =>
          Array.isArray(a) ? a.map((e, i) => walk(e, [...idx, i])) : where(idx) ? tinyOrZero(idx) : a;
        const edited = tf.tensor(walk(v, []) as number[], k.shape);
        layer.setWeights([edited]);
        edited.dispose();
      };
      // Conv2D: kernel [:, :, 0, 1] (granularity 'kernel') or filter 1; Dense: unit 1 or input 1.
      tiny('c', (i) => i[3] === 1 && (conv2d === 'filter' || i[2] === 0));
      tiny('d', (i) => (dense === 'output' ? i[1] === 1 : i[0] === 1));
      const d = decompose(model, { granularity: { dense, conv2d } });
      for (const info of magnitudes(d)) {
        const g = Array.from(info.magnitude.dataSync());
        // The tiny group gets epsilon (so its kernel is applied exactly); none gets 0.
        expect(g.filter((v) => v === 0)).toEqual([]);
        expect(g.filter((v) => Math.abs(v - info.epsilon) <= 1e-6 * info.epsilon)).toHaveLength(1);
      }
      for (const name of ['c', 'd']) {
        const applied = effectiveKernel(d.getLayer(name) as DecomposedDense | DecomposedConv2D);
        const original = model.getLayer(name).getWeights()[0];
        const [a, o] = [applied.dataSync(), original.dataSync()];
        // Entry by entry, relative to each entry: the 1e-23 ones included.
        for (let i = 0; i < o.length; i++)
          expect(Math.abs(a[i] - o[i])).toBeLessThanOrEqual(1e-6 * Math.abs(o[i]));
        applied.dispose();
      }
      const back = fold(d);
      for (const name of ['c', 'd']) {
        const [a, o] = [
          back.getLayer(name).getWeights()[0].dataSync(),
          model.getLayer(name).getWeights()[0].dataSync(),
        ];
        for (let i = 0; i < o.length; i++)
          expect(Math.abs(a[i] - o[i])).toBeLessThanOrEqual(1e-6 * Math.abs(o[i]));
      }
      [back, d, model].forEach((m) => m.dispose());
    },
  );

  it('a fresh decomposed layer applies its initial direction exactly, at any epsilon', () => {
    for (const epsilon of [1e-6, 0.3]) {
      const dense = decomposedDense({ units: 3, epsilon, kernelInitializer: 'glorotUniform' });
      const conv = decomposedConv2d({ filters: 2, kernelSize: 2, epsilon, granularity: 'filter' });
      tf.tidy(() => {
        dense.apply(tf.zeros([1, 4]));
        conv.apply(tf.zeros([1, 5, 5, 3]));
      });
      for (const layer of [dense, conv]) {
        const applied = effectiveKernel(layer);
        expect(scaledError(applied, layer.getWeights()[0])).toBeLessThan(1e-6);
        applied.dispose();
        layer.dispose();
      }
    }
    expect(() => decomposedDense({ units: 3, epsilon: Infinity })).toThrow(
      /DecomposedDense epsilon must be a finite number >= 1.1e-19 .*, got Infinity/,
    );
    expect(() => decomposedConv2d({ filters: 2, kernelSize: 2, epsilon: Infinity })).toThrow(
      /DecomposedConv2D epsilon must be a finite number >= 1.1e-19 .*, got Infinity/,
    );
  });

  it('functional branching model (add, concatenate, BatchNormalization, two outputs, Dense on rank 4)', () => {
    const model = branching();
    randomizeNonKernelWeights(model, 3);
    const x = randn([2, 8, 8, 2], 2);
    const d = decompose(model);
    expect(d).not.toBeInstanceOf(tfl.Sequential);
    expect(d.outputs.length).toBe(2);
    expect(
      d.layers
        .filter((l) => l instanceof DecomposedDense || l instanceof DecomposedConv2D)
        .map((l) => l.name)
        .sort(),
    ).toEqual(['a_conv', 'b_conv', 'head1', 'head2', 'per_pixel']);
    // The defaults: Conv2D 'kernel' (a magnitude per [input channel, filter]), Dense 'output' (one
    // per unit), DEFAULT_EPSILON; the outputs alone could not tell (they agree at any granularity).
    const expected = (name: string) => {
      const k = (model.getLayer(name) as tfl.layers.Layer).getWeights()[0].shape;
      return k.length === 4
        ? [name, 'kernel', [k[2], k[3]], DEFAULT_EPSILON]
        : [name, 'output', [k[1]], DEFAULT_EPSILON];
    };
    expect(
      magnitudes(d)
        .map((i) => [i.layerName, i.granularity, i.magnitude.shape, i.epsilon])
        .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    ).toEqual(['a_conv', 'b_conv', 'head1', 'head2', 'per_pixel'].map(expected));
    expectSameOutputs(model, d, x);
    const f = fold(d);
    expectSameOutputs(model, f, x);
    expect(JSON.stringify(f.toJSON(null, false))).not.toMatch(/Decomposed/);
    x.dispose();
  });

  it('include selects layers by name or predicate; unknown or non-Dense/Conv2D names are errors', () => {
    const model = lenet5();
    const byName = decompose(model, { include: ['conv2', 'fc2'] });
    expect(byName.layers.map((l) => l.getClassName())).toEqual([
      'Conv2D',
      'MaxPooling2D',
      'DecomposedConv2D',
      'Flatten',
      'Dense',
      'DecomposedDense',
    ]);
    const byPredicate = decompose(model, { include: (l) => l.getClassName() === 'Dense' });
    expect(byPredicate.layers.map((l) => l.getClassName())).toEqual([
      'Conv2D',
      'MaxPooling2D',
      'Conv2D',
      'Flatten',
      'DecomposedDense',
      'DecomposedDense',
    ]);
    expect(
      (decompose(model, { include: ['fc1'], epsilon: 1e-4 }).getLayer('fc1') as DecomposedDense).epsilon,
    ).toBe(1e-4);
    expect(() => decompose(model, { include: ['nope'] })).toThrow(/'nope'/);
    expect(() => decompose(model, { include: [model.layers[1].name] })).toThrow(
      /MaxPooling2D.*only Dense, Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D and SeparableConv2D/,
    );
    const x = randn([2, 12, 12, 1], 4);
    expectSameOutputs(model, byName, x);
    expectSameOutputs(model, fold(byName), x);
    x.dispose();
  });

  it('refuses what is not a model or not an option of the right shape, naming the way out', () => {
    const model = lenet5();
    const layer = tfl.layers.dense({ units: 3, inputShape: [4] });
    expect(() => decompose(layer as never)).toThrow(
      /decompose: expected a tfjs LayersModel, got an object .*a single layer: wrap it, tf.sequential/,
    );
    expect(() => decompose(null as never)).toThrow(/decompose: expected a tfjs LayersModel, got null/);
    expect(() => fold(undefined as never)).toThrow(/fold: expected a tfjs LayersModel, got undefined/);
    expect(() => magnitudes('model.json' as never)).toThrow(/magnitudes: .*got "model.json" \(a string\)/);
    // A string granularity was silently ignored (defaults used).
    expect(() => decompose(model, { granularity: 'input' as never })).toThrow(
      /granularity must be an object such as \{ dense: 'input', conv2d: 'filter' \}, got "input" \(a string\)/,
    );
    expect(() => decompose(model, { include: 'fc1' as never })).toThrow(
      /include must be a list of layer names or a predicate/,
    );
    // A bad granularity is refused even where the model has no layer of that kind.
    const mlp = tfl.sequential({ layers: [tfl.layers.dense({ units: 2, inputShape: [3] })] });
    expect(() => decompose(mlp, { granularity: { conv2d: 'rows' as never } })).toThrow(
      /decompose: granularity.conv2d must be one of 'kernel', 'filter', got "rows"/,
    );
    expect(() => decompose(mlp, { granularity: { dense: 'kernel' as never } })).toThrow(
      /decompose: granularity.dense must be one of 'output', 'input', got "kernel"/,
    );
    expect(() => effectiveKernel(mlp.layers[0] as never)).toThrow(
      /effectiveKernel: expected a DecomposedDense, DecomposedConv1D, DecomposedConv2D, DecomposedConv2DTranspose or DecomposedDepthwiseConv2D layer, got an object \(Dense\).*getWeights\(\)\[0\]/,
    );
  });

  it('refuses a layer holding NaN or an infinity, naming the layer, the weight and the entry', () => {
    // NaN > 0 is false: such a group used to get magnitude 0, and passed for a pruned one.
    const cases: [string, number, number[], RegExp][] = [
      [
        'fc1',
        NaN,
        [7, 2],
        /layer 'fc1' \(Dense\) has 1 non-finite value in weight 'fc1\/kernel' \(the first, at \[7,2\], is NaN\)/,
      ],
      [
        'conv2',
        -Infinity,
        [1, 2, 3, 4],
        /layer 'conv2' \(Conv2D\) has 1 non-finite value in weight 'conv2\/kernel' \(the first, at \[1,2,3,4\], is -Infinity\)/,
      ],
      [
        'conv1',
        Infinity,
        [2],
        /layer 'conv1' \(Conv2D\) has 1 non-finite value in weight 'conv1\/bias' \(the first, at \[2\], is Infinity\)/,
      ],
    ];
    for (const [name, value, at, message] of cases) {
      const model = lenet5();
      const layer = model.getLayer(name);
      const weights = layer.getWeights();
      const w = weights[at.length === 1 ? 1 : 0];
      const values = w.bufferSync();
      values.set(value, ...at);
      layer.setWeights(weights.map((t) => (t === w ? values.toTensor() : t)));
      const before = tf.memory().numTensors;
      expect(() => decompose(model)).toThrow(message);
      expect(() => decompose(model)).toThrow(/diverged or its weights are corrupt: restore a checkpoint/);
      expect(tf.memory().numTensors).toBe(before);
      // Left out, the layer is not looked at.
      decompose(model, { include: (l) => l.name !== name }).dispose();
      model.dispose();
    }
    // Two NaN in one kernel are counted.
    const mlp = tfl.sequential({ layers: [tfl.layers.dense({ units: 2, inputShape: [3], name: 'd' })] });
    mlp.layers[0].setWeights([
      tf.tensor2d([
        [1, NaN],
        [2, 3],
        [NaN, 4],
      ]),
      tf.zeros([2]),
    ]);
    expect(() => decompose(mlp)).toThrow(/layer 'd' \(Dense\) has 2 non-finite values .* at \[0,1\]/);
    // A NaN given as initial weights makes a NaN magnitude, which prox's checks name, not a 0.
    for (const granularity of ['output', 'input'] as const) {
      const layer = decomposedDense({
        units: 2,
        granularity,
        weights: [
          tf.tensor2d([
            [1, NaN],
            [2, 3],
            [0, 4],
          ]),
        ],
        useBias: false,
      });
      layer.apply(tf.zeros([1, 3]));
      const m = Array.from(layer.getWeights()[1].dataSync());
      expect(m.filter(Number.isNaN).length).toBe(1);
      expect(m.filter((v) => v > 0).length).toBe(granularity === 'output' ? 1 : 2); // columns or rows
      layer.dispose();
    }
    mlp.dispose();
  });

  it('refuses weights whose group norm overflows float32, and a bad epsilon, naming decompose', () => {
    const mlp = tfl.sequential({ layers: [tfl.layers.dense({ units: 2, inputShape: [3], name: 'd' })] });
    mlp.layers[0].setWeights([tf.fill([3, 2], 1e19), tf.zeros([2])]);
    const before = tf.memory().numTensors;
    // sqrt(3) * 1e19: the sum of squares, 3e38, is still a float32; 4 such entries would not be.
    decompose(mlp).dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.tidy(() => mlp.layers[0].setWeights([tf.fill([3, 2], 3e19), tf.zeros([2])]));
    expect(() => decompose(mlp)).toThrow(
      /decompose: layer 'd' has a group of weights whose norm overflows float32/,
    );
    expect(tf.memory().numTensors).toBe(before);
    expect(() => decompose(mlp, { epsilon: 1e-30 })).toThrow(
      /decompose: epsilon must be a finite number >= 1.1e-19 and <= 9.2e18 \(its square must be a normal float32.*got 1e-30/,
    );
    expect(() => decompose(mlp, { epsilon: 1e21 })).toThrow(
      /decompose: epsilon must be a finite number >= 1.1e-19 and <= 9.2e18 \(its square must be a normal float32.*got 1e\+21/,
    );
    expect(() => decompose(mlp, { epsilon: '1e-3' as never })).toThrow(
      /decompose: epsilon .*got "1e-3" \(a string\)/,
    );
    mlp.dispose();
  });

  it('warns for a layer whose every group is zero, which could never train, and not for pruned groups', () => {
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      const zero = tfl.sequential({
        layers: [
          tfl.layers.dense({ units: 4, inputShape: [3], name: 'hidden', kernelInitializer: 'zeros' }),
          tfl.layers.dense({ units: 2, name: 'out' }),
        ],
      });
      decompose(zero).dispose();
      expect(warn).toHaveBeenCalledTimes(1);
      expect(warn.mock.calls[0][0]).toMatch(
        /decompose: every group of layer 'hidden' is zero \(a zero-initialised kernel\?\): .*will not train/,
      );
      // Some zero groups are pruned units: no warning.
      warn.mockClear();
      tf.tidy(() =>
        zero.layers[0].setWeights([tf.concat([tf.ones([3, 2]), tf.zeros([3, 2])], 1), tf.zeros([4])]),
      );
      decompose(zero).dispose();
      expect(warn).not.toHaveBeenCalled();
      zero.dispose();
    } finally {
      warn.mockRestore();
    }
  });

  describe('wrapper layers holding a Dense or Conv2D', () => {
    let warn: jest.SpyInstance;
    beforeEach(() => {
      warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    });
    afterEach(() => warn.mockRestore());
    const seeded = (seed: number) => tfl.initializers.glorotUniform({ seed });

    it.each([
      [
        'DecomposedDense',
        () => decomposedDense({ units: 2, name: 'inner' }),
        [3, 4],
        /A TimeDistributed\(Dense\) computes what a Dense applied to the same input does/,
      ],
      [
        'DecomposedConv2D',
        () => decomposedConv2d({ filters: 2, kernelSize: 3, name: 'inner' }),
        [3, 5, 5, 1],
        /Otherwise keep the layer inside the wrapper plain$/,
      ],
    ])(
      'a %s inside TimeDistributed (built by hand) is refused by magnitudes and fold',
      (cls, inner, shape, hint) => {
        const model = tfl.sequential({
          layers: [tfl.layers.timeDistributed({ inputShape: shape, name: 'td', layer: inner() })],
        });
        for (const [who, call] of [
          ['magnitudes', () => magnitudes(model)],
          ['fold', () => fold(model)],
        ] as const) {
          const before = tf.memory().numTensors;
          expect(call).toThrow(
            `${who}: layer 'td' (TimeDistributed) wraps the decomposed layer 'inner' (${cls}): a decomposed layer ` +
              'inside a wrapper is not supported',
          );
          expect(call).toThrow(hint);
          expect(tf.memory().numTensors).toBe(before);
        }
        model.dispose();
      },
    );

    it('TimeDistributed(Dense) stays plain, and decompose says so, naming it', () => {
      const model = tfl.sequential({
        layers: [
          tfl.layers.timeDistributed({
            inputShape: [3, 4],
            name: 'td',
            layer: tfl.layers.dense({ units: 2, name: 'inner', kernelInitializer: seeded(1) }),
          }),
        ],
      });
      const before = tf.memory().numTensors;
      const d = decompose(model);
      expect(d.layers.map((l) => l.getClassName())).toEqual(['TimeDistributed']);
      expect(magnitudes(d)).toEqual([]);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(warn.mock.calls[0][0]).toBe(
        "decompose: a wrapper layer holds a Dense, Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D or SeparableConv2D that stays plain: 'td' (TimeDistributed of Dense " +
          "'inner'). decompose() replaces only the Dense, Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D and SeparableConv2D layers of the model and of its nested models, " +
          'not a layer inside a wrapper, so magnitudes() does not list it and the proximal optimisers do not prune ' +
          'it. A TimeDistributed(Dense) computes what a Dense applied to the same input does (a Dense acts on the ' +
          'last axis of any rank), so build the model with the Dense itself to decompose it. Leave it out with ' +
          'include to silence this warning',
      );
      d.dispose();
      expect(tf.memory().numTensors).toBe(before);
      // What the hint says: the Dense on the 3-D input, with the same weights, gives the same outputs.
      const dense = tfl.sequential({
        layers: [tfl.layers.dense({ inputShape: [3, 4], units: 2, name: 'fc' })],
      });
      dense.setWeights(model.getWeights());
      const x = randn([5, 3, 4], 2);
      const [a, b, c] = [model, dense, decompose(dense)].map((m) => m.predict(x) as tf.Tensor);
      expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
      expect(scaledError(c, a)).toBeLessThan(1e-6);
      tf.dispose([x, a, b, c]);
      expect(warn).toHaveBeenCalledTimes(1);
      for (const m of [model, dense]) m.dispose();
    });

    it('lists every such wrapper of a functional model, nested ones by path, in one warning', () => {
      const block = tfl.sequential({
        name: 'block',
        layers: [
          tfl.layers.timeDistributed({
            inputShape: [3, 4],
            name: 'td',
            layer: tfl.layers.dense({ units: 4, name: 'blockDense' }),
          }),
        ],
      });
      const images = tfl.input({ shape: [2, 6, 6, 1] });
      const conv = tfl.layers
        .timeDistributed({ name: 'tdc', layer: tfl.layers.conv2d({ filters: 2, kernelSize: 3, name: 'cv' }) })
        .apply(images) as tfl.SymbolicTensor;
      const seq = tfl.input({ shape: [3, 4] });
      const twice = tfl.layers
        .timeDistributed({
          name: 'tdtd',
          layer: tfl.layers.timeDistributed({ layer: tfl.layers.dense({ units: 2, name: 'deep' }) }),
        })
        .apply(tfl.layers.reshape({ targetShape: [3, 2, 2] }).apply(seq)) as tfl.SymbolicTensor;
      const fc = tfl.layers.dense({ units: 3, name: 'fc' }).apply(block.apply(seq)) as tfl.SymbolicTensor;
      const model = tfl.model({ inputs: [images, seq], outputs: [conv, twice, fc] });
      const d = decompose(model);
      expect(magnitudes(d).map((m) => m.layerName)).toEqual(['fc']);
      expect(warn).toHaveBeenCalledTimes(1);
      const text = warn.mock.calls[0][0] as string;
      expect(text).toMatch(
        new RegExp(
          "^decompose: 3 wrapper layers hold a Dense, Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D or SeparableConv2D that stays plain: 'block/td' \\(TimeDistributed " +
            "of Dense 'blockDense'\\), 'tdc' \\(TimeDistributed of Conv2D 'cv'\\), 'tdtd' \\(TimeDistributed of " +
            "TimeDistributed of Dense 'deep'\\)\\. ",
        ),
      );
      expect(text).toContain('A TimeDistributed(Dense) computes');
      for (const m of [d, model]) m.dispose();
    });

    it('a Conv2D alone gets no Dense hint; a Bidirectional LSTM holds no Dense and gets no warning', () => {
      const conv = tfl.sequential({
        layers: [
          tfl.layers.timeDistributed({
            inputShape: [2, 5, 5, 1],
            name: 'tdc',
            layer: tfl.layers.conv2d({ filters: 2, kernelSize: 3, name: 'cv' }),
          }),
        ],
      });
      decompose(conv).dispose();
      expect(warn).toHaveBeenCalledTimes(1);
      expect(warn.mock.calls[0][0]).toMatch(
        /'tdc' \(TimeDistributed of Conv2D 'cv'\)\. decompose\(\) replaces/,
      );
      expect(warn.mock.calls[0][0]).not.toContain('A TimeDistributed(Dense)');
      warn.mockClear();
      const rnn = tfl.sequential({
        layers: [
          tfl.layers.bidirectional({
            inputShape: [3, 4],
            layer: tfl.layers.lstm({ units: 2, recurrentInitializer: 'glorotUniform' }) as tfl.RNN,
          }),
          tfl.layers.dense({ units: 1, name: 'out' }),
        ],
      });
      const d = decompose(rnn);
      expect(magnitudes(d).map((m) => m.layerName)).toEqual(['out']);
      expect(warn).not.toHaveBeenCalled();
      for (const m of [conv, rnn, d]) m.dispose();
    });

    it('is quiet when include leaves the wrapped layer out, and include naming it is refused naming the wrapper', () => {
      const model = tfl.sequential({
        layers: [
          tfl.layers.timeDistributed({
            inputShape: [3, 4],
            name: 'td',
            layer: tfl.layers.dense({ units: 4, name: 'inner' }),
          }),
          tfl.layers.dense({ units: 2, name: 'fc' }),
        ],
      });
      decompose(model, { include: ['fc'] }).dispose();
      decompose(model, { include: (l) => l.name !== 'inner' }).dispose();
      expect(warn).not.toHaveBeenCalled();
      decompose(model, { include: (l) => l.name !== 'fc' }).dispose();
      expect(warn).toHaveBeenCalledTimes(1);
      expect(warn.mock.calls[0][0]).toMatch(
        /^decompose: a wrapper layer holds a Dense, Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D or SeparableConv2D that stays plain: 'td'/,
      );
      expect(() => decompose(model, { include: ['inner'] })).toThrow(
        "decompose: include names layer 'inner', which is inside the TimeDistributed layer 'td'; decompose() does not " +
          'reach into wrapper layers. A TimeDistributed(Dense) computes what a Dense applied to the same input does',
      );
      model.dispose();
    });
  });

  it('include takes the paths magnitudes() reports, to pick one of two same-named nested layers', () => {
    const block = (name: string) =>
      tfl.sequential({ name, layers: [tfl.layers.dense({ units: 3, inputShape: [3], name: 'fc' })] });
    const input = tfl.input({ shape: [3] });
    const out = block('blockB').apply(block('blockA').apply(input)) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: input, outputs: out });
    const one = decompose(model, { include: ['blockA/fc'] });
    expect(magnitudes(one).map((m) => m.layerName)).toEqual(['blockA/fc']);
    const both = decompose(model, { include: ['fc'] });
    expect(magnitudes(both).map((m) => m.layerName)).toEqual(['blockA/fc', 'blockB/fc']);
    expect(() => decompose(model, { include: ['blockC/fc'] })).toThrow(
      /include names layer 'blockC\/fc', which model/,
    );
    for (const m of [one, both, model]) m.dispose();
  });

  it('decomposes and folds nested models (a Sequential block inside a functional model inside a Sequential)', async () => {
    const block = tfl.sequential({
      name: 'block',
      layers: [
        tfl.layers.conv2d({
          inputShape: [6, 6, 2],
          filters: 3,
          kernelSize: 3,
          activation: 'relu',
          name: 'b_conv',
        }),
        tfl.layers.flatten({ name: 'b_flat' }),
        tfl.layers.dense({ units: 4, activation: 'tanh', name: 'b_dense' }),
      ],
    });
    const input = tfl.input({ shape: [6, 6, 2] });
    const features = block.apply(input) as tfl.SymbolicTensor;
    const head = tfl.layers.dense({ units: 2, name: 'head' }).apply(features) as tfl.SymbolicTensor;
    const middle = tfl.model({ inputs: input, outputs: head, name: 'middle' });
    const outer = tfl.sequential({ layers: [middle, tfl.layers.dense({ units: 3, name: 'top' })] });
    const x = randn([2, 6, 6, 2], 8);
    const d = decompose(outer, { include: ['b_conv', 'head', 'top'] });
    const classes = (m: tfl.LayersModel): unknown[] =>
      m.layers.map((l) => (l instanceof tfl.LayersModel ? classes(l) : l.getClassName()));
    expect(classes(d)).toEqual([
      ['InputLayer', ['DecomposedConv2D', 'Flatten', 'Dense'], 'DecomposedDense'],
      'DecomposedDense',
    ]);
    expectSameOutputs(outer, d, x);
    expect(magnitudes(d).map((i) => i.layerName)).toEqual(['b_conv', 'head', 'top']);
    // Two blocks whose layers share a name: each goes by its path, so that they stay apart.
    const makeBlock = (name: string) =>
      tfl.sequential({ name, layers: [tfl.layers.dense({ inputShape: [3], units: 3, name: 'fc' })] });
    const twoBlocks = tfl.sequential({
      layers: [makeBlock('blockA'), makeBlock('blockB'), tfl.layers.dense({ units: 2, name: 'out' })],
    });
    const infos = magnitudes(decompose(twoBlocks));
    expect(infos.map((i) => i.layerName)).toEqual(['blockA/fc', 'blockB/fc', 'out']);
    expect(infos[0].layer).not.toBe(infos[1].layer);
    for (const info of magnitudes(d)) {
      tf.tidy(() => {
        info.magnitude.assign(tf.mul(info.magnitude, 0.5));
      });
    }
    const f = fold(d);
    expect(classes(f)).toEqual(classes(outer));
    expectSameOutputs(d, f, x);
    // Nested decomposed layers survive a save / load.
    const artifacts = await saveInMemory(d);
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts));
    expect(classes(loaded)).toEqual(classes(d));
    expectSameOutputs(d, loaded, x);
    x.dispose();
  });

  it("keeps the model's userDefinedMetadata through decompose and fold, as a copy", async () => {
    for (const make of [lenet5, branching]) {
      const m = make();
      const meta = { labels: ['zero', 'one'], preprocessing: { scale: 1 / 255 } };
      m.setUserDefinedMetadata(meta);
      const d = decompose(m);
      const f = fold(d);
      expect([d.getUserDefinedMetadata(), f.getUserDefinedMetadata()]).toEqual([meta, meta]);
      // A copy: changing the original's afterwards changes neither.
      meta.labels.push('two');
      expect((d.getUserDefinedMetadata() as typeof meta).labels).toEqual(['zero', 'one']);
      // Saved with the model, as tfjs saves a plain one's.
      const artifacts = await saveInMemory(f);
      expect(artifacts.userDefinedMetadata).toEqual({
        labels: ['zero', 'one'],
        preprocessing: { scale: 1 / 255 },
      });
      // A model without metadata gets none.
      const plain = make();
      expect(decompose(plain).getUserDefinedMetadata()).toBeUndefined();
      for (const x of [m, d, f, plain]) x.dispose();
    }
  });

  it('keeps a nested model frozen as a whole (base.trainable = false) frozen through decompose and fold', () => {
    const names = (ws: tfl.LayerVariable[]) => ws.map((w) => w.originalName).sort();
    for (const nesting of ['sequential', 'functional'] as const) {
      const base = tfl.sequential({
        name: 'base',
        layers: [
          tfl.layers.dense({ inputShape: [4], units: 3, activation: 'relu', name: 'b1' }),
          tfl.layers.dense({ units: 3, name: 'b2' }),
        ],
      });
      const head = tfl.layers.dense({ units: 2, name: 'head' });
      let model: tfl.LayersModel;
      if (nesting === 'sequential') model = tfl.sequential({ layers: [base, head] });
      else {
        const input = tfl.input({ shape: [4] });
        const out = head.apply(base.apply(input)) as tfl.SymbolicTensor;
        model = tfl.model({ inputs: input, outputs: out });
      }
      base.trainable = false;
      const d = decompose(model);
      const f = fold(d);
      for (const [m, trained] of [
        [d, ['head/bias', 'head/direction', 'head/magnitude']],
        [f, ['head/bias', 'head/kernel']],
      ] as const) {
        expect([nesting, (m.getLayer('base') as tfl.LayersModel).trainable]).toEqual([nesting, false]);
        expect([nesting, names(m.trainableWeights)]).toEqual([nesting, trained]);
        expect(m.nonTrainableWeights.length).toBe(m.weights.length - trained.length);
      }
      // A model frozen whole stays frozen too; an unfrozen one stays trainable.
      model.trainable = false;
      const frozen = decompose(model);
      expect([frozen.trainable, frozen.trainableWeights.length]).toEqual([false, 0]);
      base.trainable = true;
      model.trainable = true;
      const open = decompose(model);
      expect(open.trainableWeights.length).toBe(9);
      for (const m of [model, d, f, frozen, open]) m.dispose();
    }
  });

  it('rejects channelsFirst convolutions with an error naming the layer and the include way out', () => {
    const cf = tfl.sequential({
      layers: [
        tfl.layers.conv2d({
          inputShape: [2, 5, 5],
          filters: 2,
          kernelSize: 3,
          dataFormat: 'channelsFirst',
          name: 'cf_conv',
        }),
        tfl.layers.flatten(),
        tfl.layers.dense({ units: 3, name: 'cf_dense' }),
      ],
    });
    expect(() => decompose(cf)).toThrow(/'cf_conv'.*channelsFirst.*include.*layer\.name !== 'cf_conv'/);
    expect(() => decompose(cf, { include: ['cf_conv'] })).toThrow(/include/);
    // What the message suggests works: the other layers are decomposed, the outputs kept.
    const d = decompose(cf, { include: (layer) => layer.name !== 'cf_conv' });
    expect(d.layers.map((l) => l.getClassName())).toEqual(['Conv2D', 'Flatten', 'DecomposedDense']);
    const x = randn([2, 2, 5, 5], 9);
    expectSameOutputs(cf, d, x);
    x.dispose();
  });

  it('handles an explicit InputLayer and a layer shared by two call sites', () => {
    const seq = tfl.sequential();
    seq.add(tfl.layers.inputLayer({ inputShape: [5] }));
    seq.add(tfl.layers.dense({ units: 3, name: 'a' }));
    const dseq = decompose(seq);
    expect(dseq.layers.map((l) => l.getClassName())).toEqual(['InputLayer', 'DecomposedDense']);
    const x = randn([2, 5], 5);
    expectSameOutputs(seq, dseq, x);
    const inp = tfl.input({ shape: [4] });
    const shared = tfl.layers.dense({ units: 4, name: 'shared', activation: 'tanh' });
    const m = tfl.model({ inputs: inp, outputs: shared.apply(shared.apply(inp)) as tfl.SymbolicTensor });
    const dm = decompose(m);
    const x2 = randn([3, 4], 6);
    expectSameOutputs(m, dm, x2);
    expectSameOutputs(m, fold(dm), x2);
    expect(magnitudes(dm).map((i) => i.layerName)).toEqual(['shared']);
    tf.dispose([x, x2]);
  });

  it('the original model is untouched and the new one owns its weights', () => {
    const model = lenet5();
    const before = model.getLayer('fc1').getWeights()[0].dataSync().slice();
    const d = decompose(model);
    const info = magnitudes(d).find((i) => i.layerName === 'fc1')!;
    tf.tidy(() => info.direction.assign(tf.zerosLike(info.direction)));
    expect(Array.from(model.getLayer('fc1').getWeights()[0].dataSync())).toEqual(Array.from(before));
  });
});

describe('regularizers', () => {
  it('a kernelRegularizer penalises the kernel the layer applies, so decompose() keeps weight decay and fold() agrees', () => {
    const plain = tfl.sequential({
      layers: [
        tfl.layers.conv2d({
          inputShape: [5, 5, 2],
          filters: 3,
          kernelSize: 3,
          kernelRegularizer: tfl.regularizers.l1({ l1: 0.01 }),
          kernelInitializer: seeded(1),
          name: 'c',
        }),
        tfl.layers.flatten(),
        tfl.layers.dense({
          units: 4,
          kernelRegularizer: tfl.regularizers.l2({ l2: 0.1 }),
          kernelInitializer: seeded(2),
          name: 'd',
        }),
      ],
    });
    // the layers' own regularisation losses (a Sequential lists none until it is compiled)
    const penalty = (m: tfl.LayersModel) =>
      tf.tidy(() => tf.addN(m.layers.flatMap((l) => l.calculateLosses())).dataSync()[0]);
    const dec = decompose(plain, { granularity: { conv2d: 'filter' } });
    expect(penalty(dec)).toBeCloseTo(penalty(plain), 5);
    // The same effective kernels written differently: longer directions, and twice the magnitudes.
    for (const m of magnitudes(dec)) {
      tf.tidy(() => {
        m.direction.assign(tf.mul(m.direction, 3));
        m.magnitude.assign(tf.mul(m.magnitude, 2));
      });
    }
    const folded = fold(dec);
    const expected = penalty(folded);
    // the plain layers' penalty of the kernels applied (2 W): between 2 and 4 times the original
    expect(expected).toBeGreaterThan(2 * penalty(plain));
    expect(Math.abs(penalty(dec) - expected) / expected).toBeLessThan(1e-5);
    [plain, dec, folded].forEach((m) => m.dispose());
  });
});

describe('magnitudes', () => {
  it('lists every decomposed layer with its variables, groups, params and MACs per group', () => {
    const model = tfl.sequential({
      layers: [
        decomposedConv2d({ inputShape: [28, 28, 1], filters: 20, kernelSize: 5, name: 'c1' }), // out 24x24
        tfl.layers.maxPooling2d({ poolSize: 2 }), // 12x12
        decomposedConv2d({
          filters: 50,
          kernelSize: 5,
          strides: 2,
          padding: 'same',
          name: 'c2',
          granularity: 'filter',
        }), // out 6x6
        tfl.layers.reshape({ targetShape: [36, 50] }),
        decomposedDense({ units: 7, name: 'd_seq', granularity: 'input' }), // on [36, 50]: 36 positions
        tfl.layers.flatten(),
        decomposedDense({ units: 10, name: 'd_out' }),
      ],
    });
    const infos = magnitudes(model);
    const summary = infos.map(
      ({ layerName, granularity, groups, paramsPerGroup, macsPerGroup, normAxes }) => ({
        layerName,
        granularity,
        groups,
        paramsPerGroup,
        macsPerGroup,
        normAxes,
      }),
    );
    expect(summary).toEqual([
      {
        layerName: 'c1',
        granularity: 'kernel',
        groups: 1 * 20,
        paramsPerGroup: 25,
        macsPerGroup: 25 * 24 * 24,
        normAxes: [0, 1],
      },
      {
        layerName: 'c2',
        granularity: 'filter',
        groups: 50,
        paramsPerGroup: 25 * 20,
        macsPerGroup: 25 * 20 * 6 * 6,
        normAxes: [0, 1, 2],
      },
      {
        layerName: 'd_seq',
        granularity: 'input',
        groups: 50,
        paramsPerGroup: 7,
        macsPerGroup: 7 * 36,
        normAxes: [1],
      },
      {
        layerName: 'd_out',
        granularity: 'output',
        groups: 10,
        paramsPerGroup: 36 * 7,
        macsPerGroup: 36 * 7,
        normAxes: [0],
      },
    ]);
    // Total MACs of a layer = groups * macsPerGroup, whatever the granularity.
    expect(infos[0].groups * infos[0].macsPerGroup).toBe(5 * 5 * 1 * 20 * 24 * 24);
    expect(infos[1].groups * infos[1].macsPerGroup).toBe(5 * 5 * 20 * 50 * 6 * 6);
    // The variables are the ones training updates.
    const c1 = model.getLayer('c1') as DecomposedConv2D;
    expect(infos[0].magnitude).toBe(c1.magnitude!.read());
    expect(infos[0].direction).toBe(c1.direction!.read());
    expect(model.trainableWeights.map((w) => w.read())).toContain(infos[0].magnitude);
    expect(infos[0].epsilon).toBe(1e-6);
    expect(infos[0].layer).toBe(c1);
  });

  it('MACs count every call the model makes: a shared layer, a nested model called twice, not those of another model', () => {
    // A conv applied to two inputs of different sizes (8x8 and 6x6 outputs, padding same).
    const conv = decomposedConv2d({
      filters: 2,
      kernelSize: 3,
      padding: 'same',
      name: 'shared',
      granularity: 'kernel',
    });
    const a = tfl.input({ shape: [8, 8, 3] });
    const b = tfl.input({ shape: [6, 6, 3] });
    const pool = (t: tfl.SymbolicTensor) =>
      tfl.layers.globalAveragePooling2d({}).apply(t) as tfl.SymbolicTensor;
    const joined = tfl.layers
      .concatenate()
      .apply([pool(conv.apply(a) as tfl.SymbolicTensor), pool(conv.apply(b) as tfl.SymbolicTensor)]);
    const siamese = tfl.model({ inputs: [a, b], outputs: joined as tfl.SymbolicTensor });
    const [shared] = magnitudes(siamese);
    expect(shared.macsPerGroup).toBe(9 * (8 * 8 + 6 * 6));

    // The same layer in a second model that applies it once, to a third size: only that call.
    const c = tfl.input({ shape: [4, 4, 3] });
    const other = tfl.model({ inputs: c, outputs: conv.apply(c) as tfl.SymbolicTensor });
    expect(magnitudes(other)[0].macsPerGroup).toBe(9 * 4 * 4);
    expect(magnitudes(siamese)[0].macsPerGroup).toBe(9 * (8 * 8 + 6 * 6));

    // A nested model called on two inputs runs its layers twice per sample.
    const inner = tfl.sequential({
      name: 'inner',
      layers: [decomposedDense({ inputShape: [5], units: 3, name: 'fc' })],
    });
    const x1 = tfl.input({ shape: [5] });
    const x2 = tfl.input({ shape: [5] });
    const outer = tfl.model({
      inputs: [x1, x2],
      outputs: tfl.layers
        .add()
        .apply([
          inner.apply(x1) as tfl.SymbolicTensor,
          inner.apply(x2) as tfl.SymbolicTensor,
        ]) as tfl.SymbolicTensor,
    });
    expect(magnitudes(inner)[0].macsPerGroup).toBe(5);
    expect(magnitudes(outer)[0].macsPerGroup).toBe(2 * 5);
  });

  it('MACs are NaN when the spatial size is unknown', () => {
    const model = tfl.sequential({
      layers: [decomposedConv2d({ inputShape: [null, null, 3], filters: 2, kernelSize: 3 })],
    });
    const [info] = magnitudes(model);
    expect(info.paramsPerGroup).toBe(9);
    expect(Number.isNaN(info.macsPerGroup)).toBe(true);
  });
});

describe('serialisation', () => {
  function smallModel(): tfl.Sequential {
    return tfl.sequential({
      layers: [
        decomposedConv2d({
          inputShape: [6, 6, 2],
          filters: 3,
          kernelSize: 3,
          activation: 'relu',
          granularity: 'filter',
          name: 'c',
        }),
        tfl.layers.flatten(),
        decomposedDense({ units: 4, activation: 'softmax', granularity: 'input', epsilon: 1e-4, name: 'd' }),
      ],
    });
  }

  it('getConfig / fromConfig round-trips a whole model', () => {
    const model = smallModel();
    const config = model.getConfig();
    const again = tfl.Sequential.fromConfig(
      tfl.Sequential,
      JSON.parse(JSON.stringify(config)),
    ) as tfl.Sequential;
    expect(again.getConfig()).toEqual(config);
  });

  it('saves and loads through tf.io.withSaveHandler / fromMemory', async () => {
    const model = smallModel();
    for (const info of magnitudes(model))
      tf.tidy(() => info.magnitude.assign(randn(info.magnitude.shape, 9)));
    const artifacts = await saveInMemory(model);
    expect(artifacts.weightSpecs!.map((s) => s.name)).toEqual([
      'c/direction',
      'c/magnitude',
      'c/bias',
      'd/direction',
      'd/magnitude',
      'd/bias',
    ]);
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts));
    expect(loaded.layers[2]).toBeInstanceOf(DecomposedDense);
    expect((loaded.layers[2] as DecomposedDense).epsilon).toBe(1e-4);
    const x = randn([2, 6, 6, 2], 10);
    expectSameOutputs(model, loaded, x, 1e-6);
    x.dispose();
  });

  it('a model saved with its proximal optimiser needs @normprune/prox to load; without its training config this package is enough', async () => {
    const model = smallModel();
    const artifacts = await saveInMemory(model);
    // What model.save(handler, { includeOptimizer: true }) writes with a ProximalSGD (this test
    // file does not import @normprune/prox, so the class is not registered).
    const withOptimizer: tf.io.ModelArtifacts = {
      ...artifacts,
      trainingConfig: {
        loss: 'mean_squared_error',
        metrics: [],
        optimizer_config: { class_name: 'ProximalSGD', config: { learningRate: 0.1, lambda: 0.01 } },
      },
    };
    // tfjs's own message, which calls the optimiser a layer; the README names the fix.
    await expect(tfl.loadLayersModel(tf.io.fromMemory(withOptimizer))).rejects.toThrow(
      /Unknown layer: ProximalSGD/,
    );
    const { trainingConfig: _dropped, ...inference } = withOptimizer;
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(inference));
    const x = randn([2, 6, 6, 2], 12);
    expectSameOutputs(model, loaded, x, 1e-6);
    x.dispose();
  });

  it("saves and loads through @normprune/runtime's fileSystem; a folded model loads as plain tfjs", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-layers-'));
    try {
      const model = smallModel();
      await model.save(fileSystem(path.join(dir, 'decomposed')));
      const loaded = await tfl.loadLayersModel(fileSystem(path.join(dir, 'decomposed')));
      expect(loaded.layers.map((l) => l.getClassName())).toEqual([
        'DecomposedConv2D',
        'Flatten',
        'DecomposedDense',
      ]);
      const x = randn([2, 6, 6, 2], 11);
      expectSameOutputs(model, loaded, x, 1e-6);
      await fold(loaded).save(fileSystem(path.join(dir, 'folded')));
      const json = fs.readFileSync(path.join(dir, 'folded', 'model.json'), 'utf8');
      expect(json).not.toMatch(/Decomposed|granularity|magnitude|direction/);
      const plain = await tfl.loadLayersModel(fileSystem(path.join(dir, 'folded')));
      expect(plain.layers.map((l) => l.getClassName())).toEqual(['Conv2D', 'Flatten', 'Dense']);
      expectSameOutputs(model, plain, x);
      x.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

const seeded = (seed: number) => tfl.initializers.glorotNormal({ seed });

describe('training', () => {
  it('trains (loss decreases) and keeps tf.memory().numTensors flat', async () => {
    const model = tfl.sequential({
      layers: [
        decomposedConv2d({
          inputShape: [6, 6, 1],
          filters: 4,
          kernelSize: 3,
          activation: 'relu',
          kernelInitializer: seeded(1),
        }),
        tfl.layers.flatten(),
        decomposedDense({ units: 8, activation: 'relu', kernelInitializer: seeded(2) }),
        decomposedDense({
          units: 2,
          activation: 'softmax',
          granularity: 'input',
          kernelInitializer: seeded(3),
        }),
      ],
    });
    model.compile({ optimizer: tf.train.adam(0.01), loss: 'sparseCategoricalCrossentropy' });
    const x = randn([32, 6, 6, 1], 12);
    const y = tf.tidy(() => tf.cast(tf.greater(tf.sum(x, [1, 2, 3]), 0), 'float32'));
    const first = (await model.trainOnBatch(x, y)) as number; // creates the optimiser's slots
    let last = first;
    await expectNoLeak(async () => {
      for (let i = 0; i < 30; i++) last = (await model.trainOnBatch(x, y)) as number;
    });
    expect(last).toBeLessThan(first);
    // A custom loop through tf.variableGrads, as the proximal optimiser does.
    const opt = tf.train.sgd(0.05);
    const step = () =>
      tf.tidy(() => {
        opt.minimize(
          () =>
            tf.losses.softmaxCrossEntropy(
              tf.oneHot(tf.cast(y, 'int32'), 2),
              model.apply(x) as tf.Tensor,
            ) as tf.Scalar,
        );
      });
    step();
    await expectNoLeak(() => {
      for (let i = 0; i < 5; i++) step();
    });
    for (const info of magnitudes(model)) {
      const k = await expectNoLeak(() => effectiveKernel(info.layer), 1);
      k.dispose();
    }
    tf.dispose([x, y]);
  });
});
