import { describeValue as describe } from '@normprune/layers';
import { checkOptionKeys, finiteNonnegative } from './checks.js';

/** What a lambda schedule may look at besides the step and epoch counters. */
export interface ScheduleState {
  /**
   * Compression reached so far: 1 - live kernel parameters / total kernel
   * parameters. `SparsityCallback` reports it over the decomposed layers the
   * optimiser can prune (trainable, attached to it and penalised), leaving out
   * frozen ones and those `layerMultipliers` exempts with 0, whose groups no
   * step can remove.
   */
  compression?: number;
}

/** Whether a schedule counts optimiser steps or completed epochs. */
export type ScheduleUnit = 'step' | 'epoch';

/** Config of `constantLambda`. */
export interface ConstantLambdaConfig {
  /** Discriminant. */
  kind: 'constant';
  /** The lambda. */
  value: number;
}

/** Config of `warmupLambda`: linear from `start` to `value` over `warmup` units, then `value`. */
export interface WarmupLambdaConfig {
  /** Discriminant. */
  kind: 'warmup';
  /** Lambda after the warm-up. */
  value: number;
  /** Length of the warm-up, in `unit`s. */
  warmup: number;
  /** Lambda at the start (default 0). */
  start?: number;
  /** Counts steps (default) or epochs. */
  unit?: ScheduleUnit;
}

/** Config of `stepLambda`: `initial * factor ^ floor(t / every)`. */
export interface StepLambdaConfig {
  /** Discriminant. */
  kind: 'step';
  /** Lambda before the first change. */
  initial: number;
  /** Multiplier applied every `every` units. */
  factor: number;
  /** Period, in `unit`s: a finite number > 0. */
  every: number;
  /** Counts epochs (default) or steps. */
  unit?: ScheduleUnit;
}

/**
 * Config of `targetLambda`: starts at `initial`; at each new epoch, while the
 * reported compression is below `targetCompression`, multiplies lambda by
 * `factor` (capped at `max`); holds it once the target is reached, or once the
 * target looks unreachable (see `stallFactor`).
 */
export interface TargetLambdaConfig {
  /** Discriminant. */
  kind: 'target';
  /** Lambda at the start: > 0, since it grows by multiplication (0 stays 0, and warns once). */
  initial: number;
  /**
   * Compression to reach, as a fraction in [0, 1] (0.9 for 90%; the CLI's
   * `--target-compression` takes a percentage instead): 1 - live / total
   * kernel parameters of the decomposed layers the optimiser can prune (as
   * `SparsityCallback` reports it: frozen layers and those `layerMultipliers`
   * exempts with 0 left out). Outside [0, 1] throws.
   */
  targetCompression: number;
  /** Multiplier per epoch below the target (default 1.5, must be >= 1). */
  factor?: number;
  /**
   * Upper bound on lambda (default unbounded; `stallFactor` still stops the
   * growth when it achieves nothing). Reaching it below the target warns once.
   */
  max?: number;
  /**
   * How far lambda may grow (a factor, default 100, must be > 1) while the
   * reported compression stays exactly where it is, once it has changed at
   * least once: the target then counts as unreachable, lambda is held and a
   * warning (once per schedule) names the target, the compression and lambda.
   * A change of the compression later lets lambda rise again. Before the
   * compression first changes lambda is left to grow, however long a small
   * `initial` takes to prune a first group.
   */
  stallFactor?: number;
  /** Current lambda (restores a saved state). */
  current?: number;
  /** Last epoch seen (restores a saved state). */
  lastEpoch?: number;
  /** Compression reported at the last epoch seen (restores a saved state). */
  lastCompression?: number;
  /** Lambda when the compression last changed (restores a saved state). */
  stallFrom?: number;
}

/** The serialisable description of a built-in schedule (see `lambdaSchedule`). */
export type LambdaScheduleConfig =
  ConstantLambdaConfig | WarmupLambdaConfig | StepLambdaConfig | TargetLambdaConfig;

/**
 * A lambda schedule: the penalty strength as a function of the optimiser step
 * (number of updates already applied), the number of completed epochs, and the
 * training state. Any function works; the built-in ones (`constantLambda`,
 * `warmupLambda`, `stepLambda`, `targetLambda`) also carry a `config` so the
 * optimiser's `getConfig()` can save them. A plain function is saved as its
 * current value.
 */
