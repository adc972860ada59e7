// The proximal step at lambda > 0, checked against plain tfjs: a decomposed
// model trained with ProximalAdam / ProximalSGD (momentum, Nesterov) must match,
// in every variable, a copy of it trained by tf.train.adam / tf.train.momentum
// on the variables that are not magnitudes, with the magnitudes updated by the
// documented formula written out in plain tfjs ops, and the directions then
// rescaled to unit norm (the magnitudes compensated for the layer's epsilon).
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { decompose, decomposedDense, magnitudes, type MagnitudeInfo } from '@normprune/layers';
import { type CostWeighting, ProximalAdam, ProximalSGD } from '../src/index.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** A Conv2D -> Flatten -> Dense -> Dense net; the shapes vary between cases. */
interface Arch {
  input: [number, number, number];
  filters: number;
  kernel: [number, number];
  units: number;
  out: number;
}

const ARCHS: [string, Arch][] = [
  [
    'input 6x6x2, 3 filters 3x3, 5 units, 2 outputs',
    { input: [6, 6, 2], filters: 3, kernel: [3, 3], units: 5, out: 2 },
  ],
  [
    'input 5x7x3, 4 filters 2x3, 7 units, 3 outputs',
    { input: [5, 7, 3], filters: 4, kernel: [2, 3], units: 7, out: 3 },
  ],
];

function plainModel(a: Arch): tfl.Sequential {
  const init = (seed: number) => tfl.initializers.glorotUniform({ seed });
  const bias = (seed: number) => tfl.initializers.randomNormal({ mean: 0, stddev: 0.1, seed });
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        inputShape: a.input,
        filters: a.filters,
        kernelSize: a.kernel,
        activation: 'tanh',
        name: 'c1',
        kernelInitializer: init(1),
        biasInitializer: bias(2),
      }),
      tfl.layers.flatten({ name: 'flat' }),
      tfl.layers.dense({
        units: a.units,
        activation: 'tanh',
        name: 'd1',
        kernelInitializer: init(3),
        biasInitializer: bias(4),
      }),
      tfl.layers.dense({ units: a.out, name: 'd2', kernelInitializer: init(5), biasInitializer: bias(6) }),
    ],
  });
}

/** c1 with granularity 'kernel', d1 'output', d2 'input', all with the given epsilon. */
function decomposedModel(plain: tfl.LayersModel, epsilon: number): tfl.LayersModel {
  const first = decompose(plain, {
    include: ['c1', 'd1'],
    granularity: { dense: 'output', conv2d: 'kernel' },
    epsilon,
  });
  const model = decompose(first, { include: ['d2'], granularity: { dense: 'input' }, epsilon });
  first.dispose();
  return model;
}

/**
 * `c_k` of c1, d1, d2 written out from the architecture: 'params' counts the
 * kernel weights of one group, 'macs' its multiply-accumulates per sample,
 * both divided by their mean over all groups; then the layer multipliers.
 */
function expectedWeights(a: Arch, weighting: CostWeighting, multipliers: Record<string, number>): number[] {
  const [h, w, cin] = a.input;
  const [kh, kw] = a.kernel;
  const positions = (h - kh + 1) * (w - kw + 1); // 'valid' padding, stride 1
  const flat = positions * a.filters;
  const layers = [
    // name, groups, params per group, MACs per group
    ['c1', cin * a.filters, kh * kw, kh * kw * positions],
    ['d1', a.units, flat, flat], // 'output': one group per unit, fed by every input
    ['d2', a.units, a.out, a.out], // 'input': one group per input, feeding every output
  ] as const;
  const raw = layers.map(([, , params, macs]) =>
    weighting === 'uniform' ? 1 : weighting === 'params' ? params : macs,
  );
  const groups = layers.reduce((s, l) => s + l[1], 0);
  const mean = layers.reduce((s, l, i) => s + l[1] * raw[i], 0) / groups;
  return layers.map(([name], i) => (raw[i] / mean) * (multipliers[name] ?? 1));
}

