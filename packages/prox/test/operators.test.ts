import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import {
  groupSoftThreshold,
  hardThreshold,
  keepLargest,
  nonnegSoftThreshold,
  softThreshold,
} from '../src/index.js';
import { groupSumSquares } from '../src/operators.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// Inputs include ties at the threshold (+-1), values just inside and outside it, negatives and 0.
const x = [-3, -1, -0.999, -0.5, 0, 0.5, 0.999, 1, 1.001, 2.5];
const t = 1;

function run(f: (x: tf.Tensor) => tf.Tensor, values: number[] = x): number[] {
  const input = tf.tensor1d(values);
  const out = f(input);
  const r = Array.from(out.dataSync());
  tf.dispose([input, out]);
  return r;
}

function close(actual: number[], expected: number[], tol = 1e-6): void {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((a, i) => expect(Math.abs(a - expected[i])).toBeLessThanOrEqual(tol));
}

describe('proximal operators against their closed forms', () => {
  it('softThreshold: sign(x) max(|x| - t, 0), ties give exactly 0', () => {
    const r = run((v) => softThreshold(v, t));
    close(
      r,
      x.map((v) => Math.sign(v) * Math.max(Math.abs(v) - t, 0)),
    );
    // exact zeros, not tiny numbers, at and inside the threshold
    [1, 2, 3, 4, 5, 6, 7].forEach((i) => expect(Math.abs(r[i])).toBe(0));
    expect(r[0]).toBeCloseTo(-2, 6);
    expect(r[9]).toBeCloseTo(1.5, 6);
  });

  it('nonnegSoftThreshold: max(x - t, 0), negative inputs go to 0', () => {
    const r = run((v) => nonnegSoftThreshold(v, t));
    close(
      r,
      x.map((v) => Math.max(v - t, 0)),
    );
    expect(r.slice(0, 8).every((v) => v === 0)).toBe(true);
    expect(r[8]).toBeCloseTo(0.001, 6);
    expect(r[9]).toBeCloseTo(1.5, 6);
  });

  it('hardThreshold: keeps |x| > t exactly, zeroes ties', () => {
    const r = run((v) => hardThreshold(v, t));
    const f32 = Array.from(new Float32Array(x));
    expect(r).toEqual(f32.map((v) => (Math.abs(v) > t ? v : 0)).map((v) => (v === 0 ? 0 : v)));
    expect(r[7]).toBe(0);
    expect(r[1]).toBe(0);
    expect(r[0]).toBe(-3);
  });

  it.each([
    [[6], 1],
    [[2, 3], 0],
    [[3, 2, 1], 1],
  ])('keep a NaN input NaN, not an exact 0 that reads as pruned (shape %j, t = %d)', async (shape, thr) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const values = Array.from({ length: size }, (_, i) => (i % 3 === 1 ? NaN : (i - 2) * 0.75));
    const ops: [string, (v: tf.Tensor) => tf.Tensor][] = [
      ['softThreshold', (v) => softThreshold(v, thr)],
      ['nonnegSoftThreshold', (v) => nonnegSoftThreshold(v, thr)],
      ['hardThreshold', (v) => hardThreshold(v, thr)],
      ['hardThreshold (tensor t)', (v) => tf.tidy(() => hardThreshold(v, tf.scalar(thr)))],
    ];
    const f32 = Array.from(new Float32Array(values));
    await expectNoLeak(() => {
      for (const [name, f] of ops) {
        const input = tf.tensor(values, shape);
        const out = f(input);
        expect([name, out.shape]).toEqual([name, shape]);
        const r = Array.from(out.dataSync());
        tf.dispose([input, out]);
        r.forEach((v, i) => expect([name, i, Number.isNaN(v)]).toEqual([name, i, Number.isNaN(values[i])]));
        if (name.startsWith('hardThreshold'))
          expect(r.filter((v) => !Number.isNaN(v))).toEqual(
            f32.filter((v) => !Number.isNaN(v)).map((v) => (Math.abs(v) > thr ? v : 0)),
          );
      }
    });
  });

  it('accept a tensor threshold broadcast per entry', () => {
    const thr = tf.tensor1d([0, 0.5, 2]);
    const r = run((v) => softThreshold(v, thr), [-1, -1, -1]);
    close(r, [-1, -0.5, 0]);
    const r2 = run((v) => nonnegSoftThreshold(v, thr), [1, 1, 1]);
    close(r2, [1, 0.5, 0]);
    thr.dispose();
  });

  it('groupSoftThreshold at t = 0 returns its input, a zero group as 0 (not 0/0)', () => {
    const w = tf.tensor2d([
      [0, 1],
      [0, 2],
    ]);
    const out = groupSoftThreshold(w, 0, [0]);
    expect(Array.from(out.dataSync())).toEqual([0, 1, 0, 2]);
    tf.dispose([w, out]);
  });

  it('groupSoftThreshold: x_g max(1 - t/||x_g||, 0) per column, ties and zero groups give 0', () => {
    // columns: norm 5 (shrinks), norm exactly 2 (= t, tie -> 0), norm 1 (< t -> 0), zero column (stays 0)
    const w = tf.tensor2d(
      [
        [3, 2, 0.6, 0],
        [4, 0, -0.8, 0],
      ],
      [2, 4],
    );
    const out = groupSoftThreshold(w, 2, [0]);
    const r = Array.from(out.dataSync());
    close(r, [3 * 0.6, 0, 0, 0, 4 * 0.6, 0, 0, 0]);
    expect(r.filter((v) => v === 0)).toHaveLength(6);
    expect(r.every((v) => Number.isFinite(v))).toBe(true);
    // rows as groups (axes [1]), negative entries: row norms sqrt(9+4+0.36) and sqrt(16+0.64)
    const out2 = groupSoftThreshold(w, 2, [1]);
    const n0 = Math.hypot(3, 2, 0.6);
    const n1 = Math.hypot(4, -0.8);
    close(
      Array.from(out2.dataSync()),
      [3, 2, 0.6, 0].map((v) => v * (1 - 2 / n0)).concat([4, 0, -0.8, 0].map((v) => v * (1 - 2 / n1))),
      1e-5,
    );
    tf.dispose([w, out, out2]);
  });

  it('refuse a negative, NaN or infinite number threshold and what is neither a number nor a tensor', () => {
    // softThreshold(x, -1) pushed [-2, 2] out to [-3, 3]; groupSoftThreshold scaled groups up.
    const v = tf.tensor2d([
      [1, -2],
      [3, -4],
    ]);
    const before = tf.memory().numTensors;
    const ops: [string, (t: never) => unknown][] = [
      ['softThreshold', (t) => softThreshold(v, t)],
      ['nonnegSoftThreshold', (t) => nonnegSoftThreshold(v, t)],
      ['hardThreshold', (t) => hardThreshold(v, t)],
      ['groupSoftThreshold', (t) => groupSoftThreshold(v, t, [0])],
    ];
    for (const [name, op] of ops) {
      for (const [t, shown] of [
        [-1, '-1'],
        [NaN, 'NaN'],
        [Infinity, 'Infinity'],
      ] as const) {
        expect(() => op(t as never)).toThrow(RangeError);
        expect(() => op(t as never)).toThrow(`${name}: t must be a finite number >= 0, got ${shown}`);
      }
      expect(() => op('0.1' as never)).toThrow(TypeError);
      expect(() => op('0.1' as never)).toThrow(
        `${name}: t must be a number >= 0 or a tensor, got "0.1" (a string)`,
      );
      tf.dispose(op(0 as never) as tf.Tensor);
    }
    expect(tf.memory().numTensors).toBe(before);
    v.dispose();
  });

  it('groupSoftThreshold takes an int32 x, in float32 as softThreshold does', async () => {
    const w = tf.tensor2d([[3], [4]], [2, 1], 'int32');
    await expectNoLeak(() => {
      const out = groupSoftThreshold(w, 2, [0]);
      const soft = softThreshold(w, 2);
      expect(out.dtype).toBe('float32');
      expect(soft.dtype).toBe('float32');
      close(Array.from(out.dataSync()), [3 * 0.6, 4 * 0.6]);
      tf.dispose([out, soft]);
    });
    w.dispose();
  });

  it('leave no tensors behind', async () => {
    const v = tf.tensor2d([
      [1, -2],
      [3, -4],
    ]);
    await expectNoLeak(() => {
      tf.dispose([
        softThreshold(v, 1),
        nonnegSoftThreshold(v, 1),
        hardThreshold(v, 1),
        groupSoftThreshold(v, 1, [0]),
      ]);
    });
    v.dispose();
  });
});

