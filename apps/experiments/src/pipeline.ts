// One experiment run: baseline training -> decompose -> proximal training ->
// surgery.prune -> fine-tuning with the kernel mask -> evaluation -> export.
// A custom loop (optimizer.minimize over datasets.batches) rather than
// model.fit: it lets a checkpoint hold the exact position inside an epoch
// (phase, epoch, step, loss accumulators, optimiser slots), so that --resume
// reproduces an uninterrupted run bit for bit on the same backend.
import {
  cpSync,
  existsSync,
  lstatSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { batches } from '@normprune/datasets';
import { decompose, fold, magnitudes, NonFiniteWeightError } from '@normprune/layers';
import { ProximalAdam, ProximalSGD } from '@normprune/prox';
import { DisconnectedModelError, exportModel, kernelMask, prune } from '@normprune/surgery';
import { fileSystem, initBackend, type BackendInfo, type BackendName } from '@normprune/runtime';
import {
  decomposedLayers,
  isReduced,
  parseConfig,
  type Budget,
  type DistillSpec,
  type ExperimentConfig,
} from './config.js';
import { dataLocation, jpegCifarNote, loadRunData } from './data.js';
import { countModel, errorRate, LATENCY_RUNS, latencyMs, pairedCounts, type ModelCount } from './measure.js';
import { compressedError, pairedTest, type PairedTest } from './paired.js';
import { cpuLoad, loadWarning, type CpuLoad } from './load.js';
import { buildModel, loadModelDir, pruneMagnitudes } from './model.js';
import { Progress } from './progress.js';
import { StopSignals } from './signals.js';
import {
  ensureWritableDir,
  LOCK_FILE,
  TAKEOVER_FILE,
  lockDir,
  makeDirs,
  ourLeftovers,
  parseJsonFile,
  recoverDir,
  removeDir,
  shapeProblem,
  type Shape,
  writeDirAtomic,
  writeFileAtomic,
  writeFileNamed,
  writeJsonAtomic,
  overwrittenEntries,
} from './fsutil.js';
import { MODEL_STATS_SHAPE, targetMet, writeReport } from './report.js';
import { firstNames } from './format.js';
import { readSweepFile, sweepFile, SweepFileError, type SweepFile } from './sweep-file.js';
import { firstCostWeightingName } from './cost-weighting.js';
import {
  commandFolder,
  commandFor,
  commandIn,
  isSweepCommand,
  missingConfigFile,
  ranIn,
} from './command-line.js';

/** The training phases, in order. */
export type Phase = 'baseline' | 'proximal' | 'finetune';
const PHASES: Phase[] = ['baseline', 'proximal', 'finetune'];

/** How to run one experiment. */
export interface RunOptions {
  config: ExperimentConfig;
  budgetName: string;
  budget: Budget;
  seed: number;
  out: string;
  backend?: BackendName;
  /** wasm threads (see `initBackend`); results are deterministic per seed, backend and thread count. */
  threads?: number;
  /**
   * Install @normprune/runtime's `releaseSavedTensorsDuringBackprop` (lower peak memory in
   * training, the same bits) for the rest of the process. Off by default.
   */
  releaseSavedTensorsDuringBackprop?: boolean;
  dataDir?: string;
  offline?: boolean;
  resume?: boolean;
  /** Behave as if Ctrl-C arrived after this many optimiser steps (tests). */
  stopAfterSteps?: number;
  /** Reuse the trained baseline of another run of the same config and seed (sweeps). */
  baselineFrom?: string;
  /** Keep the trained baseline in RUN_DIR/.work/baseline (sweeps reuse it). */
  keepBaseline?: boolean;
  /**
   * Replace what RUN_DIR holds. Without it a run only replaces a run of the
   * same config, budget and seed (which it repeats) and refuses anything else.
   */
  force?: boolean;
  /** Command line recorded in config.json and the report. */
  command?: string;
  /**
   * The directory `command` ran in, which its relative paths are relative to: recorded in
   * config.json beside it (`cwd`; default the current directory), so that the command can be
   * printed for another directory (`report` of the unfinished run, from elsewhere).
   */
  cwd?: string;
  /**
   * The command line that continues this run with --resume, printed when a stop signal
   * quits it (default: "the same command with --resume").
   */
  continueWith?: string;
  /**
   * Where an earlier normprune put this command's run by default (--out not given): with --resume
   * and nothing to resume in `out`, an interrupted run of this config, budget and seed there is
   * named in the error, with the --out that continues it.
   */
  formerOut?: string;
  /**
   * Called when a stop signal quits the process during the run (before or after training, or a
   * second signal), after the run's own clean-up: a sweep releases its folder's lock with it,
   * which the exit would otherwise leave behind.
   */
  onQuit?: () => void;
  log?: (line: string) => void;
  /** Progress stream (default process.stderr). */
  stream?: NodeJS.WriteStream;
}

/** Stats of a model at one point of the run. */
export interface ModelStats {
  params: number;
  nonzeros: number;
  macs: number;
  validationError: number;
  testError: number;
  layers: ModelCount['layers'];
  latencyMs?: { batch1: number; batch256: number };
}

/** The groups of one decomposed layer: all of them, and those left live. */
export interface GroupCount {
  layer: string;
  granularity: string;
  groups: number;
  /**
   * Groups left live after the prune step (magnitude above `prune.threshold`, and inside
   * `prune.keep` / `prune.keepFilters`): those surgery keeps. Without a prune rule, the groups
   * proximal training left live.
   */
  live: number;
  /**
   * Groups with a magnitude > 0 at the end of proximal training, before the config's prune rule
   * cut any (absent in results written before normprune recorded it).
   */
  liveAfterProximal?: number;
}

/**
 * A config's prune rule that cuts groups after proximal training (results.json `pruneRule`):
 * its `prune` block when it sets a threshold above 0, `keep` or `keepFilters`.
 */
export interface PruneRule {
  threshold: number;
  keep?: Record<string, number>;
  keepFilters?: Record<string, number>;
}

/** The config's prune rule when it cuts anything, else undefined. */
export function pruneRuleOf(prune: ExperimentConfig['prune']): PruneRule | undefined {
  const some = (r: Record<string, number> | undefined) => r !== undefined && Object.keys(r).length > 0;
  if (!(prune.threshold > 0 || some(prune.keep) || some(prune.keepFilters))) return undefined;
  return {
    threshold: prune.threshold,
    ...(some(prune.keep) ? { keep: prune.keep } : {}),
    ...(some(prune.keepFilters) ? { keepFilters: prune.keepFilters } : {}),
  };
}

/** What results.json holds. */
export interface RunResults {
  experiment: string;
  description: string;
  /** The config and budget, seed aside ({@link configId}); absent in runs of older versions. */
  configId?: string;
  command?: string;
  seed: number;
  budget: { name: string; spec: Budget; reduced: boolean; note?: string };
  backend: { name: string; tfBackend: string; threads: number; reason: string };
  dataset: {
    name: string;
    train: number;
    validation: number;
    test: number;
    /** The path the data set was read from (absent in runs of older versions). */
    source?: string;
    note?: string;
    /** Per-channel statistics of the training images, when the config standardises: the model's input scaling. */
    stats?: { mean: number[]; std: number[] };
  };
  baseline: ModelStats;
  prunedBeforeFinetune: { validationError: number; testError: number };
  compressed: ModelStats;
  /**
   * How the two latencies were measured: `paired`, both models back to back at the end of the
   * run; `separate` (and absent, in results written before normprune measured pairs), each
   * right after its own training, under whatever load there was then.
   */
  latencyMethod?: 'paired' | 'separate';
  /** The machine's load right after the latencies were measured (absent in older results). */
  latencyLoad?: CpuLoad;
  /**
   * Timed rounds behind the latency medians, present only when the time budget
   * (`LATENCY_BUDGET`, for big models) stopped a batch size short of `LATENCY_RUNS`.
   */
  latencyCalls?: { batch1: number; batch256: number };
  /**
   * The compressed model against the baseline, sample by sample on the test set (absent in
   * results written before normprune kept the baseline model to the end of a run).
   */
  pairedTest?: PairedTest;
  groups: GroupCount[];
  /**
   * The config's prune rule, present when it cut groups after proximal training (a threshold
   * above 0, `keep` or `keepFilters`): `groups[].live` counts what it left, `liveAfterProximal`
   * what proximal training left.
   */
  pruneRule?: PruneRule;
  compressionPct: number;
  macsReductionPct: number;
  errorDeltaPp: number;
  thesis?: ExperimentConfig['thesis'];
  target?: ExperimentConfig['target'] & { met: boolean };
  exported: { dir: string; bytes: number; files: string[] };
  timings: { baselineSec: number; proximalSec: number; finetuneSec: number; totalSec: number };
  createdAt: string;
}

/** Ctrl-C (or an injected stop) interrupted training; a checkpoint was written. */
export class Interrupted extends Error {
  override name = 'Interrupted';
  constructor(public readonly checkpoint: string) {
    super(`interrupted; checkpoint written to ${checkpoint}`);
  }
}

interface EpochAcc {
  lossSum: number;
  samples: number;
  steps: number;
}

interface RunState {
  version: 1;
  configHash: string;
  seed: number;
  phase: Phase | 'done';
  epoch: number;
  step: number;
  globalStep: number;
  acc: EpochAcc;
  metricsCount: number;
  baseline?: ModelStats;
  groups?: GroupCount[];
  prunedBeforeFinetune?: { validationError: number; testError: number };
  elapsed: Record<Phase, number>;
  /** The backend the run began on (absent in checkpoints of older versions). */
  backend?: string;
}

/**
 * Throws when `--backend`, or `NORMPRUNE_BACKEND` (which overrides it), asked for a backend that
 * did not start: `initBackend` treats the choice as a preference and falls back, a command line
 * must not.
 */
export function checkRequestedBackend(requested: BackendName | undefined, info: BackendInfo): void {
  const env = process.env.NORMPRUNE_BACKEND;
  const fromEnv = env !== undefined && env !== '' ? (env as BackendName) : undefined;
  const wanted = fromEnv ?? requested;
  if (wanted === undefined || info.backend === wanted) return;
  const asked = fromEnv
    ? `NORMPRUNE_BACKEND=${fromEnv}${requested !== undefined && requested !== fromEnv ? ` (which overrides --backend ${requested})` : ''}`
    : `--backend ${requested}`;
  const drop = fromEnv ? 'unset NORMPRUNE_BACKEND' : 'drop --backend';
  throw new Error(
    `${asked}: not available, ${info.backend} started instead (${info.reason}); ` +
      (wanted === 'node'
        ? `install @tensorflow/tfjs-node, or ${drop} to use the fastest that loads`
        : `${drop} to use the fastest that loads`),
  );
}

/**
 * A stable hash of what determines the trained baseline (sweep points share
 * it). `cfg` has the budget applied (epochs, width, batch size, validation
 * split), so of the budget only the subsets it does not carry count: a later
 * phase's epochs or the budget's note do not change the baseline.
 */
export function baselineHash(cfg: ExperimentConfig, budget: Budget, seed: number): string {
  return createHash('sha256')
    .update(JSON.stringify(baselineKey(cfg, budget, seed)))
    .digest('hex')
    .slice(0, 16);
}

/** What `baselineHash` hashes: kept beside a kept baseline, so that a mismatch can name the fields. */
function baselineKey(cfg: ExperimentConfig, budget: Budget, seed: number): Record<string, unknown> {
  return {
    dataset: cfg.dataset,
    model: cfg.model,
    batchSize: cfg.training.batchSize,
    baseline: cfg.training.baseline,
    trainSubset: budget.trainSubset,
    testSubset: budget.testSubset,
    seed,
  };
}

/**
 * A value of {@link differences} as a message shows it: its JSON, and an array too long to read
 * there (a model's layers, hundreds of characters that hid the rest of the message) by its length.
 */
function shownValue(v: unknown): string {
  if (v === undefined) return 'unset';
  const json = JSON.stringify(v);
  if (json.length <= 80) return json;
  return Array.isArray(v) ? `${v.length} entries` : `${json.slice(0, 77)}...`;
}

/**
 * The paths (`baseline.epochs`, `seed`, `model.layers[1].units`) where two JSON values differ,
 * with both values; arrays of one length are compared entry by entry.
 */
function differences(there: unknown, here: unknown, path = ''): string[] {
  const isObj = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObj(there) && isObj(here)) {
    const keys = [...new Set([...Object.keys(there), ...Object.keys(here)])];
    return keys.flatMap((k) => differences(there[k], here[k], path ? `${path}.${k}` : k));
  }
  if (Array.isArray(there) && Array.isArray(here) && there.length === here.length)
    return there.flatMap((v, i) => differences(v, here[i], `${path}[${i}]`));
  const show = shownValue;
  return JSON.stringify(there) === JSON.stringify(here)
    ? []
    : [`${path}: ${show(there)} there, ${show(here)} here`];
}

