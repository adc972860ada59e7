import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import * as layers from '@normprune/layers';
import { decompose } from '@normprune/layers';
import { analyze, kernelMask, prune } from '../src/index';
import { expectNoLeak } from '../../../tools/testing/leaks';
import { lenet5, zeroKernelWhere, zeroUnits } from './helpers';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function zeroCount(t: tf.Tensor): number {
  return Array.from(t.dataSync()).filter((v) => v === 0).length;
}

describe('kernelMask', () => {
  it('keeps pruned 2-D kernels at zero through model.fit with Adam', async () => {
    const m = lenet5(true);
    zeroUnits(m, 'conv2', [1]);
    zeroKernelWhere(m, 'conv2', (i, o) => (i * 3 + o) % 4 === 0);
    zeroKernelWhere(m, 'fc1', (i, o) => (i + o) % 5 === 0);
    const { model } = prune(m);
    const mask = kernelMask(model);
    const conv2Zeros = zeroCount(model.getLayer('conv2').getWeights()[0]);
    expect(conv2Zeros).toBeGreaterThan(0);
    expect(mask.layers.find((l) => l.name === 'conv2')!.zeros).toBe(conv2Zeros);
    const before = model.getLayer('conv2').getWeights()[0].dataSync().slice();

    model.compile({ optimizer: tf.train.adam(0.01), loss: 'sparseCategoricalCrossentropy' });
    const xs = tf.randomNormal([8, 28, 28, 1], 0, 1, 'float32', 4);
    const ys = tf.tensor1d(
      Array.from({ length: 8 }, (_, i) => i % 10),
      'float32',
    );
    // The first fit creates Adam's moment tensors; from then on training must keep numTensors flat.
    await model.fit(xs, ys, { epochs: 1, batchSize: 4, callbacks: [mask.callback], verbose: 0 });
    await expectNoLeak(async () => {
      await model.fit(xs, ys, { epochs: 1, batchSize: 4, callbacks: [mask.callback], verbose: 0 });
    }, 0);
    const after = model.getLayer('conv2').getWeights()[0].dataSync();
    expect(zeroCount(model.getLayer('conv2').getWeights()[0])).toBe(conv2Zeros);
    for (let i = 0; i < before.length; i++) if (before[i] === 0) expect(Math.abs(after[i])).toBe(0);
    // The live weights did train.
    expect(Array.from(after).some((v, i) => v !== before[i])).toBe(true);
    tf.dispose([xs, ys]);
    mask.dispose();
  });

  it('zeroes the kernels before the first batch: weights written after kernelMask() do not reach its loss', async () => {
    const m = tfl.sequential({ layers: [tfl.layers.dense({ units: 2, inputShape: [3], name: 'd' })] });
    zeroKernelWhere(m, 'd', (i) => i === 1);
    const mask = kernelMask(m);
    // Written between kernelMask() and fit (as setWeights or loadWeights would): a 5 where the mask has 0.
    // getWeights() gives the variables' own tensors: the mask is taken before they are written.
    const [k, b] = m.getLayer('d').getWeights();
    const keep = tf.tidy(() => tf.notEqual(k, 0));
    const written = tf.tidy(() => tf.add(k, tf.mul(tf.equal(k, 0), 5)));
    m.getLayer('d').setWeights([written, b]);
    const xs = tf.tensor2d([
      [1, 2, 3],
      [-1, 0.5, 2],
    ]);
    const ys = tf.tensor2d([
      [0, 1],
      [1, 0],
    ]);
    m.compile({ optimizer: tf.train.sgd(0), loss: 'meanSquaredError' });
    const h = await m.fit(xs, ys, { epochs: 1, batchSize: 2, callbacks: [mask.callback], verbose: 0 });
    // The loss of the masked model (row 1 of the kernel zero), computed by hand.
    const expected = tf.tidy(() => {
      const masked = tf.mul(written, keep);
      return tf.losses.meanSquaredError(ys, tf.add(tf.matMul(xs, masked), b)).dataSync()[0];
    });
    expect(h.history['loss'][0]).toBeCloseTo(expected, 6);
    tf.dispose([keep, written, xs, ys]);
    mask.dispose();
  });

  it('apply() restores zeros after a custom optimiser step', () => {
    const m = tfl.sequential({ layers: [tfl.layers.dense({ units: 3, inputShape: [4], name: 'd' })] });
    zeroKernelWhere(m, 'd', (i) => i === 2);
    const mask = kernelMask(m);
    const opt = tf.train.sgd(0.5);
    const x = tf.ones([2, 4]);
    opt.minimize(() => tf.sum(m.predict(x) as tf.Tensor) as tf.Scalar);
    expect(zeroCount(m.getLayer('d').getWeights()[0])).toBe(0);
    mask.apply();
    expect(zeroCount(m.getLayer('d').getWeights()[0])).toBe(3);
    tf.dispose(x);
    mask.dispose();
  });

  it('apply() and the callback after dispose() say the mask was disposed; a second dispose() does nothing', async () => {
    const m = tfl.sequential({ layers: [tfl.layers.dense({ units: 3, inputShape: [4], name: 'd' })] });
    zeroKernelWhere(m, 'd', (i) => i === 2);
    m.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
    const xs = tf.ones([2, 4]);
    const ys = tf.ones([2, 3]);
    const mask = kernelMask(m);
    mask.dispose();
    await expectNoLeak(async () => {
      // Before, tfjs failed on the freed mask with "Cannot read properties of undefined (reading 'backend')".
      expect(() => mask.apply()).toThrow(
        /kernelMask: the mask was disposed .*take a new mask with kernelMask\(model\)/,
      );
      await expect(m.fit(xs, ys, { epochs: 1, verbose: 0, callbacks: [mask.callback] })).rejects.toThrow(
        /the mask was disposed/,
      );
      expect(() => mask.dispose()).not.toThrow();
    }, 0);
    tf.dispose([xs, ys]);
  });

  it('apply() only zeroes: a kernel constraint is not applied, as tfjs applies none while training', () => {
    const m = tfl.sequential({
      layers: [
        tfl.layers.dense({
          units: 3,
          inputShape: [4],
          name: 'd',
          kernelConstraint: tfl.constraints.nonNeg(),
          // Not random: with glorot init, all nine weights of the live rows negative (1 in 512)
          // left none live to go negative, and the test failed (seen once in a full run).
          kernelInitializer: tfl.initializers.constant({ value: 0.5 }),
        }),
      ],
    });
    // Through setWeights the constraint acts once (negative weights become 0, and are masked
    // with row 2); then training makes some of the live weights negative.
    zeroKernelWhere(m, 'd', (i) => i === 2);
    const start = m.getLayer('d').getWeights()[0].dataSync().slice();
    const mask = kernelMask(m);
    const opt = tf.train.sgd(0.5);
    const x = tf.ones([2, 4]);
    opt.minimize(() => tf.sum(m.predict(x) as tf.Tensor) as tf.Scalar);
    const trained = m.getLayer('d').getWeights()[0].dataSync().slice();
    const live = (k: number) => start[k] !== 0;
    expect(trained.some((v, k) => live(k) && v < 0)).toBe(true);
    mask.apply();
    const masked = m.getLayer('d').getWeights()[0].dataSync();
    // The masked weights are zero again; every live one is as training left it, negative ones included.
    trained.forEach((v, k) => expect(masked[k] + 0).toBe(live(k) ? v : 0)); // -0 + 0 is 0
    tf.dispose(x);
    mask.dispose();
    opt.dispose();
  });

  describe('kernels other than a Dense or Conv2D kernel', () => {
    /** Zeroes the entries of a layer's weight (by short name) where `pred(flat index, shape)` holds; returns how many. */
    function zeroWhere(
      layer: tfl.layers.Layer,
      weight: string,
      pred: (k: number, shape: number[]) => boolean,
    ): number {
      const w = layer.weights.find((v) => v.originalName.split('/').pop() === weight)!;
      const shape = w.shape as number[];
      const values = Float32Array.from(w.read().dataSync());
      values.forEach((_, k) => {
        if (pred(k, shape)) values[k] = 0;
      });
      tf.tidy(() => (w.read() as tf.Variable).assign(tf.tensor(values, shape)));
      return values.filter((v) => v === 0).length;
    }
    /** The (i, o) pair of a flat index into a weight of shape [..., i, o]. */
    const io = (k: number, shape: number[]): [number, number] => {
      const [cin, cout] = shape.slice(-2);
      return [Math.floor((k % (cin * cout)) / cout), k % cout];
    };

    const cases: {
      name: string;
      build(): tfl.Sequential;
      /** The layer, and per kernel: its short name and which (i, o) groups (2-D/1-D kernels, or weights) to zero. */
      layer: string;
      zero: [string, (i: number, o: number) => boolean][];
      input: number[];
    }[] = [
      {
        name: 'a SeparableConv2D of an unpruned model, depthMultiplier 2: per-channel 2-D kernels and pointwise weights',
        build: () =>
          tfl.sequential({
            layers: [
              tfl.layers.separableConv2d({
                inputShape: [7, 7, 3],
                filters: 4,
                kernelSize: 3,
                depthMultiplier: 2,
                activation: 'relu',
                name: 'sep',
              }),
              tfl.layers.flatten({ name: 'flat' }),
              tfl.layers.dense({ units: 2, name: 'out' }),
            ],
          }),
        layer: 'sep',
        // depthwise [3, 3, 3, 2]: channel 1's second kernel and channel 2's first; pointwise [1, 1, 6, 4].
        zero: [
          ['depthwise_kernel', (i, o) => (i === 1 && o === 1) || (i === 2 && o === 0)],
          ['pointwise_kernel', (i, o) => (i + o) % 3 === 0],
        ],
        input: [4, 7, 7, 3],
      },
      {
        name: 'a SeparableConv2D of an unpruned model, depthMultiplier 1, depthwise kernels only',
        build: () =>
          tfl.sequential({
            layers: [
              tfl.layers.separableConv2d({
                inputShape: [6, 5, 4],
                filters: 3,
                kernelSize: [3, 2],
                name: 'sep',
              }),
              tfl.layers.globalAveragePooling2d({ name: 'pool' }),
            ],
          }),
        layer: 'sep',
        zero: [['depthwise_kernel', (i) => i === 0 || i === 3]],
        input: [3, 6, 5, 4],
      },
      {
        name: 'a Conv1D: 1-D kernels [k, cin, cout]',
        build: () =>
          tfl.sequential({
            layers: [
              tfl.layers.conv1d({ inputShape: [9, 3], filters: 5, kernelSize: 3, name: 'c1' }),
              tfl.layers.conv1d({ filters: 2, kernelSize: 2, padding: 'same', name: 'c2' }),
            ],
          }),
        layer: 'c1',
        zero: [['kernel', (i, o) => o === 2 || (i === 1 && o < 2)]],
        input: [4, 9, 3],
      },
      {
        name: 'a Conv3D: 3-D kernels [kd, kh, kw, cin, cout]',
        build: () =>
          tfl.sequential({
            layers: [
              tfl.layers.conv3d({ inputShape: [4, 5, 5, 2], filters: 3, kernelSize: 2, name: 'c1' }),
              tfl.layers.conv3d({ filters: 2, kernelSize: 1, name: 'c2' }),
            ],
          }),
        layer: 'c1',
        zero: [['kernel', (i, o) => o === 0 || (i === 1 && o === 2)]],
        input: [2, 4, 5, 5, 2],
      },
      {
        name: 'a Conv2DTranspose: kernel [kh, kw, cout, cin]',
        build: () =>
          tfl.sequential({
            layers: [
              tfl.layers.conv2dTranspose({
                inputShape: [4, 4, 3],
                filters: 2,
                kernelSize: 3,
                strides: 2,
                name: 't1',
              }),
              tfl.layers.conv2d({ filters: 2, kernelSize: 1, name: 'c2' }),
            ],
          }),
        layer: 't1',
        zero: [['kernel', (i, o) => i === 0 || o === 1]],
        input: [2, 4, 4, 3],
      },
    ];

    it.each(cases)('$name: keeps its zeros at zero through model.fit with Adam', async (c) => {
      const built = c.build();
      const zeros = c.zero.map(([weight, pred]) =>
        zeroWhere(built.getLayer(c.layer), weight, (k, shape) => pred(...io(k, shape))),
      );
      const model = built;
      const layer = model.getLayer(c.layer);
      const kernels = c.zero.map(([weight]) =>
        layer.weights.find((w) => w.originalName.endsWith(`/${weight}`))!,
      );
      const mask = kernelMask(model);
      // Of every kernel of the layer (both of a SeparableConv2D, one of which may hold no zero).
      const size = layer.weights
        .filter((w) => w.originalName.endsWith('kernel'))
        .reduce((n, w) => n + w.read().size, 0);
      expect(mask.layers.find((l) => l.name === c.layer)).toEqual({
        name: c.layer,
        zeros: zeros.reduce((a, b) => a + b),
        size,
      });
      const before = kernels.map((w) => w.read().dataSync().slice());

      model.compile({ optimizer: tf.train.adam(0.05), loss: 'meanSquaredError' });
      const xs = tf.randomNormal(c.input, 0, 1, 'float32', 5);
      const ys = tf.tidy(() => tf.randomNormal((model.predict(xs) as tf.Tensor).shape, 0, 1, 'float32', 6));
      await model.fit(xs, ys, { epochs: 1, batchSize: 2, callbacks: [mask.callback], verbose: 0 });
      // Adam's moments exist after the first fit: the second keeps numTensors flat.
      await expectNoLeak(async () => {
        await model.fit(xs, ys, { epochs: 1, batchSize: 2, callbacks: [mask.callback], verbose: 0 });
      }, 0);
      kernels.forEach((w, j) => {
        const after = w.read().dataSync();
        expect([w.originalName, zeroCount(w.read())]).toEqual([w.originalName, zeros[j]]);
        before[j].forEach((v, k) => v === 0 && expect(after[k] + 0).toBe(0));
        // The live weights did train.
        expect(after.some((v, k) => v !== before[j][k])).toBe(true);
      });
      tf.dispose([xs, ys]);
      mask.dispose();
      built.dispose();
    });
  });

  describe('nested models (a model used as a layer)', () => {
    function nested(): { model: tfl.LayersModel; inner: tfl.Sequential } {
      const inner = tfl.sequential({
        name: 'inner',
        layers: [tfl.layers.dense({ inputShape: [8], units: 6, activation: 'relu', name: 'ih' })],
      });
      const x = tfl.input({ shape: [8] });
      const y = tfl.layers.dense({ units: 3, name: 'head' }).apply(inner.apply(x)) as tfl.SymbolicTensor;
      return { model: tfl.model({ inputs: x, outputs: y }), inner };
    }

    it('refuses a decomposed layer inside a nested model, naming it by path', () => {
      const d = decompose(nested().model, { include: ['ih'] });
      expect(() => kernelMask(d)).toThrow(
        /^kernelMask: layer 'inner\/ih' is a DecomposedDense; prune\(\) or fold\(\) the model first$/,
      );
    });

    it('names a decomposed layer two models deep, or a wrapper holding one, by path', () => {
      // x [4, 6] -> blockA (blockB (Dense 'fc', decomposed), TimeDistributed 'td' (Dense 'inner')) -> Dense 'out'
      const build = (wrapDecomposed: boolean) => {
        const blockB = tfl.sequential({
          name: 'blockB',
          layers: [tfl.layers.dense({ inputShape: [4, 6], units: 5, name: 'fc' })],
        });
        const inner = wrapDecomposed
          ? layers.decomposedDense({ units: 3, name: 'inner' })
          : tfl.layers.dense({ units: 3, name: 'inner' });
        const blockA = tfl.sequential({
          name: 'blockA',
          layers: [blockB, tfl.layers.timeDistributed({ layer: inner, name: 'td' })],
        });
        const x = tfl.input({ shape: [4, 6] });
        const y = tfl.layers.dense({ units: 2, name: 'out' }).apply(blockA.apply(x)) as tfl.SymbolicTensor;
        return tfl.model({ inputs: x, outputs: y });
      };
      const plain = build(false);
      const d = decompose(plain, { include: ['fc'] });
      const wrapped = build(true);
      const before = tf.memory().numTensors;
      expect(() => kernelMask(d)).toThrow(
        /^kernelMask: layer 'blockA\/blockB\/fc' is a DecomposedDense; prune\(\) or fold\(\) the model first$/,
      );
      expect(() => kernelMask(wrapped)).toThrow(
        /^kernelMask: layer 'blockA\/td' \(TimeDistributed\) wraps the decomposed layer 'inner' \(DecomposedDense\)/,
      );
      expect(tf.memory().numTensors).toBe(before);
      // The plain model is masked (no kernel holds a zero).
      const mask = kernelMask(plain);
      expect(mask.layers).toEqual([]);
      mask.dispose();
      [d, wrapped, plain].forEach((m) => m.dispose());
    });

    it('masks the zero weights of a layer inside a nested model', async () => {
      const { model, inner } = nested();
      zeroKernelWhere(inner, 'ih', (i, o) => i < 3 || o === 5);
      const zeros = 3 * 6 + 5;
      const mask = kernelMask(model);
      expect(mask.layers).toEqual([{ name: 'inner/ih', zeros, size: 48 }]);
      const opt = tf.train.sgd(0.5);
      const x = tf.randomNormal([4, 8], 0, 1, 'float32', 3);
      const kernelZeros = () => tf.tidy(() => zeroCount(inner.getLayer('ih').getWeights()[0]));
      await expectNoLeak(() => {
        opt.minimize(() => tf.sum(tf.square(model.predict(x) as tf.Tensor)) as tf.Scalar);
      }, 1); // the optimiser's step counter
      expect(kernelZeros()).toBeLessThan(zeros);
      await expectNoLeak(() => mask.apply());
      expect(kernelZeros()).toBe(zeros);
      tf.dispose(x);
      mask.dispose();
      opt.dispose();
    });

    it('names two layers of the same name in two nested models by their paths', () => {
      // x [6] -> towerA (Dense 'fc' 6 -> 4) and towerB (Dense 'fc' 6 -> 3) -> concat -> Dense 'fc' 7 -> 2:
      // three layers named 'fc'; the mask names each as analyze does.
      const tower = (name: string, units: number) =>
        tfl.sequential({ name, layers: [tfl.layers.dense({ inputShape: [6], units, name: 'fc' })] });
      const a = tower('towerA', 4);
      const b = tower('towerB', 3);
      const x = tfl.input({ shape: [6] });
      const joined = tfl.layers
        .concatenate({ name: 'cat' })
        .apply([a.apply(x), b.apply(x)] as tfl.SymbolicTensor[]) as tfl.SymbolicTensor;
      const y = tfl.layers.dense({ units: 2, name: 'fc' }).apply(joined) as tfl.SymbolicTensor;
      const model = tfl.model({ inputs: x, outputs: y });
      zeroKernelWhere(a, 'fc', (i) => i < 2); // 2 rows of 4
      zeroKernelWhere(b, 'fc', (_, o) => o === 0); // 1 column of 6
      zeroKernelWhere(model, 'fc', (i, o) => i === 6 && o === 1); // 1 weight
      const before = tf.memory().numTensors;
      const mask = kernelMask(model);
      expect(mask.layers).toEqual([
        { name: 'towerA/fc', zeros: 8, size: 24 },
        { name: 'towerB/fc', zeros: 6, size: 18 },
        { name: 'fc', zeros: 1, size: 14 },
      ]);
      expect(mask.layers.map((l) => l.name)).toEqual(
        analyze(model)
          .layers.filter((l) => l.className === 'Dense')
          .map((l) => l.name),
      );
      mask.dispose();
      expect(tf.memory().numTensors).toBe(before);
      model.dispose();
    });
  });
});
