// Shared fixtures of the layers tests (cpu backend, deterministic data).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { expectNoLeak } from '../../../tools/testing/leaks.js';

export async function useCpu(): Promise<void> {
  await tf.setBackend('cpu');
  await tf.ready();
}

/** Deterministic pseudo-random normal tensor (seeded, so failures reproduce). */
export function randn(shape: number[], seed: number): tf.Tensor {
  return tf.randomNormal(shape, 0, 1, 'float32', seed);
}

export function values(t: tf.Tensor): Float32Array {
  return t.dataSync() as Float32Array;
}

/** max |a - b| / max(1, max |b|): a scale-aware error for outputs of any magnitude. */
export function scaledError(a: tf.Tensor, b: tf.Tensor): number {
  const av = values(a);
  const bv = values(b);
  if (av.length !== bv.length) throw new Error(`size mismatch ${av.length} vs ${bv.length}`);
  let err = 0;
  let scale = 1;
  for (let i = 0; i < av.length; i++) {
    err = Math.max(err, Math.abs(av[i] - bv[i]));
    scale = Math.max(scale, Math.abs(bv[i]));
  }
  return err / scale;
}

/**
 * The effective kernel by the documented formula, in float64 plain arithmetic
 * (no tfjs, none of the layers' code): `w = v * g / sqrt(sum(v^2 over the
 * group) + epsilon^2)`. A group is the set of entries of the direction `v`
 * that differ only along `normAxes`; groups are numbered row-major over the
 * remaining axes, which is how the magnitude `g` is laid out (Dense 'output':
 * `[units]`, 'input': `[in]`; Conv2D 'kernel': `[cin, cout]`, 'filter': `[cout]`).
 */
/** The largest difference of two arrays over the largest magnitude of `b` (arrays read back from two backends). */
export function scaledErrorOf(a: Float32Array, b: Float32Array): number {
  const scale = b.reduce((m, v) => Math.max(m, Math.abs(v)), 1e-30);
  let err = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (d !== 0) err = Math.max(err, d);
  }
  return err / scale;
}

export function referenceKernel(
  direction: ArrayLike<number>,
  shape: number[],
  normAxes: number[],
  magnitude: ArrayLike<number>,
  epsilon: number,
): Float64Array {
  const size = shape.reduce((p, d) => p * d, 1);
  if (direction.length !== size) throw new Error(`direction has ${direction.length} entries, shape ${shape}`);
  const kept = shape.map((_, a) => a).filter((a) => !normAxes.includes(a));
  const groups = kept.reduce((p, a) => p * shape[a], 1);
  if (magnitude.length !== groups)
    throw new Error(`magnitude has ${magnitude.length} entries, ${groups} groups`);
  const groupOf = (flat: number): number => {
    // Coordinates of `flat` (row-major), then the row-major index over the kept axes.
    const coords = new Array<number>(shape.length);
    for (let a = shape.length - 1; a >= 0; a--) {
      coords[a] = flat % shape[a];
      flat = Math.floor(flat / shape[a]);
    }
    return kept.reduce((g, a) => g * shape[a] + coords[a], 0);
  };
  const sumSq = new Float64Array(groups);
  for (let i = 0; i < size; i++) sumSq[groupOf(i)] += direction[i] * direction[i];
  const out = new Float64Array(size);
  for (let i = 0; i < size; i++) {
    const g = groupOf(i);
    out[i] = (direction[i] * magnitude[g]) / Math.sqrt(sumSq[g] + epsilon * epsilon);
  }
  return out;
}

/** The effective kernel of a built decomposed layer by {@link referenceKernel}, from its current weights. */
export function referenceKernelOf(layer: {
  direction: { read(): tf.Tensor } | null;
  magnitude: { read(): tf.Tensor } | null;
  normAxes: number[];
  epsilon: number;
}): tf.Tensor {
  const v = layer.direction!.read();
  const g = layer.magnitude!.read();
  return tf.tensor(
    Array.from(referenceKernel(values(v), v.shape, layer.normAxes, values(g), layer.epsilon)),
    v.shape,
  );
}

export function allFinite(t: tf.Tensor): boolean {
  return values(t).every((v) => Number.isFinite(v));
}

