import * as tf from '@tensorflow/tfjs-core';
import { describeValue as describe } from '@normprune/layers';

/**
 * Proximal operator of `t * |x|` (the lasso shrinkage): `sign(x) * max(|x| - t, 0)`.
 *
 * Entries with `|x| <= t` become exactly 0 (a tie at the threshold is zeroed).
 * `t` is a number or a tensor broadcastable to `x`; it must be >= 0
 * (else a RangeError; a tensor is not checked). The caller disposes the result.
 */
export function softThreshold(x: tf.Tensor, t: number | tf.Tensor): tf.Tensor {
  checkThreshold('softThreshold', t);
  return tf.tidy(() => tf.mul(tf.sign(x), tf.relu(tf.sub(tf.abs(x), t))));
}

/**
 * Proximal operator of `t * x` restricted to `x >= 0`: `max(x - t, 0)`.
 *
 * This is the step ProximalSGD applies to magnitudes: they carry the sign-free
 * importance of a group, so negative inputs are projected to 0 as well.
 * `t` is a number or a tensor broadcastable to `x`, >= 0 (else a RangeError; a tensor is not checked).
 * The caller disposes the result.
 */
export function nonnegSoftThreshold(x: tf.Tensor, t: number | tf.Tensor): tf.Tensor {
  checkThreshold('nonnegSoftThreshold', t);
  return tf.tidy(() => tf.relu(tf.sub(x, t)));
}

/**
 * Proximal operator of the group lasso `t * sum_g ||x_g||_2`, where a group is
 * every entry sharing the same index on the axes NOT listed in `axes`
 * (`axes` are the axes reduced for each group's norm, as `normAxes` in
 * `MagnitudeInfo`): `x_g * max(1 - t / ||x_g||, 0)`.
 *
 * This is the structured-sparsity baseline on plain (not decomposed) weights:
 * groups whose norm is <= t become exactly 0, the others shrink towards 0.
 * A zero group stays zero. `t` is a number or a tensor broadcastable to the
 * group-norm shape with the reduced axes kept (size 1), >= 0
 * (else a RangeError; a tensor is not checked). An int32 `x` gives a float32
 * result, as the other thresholds give. The caller disposes the result.
 */
export function groupSoftThreshold(x: tf.Tensor, t: number | tf.Tensor, axes: number[]): tf.Tensor {
  checkThreshold('groupSoftThreshold', t);
  return tf.tidy(() => {
    // An int32 x is computed in float32, as the other thresholds compute it (tf.sqrt takes
    // float32 only, and refused it with "Argument 'x' passed to 'sqrt' must be float32 tensor").
    if (x instanceof tf.Tensor && x.dtype === 'int32') x = tf.cast(x, 'float32');
    const norm = tf.sqrt(tf.sum(tf.square(x), axes, true));
    // max(norm, tiny) only guards the division: a zero group gives 0 * anything = 0.
    const scale = tf.relu(tf.sub(1, tf.div(t, tf.maximum(norm, FLOAT32_MIN_NORMAL))));
    return tf.mul(x, scale);
  });
}

/**
 * Hard thresholding (the proximal operator of an L0 penalty, up to the
 * tie-break): keeps `x` where `|x| > t`, sets it to exactly 0 elsewhere
 * (ties at the threshold are zeroed); a NaN entry stays NaN. `t` is a number or a tensor
 * broadcastable to `x`, >= 0 (else a RangeError; a tensor is not checked).
 * The caller disposes the result.
 */
export function hardThreshold(x: tf.Tensor, t: number | tf.Tensor): tf.Tensor {
  checkThreshold('hardThreshold', t);
  // Zero where |x| <= t rather than keep where |x| > t: a NaN fails both tests, and stays NaN (as the
  // other operators keep it) instead of becoming an exact 0, which every count takes for pruned.
  return tf.tidy(() => tf.where(tf.lessEqual(tf.abs(x), t), tf.zerosLike(x), x));
}

/**
 * The thresholds' check: a number must be finite and >= 0 (a negative `t`
 * is no proximal operator: soft thresholding would push entries away from 0,
 * and the group operator scale whole groups up), else a `RangeError`; what is
 * neither a number nor a tensor is a `TypeError`. A tensor threshold is not
 * read back to be checked: that would stall a GPU pipeline at every call.
 * @internal
 */
function checkThreshold(who: string, t: unknown): void {
  if (t instanceof tf.Tensor) return;
  if (typeof t !== 'number')
    throw new TypeError(`${who}: t must be a number >= 0 or a tensor, got ${describe(t)}`);
  if (!(t >= 0) || !Number.isFinite(t))
    throw new RangeError(`${who}: t must be a finite number >= 0, got ${describe(t)}`);
}

