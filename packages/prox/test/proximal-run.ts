// The run the per-layer-class tests (decomposed-conv, separable-conv) give a
// decomposed model: a proximal optimiser over its magnitudes, ten steps, and what must then hold.
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { MagnitudeInfo } from '@normprune/layers';
import { ProximalAdam, ProximalSGD } from '../src/index.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';

/** ProximalAdam (learning rate 0.01) or ProximalSGD (0.1) over `infos`. */
export function proximal(
  name: 'ProximalAdam' | 'ProximalSGD',
  lambda: number,
  infos: MagnitudeInfo[],
): ProximalAdam | ProximalSGD {
  return name === 'ProximalAdam'
    ? new ProximalAdam({ learningRate: 0.01, lambda, magnitudes: infos })
    : new ProximalSGD({ learningRate: 0.1, lambda, magnitudes: infos });
}

/** Each group's direction norm (over the entry's norm axes). */
function groupNorms(m: MagnitudeInfo): Float32Array {
  return tf.tidy(() => tf.sqrt(tf.sum(tf.square(m.direction), m.normAxes)).dataSync() as Float32Array);
}

/**
 * Ten steps of `opt` fitting `model` to `ys` from `xs` (the nine after the first, which makes the
 * optimiser's slots, leaving no tensor behind), then expects every magnitude of `infos` >= 0 and
 * every live group's direction of unit norm. Returns how many groups of each entry are exactly 0.
 */
export async function tenSteps(
  opt: tf.Optimizer,
  model: tfl.LayersModel,
  infos: MagnitudeInfo[],
  xs: tf.Tensor,
  ys: tf.Tensor,
): Promise<number[]> {
  const step = () =>
    opt.minimize(() => tf.losses.meanSquaredError(ys, model.apply(xs) as tf.Tensor) as tf.Scalar);
  step();
  await expectNoLeak(() => {
    for (let i = 0; i < 9; i++) step();
  });
  for (const m of infos) {
    const g = m.magnitude.dataSync();
    g.forEach((v) => expect(v).toBeGreaterThanOrEqual(0));
    groupNorms(m).forEach((n, i) => {
      if (g[i] > 0) expect(Math.abs(n - 1)).toBeLessThan(1e-5);
    });
  }
  return infos.map((m) => m.magnitude.dataSync().filter((v) => v === 0).length);
}
