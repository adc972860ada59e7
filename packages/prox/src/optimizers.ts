import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { describeValue as describe, type MagnitudeInfo } from '@normprune/layers';
import { checkBoolean, checkOptionKeys, countNaN, finiteNonnegative } from './checks.js';
import { FLOAT32_MIN_NORMAL, groupSumSquares } from './operators.js';
import {
  constantLambda,
  lambdaSchedule,
  type LambdaSchedule,
  type LambdaScheduleConfig,
  type ScheduleState,
  stepLambda,
  targetLambda,
  warmupLambda,
} from './schedules.js';
import { magnitudesOf } from './penalty.js';
import {
  checkLayerMultipliers,
  costWeights,
  type CostWeighting,
  formerCostWeighting,
  multipliersRecord,
  resolveCostWeighting,
} from './weights.js';

/** A variable's name and value, the array form `applyGradients` accepts. */
export interface NamedTensor {
  /** Name of the variable (`tf.Variable.name`). */
  name: string;
  /** The gradient (or, in `getWeights`, the state) for that variable. */
  tensor: tf.Tensor;
}

type Gradients = tf.NamedTensorMap | NamedTensor[];

/** Options shared by `ProximalSGD` and `ProximalAdam`. */
export interface ProximalOptions {
  /**
   * Penalty strength: a number (constant), a schedule (see `warmupLambda`, `targetLambda`, ...),
   * or a built-in schedule's config (`schedule.config`, as `getConfig()` saves it; built with
   * `lambdaSchedule(config)`).
   */
  lambda: number | LambdaSchedule | LambdaScheduleConfig;
  /**
   * The magnitudes to penalise: a model (its decomposed layers' magnitudes,
   * `magnitudes(model)` from `@normprune/layers`) or a list of them. Every
   * other variable gets the plain update. May be left out (or `[]`) and
   * attached later with `attach()`, so `new ProximalSGD(saved.getConfig())`
   * builds an optimiser to attach. Each magnitude must be >= 0 (see `attach`).
   * A model without decomposed layers throws (`decompose(model)` first), and
   * so does a step with lambda > 0 while nothing is attached.
   */
  magnitudes?: tfl.LayersModel | readonly MagnitudeInfo[];
  /**
   * Penalty weight of each group (`c_k`). Default `'uniform'`. `'flops'` is a
   * deprecated alias of `'macs'` (same weights; warns once).
   */
  costWeighting?: CostWeighting | 'flops';
  /**
   * Multiplies `c_k` of every group of the named layer (0 exempts it from the penalty):
   * `{ fc1: 0.5 }`, or the list `getConfig()` saves, `[{ name: 'fc1', multiplier: 0.5 }]`.
   */
  layerMultipliers?: Record<string, number> | readonly LayerMultiplier[];
  /**
   * Rescale every direction group to unit norm after each step (default true).
   * The effective kernel does not change; it keeps the direction well
   * conditioned and the magnitude equal to the group's norm.
   */
  renormalize?: boolean;
  /**
   * The training progress to start from (completed epochs, compression
   * reached), for an epoch-based lambda schedule resumed mid-training. A
   * config round trip (a model saved with `includeOptimizer`) carries it;
   * `SparsityCallback` also sets it from `fit`'s `initialEpoch`. Default: none.
   */
  progress?: TrainingProgress;
}

/** Constructor options of `ProximalSGD`. */
export interface ProximalSGDOptions extends ProximalOptions {
  /** Step size: a finite number > 0 (the proximal step on the magnitudes shrinks each by `learningRate * lambda * c_k`). */
  learningRate: number;
  /** Momentum coefficient in [0, 1) (default 0: plain SGD, no state). */
  momentum?: number;
  /** Nesterov momentum (default false; needs momentum > 0). */
  nesterov?: boolean;
}

/** Constructor options of `ProximalAdam` (defaults as `tf.train.adam`). */
export interface ProximalAdamOptions extends ProximalOptions {
  /** Step size: a finite number > 0, as `tf.train.adam`'s. */
  learningRate: number;
  /** Decay of the first moment, in [0, 1) (default 0.9). */
  beta1?: number;
  /** Decay of the second moment, in [0, 1) (default 0.999). */
  beta2?: number;
  /** Added to `sqrt(vhat)`: a finite number > 0 (default: the backend's epsilon, as tf.train.adam). */
  epsilon?: number;
}

/** Training progress the optimiser's lambda schedule can react to (`SparsityCallback` reports it). */
export interface TrainingProgress extends ScheduleState {
  /** Number of completed epochs. */
  epoch?: number;
}

/**
 * One layer's multiplier, as `getConfig()` lists them: the layer name goes under a `name` key
 * because loading a model converts every other key (and string) of its saved config to camelCase.
 */
export interface LayerMultiplier {
  /** The decomposed layer's name (its path through nested models, as `magnitudes()` names it). */
  name: string;
  /** Its multiplier of `c_k`. */
  multiplier: number;
}

/**
 * What `getConfig()` returns: the constructor's options (without `magnitudes`), so
 * `new ProximalSGD({ ...saved.getConfig(), magnitudes: model })` builds the same optimiser.
 */
export interface ProximalConfig {
  /** Step size. */
  learningRate: number;
  /** The constant lambda, or the schedule's config (with its state). A plain function schedule is saved as its current value. */
  lambda: number | LambdaScheduleConfig;
  /** How `c_k` is derived. */
  costWeighting: CostWeighting;
  /** Per-layer multipliers of `c_k`, as a list (see {@link LayerMultiplier}). */
  layerMultipliers: LayerMultiplier[];
  /** Whether directions are rescaled to unit norm after each step. */
  renormalize: boolean;
  /** The progress the schedule has seen: epochs completed, and the compression when one was reported. */
  progress: TrainingProgress;
}

/** What `ProximalSGD.getConfig()` returns (see {@link ProximalConfig}). */
export interface ProximalSGDConfig extends ProximalConfig {
  /** Momentum coefficient. */
  momentum: number;
  /** Whether Nesterov momentum is used. */
  nesterov: boolean;
}

/** What `ProximalAdam.getConfig()` returns (see {@link ProximalConfig}). */
export interface ProximalAdamConfig extends ProximalConfig {
  /** Decay of the first moment. */
  beta1: number;
  /** Decay of the second moment. */
  beta2: number;
  /** Added to `sqrt(vhat)`. */
  epsilon: number;
}

interface Slot {
  originalName: string;
  variable: tf.Variable;
}

interface Attached {
  info: MagnitudeInfo;
  c: number;
}

/**
 * State slots keyed by variable name, so that a custom loop that updates a
 * different subset of variables on each call still finds its own state.
 * Slots restored by `setWeights` are claimed by name on first use, else (a
 * model reloaded in the same process gets uniquified variable names) by their
 * place in the gradient list, as tfjs optimisers do; `weights` lists the
 * slots in the order of the latest gradient list, so that the places hold
 * also when the variables were first used in another order (a head trained
 * before the layers under it were unfrozen).
 */
class SlotTable {
  private byName = new Map<string, Slot>();
  private ordered: Slot[] = [];
  /** Each slot's place in the latest gradient list that held its variable. */
  private place = new Map<Slot, number>();
  private restored: (Slot | null)[] = [];

  constructor(private readonly suffix: string) {}