/**
 * Projection onto the L0 ball `{x : at most k nonzero entries}`: keeps the `k`
 * entries of `x` with the largest `|x|` and sets the rest to exactly 0. Of
 * entries with equal `|x|` the earlier (flat index) is kept, so the result is
 * deterministic; fewer than `k` nonzero entries are all kept. `k` is a
 * non-negative integer (else a `RangeError`); `x` must be a tensor (else a
 * `TypeError`); a NaN in `x` is an `Error`. Reads `x` to the host (magnitude vectors are small).
 * The caller disposes the result.
 */
export function keepLargest(x: tf.Tensor, k: number): tf.Tensor {
  // It reads x back, so an array would fail with "x.dataSync is not a function".
  if (!(x instanceof tf.Tensor))
    throw new TypeError(
      `keepLargest: x must be a tf.Tensor (tf.tensor(values) for an array), got ${describe(x)}`,
    );
  if (!Number.isInteger(k) || k < 0)
    throw new RangeError(`keepLargest: k must be an integer >= 0, got ${describe(k)}`);
  const values = x.dataSync();
  const nan = values.findIndex((v) => Number.isNaN(v));
  if (nan >= 0)
    throw new Error(
      `keepLargest: x has NaN at flat index ${nan}, so there is no largest |x| to keep; find where the NaN came from first`,
    );
  if (k >= values.length) return x.clone();
  const order = Array.from(values.keys()).sort((a, b) => Math.abs(values[b]) - Math.abs(values[a]) || a - b);
  // Of x's own array type: a Float32Array would round int32 values past 2^24 (16777217 to 16777216).
  const kept = new (values.constructor as new (n: number) => typeof values)(values.length);
  for (const i of order.slice(0, k)) kept[i] = values[i];
  return tf.tensor(kept, x.shape, x.dtype);
}

/** Smallest positive normal float32: a divisor guard that never changes a nonzero float32 norm. */
export const FLOAT32_MIN_NORMAL = 1.1754943508222875e-38;

/**
 * Groups beyond which {@link groupSumSquares}'s `'auto'` sums instead of
 * pooling on wasm. Upstream wasm's AvgPool (tfjs-backend-wasm 4.22) puts a
 * buffer of one float per channel on the module's 64 KB stack and, with a
 * window of 8 or more, runs off it past about 16,000 channels ("memory access
 * out of bounds", after which every wasm call in the process fails). A
 * 'kernel' Conv2D's direction has cin * cout groups (16,384 at 128 x 128;
 * 262,144 in VGG-16's 512 x 512 layers). @normprune/runtime's AvgPool, which
 * `registerWasmTrainingKernels()` installs, takes any channel count, but prox
 * does not require the runtime, so past half the limit it sums. The pool would
 * be faster there too (`npm run bench:group-norms` in packages/prox), by a few
 * milliseconds a call: little beside a training step of such a model.
 */
export const POOL_CHANNELS = 8192;

/**
 * `sum(x^2, axes, keepDims = true)`, the squared norm of every group.
 *
 * On wasm a reduction over leading axes transposes the whole tensor first,
 * which costs more than the reduction itself; when the groups
 * are the leading axes, an average pool over them (XNNPACK, vectorised along
 * the contiguous trailing axes) does the same sum without the transpose.
 * `method: 'auto'` picks the pool on wasm only, and only up to
 * {@link POOL_CHANNELS} groups; its float32 rounding differs from `tf.sum` by
 * about 1e-6 relative. `'pool'` pools whenever the groups are the leading
 * axes (tests and benchmarks ask for it). `constant`
 * supplies the scalar tensors it needs (a cache avoids uploading one per call).
 */
export function groupSumSquares(
  x: tf.Tensor,
  axes: number[],
  method: 'auto' | 'sum' | 'pool' = 'auto',
  constant: (value: number) => tf.Tensor | number = (v) => v,
): tf.Tensor {
  const rank = x.rank;
  const sorted = [...axes].sort((a, b) => a - b);
  const leading = sorted.length > 0 && sorted.length < rank && sorted.every((a, i) => a === i);
  const n = x.shape.slice(0, sorted.length).reduce((p, d) => p * d, 1);
  const m = x.size / n;
  const usePool =
    leading && (method === 'pool' || (method === 'auto' && m <= POOL_CHANNELS && tf.getBackend() === 'wasm'));
  return tf.tidy(() => {
    const sq = tf.square(x);
    if (!usePool) return tf.sum(sq, axes, true);
    const mean = tf.avgPool(tf.reshape(sq, [1, n, 1, m]) as tf.Tensor4D, [n, 1], 1, 'valid');
    return tf.reshape(
      tf.mul(mean, constant(n)),
      x.shape.map((d, a) => (a < sorted.length ? 1 : d)),
    );
  });
}
