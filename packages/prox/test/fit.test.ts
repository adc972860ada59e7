// The optimisers and the callback as a tfjs user meets them in their own
// training code: model.fit with its options, fitDataset, custom loops, and
// the mistakes that code makes.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { decompose, decomposedDense, magnitudes } from '@normprune/layers';
import {
  measureSparsity,
  ProximalAdam,
  ProximalSGD,
  SparsityCallback,
  stepLambda,
  warmupLambda,
} from '../src/index.js';
import { maxDiff } from '../../../tools/testing/leaks.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function mlp(): tfl.Sequential {
  return tfl.sequential({
    layers: [
      decomposedDense({
        inputShape: [12],
        units: 24,
        activation: 'relu',
        name: 'h1',
        kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }),
      }),
      tfl.layers.dense({
        units: 8,
        activation: 'relu',
        name: 'plain',
        kernelRegularizer: tfl.regularizers.l2({ l2: 0.01 }),
        kernelInitializer: tfl.initializers.glorotUniform({ seed: 3 }),
      }),
      decomposedDense({
        units: 3,
        activation: 'softmax',
        name: 'out',
        kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }),
      }),
    ],
  });
}

function plainMlp(): tfl.Sequential {
  return tfl.sequential({
    layers: [
      tfl.layers.dense({ inputShape: [12], units: 8, activation: 'relu', name: 'fc1' }),
      tfl.layers.dense({ units: 3, activation: 'softmax', name: 'fc2' }),
    ],
  });
}

// Three classes decided by 3 of the 12 inputs.
const xs = tf.tidy(() => tf.randomNormal([96, 12], 0, 1, 'float32', 5));
const ys = tf.tidy(() => tf.cast(tf.oneHot(tf.argMax(tf.slice(xs, [0, 0], [-1, 3]), 1), 3), 'float32'));

const flat = (m: tfl.LayersModel): number[] => m.getWeights().flatMap((w) => Array.from(w.dataSync()));
const zeros = (m: tfl.LayersModel): number =>
  magnitudes(m).reduce((n, g) => n + Array.from(g.magnitude.dataSync()).filter((v) => v === 0).length, 0);

/** A tf.data-like dataset of `{ xs, ys }` batches, all fitDataset needs. */
function dataset(x: tf.Tensor, y: tf.Tensor, batchSize: number) {
  const n = x.shape[0];
  return {
    size: Math.ceil(n / batchSize),
    iterator: async () => {
      let i = 0;
      return {
        next: async () => {
          if (i >= n) return { done: true, value: null };
          const k = Math.min(batchSize, n - i);
          const value = { xs: tf.slice(x, [i, 0], [k, -1]), ys: tf.slice(y, [i, 0], [k, -1]) };
          i += k;
          return { done: false, value };
        },
      };
    },
  };
}

