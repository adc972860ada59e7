// `normprune sweep`: the same experiment over a grid of lambda (and
// granularity, cost weighting), or a bisection on lambda for a target
// compression. The baseline is trained once (first point) and shared.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { CostWeighting } from '@normprune/prox';
import {
  checkBaselineFrom,
  configHash,
  configHashes,
  failedDuringTraining,
  failedText,
  finishedRun,
  holdsRun,
  holdsSweepFiles,
  KeptBaselineDamaged,
  otherRunIn,
  PLAN_FILE,
  pointFolders,
  readRunConfigFile,
  removeRun,
  removeSweep,
  runExperiment,
  StartOver,
  sweepIn,
  type RunOptions,
  type RunResults,
} from './pipeline.js';

import { isReduced, sweepPointConfig } from './config.js';
import { firstCostWeightingName } from './cost-weighting.js';
import { writeReport, writeSweepReport, type MetricLine, type SweepPoint } from './report.js';
import { StopSignals } from './signals.js';
import { firstNames, pctBeside } from './format.js';
import { commandFor, missingConfigFile, ranIn } from './command-line.js';
import {
  ensureWritableDir,
  LOCK_FILE,
  lockDir,
  ourLeftovers,
  parseJsonFile,
  recoverDir,
  TAKEOVER_FILE,
  writeJsonAtomic,
  overwrittenEntries,
} from './fsutil.js';
import {
  readSweepFile,
  SweepFileError,
  writeSweepFile,
  type Bisection,
  type SweepFile,
} from './sweep-file.js';

/**
 * A finished point that a resumed sweep reuses keeps the command that made it, as a resumed run
 * does, unless the config file that command names is gone (renamed since: the hash leaves out the
 * name it gives), where the sweep's command, which works, replaces it in the point's config.json,
 * results.json and report. Returns the results as the point records them now.
 */
function rerecordIfConfigGone(
  dir: string,
  r: RunResults,
  command: string | undefined,
  cwd: string | undefined,
  log: (s: string) => void,
): RunResults {
  const read = readRunConfigFile(join(dir, 'config.json'));
  if (command === undefined || read.kind !== 'run' || read.run.command === undefined) return r;
  const gone = missingConfigFile(read.run.command, read.run.cwd);
  if (gone === undefined) return r;
  const what = `note: sweep point ${basename(dir)} was made by a command naming the config file ${gone}, which is gone`;
  // A finished run's metrics.jsonl is whole (written before its results.json); one damaged since
  // leaves the point as it is rather than with a report that disagrees with its results.json.
  let metrics: MetricLine[];
  try {
    metrics = readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as MetricLine);
  } catch (e) {
    log(
      `${what}; it keeps that command: its report cannot be rewritten (metrics.jsonl: ${(e as Error).message})`,
    );
    return r;
  }
  log(`${what}: it records this sweep's command instead`);
  const results = { ...r, command };
  writeJsonAtomic(join(dir, 'config.json'), { ...read.run, command, cwd });
  writeJsonAtomic(join(dir, 'results.json'), results);
  writeReport(dir, results, metrics);
  return results;
}

/**
 * Options of {@link runSweep}: those of a run that every point shares, the
 * grid or bisection target, and sweep-wide versions of the run flags.
 */
export interface SweepOptions extends Pick<
  RunOptions,
  | 'config'
  | 'budgetName'
  | 'budget'
  | 'seed'
  | 'out'
  | 'backend'
  | 'threads'
  | 'releaseSavedTensorsDuringBackprop'
  | 'dataDir'
  | 'offline'
> {
  lambdas?: number[];
  granularities?: string[];
  costWeightings?: CostWeighting[];
  /** Percent of parameters to remove; switches to bisection on lambda. */
  targetCompression?: number;
  /** Bisection steps after the expansion (default {@link DEFAULT_BISECT_STEPS}). */
  bisectSteps?: number;
  /** A run directory with a kept baseline (`--keep-baseline`) that every point reuses. */
  baselineFrom?: string;
  /** Keep the baseline the sweep trains, in its first point's `.work/baseline`, for later `--baseline-from`. */
  keepBaseline?: boolean;
  /**
   * Continue an interrupted sweep: finished points of the same config, budget
   * and seed are reused, the interrupted one resumes from its checkpoint. An
   * `out` holding no sweep (nor run) is an error: there is nothing to continue.
   */
  resume?: boolean;
  /** Replace points' directories holding other runs (see `RunOptions.force`). */
  force?: boolean;
  /** Each point behaves as if Ctrl-C came after this many of its steps (tests). */
  stopAfterSteps?: number;
  command?: string;
  /** The directory `command` ran in (default the current directory): see `RunOptions.cwd`. */
  cwd?: string;
  /** The command line that continues the sweep with --resume, printed when a stop signal quits it. */
  continueWith?: string;
  /**
   * Where an earlier normprune put this command's sweep by default (--out not given): with
   * --resume and no sweep in `out`, an interrupted or finished sweep of this plan there is named
   * in the error, with the --out that continues it.
   */
  formerOut?: string;
  log?: (s: string) => void;
}