  get(name: string, index: number, value: tf.Variable): tf.Variable {
    let slot = this.byName.get(name);
    if (slot == null) {
      slot = this.claim(name, index, value) ?? {
        originalName: `${name}/${this.suffix}`,
        variable: tf.tidy(() => tf.variable(tf.zerosLike(value), false)),
      };
      this.byName.set(name, slot);
      this.ordered.push(slot);
    }
    this.place.set(slot, index);
    return slot.variable;
  }

  /** The restored slot saved under `name`, else the one at `index`, if its shape fits `value`. */
  private claim(name: string, index: number, value: tf.Variable): Slot | undefined {
    const own = `${name}/${this.suffix}`;
    const named = this.restored.findIndex((r) => r?.originalName === own);
    const at = named >= 0 ? named : index;
    const r = this.restored[at];
    if (r == null || !tf.util.arraysEqual(r.variable.shape, value.shape)) return undefined;
    this.restored[at] = null;
    return r;
  }

  weights(): NamedTensor[] {
    const live = this.ordered
      .map((slot, first) => ({ slot, first }))
      .sort((a, b) => this.place.get(a.slot)! - this.place.get(b.slot)! || a.first - b.first)
      .map((e) => e.slot);
    const pending = this.restored.filter((s): s is Slot => s != null);
    return [...live, ...pending].map((s) => ({ name: s.originalName, tensor: s.variable }));
  }

  /**
   * Restores the slots `values` hold, as {@link SlotTable.slotsOf} made them (which must come
   * first: `values` may be this table's own slots, `setWeights(await getWeights())`, which
   * disposing first would free before they are read).
   */
  restore(restored: Slot[]): void {
    this.dispose();
    this.restored = restored;
  }

  /**
   * New slot variables holding `values`, for {@link SlotTable.restore}. A value tf.variable
   * refuses (not a tensor) frees the variables made before it, which were left behind.
   */
  static slotsOf(values: NamedTensor[]): Slot[] {
    const slots: Slot[] = [];
    try {
      for (const v of values) slots.push({ originalName: v.name, variable: tf.variable(v.tensor, false) });
    } catch (e) {
      for (const s of slots) s.variable.dispose();
      throw e;
    }
    return slots;
  }

  dispose(): void {
    for (const s of this.ordered) s.variable.dispose();
    for (const s of this.restored) s?.variable.dispose();
    this.byName.clear();
    this.place.clear();
    this.ordered = [];
    this.restored = [];
  }
}

function gradientsOf(g: Gradients): { names: string[]; get: (i: number) => tf.Tensor | undefined } {
  if (Array.isArray(g)) return { names: g.map((v) => v.name), get: (i) => g[i].tensor ?? undefined };
  const names = Object.keys(g);
  return { names, get: (i) => g[names[i]] ?? undefined };
}

/**
 * Refuses a disposed tensor among `setWeights`' values before anything changes: tf.variable of
 * one recursed until the stack overflowed on cpu ("Maximum call stack size exceeded"), leaving
 * the slots made before it and a half-made variable behind.
 */
function checkLive(who: string, values: NamedTensor[]): void {
  const dead = values.find((v) => (v?.tensor as tf.Tensor | undefined)?.isDisposed === true);
  if (dead !== undefined)
    throw new Error(
      `${who}.setWeights: the tensor of '${dead.name}' is disposed; pass what getWeights() gives, before it is disposed`,
    );
}

function lookupVariable(name: string): tf.Variable {
  const v = tf.engine().registeredVariables[name];
  if (v == null) throw new Error(`applyGradients: no variable named '${name}'`);
  return v;
}

/** Whether `model` is inside `fit` or `fitDataset` (a Sequential fits through its inner model). */
function inFit(model: tfl.LayersModel | null): boolean {
  type Flagged = { isTraining?: boolean; model?: Flagged };
  const m = model as unknown as Flagged | null;
  return m?.isTraining === true || m?.model?.isTraining === true;
}

/** What makes `schedule` move with completed epochs, or null when it does not (or cannot be told). */
function epochDriven(schedule: LambdaSchedule | null): string | null {
  if (schedule == null) return null;
  const c = schedule.config;
  // A plain function that declares an epoch parameter is taken to use it.
  if (c == null) return schedule.length >= 2 ? 'a function of the epoch' : null;
  if (c.kind === 'target') return 'targetLambda';
  if (c.kind === 'step' && (c.unit ?? 'epoch') === 'epoch') return 'stepLambda counting epochs';
  if (c.kind === 'warmup' && c.unit === 'epoch') return "warmupLambda with unit 'epoch'";
  return null;
}

/**
 * The keys configs saved by earlier versions have where the constructor has other options, with
 * the option each stands for (`fromConfig` reads both spellings; the constructor only its own).
 */
const FORMER_CONFIG_KEYS = new Map([
  ['lambdaSchedule', '`lambda` (a schedule, or its config)'],
  ['epoch', '`progress: { epoch }`'],
  ['compression', '`progress: { compression }`'],
]);

/**
 * The proximal step's last part, max(0, z), except that an infinite z (a gradient or a step that
 * overflowed) gives NaN: relu alone makes -Infinity an exact 0, which every count takes for a
 * pruned group, and +Infinity a magnitude counted live. A NaN is what the sparsity checks refuse
 * as a diverged training. For finite z it is relu(z) exactly (adding 0 * z, a signed zero).
 */
function clampMagnitude(z: tf.Tensor): tf.Tensor {
  return tf.add(tf.relu(z), tf.mul(z, 0));
}

// `instanceof` only recognises the classes of its own copy of this package; a key in the global
// symbol registry is the same in every copy (see ProximalOptimizer's Symbol.hasInstance).
const PROXIMAL_BRAND = Symbol.for('normprune.ProximalOptimizer');

/** The keys of {@link ProximalOptions}. */
const PROXIMAL_OPTIONS = [
  'lambda',
  'magnitudes',
  'costWeighting',
  'layerMultipliers',
  'renormalize',
  'progress',
] as const;

/**
 * The shared machinery of `ProximalSGD` and `ProximalAdam`: the penalty
 * weights, the lambda schedule, and the renormalisation of directions.
 *
 * The config is spelled as the constructor's options, so `new ProximalSGD(opt.getConfig())`
 * rebuilds `opt` as `fromConfig` does (see {@link ProximalConfig}).
 * A config round trip (`getConfig` / `fromConfig`, also used when a model is
 * saved with `includeOptimizer` and loaded again) cannot carry variables: the
 * restored optimiser has no magnitudes attached: call `attach(model)` before
 * training on (a step with lambda > 0 and nothing attached is an error).
 */
export abstract class ProximalOptimizer extends tf.Optimizer {
  /** Step size. */
  protected learningRate: number;
  /** How `c_k` is derived (see `CostWeighting`). */
  readonly costWeighting: CostWeighting;
  /** Per-layer multipliers of `c_k`. */
  readonly layerMultipliers: Readonly<Record<string, number>>;
  /** Whether directions are rescaled to unit norm after each step. */
  readonly renormalize: boolean;

  private schedule: LambdaSchedule | null = null;
  private lambda_: number;
  private progress: TrainingProgress = {};
  private infos: MagnitudeInfo[] = [];
  private byMagnitude = new Map<string, Attached>();
  // lambda * c_k as kept scalars, one per distinct c_k; rebuilt when lambda changes.
  private thresholds = new Map<number, tf.Scalar>();
  private constants = new Map<number, tf.Scalar>();
  // The model given to attach() (not a list of magnitudes): its isTraining flag marks a step inside model.fit.
  private attachedModel: tfl.LayersModel | null = null;
  private observed = false;