export type LambdaSchedule = ((step: number, epoch: number, state: ScheduleState) => number) & {
  /** How to rebuild the schedule (and its state) with `lambdaSchedule`; absent for plain functions. */
  readonly config?: LambdaScheduleConfig;
};

function withConfig(
  fn: (step: number, epoch: number, state: ScheduleState) => number,
  config: () => LambdaScheduleConfig,
): LambdaSchedule {
  Object.defineProperty(fn, 'config', { get: config, enumerable: true });
  return fn as LambdaSchedule;
}

function checkNonneg(name: string, v: number): void {
  finiteNonnegative(`lambda schedule: ${name}`, v);
}

function checkUnit(unit: unknown): ScheduleUnit {
  if (unit !== 'step' && unit !== 'epoch')
    throw new Error(`lambda schedule: unit must be 'step' or 'epoch', got ${describe(unit)}`);
  return unit;
}

/**
 * A constant lambda: the same penalty strength at every step. The number `lambda: 1e-4` given to
 * a proximal optimiser means the same; the schedule form carries a `config` too.
 *
 * Throws for a `value` that is not a finite number >= 0.
 *
 * ```ts
 * const opt = new ProximalSGD({ learningRate: 0.05, lambda: constantLambda(1e-4), magnitudes: model });
 * ```
 */
export function constantLambda(value: number): LambdaSchedule {
  checkNonneg('value', value);
  return withConfig(
    () => value,
    () => ({ kind: 'constant', value }),
  );
}

/**
 * Linear warm-up from `start` (default 0) to `value` over `warmup` steps (or
 * epochs with `unit: 'epoch'`), then constant. Lets the network fit before
 * the penalty starts killing groups.
 *
 * Throws for a `value`, `start` or `warmup` that is not a finite number >= 0, a `unit` other
 * than `'step'` or `'epoch'`, an unknown option key (naming the key it likely misspells), or a
 * `kind` other than `'warmup'` (a config passed whole: use {@link lambdaSchedule}).
 *
 * ```ts
 * // 0 for the first step, 1e-4 from the fifth epoch on.
 * const lambda = warmupLambda({ value: 1e-4, warmup: 5, unit: 'epoch' });
 * ```
 */
export function warmupLambda(o: {
  value: number;
  warmup: number;
  start?: number;
  unit?: ScheduleUnit;
}): LambdaSchedule {
  checkKind('warmupLambda', o, 'warmup');
  checkOptionKeys(
    'warmupLambda',
    o,
    ['kind', 'value', 'warmup', 'start', 'unit'],
    '{ value: 1e-4, warmup: 5 }',
    true,
  );
  const { value, warmup } = o;
  const start = o.start ?? 0;
  const unit = checkUnit(o.unit ?? 'step');
  checkNonneg('value', value);
  checkNonneg('start', start);
  checkNonneg('warmup', warmup);
  return withConfig(
    (step, epoch) => {
      const t = unit === 'step' ? step : epoch;
      if (warmup === 0 || t >= warmup) return value;
      return start + ((value - start) * t) / warmup;
    },
    () => ({ kind: 'warmup', value, warmup, start, unit }),
  );
}

/**
 * Step decay or growth: `initial * factor ^ floor(t / every)`, `t` counted in
 * epochs (default) or steps.
 *
 * Throws for an `initial` or `factor` that is not a finite number >= 0, an `every` that is not a
 * finite number > 0, a `unit` other than `'step'` or `'epoch'`, an unknown option key, or a
 * `kind` other than `'step'`.
 *
 * ```ts
 * // 1e-4, doubled every 5 epochs: 2e-4 from epoch 5, 4e-4 from epoch 10.
 * const lambda = stepLambda({ initial: 1e-4, factor: 2, every: 5 });
 * ```
 */
export function stepLambda(o: {
  initial: number;
  factor: number;
  every: number;
  unit?: ScheduleUnit;
}): LambdaSchedule {
  checkKind('stepLambda', o, 'step');
  checkOptionKeys(
    'stepLambda',
    o,
    ['kind', 'initial', 'factor', 'every', 'unit'],
    '{ initial: 1e-4, factor: 2, every: 5 }',
    true,
  );
  const { initial, factor, every } = o;
  const unit = checkUnit(o.unit ?? 'epoch');
  checkNonneg('initial', initial);
  checkNonneg('factor', factor);
  // Finite: a config saved with a model goes through JSON, which writes Infinity as null.
  if (typeof every !== 'number' || !(every > 0) || !Number.isFinite(every))
    throw new Error(
      `lambda schedule: every must be a finite number > 0, got ${describe(every)}` +
        (every === Infinity ? ' (for a lambda that never changes, use constantLambda)' : ''),
    );
  return withConfig(
    (step, epoch) => initial * Math.pow(factor, Math.floor((unit === 'step' ? step : epoch) / every)),
    () => ({ kind: 'step', initial, factor, every, unit }),
  );
}

