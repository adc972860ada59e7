// releaseSavedTensorsDuringBackprop: the same gradient bits as tfjs's own
// Engine.gradients (tf.grads, tf.variableGrads, optimizer.minimize,
// model.fit; cpu and wasm; several shapes), no leaked tensors, a lower peak
// of tf.memory().numBytes during the backward pass of a deep model, the
// upstream behaviour kept for higher-order gradients, clean-up after errors,
// the version check, and an uninstall that puts the original method back.
import * as tf from '@tensorflow/tfjs-core';
// tfjs-layers registers the gradients (tfjs-core alone has none).
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend, releaseSavedTensorsDuringBackprop } from '../src/index.js';
import { checkEngineSupported } from '../src/backprop.js';
import { registerWasmTrainingKernels } from '../src/kernels/index.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';
import { initWasm, rng, values } from './kernels-helpers.js';

interface EngineView {
  gradients: unknown;
  state: { numBytes: number; gradientDepth: number; activeTape: unknown[] | null };
}
const engine = () => tf.engine() as unknown as EngineView;
const protoGradients = () => (Object.getPrototypeOf(tf.engine()) as EngineView).gradients;

beforeAll(async () => {
  registerWasmTrainingKernels();
  await initWasm();
});

afterAll(async () => {
  await tf.setBackend('cpu');
});

/** Runs `fn` with the release installed, and uninstalls it after. */
async function released<T>(fn: () => T | Promise<T>): Promise<T> {
  const uninstall = releaseSavedTensorsDuringBackprop();
  try {
    return await fn();
  } finally {
    uninstall();
  }
}

/** The bit patterns of float32 values (so -0 and NaN payloads count as different). */
function bits(a: Float32Array | tf.Tensor): number[] {
  const f = a instanceof tf.Tensor ? (a.dataSync() as Float32Array) : a;
  return Array.from(new Uint32Array(f.buffer, f.byteOffset, f.length));
}

/**
 * The highest tf.memory().numBytes reached while `fn` runs, above its value
 * at the start: every allocation and disposal goes through the engine
 * state's numBytes, which is watched here through an accessor.
 */
function peakBytes(fn: () => void): number {
  const state = engine().state;
  let value = state.numBytes;
  const start = value;
  let peak = value;
  Object.defineProperty(state, 'numBytes', {
    configurable: true,
    enumerable: true,
    get: () => value,
    set: (v: number) => {
      value = v;
      if (v > peak) peak = v;
    },
  });
  try {
    fn();
  } finally {
    delete (state as Partial<EngineView['state']>).numBytes;
    state.numBytes = value;
  }
  return peak - start;
}

const BACKENDS = ['cpu', 'wasm'] as const;

type CustomGradient = Parameters<typeof tf.customGrad>[0];

// A function with what the walk must handle: a tensor used twice (x * x and
// a second branch), a multi-output op with an output off the path (split),
// conv + batch norm + pooling, a custom gradient that returns its dy for two
// inputs, a broadcast add, and a reduction.
const square = tf.customGrad(((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
  save([a]);
  return {
    value: tf.add(tf.mul(a, a), b),
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => [
      tf.mul(tf.mul(dy as tf.Tensor, saved[0]), 2),
      dy as tf.Tensor,
    ],
  };
}) as unknown as CustomGradient);
const passThrough = tf.customGrad(((a: tf.Tensor, b: tf.Tensor) => ({
  value: tf.add(a, b),
  gradFunc: (dy: tf.Tensor | tf.Tensor[]) => [dy as tf.Tensor, dy as tf.Tensor],
})) as unknown as CustomGradient);

function net(x: tf.Tensor4D, k: tf.Tensor4D, w: tf.Tensor2D, scale: tf.Tensor1D): tf.Scalar {
  let h = tf.relu(tf.conv2d(x, k, 1, 'same'));
  const { mean, variance } = tf.moments(h, [0, 1, 2]);
  h = tf.batchNorm4d(h, mean as tf.Tensor1D, variance as tf.Tensor1D, tf.mul(scale, 0.5), scale, 1e-3);
  h = tf.maxPool(h, 2, 2, 'same');
  const [left, right] = tf.split(h, 2, 3);
  const twice = square(left, tf.sigmoid(left)) as tf.Tensor4D;
  const both = passThrough(twice, tf.mul(left, left)) as tf.Tensor4D;
  void right; // an output of split off the path: the walk makes zeros for it
  const flat = tf.reshape(tf.concat([both, tf.tanh(left)], 3), [x.shape[0], -1]) as tf.Tensor2D;
  return tf.mean(tf.square(tf.matMul(flat, w)));
}

