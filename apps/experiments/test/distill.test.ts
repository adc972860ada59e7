// The distillation loss against a plain JavaScript reference, and its gradient
// against finite differences.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { trainingLoss } from '../src/pipeline';
import { expectNoLeak } from '../../../tools/testing/leaks.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function softmax(v: number[], t = 1): number[] {
  const m = Math.max(...v.map((x) => x / t));
  const e = v.map((x) => Math.exp(x / t - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

function reference(
  student: number[][],
  labels: number[][],
  teacher: number[][],
  w: number,
  t: number,
): number {
  let ce = 0;
  let kl = 0;
  student.forEach((s, i) => {
    const q = softmax(s);
    ce -= labels[i].reduce((a, y, k) => a + y * Math.log(q[k]), 0);
    const p = softmax(teacher[i], t);
    const qt = softmax(s, t);
    kl += p.reduce((a, pk, k) => a + pk * Math.log(pk / qt[k]), 0);
  });
  const n = student.length;
  return (1 - w) * (ce / n) + w * t * t * (kl / n);
}

function random(rows: number, cols: number, seed: number): number[][] {
  let s = seed;
  const r = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296) * 6 - 3;
  return Array.from({ length: rows }, () => Array.from({ length: cols }, r));
}

describe.each([
  [4, 10, 0.7, 4],
  [1, 3, 0.5, 1],
  [7, 5, 1, 2.5],
  [3, 10, 0, 4],
])('%i samples x %i classes, weight %p, temperature %p', (n, c, w, t) => {
  const student = random(n, c, 1);
  const teacher = random(n, c, 2);
  const labels = Array.from({ length: n }, (_, i) =>
    Array.from({ length: c }, (_, k) => (k === i % c ? 1 : 0)),
  );

  test('matches the reference to 1e-5', () => {
    const targets = tf.softmax(tf.div(tf.tensor2d(teacher), t));
    const got = tf.tidy(
      () =>
        trainingLoss(tf.tensor2d(student), tf.tensor2d(labels), {
          targets,
          spec: { weight: w, temperature: t },
        }).dataSync()[0],
    );
    targets.dispose();
    expect(Math.abs(got - reference(student, labels, teacher, w, t))).toBeLessThan(1e-5);
  });

  test('its gradient matches finite differences and leaks nothing', async () => {
    const targets = tf.softmax(tf.div(tf.tensor2d(teacher), t));
    const spec = { weight: w, temperature: t };
    const labelsT = tf.tensor2d(labels);
    const grad = tf.grad((s: tf.Tensor) => trainingLoss(s, labelsT, { targets, spec }));
    const g = tf.tidy(() => grad(tf.tensor2d(student)).arraySync() as number[][]);
    const h = 1e-3;
    for (let i = 0; i < n; i++)
      for (let k = 0; k < c; k++) {
        const plus = student.map((r) => [...r]);
        const minus = student.map((r) => [...r]);
        plus[i][k] += h;
        minus[i][k] -= h;
        const fd =
          (reference(plus, labels, teacher, w, t) - reference(minus, labels, teacher, w, t)) / (2 * h);
        expect(Math.abs(g[i][k] - fd)).toBeLessThan(1e-4);
      }
    await expectNoLeak(() =>
      tf.tidy(() => {
        trainingLoss(tf.tensor2d(student), labelsT, { targets, spec });
      }),
    );
    tf.dispose([targets, labelsT]);
  });
});

test('without soft targets it is the plain cross-entropy', () => {
  const s = random(5, 10, 3);
  const y = Array.from({ length: 5 }, (_, i) => Array.from({ length: 10 }, (_, k) => (k === i ? 1 : 0)));
  const got = tf.tidy(() => trainingLoss(tf.tensor2d(s), tf.tensor2d(y)).dataSync()[0]);
  expect(Math.abs(got - reference(s, y, s, 0, 1))).toBeLessThan(1e-5);
});