  /**
   * A real prototype check: tf.Optimizer answers `instanceof` by duck typing,
   * which would make every optimiser "a ProximalSGD". It also holds for an
   * optimiser made by another copy of this package in the same process (its
   * CommonJS and ES module builds both loaded, or two installed versions):
   * every copy brands its optimisers alike, and `ProximalSGD` /
   * `ProximalAdam` compare the class name such an optimiser gives.
   */
  static override [Symbol.hasInstance](instance: unknown): boolean {
    if (Function.prototype[Symbol.hasInstance].call(this, instance)) return true;
    if (typeof instance !== 'object' || instance === null || !(PROXIMAL_BRAND in instance)) return false;
    const cls = this as unknown as { className?: string };
    return (
      this === ProximalOptimizer || (instance as unknown as tf.Optimizer).getClassName() === cls.className
    );
  }

  /** Checks and stores the shared options; the subclasses add their update rule. */
  protected constructor(o: ProximalOptions & { learningRate: number }) {
    super();
    const cls = new.target as unknown as { className?: string; ownOptions?: readonly string[] };
    const who = cls.className ?? 'ProximalOptimizer';
    refuseFormerConfigKeys(who, o);
    checkOptionKeys(
      who,
      o,
      [...PROXIMAL_OPTIONS, 'learningRate', ...(cls.ownOptions ?? [])],
      '{ learningRate: 0.01, lambda: 1e-4, magnitudes: model }',
      true,
    );
    if (!(o.learningRate > 0 && Number.isFinite(o.learningRate)))
      throw new Error(`learningRate must be a finite number > 0, got ${describe(o.learningRate)}`);
    this.learningRate = o.learningRate;
    // Checked here, not only when magnitudes attach: an optimiser made before its model is.
    this.costWeighting = resolveCostWeighting(o.costWeighting ?? 'uniform');
    this.layerMultipliers = multipliersRecord(o.layerMultipliers);
    this.renormalize = checkBoolean('renormalize', o.renormalize ?? true);
    this.progress = checkProgress('progress', o.progress);
    if (typeof o.lambda === 'function' || isScheduleConfig(o.lambda)) {
      this.useSchedule(
        typeof o.lambda === 'function' ? checkSchedule('lambda', o.lambda) : lambdaSchedule(o.lambda),
      );
      this.lambda_ = NaN;
      this.updateLambda();
    } else {
      this.useSchedule(null);
      this.lambda_ = checkLambdaOption(o.lambda);
    }
    this.attach(o.magnitudes ?? []);
  }

  /** Current penalty strength. Setting it replaces any schedule by this constant. */
  get lambda(): number {
    return this.lambda_;
  }

  /** Sets a constant lambda (dropping any schedule), as `setLambda`. */
  set lambda(value: number) {
    this.setLambda(value);
  }

  /** Sets a constant lambda (dropping any schedule). */
  setLambda(value: number): void {
    if (typeof value === 'function')
      throw new Error(
        'setLambda: got a function; a lambda schedule goes through setLambdaSchedule(schedule)',
      );
    const v = checkLambda(value);
    this.useSchedule(null);
    this.setLambdaValue(v);
  }

  /** Replaces the lambda schedule (evaluated at the next step). */
  setLambdaSchedule(schedule: LambdaSchedule): void {
    if (typeof schedule !== 'function')
      throw new Error(
        `setLambdaSchedule: expected a schedule function such as warmupLambda({ ... }) or (step, epoch, state) => number, got ${describe(schedule)}; a constant goes through setLambda(value)`,
      );
    this.useSchedule(checkSchedule('setLambdaSchedule', schedule));
    this.updateLambda();
  }

  /** Sets the step size. */
  setLearningRate(learningRate: number): void {
    if (!(learningRate > 0 && Number.isFinite(learningRate)))
      throw new Error(`learningRate must be a finite number > 0, got ${describe(learningRate)}`);
    this.learningRate = learningRate;
  }

  /** The attached magnitudes. */
  get magnitudes(): readonly MagnitudeInfo[] {
    return this.infos;
  }

  /** The penalty weight `c_k` of each attached entry (constant over a layer's groups), in `magnitudes` order. */
  get penaltyWeights(): number[] {
    return this.infos.map((m) => this.byMagnitude.get(m.magnitude.name)!.c);
  }

  /**
   * Attaches (replaces) the magnitudes to penalise, e.g. after `fromConfig`
   * or after loading a model saved with its optimiser:
   * `optimizer.attach(model)` or `optimizer.attach(magnitudes(model))`.
   * Optimiser state is kept.
   *
   * A model without decomposed layers is an error (it has nothing to
   * penalise; `decompose(model)` first); an empty list is allowed.
   *
   * Every magnitude must be >= 0 and not NaN: the proximal step keeps
   * magnitudes in `g >= 0`, so a negative one would be set to 0 (its group
   * killed) by the first step even at lambda 0. `decompose()` and the default
   * initialiser give norms, which are >= 0; a custom `magnitudeInitializer`
   * must too.
   */
  attach(modelOrMagnitudes: tfl.LayersModel | readonly MagnitudeInfo[]): void {
    // A model must have decomposed layers (an empty list is fine: attach later).
    const magnitudes = magnitudesOf(modelOrMagnitudes, 'attach', true);
    checkNonnegative(magnitudes);
    // With nothing attached (an optimiser rebuilt by fromConfig, or loaded
    // with its model) there are no layer names yet to check the multipliers
    // against; their values are checked, and the names are on the next attach.
    const c =
      magnitudes.length === 0
        ? (checkLayerMultipliers(this.layerMultipliers, null), [])
        : costWeights(magnitudes, this.costWeighting, this.layerMultipliers);
    const byMagnitude = new Map<string, Attached>();
    magnitudes.forEach((info, i) => {
      if (byMagnitude.has(info.magnitude.name))
        throw new Error(`attach: magnitude '${info.magnitude.name}' given twice`);
      const d = info.direction.shape;
      const kept = d.filter((_, axis) => !info.normAxes.includes(axis));
      if (!tf.util.arraysEqual(kept, info.magnitude.shape)) {
        throw new Error(
          `attach: layer '${info.layerName}': direction [${d}] reduced over axes [${info.normAxes}] ` +
            `does not match magnitude [${info.magnitude.shape}]`,
        );
      }
      byMagnitude.set(info.magnitude.name, { info, c: c[i] });
    });
    this.infos = [...magnitudes];
    this.byMagnitude = byMagnitude;
    this.attachedModel = Array.isArray(modelOrMagnitudes) ? null : (modelOrMagnitudes as tfl.LayersModel);
    this.warnIfSingleWeightGroups();
  }

  private warnedSingleWeight = false;

