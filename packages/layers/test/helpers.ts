// Shared fixtures of the layers tests (cpu backend, deterministic data).
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

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