type Spec =
  | { kind: 'adam'; learningRate: number; beta1?: number; beta2?: number; epsilon?: number }
  | { kind: 'momentum'; learningRate: number; momentum: number; nesterov: boolean };

interface Case {
  name: string;
  spec: Spec;
  lambda: number;
  costWeighting: CostWeighting;
  layerMultipliers: Record<string, number>;
  /** The decomposed layers' epsilon: above 1e-6 the renormalisation compensates the magnitudes. */
  epsilon: number;
}

const CASES: Case[] = [
  {
    name: "ProximalAdam, 'uniform', default betas and epsilon",
    spec: { kind: 'adam', learningRate: 0.05 },
    lambda: 0.05,
    costWeighting: 'uniform',
    layerMultipliers: {},
    epsilon: 1e-6,
  },
  {
    name: "ProximalAdam, 'params', multipliers { d1: 0, c1: 2.5 }, beta1 0.8, beta2 0.95, epsilon 1e-4",
    spec: { kind: 'adam', learningRate: 0.05, beta1: 0.8, beta2: 0.95, epsilon: 1e-4 },
    lambda: 0.05,
    costWeighting: 'params',
    layerMultipliers: { d1: 0, c1: 2.5 },
    epsilon: 1e-6,
  },
  {
    name: "ProximalAdam, 'macs', multipliers { d2: 0 }, layer epsilon 0.3",
    spec: { kind: 'adam', learningRate: 0.05 },
    lambda: 0.05,
    costWeighting: 'macs',
    layerMultipliers: { d2: 0 },
    epsilon: 0.3,
  },
  {
    name: "ProximalSGD, momentum 0.9, 'uniform'",
    spec: { kind: 'momentum', learningRate: 0.1, momentum: 0.9, nesterov: false },
    lambda: 1,
    costWeighting: 'uniform',
    layerMultipliers: {},
    epsilon: 1e-6,
  },
  {
    name: "ProximalSGD, Nesterov 0.8, 'params', multipliers { c1: 0, d2: 3 }",
    spec: { kind: 'momentum', learningRate: 0.1, momentum: 0.8, nesterov: true },
    lambda: 1,
    costWeighting: 'params',
    layerMultipliers: { c1: 0, d2: 3 },
    epsilon: 1e-6,
  },
  {
    name: "ProximalSGD, Nesterov 0.9, 'macs', multipliers { d1: 0 }, layer epsilon 0.3",
    spec: { kind: 'momentum', learningRate: 0.1, momentum: 0.9, nesterov: true },
    lambda: 1,
    costWeighting: 'macs',
    layerMultipliers: { d1: 0 },
    epsilon: 0.3,
  },
];

/**
 * The reference: a plain tfjs optimiser on every variable but the magnitudes,
 * and the magnitudes' update spelled out with tf ops, then the renormalisation.
 */
class Reference {
  private readonly plain: tf.Optimizer;
  private readonly infos: MagnitudeInfo[];
  private readonly magnitudeNames: Set<string>;
  // Adam's first and second moments, or the momentum accumulator (in `m`), per magnitude.
  private readonly state: { m: tf.Tensor; v: tf.Tensor }[];
  // beta1^t and beta2^t as float32 scalars (Adam only).
  private acc: { b1: tf.Scalar; b2: tf.Scalar };

  constructor(
    private readonly model: tfl.LayersModel,
    private readonly spec: Spec,
    private readonly lambda: number,
    private readonly c: number[],
  ) {
    this.plain =
      spec.kind === 'adam'
        ? tf.train.adam(spec.learningRate, spec.beta1 ?? 0.9, spec.beta2 ?? 0.999, spec.epsilon)
        : tf.train.momentum(spec.learningRate, spec.momentum, spec.nesterov);
    this.infos = magnitudes(model);
    this.magnitudeNames = new Set(this.infos.map((m) => m.magnitude.name));
    this.state = this.infos.map((m) => ({ m: tf.zerosLike(m.magnitude), v: tf.zerosLike(m.magnitude) }));
    this.acc = { b1: tf.scalar(1), b2: tf.scalar(1) };
  }