  /**
   * Warns once when an attached layer's groups are single weights: a 1x1 Conv2D of granularity
   * 'kernel' (the default), a Dense of one unit with 'input', a Dense on one input feature with
   * 'output'. A one-weight group's direction is +1 or -1 and cannot rotate (its gradient is
   * `g * eps^2 / |v|^3`, about 0), and the proximal step keeps the magnitude >= 0: no weight of
   * such a layer can change sign. One that should is set to 0 instead, and held there by its
   * gradient, at any lambda, where plain SGD would carry it through 0.
   */
  private warnIfSingleWeightGroups(): void {
    if (this.warnedSingleWeight) return;
    const single = this.infos.filter((m) => m.paramsPerGroup === 1);
    if (single.length === 0) return;
    this.warnedSingleWeight = true;
    const described = single.map((m) => `'${m.layerName}' (${singleWeightLayer(m)})`);
    console.warn(
      `${this.getClassName()}: every group of ${described.join(' and of ')} is a single weight. A one-weight ` +
        `group's direction is +1 or -1 and cannot rotate, and the proximal step keeps magnitudes >= 0, so training ` +
        `cannot change the sign of any of its weights: one whose gradient carries it past 0 is set to 0 and held ` +
        `there, at any lambda (plain SGD would carry it through 0). Decompose ${single.length > 1 ? 'these layers' : 'it'} ` +
        `with the granularity named (decompose(model, { include, granularity }) in two calls, one per granularity), ` +
        `or leave ${single.length > 1 ? 'them' : 'it'} plain. Shown once per optimiser.`,
    );
  }

  /**
   * tfjs's `minimize`, leaving no tensor behind when it throws. tfjs's own frees the loss and the
   * gradients only after `applyGradients` returns, so a refused step (lambda with no magnitudes
   * attached, a schedule returning NaN) left all of them behind; and `variableGrads` refuses a
   * loss that is not a scalar, or one no variable reaches, after computing them, which the tidy
   * around it frees.
   */
  override minimize(f: () => tf.Scalar, returnCost = false, varList?: tf.Variable[]): tf.Scalar | null {
    const { value, grads } = tf.tidy(() => this.computeGradients(f, varList));
    try {
      this.applyGradients(
        varList != null ? varList.map((v) => ({ name: v.name, tensor: grads[v.name] })) : grads,
      );
    } catch (e) {
      value.dispose();
      throw e;
    } finally {
      tf.dispose(grads);
    }
    if (returnCost) return value;
    value.dispose();
    return null;
  }

  /**
   * Reports training progress (completed epochs, compression reached) to the
   * lambda schedule; `SparsityCallback` calls it at the end of every epoch.
   */
  observe(progress: TrainingProgress): void {
    this.progress = { ...this.progress, ...checkProgress('observe', progress) };
    this.observed = true;
    this.updateLambda();
  }

  /** Epochs completed, as last reported by `observe` (or restored from a config). */
  get epochsCompleted(): number {
    return this.progress.epoch ?? 0;
  }

  /** Restores the step count, then re-evaluates the schedule at it (not at step 0). */
  protected override async extractIterations(weightValues: NamedTensor[]): Promise<NamedTensor[]> {
    const rest = await super.extractIterations(weightValues);
    this.updateLambda();
    return rest;
  }

  /** Evaluates the schedule for the coming step. */
  protected updateLambda(): void {
    if (this.schedule == null) return;
    const epoch = this.progress.epoch ?? 0;
    const v: unknown = this.schedule(this.iterations, epoch, { compression: this.progress.compression });
    if (typeof v !== 'number' || !(v >= 0) || !Number.isFinite(v))
      throw new Error(
        `lambda schedule returned ${describe(v)} at step ${this.iterations} (epoch ${epoch}); a schedule must return a finite number >= 0`,
      );
    this.setLambdaValue(v);
  }

  private setLambdaValue(v: number): void {
    if (v === this.lambda_) return;
    this.lambda_ = v;
    for (const t of this.thresholds.values()) t.dispose();
    this.thresholds.clear();
  }

  /**
   * A kept scalar for a value that does not change between steps: an op with
   * a plain number operand uploads a new scalar tensor on every call.
   */
  protected readonly constant = (value: number): tf.Scalar => {
    let t = this.constants.get(value);
    if (t == null) {
      t = tf.keep(tf.scalar(value));
      this.constants.set(value, t);
    }
    return t;
  };

  /** `lambda * c_k` for a magnitude variable, or null when `name` is not an attached magnitude. */
  protected thresholdOf(name: string): tf.Scalar | null {
    const a = this.byMagnitude.get(name);
    if (a == null) return null;
    const value = this.lambda_ * a.c;
    let t = this.thresholds.get(value);
    if (t == null) {
      t = tf.keep(tf.scalar(value));
      this.thresholds.set(value, t);
    }
    return t;
  }

  /**
   * Rescales each direction group touched by this step to unit norm, and
   * compensates the magnitude for the layer's epsilon so that the effective
   * kernel `g * V / sqrt(||V||^2 + eps^2)` is unchanged. Zero groups are left
   * as they are. Runs inside the caller's tidy.
   *
   * The compensation factor is `sqrt((1 + eps^2) s / (s + eps^2))` with
   * `s = ||V||^2`; it differs from 1 by about `eps^2 / 2 * |1 - 1/s|`. For
   * `eps <= 1e-6` (the layers default) and any group norm above 0.003 that is
   * below float32 rounding (2^-24), so it is skipped there: it would cost a
   * handful of small ops per layer and step without changing the kernel.
   */
  protected renormalizeGroups(updated: ReadonlySet<string>): void {
    if (!this.renormalize) return;
    for (const info of this.infos) {
      if (!updated.has(info.magnitude.name) && !updated.has(info.direction.name)) continue;
      const v = info.direction;
      const s = groupSumSquares(v, info.normAxes, 'auto', this.constant);
      v.assign(tf.mul(v, tf.rsqrt(tf.maximum(s, this.constant(FLOAT32_MIN_NORMAL)))));
      const eps2 = info.epsilon * info.epsilon;
      if (info.epsilon > COMPENSATION_MIN_EPSILON) {
        const g = info.magnitude;
        const sg = tf.reshape(s, g.shape);
        const f = tf.sqrt(tf.div(tf.mul(sg, this.constant(1 + eps2)), tf.add(sg, this.constant(eps2))));
        g.assign(tf.mul(g, tf.where(tf.greater(sg, 0), f, tf.onesLike(f))));
      }
    }
  }

  /** Runs `update(name, index, gradient, variable)` for every gradient, then the renormalisation, in one tidy. */
  protected step(
    gradients: tf.NamedTensorMap | NamedTensor[],
    update: (name: string, index: number, gradient: tf.Tensor, value: tf.Variable) => void,
  ): void {
    this.updateLambda();
    const { names, get } = gradientsOf(gradients);
    if (this.lambda_ > 0 && this.infos.length === 0 && names.length > 0)
      throw new Error(
        `${this.getClassName()}: lambda is ${this.lambda_} but no magnitudes are attached, so the penalty has nothing to act on ` +
          `and this step would be a plain one: call optimizer.attach(model) with the decomposed model you train (an optimiser ` +
          `rebuilt from its config, as when a model saved with includeOptimizer is loaded, starts with none), or set lambda to 0 ` +
          `to train without the penalty`,
      );
    // Every name is looked up before any variable changes: an unknown one refuses the whole step,
    // not the rest of a step half applied.
    const variables = names.map((name, i) => (get(i) == null ? undefined : lookupVariable(name)));
    // So is a gradient of another shape: tfjs would broadcast a [1] one, or fail past the momentum.
    names.forEach((name, i) => {
      const g = get(i);
      const v = variables[i];
      if (g != null && v !== undefined && !tf.util.arraysEqual(g.shape, v.shape))
        throw new Error(
          `${this.getClassName()}: the gradient of '${name}' has shape [${g.shape}] but the variable has shape ` +
            `[${v.shape}]; no variable was updated (pass each variable's own gradient, as tf.variableGrads gives)`,
        );
    });
    const updated = new Set<string>();
    tf.tidy(() => {
      names.forEach((name, i) => {
        const gradient = get(i);
        const variable = variables[i];
        if (gradient == null || variable === undefined) return;
        update(name, i, gradient, variable);
        updated.add(name);
      });
      this.renormalizeGroups(updated);
    });
    this.incrementIterations();
    this.warnIfNoMagnitudeUpdated(updated);
    this.warnIfEpochsStandStill();
  }