/** A point's config: `cfg` at that lambda, granularity and cost weighting. */
const withPoint = sweepPointConfig;

/**
 * Of a bisection's points, the smallest lambda reaching `target`% removed (if any), the
 * largest lambda below it (which missed: the bracket's bottom; none when every lambda tried
 * reached it) and the largest lambda tried.
 */
export function bisectionOutcome(
  points: SweepPoint[],
  target: number,
): { ok: SweepPoint | undefined; below: SweepPoint | undefined; largest: SweepPoint } {
  const byLambda = [...points].sort((a, b) => a.lambda - b.lambda);
  const i = byLambda.findIndex((p) => p.compressionPct >= target);
  return {
    ok: i >= 0 ? byLambda[i] : undefined,
    below: i > 0 ? byLambda[i - 1] : undefined,
    largest: byLambda[byLambda.length - 1],
  };
}

/** The label of a bisection's answer (the smallest lambda reaching `target`); undefined for a grid or no answer. */
export function sweepAnswer(points: SweepPoint[], target: number | undefined): string | undefined {
  return target === undefined ? undefined : bisectionOutcome(points, target).ok?.label;
}

/** The sentence of a bisection's note that gives its answer and the bracket around it. */
export function bisectionNote(points: SweepPoint[], target: number): string {
  const { ok, below, largest } = bisectionOutcome(points, target);
  const head = `Bisection for >= ${target}% of parameters removed:`;
  if (!ok) return `${head} no lambda tried reached it (largest ${largest.lambda}).`;
  return (
    `${head} smallest lambda reaching it is ${ok.lambda} (${pctBeside(ok.compressionPct, target)} removed); ` +
    (below
      ? `the largest lambda below it, ${below.lambda}, missed it (${pctBeside(below.compressionPct, target)} removed).`
      : 'no smaller lambda was tried, so a smaller one may reach it too.')
  );
}

/**
 * The path of a bisection for the smallest lambda removing at least `target`% of the
 * parameters: `run(lambda)` trains one point. Geometric: compression grows with lambda.
 * Only the run's own parameter counts decide; no validation or test error is consulted, and
 * a point whose compression is not a number (diverged) counts as missing the target.
 * From `start` (the config's lambda, 1e-3 if 0), lambda is multiplied by 4 up to four
 * times until a point reaches the target (if none does, the search stops there); then
 * `steps` times the geometric middle of the bracket (a quarter of its top while no point
 * below it was run) is run, rounded to 4 significant digits. The bracket's ends are lambdas
 * run: the top reached the target, the bottom (if any) missed it. The search stops early
 * when no 4-digit lambda is left inside the bracket, so no lambda is run twice.
 * Returns the bracket's top.
 */
export async function bisectLambda(
  start: number,
  target: number,
  steps: number,
  run: (lambda: number) => Promise<{ compressionPct: number }>,
): Promise<number> {
  const reaches = async (lambda: number) => (await run(lambda)).compressionPct >= target;
  let lo = 0;
  let hi = start || 1e-3;
  let ok = await reaches(hi);
  for (let i = 0; i < 4 && !ok; i++) {
    lo = hi;
    hi *= 4;
    ok = await reaches(hi);
  }
  // Past the expansion nothing reached the target: bisecting below hi cannot either.
  if (!ok) return hi;
  for (let i = 0; i < steps; i++) {
    const mid = Number((lo > 0 ? Math.sqrt(lo * hi) : hi / 4).toPrecision(4));
    if (!(mid > lo && mid < hi)) break;
    if (await reaches(mid)) hi = mid;
    else lo = mid;
  }
  return hi;
}

/** A sweep point's label and folder name: `lambda-0.002`, `lambda-0.002-input-macs`. */
function pointLabel(lambda: number, granularity?: string, cost?: string): string {
  return [`lambda-${lambda}`, granularity, cost].filter(Boolean).join('-');
}

/**
 * A point's label when a sweep is resumed: its folder as a sweep from before cost weighting
 * 'flops' was renamed 'macs' named it (`lambda-0.002-flops`), when only that folder exists, so
 * that its run is reused or continued (it hashes as the 'macs' point does); else {@link pointLabel}.
 */
