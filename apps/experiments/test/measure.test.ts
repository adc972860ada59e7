// latencyMs: one median per model from alternating calls, whole batches, no tensor left behind.
// pairedCounts / pairedTest: sample-by-sample comparison of two models, exact McNemar and
// Clopper-Pearson figures checked against scipy.stats.binomtest.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { decompose } from '@normprune/layers';
import { initBackend } from '@normprune/runtime';
import type { Split } from '@normprune/datasets';
import {
  errorRate,
  LATENCY_BUDGET,
  latencyCallsNote,
  LATENCY_RUNS,
  latencyMs,
  median,
  pairedCounts,
} from '../src/measure';
import { changePp, changeSePp, compressedError, pairedTest } from '../src/paired';

beforeAll(async () => {
  await initBackend({ prefer: 'wasm', quiet: true });
});

function mlp(units: number): tfl.LayersModel {
  const m = tfl.sequential();
  m.add(tfl.layers.flatten({ inputShape: [6, 5, 1] }));
  m.add(tfl.layers.dense({ units, activation: 'relu' }));
  m.add(tfl.layers.dense({ units: 3 }));
  return m;
}

test.each([1, 7, 64])(
  'times each model alternately at batch %i, in one predict call per timing',
  async (n) => {
    const models = [mlp(4), mlp(40)];
    const calls: string[] = [];
    models.forEach((m, k) => {
      const predict = m.predict.bind(m);
      m.predict = (x, args) => {
        calls.push(`${k}:${(x as tf.Tensor).shape[0]}:${args?.batchSize}`);
        return predict(x, args);
      };
    });
    const before = tf.memory().numTensors;
    const t = await latencyMs(models, [6, 5, 1], n, 3);
    expect(tf.memory().numTensors).toBe(before);
    expect(t.ms).toHaveLength(2);
    expect(t.calls).toBe(3);
    for (const ms of t.ms) expect(ms).toBeGreaterThan(0);
    // 2 warm-up rounds and 3 timed rounds, each calling model 0 then model 1 on the whole batch.
    expect(calls).toEqual(Array.from({ length: 10 }, (_, i) => `${i % 2}:${n}:${n}`));
    models.forEach((m) => m.dispose());
  },
);

test.each([
  // runs, budget (ms), timed rounds: a spent budget stops at LATENCY_BUDGET.minRuns, or at runs if fewer
  [15, 0, LATENCY_BUDGET.minRuns],
  [2, 0, 2],
  [1, 0, 1],
  [15, Infinity, 15],
  [5, 60_000, 5],
])('latencyMs(runs %i, budget %d ms) times %i rounds', async (runs, budget, rounds) => {
  const models = [mlp(4), mlp(8)];
  let n = 0;
  for (const m of models) {
    const predict = m.predict.bind(m);
    m.predict = (x, args) => {
      n++;
      return predict(x, args);
    };
  }
  const before = tf.memory().numTensors;
  const t = await latencyMs(models, [6, 5, 1], 4, runs, budget);
  expect(t.calls).toBe(rounds);
  expect(n).toBe(2 * (2 + rounds));
  expect(tf.memory().numTensors).toBe(before);
  models.forEach((m) => m.dispose());
});

/**
 * Models whose every predict call takes `ms` on a fake clock (performance.now), and counts them:
 * the time budget's arithmetic without a real clock (nothing here reads wall time).
 */
function timedStubs(count: number, ms: number) {
  // Each read moves the clock on by `ms`: a timed call reads it before predict and after its data, and
  // nothing reads it in between.
  let clock = 0;
  const spy = jest.spyOn(performance, 'now').mockImplementation(() => (clock += ms));
  const calls: number[] = Array.from({ length: count }, () => 0);
  const models = calls.map(
    (_, k) =>
      ({
        predict: () => {
          calls[k]++;
          return { data: async () => new Float32Array(1), dispose: () => undefined };
        },
      }) as unknown as tfl.LayersModel,
  );
  return { models, calls, restore: () => spy.mockRestore() };
}

test('the time budget adds up every timed call of every model: 10 ms calls of two models stop at 100 ms, after 5 rounds', async () => {
  // Audit M213: with the budget compared to the last call alone (spent = t), the timing ran all 15 rounds.
  const { models, calls, restore } = timedStubs(2, 10);
  const before = tf.memory().numTensors;
  try {
    const t = await latencyMs(models, [6, 5, 1], 4, 15, 100);
    // Rounds of 20 ms: 100 ms spent after the fifth, which is where the budget stops them (not a sixth).
    expect(t).toEqual({ ms: [10, 10], calls: 5 });
    expect(calls).toEqual([2 + 5, 2 + 5]);
  } finally {
    restore();
  }
  expect(tf.memory().numTensors).toBe(before);
});