  private warnedEpochs = false;
  // What makes the schedule move with epochs (see epochDriven), found once per schedule, not per step.
  private scheduleByEpochs: string | null = null;

  private useSchedule(schedule: LambdaSchedule | null): void {
    this.schedule = schedule;
    this.scheduleByEpochs = epochDriven(schedule);
  }

  /**
   * Warns once when a step inside `model.fit` or `fitDataset` runs a schedule that moves with
   * completed epochs while nothing has ever reported one: that fit has no `SparsityCallback`, so
   * lambda would keep its epoch-0 value to the end (a warm-up from 0 would never penalise at
   * all). A fit is told by the attached model's `isTraining` flag, so this needs the optimiser
   * attached to the model itself (`attach(model)` or `magnitudes: model`); a custom loop is not
   * a fit and reports epochs with `observe` itself.
   */
  private warnIfEpochsStandStill(): void {
    const what = this.scheduleByEpochs;
    if (what == null || this.warnedEpochs || this.observed || !inFit(this.attachedModel)) return;
    this.warnedEpochs = true;
    console.warn(
      `${this.getClassName()}: the lambda schedule (${what}) moves with completed epochs, but nothing reports them to ` +
        `the optimiser: this model.fit has no SparsityCallback, so lambda stays at its epoch-0 value ${this.lambda_} ` +
        `for the whole fit. Add new SparsityCallback() to fit's callbacks (or call optimizer.observe({ epoch }) after ` +
        `each epoch). Shown once per optimiser.`,
    );
  }

  private warnedNoMagnitude = false;

  /**
   * Warns once when a step with lambda > 0 updates variables but none of the
   * attached magnitudes: the usual cause is training another model than the
   * one attached (the original instead of its decomposed copy), which would
   * otherwise finish with no exact zeros and no word why. Not an error: a
   * custom loop may update a subset of the variables, or freeze the
   * decomposed layers, on purpose.
   */
  private warnIfNoMagnitudeUpdated(updated: ReadonlySet<string>): void {
    if (this.warnedNoMagnitude || !(this.lambda_ > 0) || this.infos.length === 0 || updated.size === 0)
      return;
    if (this.infos.some((m) => updated.has(m.magnitude.name))) return;
    this.warnedNoMagnitude = true;
    const names = this.infos.map((m) => m.layerName);
    const shown = names.length > 5 ? `${names.slice(0, 5).join(', ')}, ...` : names.join(', ');
    console.warn(
      `${this.getClassName()}: none of the ${names.length} attached magnitudes (${shown}) had a gradient in this step, so no ` +
        `proximal step was applied to them: the model being trained is not the one whose magnitudes are attached (call ` +
        `optimizer.attach(model) with the model you train, e.g. the result of decompose(), not the original), or its ` +
        `decomposed layers are frozen (trainable = false). Shown once per optimiser.`,
    );
  }

  /**
   * The config entries shared by both optimisers, spelled as the constructor's options (see
   * {@link ProximalConfig}).
   */
  protected baseConfig(): ProximalConfig {
    const { epoch, compression } = this.progress;
    return {
      learningRate: this.learningRate,
      // A built-in schedule saves its config, state included; a constant (or a plain function) its value.
      lambda: this.schedule?.config ?? this.lambda_,
      costWeighting: this.costWeighting,
      // Names go under a 'name' key: tfjs-layers camel-cases other strings and keys on load.
      layerMultipliers: Object.entries(this.layerMultipliers).map(([name, multiplier]) => ({
        name,
        multiplier,
      })),
      renormalize: this.renormalize,
      // An epoch-based schedule resumes at the epoch it reached, not at epoch 0.
      progress: { epoch: epoch ?? 0, ...(compression !== undefined ? { compression } : {}) },
    };
  }

  /** Frees the optimiser's own tensors (state and cached scalars), not the model's variables. */
  override dispose(): void {
    super.dispose();
    for (const t of this.thresholds.values()) t.dispose();
    this.thresholds.clear();
    for (const t of this.constants.values()) t.dispose();
    this.constants.clear();
  }
}

/**
 * Reads a saved config back into constructor options (without magnitudes). A config is spelled as
 * the constructor's options; one saved by an earlier version has the schedule's config in
 * `lambdaSchedule` (beside `lambda`, then the value at save time, which the schedule
 * supersedes) and the progress in `epoch` and `compression`: both load. A config that gives one
 * option in both spellings is refused, naming both keys. Other keys are left out, as tfjs's own
 * optimisers do (its deserialisation adds `customObjects`).
 */