  step(loss: () => tf.Scalar): void {
    if (this.spec.kind === 'adam') {
      const { b1, b2 } = this.acc;
      const { beta1, beta2 } = this.spec;
      this.acc = tf.tidy(() => ({
        b1: tf.mul(b1, tf.scalar(beta1 ?? 0.9)) as tf.Scalar,
        b2: tf.mul(b2, tf.scalar(beta2 ?? 0.999)) as tf.Scalar,
      }));
      tf.dispose([b1, b2]);
    }
    const vars = this.model.trainableWeights.map((w) => w.read() as tf.Variable);
    const { value, grads } = tf.variableGrads(loss, vars);
    value.dispose();
    // Every variable that is not a magnitude: the plain tfjs step.
    const others: tf.NamedTensorMap = {};
    for (const [name, g] of Object.entries(grads)) if (!this.magnitudeNames.has(name)) others[name] = g;
    this.plain.applyGradients(others);
    // The magnitudes: the documented proximal step.
    const lr = this.spec.learningRate;
    this.infos.forEach((info, i) => {
      const grad = grads[info.magnitude.name];
      const s = this.state[i];
      const thr = this.lambda * this.c[i];
      const [m, v, g] = tf.tidy(() => {
        const gOld = info.magnitude;
        if (this.spec.kind === 'adam') {
          const b1 = this.spec.beta1 ?? 0.9;
          const b2 = this.spec.beta2 ?? 0.999;
          const eps = this.spec.epsilon ?? tf.backend().epsilon();
          const m = tf.add(tf.mul(b1, s.m), tf.mul(1 - b1, grad));
          const v = tf.add(tf.mul(b2, s.v), tf.mul(1 - b2, tf.square(grad)));
          // Bias correction as tf.train.adam does it: beta^t is a float32 product updated once a step.
          // (1 - 0.999^t in float64 differs from it by 1.3e-5 relative at t = 1, 6e-6 in the step.)
          const mhat = tf.div(m, tf.sub(1, this.acc.b1));
          const vhat = tf.div(v, tf.sub(1, this.acc.b2));
          // g <- max(g - lr (mhat + lambda c_k) / (sqrt(vhat) + eps), 0)
          const g = tf.maximum(
            tf.sub(gOld, tf.div(tf.mul(lr, tf.add(mhat, thr)), tf.add(tf.sqrt(vhat), eps))),
            0,
          );
          return [m, v, g];
        }
        const mu = this.spec.momentum;
        const acc = tf.add(tf.mul(mu, s.m), grad);
        const dir = this.spec.nesterov ? tf.add(grad, tf.mul(mu, acc)) : acc;
        // g <- max(g - lr (direction + lambda c_k), 0)
        const g = tf.maximum(tf.sub(gOld, tf.mul(lr, tf.add(dir, thr))), 0);
        return [acc, s.v.clone(), g];
      });
      tf.dispose([s.m, s.v]);
      this.state[i] = { m, v };
      info.magnitude.assign(g);
      g.dispose();
    });
    tf.dispose(grads);
    // Unit-norm directions; the magnitude times sqrt((1 + eps^2) s / (s + eps^2)), s = ||V||^2,
    // keeps g V / sqrt(||V||^2 + eps^2). Applied at every epsilon (src skips it where it rounds to 1).
    tf.tidy(() => {
      for (const info of this.infos) {
        const s = tf.sum(tf.square(info.direction), info.normAxes, true);
        info.direction.assign(tf.div(info.direction, tf.sqrt(s)));
        const e2 = info.epsilon * info.epsilon;
        const sg = tf.reshape(s, info.magnitude.shape);
        info.magnitude.assign(tf.mul(info.magnitude, tf.sqrt(tf.div(tf.mul(sg, 1 + e2), tf.add(sg, e2)))));
      }
    });
  }

