import { constantLambda, lambdaSchedule, stepLambda, targetLambda, warmupLambda } from '../src/index.js';

describe('lambda schedules', () => {
  it('constant', () => {
    const s = constantLambda(0.3);
    expect([s(0, 0, {}), s(100, 7, { compression: 0.5 })]).toEqual([0.3, 0.3]);
    expect(s.config).toEqual({ kind: 'constant', value: 0.3 });
  });

  it('linear warm-up in steps or epochs', () => {
    const s = warmupLambda({ value: 1, warmup: 4, start: 0.2 });
    expect([0, 1, 2, 4, 9].map((t) => s(t, 0, {}))).toEqual(
      [0.2, 0.4, 0.6000000000000001, 1, 1].map((v) => expect.closeTo(v, 12)),
    );
    const e = warmupLambda({ value: 2, warmup: 2, unit: 'epoch' });
    expect([e(50, 0, {}), e(50, 1, {}), e(0, 2, {})]).toEqual([0, 1, 2]);
  });

  it('step decay counted in epochs (default) or steps', () => {
    const s = stepLambda({ initial: 1, factor: 0.5, every: 3 });
    expect([0, 2, 3, 6, 7].map((e) => s(999, e, {}))).toEqual([1, 1, 0.5, 0.25, 0.25]);
    const t = stepLambda({ initial: 1, factor: 2, every: 10, unit: 'step' });
    expect([t(9, 5, {}), t(10, 0, {}), t(25, 0, {})]).toEqual([1, 2, 4]);
  });

  it('target: raises once per new epoch while below the target, holds at or above it, respects max', () => {
    const s = targetLambda({ initial: 1, targetCompression: 0.5, factor: 2, max: 5 });
    expect(s(0, 0, {})).toBe(1);
    expect(s(5, 1, { compression: 0.1 })).toBe(2);
    expect(s(6, 1, { compression: 0.1 })).toBe(2); // same epoch: no change
    expect(s(9, 2, { compression: 0.2 })).toBe(4);
    expect(s(12, 3, { compression: 0.3 })).toBe(5); // capped
    expect(s(15, 4, { compression: 0.6 })).toBe(5);
    const h = targetLambda({ initial: 1, targetCompression: 0.5, factor: 2 });
    expect(h(0, 1, { compression: 0.7 })).toBe(1); // reached: hold
    expect(h(0, 2, {})).toBe(1); // nothing reported: hold
  });

  it('lambdaSchedule(config) rebuilds each schedule, including the target state, through JSON', () => {
    const t = targetLambda({ initial: 1, targetCompression: 0.5, factor: 3 });
    t(0, 1, { compression: 0 });
    const schedules = [
      constantLambda(2),
      warmupLambda({ value: 1, warmup: 10 }),
      stepLambda({ initial: 1, factor: 0.1, every: 2 }),
      t,
    ];
    for (const s of schedules) {
      const copy = lambdaSchedule(JSON.parse(JSON.stringify(s.config)));
      expect(copy.config).toEqual(s.config);
      for (const [step, epoch] of [
        [0, 0],
        [3, 1],
        [20, 5],
      ])
        expect(copy(step, epoch, {})).toBe(s(step, epoch, {}));
    }
    expect(lambdaSchedule(JSON.parse(JSON.stringify(t.config)))(0, 1, {})).toBe(3);
  });

  it('rejects invalid parameters', () => {
    expect(() => constantLambda(-1)).toThrow(/lambda schedule: value must be a finite number >= 0, got -1/);
    expect(() => stepLambda({ initial: 1, factor: 0.5, every: 0 })).toThrow(
      /lambda schedule: every must be > 0, got 0/,
    );
    expect(() => targetLambda({ initial: 1, targetCompression: 1.5 })).toThrow(/targetCompression/);
    expect(() => targetLambda({ initial: 1, targetCompression: 0.5, factor: 0.5 })).toThrow(/factor/);
    expect(() => lambdaSchedule({ kind: 'nope' } as never)).toThrow(/nope/);
    // A misspelt unit would silently count the other unit.
    expect(() => warmupLambda({ value: 1, warmup: 10, unit: 'steps' as never })).toThrow(
      /unit must be 'step' or 'epoch', got "steps" \(a string\)/,
    );
    expect(() => stepLambda({ initial: 1, factor: 0.5, every: 2, unit: 'epochs' as never })).toThrow(/unit/);
    expect(() => targetLambda({ initial: 1, targetCompression: 0.5, max: -1 })).toThrow(
      /max must be a number >= initial \(1\), got -1/,
    );
    expect(() => targetLambda({ initial: 1, targetCompression: 0.5, max: 0.5 })).toThrow(/max/);
    expect(() => targetLambda({ initial: 1, targetCompression: 0.5, current: -1 })).toThrow(/current/);
    expect(() => targetLambda({ initial: 1, targetCompression: 0.5, lastEpoch: 1.5 })).toThrow(/lastEpoch/);
    expect(() => constantLambda('0.1' as never)).toThrow(/got "0.1" \(a string\)/);
    expect(targetLambda({ initial: 1, targetCompression: 0.5, max: 1 })(0, 1, { compression: 0 })).toBe(1);
  });
});