function resumedLabel(out: string, lambda: number, granularity?: string, cost?: string): string {
  const label = pointLabel(lambda, granularity, cost);
  if (cost === undefined || firstCostWeightingName(cost) === cost) return label;
  const former = pointLabel(lambda, granularity, firstCostWeightingName(cost));
  return !existsSync(join(out, label)) && existsSync(join(out, former)) ? former : label;
}

/** The grid a sweep without a target runs: the flags', else the config's `sweep`, else its lambda. */
function gridPlan(o: SweepOptions) {
  return {
    lambdas: o.lambdas ?? o.config.sweep?.lambda ?? [o.config.training.proximal.lambda],
    granularities: o.granularities ?? o.config.sweep?.granularity ?? [undefined],
    costWeightings: o.costWeightings ?? o.config.sweep?.costWeighting ?? [undefined],
  };
}

/** The labels of a grid sweep's points; undefined for a bisection. */
function gridLabels(o: SweepOptions): string[] | undefined {
  if (o.targetCompression !== undefined) return undefined;
  const grid = gridPlan(o);
  return grid.granularities.flatMap((g) =>
    grid.costWeightings.flatMap((c) => grid.lambdas.map((l) => pointLabel(l, g, c))),
  );
}

/** The bisection steps `--target-compression` takes after its expansion, unless `--bisect-steps` says. */
export const DEFAULT_BISECT_STEPS = 4;

/** What otherSweep says of a sweep.json it cannot read, which --force replaces. */
const DAMAGED = 'damaged';

/** What a plan file records: the sweep's key and command, a grid's labels, the points begun. */
interface SweepPlan {
  key: string;
  command?: string;
  /** The directory `command` ran in (absent in plans of versions that did not record it). */
  cwd?: string;
  labels?: string[];
  started?: string[];
  bisection?: Bisection;
  /** A grid's points that failed (label: error), each with the run's error; the others ran on. */
  failed?: Record<string, string>;
}

/** This sweep's bisection; undefined for a grid. */
function bisectionOf(o: SweepOptions): Bisection | undefined {
  if (o.targetCompression === undefined) return undefined;
  return {
    run: configHash(o.config, o.budget, o.seed),
    target: o.targetCompression,
    steps: o.bisectSteps ?? DEFAULT_BISECT_STEPS,
  };
}

/**
 * Whether this sweep runs every point of another: a grid holding its `labels` (unknown for
 * an interrupted bisection), or the same `bisection` with as many steps or more.
 */
function holdsSweep(o: SweepOptions, labels: readonly string[] | undefined, bisection: unknown): boolean {
  const mine = bisectionOf(o);
  const other = bisection as Partial<Bisection> | undefined;
  if (mine)
    return (
      other !== undefined &&
      (configHashes(o.config, o.budget, o.seed) as unknown[]).includes(other.run) &&
      other.target === mine.target &&
      typeof other.steps === 'number' &&
      other.steps <= mine.steps
    );
  const grid = gridLabels(o);
  return grid !== undefined && labels !== undefined && labels.every((l) => grid.includes(l));
}

const failedList = (v: unknown) =>
  v === undefined ||
  (typeof v === 'object' &&
    v !== null &&
    !Array.isArray(v) &&
    Object.entries(v).every(([l, m]) => labelList([l]) && typeof m === 'string'));

const labelList = (v: unknown) =>
  v === undefined ||
  (Array.isArray(v) && v.every((l) => typeof l === 'string' && /^[^/\\.][^/\\]*$/.test(l)));

/**
 * The plan of an interrupted sweep in `out`; undefined if none. A damaged plan file is refused
 * (what it would protect is unknown), unless `force` starts over: the plan is then taken to
 * have begun every point folder there.
 */
function readPlan(out: string, force: boolean | undefined): SweepPlan | undefined {
  const file = join(out, PLAN_FILE);
  if (!existsSync(file)) return undefined;
  let plan: unknown;
  let why: string | undefined;
  try {
    plan = parseJsonFile(file, undefined, 'it');
    const p = plan as Partial<SweepPlan> | null;
    why =
      p === null || typeof p !== 'object' || typeof p.key !== 'string'
        ? 'it holds no sweep key'
        : labelList(p.labels) &&
            labelList(p.started) &&
            ['string', 'undefined'].includes(typeof p.command) &&
            failedList(p.failed)
          ? undefined
          : 'its command, labels or points are not what a sweep writes';
  } catch (e) {
    why = (e as Error).message;
  }
  if (why === undefined) return plan as SweepPlan;
  if (force) return { key: '', started: pointFolders(out) };
  throw new Error(
    `${file}, the plan of an interrupted sweep in ${out}, is damaged (${why}); ` +
      'choose another --out, or pass --force to start over',
  );
}