describe('model.fit with the options a tfjs user passes', () => {
  it.each([
    [
      'ProximalSGD',
      (m: tfl.LayersModel) =>
        new ProximalSGD({ learningRate: 0.1, momentum: 0.9, lambda: 0.3, magnitudes: m }),
    ],
    [
      'ProximalAdam',
      (m: tfl.LayersModel) =>
        new ProximalAdam({
          learningRate: 0.01,
          lambda: warmupLambda({ value: 0.5, warmup: 6 }),
          magnitudes: m,
        }),
    ],
  ])(
    '%s: validationSplit, classWeight, shuffle, metrics, earlyStopping and custom callbacks; exact zeros, falling loss, flat tensor count, lambda per step',
    async (_name, make) => {
      const model = mlp();
      const opt = make(model);
      model.compile({ optimizer: opt, loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
      const counts: number[] = [];
      const lambdas: number[] = [];
      const h = await model.fit(xs, ys, {
        epochs: 8,
        batchSize: 24,
        validationSplit: 0.25,
        shuffle: true,
        classWeight: { 0: 1, 1: 2, 2: 1 },
        verbose: 0,
        callbacks: [
          tfl.callbacks.earlyStopping({ monitor: 'val_loss', patience: 50 }),
          new tfl.CustomCallback({
            // the lambda the step just taken used
            onBatchEnd: async () => {
              lambdas.push(opt.lambda);
            },
            onEpochEnd: async () => {
              counts.push(tf.memory().numTensors);
            },
          }),
        ],
      });
      expect(opt.iterations).toBe(8 * 3);
      const loss = h.history.loss as number[];
      expect(loss[loss.length - 1]).toBeLessThan(loss[0]);
      expect(h.history.val_loss).toHaveLength(8);
      expect(h.history.acc).toHaveLength(8);
      expect(zeros(model)).toBeGreaterThan(0);
      // the schedule sees fit's steps: the warm-up rises by one sixth per batch
      if (opt instanceof ProximalAdam)
        expect(lambdas.slice(0, 8)).toEqual(
          [0, 1, 2, 3, 4, 5, 6, 6].map((k) => expect.closeTo((0.5 * k) / 6, 12)),
        );
      expect(new Set(counts.slice(1)).size).toBe(1);
      model.dispose();
      opt.dispose();
    },
  );

  it('fit, fitDataset, a minimize loop and a variableGrads + applyGradients loop give the same weights, bit for bit', async () => {
    const run = async (how: 'fit' | 'fitDataset' | 'minimize' | 'variableGrads'): Promise<number[]> => {
      const model = mlp();
      const opt = new ProximalAdam({
        learningRate: 0.01,
        lambda: stepLambda({ initial: 0.1, factor: 2, every: 1 }),
        magnitudes: model,
      });
      if (how === 'fit' || how === 'fitDataset') {
        model.compile({ optimizer: opt, loss: 'categoricalCrossentropy' });
        const callbacks = [new SparsityCallback()];
        if (how === 'fit')
          await model.fit(xs, ys, { epochs: 3, batchSize: 32, shuffle: false, verbose: 0, callbacks });
        else await model.fitDataset(dataset(xs, ys, 32) as never, { epochs: 3, verbose: 0, callbacks });
      } else {
        const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
        for (let epoch = 0; epoch < 3; epoch++) {
          for (let i = 0; i < 3; i++) {
            const [xb, yb] = [tf.slice(xs, [32 * i, 0], [32, -1]), tf.slice(ys, [32 * i, 0], [32, -1])];
            const f = () =>
              tf.tidy(() => {
                const data = tf.mean(
                  tfl.metrics.categoricalCrossentropy(yb, model.apply(xb, { training: true }) as tf.Tensor),
                );
                return model.calculateLosses().reduce((s, l) => tf.add(s, l), data) as tf.Scalar;
              });
            if (how === 'minimize') opt.minimize(f, true, vars)?.dispose();
            else {
              const { value, grads } = tf.variableGrads(f, vars);
              opt.applyGradients(grads);
              tf.dispose([value, ...Object.values(grads)]);
            }
            tf.dispose([xb, yb]);
          }
          opt.observe({ epoch: epoch + 1 });
        }
      }
      expect(opt.lambda).toBeCloseTo(0.8, 12);
      const w = flat(model);
      model.dispose();
      opt.dispose();
      return w;
    };
    const byFit = await run('fit');
    for (const how of ['fitDataset', 'minimize', 'variableGrads'] as const)
      expect(maxDiff(await run(how), byFit).abs).toBe(0);
  });
});

describe('the mistakes a user makes, each with a message that names the problem and the fix', () => {
  it('a model without decomposed layers is refused by the optimisers, attach and SparsityCallback', async () => {
    const plain = plainMlp();
    const hint = /model '.*' has no decomposed layers .*decompose\(model\)/;
    expect(() => new ProximalSGD({ learningRate: 0.1, lambda: 0.1, magnitudes: plain })).toThrow(hint);
    expect(() => new ProximalAdam({ learningRate: 0.1, lambda: 0.1, magnitudes: plain })).toThrow(hint);
    const opt = new ProximalSGD({ learningRate: 0.1, lambda: 0, magnitudes: [] });
    expect(() => opt.attach(plain)).toThrow(hint);
    // Every decomposed class and its factory is named.
    expect(() => opt.attach(plain)).toThrow(
      /\(DecomposedDense \/ DecomposedConv1D \/ DecomposedConv2D \/ DecomposedConv2DTranspose \/ DecomposedDepthwiseConv2D \/ DecomposedSeparableConv2D\).*decomposedDense \/ decomposedConv1d \/ decomposedConv2d \/ decomposedConv2dTranspose \/ decomposedDepthwiseConv2d \/ decomposedSeparableConv2d\)$/,
    );
    plain.compile({ optimizer: opt, loss: 'categoricalCrossentropy' });
    await expect(
      plain.fit(xs, ys, { epochs: 1, verbose: 0, callbacks: [new SparsityCallback()] }),
    ).rejects.toThrow(/SparsityCallback: model '.*' has no decomposed layers .*decompose\(model\)/);
    // the decomposed model is accepted
    const decomposed = decompose(plain);
    expect(
      new ProximalSGD({ learningRate: 0.1, lambda: 0.1, magnitudes: decomposed }).magnitudes,
    ).toHaveLength(2);
    plain.dispose();
    decomposed.dispose();
    opt.dispose();
  });

  it('a step with lambda > 0 and no magnitudes attached (a loaded optimiser before attach) is refused before it changes anything', async () => {
    const model = mlp();
    const opt = new ProximalSGD({ learningRate: 0.1, lambda: 0.1, magnitudes: [] });
    model.compile({ optimizer: opt, loss: 'categoricalCrossentropy' });
    const before = flat(model);
    await expect(model.fit(xs, ys, { epochs: 1, verbose: 0 })).rejects.toThrow(
      /ProximalSGD: lambda is 0.1 but no magnitudes are attached.*optimizer\.attach\(model\)/,
    );
    expect(flat(model)).toEqual(before);
    // lambda 0: plain SGD on purpose, allowed
    opt.setLambda(0);
    await model.fit(xs, ys, { epochs: 1, verbose: 0 });
    model.dispose();
    opt.dispose();
  });

  it('an optimiser attached to one model and used to train another warns once that no proximal step happened', async () => {
    const plain = plainMlp();
    const decomposed = decompose(plain);
    // the slip: the optimiser holds the decomposed model's magnitudes, but the original is compiled and fitted
    const opt = new ProximalSGD({ learningRate: 0.1, lambda: 0.1, magnitudes: decomposed });
    plain.compile({ optimizer: opt, loss: 'categoricalCrossentropy' });
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      await plain.fit(xs, ys, { epochs: 2, batchSize: 32, verbose: 0 });
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0][0])).toMatch(
        /ProximalSGD: none of the 2 attached magnitudes \(fc1, fc2\) had a gradient in this step.*optimizer\.attach\(model\)/,
      );
      // training the decomposed model itself does not warn
      warn.mockClear();
      decomposed.compile({ optimizer: opt, loss: 'categoricalCrossentropy' });
      await decomposed.fit(xs, ys, { epochs: 1, batchSize: 32, verbose: 0 });
      expect(warn).not.toHaveBeenCalled();
    } finally {
      warn.mockRestore();
    }
    plain.dispose();
    decomposed.dispose();
    opt.dispose();
  });

  it.each([
    ["warmupLambda with unit 'epoch'", () => warmupLambda({ value: 0.2, warmup: 2, unit: 'epoch' }), true],
    ['stepLambda counting epochs', () => stepLambda({ initial: 0.1, factor: 2, every: 1 }), true],
    ['a function of the epoch', () => (_step: number, epoch: number) => 0.1 * (epoch + 1), true],
    ['warmupLambda counting steps', () => warmupLambda({ value: 0.2, warmup: 4 }), false],
  ] as const)(
    'a schedule by epochs under fit without SparsityCallback warns once that lambda stands still (%s)',
    async (what, schedule, warns) => {
      const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
      try {
        const model = mlp();
        const opt = new ProximalSGD({ learningRate: 0.1, lambda: schedule(), magnitudes: model });
        const start = opt.lambda;
        model.compile({ optimizer: opt, loss: 'categoricalCrossentropy' });
        await model.fit(xs, ys, { epochs: 3, batchSize: 32, verbose: 0 });
        if (warns) {
          expect(warn).toHaveBeenCalledTimes(1);
          expect(String(warn.mock.calls[0][0])).toContain(
            `ProximalSGD: the lambda schedule (${what}) moves with completed epochs, but nothing reports them`,
          );
          expect(String(warn.mock.calls[0][0])).toMatch(/Add new SparsityCallback\(\) to fit's callbacks/);
          // what the warning is about: three epochs later lambda has not moved
          expect(opt.lambda).toBe(start);
        } else expect(warn).not.toHaveBeenCalled();
        // With the callback, from its first step on, the same fit does not warn and lambda moves.
        warn.mockClear();
        const again = mlp();
        const opt2 = new ProximalSGD({ learningRate: 0.1, lambda: schedule(), magnitudes: again });
        again.compile({ optimizer: opt2, loss: 'categoricalCrossentropy' });
        await again.fit(xs, ys, {
          epochs: 3,
          batchSize: 32,
          verbose: 0,
          callbacks: [new SparsityCallback()],
        });
        expect(warn).not.toHaveBeenCalled();
        expect(opt2.lambda).not.toBe(start);
        // A custom loop reports epochs itself: no fit, no warning.
        const loop = mlp();
        const opt3 = new ProximalSGD({ learningRate: 0.1, lambda: schedule(), magnitudes: loop });
        const vars = loop.trainableWeights.map((w) => w.read() as tf.Variable);
        for (let epoch = 0; epoch < 2; epoch++) {
          for (let i = 0; i < 3; i++)
            opt3
              .minimize(
                () =>
                  tf.tidy(() =>
                    tf.mean(
                      tfl.metrics.categoricalCrossentropy(
                        ys,
                        loop.apply(xs, { training: true }) as tf.Tensor,
                      ),
                    ),
                  ) as tf.Scalar,
                true,
                vars,
              )
              ?.dispose();
          opt3.observe({ epoch: epoch + 1 });
        }
        expect(warn).not.toHaveBeenCalled();
        [model, again, loop].forEach((m) => m.dispose());
        [opt, opt2, opt3].forEach((o) => o.dispose());
      } finally {
        warn.mockRestore();
      }
    },
  );

  it('NaN magnitudes (training diverged) stop measureSparsity and fit with SparsityCallback, naming the layer', async () => {
    const model = mlp();
    const [h1] = magnitudes(model);
    const opt = new ProximalSGD({ learningRate: 0.1, lambda: 0.01, magnitudes: model });
    model.compile({ optimizer: opt, loss: 'categoricalCrossentropy' });
    // a NaN gradient, as an overflowing loss gives
    const g = tf.tidy(() => tf.where(tf.equal(tf.range(0, 24), 3), tf.scalar(NaN), tf.zeros([24])));
    opt.applyGradients([{ name: h1.magnitude.name, tensor: g }]);
    g.dispose();
    // the NaN is not mistaken for a pruned (zero) group
    expect(Number.isNaN(h1.magnitude.dataSync()[3])).toBe(true);
    await expect(measureSparsity(model)).rejects.toThrow(
      /measureSparsity: layer 'h1' has 1 NaN magnitude\(s\); training has diverged.*lower the learning rate/,
    );
    await expect(
      model.fit(xs, ys, { epochs: 2, verbose: 0, callbacks: [new SparsityCallback()] }),
    ).rejects.toThrow(
      /SparsityCallback: the training loss was NaN at epoch 1, batch 1, where training stopped: layer 'h1' has \d+ NaN magnitude\(s\); training has diverged/,
    );
    // Without stopOnNaN, the epoch trains to its end, where the magnitudes are checked.
    await expect(
      model.fit(xs, ys, { epochs: 2, verbose: 0, callbacks: [new SparsityCallback({ stopOnNaN: false })] }),
    ).rejects.toThrow(
      /SparsityCallback: after epoch 1, layer 'h1' has \d+ NaN magnitude\(s\); training has diverged/,
    );
    model.dispose();
    opt.dispose();
  });

  describe('stopOnNaN', () => {
    /** Records the batches fit ran (a plain callback object cannot sit beside a Callback instance). */
    class BatchLog extends tfl.Callback {
      constructor(private readonly seen: number[]) {
        super();
      }
      override async onBatchEnd(batch: number): Promise<void> {
        this.seen.push(batch);
      }
    }
    // Batches of 8 in order: sample 20 is in batch 3.
    const poisoned = tf.tidy(() =>
      tf.where(tf.equal(tf.reshape(tf.range(0, 96 * 12), [96, 12]), 20 * 12 + 5), tf.scalar(NaN), xs),
    );
    afterAll(() => poisoned.dispose());

    it.each([
      [
        'ProximalSGD',
        (m: tfl.LayersModel) => new ProximalSGD({ learningRate: 0.1, lambda: 0.01, magnitudes: m }),
      ],
      [
        'ProximalAdam',
        (m: tfl.LayersModel) => new ProximalAdam({ learningRate: 0.01, lambda: 0.01, magnitudes: m }),
      ],
    ])(
      '%s: a NaN in the data stops fit at its batch, naming the batch and the layers it made NaN',
      async (_, make) => {
        const model = mlp();
        const opt = make(model);
        model.compile({ optimizer: opt, loss: 'categoricalCrossentropy' });
        // One clean epoch first, which makes the optimiser's state: what is left after is counted.
        await model.fit(xs, ys, { epochs: 1, batchSize: 8, verbose: 0, callbacks: [new SparsityCallback()] });
        const sparsity = new SparsityCallback();
        const before = tf.memory().numTensors;
        const batches: number[] = [];
        await expect(
          model.fit(poisoned, ys, {
            epochs: 3,
            batchSize: 8,
            shuffle: false,
            verbose: 0,
            callbacks: [sparsity, new BatchLog(batches)],
          }),
        ).rejects.toThrow(
          /^SparsityCallback: the training loss was NaN at epoch 2, batch 3, where training stopped: layer 'h1' has 24 NaN magnitude\(s\); training has diverged/,
        );
        // Stopped at batch 3 (index 2) of 12, in the optimiser's second epoch; none recorded; nothing left behind.
        expect(batches).toEqual([0, 1, 2]);
        expect(sparsity.history).toEqual([]);
        expect(tf.memory().numTensors).toBe(before);
        model.dispose();
        opt.dispose();
      },
    );

    it('an infinite loss with finite weights is named too; across fit calls the epoch counts on; false trains on', async () => {
      const model = mlp();
      const opt = new ProximalSGD({ learningRate: 0.1, lambda: 0.01, magnitudes: model });
      let infinite = false;
      // The constant adds nothing to the gradient: the weights stay finite.
      const loss = (yTrue: tf.Tensor, yPred: tf.Tensor) =>
        tf.add(tf.losses.softmaxCrossEntropy(yTrue, yPred), infinite ? Infinity : 0);
      model.compile({ optimizer: opt, loss });
      const sparsity = new SparsityCallback();
      await model.fit(xs, ys, { epochs: 1, batchSize: 32, verbose: 0, callbacks: [sparsity] });
      infinite = true;
      // compile captured the function: recompile for the flag to count.
      model.compile({ optimizer: opt, loss });
      const before = tf.memory().numTensors;
      await expect(
        model.fit(xs, ys, { epochs: 2, batchSize: 32, verbose: 0, callbacks: [sparsity] }),
      ).rejects.toThrow(
        'SparsityCallback: the training loss was Infinity at epoch 2, batch 1, where training stopped: training has diverged ' +
          '(the magnitudes are still finite): lower the learning rate or lambda, or check the data for NaN or infinite values',
      );
      expect(sparsity.history.map((r) => r.epoch)).toEqual([0]);
      expect(tf.memory().numTensors).toBe(before);
      // Off, the same fit trains both epochs and records them (counting on from the optimiser's one).
      const unchecked = new SparsityCallback({ stopOnNaN: false });
      await model.fit(xs, ys, { epochs: 2, batchSize: 32, verbose: 0, callbacks: [unchecked] });
      expect(unchecked.history.map((r) => r.epoch)).toEqual([1, 2]);
      model.dispose();
      opt.dispose();
    });

    it('is a boolean', () => {
      expect(() => new SparsityCallback({ stopOnNaN: 'yes' as unknown as boolean })).toThrow(
        /SparsityCallback: stopOnNaN must be/,
      );
    });
  });

  it.each([
    [
      'ProximalSGD',
      (model: tfl.LayersModel) => new ProximalSGD({ learningRate: 0.1, lambda: 0.01, magnitudes: model }),
    ],
    [
      'ProximalSGD with momentum',
      (model: tfl.LayersModel) =>
        new ProximalSGD({ learningRate: 0.1, lambda: 0.01, momentum: 0.9, magnitudes: model }),
    ],
    [
      'ProximalAdam',
      (model: tfl.LayersModel) => new ProximalAdam({ learningRate: 0.1, lambda: 0.01, magnitudes: model }),
    ],
  ] as const)(
    '%s: an infinite gradient makes the group NaN (diverged), not 0 (pruned) nor Infinity (live)',
    async (_, make) => {
      const model = mlp();
      const [h1] = magnitudes(model);
      const opt = make(model);
      const before = Float32Array.from(h1.magnitude.dataSync());
      // units 3 and 5 overflowed, the others have a finite gradient
      const g = tf.tidy(() => {
        const unit = tf.range(0, 24);
        return tf.where(
          tf.equal(unit, 3),
          tf.scalar(Infinity),
          tf.where(tf.equal(unit, 5), tf.scalar(-Infinity), tf.fill([24], 0.5)),
        );
      });
      opt.applyGradients([{ name: h1.magnitude.name, tensor: g }]);
      g.dispose();
      const after = h1.magnitude.dataSync();
      expect([Number.isNaN(after[3]), Number.isNaN(after[5])]).toEqual([true, true]);
      // every other group took an ordinary step: finite, >= 0, and moved
      for (const u of [0, 1, 2, 4, 6, 23]) {
        expect(Number.isFinite(after[u]) && after[u] >= 0).toBe(true);
        expect(after[u]).not.toBe(before[u]);
      }
      await expect(measureSparsity(model)).rejects.toThrow(
        /measureSparsity: layer 'h1' has 2 NaN magnitude\(s\); training has diverged/,
      );
      model.dispose();
      opt.dispose();
    },
  );

  it('a misconfigured lambda schedule says what is wrong and what to pass instead', async () => {
    const make = (lambda: unknown) =>
      new ProximalSGD({ learningRate: 0.1, lambda: lambda as never, magnitudes: [] });
    expect(() => make(warmupLambda)).toThrow(
      /lambda: got the schedule factory warmupLambda itself; pass the schedule it returns: warmupLambda\(\{ \.\.\. \}\)/,
    );
    expect(() => make(stepLambda)).toThrow(/schedule factory stepLambda itself/);
    // A schedule's config (what getConfig saves) is built into its schedule; a wrong one says why.
    const fromConfig = make({ kind: 'warmup', value: 0.1, warmup: 10 });
    expect(fromConfig.getConfig().lambda).toEqual(warmupLambda({ value: 0.1, warmup: 10 }).config);
    fromConfig.dispose();
    expect(() => make({ kind: 'warmpu', value: 0.1, warmup: 10 })).toThrow(
      /^lambdaSchedule: unknown kind "warmpu" \(a string\); the kinds are 'constant', 'warmup', 'step', 'target'$/,
    );
    expect(() => make({ kind: 'warmup', value: 0.1, warmpu: 10 })).toThrow(
      /^warmupLambda: unknown option `warmpu` \(did you mean `warmup`\?\)/,
    );
    expect(() => make({ value: 0.1 })).toThrow(
      /lambda must be a finite number >= 0, a schedule such as warmupLambda\(\{ \.\.\. \}\) or a schedule's config such as \{ kind: 'warmup', value: 1e-4, warmup: 100 \}, got an object/,
    );
    const opt = make(0.1);
    expect(() => opt.setLambdaSchedule(0.2 as never)).toThrow(
      /setLambdaSchedule: expected a schedule function/,
    );
    // a schedule that goes wrong mid-training names itself, the value and the step
    const model = mlp();
    const bad = new ProximalSGD({
      learningRate: 0.1,
      lambda: (step: number) => (step < 3 ? 0.1 : NaN),
      magnitudes: model,
    });
    model.compile({ optimizer: bad, loss: 'categoricalCrossentropy' });
    await expect(model.fit(xs, ys, { epochs: 2, batchSize: 24, verbose: 0 })).rejects.toThrow(
      /lambda schedule returned NaN at step 3 \(epoch 0\); a schedule must return a finite number >= 0/,
    );
    model.dispose();
    opt.dispose();
    bad.dispose();
  });
});
