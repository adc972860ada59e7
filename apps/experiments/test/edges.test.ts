// Figures and verdicts at their edges, each pinned by a case of its own: a miss by less than
// the printed precision, a signed zero, the seeds table's interval and its verdict from the
// paired counts, a reduced seed among full ones, -0.00%, width-multiplier rounding, what counts
// as a reduced budget, a --budget of separators only, lambda 0 in a sweep grid, and a lock
// released after another process of the same pid took it over. (Found unpinned by mutation
// testing: each fails on its mutant.)
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resultsTable, seedsTable, type RunResults, type TableRow } from '../src/index';
import { meanChangeCi95, runReportBlocks, toMarkdown } from '../src/report';
import { firstNames } from '../src/format';
import { applyBudget, configsDir, isReduced, loadExperiment, parseBudget, parseConfig } from '../src/config';
import { lockDir } from '../src/fsutil';
import { resultsRow } from './helpers';

const row = resultsRow;

const targetCellOf = (table: string) => table.trimEnd().split('\n')[2];

// Kills report.ts:615 `d < 4` -> `d < 3` (past() stops at 3 decimals).
test('a miss by less than 0.0005 is printed with 4 decimals, not as the bound itself', () => {
  const r = { ...row('x', 1, 85.3996, 1.6, 1.6) };
  const line = targetCellOf(resultsTable([r]));
  expect(line).toContain('**missed**: 85.3996% removed < 85.4%');
  expect(line).not.toContain('85.400% removed');
});

// Kills report.ts:616 `v >= 0 ? '+'` -> `v > 0 ? '+'` (an error change of exactly 0 loses its sign).
test('an error change of exactly 0 that misses a negative bound reads +0.00 pp', () => {
  const r = {
    ...row('x', 1, 90, 1.6, 1.6),
    target: { minCompressionPct: 85.4, maxErrorDeltaPp: -0.1, met: false },
  };
  expect(targetCellOf(resultsTable([r]))).toContain('**missed**: error +0.00 pp > -0.10 pp');
});

// Kills report.ts:678 mean of the standard errors -> their maximum.
test("the mean-change interval's half-width is 1.96 x the mean of the runs' standard errors", () => {
  const withTest = (seed: number, b: number, c: number) =>
    ({
      ...row('lenet-5', seed, 91, 0.7, 0.7),
      pairedTest: { n: 1000, onlyBaselineWrong: b, onlyCompressedWrong: c, pValue: 1, changeCi95Pp: [0, 0] },
    }) as TableRow;
  // Changes +2.0 and 0 pp; standard errors 100 sqrt(b + c - (c - b)^2 / n) / n: 0.6293 and 0.3162.
  const [lo, hi] = meanChangeCi95([withTest(1, 10, 30), withTest(2, 5, 5)])!;
  const se = ((100 * Math.sqrt(40 - 400 / 1000)) / 1000 + (100 * Math.sqrt(10)) / 1000) / 2;
  expect((lo + hi) / 2).toBeCloseTo(1, 12);
  expect((hi - lo) / 2).toBeCloseTo(1.96 * se, 12);
});

// Kills report.ts:736 exactErrorDeltaPp reading the rounded row figure instead of the counts.
test("the seeds' mean change and its verdict come from the paired counts, not the rounded rows", () => {
  // 3 of 3,200 test images: +0.09375 pp per seed, each row rounded to +0.09 (the bound itself).
  const seed = (s: number) =>
    ({
      ...row('lenet-5', s, 91, 1.6, 1.69),
      pairedTest: {
        n: 3200,
        onlyBaselineWrong: 0,
        onlyCompressedWrong: 3,
        pValue: 0.25,
        changeCi95Pp: [0, 0.3],
      },
    }) as TableRow;
  const t = seedsTable([seed(1), seed(2)])!;
  expect(t).toContain('**missed** on the means: error +0.094 pp > +0.09 pp');
});

