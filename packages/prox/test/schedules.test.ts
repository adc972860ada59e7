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
      /lambda schedule: every must be a finite number > 0, got 0/,
    );
    // JSON (a model saved with its optimiser) writes Infinity as null: such a schedule would save but not load.
    expect(() => stepLambda({ initial: 1, factor: 0.5, every: Infinity })).toThrow(
      /lambda schedule: every must be a finite number > 0, got Infinity.*use constantLambda/,
    );
    expect(() => stepLambda({ initial: 1, factor: 0.5, every: NaN })).toThrow(
      /every must be a finite number > 0/,
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

  it('says what options a factory called from JavaScript without them needs, not a destructuring TypeError', () => {
    const none = (f: (o: never) => unknown) => () => (f as () => unknown)();
    expect(none(warmupLambda)).toThrow(
      'warmupLambda: options must be an object such as { value: 1e-4, warmup: 5 }, got undefined',
    );
    expect(none(stepLambda)).toThrow(
      'stepLambda: options must be an object such as { initial: 1e-4, factor: 2, every: 5 }, got undefined',
    );
    expect(none(targetLambda)).toThrow(
      'targetLambda: options must be an object such as { initial: 1e-4, targetCompression: 0.9 }, got undefined',
    );
    for (const config of [undefined, null, 'constant', [1]])
      expect(() => lambdaSchedule(config as never)).toThrow(
        /^lambdaSchedule: config must be an object such as \{ kind: 'constant', value: 1e-4 \} \(a schedule's getConfig\(\)\), got /,
      );
    expect(() => stepLambda(null as never)).toThrow(/^stepLambda: options must be an object such as/);
  });
});