/** sum(x^2) over `axes` with the reduced axes kept, in float64 on the host (row-major, as tfjs). */
function hostSumSquares(x: number[], shape: number[], axes: number[]): number[] {
  const strides = shape.map((_, d) => shape.slice(d + 1).reduce((p, q) => p * q, 1));
  const outShape = shape.map((n, d) => (axes.includes(d) ? 1 : n));
  const outStrides = outShape.map((_, d) => outShape.slice(d + 1).reduce((p, q) => p * q, 1));
  const out = new Array<number>(outShape.reduce((p, q) => p * q, 1)).fill(0);
  x.forEach((v, flat) => {
    let o = 0;
    shape.forEach((n, d) => {
      if (!axes.includes(d)) o += (Math.floor(flat / strides[d]) % n) * outStrides[d];
    });
    out[o] += v * v;
  });
  return out;
}

describe('groupSumSquares', () => {
  it.each([
    [[6, 5], [0]],
    [[6, 5], [1]],
    [
      [3, 3, 4, 2],
      [0, 1],
    ],
    [
      [3, 3, 4, 2],
      [0, 1, 2],
    ],
  ])('shape %j over axes %j: the average-pool form equals tf.sum', (shape, axes) => {
    const x = tf.randomNormal(shape as number[], 0, 1, 'float32', 9);
    const a = groupSumSquares(x, axes as number[], 'pool');
    const b = groupSumSquares(x, axes as number[], 'sum');
    const ref = tf.sum(tf.square(x), axes as number[], true);
    expect(a.shape).toEqual(ref.shape);
    expect(b.shape).toEqual(ref.shape);
    const r = ref.dataSync();
    a.dataSync().forEach((v, i) => expect(Math.abs(v - r[i]) / r[i]).toBeLessThan(1e-5));
    // 'sum' against the tfjs reference: measured difference 0 (the same tf.sum of tf.square today).
    b.dataSync().forEach((v, i) => expect(Math.abs(v - r[i]) / r[i]).toBeLessThan(1e-6));
    // Both forms against a float64 sum on the host: measured at most 5.6e-8 ('sum') and 1.1e-7 ('pool') relative.
    const host = hostSumSquares(Array.from(x.dataSync()), shape as number[], axes as number[]);
    for (const out of [a, b])
      out.dataSync().forEach((v, i) => expect(Math.abs(v - host[i]) / host[i]).toBeLessThan(1e-6));
    tf.dispose([x, a, b, ref]);
  });
});