// Kills report.ts:269 `< 0.005` -> `< 0.0005` (a tiny negative change reads -0.00%).
test('a stored-parameter change too small to print reads 0.00%, not -0.00%', () => {
  const committed = JSON.parse(
    readFileSync(join(__dirname, '..', 'results', 'lenet-500-300', 'results.json'), 'utf8'),
  ) as RunResults;
  const dir = mkdtempSync(join(tmpdir(), 'np-gap-'));
  try {
    // -0.001%: 1 of 100,000 stored parameters gone.
    const r: RunResults = {
      ...committed,
      baseline: { ...committed.baseline, params: 100000 },
      compressed: { ...committed.compressed, params: 99999 },
    };
    const md = toMarkdown(runReportBlocks(dir, r, []));
    const stored = md.split('\n').find((l) => l.startsWith('| parameters (stored)'))!;
    expect(stored).toMatch(/\| 0\.00% +\|$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Kills format.ts:59 `> 3` -> `>= 3` (exactly three names get a spurious ", ...").
test('firstNames lists three names without "..." and marks a fourth', () => {
  expect(firstNames(['c', 'a', 'b'])).toBe('a, b, c');
  expect(firstNames(['d', 'c', 'a', 'b'])).toBe('a, b, c, ...');
});

// Kills report.ts:789 `g.some((r) => r.reduced)` -> `g.every(...)`: one reduced seed qualifies the verdict.
test("the seeds' verdict is qualified when any seed ran at a reduced budget", () => {
  const rows = [
    { ...row('x', 1, 90, 1.6, 1.62), reduced: true },
    { ...row('x', 2, 90, 1.6, 1.62), reduced: false },
  ];
  expect(seedsTable(rows)).toContain('met on the means at a reduced budget only, not a reproduction');
});

const widths = (cfg: ReturnType<typeof loadExperiment>) =>
  cfg.model.layers.flatMap((l) => (l.type === 'dense' ? [l.units] : l.type === 'conv2d' ? [l.filters] : []));

// Kills config.ts:997 `Math.round(l.units * m)` -> `Math.floor(...)`: a width multiplier rounds to the nearest unit.
test('a width multiplier rounds each hidden width to the nearest unit and keeps the logits', () => {
  const cfg = loadExperiment('lenet-500-300');
  // 500 x 0.125 = 62.5 and 300 x 0.125 = 37.5 round up; the 10 logits stay.
  expect(widths(applyBudget(cfg, { widthMultiplier: 0.125 }))).toEqual([63, 38, 10]);
});

// Kills config.ts:998 `Math.max(1, ...)` -> `Math.max(0, ...)` for convolutions: a layer keeps one filter.
test('a width multiplier never leaves a convolution without filters', () => {
  const cfg = loadExperiment('lenet-5');
  // 20 x 0.01 = 0.2 rounds to 0: the layer keeps 1 filter; 50 x 0.01 = 0.5 rounds to 1.
  expect(widths(applyBudget(cfg, parseBudget('widthMultiplier=0.01', cfg).budget))).toEqual([1, 1, 5, 10]);
});

// Kills config.ts:1015 `(budget.widthMultiplier ?? 1) !== 1` -> `budget.widthMultiplier !== undefined`.
test('widthMultiplier=1 is the experiment as written, not a reduced budget', () => {
  const cfg = loadExperiment('lenet-500-300');
  const b = parseBudget('widthMultiplier=1', cfg).budget;
  expect(b.widthMultiplier).toBe(1);
  expect(isReduced(b)).toBe(false);
  expect(isReduced({ widthMultiplier: 0.5 })).toBe(true);
});

// Kills config.ts:1011 dropping `budget.trainSubset !== undefined ||` (and guards its testSubset twin).
test('a budget that only subsets the training or test images is reduced', () => {
  const cfg = loadExperiment('lenet-500-300');
  expect(isReduced(parseBudget('trainSubset=1000', cfg).budget)).toBe(true);
  expect(isReduced(parseBudget('testSubset=1000', cfg).budget)).toBe(true);
});

// A budget of separators only gives nothing, as an empty one does.
test('a --budget of only separators is refused as empty', () => {
  const cfg = loadExperiment('lenet-500-300');
  for (const spec of [',', ' , ,']) expect(() => parseBudget(spec, cfg)).toThrow(/^--budget: empty; give /);
});

// Kills config.ts:722 `!(x >= 0)` -> `!(x > 0)`: lambda 0 (no penalty, a control point) is a valid grid value.
test("a config's sweep grid may hold lambda 0, and not a negative lambda", () => {
  const json = JSON.parse(readFileSync(join(configsDir(), 'lenet-500-300.json'), 'utf8'));
  expect(parseConfig({ ...json, sweep: { lambda: [0, 0.001] } }).sweep?.lambda).toEqual([0, 0.001]);
  expect(() => parseConfig({ ...json, sweep: { lambda: [-0.001] } })).toThrow(/sweep\.lambda/);
});

// Kills a release that skips fsutil.ts's stillOurs: releasing a lock must not remove a lock another
// process with the same pid (another container's node, often pid 1) has taken over since.
test('releasing a lock leaves a lock of the same pid that replaced it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'np-gap-lock-'));
  try {
    const lock = join(dir, '.normprune.lock');
    const release = lockDir(dir, 'ours');
    // Taken over: a new lock file (another inode: written beside it, then moved over it) naming
    // this same pid.
    writeFileSync(`${lock}.new`, `${process.pid}\nanother container's run\n`);
    renameSync(`${lock}.new`, lock);
    release();
    expect(readFileSync(lock, 'utf8')).toContain("another container's run");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