test('without a budget argument, latencyMs spends LATENCY_BUDGET.ms (60 s): 2 s calls stop after 30 rounds', async () => {
  // The pipeline and `eval` pass none: a full-width VGG-16 at batch 256 takes about 4 s a call.
  expect(LATENCY_BUDGET.ms).toBe(60_000);
  const { models, calls, restore } = timedStubs(1, 2000);
  const before = tf.memory().numTensors;
  try {
    const t = await latencyMs(models, [6, 5, 1], 256, LATENCY_RUNS.batch1);
    expect(t).toEqual({ ms: [2000], calls: 30 });
    expect(calls).toEqual([2 + 30]);
  } finally {
    restore();
  }
  expect(tf.memory().numTensors).toBe(before);
});

test('median: the middle value, or the mean of the two middle ones for an even count (audit 29: the upper one)', () => {
  expect(median([3, 1, 2])).toBe(2);
  expect(median([4, 1, 3, 2])).toBe(2.5);
  expect(median([5])).toBe(5);
  const values = [9, 7, 8, 6];
  expect(median(values)).toBe(7.5);
  expect(values).toEqual([9, 7, 8, 6]); // not sorted in place
});

test('latencyCallsNote speaks only when the budget cut a batch size short', () => {
  expect(latencyCallsNote(undefined)).toBeUndefined();
  expect(latencyCallsNote({ batch1: LATENCY_RUNS.batch1, batch256: LATENCY_RUNS.batch256 })).toBeUndefined();
  expect(latencyCallsNote({ batch1: LATENCY_RUNS.batch1, batch256: 3 })).toBe(
    'The latency timing of a batch size stops after 60 s of calls (at least 3 rounds), and this model met that: batch 1 is the median of 50 calls and batch 256 of 3 (normally 50 and 15), so a stall of the shared CPU moves it more easily',
  );
  // Batch 1 alone cut short (its 50 calls are the more numerous) speaks as well.
  expect(latencyCallsNote({ batch1: 20, batch256: LATENCY_RUNS.batch256 })).toMatch(
    /this model met that: batch 1 is the median of 20 calls and batch 256 of 15 \(normally 50 and 15\)/,
  );
});

// scipy.stats.binomtest(k, m): pvalue and proportion_ci(method='exact').
test.each([
  // b (only baseline wrong), c (only compressed wrong), n, p-value, CI of c / (b + c)
  [5, 15, 1000, 0.04138946533203125, 0.5089541282920425, 0.9134285308985655],
  [7, 0, 10000, 0.015625, 0.0, 0.4096163972250487],
  [30, 40, 10000, 0.281978921793656, 0.44748710681153603, 0.6891320818963984],
])('pairedTest(b=%i, c=%i, n=%i) matches scipy binomtest', (b, c, n, p, lo, hi) => {
  const t = pairedTest({ n, bothWrong: 3, onlyFirstWrong: b, onlySecondWrong: c });
  expect(t).toMatchObject({ n, bothWrong: 3, onlyBaselineWrong: b, onlyCompressedWrong: c });
  expect(t.pValue).toBeCloseTo(p, 9);
  const m = b + c;
  const change = (share: number) => (100 * m * (2 * share - 1)) / n;
  expect(t.changeCi95Pp[0]).toBeCloseTo(change(lo), 7);
  expect(t.changeCi95Pp[1]).toBeCloseTo(change(hi), 7);
  // The point estimate, (c - b) / n, lies inside its interval.
  const delta = (100 * (c - b)) / n;
  expect(t.changeCi95Pp[0]).toBeLessThanOrEqual(delta);
  expect(t.changeCi95Pp[1]).toBeGreaterThanOrEqual(delta);
});

test('pairedTest of models that never disagree: p = 1 and a zero-width interval at 0', () => {
  const t = pairedTest({ n: 500, bothWrong: 9, onlyFirstWrong: 0, onlySecondWrong: 0 });
  expect(t.pValue).toBe(1);
  expect(t.changeCi95Pp).toEqual([0, 0]);
});

test('pairedTest is symmetric: swapping the models mirrors the interval', () => {
  const a = pairedTest({ n: 2000, bothWrong: 0, onlyFirstWrong: 12, onlySecondWrong: 21 });
  const b = pairedTest({ n: 2000, bothWrong: 0, onlyFirstWrong: 21, onlySecondWrong: 12 });
  expect(a.pValue).toBeCloseTo(b.pValue, 12);
  expect(a.changeCi95Pp[0]).toBeCloseTo(-b.changeCi95Pp[1], 9);
  expect(a.changeCi95Pp[1]).toBeCloseTo(-b.changeCi95Pp[0], 9);
});