function baseOptions(
  who: string,
  config: tf.serialization.ConfigDict,
): ProximalOptions & { learningRate: number } {
  const formerSchedule = config['lambdaSchedule'];
  const lambda = config['lambda'];
  if (formerSchedule != null && lambda != null && typeof lambda === 'object')
    throw new Error(
      `${who}.fromConfig: the config gives the lambda schedule twice, as \`lambda\` (a schedule config) and as ` +
        `\`lambdaSchedule\` (how earlier versions saved it); keep one of them`,
    );
  const formerProgress = ['epoch', 'compression'].filter((k) => config[k] !== undefined);
  if (config['progress'] !== undefined && formerProgress.length > 0)
    throw new Error(
      `${who}.fromConfig: the config gives the training progress twice, as \`progress\` and as ` +
        `${formerProgress.map((k) => `\`${k}\``).join(' and ')} (how earlier versions saved it); keep one of them`,
    );
  const epoch = config['epoch'];
  const compression = config['compression'];
  return {
    learningRate: config['learningRate'] as number,
    lambda: (formerSchedule ?? lambda) as unknown as ProximalOptions['lambda'],
    magnitudes: [],
    // A model saved before a weighting was renamed ('flops', now 'macs') records the former name:
    // it loads as the current one, without the warning meant for code that still writes the
    // former name (saving it again writes the current one).
    costWeighting:
      formerCostWeighting(config['costWeighting']) ??
      (config['costWeighting'] as CostWeighting | undefined) ??
      'uniform',
    layerMultipliers: (config['layerMultipliers'] ?? []) as unknown as ProximalOptions['layerMultipliers'],
    renormalize: (config['renormalize'] as boolean | undefined) ?? true,
    progress: (config['progress'] as TrainingProgress | null | undefined) ?? {
      ...(typeof epoch === 'number' ? { epoch } : {}),
      ...(typeof compression === 'number' ? { compression } : {}),
    },
  };
}

/**
 * Refuses the keys of configs saved by earlier versions (see `FORMER_CONFIG_KEYS`), saying what
 * the constructor takes instead and that `fromConfig` reads them.
 */
function refuseFormerConfigKeys(who: string, o: unknown): void {
  if (o == null || typeof o !== 'object') return;
  const given = Object.keys(o).filter((k) => FORMER_CONFIG_KEYS.has(k));
  if (given.length === 0) return;
  throw new Error(
    `${who}: ${given.map((k) => `\`${k}\``).join(', ')} ${given.length > 1 ? 'are' : 'is'} how a config saved by an ` +
      `earlier version of @normprune/prox spells ${given.map((k) => FORMER_CONFIG_KEYS.get(k)).join(', ')}: ` +
      `${who}.fromConfig(${who}, config) reads either spelling (new ${who}(optimizer.getConfig()) works as it is)`,
  );
}

/** Whether `v` is a schedule's config (an object with a string `kind`), for `lambdaSchedule`. */
function isScheduleConfig(v: unknown): v is LambdaScheduleConfig {
  return v != null && typeof v === 'object' && typeof (v as { kind?: unknown }).kind === 'string';
}

/** Refuses a key other than epoch and compression, an epoch count that is not a whole number >= 0, or a compression outside [0, 1]. */
function checkProgress(who: string, p: TrainingProgress | undefined): TrainingProgress {
  if (p == null) return {};
  if (typeof p !== 'object') throw new Error(`progress must be { epoch?, compression? }, got ${describe(p)}`);
  checkOptionKeys(who, p, ['epoch', 'compression'], '{ epoch: 3, compression: 0.5 }');
  if (p.epoch !== undefined && !(Number.isInteger(p.epoch) && p.epoch >= 0))
    throw new Error(
      `progress.epoch must be a whole number >= 0 (epochs completed), got ${describe(p.epoch)}`,
    );
  if (
    p.compression !== undefined &&
    !(typeof p.compression === 'number' && p.compression >= 0 && p.compression <= 1)
  )
    throw new Error(`progress.compression must lie in [0, 1], got ${describe(p.compression)}`);
  return { ...p };
}

/**
 * A layer whose groups are single weights, as {@link ProximalOptimizer}'s warning names it: its
 * kind, why its groups have one weight, its granularity, and the granularity whose groups hold
 * several (or that none does).
 */
function singleWeightLayer(m: MagnitudeInfo): string {
  const d = m.direction.shape;
  let other: { granularity: string; size: number };
  let what: string;
  if (m.granularity === 'kernel' || m.granularity === 'filter') {
    // [...kernelSize, cin, cout] (a Conv2DTranspose's [kh, kw, cout, cin], a DepthwiseConv2D's
    // [kh, kw, cin, depthMultiplier], whose filters are its input channels; a SeparableConv2D's
    // depthwise kernel as a DepthwiseConv2D's, its pointwise one as a 1x1 Conv2D's): a
    // single-weight group makes its own axes 1.
    const transposed = 'transposed' in m.layer && m.layer.transposed;
    const depthwise = m.part === 'depthwise' || ('depthwise' in m.layer && m.layer.depthwise);
    const filterAxis = transposed || depthwise ? d.length - 2 : d.length - 1;
    const cin = transposed ? d[d.length - 1] : d[d.length - 2];
    other = { granularity: 'filter', size: d.reduce((a, b, axis) => (axis === filterAxis ? a : a * b), 1) };
    const multiplierOne = d[d.length - 1] === 1 ? ' and depthMultiplier 1' : '';
    what =
      m.part === 'pointwise'
        ? "SeparableConv2D's pointwise kernel (1x1)" + (cin === 1 ? ' on one channel' : '')
        : m.part === 'depthwise'
          ? "SeparableConv2D's depthwise kernel of 1x1 kernels" + multiplierOne
          : depthwise
            ? 'DepthwiseConv2D with 1x1 kernels' + multiplierOne
            : (transposed
                ? 'Conv2DTranspose with 1x1 kernels'
                : d.length === 3
                  ? 'Conv1D with kernels of size 1'
                  : 'Conv2D with 1x1 kernels') + (cin === 1 ? ' on one input channel' : '');
  } else {
    // [in, units]
    other = {
      granularity: m.granularity === 'output' ? 'input' : 'output',
      size: (m.granularity === 'output' ? d[1] : d[0]) ?? 1,
    };
    what = m.granularity === 'output' ? 'Dense on 1 input feature' : 'Dense of 1 unit';
  }
  const way =
    other.size > 1 && other.granularity !== m.granularity
      ? `use '${other.granularity}'`
      : 'no granularity groups several of its weights; keep it plain';
  return `${what}, granularity '${m.granularity}': ${way}`;
}

// Below this epsilon the renormalisation's magnitude compensation is a float32 no-op (see renormalizeGroups).
const COMPENSATION_MIN_EPSILON = 1e-6;

function checkLambda(v: number): number {
  return finiteNonnegative('lambda', v);
}

const SCHEDULE_FACTORIES = new Map<unknown, string>([
  [constantLambda, 'constantLambda'],
  [warmupLambda, 'warmupLambda'],
  [stepLambda, 'stepLambda'],
  [targetLambda, 'targetLambda'],
  [lambdaSchedule, 'lambdaSchedule'],
]);

/** A schedule function, or an error for a schedule factory passed uncalled (it would be called with a step count). */
function checkSchedule(who: string, schedule: LambdaSchedule): LambdaSchedule {
  const factory = SCHEDULE_FACTORIES.get(schedule);
  if (factory != null)
    throw new Error(
      `${who}: got the schedule factory ${factory} itself; pass the schedule it returns: ${factory}({ ... })`,
    );
  return schedule;
}

/** The constructor's `lambda` when it is neither a schedule nor a schedule's config: a number. */
function checkLambdaOption(v: unknown): number {
  if (v != null && typeof v === 'object')
    throw new Error(
      `lambda must be a finite number >= 0, a schedule such as warmupLambda({ ... }) or a schedule's config ` +
        `such as { kind: 'warmup', value: 1e-4, warmup: 100 }, got ${describe(v)}`,
    );
  return checkLambda(v as number);
}

/** Refuses negative or NaN magnitudes, naming the layer (one small read per magnitude). */
function checkNonnegative(infos: readonly MagnitudeInfo[]): void {
  if (infos.length === 0) return;
  const stats = tf.tidy(() =>
    tf.stack(infos.map((m) => tf.stack([tf.min(m.magnitude), countNaN(m.magnitude)]))),
  );
  const v = stats.dataSync();
  stats.dispose();
  infos.forEach((m, i) => {
    const [min, nans] = [v[2 * i], v[2 * i + 1]];
    if (nans > 0)
      throw new Error(
        `attach: layer '${m.layerName}' has ${nans} NaN magnitude(s); training has diverged or the weights are corrupt: lower the learning rate or restore a checkpoint`,
      );
    if (min < 0)
      throw new Error(
        `attach: layer '${m.layerName}' has negative magnitudes (smallest ${min}); the proximal step keeps magnitudes >= 0 and would set them to 0 (kill their groups) at the first step: ` +
          `initialise magnitudes with a non-negative initializer (the default is each group's norm), or move the sign into the direction`,
      );
  });
}

// Every copy of this package marks its optimisers alike: see ProximalOptimizer's Symbol.hasInstance.
Object.defineProperty(ProximalOptimizer.prototype, PROXIMAL_BRAND, { value: true });