/** Whether `plan` (an interrupted sweep's) is another sweep's, which this one would not complete. */
function isOtherPlan(plan: SweepPlan, o: SweepOptions, keys: readonly string[]): boolean {
  return !keys.includes(plan.key) && !holdsSweep(o, plannedLabels(plan, o), plan.bisection);
}

/**
 * The points of an interrupted sweep's `plan` that a grid continuing it must hold: all, but with
 * --resume those that failed, which it may leave out (their folders go: {@link droppedFailed}).
 */
function plannedLabels(plan: SweepPlan, o: SweepOptions): string[] | undefined {
  const failed = plan.failed ?? {};
  return o.resume ? plan.labels?.filter((l) => !Object.hasOwn(failed, l)) : plan.labels;
}

/** The failed points of `plan` this grid leaves out, which a sweep continuing it removes. */
function droppedFailed(plan: SweepPlan | undefined, o: SweepOptions): string[] {
  const grid = gridLabels(o);
  if (!plan?.failed || grid === undefined || !o.resume) return [];
  return Object.keys(plan.failed).filter((l) => !grid.includes(l));
}

/**
 * What makes two sweeps the same (config, budget, seed, and the grid or bisection target): the
 * `key` a sweep.json and plan record. The first is this version's; the second, of the run hash
 * normprune recorded before 2026-12-02 ({@link configHashes}), is what earlier sweeps recorded.
 */
function sweepKeys(o: SweepOptions): [string, string] {
  const grid = gridPlan(o);
  const plan =
    o.targetCompression !== undefined
      ? { target: o.targetCompression, steps: o.bisectSteps ?? DEFAULT_BISECT_STEPS }
      : {
          ...grid,
          costWeightings: grid.costWeightings.map((c) => (c === undefined ? c : firstCostWeightingName(c))),
        };
  const key = (run: string) =>
    createHash('sha256').update(JSON.stringify({ run, plan })).digest('hex').slice(0, 16);
  const [run, legacy] = configHashes(o.config, o.budget, o.seed);
  return [key(run), key(legacy)];
}

/**
 * The finished sweep in `out`, described for a message, when this sweep would leave points of
 * it out of its sweep.json: another sweep (key; sweeps written before sweep.json had a key are
 * compared by their command), unless --resume extends it with a grid holding all its points
 * (finished points are reused, each checked against its own config, budget and seed).
 */
function otherSweep(out: string, o: SweepOptions, keys: readonly string[]): string | undefined {
  let prev: SweepFile | undefined;
  try {
    prev = readSweepFile(out);
  } catch (e) {
    if (!(e instanceof SweepFileError)) throw e;
    // What it lists is unknown: only --force, which removes the folders named as points, goes on.
    if (o.force) return DAMAGED;
    throw new Error(`${e.message}; choose another --out, or pass --force to replace the sweep there`);
  }
  if (prev === undefined) return undefined;
  const bare = (c: string | undefined) => c?.replace(/ --(resume|force)\b/g, '');
  const same =
    prev.key !== undefined
      ? keys.includes(prev.key)
      : o.command !== undefined &&
        prev.command !== undefined &&
        bare(commandFor(prev.command, prev.cwd, out)) === bare(o.command);
  const labels = prev.points.map((p) => p.label);
  const extends_ = holdsSweep(o, labels, prev.bisection);
  if (same || (o.resume && extends_)) return undefined;
  return (
    `of ${prev.experiment}: ${labels.length ? labels.join(', ') : 'no points'}` +
    (prev.command ? `, made by \`${commandFor(prev.command, prev.cwd, out)}\`` : '') +
    ')' +
    (extends_
      ? '; to add points to it, run with --resume (its finished points are reused)'
      : (fewerStepsHint(o, prev.bisection) ?? ''))
  );
}

/**
 * This bisection (same config, budget, seed and target) run there with more steps than `o` asks
 * for: what the refusal says, since fewer steps would leave its points out; undefined otherwise.
 */
function fewerStepsHint(o: SweepOptions, bisection: unknown): string | undefined {
  const mine = bisectionOf(o);
  const other = bisection as Partial<Bisection> | undefined;
  if (
    !mine ||
    other === undefined ||
    !(configHashes(o.config, o.budget, o.seed) as unknown[]).includes(other.run) ||
    other.target !== mine.target ||
    typeof other.steps !== 'number' ||
    other.steps <= mine.steps
  )
    return undefined;
  return (
    `; it is this bisection, run with --bisect-steps ${other.steps}: ${mine.steps} steps would leave its later ` +
    `points out; give --bisect-steps ${other.steps} or more (with --resume, its points are reused)`
  );
}

