// The format of a sweep's sweep.json: what `normprune sweep` writes, and the one
// reader that `report`, `sweep` (over an earlier sweep in its --out) and a run's
// --force (removing a sweep its --out held) go through.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { SweepPoint } from './report.js';
import { parseJsonFile, shapeProblem, unmeasuredAsNaN, writeJsonAtomic, type Shape } from './fsutil.js';

/**
 * A bisection's path: its run (config, budget and seed: configHash) and target; the one with
 * more `steps` goes further along it, so it completes the other.
 */
export interface Bisection {
  run: string;
  target: number;
  steps: number;
}

/** What a sweep.json holds. */
export interface SweepFile {
  /** The experiment (config name) swept. */
  experiment: string;
  /** The command that ran the sweep, as recorded (absent where it was not given). */
  command?: string;
  /**
   * The absolute directory `command` ran in, its relative paths' base (absent in sweeps of
   * versions that did not record it, and in a sweep exported by `report --export`).
   */
  cwd?: string;
  /** What makes two sweeps the same (absent in sweeps written before it existed, compared by their command). */
  key?: string;
  /** A bisection's run, target and steps; absent for a grid. Read as given: its fields are checked where used. */
  bisection?: Partial<Bisection>;
  /** What the sweep's report says about it (shared baseline, budget, seed). */
  note: string;
  /** The points, in the order they ran. */
  points: SweepPoint[];
}

/** The fields every version of normprune has written, which `report` reads. */
const SWEEP_SHAPE: Shape = {
  experiment: 'string',
  note: 'string',
  points: [
    {
      label: 'string',
      dir: 'string',
      lambda: 'number',
      compressionPct: 'number',
      validationErrorPct: 'number',
      testErrorPct: 'number',
      baselineValidationErrorPct: 'number',
      baselineTestErrorPct: 'number',
    },
  ],
};

/** The sweep.json of a sweep folder. */
export function sweepFile(dir: string): string {
  return join(dir, 'sweep.json');
}

/**
 * Thrown by {@link readSweepFile} for a sweep.json that cannot be read, is not JSON (a write cut
 * short), or is not what a sweep writes; its message names the file and what is wrong, and
 * each caller adds what to do about it.
 */
export class SweepFileError extends Error {
  constructor(
    /** The sweep.json. */
    readonly file: string,
    /** What is wrong with it. */
    readonly why: string,
  ) {
    super(`${file} is not the sweep.json of a normprune sweep: ${why}`);
    this.name = 'SweepFileError';
  }
}

/**
 * The sweep.json of the sweep folder `dir`, checked against what a sweep writes; undefined when
 * `dir` holds none. An error rate written as null (not measured) reads back as NaN. Anything
 * else throws a {@link SweepFileError} naming the file.
 */
export function readSweepFile(dir: string): SweepFile | undefined {
  const file = sweepFile(dir);
  if (!existsSync(file)) return undefined;
  let sweep: unknown;
  try {
    sweep = parseJsonFile(file, unmeasuredAsNaN, 'it');
  } catch (e) {
    throw new SweepFileError(file, (e as Error).message);
  }
  const why = shapeProblem(sweep, SWEEP_SHAPE) ?? optionalProblem(sweep as Record<string, unknown>);
  if (why) throw new SweepFileError(file, why);
  return sweep as SweepFile;
}

/** What is wrong with the optional fields of a sweep.json, if anything. */
function optionalProblem(sweep: Record<string, unknown>): string | undefined {
  for (const k of ['command', 'cwd', 'key'] as const) {
    const v = sweep[k];
    if (v !== undefined && typeof v !== 'string') return `"${k}" is ${JSON.stringify(v)}, not a string`;
  }
  const b = sweep['bisection'];
  if (b !== undefined && (b === null || typeof b !== 'object' || Array.isArray(b)))
    return `"bisection" is ${JSON.stringify(b)}, not an object`;
  return undefined;
}

/** Writes the sweep.json of the sweep folder `dir` (atomically: a reader sees the old file or the new one). */
export function writeSweepFile(dir: string, sweep: SweepFile): void {
  writeJsonAtomic(sweepFile(dir), sweep);
}