function netInputs(n: number, hw: number, c: number, f: number, seed: number) {
  const r = rng(seed);
  const pooled = Math.ceil(hw / 2);
  const x = tf.tensor4d(values(r, n * hw * hw * c), [n, hw, hw, c]);
  const k = tf.tensor4d(values(r, 9 * c * f), [3, 3, c, f]);
  const w = tf.tensor2d(values(r, pooled * pooled * f * 5), [pooled * pooled * f, 5]);
  const scale = tf.tensor1d(values(r, f).map((v) => 1 + 0.1 * v));
  return [x, k, w, scale] as const;
}

describe.each(BACKENDS)('on %s', (backend) => {
  beforeAll(async () => {
    await tf.setBackend(backend);
  });

  it.each([
    [2, 6, 3, 4],
    [3, 7, 2, 6],
    [1, 9, 4, 2],
  ])(
    'tf.grads of a conv/BN/custom-gradient net: the same bits (n %i, %ix%i, %i filters)',
    async (n, hw, c, f) => {
      const inputs = netInputs(n, hw, c, f, n * 100 + hw);
      const run = () =>
        expectNoLeak(() =>
          tf.tidy(() => {
            const g = tf.grads((x, k, w, s) =>
              net(x as tf.Tensor4D, k as tf.Tensor4D, w as tf.Tensor2D, s as tf.Tensor1D),
            )([...inputs]);
            return g.map((t) => bits(t));
          }),
        );
      const upstream = await run();
      const ours = await released(run);
      expect(ours).toEqual(upstream);
      // Not all zeros: the comparison compares something.
      expect(upstream.every((g) => g.some((b) => b !== 0))).toBe(true);
      // With dy given, and through valueAndGrads.
      const withDy = async () =>
        expectNoLeak(() => {
          const dy = tf.scalar(0.37);
          const { value, grads } = tf.valueAndGrads((x: tf.Tensor, w: tf.Tensor) =>
            tf.sum(tf.mul(tf.reshape(x, [n, -1]), tf.mean(w))),
          )([inputs[0], inputs[2]], dy);
          const out = [bits(value), ...grads.map((t) => bits(t))];
          expect(dy.isDisposed).toBe(false);
          tf.dispose([value, ...grads, dy]);
          return out;
        });
      expect(await released(withDy)).toEqual(await withDy());
      tf.dispose([...inputs]);
    },
  );

  it('tf.variableGrads and optimizer.minimize (Adam, 4 steps): the same bits', async () => {
    const inputs = netInputs(2, 8, 3, 4, 7);
    const train = async () => {
      const vars = [
        tf.variable(inputs[1].clone()),
        tf.variable(inputs[2].clone()),
        tf.variable(inputs[3].clone()),
      ];
      const unused = tf.tidy(() => tf.variable(tf.ones([3])));
      const f = () => net(inputs[0], vars[0] as tf.Tensor4D, vars[1] as tf.Tensor2D, vars[2] as tf.Tensor1D);
      const out = await expectNoLeak(() => {
        // allowNoGradients: `unused` is not in f.
        const { value, grads } = tf.variableGrads(f, [...vars, unused]);
        expect(Object.keys(grads).sort()).toEqual(vars.map((v) => v.name).sort());
        const g = [bits(value), ...vars.map((v) => bits(grads[v.name]))];
        tf.dispose([value, ...Object.values(grads)]);
        return g;
      });
      const opt = tf.train.adam(0.01);
      const losses: number[][] = [];
      await expectNoLeak(
        () => {
          for (let i = 0; i < 4; i++) {
            const cost = opt.minimize(f, true)!;
            losses.push(bits(cost));
            cost.dispose();
          }
        },
        2 * vars.length + 2,
      ); // Adam's two moments per variable, and its two beta powers
      const after = vars.map((v) => bits(v));
      opt.dispose();
      tf.dispose([...vars, unused]);
      return { out, losses, after };
    };
    const upstream = await train();
    const ours = await released(train);
    expect(ours).toEqual(upstream);
    tf.dispose([...inputs]);
  });

  it('model.fit of a conv + BN + dense model (3 steps): the same weights and losses', async () => {
    const build = () => {
      const m = tfl.sequential({
        layers: [
          tfl.layers.conv2d({ inputShape: [8, 8, 3], filters: 6, kernelSize: 3, padding: 'same' }),
          tfl.layers.batchNormalization(),
          tfl.layers.activation({ activation: 'relu' }),
          tfl.layers.maxPooling2d({ poolSize: 2 }),
          tfl.layers.conv2d({ filters: 8, kernelSize: 3, activation: 'relu' }),
          tfl.layers.flatten(),
          tfl.layers.dense({ units: 4, activation: 'softmax' }),
        ],
      });
      m.compile({ optimizer: tf.train.sgd(0.1), loss: 'categoricalCrossentropy' });
      return m;
    };
    const r = rng(11);
    const reference = build();
    const initial = reference.getWeights().map((w) => tf.tensor(values(r, w.size), w.shape));
    reference.dispose();
    const xs = tf.tensor4d(values(r, 12 * 8 * 8 * 3), [12, 8, 8, 3]);
    const ys = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 0, 1, 2, 3, 3, 2, 1, 0], 'int32'), 4);
    const fit = async () => {
      const m = build();
      m.setWeights(initial);
      const before = tf.memory().numTensors;
      const h = await m.fit(xs, ys, { batchSize: 4, epochs: 1, shuffle: false, verbose: 0 });
      expect(tf.memory().numTensors).toBe(before);
      const weights = m.getWeights().map((w) => bits(w));
      m.dispose();
      return { weights, loss: h.history.loss };
    };
    const upstream = await fit();
    const ours = await released(fit);
    expect(ours).toEqual(upstream);
    tf.dispose([...initial, xs, ys]);
  });

  it('lowers the peak of tf.memory().numBytes in the backward pass of a deep model', async () => {
    // 16 dense layers of 256 units on a batch of 64: each saves its input and
    // output (64 KB each), which upstream keeps until the pass ends.
    const r = rng(21);
    const layers = Array.from({ length: 16 }, () =>
      tf.tensor2d(
        values(r, 256 * 256).map((v) => v * 0.1),
        [256, 256],
      ),
    );
    const x = tf.tensor2d(values(r, 64 * 256), [64, 256]);
    const f = () => {
      let h: tf.Tensor2D = x;
      for (const w of layers) h = tf.relu(tf.matMul(h, w));
      return tf.mean(tf.square(h)) as tf.Scalar;
    };
    const measure = () => {
      let out: number[][] = [];
      const peak = peakBytes(() => {
        const g = tf.grads(() => f())(layers.map((l) => l as tf.Tensor));
        out = g.map((t) => bits(t));
        tf.dispose(g);
      });
      return { peak, out };
    };
    const upstream = await expectNoLeak(measure);
    const ours = await expectNoLeak(() => released(measure));
    expect(ours.out).toEqual(upstream.out);
    // The weights' gradients (16 x 256 KB) are the result in both; what goes
    // is the activations and the intermediate gradients, 2 x 64 KB per layer.
    expect(ours.peak).toBeLessThan(upstream.peak);
    expect(upstream.peak - ours.peak).toBeGreaterThan(8 * 64 * 256 * 4);
    tf.dispose([...layers, x]);
  });

  it('frees the partial gradients it adds up: the peak does not grow with the readers of a tensor', async () => {
    // p (256 x 1024, 1 MB) feeds n branches that each reduce it first (tf.sum, which keeps a copy
    // of p for its gradient) and each hand back a partial gradient of p's size. Upstream keeps all
    // n partials until the pass ends; freed once added, about two are alive at a time, so a branch
    // adds its saved copy of p to the peak (1 MB) but not its partial (another 1 MB).
    const MB = 256 * 1024 * 4;
    const r = rng(22);
    const x = tf.tensor2d(values(r, 256 * 1024), [256, 1024]);
    const w = tf.tensor2d(values(r, 256 * 1024), [256, 1024]);
    const f = (n: number) => () => {
      const p = tf.mul(x, w);
      const branches = Array.from({ length: n }, (_, i) => tf.tanh(tf.mul(tf.sum(p, 1), 0.01 * (i + 1))));
      return tf.mean(tf.addN(branches)) as tf.Scalar;
    };
    const measure = (n: number) => () => {
      let out: number[][] = [];
      const peak = peakBytes(() => {
        const g = tf.grads(f(n))([w]);
        out = g.map((t) => bits(t));
        tf.dispose(g);
      });
      return { peak, out };
    };
    const upstream4 = await expectNoLeak(measure(4));
    const upstream16 = await expectNoLeak(measure(16));
    const ours4 = await expectNoLeak(() => released(measure(4)));
    const ours16 = await expectNoLeak(() => released(measure(16)));
    expect(ours16.out).toEqual(upstream16.out);
    expect(ours4.out).toEqual(upstream4.out);
    // 12 more branches: upstream holds 12 more copies and 12 more partials (24 MB, and more);
    // ours, the copies alone (12 MB), under 18.
    expect(upstream16.peak - upstream4.peak).toBeGreaterThan(24 * MB);
    expect(ours16.peak - ours4.peak).toBeLessThan(18 * MB);
    tf.dispose([x, w]);
  });

  it('frees both tensors of each addition of partial gradients: the peak stays flat with more readers', async () => {
    // The test above cannot see a partial kept after the addition: tf.memory().numBytes counts
    // every tensor, clones too, and each branch's saved copy of p is freed as the walk passes
    // it, making room for the partial. Here x (64K floats, S = 256 KB) has n readers that keep
    // nothing for their gradients (a custom gradient: the value k * sum(x), the gradient k * dy
    // everywhere), so the forward pass holds n scalars, and each reader hands back a partial of
    // S bytes, added into x's gradient. Freed once added (the running sum and the new partial
    // both), the backward pass holds a few S whatever n is; keeping either operand of each
    // addition holds one more S per reader, as upstream does until the pass ends.
    const N = 65536;
    const S = N * 4;
    const x = tf.tensor1d(values(rng(23), N));
    const reader = (k: number) =>
      tf.customGrad(((a: tf.Tensor) => ({
        value: tf.mul(tf.sum(a), k),
        gradFunc: (dy: tf.Tensor) => tf.mul(dy, tf.fill([N], k)),
      })) as unknown as CustomGradient) as (t: tf.Tensor) => tf.Tensor;
    const f = (n: number) => () =>
      tf.addN(Array.from({ length: n }, (_, i) => reader(i + 1)(x))) as tf.Scalar;
    const measure = (n: number) => () => {
      let out: number[][] = [];
      const peak = peakBytes(() => {
        const g = tf.grads(f(n))([x]);
        out = g.map((t) => bits(t));
        tf.dispose(g);
      });
      return { peak, out };
    };
    const upstream2 = await expectNoLeak(measure(2));
    const upstream8 = await expectNoLeak(measure(8));
    const ours2 = await expectNoLeak(() => released(measure(2)));
    const ours8 = await expectNoLeak(() => released(measure(8)));
    expect(ours2.out).toEqual(upstream2.out);
    expect(ours8.out).toEqual(upstream8.out);
    // The measure sees kept partials: upstream keeps 6 more for 6 more readers.
    expect(upstream8.peak - upstream2.peak).toBeGreaterThanOrEqual(6 * S);
    // Ours: 6 more readers add only scalars to the peak, less than one partial; and at most three
    // tensors of x's size are alive at a time (the running sum with a reader's tf.fill and its
    // partial, or with the partial and their sum), besides scalars.
    expect(ours8.peak - ours2.peak).toBeLessThan(S);
    expect(ours8.peak).toBeLessThan(4 * S);
    x.dispose();
  });

  it('higher-order gradients: tf.grad of tf.grad is unchanged', async () => {
    const x = tf.tensor1d([-1.5, 0.5, 2, 3]);
    const run = () =>
      expectNoLeak(() =>
        tf.tidy(() => {
          // d2/dx2 of sum(x^3 * sin(x)): 6x sin x + 6x^2 cos x - x^3 sin x
          const g2 = tf.grad((v: tf.Tensor) =>
            tf.grad((u: tf.Tensor) => tf.sum(tf.mul(tf.pow(u, 3), tf.sin(u))))(v),
          )(x);
          return bits(g2);
        }),
      );
    const upstream = await run();
    const ours = await released(run);
    expect(ours).toEqual(upstream);
    const got = new Float32Array(new Uint32Array(ours).buffer);
    const want = [-1.5, 0.5, 2, 3].map(
      (v) => 6 * v * Math.sin(v) + 6 * v * v * Math.cos(v) - v ** 3 * Math.sin(v),
    );
    got.forEach((g, i) => expect(Math.abs(g - want[i])).toBeLessThan(1e-4 * Math.max(1, Math.abs(want[i]))));
    expect(engine().state.gradientDepth).toBe(0);
    tf.dispose(x);
  });

  it('keeps a result or input that f returns, and the tensors the user kept', async () => {
    const x = tf.tensor1d([1, 2, 3]);
    await released(
      () =>
        expectNoLeak(() => {
          let kept: tf.Tensor | undefined;
          const { value, grads } = tf.valueAndGrads((v: tf.Tensor) => {
            kept = tf.keep(tf.exp(v));
            return tf.sum(tf.mul(kept, v));
          })([x]);
          expect(kept!.isDisposed).toBe(false);
          expect(Array.from(kept!.dataSync())).toEqual(Array.from(tf.exp(x).dataSync()));
          expect(grads[0].shape).toEqual([3]);
          tf.dispose([value, ...grads, kept!]);
        }, 1), // the tf.exp(x) of the comparison
    );
    tf.dispose(x);
  });

  it('never disposes a tensor made before the call that a custom gradient returns', async () => {
    const outside = tf.tensor1d([5, 6, 7]);
    const x = tf.tensor1d([1, 2, 3]);
    // The gradient of an intermediate tensor is the user's tensor itself, which the walk is done
    // with after the node before it. (Upstream disposes such a tensor too, but only where it
    // accumulates two gradients, which this net does not.)
    const constGrad = tf.customGrad(((a: tf.Tensor) => ({
      value: tf.mul(a, 2),
      gradFunc: () => outside,
    })) as unknown as Parameters<typeof tf.customGrad>[0]);
    const run = () =>
      tf.tidy(() => {
        const g = tf.grad((v: tf.Tensor) => tf.sum(constGrad(tf.mul(v, 1.5))))(x);
        expect(Array.from(g.dataSync())).toEqual([7.5, 9, 10.5]);
        return bits(g);
      });
    const upstream = run();
    const ours = await released(async () => run());
    expect(ours).toEqual(upstream);
    expect(outside.isDisposed).toBe(false);
    expect(Array.from(outside.dataSync())).toEqual([5, 6, 7]);
    tf.dispose([outside, x]);
  });

  it('after an error in the backward pass or in f: no tensor left, the tape cleared, the next pass right', async () => {
    const x = tf.tensor1d([1, 2, 3]);
    const failing = tf.customGrad(((a: tf.Tensor, save: tf.GradSaveFunc) => {
      save([a]);
      return {
        value: tf.square(a),
        gradFunc: () => {
          throw new Error('gradient failed');
        },
      };
    }) as unknown as CustomGradient);
    await released(async () => {
      const before = tf.memory().numTensors;
      expect(() => tf.grad((v: tf.Tensor) => tf.sum(tf.exp(failing(tf.sin(v)))))(x)).toThrow(
        'gradient failed',
      );
      // Not in a tidy: the variableGrads of an optimizer leaves y to the engine.
      const w = tf.tidy(() => tf.variable(tf.ones([3])));
      expect(() => tf.variableGrads(() => tf.sum(tf.exp(failing(tf.mul(w, x)))) as tf.Scalar)).toThrow(
        'gradient failed',
      );
      expect(() =>
        tf.grad((v: tf.Tensor) => {
          tf.exp(tf.sin(v));
          throw new Error('forward failed');
        })(x),
      ).toThrow('forward failed');
      expect(() => tf.grad(() => tf.scalar(1))(x)).toThrow('Cannot compute gradient of y=f(x)');
      w.dispose();
      expect(tf.memory().numTensors).toBe(before);
      expect(engine().state.activeTape).toBeNull();
      expect(engine().state.gradientDepth).toBe(0);
      const g = tf.grad((v: tf.Tensor) => tf.sum(tf.square(v)))(x);
      expect(Array.from(g.dataSync())).toEqual([2, 4, 6]);
      g.dispose();
    });
    tf.dispose(x);
  });
});