/**
 * {@link differences} for a message: the first six, and how many more. The config's name and
 * description are left out beside other differences: they change no result, and a description
 * records what a config file changed ("[changed by my.json: ...]"), hundreds of characters
 * that repeat the differences listed and hid them.
 */
function shownDifferences(there: unknown, here: unknown): string {
  const all = differences(there, here);
  const text = (d: string) => /^config\.(?:name|description):/.test(d);
  const diff = all.some((d) => !text(d)) ? all.filter((d) => !text(d)) : all;
  return diff.slice(0, 6).join('; ') + (diff.length > 6 ? `; and ${diff.length - 6} more` : '');
}

/** How the run recorded in a config.json differs from `run`, for a message ({@link shownDifferences}). */
function runDifferences(
  recorded: RunConfigFile,
  run: { config: ExperimentConfig; budget: Budget; seed: number },
): string {
  return shownDifferences(
    { config: recorded.config, budget: recorded.budget?.spec, seed: recorded.seed },
    { config: run.config, budget: run.budget, seed: run.seed },
  );
}

/**
 * What a run's results depend on apart from its seed: the config (without its
 * name and description, which change no result) and the budget (without its
 * note). Runs of one configId and several seeds are seeds of one experiment;
 * the across-seeds table groups by it.
 */
export function configId(cfg: ExperimentConfig, budget: Budget): string {
  const { name: _name, description: _description, ...rest } = hashedConfig(cfg);
  const { note: _note, ...spec } = budget;
  return createHash('sha256')
    .update(JSON.stringify({ cfg: rest, budget: spec }))
    .digest('hex')
    .slice(0, 12);
}

/**
 * A stable hash of everything that determines a run's results: the config without its name and
 * description (which change no result, and which a renamed config file changes: its name and the
 * "[changed by my.json: ...]" of its description follow the file's name), the budget and the seed.
 * Checkpoints and sweep files record it.
 */
export function configHash(cfg: ExperimentConfig, budget: Budget, seed: number): string {
  const { name: _name, description: _description, ...rest } = hashedConfig(cfg);
  return hash16({ cfg: rest, budget, seed });
}

/**
 * The hashes a checkpoint or sweep file may record for this config, budget and seed: the
 * {@link configHash}, then the hash normprune recorded before 2026-12-02, which also hashed the
 * config's name and description (checkpoints and sweeps written then are still continued).
 */
export function configHashes(cfg: ExperimentConfig, budget: Budget, seed: number): [string, string] {
  return [configHash(cfg, budget, seed), hash16({ cfg: hashedConfig(cfg), budget, seed })];
}

/**
 * The {@link configHash} of the run whose checkpoint is in `out`: as its state.json records it, or,
 * where an earlier version recorded the hash that took in the config's name and description, that
 * of the run config.json records (a config file renamed since changes neither the run nor this).
 */
function checkpointHash(state: RunState, out: string): string {
  const run = runIn(out);
  if (run && configHashes(run.config, run.budget.spec, run.seed)[1] === state.configHash) return run.hash;
  return state.configHash;
}

function hash16(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 16);
}

/** `cfg` as {@link configHash} and {@link configId} hash it: see {@link firstCostWeightingName}. */
function hashedConfig(cfg: ExperimentConfig): ExperimentConfig {
  const proximal = cfg.training?.proximal;
  const sweep = cfg.sweep?.costWeighting;
  const renamed = (c: string) => firstCostWeightingName(c) !== c;
  if (!(proximal && renamed(proximal.costWeighting)) && !sweep?.some(renamed)) return cfg;
  const out = structuredClone(cfg) as any;
  out.training.proximal.costWeighting = firstCostWeightingName(proximal.costWeighting);
  if (sweep) out.sweep.costWeighting = sweep.map(firstCostWeightingName);
  return out;
}

/** An error rate for the log; a run with `validation: 0` has none. */
function errorText(rate: number): string {
  return Number.isFinite(rate) ? `${(rate * 100).toFixed(2)}%` : 'n/a (no validation split)';
}

function epochSeed(seed: number, phase: Phase, epoch: number): number {
  return (Math.imul(seed + 1, 1000003) + PHASES.indexOf(phase) * 7919 + epoch * 104729) >>> 0;
}

/** The optimiser of a plain phase (baseline, fine-tuning) as its config section gives it. */
export function makeOptimizer(spec: ExperimentConfig['training']['baseline']): tf.Optimizer {
  if (spec.optimizer === 'adam') return tf.train.adam(spec.learningRate);
  return spec.momentum > 0
    ? tf.train.momentum(spec.learningRate, spec.momentum)
    : tf.train.sgd(spec.learningRate);
}

/** The proximal phase's optimiser for the decomposed model `m`, as `cfg` gives it. */
export function makeProximalOptimizer(cfg: ExperimentConfig, m: tfl.LayersModel): tf.Optimizer {
  const spec = cfg.training.proximal;
  const common = {
    lambda: spec.lambda,
    magnitudes: magnitudes(m),
    costWeighting: spec.costWeighting,
    layerMultipliers: spec.layerMultipliers,
    learningRate: spec.learningRate,
  };
  return spec.optimizer === 'adam'
    ? new ProximalAdam(common)
    : new ProximalSGD({ ...common, momentum: spec.momentum });
}

/** `plain` with the layers `cfg` decomposes written as magnitude times direction. */
export function decomposeFor(cfg: ExperimentConfig, plain: tfl.LayersModel): tfl.LayersModel {
  const decomposed = new Set(decomposedLayers(cfg));
  return decompose(plain, {
    granularity: {
      dense: cfg.decompose.dense ?? undefined,
      conv2d: cfg.decompose.conv2d ?? undefined,
      depthwiseConv2d: cfg.decompose.depthwiseConv2d ?? undefined,
    },
    include: (layer) => decomposed.has(layer.name),
  });
}

/**
 * One training step: `opt` minimises the training loss of `m` (in training mode) on a batch,
 * updating `vars`, with the distillation term when `distill` is given. Returns the loss, which
 * the caller disposes.
 */
export function trainingStep(
  m: tfl.LayersModel,
  opt: tf.Optimizer,
  vars: tf.Variable[],
  batch: { xs: tf.Tensor; ys: tf.Tensor },
  distill?: { targets: tf.Tensor; spec: DistillSpec },
): tf.Scalar {
  return opt.minimize(
    () => trainingLoss(m.apply(batch.xs, { training: true }) as tf.Tensor, batch.ys, distill),
    true,
    vars,
  ) as tf.Scalar;
}

// tf.train.momentum's dispose() forgets the learning-rate scalar its SGD
// parent keeps (tfjs-core 4.22), leaking one tensor per optimiser.
export function disposeOptimizer(opt: tf.Optimizer): void {
  opt.dispose();
  const c = (opt as any).c as tf.Tensor | undefined;
  if (c instanceof tf.Tensor && !c.isDisposed) c.dispose();
}

function setLearningRate(opt: tf.Optimizer, lr: number): void {
  const o = opt as any;
  if (typeof o.setLearningRate === 'function') o.setLearningRate(lr);
  else o.learningRate = lr;
}

/** The variables behind a model's trainable weights, for `optimizer.minimize`. */
export function trainableVariables(model: tfl.LayersModel): tf.Variable[] {
  return model.trainableWeights.map((w) => (w as any).read() as tf.Variable);
}

/** A phase's learning rate in epoch `epoch` (from 0; `lrDecay` applies per epoch). */
function learningRateAt(spec: ExperimentConfig['training']['baseline'], epoch: number): number {
  return spec.learningRate * spec.lrDecay ** epoch;
}

/** The learning rate of a phase's last epoch. */
function lastLearningRate(spec: ExperimentConfig['training']['baseline']): number {
  return learningRateAt(spec, Math.max(0, spec.epochs - 1));
}

/** Where a resumed run goes on, for the log; a checkpoint follows an epoch or a phase's end. */
export function resumePoint(
  state: Pick<RunState, 'phase' | 'epoch' | 'step'>,
  cfg: ExperimentConfig,
): string {
  if (state.phase === 'done') return 'resuming after training: evaluation and export';
  const epochs = cfg.training[state.phase].epochs;
  if (state.epoch >= epochs)
    return `resuming after the ${state.phase} phase's last epoch (${epochs}/${epochs})`;
  return `resuming ${state.phase} at epoch ${state.epoch + 1}/${epochs}, step ${state.step}`;
}

async function saveOptimizer(opt: tf.Optimizer, dir: string): Promise<void> {
  const named = await opt.getWeights();
  const manifest: { name: string; shape: number[]; dtype: string; offset: number; length: number }[] = [];
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const { name, tensor } of named) {
    const data = await tensor.data();
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    manifest.push({ name, shape: tensor.shape, dtype: tensor.dtype, offset, length: buf.length });
    chunks.push(Buffer.from(buf));
    offset += buf.length;
  }
  // tf.train.adam recomputes beta^t with tf.pow on setWeights, which rounds
  // differently from the running product it keeps: save the exact values.
  const extras: Record<string, number> = {};
  for (const k of ['accBeta1', 'accBeta2']) {
    const v = (opt as any)[k];
    if (v instanceof tf.Tensor) extras[k] = (await v.data())[0];
  }
  writeFileNamed(join(dir, 'optimizer-extras.json'), JSON.stringify(extras));
  // getWeights returns the live slot variables plus a fresh iteration scalar: free only the latter.
  for (const { tensor } of named) if (!(tensor instanceof tf.Variable)) tensor.dispose();
  writeFileNamed(join(dir, 'optimizer.bin'), Buffer.concat(chunks));
  writeFileNamed(join(dir, 'optimizer.json'), JSON.stringify(manifest));
}

/** What starts a run over whose saved state cannot be read back (one not resumed: --force alone). */
const START_OVER_FORCE = 'start the run over: the same command with --force';
const START_OVER = `${START_OVER_FORCE} instead of --resume`;

/**
 * The error of a run whose saved state (its checkpoint, its metrics.jsonl, its trained baseline)
 * cannot be read back: what is wrong (`problem`), then what to do, by default to start the run
 * over. A sweep gives its own advice for a point: remove the point's `checkpoint` and continue.
 */
export class StartOver extends Error {
  override name = 'StartOver';
  /**
   * `putBack`: a cheaper fix said first (put back a whole copy of a file); `resumed: false` for a
   * run not started with --resume, which starts over with --force alone.
   */
  constructor(
    public readonly problem: string,
    public readonly checkpoint: string,
    public readonly options: { putBack?: string; resumed?: boolean } = {},
  ) {
    super(
      `${problem}; ${options.putBack ? `${options.putBack}, or ` : ''}` +
        (options.resumed === false
          ? START_OVER_FORCE
          : `${START_OVER} (or remove ${checkpoint} and run it without --resume)`),
    );
  }
}

function damagedCheckpoint(ckptDir: string, why: string): Error {
  return new StartOver(`--resume: the checkpoint in ${ckptDir} is damaged: ${why}`, ckptDir);
}

function rethrowDamaged(ckptDir: string): (e: unknown) => never {
  return (e) => {
    throw damagedCheckpoint(ckptDir, (e as Error).message);
  };
}

/** A checkpoint file's JSON; a file that cannot be read or parsed throws, naming it (relative to the checkpoint). */
function readCheckpointJson(dir: string, name: string): unknown {
  return parseJsonFile(join(dir, name), undefined, name);
}

const STATE_PHASES = ['baseline', 'proximal', 'finetune', 'done'];
const count: Shape = (v) =>
  Number.isSafeInteger(v) && (v as number) >= 0 ? undefined : 'a non-negative integer';