/** Runs a sweep into `out`; returns its points (also in out/sweep.json). */
export async function runSweep(o: SweepOptions): Promise<SweepPoint[]> {
  const out = resolve(o.out);
  // Recorded with absolute paths and its --out, as the CLI records it: it works typed anywhere.
  if (o.command !== undefined) o = { ...o, command: commandFor(o.command, ranIn(o.cwd), out) };
  const former = o.formerOut === undefined ? undefined : resolve(o.formerOut);
  if (
    o.resume &&
    former !== undefined &&
    former !== out &&
    !holdsSweepOf(out) &&
    holdsSweepOf(former, sweepKeys(o))
  )
    throw new Error(
      `--resume: no sweep in ${out}; the sweep of this command is in ${former} ` +
        `(where an earlier normprune put it by default): continue it with --resume --out ${former}`,
    );
  // As a run's --resume: a folder that holds no sweep (none was begun there: its plan is written
  // before the first point) has nothing to continue, most likely a mistyped --out, where starting
  // the sweep afresh would train every point while the user meant to continue one. A run there is
  // named below.
  if (o.resume && !mayHoldSweep(out)) {
    // The former default folder holding a sweep not known to be this one (its plan gone, points
    // left; a grid that --resume would extend): named, not passed over as nothing to resume.
    const maybe =
      former !== undefined &&
      former !== out &&
      statSync(former, { throwIfNoEntry: false })?.isDirectory() === true &&
      mayHoldSweep(former) &&
      !holdsRun(former);
    throw new Error(
      `--resume: no sweep in ${out}; ` +
        (maybe
          ? `${former}, where an earlier normprune put sweeps of ${o.config.name} by default, holds a sweep ` +
            "not known to be this command's (another grid, seed or budget, or one whose plan is gone): " +
            `if it is, continue it with --resume --out ${former}; else run the command without --resume`
          : 'nothing to resume: run the command without --resume') +
        (existsSync(out) ? '' : ` (${out} does not exist)`),
    );
  }
  // As a run's: a --baseline-from every point would refuse is refused before the folder or plan is
  // made, or (--resume) before a point is continued.
  if (o.baselineFrom !== undefined) checkBaselineFrom(o.baselineFrom, o.config, o.budget, o.seed);
  ensureWritableDir(out, 'sweep');
  // A second sweep (or run) given the same --out is refused while this one writes there.
  const unlock = lockDir(out, `a sweep of ${o.config.name}`);
  // Between points (reading plans, writing the sweep's report) a stop signal quits at once, saying
  // how to go on; while a point runs, the point's own handler checkpoints it.
  const log = o.log ?? (() => undefined);
  let outside: StopSignals | undefined;
  const guard = {
    on: () => {
      outside = new StopSignals(
        log,
        () => `continue the sweep with: ${o.continueWith ?? 'the same command with --resume'}`,
        unlock,
      );
      outside.stage = 'between';
    },
    off: () => {
      outside?.dispose();
      outside = undefined;
    },
    unlock,
  };
  guard.on();
  try {
    return await sweepLocked(o, out, guard);
  } finally {
    guard.off();
    unlock();
  }
}

/**
 * Whether `out` holds a sweep, a sweep's points or a run for --resume to continue (or name); a
 * file, or a folder that cannot be read, is left to {@link ensureWritableDir} to say what it is.
 */
function mayHoldSweep(out: string): boolean {
  if (!existsSync(out)) return false;
  try {
    if (!statSync(out).isDirectory()) return true;
    return holdsSweepFiles(out) || pointFolders(out).length > 0 || holdsRun(out);
  } catch {
    return true;
  }
}

/**
 * Whether `out` holds a sweep (its plan or sweep.json), of one of `keys` when given. A plan or
 * sweep.json that cannot be read is no sweep of them.
 */
function holdsSweepOf(out: string, keys?: readonly string[]): boolean {
  if (keys === undefined) return holdsSweepFiles(out);
  try {
    const plan: unknown = JSON.parse(readFileSync(join(out, PLAN_FILE), 'utf8'));
    if ((keys as unknown[]).includes((plan as { key?: unknown } | null)?.key)) return true;
  } catch {
    // No plan, or not one: the sweep.json may still be this sweep's.
  }
  try {
    return (keys as unknown[]).includes(readSweepFile(out)?.key);
  } catch {
    return false;
  }
}

/**
 * Refuses a folder that holds files of the user's and no sweep (no sweep.json, no plan of an
 * interrupted one): every entry there is the user's. Without --force, any entry; with it, those
 * the sweep would overwrite (its report, plots/pareto.svg, a folder named as a point).
 */