  dispose(): void {
    // tf.train.momentum's dispose() (tfjs-core 4.22) does not free its kept -learningRate scalar `c`.
    const c = (this.plain as unknown as { c?: tf.Tensor }).c;
    this.plain.dispose();
    if (c != null && !c.isDisposed) c.dispose();
    tf.dispose([...this.state.flatMap((s) => [s.m, s.v]), this.acc.b1, this.acc.b2]);
  }
}

// Measured: at most 7.1e-7 over every variable, step and case (float32 rounding; the gradients of
// the two models part by rounding after the first step). 1e-5 would hide a float64 bias correction
// in place of tf.train.adam's float32 one (up to 7.8e-6 here), so 5e-6.
const TOLERANCE = 5e-6;

/** Largest |a - b| over the largest |b|, per weight (the norm-wise relative error). */
function relativeErrors(ours: tfl.LayersModel, ref: tfl.LayersModel): { name: string; rel: number }[] {
  return ours.weights.map((w, i) => {
    const a = w.read().dataSync();
    const b = ref.weights[i].read().dataSync();
    let diff = 0;
    let scale = 0;
    for (let k = 0; k < a.length; k++) {
      diff = Math.max(diff, Math.abs(a[k] - b[k]));
      scale = Math.max(scale, Math.abs(b[k]));
    }
    return { name: w.originalName, rel: diff / scale };
  });
}

const xsFor = (a: Arch) => tf.randomNormal([8, ...a.input], 0, 1, 'float32', 11);
const ysFor = (a: Arch) => tf.randomNormal([8, a.out], 0, 1, 'float32', 12);

describe.each(ARCHS)('the proximal step against plain tfjs, %s', (_arch, arch) => {
  it.each(CASES.map((c) => [c.name, c] as const))(
    '%s: every variable after 1, 2 and 3 steps',
    async (_n, c) => {
      const start = tf.memory().numTensors;
      const xs = xsFor(arch);
      const ys = ysFor(arch);
      const plain = plainModel(arch);
      const ours = decomposedModel(plain, c.epsilon);
      const theirs = decomposedModel(plain, c.epsilon);
      plain.dispose();
      // Two groups of every layer start small, so that the threshold zeroes some groups within three steps.
      for (const model of [ours, theirs])
        for (const m of magnitudes(model))
          tf.tidy(() => {
            const scale = Array.from({ length: m.groups }, (_, k) => (k < 2 ? 0.01 : 1));
            m.magnitude.assign(tf.mul(m.magnitude, tf.reshape(tf.tensor1d(scale), m.magnitude.shape)));
          });
      expect(magnitudes(ours).map((m) => [m.layerName, m.granularity])).toEqual([
        ['c1', 'kernel'],
        ['d1', 'output'],
        ['d2', 'input'],
      ]);
      const weights = expectedWeights(arch, c.costWeighting, c.layerMultipliers);
      const common = {
        lambda: c.lambda,
        magnitudes: ours,
        costWeighting: c.costWeighting,
        layerMultipliers: c.layerMultipliers,
      };
      // The spec's kind picks the class; it is no option of either (an unknown key is refused).
      const { kind, ...options } = c.spec;
      const opt =
        kind === 'adam'
          ? new ProximalAdam({ ...common, ...options })
          : new ProximalSGD({
              ...common,
              ...(options as Omit<typeof c.spec & { kind: 'momentum' }, 'kind'>),
            });
      opt.penaltyWeights.forEach((w, i) => expect(w).toBeCloseTo(weights[i], 12));
      const ref = new Reference(theirs, c.spec, c.lambda, weights);
      const lossOf = (m: tfl.LayersModel) => () =>
        tf.losses.meanSquaredError(ys, m.apply(xs) as tf.Tensor) as tf.Scalar;

      for (let step = 1; step <= 3; step++) {
        // The optimiser's state exists after the first step; from then on a step leaves no tensor behind.
        if (step === 1) opt.minimize(lossOf(ours), false);
        else await expectNoLeak(() => opt.minimize(lossOf(ours), false));
        ref.step(lossOf(theirs));
        const off = relativeErrors(ours, theirs)
          .filter((e) => !(e.rel < TOLERANCE))
          .map((e) => `step ${step}: ${e.name} off by ${e.rel} relative`);
        expect(off).toEqual([]);
        // The threshold is exact: a magnitude is 0 in one exactly when it is 0 in the other.
        magnitudes(ours).forEach((m, i) => {
          const b = magnitudes(theirs)[i].magnitude.dataSync();
          expect(Array.from(m.magnitude.dataSync(), (v) => v === 0)).toEqual(Array.from(b, (v) => v === 0));
        });
      }
      // The threshold acted: some groups died (the same in both, checked above), and none of the layers died whole.
      const zeros = magnitudes(ours).map((m) => m.magnitude.dataSync().filter((v) => v === 0).length);
      expect(zeros.reduce((s, z) => s + z, 0)).toBeGreaterThan(0);
      magnitudes(ours).forEach((m, i) => expect(zeros[i]).toBeLessThan(m.groups));
      tf.dispose([xs, ys]);
      opt.dispose();
      ref.dispose();
      ours.dispose();
      theirs.dispose();
      expect(tf.memory().numTensors).toBe(start);
    },
  );
});

