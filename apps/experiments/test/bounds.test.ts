// Documented bounds, at and just past them: config ranges (the schema file's drift check alone
// caught these), the latency median (numeric, not by string), an interval with one bound at 0.
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { parseBudget, parseConfig } from '../src/index';
import { latencyMs } from '../src/measure';
import { ciText } from '../src/format';
import { clone, experimentCopy } from './helpers';

const base = () => experimentCopy('lenet-5');

test('parseConfig refuses values just past a bound and accepts the bound', () => {
  const cases: [string, (c: any, past: boolean) => void, RegExp][] = [
    ['momentum', (c, p) => (c.training.baseline.momentum = p ? 1.01 : 1), /momentum/],
    ['seed', (c, p) => (c.dataset.seed = p ? 2 ** 32 : 2 ** 32 - 1), /dataset\.seed/],
    ['augment.padding', (c, p) => (c.dataset.augment = { padding: p ? 17 : 16, flip: false }), /augment/],
    [
      'target',
      (c, p) =>
        (c.target = p
          ? { minCompressionPct: 90, maxErrorDeltaPp: 0.1, minCompresionPct: 1 }
          : { minCompressionPct: 90, maxErrorDeltaPp: 0.1 }),
      /target/,
    ],
  ];
  for (const [name, set, where] of cases) {
    const ok = clone(base());
    set(ok, false);
    expect([
      name,
      (() => {
        try {
          parseConfig(ok);
          return 'ok';
        } catch (e) {
          return String(e);
        }
      })(),
    ]).toEqual([name, 'ok']);
    const bad = clone(base());
    set(bad, true);
    expect(() => parseConfig(bad)).toThrow(where);
  }
});

test('a budget widthMultiplier above 4 is refused, 4 accepted', () => {
  const cfg = parseConfig(base());
  expect(() => parseBudget('widthMultiplier=4', cfg)).not.toThrow();
  expect(() => parseBudget('widthMultiplier=4.5', cfg)).toThrow(/widthMultiplier/);
});

test('latencyMs takes the numeric median of the timed calls (9, 10 and 100 ms give 10)', async () => {
  // One model; two warm-up calls, then three timed ones. Each call reads performance.now twice.
  const durations = [1, 1, 9, 10, 100];
  const clock: number[] = [];
  let t = 0;
  for (const d of durations) clock.push(t, (t += d));
  const spy = jest.spyOn(performance, 'now').mockImplementation(() => clock.shift() ?? t);
  const model = { predict: () => tf.zeros([1]) } as unknown as tfl.LayersModel;
  try {
    const r = await latencyMs([model], [1, 1, 1], 1, 3, 1e9);
    expect(r).toEqual({ ms: [10], calls: 3 });
  } finally {
    spy.mockRestore();
  }
});

test('an interval with one bound exactly 0 is printed as an interval', () => {
  expect(ciText([0, 0.5])).toBe('[+0.00, +0.50 pp]');
  expect(ciText([-0.25, 0])).toBe('[-0.25, +0.00 pp]');
  expect(ciText([0, 0])).toBe('n/a (the models never disagree)');
});