function refuseOthersFiles(out: string, force: boolean | undefined): void {
  if (holdsSweepFiles(out)) return;
  const all = readdirSync(out);
  const leftovers = ourLeftovers(all);
  const foreign = all.filter(
    (e) =>
      e !== LOCK_FILE &&
      e !== TAKEOVER_FILE &&
      !leftovers.includes(e) &&
      !(/^lambda-/.test(e) && holdsRun(join(out, e))),
  );
  if (!foreign.length) return;
  // Its report, its plot in plots/, and a folder named as a point holding files that are no run
  // (the point's run would refuse it); the rule of a run's (overwrittenEntries).
  const clash = overwrittenEntries(out, foreign, (e) =>
    e === 'plots'
      ? (f) => f === 'pareto.svg'
      : e === 'report.md' || e === 'report.html' || e === 'sweep.json' || /^lambda-/.test(e),
  );
  if (clash.length)
    throw new Error(
      `${out} holds files that are not a normprune sweep, which the sweep would overwrite (${firstNames(clash)}); ` +
        'move them away or choose another --out (--force never replaces files of yours)',
    );
  if (!force)
    throw new Error(
      `${out} holds files that are not a normprune sweep (${firstNames(foreign)}); choose another --out, ` +
        'or pass --force to write the sweep beside them (they are kept)',
    );
}