/**
 * Central finite differences of `f` with respect to chosen entries of `v`
 * (float32: h = 1e-2 keeps the rounding error of f well below the signal).
 */
export function numericGrad(f: () => number, v: tf.Variable, indices: number[], h = 1e-2): number[] {
  const out: number[] = [];
  for (const i of indices) {
    const base = v.dataSync().slice() as Float32Array;
    const plus = base.slice();
    plus[i] += h;
    tf.tidy(() => v.assign(tf.tensor(plus, v.shape)));
    const fp = f();
    const minus = base.slice();
    minus[i] -= h;
    tf.tidy(() => v.assign(tf.tensor(minus, v.shape)));
    const fm = f();
    tf.tidy(() => v.assign(tf.tensor(base, v.shape)));
    out.push((fp - fm) / (2 * h));
  }
  return out;
}

interface Decomposable {
  /** Its weights, `[direction, magnitude, bias]` (a separable layer's two pairs, then its bias). */
  readonly weights: readonly { read(): tf.Tensor }[];
  apply(x: tf.Tensor): unknown;
}

/**
 * Relative error (||numeric - analytic|| / ||analytic||) of the gradients of
 * L = sum(layer(x) * r) with respect to each weight and to the input, at
 * seeded weights. The numeric gradient is Richardson-extrapolated central
 * differences (error O(h^4)), so the float32 check stays far below its
 * tolerance whatever the weights.
 */
export function gradientErrors(layer: Decomposable, x: tf.Tensor, seed: number): number[] {
  const vars = layer.weights.map((w) => w.read() as tf.Variable);
  vars.forEach((v, i) => tf.tidy(() => v.assign(randn(v.shape, seed + i))));
  const input = tf.variable(x);
  vars.push(input);
  const r = tf.tidy(() => randn((layer.apply(x) as tf.Tensor).shape, seed + 10));
  const loss = () => tf.sum(tf.mul(layer.apply(input) as tf.Tensor, r)) as tf.Scalar;
  const { value, grads } = tf.variableGrads(loss, vars);
  const f = () => tf.tidy(() => loss().dataSync()[0]);
  const errors = vars.map((v) => {
    const indices = Array.from({ length: v.size }, (_, i) => i);
    const coarse = numericGrad(f, v, indices, 2e-2);
    const fine = numericGrad(f, v, indices, 1e-2);
    const numeric = fine.map((d, i) => (4 * d - coarse[i]) / 3);
    const analytic = Array.from(values(grads[v.name]));
    return Math.hypot(...numeric.map((n, i) => n - analytic[i])) / Math.hypot(...analytic);
  });
  tf.dispose([r, value, input, ...Object.values(grads)]);
  return errors;
}

/** Disposes every weight of `layer`, a test's layer built outside a model. */
export function disposeWeights(layer: tfl.layers.Layer): void {
  for (const w of layer.weights) w.dispose();
}

const seeded = (seed: number) => tfl.initializers.glorotNormal({ seed });

/** A model's output and the gradients of sum(tanh(output) * r) with respect to each trainable weight, read back as arrays. */
export function outputsAndGrads(
  m: tfl.LayersModel,
  x: { values: Float32Array; shape: number[] },
  r: { values: Float32Array; shape: number[] },
): Float32Array[] {
  return tf.tidy(() => {
    const input = tf.tensor(x.values, x.shape);
    const loss = () =>
      tf.sum(tf.mul(tf.tanh(m.apply(input) as tf.Tensor), tf.tensor(r.values, r.shape))) as tf.Scalar;
    const vars = m.trainableWeights.map((w) => w.read() as tf.Variable);
    const { grads } = tf.variableGrads(loss, vars);
    return [
      (m.apply(input) as tf.Tensor).dataSync() as Float32Array,
      ...vars.map((v) => grads[v.name].dataSync() as Float32Array),
    ];
  });
}

/** A first layer: a 3x3 'same' relu Conv2D of `filters`, seeded. */
const stem = (
  inputShape: number[],
  filters: number,
  name: string,
  bias?: ReturnType<typeof tfl.initializers.randomNormal>,
) =>
  tfl.layers.conv2d({
    inputShape,
    filters,
    kernelSize: 3,
    padding: 'same',
    activation: 'relu',
    kernelInitializer: seeded(1),
    biasInitializer: bias,
    name,
  });