/**
 * SGD (optionally with momentum or Nesterov momentum, as `tf.train.momentum`)
 * plus the proximal step of `lambda * sum_k c_k * |g_k|` on every attached
 * magnitude: after the ordinary update, `g <- max(g - lr * lambda * c_k, 0)`
 * (fused into the update), then every touched direction group is rescaled to
 * unit norm. All other variables get the plain update.
 *
 * Works in `model.compile({ optimizer })` + `model.fit()` and with
 * `minimize` / `applyGradients` in custom loops.
 *
 * The constructor throws for an unknown option key (naming the key it likely misspells; a former
 * option name names its successor), a `learningRate` that is not a finite number > 0, a `lambda`
 * that is neither a finite number >= 0, a schedule nor a schedule's config, an unknown
 * `costWeighting`, bad `layerMultipliers`, a `momentum` outside [0, 1), `nesterov` without momentum,
 * and `magnitudes` that are neither a model nor `magnitudes()` entries. A step (`minimize`, `applyGradients`, a `fit` batch) throws, and
 * changes nothing, when lambda > 0 and no magnitudes are attached, or the schedule returns
 * something other than a finite number >= 0.
 *
 * ```ts
 * // `model` holds decomposed layers (decompose() of @normprune/layers).
 * const optimizer = new ProximalSGD({ learningRate: 0.05, momentum: 0.9, lambda: 1e-4, magnitudes: model });
 * model.compile({ optimizer, loss: 'categoricalCrossentropy' });
 * await model.fit(xs, ys, { epochs: 10, callbacks: [new SparsityCallback()] });
 * ```
 */
export class ProximalSGD extends ProximalOptimizer {
  /** The options ProximalSGD takes beside {@link ProximalOptions}' and `learningRate`. @internal */
  static readonly ownOptions: readonly string[] = ['momentum', 'nesterov'];
  /** The name this class is registered under for (de)serialisation. */
  static get className(): string {
    return 'ProximalSGD';
  }

  /** Momentum coefficient (0: plain SGD, no state). */
  readonly momentum: number;
  /** Whether Nesterov momentum is used. */
  readonly nesterov: boolean;
  private accumulations = new SlotTable('momentum');

  /** SGD (with optional momentum and Nesterov) followed by the proximal step on the attached magnitudes. */
  constructor(o: ProximalSGDOptions) {
    super(o);
    this.momentum = o.momentum ?? 0;
    this.nesterov = checkBoolean('nesterov', o.nesterov ?? false);
    // typeof: a numeric string passes the range check and fails at the first step, inside tfjs.
    if (typeof this.momentum !== 'number' || !(this.momentum >= 0 && this.momentum < 1))
      throw new Error(`momentum must be a number in [0, 1), got ${describe(this.momentum)}`);
    if (this.nesterov && this.momentum === 0) throw new Error('nesterov needs momentum > 0');
  }

  /** Updates the variables (ordinary SGD step, proximal step on magnitudes, renormalisation of directions). */
  applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    const negLr = tf.scalar(-this.learningRate);
    const m = this.momentum > 0 ? this.constant(this.momentum) : null;
    // Freed also when the step is refused (an unknown variable, lambda with nothing attached).
    try {
      this.step(variableGradients, (name, i, gradient, value) => {
        let direction: tf.Tensor = gradient;
        if (m != null) {
          const acc = this.accumulations.get(name, i, value);
          const newAcc = tf.add(tf.mul(m, acc), gradient);
          direction = this.nesterov ? tf.add(gradient, tf.mul(newAcc, m)) : newAcc;
          acc.assign(newAcc);
        }
        const t = this.thresholdOf(name);
        if (t == null) {
          value.assign(tf.add(tf.mul(negLr, direction), value));
        } else {
          value.assign(clampMagnitude(tf.add(tf.mul(negLr, tf.add(direction, t)), value)));
        }
      });
    } finally {
      negLr.dispose();
    }
  }

  /**
   * Iteration count and momentum accumulators (tfjs order: `iter` first). The
   * accumulators are the live state; `iter` is a new scalar on every call, the
   * caller's to dispose (as with tfjs optimisers).
   */
  override async getWeights(): Promise<NamedTensor[]> {
    return [await this.saveIterations(), ...this.accumulations.weights()];
  }

  /** Restores what `getWeights` returned. */
  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    if (Array.isArray(weightValues)) checkLive('ProximalSGD', weightValues);
    const rest = await this.extractIterations(weightValues);
    this.accumulations.restore(SlotTable.slotsOf(rest));
  }

  /**
   * The hyper-parameters, lambda (or the schedule's config, with its state) and training progress,
   * spelled as the constructor's options, so `new ProximalSGD({ ...opt.getConfig(), magnitudes })`
   * builds the same optimiser (also after JSON; `new ProximalSGD(opt.getConfig())` one to `attach` later). Magnitudes
   * are not part of it (see `attach`); nor is the step count, which `getWeights` carries.
   */
  getConfig(): tf.serialization.ConfigDict & ProximalSGDConfig {
    const config: ProximalSGDConfig = {
      ...this.baseConfig(),
      momentum: this.momentum,
      nesterov: this.nesterov,
    };
    return config as unknown as tf.serialization.ConfigDict & ProximalSGDConfig;
  }

  /**
   * Rebuilds an optimiser from a saved config, with no magnitudes attached: what tfjs calls when
   * it loads a model saved with `includeOptimizer`. Reads `getConfig()`'s spelling and that of
   * configs saved by earlier versions (see {@link ProximalConfig}); a config that gives one option
   * in both is refused, naming both keys.
   */
  static override fromConfig<T extends tf.serialization.Serializable>(
    cls: tf.serialization.SerializableConstructor<T>,
    config: tf.serialization.ConfigDict,
  ): T {
    return new cls({
      ...baseOptions('ProximalSGD', config),
      momentum: (config['momentum'] as number | undefined) ?? 0,
      nesterov: (config['nesterov'] as boolean | undefined) ?? false,
    });
  }

  /** Frees the momentum accumulators. */
  override dispose(): void {
    super.dispose();
    this.accumulations.dispose();
  }
}

/**
 * Adam (bias-corrected, as `tf.train.adam`) plus the proximal step of
 * `lambda * sum_k c_k * |g_k|` on every attached magnitude, with Adam's own
 * per-coordinate step: `g <- max(g - lr * (mhat + lambda * c_k) / (sqrt(vhat) + eps), 0)`,
 * i.e. the ordinary Adam update followed by soft-thresholding at
 * `lr / (sqrt(vhat) + eps) * lambda * c_k`. Then every touched direction group
 * is rescaled to unit norm. All other variables get the plain update.
 *
 * The constructor throws for an unknown option key (naming the key it likely misspells; a former
 * option name names its successor), a `learningRate` that is not a finite number > 0, a `lambda`
 * that is neither a finite number >= 0, a schedule nor a schedule's config, an unknown
 * `costWeighting`, bad `layerMultipliers`, a `beta1` or `beta2` outside [0, 1), an `epsilon` not > 0,
 * and `magnitudes` that are neither a model nor `magnitudes()` entries. A step (`minimize`, `applyGradients`, a `fit` batch) throws, and
 * changes nothing, when lambda > 0 and no magnitudes are attached, or the schedule returns
 * something other than a finite number >= 0.
 *
 * ```ts
 * const optimizer = new ProximalAdam({ learningRate: 1e-3, lambda: 1e-5, magnitudes: model });
 * model.compile({ optimizer, loss: 'meanSquaredError' });
 * ```
 */