/**
 * Raises lambda until a requested compression is reached, then holds it.
 *
 * At each new epoch (the `epoch` argument grows; `SparsityCallback` reports
 * epochs and compression to the optimiser), if the reported compression is
 * below `targetCompression`, lambda is multiplied by `factor` (default 1.5),
 * capped at `max`. If the compression is at or above the target it is held
 * (and raised again only if the compression later falls below the target).
 *
 * A target that cannot be reached would otherwise raise lambda for ever,
 * killing every group that can be killed and wrecking the loss. So lambda is
 * also held, with one warning, once it has grown `stallFactor`-fold (default
 * 100) while the compression stayed exactly the same after having moved, and
 * when it reaches `max` short of the target. The schedule is stateful: use
 * one instance per training run.
 *
 * It needs the compression reported each epoch: pass a `SparsityCallback` to `fit`. Throws for
 * an `initial` that is not a finite number >= 0, a `factor` below 1, a `targetCompression`
 * outside [0, 1] (a fraction: 0.9 for 90%), a `max` below `initial`, a `stallFactor` not > 1, a
 * malformed saved state (`current`, `lastEpoch`, `lastCompression`, `stallFrom`), an unknown
 * option key, or a `kind` other than `'target'`.
 *
 * ```ts
 * const opt = new ProximalSGD({
 *   learningRate: 0.05,
 *   lambda: targetLambda({ initial: 1e-5, targetCompression: 0.9 }),
 *   magnitudes: model,
 * });
 * model.compile({ optimizer: opt, loss: 'categoricalCrossentropy' });
 * await model.fit(xs, ys, { epochs: 30, callbacks: [new SparsityCallback()] });
 * ```
 */
export function targetLambda(o: Omit<TargetLambdaConfig, 'kind'>): LambdaSchedule {
  checkKind('targetLambda', o, 'target');
  checkOptionKeys('targetLambda', o, TARGET_KEYS, '{ initial: 1e-4, targetCompression: 0.9 }', true);
  const { initial, targetCompression } = o;
  const factor = o.factor ?? 1.5;
  const max = o.max ?? Infinity;
  const stallFactor = o.stallFactor ?? 100;
  checkNonneg('initial', initial);
  if (typeof factor !== 'number' || !(factor >= 1) || !Number.isFinite(factor))
    throw new Error(`targetLambda: factor must be a finite number >= 1, got ${describe(factor)}`);
  if (typeof targetCompression !== 'number' || !(targetCompression >= 0 && targetCompression <= 1)) {
    throw new Error(`targetLambda: targetCompression must lie in [0, 1], got ${describe(targetCompression)}`);
  }
  if (typeof max !== 'number' || !(max >= initial))
    throw new Error(`targetLambda: max must be a number >= initial (${initial}), got ${describe(max)}`);
  if (typeof stallFactor !== 'number' || !(stallFactor > 1) || !Number.isFinite(stallFactor))
    throw new Error(`targetLambda: stallFactor must be a finite number > 1, got ${describe(stallFactor)}`);
  let current = o.current ?? initial;
  let lastEpoch = o.lastEpoch ?? 0;
  let lastCompression = o.lastCompression;
  let stallFrom = o.stallFrom;
  checkNonneg('current', current);
  if (!Number.isInteger(lastEpoch) || lastEpoch < 0)
    throw new Error(`targetLambda: lastEpoch must be an integer >= 0, got ${describe(lastEpoch)}`);
  if (
    lastCompression !== undefined &&
    !(typeof lastCompression === 'number' && lastCompression >= 0 && lastCompression <= 1)
  )
    throw new Error(`targetLambda: lastCompression must lie in [0, 1], got ${describe(lastCompression)}`);
  if (stallFrom !== undefined) checkNonneg('stallFrom', stallFrom);
  let warned = false;
  const pct = (c: number) => `${(100 * c).toFixed(2)}%`;
  const warn = (why: string, advice: string) => {
    if (warned) return;
    warned = true;
    console.warn(
      `targetLambda: the target compression ${pct(targetCompression)} is out of reach: ${why}, so lambda is held at ` +
        `${current} instead of being raised further. ${advice}. Shown once per schedule.`,
    );
  };
  return withConfig(
    (_step, epoch, state) => {
      if (epoch > lastEpoch) {
        lastEpoch = epoch;
        const c = state.compression;
        if (c !== undefined) {
          // The compression moved: lambda may grow stallFactor-fold from here before giving up.
          if (lastCompression !== undefined && c !== lastCompression) stallFrom = current;
          lastCompression = c;
        }
        if (c !== undefined && c < targetCompression) {
          // (a lambda of 0 cannot grow, and is no stall)
          const bound = stallFrom === undefined || stallFrom === 0 ? Infinity : stallFrom * stallFactor;
          if (current === 0)
            warn(
              `lambda is 0, which no factor raises (it multiplies lambda), with the compression at ${pct(c)}`,
              'Give targetLambda an initial (or saved current) lambda > 0, such as 1e-5',
            );
          else if (current >= bound)
            warn(
              `the compression has stayed at ${pct(c)} while lambda grew ${stallFactor}-fold, from ${stallFrom} to ${current}`,
              'Groups the optimiser cannot update (frozen layers, layers not attached to it, or a compression reported ' +
                'over them) can never be pruned; lower targetCompression, or unfreeze what it counts',
            );
          else if (current >= max)
            warn(
              `lambda has reached its max ${max} with the compression at ${pct(c)}`,
              'Raise max or lower targetCompression',
            );
          else current = Math.min(current * factor, max, bound);
        }
      }
      return current;
    },
    () => ({
      kind: 'target',
      initial,
      targetCompression,
      factor,
      // JSON has no Infinity: an absent max means unbounded.
      ...(Number.isFinite(max) ? { max } : {}),
      stallFactor,
      current,
      lastEpoch,
      ...(lastCompression !== undefined ? { lastCompression } : {}),
      ...(stallFrom !== undefined ? { stallFrom } : {}),
    }),
  );
}