async function sweepLocked(
  o: SweepOptions,
  out: string,
  guard: { on: () => void; off: () => void; unlock: () => void },
): Promise<SweepPoint[]> {
  // An interrupted sweep is refused before any point runs (not after rerunning its finished ones).
  // Only folders holding a run: a folder of the user's .work is theirs, whatever it holds.
  const unfinished = readdirSync(out).filter((d) => {
    const ckpt = join(out, d, '.work', 'checkpoint');
    if (!holdsRun(join(out, d))) return false;
    recoverDir(ckpt); // caught between its renames
    return existsSync(join(ckpt, 'state.json'));
  });
  if (unfinished.length && !o.resume && !o.force) {
    const failed = unfinished.map((d) => failedText(join(out, d, '.work', 'checkpoint')));
    throw new Error(
      `${out} holds an interrupted sweep (unfinished: ${unfinished.map((d, i) => `${d}${failed[i]}`).join(', ')}); ` +
        `continue it with --resume${failed.some(Boolean) ? ' (points that failed run again; a grid without them, given --resume, drops them and their folders)' : ''}, ` +
        'choose another --out, or pass --force to start over',
    );
  }
  if (holdsRun(out)) {
    if (!o.force)
      throw new Error(`${out} holds a run, not a sweep; choose another --out, or pass --force to replace it`);
    removeRun(out);
  }
  refuseOthersFiles(out, o.force);
  // Another finished sweep there (other points, seed or budget) would be left with its points
  // unlisted by the new sweep.json: refused, or with --force removed first.
  const keys = sweepKeys(o);
  const prev = otherSweep(out, o, keys);
  if (prev) {
    if (!o.force)
      throw new Error(
        `${out} holds another sweep (${prev}; choose another --out, or pass --force to replace it`,
      );
    removeSweep(
      prev === DAMAGED ? ['sweep.json', ...pointFolders(out)].map((f) => join(out, f)) : sweepIn(out),
    );
  }
  // --resume reuses the points there of this config, budget and seed (a grid over a sweep's points
  // extends it). A point folder holding a run of another (a sweep of another experiment or config
  // with the same labels) is refused now, as the sweep it belongs to: the point's own run would
  // refuse it only after this sweep's plan had been written over that sweep.
  const grid = o.resume && !o.force ? gridPlan(o) : undefined;
  if (grid && o.targetCompression === undefined)
    for (const g of grid.granularities)
      for (const c of grid.costWeightings)
        for (const l of grid.lambdas) {
          const label = resumedLabel(out, l, g, c);
          const why = otherRunIn(join(out, label), {
            config: withPoint(o.config, l, g, c),
            budget: o.budget,
            seed: o.seed,
          });
          if (why)
            throw new Error(
              `${out} holds a sweep whose point ${label} is a run of another config, budget or seed (${why}); ` +
                '--resume reuses only points of this one: choose another --out, or pass --force to replace its points',
            );
        }
  // An interrupted sweep continued by another (another target, or a grid without its points).
  const plan = readPlan(out, o.force);
  if (plan && isOtherPlan(plan, o, keys) && !o.force)
    throw new Error(
      `${out} holds an interrupted sweep of another plan (${plan.command ? `made by \`${commandFor(plan.command, plan.cwd, out)}\`` : `key ${plan.key}`}); continue it with that command and --resume, ` +
        (Object.keys(plan.failed ?? {}).length && gridLabels(o) !== undefined && !o.resume
          ? `or with --resume a grid holding its points but those that failed (${Object.keys(plan.failed!).join(', ')}), whose folders go, `
          : '') +
        'choose another --out, or pass --force to start over',
    );
  // This sweep, interrupted between two points: a rerun without --resume would train its finished
  // points again (the same results, hours of compute for VGG-16).
  if (plan && !isOtherPlan(plan, o, keys) && !o.resume && !o.force) {
    const finished = [...new Set([...(plan.labels ?? []), ...(plan.started ?? [])])].filter((d) =>
      existsSync(join(out, d, 'results.json')),
    );
    if (finished.length)
      throw new Error(
        `${out} holds an interrupted sweep (finished: ${finished.join(', ')}); continue it with --resume ` +
          '(its finished points are reused), choose another --out, or pass --force to start over',
      );
  }
  // --force starts over: the points the interrupted sweep planned or began go, finished or not
  // (this sweep's own are replaced as they run).
  if (o.force) {
    const begun = plan && isOtherPlan(plan, o, keys) ? [...(plan.labels ?? []), ...(plan.started ?? [])] : [];
    removeSweep([...new Set([...begun, ...unfinished])].map((d) => join(out, d)));
  }
  const log = o.log ?? (() => undefined);
  // Points of the interrupted sweep that failed, left out of this grid: their runs go with them.
  const dropped = droppedFailed(plan, o);
  for (const d of dropped)
    log(
      `sweep point ${d} failed before (${plan!.failed![d]}) and is not in this grid: its folder is removed`,
    );
  removeSweep(dropped.map((d) => join(out, d)));
  // The directory the command ran in, beside it: its relative paths are relative to it.
  const cwd = o.command !== undefined ? ranIn(o.cwd) : undefined;
  const newPlan: SweepPlan = {
    key: keys[0],
    command: o.command,
    cwd,
    labels: gridLabels(o),
    started: [],
    bisection: bisectionOf(o),
  };
  writeJsonAtomic(join(out, PLAN_FILE), newPlan);
  const points: SweepPoint[] = [];
  let first: string | undefined;
  let current = '';
  const runPoint = async (lambda: number, granularity?: string, cost?: string): Promise<RunResults> => {
    const label = o.resume
      ? resumedLabel(out, lambda, granularity, cost)
      : pointLabel(lambda, granularity, cost);
    current = label;
    const dir = join(out, label);
    // A bisection's points are known only as it goes: the plan lists them for --force.
    if (!newPlan.started?.includes(label)) {
      newPlan.started?.push(label);
      writeJsonAtomic(join(out, PLAN_FILE), newPlan);
    }
    const config = withPoint(o.config, lambda, granularity, cost);
    const finished = o.resume ? finishedRun(dir, config, o.budget, o.seed) : undefined;
    log(`sweep point ${label}${finished ? ': finished before, reused' : ''}`);
    const done = finished && rerecordIfConfigGone(dir, finished, o.command, cwd, log);
    if (!done) guard.off();
    const r =
      done ??
      (await runExperiment({
        config,
        budgetName: o.budgetName,
        budget: o.budget,
        seed: o.seed,
        out: dir,
        backend: o.backend,
        threads: o.threads,
        releaseSavedTensorsDuringBackprop: o.releaseSavedTensorsDuringBackprop,
        dataDir: o.dataDir,
        offline: o.offline,
        baselineFrom: o.baselineFrom ?? first,
        keepBaseline: o.baselineFrom === undefined && first === undefined,
        resume: o.resume && existsSync(join(dir, '.work', 'checkpoint', 'state.json')),
        force: o.force,
        stopAfterSteps: o.stopAfterSteps,
        command: o.command,
        cwd,
        continueWith: o.continueWith,
        // A signal that quits the process inside the point (before or after its training) ends
        // the sweep too: its folder's lock goes with the point's.
        onQuit: guard.unlock,
        log,
      }).catch((e: unknown) => {
        // The run's advice would start the whole sweep over (--force, or a rerun without --resume),
        // or name flags the sweep gave itself: for the baseline the points share (kept in the first
        // point's folder, not a --baseline-from of the user's) and for a point's own saved state.
        if (e instanceof KeptBaselineDamaged && o.baselineFrom === undefined)
          throw new Error(
            `sweep point ${label}: the shared baseline in ${e.kept} cannot be used: ${e.problem}; ` +
              `remove ${e.kept} and continue the sweep with --resume: the next point trains the shared baseline again, ` +
              'and the finished points are reused',
            { cause: e },
          );
        if (e instanceof StartOver)
          throw new Error(
            `sweep point ${label}: ${e.problem}; ${e.options.putBack ? `${e.options.putBack}, or ` : ''}` +
              `remove ${e.checkpoint} and continue the sweep with --resume: ` +
              'that point starts over, and the finished points are reused (--force would start the whole sweep over)',
            { cause: e },
          );
        throw e;
      }));
    if (!done) guard.on();
    // The shared baseline is the first point's kept one. A point reused from a finished sweep
    // no longer has it (removed at that sweep's end): the next point trained keeps one instead.
    if (o.baselineFrom === undefined && first === undefined && existsSync(join(dir, '.work', 'baseline')))
      first = dir;
    points.push({
      label,
      dir: label,
      lambda,
      granularity,
      costWeighting: cost,
      compressionPct: r.compressionPct,
      validationErrorPct: 100 * r.compressed.validationError,
      testErrorPct: 100 * r.compressed.testError,
      baselineValidationErrorPct: 100 * r.baseline.validationError,
      baselineTestErrorPct: 100 * r.baseline.testError,
      changeCi95Pp: r.pairedTest?.changeCi95Pp,
    });
    return r;
  };
  let note: string;
  try {
    if (o.targetCompression !== undefined) {
      const target = o.targetCompression;
      await bisectLambda(
        o.config.training.proximal.lambda,
        target,
        o.bisectSteps ?? DEFAULT_BISECT_STEPS,
        (lambda) => runPoint(lambda),
      );
      note = bisectionNote(points, target);
    } else {
      const { lambdas, granularities: grans, costWeightings: costs } = gridPlan(o);
      // A point that fails once it trained (not in its setup, nor by a signal) does not stop the
      // grid: the others run, and the plan records it, for --resume to retry or a grid without it
      // to drop.
      const failed: Record<string, string> = {};
      for (const g of grans)
        for (const c of costs)
          for (const l of lambdas)
            await runPoint(l, g, c).catch((e: unknown) => {
              if (!failedDuringTraining(e)) throw e;
              guard.off(); // on again: runPoint turned it off for the point's own handler
              guard.on();
              failed[current] = (e as Error)?.message ?? String(e);
              // A point that failed after training the shared baseline kept it: the next reuses it.
              const kept = join(out, current, '.work', 'baseline', 'baseline.json');
              if (o.baselineFrom === undefined && first === undefined && existsSync(kept))
                first = join(out, current);
              log(`sweep point ${current} failed: ${failed[current]}`);
            });
      const labels = Object.keys(failed);
      if (labels.length) {
        newPlan.failed = failed;
        writeJsonAtomic(join(out, PLAN_FILE), newPlan);
        throw new Error(
          `sweep: ${labels.length} of ${newPlan.labels?.length} points failed (${labels.map((l) => `${l}: ${failed[l]}`).join('; ')}); ` +
            `the others finished. Once the cause is gone, continue the sweep with: ${o.continueWith ?? 'the same command with --resume'} ` +
            '(finished points are reused, failed ones run again); or continue it with --resume and a grid without the failed points, whose folders go',
        );
      }
      note = `Grid over lambda ${JSON.stringify(lambdas)}${grans[0] ? `, granularity ${JSON.stringify(grans)}` : ''}${costs[0] ? `, cost weighting ${JSON.stringify(costs)}` : ''}; ${o.baselineFrom ? `every point reuses the baseline kept in ${o.baselineFrom}` : 'the baseline is trained once and shared'}.`;
    }
  } catch (e) {
    // Failed before any point wrote anything (a data error, a refused backend): leave the folder
    // as this sweep found it, or a later sweep there would take it for an interrupted one.
    const wrote = (newPlan.started ?? []).some(
      (d) => existsSync(join(out, d)) && readdirSync(join(out, d)).length,
    );
    if (!wrote && !points.length && !plan) {
      for (const d of newPlan.started ?? []) rmSync(join(out, d), { recursive: true, force: true });
      rmSync(join(out, PLAN_FILE), { force: true });
    }
    // The first point's kept baseline stays for `--resume` (and is reused by it).
    if (first && !o.keepBaseline)
      log(`the shared baseline stays in ${join(first, '.work', 'baseline')} until the sweep is finished`);
    throw e;
  }
  // The first point kept the shared baseline for the others; it stays only if asked.
  if (first && !o.keepBaseline) rmSync(join(first, '.work'), { recursive: true, force: true });
  if (first && o.keepBaseline) {
    note += ` The baseline is kept in ${join(first, '.work', 'baseline')}: reuse it with --baseline-from ${first}.`;
    log(`baseline kept in ${join(first, '.work', 'baseline')}`);
  }
  note += ` Budget: ${o.budgetName}. Seed ${o.seed}.`;
  writeSweepFile(out, {
    experiment: o.config.name,
    command: o.command,
    cwd,
    key: keys[0],
    bisection: bisectionOf(o),
    note,
    points,
  });
  writeSweepReport(out, o.config.name, points, note, sweepAnswer(points, o.targetCompression), {
    name: o.budgetName,
    spec: o.budget,
    reduced: isReduced(o.budget),
  });
  rmSync(join(out, PLAN_FILE), { force: true });
  return points;
}