describe('keepLargest (projection onto the L0 ball)', () => {
  it('keeps the k largest |x| exactly, zeroes the rest, breaks ties by index', () => {
    // |x| ranks: 3 (i0), 2.5 (i9), 1.001 (i8), then the tie 1 (i1) / 1 (i7): i1 is earlier.
    expect(run((v) => keepLargest(v, 3))).toEqual([-3, 0, 0, 0, 0, 0, 0, 0, 1.001, 2.5].map(Math.fround));
    expect(run((v) => keepLargest(v, 4))).toEqual([-3, -1, 0, 0, 0, 0, 0, 0, 1.001, 2.5].map(Math.fround));
    expect(run((v) => keepLargest(v, 0))).toEqual(new Array(x.length).fill(0));
    expect(run((v) => keepLargest(v, x.length))).toEqual(x.map(Math.fround));
    expect(run((v) => keepLargest(v, 99))).toEqual(x.map(Math.fround));
    // Fewer nonzero entries than k: all kept, zeros stay zero.
    expect(run((v) => keepLargest(v, 3), [0, 2, 0, 0])).toEqual([0, 2, 0, 0]);
  });

  it('works on any shape and keeps it; each result has exactly min(k, nonzeros) nonzero entries', () => {
    for (const shape of [[7], [3, 4], [2, 3, 5], [3, 3, 2, 4]]) {
      const input = tf.randomNormal(shape, 0, 1, 'float32', 5);
      const values = Array.from(input.dataSync());
      for (const k of [1, 5, values.length - 1]) {
        const out = keepLargest(input, k);
        expect(out.shape).toEqual(shape);
        const got = Array.from(out.dataSync());
        expect(got.filter((v) => v !== 0).length).toBe(k);
        // Kept entries are unchanged, and none dropped is larger than one kept.
        const kept = got.map((v, i) => (v !== 0 ? i : -1)).filter((i) => i >= 0);
        for (const i of kept) expect(got[i]).toBe(values[i]);
        const smallestKept = Math.min(...kept.map((i) => Math.abs(values[i])));
        for (let i = 0; i < values.length; i++)
          if (got[i] === 0) expect(Math.abs(values[i])).toBeLessThanOrEqual(smallestKept);
        out.dispose();
      }
      input.dispose();
    }
  });

  it('keeps int32 values exactly (no float32 rounding past 2^24)', () => {
    const input = tf.tensor1d([16777217, 3, -2147483647, 5], 'int32');
    const out = keepLargest(input, 2);
    expect(out.dtype).toBe('int32');
    expect(Array.from(out.dataSync())).toEqual([16777217, 0, -2147483647, 0]);
    tf.dispose([input, out]);
  });

  it('rejects a k that is not a non-negative integer and an x with NaN, and leaks nothing', async () => {
    const input = tf.tensor1d(x);
    const withNaN = tf.tensor1d([1, NaN, 3, 0.5, 2]);
    // expectNoLeak is async (it awaits fn): without the await its rejection would go unnoticed.
    await expectNoLeak(() => {
      expect(() => keepLargest(input, -1)).toThrow(/k must be an integer >= 0, got -1/);
      expect(() => keepLargest(input, 1.5)).toThrow(/got 1.5/);
      expect(() => keepLargest(input, '2' as never)).toThrow(/got "2" \(a string\)/);
      expect(() => keepLargest(input, -1)).toThrow(RangeError);
      // NaN has no order: it must not silently displace the largest entries.
      expect(() => keepLargest(withNaN, 2)).toThrow(/NaN at flat index 1/);
      // Not a tensor: before, "x.dataSync is not a function".
      expect(() => keepLargest([3, 1, 2] as never, 1)).toThrow(TypeError);
      expect(() => keepLargest([3, 1, 2] as never, 1)).toThrow(
        'keepLargest: x must be a tf.Tensor (tf.tensor(values) for an array), got an array of length 3',
      );
    });
    await expectNoLeak(() => keepLargest(input, 3).dispose());
    await expectNoLeak(() => keepLargest(input, 10).dispose()); // k >= size: the clone path
    tf.dispose([input, withNaN]);
  });
});