/** What a checkpoint's state.json must hold to be resumed from. */
const STATE_SHAPE: Shape = {
  configHash: 'string',
  phase: (v) => (STATE_PHASES.includes(v as string) ? undefined : `one of ${STATE_PHASES.join(', ')}`),
  seed: count,
  epoch: count,
  step: count,
  globalStep: count,
  metricsCount: count,
  acc: {
    // A NaN loss (a diverging epoch caught by Ctrl-C) is written as null: not damage.
    lossSum: (v) => (v === null || typeof v === 'number' ? undefined : 'a number'),
    samples: 'number',
    steps: 'number',
  },
  elapsed: { baseline: 'number', proximal: 'number', finetune: 'number' },
};

/** The state.json of the checkpoint in `ckptDir`, checked: a damaged one says what to do. */
function readCheckpointState(ckptDir: string): RunState {
  let state: unknown;
  try {
    state = readCheckpointJson(ckptDir, 'state.json');
  } catch (e) {
    throw damagedCheckpoint(ckptDir, (e as Error).message);
  }
  const why = shapeProblem(state, STATE_SHAPE);
  if (why) throw damagedCheckpoint(ckptDir, `state.json: ${why}`);
  return state as RunState;
}

interface OptimizerSlot {
  name: string;
  shape: number[];
  dtype: string;
  offset: number;
  length: number;
}

async function loadOptimizer(opt: tf.Optimizer, dir: string): Promise<void> {
  const f = join(dir, 'optimizer.json');
  if (!existsSync(f)) return;
  const manifest = readCheckpointJson(dir, 'optimizer.json') as OptimizerSlot[];
  if (!Array.isArray(manifest)) throw new Error('optimizer.json is not a JSON array');
  const bin = readFileSync(join(dir, 'optimizer.bin'));
  // Each slot must lie inside optimizer.bin and hold exactly its shape's values: a
  // negative offset would read from the end, a short slot would give a tfjs shape error.
  manifest.forEach((m, i) => {
    const ok =
      m !== null &&
      typeof m === 'object' &&
      typeof m.name === 'string' &&
      Array.isArray(m.shape) &&
      m.shape.every((d) => Number.isSafeInteger(d) && d >= 0) &&
      (m.dtype === 'float32' || m.dtype === 'int32') &&
      Number.isSafeInteger(m.offset) &&
      m.offset >= 0 &&
      m.length === 4 * m.shape.reduce((a, b) => a * b, 1);
    if (!ok) throw new Error(`optimizer.json entry ${i} is not a slot {name, shape, dtype, offset, length}`);
    if (m.offset + m.length > bin.length)
      throw new Error(
        `optimizer.bin has ${bin.length} bytes, but optimizer.json entry ${i} (${m.name}) needs bytes up to ${m.offset + m.length}`,
      );
  });
  const named = manifest.map((m) => {
    const bytes = bin.subarray(m.offset, m.offset + m.length);
    const copy = new Uint8Array(bytes); // aligned copy
    const values = m.dtype === 'int32' ? new Int32Array(copy.buffer) : new Float32Array(copy.buffer);
    return { name: m.name, tensor: tf.tensor(values, m.shape, m.dtype as tf.DataType) };
  });
  await opt.setWeights(named);
  const extrasFile = join(dir, 'optimizer-extras.json');
  if (existsSync(extrasFile)) {
    const extras = readCheckpointJson(dir, 'optimizer-extras.json');
    if (extras === null || typeof extras !== 'object' || Array.isArray(extras))
      throw new Error('optimizer-extras.json is not a JSON object');
    for (const [k, value] of Object.entries(extras as Record<string, unknown>)) {
      if (typeof value !== 'number') throw new Error(`optimizer-extras.json: "${k}" is not a number`);
      const v = (opt as any)[k];
      if (v instanceof tf.Variable) tf.tidy(() => v.assign(tf.scalar(value)));
    }
  }
  // Optimisers copy what they keep into variables (shared, ref-counted data).
  for (const { tensor } of named) tensor.dispose();
}

/**
 * Cross-entropy on the labels, optionally mixed with the distillation term
 * T^2 * KL(softmax(teacher / T) || softmax(student / T)). The T^2 keeps the
 * soft term's gradient on the same scale as the hard one's for any T.
 */
export function trainingLoss(
  logits: tf.Tensor,
  labels: tf.Tensor,
  soft?: { targets: tf.Tensor; spec: DistillSpec },
): tf.Scalar {
  const ce = tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
  if (!soft) return ce;
  const { weight: w, temperature: t } = soft.spec;
  const p = soft.targets;
  const kl = tf.mean(
    tf.sum(tf.mul(p, tf.sub(tf.log(tf.add(p, 1e-12)), tf.logSoftmax(tf.div(logits, t)))), -1),
  );
  return tf.add(tf.mul(ce, 1 - w), tf.mul(kl, w * t * t)) as tf.Scalar;
}

function countGroups(model: tfl.LayersModel): GroupCount[] {
  return magnitudes(model).map((m) => {
    const g = m.magnitude.dataSync();
    let live = 0;
    for (let i = 0; i < g.length; i++) if (Math.abs(g[i]) > 0) live++;
    return { layer: m.layerName, granularity: m.granularity, groups: m.groups, live };
  });
}

/**
 * Surgery's refusal of a model whose output no longer depends on its input, said in the config's
 * terms: which decomposed layers lost every group, to the penalty (training.proximal.lambda) or to
 * the prune rule (prune.threshold), and the field to change. Surgery's own advice names the
 * package's API (`layerMultipliers` of @normprune/prox), which a run sets in its config.
 */
export function disconnectedError(
  e: DisconnectedModelError,
  cfg: ExperimentConfig,
  groups: GroupCount[],
): Error {
  const layers = (gs: GroupCount[]) =>
    `decomposed layer${gs.length > 1 ? 's' : ''} ${gs.map((g) => `'${g.layer}'`).join(', ')}`;
  const afterProximal = (g: GroupCount) => g.liveAfterProximal ?? g.live;
  const byPenalty = groups.filter((g) => afterProximal(g) === 0);
  const byRule = groups.filter((g) => g.live === 0 && afterProximal(g) > 0);
  const { lambda } = cfg.training.proximal;
  const lowerLambda = `lower training.proximal.lambda (this run's: ${lambda}; in a sweep, --lambda)`;
  const advice: string[] = [];
  if (byPenalty.length)
    advice.push(
      `proximal training at lambda ${lambda} left no live group in ${layers(byPenalty)}: ${lowerLambda}, ` +
        `or exempt a layer from the penalty with training.proximal.layerMultipliers (e.g. {"${byPenalty[0].layer}": 0})`,
    );
  if (byRule.length)
    advice.push(
      `prune.threshold ${cfg.prune.threshold} left no live group in ${layers(byRule)} ` +
        `(${byRule.map(afterProximal).join(', ')} live after proximal training): lower prune.threshold`,
    );
  if (!advice.length)
    advice.push(`the groups left live connect no path from the input to the output: ${lowerLambda}`);
  const what =
    e.code === 'dead' ? `every unit of layer '${e.layer}' is dead` : `no unit of layer '${e.layer}' is used`;
  const message = `proximal: surgery cannot prune the trained model: ${what}: ${e.detail}; ${advice.join('; ')}`;
  return new Error(message, { cause: e });
}

/** Kernel weights sitting in dead groups / all weights: the compression visible during proximal training. */
function liveCompression(model: tfl.LayersModel, total: number): number {
  let dead = 0;
  for (const m of magnitudes(model)) {
    const g = m.magnitude.dataSync();
    for (let i = 0; i < g.length; i++) if (g[i] === 0) dead += m.paramsPerGroup;
  }
  return total > 0 ? dead / total : 0;
}

/** RUN_DIR/.work/baseline/baseline.json, written by `--keep-baseline` beside the model. */
interface KeptBaseline {
  baselineHash: string;
  /** What the hash covers (baselines kept before it was recorded have none). */
  baselineKey?: Record<string, unknown>;
  stats: ModelStats;
  metrics: string[];
  seconds: number;
}

/** A line of metrics.jsonl, as a kept baseline carries them. */
const metricsLine: Shape = (v) => {
  try {
    const line = typeof v === 'string' ? JSON.parse(v) : undefined;
    if (line !== null && typeof line === 'object' && !Array.isArray(line)) return undefined;
  } catch {
    // Not JSON: said below.
  }
  return 'a metrics.jsonl line (a JSON object)';
};

/** What a kept baseline's baseline.json must hold to be reused. */
const KEPT_SHAPE: Shape = {
  baselineHash: 'string',
  stats: MODEL_STATS_SHAPE,
  metrics: [metricsLine],
  seconds: 'number',
};

/** What to do about a kept baseline in `runDir` that cannot be reused. */
function keptAgain(runDir: string): string {
  return `train that baseline again with --keep-baseline, or drop --baseline-from ${runDir}`;
}

/**
 * A kept baseline (`RUN_DIR/.work/baseline`) that cannot be read back: what is wrong
 * (`problem`), then what to do. A sweep gives its own advice for the baseline its points share.
 */
export class KeptBaselineDamaged extends Error {
  override name = 'KeptBaselineDamaged';
  constructor(
    runDir: string,
    public readonly problem: string,
    public readonly kept: string,
  ) {
    super(`--baseline-from ${runDir}: ${problem}; ${keptAgain(runDir)}`);
  }
}

function keptBaselineDir(runDir: string): string {
  return join(resolve(runDir), '.work', 'baseline');
}

/**
 * Reads the baseline kept by `--keep-baseline` in another run directory and
 * checks it was trained for this config, budget and seed; throws naming the fix.
 */
function checkKeptBaseline(
  runDir: string,
  cfg: ExperimentConfig,
  budget: Budget,
  seed: number,
): KeptBaseline & { dir: string } {
  const dir = keptBaselineDir(runDir);
  const file = join(dir, 'baseline.json');
  if (!existsSync(file)) {
    if (holdsSweepFiles(resolve(runDir))) throw new Error(sweepBaselineAdvice(runDir));
    throw new Error(
      `--baseline-from ${runDir}: no kept baseline (${file} is missing); ` +
        "train that run with --keep-baseline (a sweep's: in its first point's folder), or drop --baseline-from",
    );
  }
  let kept: KeptBaseline;
  try {
    kept = parseJsonFile<KeptBaseline>(file);
  } catch (e) {
    throw new KeptBaselineDamaged(runDir, (e as Error).message, dir);
  }
  const why = shapeProblem(kept, KEPT_SHAPE);
  if (why) throw new KeptBaselineDamaged(runDir, `the kept baseline is damaged: baseline.json: ${why}`, dir);
  if (kept.baselineHash !== baselineHash(cfg, budget, seed)) {
    const diff = shownDifferences(keptKey(runDir, kept), baselineKey(cfg, budget, seed));
    throw new Error(
      `--baseline-from ${runDir}: trained with another config or seed ` +
        (diff ? `(${diff}); ` : '') +
        'the dataset, model, batch size, baseline settings, training and test subsets and seed must match',
    );
  }
  return { ...kept, dir };
}

/**
 * Refuses a `--baseline-from` folder whose kept baseline a run of `cfg`, `budget` and `seed`
 * could not reuse, with the message such a run gives: a sweep checks it before it makes its
 * folder or plan, as a run does (the baseline a sweep reuses depends on none of its grid's settings).
 */
export function checkBaselineFrom(runDir: string, cfg: ExperimentConfig, budget: Budget, seed: number): void {
  checkKeptBaseline(runDir, cfg, budget, seed);
}

/**
 * `--baseline-from` given a sweep's folder: a sweep keeps its shared baseline (with
 * --keep-baseline) in a point's folder, which is what to give; a sweep run without it removed
 * its baseline when it finished.
 */
function sweepBaselineAdvice(sweepDir: string): string {
  const points = readdirSync(resolve(sweepDir), { withFileTypes: true })
    .filter(
      (d) => d.isDirectory() && existsSync(join(keptBaselineDir(join(sweepDir, d.name)), 'baseline.json')),
    )
    .map((d) => join(sweepDir, d.name));
  return points.length
    ? `--baseline-from ${sweepDir}: a sweep's folder; the baseline it kept is in its point ${points[0]}: ` +
        `give --baseline-from ${points[0]}`
    : `--baseline-from ${sweepDir}: a sweep's folder, and none of its points holds a kept baseline (a sweep ` +
        "keeps its shared baseline only with --keep-baseline, in its first point's folder); run the sweep " +
        'again with --keep-baseline, or drop --baseline-from';
}