test.each([
  // b, c, n: the committed lenet-500-300-output row's counts, a tie, a large change on a small set
  [35, 58, 10000],
  [40, 40, 10000],
  [3, 60, 500],
])('changePp and changeSePp(b=%i, c=%i, n=%i): the change and its standard error', (b, c, n) => {
  const t = pairedTest({ n, bothWrong: 0, onlyFirstWrong: b, onlySecondWrong: c });
  expect(changePp(t)).toBeCloseTo((100 * (c - b)) / n, 12);
  // Per sample the difference d of the two error flags is -1, 0 or +1; Var(mean d) = (E[d^2] - E[d]^2) / n.
  const mean = (c - b) / n;
  const variance = (b + c) / n - mean * mean;
  expect(changeSePp(t)).toBeCloseTo(100 * Math.sqrt(variance / n), 12);
  // The normal interval is close to the exact one when the discordant samples are many.
  if (b + c >= 80) {
    expect(changePp(t) - 1.96 * changeSePp(t)).toBeCloseTo(t.changeCi95Pp[0], 1);
    expect(changePp(t) + 1.96 * changeSePp(t)).toBeCloseTo(t.changeCi95Pp[1], 1);
  }
});

function split(count: number, shape: [number, number, number], seed: number): Split {
  let s = seed;
  const rand = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  const images = new Uint8Array(count * shape[0] * shape[1] * shape[2]).map(() => Math.floor(256 * rand()));
  const labels = new Uint8Array(count).map(() => Math.floor(3 * rand()));
  return { images, labels, count, shape, numClasses: 3 };
}

test.each([
  [37, 8],
  [100, 32],
  [5, 500],
])(
  'pairedCounts over %i samples (batch %i) agrees with a per-sample argmax and with errorRate',
  async (count, batchSize) => {
    const data = split(count, [6, 5, 1], count);
    const [a, b] = [mlp(4), mlp(9)];
    const norm = { normalize: 'unit' as const, batchSize };
    const before = tf.memory().numTensors;
    const c = await pairedCounts(a, b, data, norm);
    expect(tf.memory().numTensors).toBe(before);
    // Reference: one plain predict over the whole split.
    const x = tf.tensor4d(
      Float32Array.from(data.images, (v) => v / 255),
      [count, 6, 5, 1],
    );
    const wrongOf = (m: tfl.LayersModel) =>
      Array.from((tf.argMax(m.predict(x) as tf.Tensor, -1) as tf.Tensor).dataSync()).map(
        (k, i) => k !== data.labels[i],
      );
    const [wa, wb] = tf.tidy(() => [wrongOf(a), wrongOf(b)]);
    x.dispose();
    expect(c).toEqual({
      n: count,
      bothWrong: wa.filter((w, i) => w && wb[i]).length,
      onlyFirstWrong: wa.filter((w, i) => w && !wb[i]).length,
      onlySecondWrong: wb.filter((w, i) => w && !wa[i]).length,
    });
    // Exactly: the pipeline and `eval --compare` take the compressed model's test error from the counts.
    expect((c.bothWrong + c.onlyFirstWrong) / count).toBe(await errorRate(a, data, norm));
    expect((c.bothWrong + c.onlySecondWrong) / count).toBe(await errorRate(b, data, norm));
    expect(compressedError(pairedTest(c))).toBe(await errorRate(b, data, norm));
    [a, b].forEach((m) => m.dispose());
  },
);

test('errorRate and pairedCounts predict each batch in one call, whose logits are those of chunks of 32 bit for bit', async () => {
  const data = split(150, [6, 5, 1], 3);
  const plain = mlp(40);
  const models = [plain, decompose(plain, { granularity: { dense: 'input' } })];
  const calls: string[] = [];
  models.forEach((m, k) => {
    const predict = m.predict.bind(m);
    m.predict = (x, args) => {
      calls.push(`${k}:${(x as tf.Tensor).shape[0]}:${args?.batchSize}`);
      return predict(x, args);
    };
  });
  const norm = { normalize: 'unit' as const, batchSize: 64 };
  const before = tf.memory().numTensors;
  await errorRate(models[1], data, norm);
  await pairedCounts(models[0], models[1], data, norm);
  expect(tf.memory().numTensors).toBe(before);
  expect(calls).toEqual([
    '1:64:64',
    '1:64:64',
    '1:22:22',
    ...['64', '64', '22'].flatMap((n) => [`0:${n}:${n}`, `1:${n}:${n}`]),
  ]);
  // The same logits as predict's default chunks of 32 (the wasm backend: XNNPACK's matMul).
  const x = tf.tensor4d(
    Float32Array.from(data.images, (v) => v / 255),
    [150, 6, 5, 1],
  );
  for (const m of models) {
    const [whole, chunked] = tf.tidy(() => [
      (m.predict(x, { batchSize: 150 }) as tf.Tensor).dataSync(),
      (m.predict(x) as tf.Tensor).dataSync(),
    ]);
    expect(Buffer.from(whole.buffer)).toEqual(Buffer.from(chunked.buffer));
  }
  x.dispose();
  models.forEach((m) => m.dispose());
});