describe('install and uninstall', () => {
  it('replaces tf.engine().gradients and puts the original back; calls nest', () => {
    expect(Object.prototype.hasOwnProperty.call(tf.engine(), 'gradients')).toBe(false);
    const a = releaseSavedTensorsDuringBackprop();
    const patched = engine().gradients;
    expect(patched).not.toBe(protoGradients());
    const b = releaseSavedTensorsDuringBackprop();
    expect(engine().gradients).toBe(patched);
    a();
    a(); // twice is once
    expect(engine().gradients).toBe(patched);
    b();
    expect(engine().gradients).toBe(protoGradients());
    expect(Object.prototype.hasOwnProperty.call(tf.engine(), 'gradients')).toBe(false);
  });

  it('does not restore over code that replaced the method after it', () => {
    const undo = releaseSavedTensorsDuringBackprop();
    const other = () => {
      throw new Error('not called');
    };
    engine().gradients = other;
    expect(undo).toThrow('replaced by other code');
    expect(engine().gradients).toBe(other);
    delete (engine() as Partial<EngineView>).gradients;
    expect(engine().gradients).toBe(protoGradients());
  });

  it('accepts the verified tfjs-core versions, and refuses others with the version and what to do', () => {
    expect(tf.version_core).toMatch(/^4\.(1[1-9]|2[0-2])\.\d+$/);
    for (const v of ['4.11.0', '4.15.0', '4.18.1', '4.22.0', '4.22.7'])
      expect(() => checkEngineSupported(v, tf.engine())).not.toThrow();
    for (const v of ['4.10.0', '4.23.0', '4.22.0-rc.1', '5.0.0', '3.21.0', 'x']) {
      expect(() => checkEngineSupported(v, tf.engine())).toThrow(
        new RegExp(
          `tfjs-core ${v.replace(/\./g, '\\.')} is not a version it was verified with \\(4\\.11\\.0 to 4\\.22\\.x\\).*leave the option off`,
        ),
      );
    }
    expect(() => checkEngineSupported('4.22.0', { gradients() {}, tidy() {}, state: {} })).toThrow(
      'lacks scopedRun(), startTape(), endTape(), makeTensor(), state.gradientDepth',
    );
    // A fresh engine state has no activeTape field until a tape starts.
    const fresh = Object.create(Object.getPrototypeOf(tf.engine()));
    fresh.state = { gradientDepth: 0 };
    expect(() => checkEngineSupported('4.22.0', fresh)).not.toThrow();
  });
});

// Last: once initBackend has installed it, it stays for the process.
describe('initBackend({ releaseSavedTensorsDuringBackprop })', () => {
  it('is off unless asked for, and installs once however often it is asked', async () => {
    await initBackend({ prefer: 'cpu', quiet: true });
    expect(engine().gradients).toBe(protoGradients());
    await initBackend({ prefer: 'cpu', quiet: true, releaseSavedTensorsDuringBackprop: false });
    expect(engine().gradients).toBe(protoGradients());
    await initBackend({ prefer: 'cpu', quiet: true, releaseSavedTensorsDuringBackprop: true });
    const patched = engine().gradients;
    expect(patched).not.toBe(protoGradients());
    await initBackend({ prefer: 'cpu', quiet: true, releaseSavedTensorsDuringBackprop: true });
    expect(engine().gradients).toBe(patched);
    const g = tf.grad((v: tf.Tensor) => tf.sum(tf.square(v)))(tf.tensor1d([1, -2]));
    expect(Array.from(g.dataSync())).toEqual([2, -4]);
  });
});