/**
 * What a kept baseline was trained with: recorded beside it, or (baselines kept
 * before that) read from its run's config.json; undefined when neither is readable.
 */
function keptKey(runDir: string, kept: KeptBaseline): Record<string, unknown> | undefined {
  if (kept.baselineKey) return kept.baselineKey;
  try {
    const run = JSON.parse(readFileSync(join(resolve(runDir), 'config.json'), 'utf8'));
    const cfg = parseConfig(run.config, 'config.json', { recorded: true });
    return baselineKey(cfg, run.budget?.spec ?? {}, run.seed);
  } catch {
    return undefined;
  }
}

/** The files and folders a run writes into RUN_DIR. */
const RUN_FILES = [
  'config.json',
  'metrics.jsonl',
  'results.json',
  'report.md',
  'report.html',
  'plots',
  'model',
  '.work',
];

/** Where a run stages its model/ export: in .work, not beside the run's files. */
const MODEL_STAGING = (out: string) => ({
  tmp: join(out, '.work', 'model.tmp'),
  old: join(out, '.work', 'model.old'),
});

/** Removes a staged model folder (`dir`) if it holds nothing but what an export writes. */
function removeStagedModel(dir: string): void {
  if (!lstatSync(dir, { throwIfNoEntry: false })?.isDirectory()) return;
  if (readdirSync(dir).every((f) => RUN_FOLDER_FILES.model(f))) rmSync(dir, { recursive: true, force: true });
}

/** RUN_DIR/config.json as a run writes it. */
interface RunConfigFile {
  experiment: string;
  command?: string;
  /**
   * The absolute directory `command` ran in (its relative paths' base); absent in runs of
   * versions that did not record it, whose command is printed as recorded.
   */
  cwd?: string;
  seed: number;
  budget: { name: string; spec: Budget };
  config: ExperimentConfig;
}

/**
 * Whether parsed JSON has the shape of a run's config.json (`config` and `budget` objects, a
 * numeric `seed`): the one test of "a run's config.json, not a file of the user's" for run
 * folders and for the run above a model that `eval` reads.
 */
function isRunConfigFile(j: unknown): j is RunConfigFile {
  return shapeProblem(j, { config: {}, budget: {}, seed: 'number' }) === undefined;
}

/**
 * What a config.json is, read once for every caller that asks "is this a run's?": `run` (JSON of
 * a run's config.json shape, {@link isRunConfigFile}), `foreign` (JSON of another shape: another
 * tool's settings, a config file of the user's), `damaged` (there, but not JSON: a run's cut short
 * by a full disk, or anybody's), or `missing`. Each caller decides what `damaged` means to it.
 */
export type RunConfigRead =
  | { kind: 'run'; run: RunConfigFile }
  | { kind: 'foreign' }
  | { kind: 'damaged'; why: string }
  | { kind: 'missing' };

export function readRunConfigFile(file: string): RunConfigRead {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR'
      ? { kind: 'missing' }
      : { kind: 'damaged', why: (e as Error).message };
  }
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    return { kind: 'damaged', why: (e as Error).message };
  }
  return isRunConfigFile(j) ? { kind: 'run', run: j } : { kind: 'foreign' };
}

/**
 * The run `out` holds (its config.json, and the hash of its config, budget and seed), if any:
 * a config.json that does not read as a run's is no run, whether JSON of another shape (a config
 * file of the user's) or not JSON at all (nothing says it is the run's, so it is kept as the user's).
 */
/**
 * What to do instead of `--resume` on the finished run in `out`: repeat it without --resume, when
 * it is this run; else (another config, budget or seed, which a rerun without --resume refuses
 * too) say what differs and where this run can go.
 */
function finishedAdvice(
  out: string,
  hash: string,
  run: { config: ExperimentConfig; budget: Budget; seed: number },
): string {
  const done = runIn(out);
  if (done === undefined || done.hash === hash) return 'run the command without --resume to repeat it';
  return (
    `it is a run of another config, budget or seed (${runDifferences(done, run)}): ` +
    'run this one without --resume in another --out, or with --force to replace it'
  );
}

/**
 * How the run in `dir` (by its config.json) differs from `run`, when it is a run of another
 * config, budget or seed: what a run into `dir` refuses (and what a sweep's --resume would not
 * reuse); undefined when `dir` holds no run, or one of this config, budget and seed.
 */
export function otherRunIn(
  dir: string,
  run: { config: ExperimentConfig; budget: Budget; seed: number },
): string | undefined {
  const there = runIn(dir);
  if (there === undefined || there.hash === configHash(run.config, run.budget, run.seed)) return undefined;
  return runDifferences(there, run);
}

function runIn(out: string): (RunConfigFile & { hash: string }) | undefined {
  const read = readRunConfigFile(join(out, 'config.json'));
  if (read.kind !== 'run') return undefined;
  try {
    return { ...read.run, hash: configHash(read.run.config, read.run.budget.spec, read.run.seed) };
  } catch {
    return undefined;
  }
}

/**
 * Whether `out/.work` holds the state of a run, by what is in it, not by names alone (a folder of
 * the user's may have a `.work/model` of its own): a checkpoint whose state.json a resume accepts, a
 * kept baseline's baseline.json, a finished run set aside by a rerun (its results.json, or the
 * marker of its restore), or the staging folder of that move holding the run's config.json; each
 * also as a replace killed between its renames left it (`.old`). A staged model export
 * (`model.tmp`, `model.old`) or `baseline-model` is only ever there beside the run's config.json,
 * which says so by itself.
 */
function runStateIn(out: string): boolean {
  const work = join(out, '.work');
  try {
    if (!lstatSync(work, { throwIfNoEntry: false })?.isDirectory()) return false;
  } catch {
    return false; // `out` is a file (a sweep asks of every entry in its folder)
  }
  const checkpoint = (d: string): boolean => {
    try {
      readCheckpointState(join(work, d));
      return true;
    } catch {
      return false;
    }
  };
  const baseline = (d: string): boolean => {
    try {
      return (
        shapeProblem(JSON.parse(readFileSync(join(work, d, 'baseline.json'), 'utf8')), KEPT_SHAPE) ===
        undefined
      );
    } catch {
      return false;
    }
  };
  const replaced = replacedDir(out);
  return (
    checkpoint('checkpoint') ||
    checkpoint('checkpoint.old') ||
    baseline('baseline') ||
    baseline('baseline.old') ||
    holdsReplaced(out) ||
    existsSync(join(replaced, RESTORING)) ||
    readRunConfigFile(join(`${replaced}.staging`, 'config.json')).kind === 'run'
  );
}

/** Whether `file` is JSON that reads as a run's results.json (its experiment, baseline and compressed stats). */
function isRunResultsFile(file: string): boolean {
  try {
    const j: unknown = JSON.parse(readFileSync(file, 'utf8'));
    return shapeProblem(j, { experiment: 'string', baseline: {}, compressed: {} }) === undefined;
  } catch {
    return false;
  }
}

/**
 * Whether `out` holds a run (or what is left of one): a config.json that reads as a run's, or
 * a run's state in .work. Only then are the files named as a run's (config.json, model/,
 * report.md, ...) the run's; otherwise every file there is the user's.
 */
export function holdsRun(out: string): boolean {
  return runIn(out) !== undefined || runStateIn(out);
}

/**
 * Of `entries`, files in `out` (which holds no run) that a run would overwrite: files named as
 * the run's, and in model/ and plots/ the files a run writes there. Those of a sweep that `out`
 * holds (its report and pareto plot) are the sweep's, which a run given --force replaces.
 */
function wouldOverwrite(out: string, entries: readonly string[]): string[] {
  const sweep = holdsSweepFiles(out);
  return overwrittenEntries(out, entries, (e) => {
    if (!RUN_FILES.includes(e) || (sweep && (e === 'report.md' || e === 'report.html'))) return false;
    const owned = RUN_FOLDER_FILES[e];
    return owned ? (f) => owned(f) && !(sweep && f === 'pareto.svg') : true;
  });
}

/** Whether `path` is a folder (not a link to one) with nothing in it. */
function emptyDir(path: string): boolean {
  return !!lstatSync(path, { throwIfNoEntry: false })?.isDirectory() && readdirSync(path).length === 0;
}