describe('targetLambda: an unreachable target', () => {
  let warn: jest.SpyInstance;
  beforeEach(() => {
    warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  });
  afterEach(() => warn.mockRestore());

  /** Lambda after each epoch 1..compressions.length, reporting those compressions. */
  const run = (s: ReturnType<typeof targetLambda>, compressions: (number | undefined)[]) =>
    compressions.map((c, i) => s(0, i + 1, c === undefined ? {} : { compression: c }));

  it('holds lambda once it grew stallFactor-fold with the compression unchanged, and warns once', () => {
    // The compression moves at epoch 2 (lambda 4), then stays: lambda may grow to 4 * 100 = 400.
    const s = targetLambda({ initial: 1, targetCompression: 0.6, factor: 2 });
    const lambdas = run(s, [0, 0.25, 0.5, ...Array(12).fill(0.5)]);
    expect(lambdas).toEqual([2, 4, 8, 16, 32, 64, 128, 256, 400, 400, 400, 400, 400, 400, 400]);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0][0]).toBe(
      'targetLambda: the target compression 60.00% is out of reach: the compression has stayed at 50.00% while ' +
        'lambda grew 100-fold, from 4 to 400, so lambda is held at 400 instead of being raised further. Groups the ' +
        'optimiser cannot update (frozen layers, layers not attached to it, or a compression reported over them) can ' +
        'never be pruned; lower targetCompression, or unfreeze what it counts. Shown once per schedule.',
    );
    expect(s.config).toMatchObject({ current: 400, lastCompression: 0.5, stallFrom: 4, stallFactor: 100 });
  });

  it('with a custom stallFactor and the default factor, and raises again once the compression moves', () => {
    const s = targetLambda({ initial: 1, targetCompression: 0.9, stallFactor: 2 });
    // 1.5, then (moved at lambda 1.5) 2.25, cap 3, held; a change at epoch 6 restarts from 3.
    expect(run(s, [0.1, 0.2, 0.2, 0.2, 0.2, 0.3, 0.3, 0.3, 0.3])).toEqual([1.5, 2.25, 3, 3, 3, 4.5, 6, 6, 6]);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0][0]).toMatch(
      /target compression 90\.00% is out of reach: the compression has stayed at 20\.00% while lambda grew 2-fold, from 1\.5 to 3, so lambda is held at 3 /,
    );
  });

  it('does not give up before the compression has first moved: a small initial lambda ramps as long as it needs', () => {
    const s = targetLambda({ initial: 1e-8, targetCompression: 0.5, factor: 10 });
    const lambdas = run(s, Array(12).fill(0));
    expect(lambdas[11]).toBeCloseTo(1e4, 6);
    // Nor when nothing is reported, nor when the target is reached.
    expect(
      run(targetLambda({ initial: 1, targetCompression: 0.5, factor: 2 }), [
        0,
        0.1,
        ...Array(10).fill(undefined),
      ]),
    ).toEqual([2, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4]);
    expect(
      run(targetLambda({ initial: 1, targetCompression: 0.5, factor: 2 }), [0, 0.5, ...Array(10).fill(0.5)]),
    ).toEqual([2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]);
    expect(warn).not.toHaveBeenCalled();
  });

  it('warns once that a lambda of 0 cannot be raised, instead of training on without the penalty in silence', () => {
    const s = targetLambda({ initial: 0, targetCompression: 0.5, factor: 2 });
    expect(run(s, [0, 0, 0.1, 0.1])).toEqual([0, 0, 0, 0]);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0][0]).toBe(
      'targetLambda: the target compression 50.00% is out of reach: lambda is 0, which no factor raises (it ' +
        'multiplies lambda), with the compression at 0.00%, so lambda is held at 0 instead of being raised further. ' +
        'Give targetLambda an initial (or saved current) lambda > 0, such as 1e-5. Shown once per schedule.',
    );
    // Restored through its config, as a saved optimiser loads it: the same.
    warn.mockClear();
    const copy = lambdaSchedule(JSON.parse(JSON.stringify(s.config)));
    expect(copy(0, 5, { compression: 0.1 })).toBe(0);
    expect(warn).toHaveBeenCalledTimes(1);
    // A target already reached needs no rise: no warning.
    warn.mockClear();
    expect(run(targetLambda({ initial: 0, targetCompression: 0.5 }), [0.5, 0.6])).toEqual([0, 0]);
    expect(run(targetLambda({ initial: 0, targetCompression: 0 }), [0, 0])).toEqual([0, 0]);
    expect(warn).not.toHaveBeenCalled();
  });

  it('warns once when lambda reaches max short of the target', () => {
    const s = targetLambda({ initial: 1, targetCompression: 0.5, factor: 2, max: 5 });
    expect(run(s, [0.1, 0.2, 0.3, 0.3, 0.4])).toEqual([2, 4, 5, 5, 5]);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0][0]).toBe(
      'targetLambda: the target compression 50.00% is out of reach: lambda has reached its max 5 with the compression ' +
        'at 30.00%, so lambda is held at 5 instead of being raised further. Raise max or lower targetCompression. ' +
        'Shown once per schedule.',
    );
  });

  it('carries its stall state through lambdaSchedule(config) and JSON', () => {
    const s = targetLambda({ initial: 1, targetCompression: 0.6, factor: 2, stallFactor: 8 });
    run(s, [0, 0.25, 0.5, 0.5]);
    const copy = lambdaSchedule(JSON.parse(JSON.stringify(s.config)));
    expect(copy.config).toEqual(s.config);
    expect(s.config).toMatchObject({
      current: 16,
      lastCompression: 0.5,
      stallFrom: 4,
      stallFactor: 8,
      lastEpoch: 4,
    });
    // Both give up at 4 * 8 = 32.
    for (const t of [s, copy])
      expect([5, 6, 7].map((e) => t(0, e, { compression: 0.5 }))).toEqual([32, 32, 32]);
    // An older saved config (no stall fields) gets the default.
    const old = lambdaSchedule({
      kind: 'target',
      initial: 1,
      targetCompression: 0.5,
      factor: 2,
      current: 4,
      lastEpoch: 2,
    });
    expect(old.config).toMatchObject({ stallFactor: 100, current: 4, lastEpoch: 2 });
    expect(old.config).not.toHaveProperty('stallFrom');
  });

  it('refuses a stallFactor that is not a finite number > 1, and a bad saved state', () => {
    for (const bad of [1, 0.5, Infinity, NaN, '10'])
      expect(() => targetLambda({ initial: 1, targetCompression: 0.5, stallFactor: bad as never })).toThrow(
        /targetLambda: stallFactor must be a finite number > 1, got /,
      );
    expect(() => targetLambda({ initial: 1, targetCompression: 0.5, lastCompression: 2 })).toThrow(
      /lastCompression must lie in \[0, 1\], got 2/,
    );
    expect(() => targetLambda({ initial: 1, targetCompression: 0.5, stallFrom: -1 })).toThrow(/stallFrom/);
  });
});