describe('the renormalisation after a step', () => {
  it('rescales the directions of a step that updates only directions (magnitudes frozen) to unit norm', async () => {
    const m = tfl.sequential({
      layers: [decomposedDense({ inputShape: [3], units: 2, name: 'a' })],
    });
    const [a] = magnitudes(m);
    const opt = new ProximalSGD({ learningRate: 0.5, lambda: 0, magnitudes: m });
    const g = tf.onesLike(a.direction);
    opt.applyGradients({ [a.direction.name]: g });
    await expectNoLeak(() => opt.applyGradients({ [a.direction.name]: g }));
    const norms = tf.tidy(() => tf.sqrt(tf.sum(tf.square(a.direction), 0)).dataSync());
    expect(Array.from(norms, (n) => Math.abs(n - 1) < 1e-6)).toEqual([true, true]);
    tf.dispose(g);
    opt.dispose();
    m.dispose();
  });

  it('leaves the magnitude of a group whose direction is all zero as it is (epsilon 1e-3, compensated)', () => {
    const m = tfl.sequential({
      layers: [decomposedDense({ inputShape: [3], units: 2, epsilon: 1e-3, name: 'a' })],
    });
    const [a] = magnitudes(m);
    tf.tidy(() => {
      a.direction.assign(
        tf.tensor2d([
          [0, 0.6],
          [0, 0.8],
          [0, 0],
        ]),
      );
      a.magnitude.assign(tf.tensor1d([2, 3]));
    });
    const opt = new ProximalSGD({ learningRate: 0.1, lambda: 0, magnitudes: m });
    tf.tidy(() =>
      opt.applyGradients({
        [a.magnitude.name]: tf.zerosLike(a.magnitude),
        [a.direction.name]: tf.zerosLike(a.direction),
      }),
    );
    // group 0 stays zero with its magnitude; group 1 (unit norm) is compensated by
    // sqrt((1 + eps^2) / (1 + eps^2)) = 1
    expect(Array.from(a.magnitude.dataSync())).toEqual([2, 3]);
    expect(Array.from(a.direction.dataSync())).toEqual([0, Math.fround(0.6), 0, Math.fround(0.8), 0, 0]);
    opt.dispose();
    m.dispose();
  });
});