/** A `kind` given to a schedule function (a config passed whole) must be that function's. */
function checkKind(who: string, o: unknown, kind: string): void {
  const given = (o as { kind?: unknown } | null | undefined)?.kind;
  if (given !== undefined && given !== kind)
    throw new Error(
      `${who}: kind ${describe(given)} is not '${kind}': build a schedule from its config with lambdaSchedule(config)`,
    );
}

/** The keys of a {@link TargetLambdaConfig}. */
const TARGET_KEYS = [
  'kind',
  'initial',
  'targetCompression',
  'factor',
  'max',
  'stallFactor',
  'current',
  'lastEpoch',
  'lastCompression',
  'stallFrom',
];

/**
 * Builds a schedule from its config (the inverse of `schedule.config`), state included: a
 * `targetLambda` resumes at the lambda and epoch it had reached.
 *
 * Throws for a config that is not an object, an unknown `kind` (naming the four), and whatever
 * the schedule's own function refuses in it.
 *
 * ```ts
 * const schedule = targetLambda({ initial: 1e-5, targetCompression: 0.9 });
 * const saved = JSON.stringify(schedule.config);
 * const resumed = lambdaSchedule(JSON.parse(saved));
 * ```
 */
export function lambdaSchedule(config: LambdaScheduleConfig): LambdaSchedule {
  if (config === null || typeof config !== 'object' || Array.isArray(config))
    throw new Error(
      `lambdaSchedule: config must be an object such as { kind: 'constant', value: 1e-4 } (a schedule's getConfig()), got ${describe(config)}`,
    );
  switch (config.kind) {
    case 'constant':
      checkOptionKeys('lambdaSchedule', config, ['kind', 'value'], "{ kind: 'constant', value: 1e-4 }");
      return constantLambda(config.value);
    case 'warmup':
      return warmupLambda(config);
    case 'step':
      return stepLambda(config);
    case 'target':
      return targetLambda({
        ...config,
        max: config.max ?? undefined,
        stallFactor: config.stallFactor ?? undefined,
        lastCompression: config.lastCompression ?? undefined,
        stallFrom: config.stallFrom ?? undefined,
      });
    default:
      throw new Error(
        `lambdaSchedule: unknown kind ${describe((config as { kind?: unknown }).kind)}; the kinds are 'constant', 'warmup', 'step', 'target'`,
      );
  }
}