/** What decoder()'s Conv2DTranspose and mobile()'s DepthwiseConv2D after the stem share: 3x3, stride 2, 'same', relu, a seeded bias. */
const strided = () => ({
  kernelSize: 3,
  strides: 2,
  padding: 'same' as const,
  activation: 'relu' as const,
  biasInitializer: tfl.initializers.randomNormal({ seed: 3 }),
});

/**
 * A Conv1D net (input [16, 3], output [3]): Conv1D (stride 2, `padding`), MaxPooling1D, Conv1D of
 * `dilationRate` (tfjs 4.22 cannot train a dilated one), GlobalAveragePooling1D, Dense.
 */
export function conv1dNet(dilationRate = 1, padding: 'same' | 'valid' | 'causal' = 'same'): tfl.Sequential {
  const c1 = {
    inputShape: [16, 3],
    filters: 6,
    kernelSize: 5,
    strides: 2,
    padding,
    activation: 'relu' as const,
  };
  const c2 = { filters: 4, kernelSize: 2, dilationRate, activation: 'relu' as const };
  return tfl.sequential({
    layers: [
      tfl.layers.conv1d({ ...c1, kernelInitializer: seeded(1), name: 'c1' }),
      tfl.layers.maxPooling1d({ poolSize: 2, name: 'pool' }),
      tfl.layers.conv1d({ ...c2, kernelInitializer: seeded(2), name: 'c2' }),
      tfl.layers.globalAveragePooling1d({ name: 'gap' }),
      tfl.layers.dense({ units: 3, kernelInitializer: seeded(3), name: 'out' }),
    ],
  });
}

/** A Conv2D net (input [6, 6, 2], output [2]): Conv2D ('same', relu), MaxPooling2D, Conv2D ([2, 3]), Flatten, Dense. */
export function conv2dNet(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      stem([6, 6, 2], 4, 'c1', tfl.initializers.randomNormal({ seed: 2 })),
      tfl.layers.maxPooling2d({ poolSize: 2, name: 'pool' }),
      tfl.layers.conv2d({ filters: 3, kernelSize: [2, 3], kernelInitializer: seeded(3), name: 'c2' }),
      tfl.layers.flatten({ name: 'flat' }),
      tfl.layers.dense({ units: 2, kernelInitializer: seeded(4), name: 'out' }),
    ],
  });
}

/** A decoder (input [4, 4, 2], output [9, 10, 2]): Conv2D, then two Conv2DTranspose layers (stride 2 'same', stride 1 'valid'). */
export function decoder(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      stem([4, 4, 2], 3, 'enc'),
      tfl.layers.conv2dTranspose({ ...strided(), filters: 4, kernelInitializer: seeded(2), name: 'up1' }),
      tfl.layers.conv2dTranspose({
        filters: 2,
        kernelSize: [2, 3],
        kernelInitializer: seeded(4),
        name: 'up2',
      }),
    ],
  });
}

/**
 * A MobileNet-style block (input [6, 6, 2], output [2, 1, 4]): Conv2D, DepthwiseConv2D
 * (multiplier 2, stride 2), 1x1 Conv2D, DepthwiseConv2D.
 */
export function mobile(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      stem([6, 6, 2], 3, 'stem'),
      tfl.layers.depthwiseConv2d({
        ...strided(),
        depthMultiplier: 2,
        depthwiseInitializer: seeded(2),
        name: 'dw1',
      }),
      tfl.layers.conv2d({ filters: 4, kernelSize: 1, kernelInitializer: seeded(4), name: 'pw' }),
      tfl.layers.depthwiseConv2d({
        kernelSize: [2, 3],
        depthwiseInitializer: seeded(5),
        useBias: false,
        name: 'dw2',
      }),
    ],
  });
}

/**
 * Trains `m` towards `ys` with an Adam loop (`minimize`) and with `fit`, and expects neither to
 * leave a tensor behind once the optimisers' slots exist. Disposes what it makes, not `m`.
 */
export async function expectTrainingLeavesNothing(
  m: tfl.LayersModel,
  xs: tf.Tensor,
  ys: tf.Tensor,
): Promise<void> {
  const opt = tf.train.adam(0.01);
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
  opt.dispose();
}
