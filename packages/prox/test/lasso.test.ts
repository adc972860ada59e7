// A least-squares problem whose lasso solution is known in closed form: with an
// orthonormal design A (A^T A = I), argmin 1/2 ||A x - y||^2 + lambda ||x||_1 is
// softThreshold(A^T y, lambda), and with x >= 0 it is max(A^T y - lambda, 0).
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-layers'; // registers the gradients of tfjs-core ops
import type { MagnitudeInfo } from '@normprune/layers';
import { ProximalAdam, ProximalSGD, softThreshold } from '../src/index.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';

const n = 20;
const lambda = 0.5;
// A^T y, chosen away from the threshold so the support is unambiguous.
const z = [3, -2, 0.3, -0.2, 1.5, 0.05, -0.6, 0];
const p = z.length;
const lasso = z.map((v) => Math.sign(v) * Math.max(Math.abs(v) - lambda, 0));
const nonnegLasso = z.map((v) => Math.max(v - lambda, 0));

let A: tf.Tensor2D;
let y: tf.Tensor2D;

beforeAll(async () => {
  await tf.setBackend('cpu');
  [A, y] = tf.tidy(() => {
    const [q] = tf.linalg.qr(tf.randomNormal([n, p], 0, 1, 'float32', 7));
    // y = A z + r with r orthogonal to A's columns, so A^T y = z exactly (in exact arithmetic).
    const noise = tf.randomNormal([n, 1], 0, 1, 'float32', 11);
    const r = tf.sub(noise, tf.matMul(q, tf.matMul(q, noise, true, false)));
    return [q as tf.Tensor2D, tf.add(tf.matMul(q, tf.tensor2d(z, [p, 1])), r) as tf.Tensor2D];
  });
});

afterAll(() => tf.dispose([A, y]));

const loss = (x: tf.Tensor) => tf.mul(0.5, tf.sum(tf.square(tf.sub(tf.matMul(A, x), y)))) as tf.Scalar;

function values(x: tf.Tensor): number[] {
  return Array.from(x.dataSync());
}

function expectClose(actual: number[], expected: number[], tol: number): void {
  actual.forEach((a, i) => expect(Math.abs(a - expected[i])).toBeLessThanOrEqual(tol));
}

/** A magnitude-shaped record around a plain variable (direction unused by the loss). */
function asMagnitude(g: tf.Variable, direction: tf.Variable): MagnitudeInfo {
  return {
    layer: undefined as never,
    layerName: 'lasso',
    granularity: 'output',
    magnitude: g,
    direction,
    normAxes: [0],
    epsilon: 0,
    groups: g.size,
    paramsPerGroup: 1,
    macsPerGroup: 1,
  };
}

describe('lasso with an orthonormal design', () => {
  it('the design is orthonormal and A^T y = z', () => {
    const ata = tf.matMul(A, A, true, false);
    expectClose(values(ata), values(tf.eye(p)), 1e-5);
    const aty = tf.matMul(A, y, true, false);
    expectClose(values(aty), z, 1e-5);
    tf.dispose([ata, aty]);
  });

  it('proximal gradient (ISTA with softThreshold) reaches the exact support and values; the subgradient leaves no exact zeros', async () => {
    const lr = 0.5;
    let x = tf.ones([p, 1]);
    await expectNoLeak(() => {
      for (let i = 0; i < 100; i++) {
        const next = tf.tidy(() => {
          const grad = tf.matMul(A, tf.sub(tf.matMul(A, x), y), true, false);
          return softThreshold(tf.sub(x, tf.mul(lr, grad)), lr * lambda);
        });
        x.dispose();
        x = next;
      }
    });
    const prox = values(x);
    // Measured 1.2e-7 (one float32 ulp of an entry in [1, 2)).
    expectClose(prox, lasso, 1.5e-6);
    prox.forEach((v, i) => {
      if (lasso[i] === 0) expect(Math.abs(v)).toBe(0);
      else expect(v).not.toBe(0);
    });
    x.dispose();

    // The same objective by subgradient descent, decaying steps: close to the
    // solution but the zero coordinates only oscillate around 0.
    let s = tf.ones([p, 1]);
    for (let i = 0; i < 2000; i++) {
      const step = 0.5 / Math.sqrt(i + 1);
      const next = tf.tidy(() => {
        const grad = tf.add(
          tf.matMul(A, tf.sub(tf.matMul(A, s), y), true, false),
          tf.mul(lambda, tf.sign(s)),
        );
        return tf.sub(s, tf.mul(step, grad));
      });
      s.dispose();
      s = next;
    }
    const sub = values(s);
    s.dispose();
    expect(sub.filter((v) => v === 0)).toHaveLength(0);
    expectClose(sub, lasso, 0.05);
  });

  it('ProximalSGD on a magnitude variable reaches max(A^T y - lambda, 0) exactly', async () => {
    const g = tf.variable(tf.ones([p, 1]), true, 'lasso_sgd/magnitude');
    const d = tf.variable(tf.ones([1, p, 1]), true, 'lasso_sgd/direction');
    const info = asMagnitude(g, d);
    info.normAxes = [0];
    const opt = new ProximalSGD({ learningRate: 0.5, lambda, magnitudes: [info] });
    // the first step creates the optimiser's state; after it the loop must stay flat
    opt.minimize(() => loss(g), false, [g]);
    await expectNoLeak(() => {
      for (let i = 1; i < 100; i++) opt.minimize(() => loss(g), false, [g]);
    });
    const r = values(g);
    // Measured 0; the fixed point A^T y - lambda itself carries float32 rounding (A^T y is z only to
    // 2.4e-7 here), so a few ulps of 2.5.
    expectClose(r, nonnegLasso, 1e-6);
    r.forEach((v, i) => (nonnegLasso[i] === 0 ? expect(v).toBe(0) : expect(v).toBeGreaterThan(0)));
    opt.dispose();
    tf.dispose([g, d]);
  });

  it('ProximalAdam on the same problem reaches the same support with exact zeros', async () => {
    const g = tf.variable(tf.ones([p, 1]), true, 'lasso_adam/magnitude');
    const d = tf.variable(tf.ones([1, p, 1]), true, 'lasso_adam/direction');
    const opt = new ProximalAdam({ learningRate: 0.02, lambda, magnitudes: [asMagnitude(g, d)] });
    opt.minimize(() => loss(g), false, [g]);
    await expectNoLeak(() => {
      for (let i = 1; i < 1500; i++) opt.minimize(() => loss(g), false, [g]);
    });
    const r = values(g);
    // Measured 2.1e-6, on the largest entry (2.5, 9 float32 ulps) and unchanged from 1500 to 6000
    // steps: where ProximalAdam settles in float32, not a convergence still under way.
    expectClose(r, nonnegLasso, 2e-5);
    r.forEach((v, i) => (nonnegLasso[i] === 0 ? expect(v).toBe(0) : expect(v).toBeGreaterThan(0)));
    opt.dispose();
    tf.dispose([g, d]);
  });
});