export class ProximalAdam extends ProximalOptimizer {
  /** The options ProximalAdam takes beside {@link ProximalOptions}' and `learningRate`. @internal */
  static readonly ownOptions: readonly string[] = ['beta1', 'beta2', 'epsilon'];
  /** The name this class is registered under for (de)serialisation. */
  static get className(): string {
    return 'ProximalAdam';
  }

  /** Decay of the first moment. */
  readonly beta1: number;
  /** Decay of the second moment. */
  readonly beta2: number;
  /** Added to `sqrt(vhat)`. */
  readonly epsilon: number;
  private firstMoments = new SlotTable('m');
  private secondMoments = new SlotTable('v');
  private accBetas = { t: 0, a1: 1, a2: 1 };

  /** Adam (defaults beta1 0.9, beta2 0.999, epsilon the backend's) followed by the proximal step on the attached magnitudes. */
  constructor(
    o: ProximalOptions & { learningRate: number; beta1?: number; beta2?: number; epsilon?: number },
  ) {
    super(o);
    this.beta1 = o.beta1 ?? 0.9;
    this.beta2 = o.beta2 ?? 0.999;
    this.epsilon = o.epsilon ?? tf.backend().epsilon();
    if (!(this.epsilon > 0) || !Number.isFinite(this.epsilon))
      throw new Error(`epsilon must be a finite number > 0, got ${describe(this.epsilon)}`);
    for (const [k, b] of [
      ['beta1', this.beta1],
      ['beta2', this.beta2],
    ] as const) {
      if (typeof b !== 'number' || !(b >= 0 && b < 1))
        throw new Error(`${k} must be a number in [0, 1), got ${describe(b)}`);
    }
  }

  /** Updates the variables (ordinary Adam step, proximal step on magnitudes, renormalisation of directions). */
  applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    const [acc1, acc2] = this.accumulatedBetas(this.iterations + 1);
    const { beta1, beta2 } = this;
    const scalars = tf.tidy(() => ({
      oneMinusAccBeta1: tf.scalar(1 - acc1),
      oneMinusAccBeta2: tf.scalar(1 - acc2),
      negLr: tf.scalar(-this.learningRate),
    }));
    const beta1T = this.constant(beta1);
    const beta2T = this.constant(beta2);
    const oneMinusBeta1 = this.constant(1 - beta1);
    const oneMinusBeta2 = this.constant(1 - beta2);
    const epsilonT = this.constant(this.epsilon);
    const s = scalars;
    // Freed also when the step is refused (an unknown variable, lambda with nothing attached).
    try {
      this.step(variableGradients, (name, i, gradient, value) => {
        const m = this.firstMoments.get(name, i, value);
        const v = this.secondMoments.get(name, i, value);
        const newM = tf.add(tf.mul(m, beta1T), tf.mul(gradient, oneMinusBeta1));
        const newV = tf.add(tf.mul(v, beta2T), tf.mul(tf.square(gradient), oneMinusBeta2));
        m.assign(newM);
        v.assign(newV);
        const mhat = tf.div(newM, s.oneMinusAccBeta1);
        const denom = tf.add(tf.sqrt(tf.div(newV, s.oneMinusAccBeta2)), epsilonT);
        const thr = this.thresholdOf(name);
        if (thr == null) {
          value.assign(tf.add(tf.mul(tf.div(mhat, denom), s.negLr), value));
        } else {
          value.assign(clampMagnitude(tf.add(tf.mul(tf.div(tf.add(mhat, thr), denom), s.negLr), value)));
        }
      });
    } finally {
      tf.dispose(scalars);
    }
  }

  /**
   * `beta1^t` and `beta2^t` as tf.train.adam computes them (a float32 product
   * updated once per step), so both optimisers agree to the last bit.
   */
  private accumulatedBetas(t: number): [number, number] {
    if (this.accBetas.t !== t) {
      const b1 = Math.fround(this.beta1);
      const b2 = Math.fround(this.beta2);
      let a1 = b1;
      let a2 = b2;
      for (let i = 1; i < t; i++) {
        a1 = Math.fround(a1 * b1);
        a2 = Math.fround(a2 * b2);
      }
      this.accBetas = { t, a1, a2 };
    }
    const { a1, a2 } = this.accBetas;
    this.accBetas = {
      t: t + 1,
      a1: Math.fround(a1 * Math.fround(this.beta1)),
      a2: Math.fround(a2 * Math.fround(this.beta2)),
    };
    return [a1, a2];
  }

  /**
   * Iteration count, then all first moments, then all second moments (tfjs
   * order). The moments are the live state; `iter` is a new scalar on every
   * call, the caller's to dispose (as with tfjs optimisers).
   */
  override async getWeights(): Promise<NamedTensor[]> {
    return [await this.saveIterations(), ...this.firstMoments.weights(), ...this.secondMoments.weights()];
  }

  /** Restores what `getWeights` returned. */
  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    // Split in halves, an odd count would read a first moment as a second: refused, nothing changed.
    const slots = (weightValues ?? []).slice(1);
    if (!Array.isArray(weightValues) || weightValues.length === 0 || slots.length % 2 !== 0)
      throw new Error(
        `ProximalAdam.setWeights: expected the iteration count, then first and second moments in equal numbers ` +
          `(what getWeights() gives), got ${Array.isArray(weightValues) ? `${weightValues.length} tensor${weightValues.length === 1 ? '' : 's'}` : describe(weightValues)}` +
          (slots.length ? `: ${weightValues.map((w) => w.name).join(', ')}` : ''),
      );
    checkLive('ProximalAdam', weightValues);
    const rest = await this.extractIterations(weightValues);
    const n = rest.length / 2;
    // Both halves are made before either is installed: a refused second half left the first
    // moments replaced (and the ones passed in, the live slots of getWeights(), disposed).
    const first = SlotTable.slotsOf(rest.slice(0, n));
    let second: Slot[];
    try {
      second = SlotTable.slotsOf(rest.slice(n));
    } catch (e) {
      for (const s of first) s.variable.dispose();
      throw e;
    }
    this.firstMoments.restore(first);
    this.secondMoments.restore(second);
  }

  /** As {@link ProximalSGD.getConfig}: `new ProximalAdam({ ...opt.getConfig(), magnitudes })` builds the same optimiser. */
  getConfig(): tf.serialization.ConfigDict & ProximalAdamConfig {
    const config: ProximalAdamConfig = {
      ...this.baseConfig(),
      beta1: this.beta1,
      beta2: this.beta2,
      epsilon: this.epsilon,
    };
    return config as unknown as tf.serialization.ConfigDict & ProximalAdamConfig;
  }

  /** As {@link ProximalSGD.fromConfig}. */
  static override fromConfig<T extends tf.serialization.Serializable>(
    cls: tf.serialization.SerializableConstructor<T>,
    config: tf.serialization.ConfigDict,
  ): T {
    return new cls({
      ...baseOptions('ProximalAdam', config),
      beta1: config['beta1'] as number,
      beta2: config['beta2'] as number,
      epsilon: config['epsilon'] as number,
    });
  }

  /** Frees the moment estimates. */
  override dispose(): void {
    super.dispose();
    this.firstMoments.dispose();
    this.secondMoments.dispose();
  }
}

tf.serialization.registerClass(ProximalSGD);
tf.serialization.registerClass(ProximalAdam);