/** The config hash of the interrupted run in `out` (its config.json and checkpoint agree on it), if any. */
function interruptedRunIn(out: string): string | undefined {
  const run = runIn(out);
  if (run === undefined) return undefined;
  try {
    const state = readCheckpointState(join(out, '.work', 'checkpoint'));
    return checkpointHash(state, out) === run.hash ? run.hash : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The results of the finished run in `out` when it ran this config, budget
 * and seed (a sweep continued with --resume reuses them), else undefined. A
 * run killed after it wrote results.json but before its report and clean-up
 * still holds its checkpoint: it has not finished (--resume finishes it). A
 * checkpoint a kill left between its renames is put back first (`recoverDir`).
 */
export function finishedRun(
  out: string,
  cfg: ExperimentConfig,
  budget: Budget,
  seed: number,
): RunResults | undefined {
  if (runIn(out)?.hash !== configHash(cfg, budget, seed)) return undefined;
  recoverDir(join(out, '.work', 'checkpoint')); // caught between its renames
  if (existsSync(join(out, '.work', 'checkpoint', 'state.json'))) return undefined;
  try {
    return JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as RunResults;
  } catch {
    return undefined;
  }
}

/**
 * Checks that a new run may write into `out`: it must be empty, hold a run of
 * the same config, budget and seed (which the new run repeats bit for bit), or
 * `force` be given. Returns what removes the earlier run's files, to call once
 * the run can start, so that none outlives it in a mix with the new run's;
 * files a run does not write are never removed.
 */
function claimOutDir(
  out: string,
  run: { config: ExperimentConfig; budget: Budget; seed: number },
  force: boolean,
): () => void {
  const hash = configHash(run.config, run.budget, run.seed);
  const all = existsSync(out) ? readdirSync(out) : [];
  // This run's lock, and temp files of normprune processes killed here, are not the user's.
  const leftovers = ourLeftovers(all);
  const entries = all.filter((e) => e !== LOCK_FILE && e !== TAKEOVER_FILE && !leftovers.includes(e));
  const prev = entries.length ? runIn(out) : undefined;
  // Files named as a run's are the run's only where a run is: elsewhere all are the user's.
  const isRun = prev !== undefined || runStateIn(out);
  // Empty folders named as a run's (a model/ made ready for it) hold nothing to lose.
  const yours = isRun ? [] : entries.filter((e) => !(RUN_FILES.includes(e) && emptyDir(join(out, e))));
  // A finished run whose config.json was cut short (a copy, a full disk) reads as files of the
  // user's: say what is wrong with it instead.
  if (yours.length && existsSync(join(out, 'config.json')) && isRunResultsFile(join(out, 'results.json')))
    throw new Error(
      `${out} holds a finished run whose config.json is damaged (it does not read as a run's config.json): ` +
        'put back a whole copy of it, move the run away, or choose another --out',
    );
  if (yours.length) {
    const clash = wouldOverwrite(out, yours);
    if (clash.length)
      throw new Error(
        `${out} holds files that are not a normprune run, which the run would overwrite (${firstNames(clash)}); ` +
          'move them away or choose another --out (--force never replaces files of yours)',
      );
    if (!force && holdsSweepFiles(out))
      throw new Error(`${out} holds a sweep, not a run; choose another --out, or pass --force to replace it`);
    if (!force)
      throw new Error(
        `${out} holds files that are not a normprune run (${firstNames(yours)}); choose another --out, ` +
          'or pass --force to write the run beside them (they are kept)',
      );
  }
  const foreign = entries.filter((e) => !RUN_FILES.includes(e));
  if (!force && isRun && prev?.hash !== hash && (prev || foreign.length)) {
    const diff = prev ? runDifferences(prev, run) : '';
    const what = prev
      ? `a run of ${prev.experiment} (seed ${prev.seed}, budget ${prev.budget?.name}) with another config, budget or seed` +
        (diff ? ` (${diff})` : '')
      : `files that are not a normprune run (${firstNames(foreign)})`;
    throw new Error(`${out} holds ${what}; choose another --out, or pass --force to replace it`);
  }
  // The kept baseline may be what --baseline-from reads; a finished run replaces it only if it keeps one.
  // --force also removes a sweep that --out held (its sweep.json and point runs): nothing of it
  // would be left to mix with the new run in `report`. Other files are never removed.
  const sweepParts = force ? sweepIn(out) : [];
  return () => {
    if (isRun) setAsideRun(out);
    for (const f of leftovers) rmSync(join(out, f), { force: true });
    removeSweep(sweepParts);
  };
}

/**
 * Removes a sweep, given as {@link sweepIn} lists it: its sweep.json, and in each point folder
 * the run (not the user's files beside it; a folder left empty goes).
 */
export function removeSweep(parts: readonly string[]): void {
  for (const f of parts) {
    if (f.endsWith('.json')) rmSync(f, { force: true });
    else removeRun(f);
    if (existsSync(f) && readdirSync(f).length === 0) rmSync(f, { recursive: true, force: true });
  }
}

/** What a run writes inside its `model/` and `plots/` folders: other files there are the user's. */
export const RUN_FOLDER_FILES: Record<string, (name: string) => boolean> = {
  model: (n) => n === 'model.json' || /^group\d+-shard\d+of\d+\.bin$/.test(n) || /^\..*\.tmp$/.test(n),
  plots: (n) =>
    ['curves.svg', 'loss.svg', 'compression.svg', 'units.svg', 'groups.svg', 'pareto.svg'].includes(n),
};

/**
 * Removes the run `out` holds: the files and folders a run writes (but
 * `except`), nothing else; in `model/` and `plots/` only the files a run
 * writes there (the folder goes once empty).
 */
export function removeRun(out: string, except: readonly string[] = []): void {
  for (const e of RUN_FILES) if (!except.includes(e)) moveRunEntry(out, e, undefined);
}

/**
 * Moves what a run wrote under `out/e` to `to/e` (removes it when `to` is
 * undefined): in `model/` and `plots/` only the run's own files.
 */
function moveRunEntry(out: string, e: string, to: string | undefined): void {
  const path = join(out, e);
  // lstat: a symlink (a model/ linked elsewhere) is moved or removed as the link, never followed.
  const stat = lstatSync(path, { throwIfNoEntry: false });
  if (!stat) return;
  const move = (from: string, dest: string) => {
    if (to === undefined) return rmSync(from, { recursive: true, force: true });
    makeDirs(dirname(dest));
    renameSync(from, dest);
  };
  const owned = RUN_FOLDER_FILES[e];
  if (owned && stat.isDirectory()) {
    for (const f of readdirSync(path)) if (owned(f)) move(join(path, f), join(to ?? '', e, f));
    if (readdirSync(path).length === 0) rmSync(path, { recursive: true, force: true });
  } else move(path, join(to ?? '', e));
}

/** Where a rerun keeps the finished run it replaces until it finishes itself. */
function replacedDir(out: string): string {
  return join(out, '.work', 'replaced');
}

/** Whether `out` holds a finished run set aside by a rerun. */
function holdsReplaced(out: string): boolean {
  return isRunResultsFile(join(replacedDir(out), 'results.json'));
}

/**
 * Makes way for a new run in `out` without losing the finished one there: its
 * files move, through a staging folder renamed in one step, to
 * `.work/replaced`, which the new run removes when it finishes and puts back
 * if it fails before its first checkpoint. A rerun killed before it finished
 * left the older run there and only its own partial files in `out`: those go,
 * the older run stays.
 */
function setAsideRun(out: string): void {
  const aside = replacedDir(out);
  const staging = `${aside}.staging`;
  if (!holdsReplaced(out)) rmSync(aside, { recursive: true, force: true }); // emptied by hand
  if (holdsReplaced(out) || !existsSync(join(out, 'results.json'))) {
    // Nothing finished to keep: the files of an unfinished run go.
    for (const e of RUN_FILES) if (e !== '.work') moveRunEntry(out, e, undefined);
    return;
  }
  try {
    for (const e of RUN_FILES) if (e !== '.work') moveRunEntry(out, e, staging);
    renameSync(staging, aside);
  } catch (err) {
    recoverReplaced(out);
    throw new Error(
      `cannot move the finished run in ${out} aside for the new one (${(err as Error).message}); it was left in place`,
    );
  }
}

/**
 * Puts back the run `setAsideRun` moved away, removing the failed run's files.
 * A marker makes a restore that a kill interrupts finish at the next start.
 */
function restoreRun(out: string): void {
  if (!holdsReplaced(out)) return;
  const aside = replacedDir(out);
  writeFileSync(join(aside, RESTORING), '');
  removeFailedRun(out, () => finishRestore(out));
}

/**
 * Removes the files of a run that failed before its first checkpoint (nothing of it is left to
 * continue): what a run writes, but for .work/, which goes once empty (a baseline an earlier run
 * kept there stays); `then` (putting back the run it replaced) runs before .work/ is looked at.
 */
function removeFailedRun(out: string, then?: () => void): void {
  for (const e of RUN_FILES) if (e !== '.work') moveRunEntry(out, e, undefined);
  then?.();
  // The failed run's .work/ goes too once empty (a finished run has none).
  const work = join(out, '.work');
  if (existsSync(work) && readdirSync(work).length === 0) rmdirSync(work);
}

const RESTORING = '.restoring';

function finishRestore(out: string): void {
  const aside = replacedDir(out);
  // results.json last: until it is back, the folder does not look like a finished run.
  const entries = readdirSync(aside).filter((e) => e !== RESTORING && e !== 'results.json');
  for (const e of [...entries, 'results.json']) moveRunEntry(aside, e, out);
  removeDir(aside);
}

/**
 * At a run's start, completes what a killed process left half done: a move
 * aside (its staging folder goes back into `out`) or a restore (finished).
 */
function recoverReplaced(out: string): void {
  const staging = `${replacedDir(out)}.staging`;
  if (existsSync(staging)) {
    for (const e of readdirSync(staging)) moveRunEntry(staging, e, out);
    rmSync(staging, { recursive: true, force: true });
  }
  if (existsSync(join(replacedDir(out), RESTORING))) finishRestore(out);
}

/**
 * The plan of the sweep writing a folder, written before its first point and removed once
 * its sweep.json is: an interrupted sweep's, so that it is continued only by the same sweep
 * (or a grid holding all its points), not by one that would leave its points unlisted.
 */
export const PLAN_FILE = '.sweep-plan.json';

/** The folders in `out` named as sweep points that hold a run: a damaged sweep's points, for --force. */
export function pointFolders(out: string): string[] {
  return readdirSync(out).filter((d) => /^lambda-/.test(d) && holdsRun(join(out, d)));
}

/**
 * Whether `out` holds a sweep's files: the plan of an interrupted one, a sweep.json that reads as a
 * sweep's, or one that does not beside folders of points holding runs (a sweep's, damaged). A
 * sweep.json alone that is not a sweep's is a file of the user's.
 */
export function holdsSweepFiles(out: string): boolean {
  if (existsSync(join(out, PLAN_FILE))) return true;
  if (!existsSync(join(out, 'sweep.json'))) return false;
  try {
    if (readSweepFile(out) !== undefined) return true;
  } catch (e) {
    if (!(e instanceof SweepFileError)) throw e;
  }
  return pointFolders(out).length > 0;
}

/**
 * Whether the run folder `dir`, whose config.json records the command `cmd`, is a sweep's point
 * moved out of its sweep: a sweep's command, and the folder above holds neither a sweep's files
 * nor `dir` as a point folder (a sweep whose plan is gone is still continued through those). The
 * sweep's command continues the folder above the point ({@link commandFolder}), where --resume
 * would then find no sweep; only the sweep, with the point back in its folder, continues it.
 */
export function movedSweepPoint(cmd: string, dir: string): boolean {
  const above = dirname(resolve(dir));
  return isSweepCommand(cmd) && !holdsSweepFiles(above) && !pointFolders(above).includes(basename(dir));
}

/**
 * The sweep `out` holds, as paths: its sweep.json and the point folders it lists that hold runs.
 * None for a sweep.json that is not what a sweep writes: what it lists is not known to be a sweep's.
 */
export function sweepIn(out: string): string[] {
  let sweep: SweepFile | undefined;
  try {
    sweep = readSweepFile(out);
  } catch (e) {
    if (e instanceof SweepFileError) return [];
    throw e;
  }
  if (sweep === undefined) return [];
  const dirs = sweep.points
    .map((p) => p.dir)
    .filter((d) => /^[^/\\.][^/\\]*$/.test(d))
    .map((d) => join(out, d))
    .filter(holdsRun);
  return [sweepFile(out), ...dirs];
}

/**
 * Runs (or resumes) one experiment and writes RUN_DIR; returns results.json's
 * content. The folder is locked while the run writes it: a second process
 * given the same --out is refused.
 */
export async function runExperiment(o: RunOptions): Promise<RunResults> {
  const out = resolve(o.out);
  // Recorded with absolute paths and its --out, as the CLI records it: it works typed anywhere.
  if (o.command !== undefined)
    o = { ...o, command: commandFor(o.command, ranIn(o.cwd), commandFolder(o.command, out)) };
  // Checked before anything is written, --resume's too (a mistyped folder is refused, not passed
  // over); used in a fresh run's baseline phase (a resumed one has its baseline in its checkpoint).
  const checked = o.baselineFrom ? checkKeptBaseline(o.baselineFrom, o.config, o.budget, o.seed) : undefined;
  const kept = o.resume ? undefined : checked;
  ensureWritableDir(out);
  const unlock = lockDir(out, `a run of ${o.config.name}`);
  const stop: StopSignals = new StopSignals(
    logOf(o),
    (): string =>
      // Written last but for the report and the clean-up: the run itself is done.
      stop.stage === 'finishing' && existsSync(join(out, 'results.json'))
        ? `the run had finished (results.json is written); \`normprune report ${out}\` rewrites its report`
        : existsSync(join(out, '.work', 'checkpoint', 'state.json'))
          ? `continue from the last checkpoint with: ${o.continueWith ?? 'the same command with --resume'}`
          : `nothing was checkpointed: run the same command again${o.resume ? ', without --resume' : ''}`,
    () => {
      try {
        unlock();
      } finally {
        o.onQuit?.();
      }
    },
  );
  try {
    return await runLocked(o, out, kept, stop);
  } catch (e) {
    if (!(e instanceof Interrupted) && (stop.stage === 'training' || stop.stage === 'finishing')) {
      recordFailure(join(out, '.work', 'checkpoint'), e, logOf(o));
      markFailedDuringTraining(e);
    }
    // A rerun that fails before its first checkpoint gives back the finished run it replaced
    // (nothing of it is left to continue); one interrupted, or failed after a checkpoint, keeps
    // it aside until --resume finishes the new run. A new run that fails so leaves nothing of it
    // (its config.json would read as a run there, and refuse the command with the config fixed as
    // the error says, such as a lower learning rate, as "another config").
    // (Its stage is 'finishing' too when the training failed; results.json is written in it.)
    const unstarted =
      !(e instanceof Interrupted) &&
      !o.resume &&
      (stop.stage === 'training' || stop.stage === 'finishing') &&
      !existsSync(join(out, '.work', 'checkpoint', 'state.json')) &&
      !existsSync(join(out, 'results.json'));
    if (unstarted && !holdsReplaced(out)) {
      try {
        removeFailedRun(out);
      } catch (err) {
        logOf(o)(`could not remove the failed run's files from ${out} (${(err as Error).message})`);
      }
    }
    if (holdsReplaced(out)) {
      if (!(e instanceof Interrupted) && !existsSync(join(out, '.work', 'checkpoint', 'state.json'))) {
        try {
          restoreRun(out);
        } catch (err) {
          // The run's own error is the one to report; this one says where the old run is.
          logOf(o)(
            `could not put back the finished run from ${replacedDir(out)} (${(err as Error).message}); the next run of this command finishes that`,
          );
        }
      } else logOf(o)(`the finished run this one replaces is kept in ${replacedDir(out)} until it finishes`);
    }
    throw e;
  } finally {
    stop.dispose();
    unlock();
  }
}

const duringTraining = new WeakSet<object>();

/**
 * Whether `e`, thrown by {@link runExperiment}, is a failure of the run once it trained (its
 * training, surgery, evaluation or export), not of its setup (data, backend, folder, a damaged
 * checkpoint or kept baseline): a grid sweep runs its other points past such a failure.
 */
export function failedDuringTraining(e: unknown): boolean {
  return typeof e === 'object' && e !== null && duringTraining.has(e);
}

/** Marks `e` as {@link failedDuringTraining}. @internal */
export function markFailedDuringTraining(e: unknown): void {
  if (typeof e === 'object' && e !== null) duringTraining.add(e);
}

/** The file in a checkpoint that says the run failed after it (dropped by the next checkpoint). */
export const FAILED_FILE = 'failed.json';

/** What {@link FAILED_FILE} records: the error, and when. */
export interface RunFailure {
  message: string;
  at: string;
}

/**
 * Records in the checkpoint in `ckptDir`, if there is one, that the run failed after it with `e`:
 * `report` and `eval` then say the run failed, not that it was interrupted, and `--resume` says
 * it retries. The next checkpoint a resumed run writes replaces the folder, and the record with it.
 */
function recordFailure(ckptDir: string, e: unknown, log: (s: string) => void): void {
  if (!existsSync(join(ckptDir, 'state.json'))) return;
  const failure: RunFailure = { message: (e as Error)?.message ?? String(e), at: new Date().toISOString() };
  try {
    writeJsonAtomic(join(ckptDir, FAILED_FILE), failure);
  } catch (err) {
    // The run's own error is the one to report.
    log(`could not record the failure in ${ckptDir} (${(err as Error).message})`);
  }
}

/** ` that failed (when: message)` for a message naming the run whose checkpoint is `ckptDir`. */
export function failedText(ckptDir: string): string {
  const failed = recordedFailure(ckptDir);
  return failed ? ` that failed (${failed.at}: ${failed.message})` : '';
}

/** The failure recorded in the checkpoint in `ckptDir`, if any (and readable). */
export function recordedFailure(ckptDir: string): RunFailure | undefined {
  try {
    const f = JSON.parse(readFileSync(join(ckptDir, FAILED_FILE), 'utf8')) as Partial<RunFailure>;
    return typeof f.message === 'string' && typeof f.at === 'string' ? (f as RunFailure) : undefined;
  } catch {
    return undefined;
  }
}

/** Where a run's progress lines go: `o.log`, else stderr. */
function logOf(o: RunOptions): (s: string) => void {
  return o.log ?? ((s: string) => process.stderr.write(s + '\n'));
}

async function runLocked(
  o: RunOptions,
  out: string,
  kept: (KeptBaseline & { dir: string }) | undefined,
  stop: StopSignals,
): Promise<RunResults> {
  const log = logOf(o);
  const cfg = o.config;
  const work = join(out, '.work');
  const ckptDir = join(work, 'checkpoint');
  const hash = configHash(cfg, o.budget, o.seed);
  // A process killed while it replaced or removed a checkpoint (or the kept baseline) left it
  // under another name: complete, it is put back; half removed, it goes.
  // Only in a folder that holds a run: elsewhere .work and what is in it are the user's.
  const isRun = holdsRun(out);
  if (isRun) {
    recoverDir(ckptDir);
    recoverDir(join(work, 'baseline'));
    // An export killed between its renames (by an older normprune: in model.old).
    recoverDir(join(out, 'model'), MODEL_STAGING(out).old);
    recoverDir(join(out, 'model'));
    recoverReplaced(out);
    rmSync(`${ckptDir}.removing`, { recursive: true, force: true });
  }
  // A checkpoint of another config, budget or seed: --resume would refuse it, but only after loading
  // the data; say so now, with what differs and the command that continues it.
  // (A damaged checkpoint is reported where --resume reads it; --force removes it.)
  const ckptHash = (): string | undefined => {
    try {
      return checkpointHash(readCheckpointState(ckptDir), out);
    } catch {
      return undefined;
    }
  };
  const found = (o.resume || !o.force) && existsSync(join(ckptDir, 'state.json')) ? ckptHash() : undefined;
  const other = found !== undefined && found !== hash ? runIn(out) : undefined;
  // Started by this very command line: what changed is a config file it reads (or one that file
  // extends), so "that command" would be refused the same way. Both name their files by absolute
  // paths (one an earlier normprune recorded relative is compared so made absolute); one recorded
  // without the directory it ran in is compared as written.
  const sameCommand =
    other?.command !== undefined &&
    commandFor(other.command, other.cwd, commandFolder(other.command, out)) === o.command;
  const moved = other?.command !== undefined && !sameCommand && movedSweepPoint(other.command, out);
  const otherText = other
    ? ` of another config, budget or seed (${runDifferences(other, { config: cfg, budget: o.budget, seed: o.seed })})` +
      (sameCommand
        ? `, started by this same command: its config file (or one it extends) has changed since`
        : other.command && moved
          ? `, a point of the sweep started by \`${commandIn(other.command, other.cwd)}\`, moved out of that sweep's folder`
          : other.command
            ? `, started by \`${commandFor(other.command, other.cwd, commandFolder(other.command, out))}\``
            : '')
    : '';
  const goOn = sameCommand
    ? `put back what changed in the config file (the run's ${join(out, 'config.json')} records the config it ran) and continue it with --resume`
    : moved
      ? "move it back into its sweep's folder and continue that sweep with --resume"
      : 'continue it with that command and --resume';
  if (o.resume && other)
    throw new Error(
      `--resume: the checkpoint in ${ckptDir} belongs to a run${otherText}; ${goOn}, ` +
        (sameCommand
          ? 'or start over with --force, or this one in another --out'
          : 'or start this one in another --out'),
    );
  if (!o.resume && isRun && existsSync(ckptDir)) {
    if (!o.force)
      throw new Error(
        `${out} holds an unfinished run${otherText}${failedText(ckptDir)}; ` +
          (other
            ? `${goOn}, choose another --out, or pass --force to replace it`
            : 'continue it with --resume, choose another --out, or pass --force to start over'),
      );
    // --force starts over: the unfinished run's checkpoint goes (its files go with claimOutDir's).
    rmSync(ckptDir, { recursive: true, force: true });
  }
  if (o.resume && !existsSync(join(ckptDir, 'state.json'))) {
    // A rerun killed before its first checkpoint: nothing to resume; the run it replaced comes back.
    const restored = holdsReplaced(out);
    if (restored) restoreRun(out);
    const former = o.formerOut === undefined ? undefined : resolve(o.formerOut);
    if (!restored && former !== undefined && former !== out && interruptedRunIn(former) === hash)
      throw new Error(
        `--resume: no checkpoint in ${ckptDir}; the interrupted run of this command is in ${former} ` +
          `(where an earlier normprune put it by default): continue it with --resume --out ${former}`,
      );
    throw new Error(
      `--resume: no checkpoint in ${ckptDir}` +
        (restored
          ? `; a rerun there was killed before its first checkpoint, so the finished run it replaced is put back in ${out}`
          : existsSync(join(out, 'results.json'))
            ? `; the run in ${out} has finished (see its report.md); nothing to resume: ${finishedAdvice(out, hash, { config: cfg, budget: o.budget, seed: o.seed })}`
            : holdsSweepFiles(out)
              ? // Without --resume the run refuses the folder too: it is a sweep's, which the sweep continues.
                `; ${out} holds a sweep, not a run (an interrupted sweep is continued by \`normprune sweep\` with --resume); ` +
                'choose another --out for this run'
              : '; nothing to resume: run the command without --resume'),
    );
  }
  const clearOutDir = o.resume
    ? undefined
    : claimOutDir(out, { config: cfg, budget: o.budget, seed: o.seed }, !!o.force);
  // A --data-dir or NORMPRUNE_DATA_DIR that does not exist fails before the backend is chosen
  // and named, as a sweep's does (the data set itself is read below, after it).
  dataLocation(cfg, { dataDir: o.dataDir, offline: o.offline ?? true });
  const backend: BackendInfo = await initBackend({
    prefer: o.backend,
    threads: o.threads,
    releaseSavedTensorsDuringBackprop: o.releaseSavedTensorsDuringBackprop,
    quiet: true,
  });
  checkRequestedBackend(o.backend, backend);
  // The reason says backend.notes too (threads the backend ignores).
  log(`backend: ${backend.backend} (${backend.reason})`);
  if (o.releaseSavedTensorsDuringBackprop)
    log('backward pass: frees saved tensors as it goes (--release-saved-tensors-during-backprop)');
  const data = await loadRunData(cfg, o.budget, { dataDir: o.dataDir, offline: o.offline ?? true });
  log(
    `data: ${cfg.dataset.name} train ${data.train.count}, validation ${data.validation.count}, test ${data.test.count}`,
  );
  for (const note of data.notes) log(`note: ${note}`);
  const norm = { normalize: cfg.dataset.normalize, stats: data.stats };

  // Claimed above, before the data loaded; cleared only now that the run can start.
  clearOutDir?.();
  const metricsFile = join(out, 'metrics.jsonl');
  let state: RunState;
  let model: tfl.LayersModel | undefined;
  if (o.resume) {
    state = readCheckpointState(ckptDir);
    if (checkpointHash(state, out) !== hash) {
      throw new Error(`--resume: the checkpoint in ${ckptDir} belongs to another config, budget or seed`);
    }
    // A checkpoint of an earlier version records the earlier hash: the next checkpoint records this one.
    state.configHash = hash;
    if (state.backend !== undefined && state.backend !== backend.backend) {
      throw new Error(
        `--resume: the run began on the ${state.backend} backend and would go on on ${backend.backend}, ` +
          `whose bits differ; ` +
          (process.env.NORMPRUNE_BACKEND
            ? `NORMPRUNE_BACKEND=${process.env.NORMPRUNE_BACKEND} overrides --backend: resume it with ` +
              `NORMPRUNE_BACKEND=${state.backend}, or with NORMPRUNE_BACKEND unset and --backend ${state.backend}`
            : `resume it with --backend ${state.backend}`),
      );
    }
    try {
      model = await tfl.loadLayersModel(fileSystem(join(ckptDir, 'model')));
    } catch (e) {
      throw damagedCheckpoint(ckptDir, (e as Error).message);
    }
    log(resumePoint(state, cfg));
    const failed = recordedFailure(ckptDir);
    if (failed)
      log(
        `note: this run failed after this checkpoint (${failed.at}): ${failed.message}; ` +
          'retrying from it, which fails the same way unless the cause lay outside the run (disk space, memory)',
      );
  } else {
    state = {
      version: 1,
      configHash: hash,
      seed: o.seed,
      phase: 'baseline',
      epoch: 0,
      step: 0,
      globalStep: 0,
      acc: { lossSum: 0, samples: 0, steps: 0 },
      metricsCount: 0,
      elapsed: { baseline: 0, proximal: 0, finetune: 0 },
      backend: backend.backend,
    };
  }
  const metricLines: string[] = existsSync(metricsFile)
    ? readFileSync(metricsFile, 'utf8').split('\n').filter(Boolean).slice(0, state.metricsCount)
    : [];
  // The epochs before the checkpoint, which the report's curves show: checked now, not after the
  // rest of the training (the file is written whole, so only a copy or a disk cuts it short).
  if (o.resume) {
    const damaged = (why: string) =>
      new StartOver(
        `--resume: ${metricsFile} ${why}, and the checkpoint in ${ckptDir} counts ${state.metricsCount} epoch lines in it`,
        ckptDir,
        { putBack: 'put back a whole copy of the file' },
      );
    if (metricLines.length < state.metricsCount)
      throw damaged(existsSync(metricsFile) ? `holds ${metricLines.length} lines` : 'is missing');
    metricLines.forEach((l, i) => {
      try {
        JSON.parse(l);
      } catch (e) {
        throw damaged(`line ${i + 1} is not valid JSON (${(e as Error).message})`);
      }
    });
  }
  const pushMetric = (m: Record<string, unknown>) => {
    metricLines.push(JSON.stringify(m));
    state.metricsCount = metricLines.length;
    writeFileAtomic(metricsFile, metricLines.join('\n') + '\n');
  };
  // A resumed run keeps the command line that started it, and the directory it ran in, unless the
  // config file that command names is gone (renamed since: the hash leaves out the name it gives),
  // where this command, which works, replaces it.
  const started = o.resume ? runIn(out) : undefined;
  const gone =
    started?.command !== undefined && o.command !== undefined
      ? missingConfigFile(started.command, started.cwd)
      : undefined;
  if (gone)
    log(
      `note: the command that started this run names the config file ${gone}, which is gone: ` +
        'the run records this command instead',
    );
  // One an earlier normprune recorded, with relative paths, is recorded with them made absolute.
  const { command, cwd } =
    started?.command !== undefined && gone === undefined
      ? {
          command: commandFor(started.command, started.cwd, commandFolder(started.command, out)),
          cwd: typeof started.cwd === 'string' ? started.cwd : undefined,
        }
      : { command: o.command, cwd: o.command !== undefined ? ranIn(o.cwd) : undefined };
  writeJsonAtomic(join(out, 'config.json'), {
    experiment: cfg.name,
    command,
    cwd,
    seed: o.seed,
    budget: { name: o.budgetName, spec: o.budget },
    backend: backend.backend,
    config: cfg,
  });

  // Ctrl-C (or SIGTERM, SIGHUP) from here on: finish the current step, checkpoint, exit.
  stop.stage = 'training';
  let stepsThisProcess = 0;

  const checkpoint = async (m: tfl.LayersModel, opt: tf.Optimizer | null) => {
    await writeDirAtomic(ckptDir, async (tmp) => {
      await m.save(fileSystem(join(tmp, 'model')));
      if (opt) await saveOptimizer(opt, tmp);
      writeFileNamed(join(tmp, 'state.json'), JSON.stringify(state, null, 1));
    });
  };

  /** Stops at a checkpoint just written, as a stop signal asked: exits with 130. */
  const quit = (m: tfl.LayersModel, opt: tf.Optimizer): never => {
    // Leave nothing behind for a caller that goes on in this process (tests, sweeps).
    disposeOptimizer(opt);
    m.dispose();
    throw new Interrupted(ckptDir);
  };

  const progress = new Progress(o.stream ?? process.stderr);
  const debug = (what: string) => {
    if (process.env.NORMPRUNE_DEBUG) log(`[debug] ${what}: ${tf.memory().numTensors} tensors`);
  };

  const trainPhase = async (
    phase: Phase,
    m: tfl.LayersModel,
    opt: tf.Optimizer,
    spec: ExperimentConfig['training']['baseline'],
    hooks: {
      lambdaAt?: (epochFloat: number) => number;
      afterStep?: () => void;
      epochExtras?: () => Record<string, unknown>;
      distill?: { teacher: tfl.LayersModel; spec: DistillSpec };
    } = {},
  ) => {
    const vars = trainableVariables(m);
    const steps = Math.ceil(data.train.count / cfg.training.batchSize);
    for (; state.epoch < spec.epochs; state.epoch++) {
      const lr = learningRateAt(spec, state.epoch);
      setLearningRate(opt, lr);
      const t0 = performance.now();
      const startStep = state.step;
      // Resumed mid-epoch: `start` skips the steps already done without making their batches,
      // while the shuffle and the augmentation go on exactly as in an uninterrupted epoch.
      const it = batches(data.train, {
        batchSize: cfg.training.batchSize,
        shuffle: true,
        seed: epochSeed(o.seed, phase, state.epoch),
        augment: cfg.dataset.augment,
        normalize: cfg.dataset.normalize,
        stats: data.stats,
        oneHot: true,
        start: startStep,
      });
      let lambda: number | undefined;
      for await (const b of it) {
        if (hooks.lambdaAt && opt instanceof Object && 'setLambda' in opt) {
          lambda = hooks.lambdaAt(state.epoch + state.step / steps);
          (opt as unknown as { setLambda(v: number): void }).setLambda(lambda);
        }
        const distill = hooks.distill;
        const targets = distill
          ? tf.tidy(() =>
              tf.softmax(tf.div(distill.teacher.apply(b.xs) as tf.Tensor, distill.spec.temperature)),
            )
          : undefined;
        const loss = trainingStep(
          m,
          opt,
          vars,
          b,
          distill && targets ? { targets, spec: distill.spec } : undefined,
        );
        const lossValue = (await loss.data())[0];
        if (!Number.isFinite(lossValue)) {
          tf.dispose([loss, b.xs, b.ys, targets]);
          const at = `${phase} epoch ${state.epoch + 1}, step ${state.step + 1}: the training loss is ${lossValue}`;
          // At a later phase's first step, the model it was handed is to blame.
          const before =
            phase === 'baseline'
              ? undefined
              : phase === 'finetune' && cfg.training.proximal.epochs > 0
                ? 'proximal'
                : 'baseline';
          if (before && state.epoch === 0 && state.step === 0)
            throw new Error(
              `${at}, before any ${phase} update: the model the ${before} phase left gives non-finite outputs, ` +
                `so the ${before} training diverged: lower training.${before}.learningRate (its last epoch's: ${lastLearningRate(cfg.training[before])})`,
            );
          throw new Error(
            `${at}; lower training.${phase}.learningRate (now ${lr}) or check the data for NaN`,
          );
        }
        const n = b.xs.shape[0];
        tf.dispose([loss, b.xs, b.ys, targets]);
        hooks.afterStep?.();
        state.acc.lossSum += lossValue * n;
        state.acc.samples += n;
        state.acc.steps++;
        state.step++;
        state.globalStep++;
        stepsThisProcess++;
        progress.update(
          `${phase} ${state.epoch + 1}/${spec.epochs}`,
          state.step,
          steps,
          `loss ${(state.acc.lossSum / state.acc.samples).toFixed(4)}${lambda !== undefined ? ` lambda ${lambda.toPrecision(3)}` : ''}`,
        );
        if (o.stopAfterSteps !== undefined && stepsThisProcess >= o.stopAfterSteps) stop.requested = true;
        // A training step awaits only promises that resolve at once (wasm and cpu read their data
        // synchronously), so without this turn of the event loop a Ctrl-C would wait for the epoch's end.
        await new Promise<void>((r) => setImmediate(r));
        if (stop.requested) {
          progress.done();
          await checkpoint(m, opt);
          quit(m, opt);
        }
      }
      progress.done();
      // The value the epoch's last step used (also when resuming at its very end).
      if (hooks.lambdaAt) lambda = hooks.lambdaAt(state.epoch + (steps - 1) / steps);
      const sec = (performance.now() - t0) / 1000;
      state.elapsed[phase] += sec;
      const validationError = await errorRate(m, data.validation, norm);
      const line = {
        phase,
        epoch: state.epoch + 1,
        step: state.globalStep,
        lr,
        ...(lambda !== undefined ? { lambda } : {}),
        trainLoss: state.acc.lossSum / Math.max(1, state.acc.samples),
        validationError,
        ...(hooks.epochExtras?.() ?? {}),
        numTensors: tf.memory().numTensors,
        // None when this process ran none of the epoch's steps (resumed at its very end): not 0.
        ...(state.step > startStep
          ? {
              samplesPerSec: Math.round(
                ((state.step - startStep) * cfg.training.batchSize) / Math.max(sec, 1e-9),
              ),
            }
          : {}),
        seconds: Number(sec.toFixed(2)),
      };
      log(
        `${phase} epoch ${line.epoch}/${spec.epochs}: loss ${line.trainLoss.toFixed(4)}, validation error ${errorText(validationError)}` +
          ('liveCompressionPct' in line
            ? `, weights in dead groups ${(line as any).liveCompressionPct.toFixed(1)}%`
            : '') +
          (line.samplesPerSec === undefined
            ? ", no step run by this process (resumed at the epoch's end)"
            : `, ${line.samplesPerSec} samples/s`) +
          `, tensors ${line.numTensors}`,
      );
      state.step = 0;
      state.acc = { lossSum: 0, samples: 0, steps: 0 };
      // metricsCount and the epoch counter advance together with the checkpoint.
      const saved = state.epoch;
      state.epoch = saved + 1;
      pushMetric(line);
      await checkpoint(m, opt);
      state.epoch = saved;
      // A signal during the epoch's end (its validation, its checkpoint) after its last step: no
      // step of this phase follows, nor perhaps of any phase, so it is answered here.
      if (stop.requested) quit(m, opt);
    }
  };

  // `knownTestError`: the test error when the caller has it already (from the paired test's pass).
  const measure = async (m: tfl.LayersModel, knownTestError?: number): Promise<ModelStats> => {
    const c = countModel(m);
    const validationError = await errorRate(m, data.validation, norm);
    const testError = knownTestError ?? (await errorRate(m, data.test, norm));
    return {
      params: c.params,
      nonzeros: c.nonzeros,
      macs: c.macs,
      validationError,
      testError,
      layers: c.layers,
    };
  };

  const needsTeacher =
    cfg.training.proximal.distill !== undefined || cfg.training.finetune.distill !== undefined;
  // The trained plain baseline: the distillation teacher, and the model whose latency is set
  // beside the compressed model's at the end. A resumed run reloads it from here.
  const plainDir = join(work, 'baseline-model');
  /** The trained baseline kept in plainDir; one that cannot be read means starting over. */
  const loadTrainedBaseline = async (): Promise<tfl.LayersModel> => {
    try {
      return await loadModelDir(join(plainDir, 'model'), '');
    } catch (e) {
      throw new StartOver(
        `${o.resume ? '--resume: ' : ''}the trained baseline in ${plainDir} cannot be read: ${(e as Error).message}`,
        ckptDir,
        { resumed: !!o.resume },
      );
    }
  };
  let teacher: tfl.LayersModel | undefined;
  if (needsTeacher && o.resume && state.phase !== 'baseline' && state.phase !== 'done') {
    if (!existsSync(join(plainDir, 'model', 'model.json')))
      throw new StartOver(
        `--resume: the distillation teacher (the trained baseline) is missing from ${plainDir}`,
        ckptDir,
      );
    teacher = await loadTrainedBaseline();
  } else if (o.resume && state.phase !== 'baseline' && existsSync(join(plainDir, 'model', 'model.json'))) {
    // Read back at the end, beside the compressed model: checked now, not after the rest of the training.
    (await loadTrainedBaseline()).dispose();
  }
  // --keep-baseline: this run's baseline, trained here or reused, kept in RUN_DIR/.work/baseline
  // (for eval --compare and a later --baseline-from RUN_DIR).
  const keptDir = join(work, 'baseline');
  const keepTrainedBaseline = (save: (modelDir: string) => Promise<unknown>) => {
    const kept: KeptBaseline = {
      baselineHash: baselineHash(cfg, o.budget, o.seed),
      baselineKey: baselineKey(cfg, o.budget, o.seed),
      stats: state.baseline!,
      metrics: metricLines.filter((l) => JSON.parse(l).phase === 'baseline'),
      seconds: state.elapsed.baseline,
    };
    return writeDirAtomic(keptDir, async (tmp) => {
      await save(join(tmp, 'model'));
      writeFileSync(join(tmp, 'baseline.json'), JSON.stringify(kept));
    });
  };
  const keepReusedBaseline = async (from: string) => {
    if (resolve(from) === resolve(keptDir)) return;
    await writeDirAtomic(keptDir, async (tmp) => {
      cpSync(join(from, 'model'), join(tmp, 'model'), { recursive: true });
      cpSync(join(from, 'baseline.json'), join(tmp, 'baseline.json'));
    });
  };
  const distillFor = (spec: DistillSpec | undefined) =>
    spec && teacher && spec.weight > 0 ? { teacher, spec } : undefined;

  try {
    // ---- baseline -------------------------------------------------------
    if (state.phase === 'baseline') {
      if (kept) {
        model = await loadModelDir(join(kept.dir, 'model'), '').catch((e: unknown) => {
          throw new KeptBaselineDamaged(o.baselineFrom as string, (e as Error).message, kept.dir);
        });
        state.baseline = kept.stats;
        state.elapsed.baseline = kept.seconds;
        for (const line of kept.metrics) metricLines.push(line);
        state.metricsCount = metricLines.length;
        // The steps count on from the kept baseline's, as they would after training it here.
        state.globalStep = Math.max(0, ...kept.metrics.map((l) => Number(JSON.parse(l).step) || 0));
        writeFileAtomic(metricsFile, metricLines.join('\n') + '\n');
        log(`baseline reused from ${o.baselineFrom}`);
        // --keep-baseline keeps this run's baseline, the reused one, as a trained one is kept (for
        // eval --compare RUN_DIR/.work/baseline and a later --baseline-from RUN_DIR): copied whole.
        if (o.keepBaseline) await keepReusedBaseline(kept.dir);
      } else {
        model ??= buildModel(cfg.model.layers, data.shape, o.seed);
        const opt = makeOptimizer(cfg.training.baseline);
        if (o.resume) await loadOptimizer(opt, ckptDir).catch(rethrowDamaged(ckptDir));
        await trainPhase('baseline', model, opt, cfg.training.baseline);
        disposeOptimizer(opt);
        debug('baseline trained');
        state.baseline = await measure(model);
        debug('baseline measured');
        if (o.keepBaseline) {
          const m = model;
          await keepTrainedBaseline((dir) => m.save(fileSystem(dir)));
        }
      }
      const bl = state.baseline!;
      log(
        `baseline: ${bl.params} params, test error ${(bl.testError * 100).toFixed(2)}%, validation error ${errorText(bl.validationError)}`,
      );
      const plain = model!;
      try {
        model = decomposeFor(cfg, plain);
      } catch (e) {
        // decompose refuses weights that are NaN, infinite or overflow a group's norm: here that
        // is the baseline phase's doing, and its learning rate is what to change.
        plain.dispose();
        if (!(e instanceof NonFiniteWeightError)) throw e;
        throw new Error(
          `baseline: the trained baseline cannot be decomposed (${e.detail}): ` +
            `the baseline training diverged: lower training.baseline.learningRate ` +
            `(its last epoch's: ${lastLearningRate(cfg.training.baseline)})`,
          { cause: e },
        );
      }
      await writeDirAtomic(plainDir, async (tmp) => {
        await plain.save(fileSystem(join(tmp, 'model')));
      });
      if (needsTeacher) teacher = plain;
      else plain.dispose();
      state.phase = 'proximal';
      state.epoch = 0;
      state.step = 0;
      await checkpoint(model, null);
    } else if (o.keepBaseline && !existsSync(join(keptDir, 'baseline.json'))) {
      // Resumed past its baseline with --keep-baseline, and nothing kept (the run began without
      // the flag, or its .work/baseline was removed since): kept now, from the baseline reused or
      // from the copy of the trained one in plainDir, which is what the baseline phase kept.
      if (kept) await keepReusedBaseline(kept.dir);
      else if (existsSync(join(plainDir, 'model', 'model.json')))
        await keepTrainedBaseline(async (dir) => cpSync(join(plainDir, 'model'), dir, { recursive: true }));
      else
        throw new Error(
          `--keep-baseline: the copy of the trained baseline this run holds in ${plainDir} is missing, ` +
            `so none can be kept in ${keptDir}; drop --keep-baseline to continue the run, ` +
            'or run again without --resume to train a baseline and keep it',
        );
    }

    debug('----');
    // ---- proximal training ----------------------------------------------
    if (state.phase === 'proximal') {
      const m = model!;
      const spec = cfg.training.proximal;
      const opt = makeProximalOptimizer(cfg, m);
      if (o.resume) await loadOptimizer(opt, ckptDir).catch(rethrowDamaged(ckptDir));
      const total = state.baseline!.params;
      const lambdaAt = (e: number) =>
        spec.schedule.type === 'warmup' ? spec.lambda * Math.min(1, e / spec.schedule.epochs) : spec.lambda;
      await trainPhase('proximal', m, opt, spec, {
        lambdaAt,
        distill: distillFor(spec.distill),
        epochExtras: () => {
          const groups = countGroups(m);
          return {
            liveCompressionPct: 100 * liveCompression(m, total),
            liveGroups: Object.fromEntries(groups.map((g) => [g.layer, g.live])),
          };
        },
      });
      disposeOptimizer(opt);
      const afterProximal = countGroups(m);
      pruneMagnitudes(m, cfg.prune);
      state.groups = countGroups(m).map((g, i) => ({ ...g, liveAfterProximal: afterProximal[i].live }));
      // Folded here (prune would fold it itself) to free the decomposed model before prune copies it.
      const folded = fold(m);
      m.dispose();
      let pruned: tfl.LayersModel;
      try {
        pruned = prune(folded).model;
      } catch (e) {
        if (e instanceof DisconnectedModelError) throw disconnectedError(e, cfg, state.groups ?? []);
        // prune refuses a NaN or an infinity in any weight: here the proximal phase's doing (finite
        // decomposed weights can overflow when folded into one kernel), and its learning rate is what to change.
        if (!(e instanceof NonFiniteWeightError)) throw e;
        throw new Error(
          `proximal: weight ${e.weight} of the trained model holds NaN or an infinity: the proximal training ` +
            `diverged (its weights overflow when folded into one kernel); lower training.proximal.learningRate ` +
            `(its last epoch's: ${lastLearningRate(cfg.training.proximal)})`,
          { cause: e },
        );
      } finally {
        folded.dispose();
      }
      model = pruned;
      state.prunedBeforeFinetune = {
        validationError: await errorRate(pruned, data.validation, norm),
        testError: await errorRate(pruned, data.test, norm),
      };
      log(
        `pruned: ${countModel(pruned).nonzeros} non-zero params, validation error before fine-tuning ${errorText(state.prunedBeforeFinetune.validationError)}`,
      );
      state.phase = 'finetune';
      state.epoch = 0;
      state.step = 0;
      await checkpoint(pruned, null);
    }

    debug('----');
    // ---- fine-tuning ------------------------------------------------------
    if (state.phase === 'finetune') {
      const m = model!;
      const mask = kernelMask(m);
      mask.apply();
      const opt = makeOptimizer(cfg.training.finetune);
      if (o.resume) await loadOptimizer(opt, ckptDir).catch(rethrowDamaged(ckptDir));
      await trainPhase('finetune', m, opt, cfg.training.finetune, {
        afterStep: () => mask.apply(),
        distill: distillFor(cfg.training.finetune.distill),
      });
      disposeOptimizer(opt);
      (mask as any).dispose?.();
      state.phase = 'done';
    }
  } finally {
    // Evaluation, export and the report are redone by --resume: a stop signal now quits at once.
    stop.stage = 'finishing';
    teacher?.dispose();
  }

  debug('----');
  // ---- evaluation, export, report ----------------------------------------
  const m = model!;
  const baseline = state.baseline!;
  // Latency of both models, measured back to back (alternating calls) here at the end, so that
  // their ratio is not skewed by load that differs between the start and the end of a long run.
  let latencyMethod: RunResults['latencyMethod'] = 'paired';
  let latencyCalls: { batch1: number; batch256: number };
  let paired: PairedTest | undefined;
  let compressed: ModelStats;
  if (existsSync(join(plainDir, 'model', 'model.json'))) {
    // The trained baseline, kept since its phase (a resumed run reads it back).
    const plain = await loadTrainedBaseline();
    paired = pairedTest(await pairedCounts(plain, m, data.test, norm));
    compressed = await measure(m, compressedError(paired));
    const t1 = await latencyMs([plain, m], data.shape, 1, LATENCY_RUNS.batch1);
    const t256 = await latencyMs([plain, m], data.shape, 256, LATENCY_RUNS.batch256);
    plain.dispose();
    baseline.latencyMs = { batch1: t1.ms[0], batch256: t256.ms[0] };
    compressed.latencyMs = { batch1: t1.ms[1], batch256: t256.ms[1] };
    latencyCalls = { batch1: t1.calls, batch256: t256.calls };
  } else {
    // A run begun by an older normprune kept no baseline model: time the compressed model alone.
    latencyMethod = 'separate';
    compressed = await measure(m);
    const t1 = await latencyMs([m], data.shape, 1, LATENCY_RUNS.batch1);
    const t256 = await latencyMs([m], data.shape, 256, LATENCY_RUNS.batch256);
    compressed.latencyMs = { batch1: t1.ms[0], batch256: t256.ms[0] };
    latencyCalls = { batch1: t1.calls, batch256: t256.calls };
    log(
      `note: ${plainDir} is missing (a run begun by an older normprune); the baseline's latency is the one measured after its training`,
    );
  }
  const latencyLoad = cpuLoad();
  const warning = loadWarning(latencyLoad);
  if (warning) log(`note: ${warning}`);
  const modelDir = join(out, 'model');
  let exported = { bytes: 0, files: [] as string[] };
  // A model.tmp an older normprune left in the run folder, interrupted while it exported.
  removeStagedModel(join(out, 'model.tmp'));
  await writeDirAtomic(
    modelDir,
    async (tmp) => {
      const e = await exportModel(m, tmp, { format: 'tfjs' });
      // Named inside the run directory: the temporary folder is renamed into place.
      exported = { bytes: e.bytes, files: e.files.map((f) => join('model', relative(tmp, f))) };
    },
    (name) => !RUN_FOLDER_FILES.model(name), // files of the user's in model/ stay
    // Staged in .work (which --resume clears), not beside the run's files, where an interrupted
    // export would leave it.
    MODEL_STAGING(out),
  );
  m.dispose();
  debug('end');
  const compressionPct = 100 * (1 - compressed.nonzeros / baseline.params);
  const macsReductionPct = 100 * (1 - compressed.macs / baseline.macs);
  const errorDeltaPp = 100 * (compressed.testError - baseline.testError);
  const results: RunResults = {
    experiment: cfg.name,
    description: cfg.description,
    configId: configId(cfg, o.budget),
    command,
    seed: o.seed,
    budget: { name: o.budgetName, spec: o.budget, reduced: isReduced(o.budget), note: o.budget.note },
    backend: {
      name: backend.backend,
      tfBackend: backend.tfBackendName,
      threads: backend.threads,
      reason: backend.reason,
    },
    dataset: {
      name: cfg.dataset.name,
      train: data.train.count,
      validation: data.validation.count,
      test: data.test.count,
      source: data.source,
      note: jpegCifarNote(cfg.dataset.name, data.source),
      ...(data.stats ? { stats: { mean: [...data.stats.mean], std: [...data.stats.std] } } : {}),
    },
    baseline,
    prunedBeforeFinetune: state.prunedBeforeFinetune!,
    compressed,
    latencyMethod,
    latencyLoad,
    latencyCalls:
      latencyCalls.batch1 < LATENCY_RUNS.batch1 || latencyCalls.batch256 < LATENCY_RUNS.batch256
        ? latencyCalls
        : undefined,
    pairedTest: paired,
    groups: state.groups ?? [],
    pruneRule: pruneRuleOf(cfg.prune),
    compressionPct,
    macsReductionPct,
    errorDeltaPp,
    thesis: cfg.thesis,
    target: cfg.target
      ? {
          ...cfg.target,
          met: targetMet(cfg.target, compressionPct, errorDeltaPp),
        }
      : undefined,
    exported: { dir: 'model', bytes: exported.bytes, files: exported.files },
    timings: {
      // Milliseconds: a tiny run's phase of 0.03 s is not recorded (and shown) as 0.
      baselineSec: Number(state.elapsed.baseline.toFixed(3)),
      proximalSec: Number(state.elapsed.proximal.toFixed(3)),
      finetuneSec: Number(state.elapsed.finetune.toFixed(3)),
      totalSec: Number((state.elapsed.baseline + state.elapsed.proximal + state.elapsed.finetune).toFixed(3)),
    },
    createdAt: new Date().toISOString(),
  };
  // A run of no epoch (every phase at 0) has no line to write, and still its (empty) file: without
  // it, `report` would call the file missing.
  if (!metricLines.length) writeFileAtomic(metricsFile, '');
  writeJsonAtomic(join(out, 'results.json'), results);
  writeReport(
    out,
    results,
    metricLines.map((l) => JSON.parse(l)),
  );
  // Only a baseline kept for --baseline-from outlives the run (in .work/baseline): this run's if
  // it keeps one, else one an earlier run in this folder kept (which this run may have read).
  // Renamed away before removal: a kill meanwhile must not leave a checkpoint --resume half reads.
  removeDir(replacedDir(out));
  removeDir(ckptDir);
  removeDir(plainDir);
  if (!o.keepBaseline && !existsSync(join(work, 'baseline'))) removeDir(work);
  makeDirs(out);
  return results;
}
