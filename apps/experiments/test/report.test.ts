// The results tables: one row per run, and the means over seeds.
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { effectiveBudget } from '../src/config';
import {
  loadExperiment,
  resultsTable,
  seedsTable,
  tableRow,
  type RunResults,
  type TableRow,
} from '../src/index';
import {
  runReportBlocks,
  seedsChangeCi95,
  studentTCentral,
  studentTQuantile,
  targetMet,
  toMarkdown,
  writeSweepReport,
} from '../src/report';
import { cli, resultsRow } from './helpers';

const row = resultsRow;

test('seedsTable gives the mean and sample sd over seeds, and judges the target on the means', () => {
  const rows = [
    row('lenet-500-300', 1, 87, 1.64, 1.85),
    row('lenet-500-300', 2, 88, 1.63, 1.87),
    row('lenet-500-300', 3, 89, 1.63, 1.76),
    row('lenet-5', 1, 91, 0.95, 0.97),
  ];
  const t = seedsTable(rows)!;
  const lines = t.split('\n');
  // Header, rule, and one row: lenet-5 has a single seed.
  expect(lines).toHaveLength(3);
  const cells = lines[2].split('|').map((c) => c.trim());
  expect(cells.slice(1, 12)).toEqual([
    'lenet-500-300',
    'full',
    '1, 2, 3',
    '88.00% ± 1.00',
    '1.63% -> 1.83%',
    '+0.29 pp',
    '+0.21, +0.24, +0.13',
    '+0.19 pp ± 0.06',
    // No interval: these rows carry no paired test.
    '',
    // mean +- t(0.975, 2) sd / sqrt(3) of +0.21, +0.24, +0.13: [+0.052, +0.335] (scipy's t.ppf).
    '[+0.05, +0.33 pp]',
    '**missed** on the means: error +0.19 pp > +0.09 pp (>= 85.4% removed, error <= +0.09 pp)',
  ]);
  // Every line is padded to the same width (the layout Prettier keeps).
  expect(new Set(lines.map((l) => l.length)).size).toBe(1);
  const met = seedsTable([row('x', 1, 90, 1.6, 1.65), row('x', 2, 90, 1.6, 1.6)])!;
  expect(met).toMatch(/\| met on the means/);
});

test('a miss smaller than the printed precision is printed with the digits that show it', () => {
  // lenet-5-fc's bound is no increase: +0.08, +0.08 and -0.15 pp average +0.0033 pp.
  const fc = (seed: number, removed: number, base: number, comp: number) => ({
    ...row('lenet-5-fc', seed, removed, base, comp),
    target: { minCompressionPct: 82.2, maxErrorDeltaPp: 0, met: false },
  });
  const t = seedsTable([fc(1, 85.41, 0.73, 0.81), fc(2, 78.45, 0.7, 0.78), fc(3, 82.96, 0.72, 0.57)])!;
  expect(t).toMatch(/\*\*missed\*\* on the means: error \+0\.003 pp > \+0\.00 pp \(/);
  const short = seedsTable([fc(1, 82.199, 0.7, 0.6), fc(2, 82.199, 0.7, 0.6)])!;
  expect(short).toMatch(/\*\*missed\*\* on the means: 82\.199% removed < 82\.2% \(/);
  expect(resultsTable([fc(1, 82.3, 0.7, 0.7)])).toMatch(/\| met \(>= 82\.2% removed/);
});

test("seedsTable averages each seed's exact compression, not its figure rounded to 2 decimals", () => {
  // The committed lenet-500-300-output rows: 85.8909%, 87.5374% and 88.4265% removed average
  // 87.2849%, while their rounded 85.89, 87.54 and 88.43 average 87.2867.
  const results = join(__dirname, '..', 'results');
  const rows = ['', 'seeds/seed-2/', 'seeds/seed-3/'].map(
    (d) => JSON.parse(readFileSync(join(results, `${d}lenet-500-300-output.json`), 'utf8')) as TableRow,
  );
  expect(seedsTable(rows)).toMatch(/\| 1, 2, 3 +\| 87\.28% ± 1\.29 +\|/);
  // Two seeds that each remove 82.196% (rows 82.20%) miss 82.2% on the means, as each row does.
  const short = (seed: number) => ({
    ...row('lenet-5-fc', seed, 82.2, 0.7, 0.6),
    baseline: { ...row('x', seed, 0, 0.7, 0.7).baseline, params: 100000 },
    compressed: { ...row('x', seed, 0, 0.7, 0.6).compressed, nonzeros: 17804 },
    target: { minCompressionPct: 82.2, maxErrorDeltaPp: 0, met: false },
  });
  expect(seedsTable([short(1), short(2)])).toMatch(
    /\*\*missed\*\* on the means: 82\.196% removed < 82\.2% \(/,
  );
});

test("seedsTable gives an interval of the mean change from the seeds' paired tests", () => {
  const withTest = (seed: number, b: number, c: number) => ({
    ...row('lenet-5', seed, 91, 0.7, 0.7 + (c - b) / 100),
    pairedTest: { n: 10000, onlyBaselineWrong: b, onlyCompressedWrong: c, pValue: 1, changeCi95Pp: [0, 0] },
  });
  const rows = [withTest(1, 20, 32), withTest(2, 25, 37), withTest(3, 30, 30)] as TableRow[];
  // Changes +0.12, +0.12, 0 pp; standard errors sqrt(b + c - (c - b)^2 / n) / n, in pp.
  const se = [
    [20, 32],
    [25, 37],
    [30, 30],
  ].map(([b, c]) => (100 * Math.sqrt(b + c - (c - b) ** 2 / 10000)) / 10000);
  const half = (1.96 * (se[0] + se[1] + se[2])) / 3;
  const want = `[${(0.08 - half).toFixed(2)}, +${(0.08 + half).toFixed(2)} pp]`;
  expect(seedsTable(rows)).toContain(`| ${want} `);
  // One seed without a paired test: no interval from the paired tests; the t-interval over the
  // seeds' changes (+0.12, +0.12, 0) is there.
  const cells = seedsTable([...rows.slice(0, 2), row('lenet-5', 3, 91, 0.7, 0.7)])!
    .split('\n')[2]
    .split('|')
    .map((c) => c.trim());
  expect(cells.slice(9, 11)).toEqual(['', '[-0.09, +0.25 pp]']);
  // Seeds that agree exactly give a zero-width interval, not the paired test's "never disagree".
  expect(seedsTable([row('x', 1, 90, 1, 1), row('x', 2, 90, 1, 1)])).toMatch(
    /\| \[\+0\.00, \+0\.00 pp\] +\|/,
  );
});

test('seedsTable says a reduced budget, in the budget cell and the target cell, as the rows do', () => {
  const small = (seed: number) => ({
    ...row('lenet-500-300', seed, 90, 1.6, 1.6),
    budget: 'small',
    reduced: true,
  });
  const t = seedsTable([small(1), small(2)])!;
  expect(resultsTable([small(1)])).toMatch(
    /\| small \(reduced\) +\|.*\| met at a reduced budget only, not a reproduction \(/,
  );
  expect(t).toMatch(/\| small \(reduced\) +\| 1, 2 +\|/);
  expect(t).toMatch(/\| met on the means at a reduced budget only, not a reproduction \(>= 85\.4% removed/);
});

test('seedsTable is undefined without repeated seeds, and a seed run twice counts once', () => {
  expect(seedsTable([row('a', 1, 90, 1, 1), row('b', 1, 90, 1, 1)])).toBeUndefined();
  expect(seedsTable([row('a', 1, 90, 1, 1), row('a', 1, 90, 1, 1.5)])).toBeUndefined();
});

test('seedsTable and resultsTable keep configs that share a name apart (an extends file keeps its base name)', () => {
  const a = (seed: number, removed: number) => ({
    ...row('lenet-500-300', seed, removed, 1, 1.1),
    configId: 'aaaaaaaaaaaa',
  });
  const b = (seed: number, removed: number) => ({
    ...row('lenet-500-300', seed, removed, 1, 1.2),
    configId: 'bbbbbbbbbbbb',
  });
  const t = seedsTable([a(1, 87), b(2, 20), a(2, 88), b(3, 22)])!;
  const lines = t.split('\n').filter((l) => l.startsWith('| lenet-500-300'));
  expect(lines).toHaveLength(2);
  expect(lines[0]).toMatch(/^\| lenet-500-300 \(config aaaaaaaaaaaa\) +\| full +\| 1, 2 +\| 87\.50% ± 0\.71/);
  expect(lines[1]).toMatch(/^\| lenet-500-300 \(config bbbbbbbbbbbb\) +\| full +\| 2, 3 +\| 21\.00% ± 1\.41/);
  // One config alone keeps its plain name; rows without a configId (older runs) group as before.
  expect(seedsTable([a(1, 87), a(2, 88)])!).toMatch(/\| lenet-500-300 +\| full +\| 1, 2 /);
  expect(seedsTable([row('x', 1, 87, 1, 1), row('x', 2, 88, 1, 1)])!).toMatch(/\| x +\| full +\| 1, 2 /);
  // The per-run table labels them alike, so that two runs of one name and seed can be told apart.
  const runs = resultsTable([a(1, 87), b(1, 20), a(2, 88)]).split('\n');
  expect(runs.filter((l) => l.startsWith('| lenet-500-300 (config aaaaaaaaaaaa) | 1 ')).length).toBe(1);
  expect(runs.filter((l) => l.startsWith('| lenet-500-300 (config bbbbbbbbbbbb) | 1 ')).length).toBe(1);
  expect(runs.filter((l) => l.startsWith('| lenet-500-300 (config aaaaaaaaaaaa) | 2 ')).length).toBe(1);
  expect(resultsTable([a(1, 87), a(2, 88), row('lenet-500-300', 3, 86, 1, 1)])).not.toMatch(/\(config /);
  // Another budget is another row name already: only runs of one name and budget are compared.
  expect(resultsTable([a(1, 87), { ...b(1, 20), budget: 'tiny' }])).not.toMatch(/\(config /);
  // An older row (no configId) beside new runs of one config counts as a seed of it.
  expect(seedsTable([row('lenet-500-300', 3, 86, 1, 1), a(1, 87), a(2, 88)])!).toMatch(
    /\| lenet-500-300 +\| full +\| 1, 2, 3 /,
  );
});

test('resultsTable has one row per run with its seed', () => {
  const t = resultsTable([row('lenet-500-300', 1, 87, 1.64, 1.85), row('lenet-500-300', 2, 88, 1.63, 1.87)]);
  const lines = t.trimEnd().split('\n');
  expect(lines).toHaveLength(4);
  expect(lines[0]).toMatch(/^\| experiment +\| seed +\| budget +\|/);
  expect(lines[3]).toMatch(/^\| lenet-500-300 +\| 2 +\| full +\|/);
  expect(lines[3]).toMatch(/\*\*missed\*\*: error \+0\.24 pp > \+0\.09 pp/);
  // A row with a paired test shows the interval of its change; one without leaves the cell empty.
  const paired = {
    ...row('lenet-5', 1, 91, 0.73, 0.85),
    pairedTest: {
      onlyBaselineWrong: 9,
      onlyCompressedWrong: 21,
      pValue: 0.0428,
      changeCi95Pp: [0.006, 0.241],
    },
  } as TableRow;
  const [, , a, b] = resultsTable([paired, row('lenet-5', 2, 91, 0.73, 0.85)])
    .trimEnd()
    .split('\n');
  expect(a).toMatch(/\| \+0\.12 pp +\| \[\+0\.01, \+0\.24 pp\] +\|/);
  expect(b).toMatch(/\| \+0\.12 pp +\| +\|/);
});

test("Student's t quantiles agree with scipy's, and the seeds' interval is the t-interval", () => {
  // scipy.stats.t.ppf(0.975, df), scipy 1.17.1.
  const scipy: [number, number][] = [
    [1, 12.706204736174694],
    [2, 4.302652729749462],
    [3, 3.1824463052837078],
    [4, 2.7764451051977934],
    [5, 2.5705818356363146],
    [8, 2.306004135204166],
    [29, 2.045229642132703],
    [200, 1.9718962236339088],
  ];
  for (const [df, t] of scipy) {
    expect(Math.abs(studentTQuantile(0.95, df) - t)).toBeLessThan(1e-9 * t);
    expect(studentTCentral(t, df)).toBeCloseTo(0.95, 12);
  }
  expect(seedsChangeCi95([0.5])).toBeUndefined();
  const [lo, hi] = seedsChangeCi95([0.15, -0.04, 0.01])!;
  // mean 0.04, variance 0.0097: half-width 4.3027 x sqrt(0.0097) / sqrt(3) = 0.2447.
  expect((lo + hi) / 2).toBeCloseTo(0.04, 12);
  expect((hi - lo) / 2).toBeCloseTo((4.302652729749462 * Math.sqrt(0.0097)) / Math.sqrt(3), 9);
});

test('report --table over rows of several seeds prints both tables', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'normprune-report-'));
  try {
    const files = [row('lenet-500-300', 1, 87, 1.64, 1.85), row('lenet-500-300', 2, 88, 1.63, 1.87)].map(
      (r) => {
        const f = join(dir, `seed-${r.seed}.json`);
        writeFileSync(f, JSON.stringify(r));
        return f;
      },
    );
    const r = await cli(['report', '--table', ...files]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^\| lenet-500-300 +\| 2 +\| full +\|/m);
    expect(r.out).toMatch(/Across seeds[^\n]*\n\n\| experiment +\| budget +\| seeds/);
    // Each interval allows for one source of variation only: the caption says which.
    expect(r.out).toMatch(
      /Across seeds \([^)]*the first interval of the mean change allows for the sampling of the test images and not for the spread between seeds, the t-interval over seeds for that spread and not for the test images, which the seeds share\)/,
    );
    expect(r.out).toMatch(/\| lenet-500-300 +\| full +\| 1, 2 +\| 87\.50% ± 0\.71 +\|/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe("the report's paired-test paragraph", () => {
  const committed = JSON.parse(
    readFileSync(join(__dirname, '..', 'results', 'lenet-500-300-output', 'results.json'), 'utf8'),
  ) as RunResults;
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'np-paired-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const report = (r: RunResults) => toMarkdown(runReportBlocks(dir, r, []));

  test('gives the counts, the exact interval and the p-value', () => {
    const md = report(committed);
    expect(md).toMatch(/gets 35 right that the baseline gets wrong, and 58 wrong .* \(80 both get wrong\)/);
    expect(md).toMatch(/95% interval \[\+0\.03, \+0\.41 pp\] \(exact, given the 93 samples/);
  });

  test('a run that misses a bound by less than the rounding says so in its report and row, as results.json does', () => {
    // 87.29...% removed against a bound 0.004 above it: the row rounds it to the bound's 2 decimals.
    const removed = committed.compressionPct;
    const bound = Number((removed + 0.004).toFixed(3));
    expect(removed.toFixed(2)).toBe(bound.toFixed(2));
    const r = { ...committed, target: { ...committed.target!, minCompressionPct: bound, met: false } };
    const cell = tableRow(r).targetText!;
    expect(cell).toMatch(
      new RegExp(`^\\*\\*missed\\*\\*: ${removed.toFixed(3).replace('.', '\\.')}% removed < ${bound}%`),
    );
    expect(report(r)).toContain(cell);
    // The results table shows the run's own verdict, not one recomputed from its rounded figures.
    expect(resultsTable([tableRow(r)])).toContain(cell);
  });

  test('a run that removes exactly the bound meets it, though the division leaves it 1e-14 short', () => {
    // 146 non-zero of 1,000 parameters: 100 * (1 - 146 / 1000) is 85.39999999999999 in doubles.
    const params = 1000;
    const nonzeros = 146;
    const compressionPct = 100 * (1 - nonzeros / params);
    expect(compressionPct).toBeLessThan(85.4);
    const r = {
      ...committed,
      baseline: { ...committed.baseline, params },
      compressed: { ...committed.compressed, nonzeros },
      compressionPct,
      errorDeltaPp: 0.09,
      target: { minCompressionPct: 85.4, maxErrorDeltaPp: 0.09, met: true },
    };
    expect(tableRow(r).targetText).toBe('met (>= 85.4% removed, error <= +0.09 pp)');
    // The run's own verdict (results.json `target.met`) is decided by the same rule.
    expect(targetMet(r.target, compressionPct, 100 * (0.0118 - 0.0109))).toBe(true);
    expect(targetMet(r.target, 100 * (1 - 147 / 1000), 0.09)).toBe(false);
    expect(targetMet(r.target, compressionPct, 0.1)).toBe(false);
    // A figure that is not a number meets nothing.
    expect(targetMet(r.target, NaN, 0)).toBe(false);
    expect(targetMet(r.target, 90, NaN)).toBe(false);
  });

  test('models that never disagree get no interval, not a certain [+0.00, +0.00 pp]', () => {
    const pairedTest = {
      ...committed.pairedTest!,
      onlyBaselineWrong: 0,
      onlyCompressedWrong: 0,
      changeCi95Pp: [0, 0] as [number, number],
      pValue: 1,
    };
    const md = report({ ...committed, pairedTest, errorDeltaPp: 0 });
    expect(md).toMatch(
      /classify every one of them alike \(80 both get wrong\), so the test error change is exactly 0 on these images, and they give no interval/,
    );
    expect(md).not.toMatch(/\[\+0\.00, \+0\.00 pp\]/);
  });
});

describe('"parameters removed" is one figure on a report page', () => {
  const committed = JSON.parse(
    readFileSync(join(__dirname, '..', 'results', 'lenet-500-300-output', 'results.json'), 'utf8'),
  ) as RunResults;
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'np-removed-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** The page for a baseline of `params` parameters, `zeros` of them exactly 0, compressed to `nonzeros`. */
  function page(params: number, zeros: number, nonzeros: number): string {
    const r: RunResults = {
      ...committed,
      baseline: { ...committed.baseline, params, nonzeros: params - zeros },
      compressed: { ...committed.compressed, nonzeros },
      // As the pipeline computes it: 1 - non-zero after / parameters before.
      compressionPct: 100 * (1 - nonzeros / params),
    };
    return toMarkdown(runReportBlocks(dir, r, []));
  }
  const thisRun = (md: string) => md.match(/^\| parameters removed \| [^|]+ \| ([^|]+) \|$/m)![1].trim();
  const change = (md: string) =>
    md.match(/^\| parameters \(non-zero\) \| [^|]+ \| [^|]+ \| ([^|]+) \|$/m)![1].trim();

  test.each([
    // The audit's r1: 42 exact zeros; against the non-zeros the change would read -19.50%.
    {
      params: 431080,
      zeros: 42,
      nonzeros: 346997,
      removed: '19.51%',
      note: '42 parameters exactly 0',
    },
    // One exact zero, where the two ways round apart (18.61% against -18.60%).
    { params: 266610, zeros: 1, nonzeros: 217007, removed: '18.61%', note: '1 parameter exactly 0' },
    // Many zeros, nothing pruned: the zeros count as removed, in both places.
    { params: 1000, zeros: 100, nonzeros: 900, removed: '10.00%', note: '100 parameters exactly 0' },
  ])(
    'a baseline with $zeros exact zeros: the change column says what "parameters removed" says, and why',
    (c) => {
      const md = page(c.params, c.zeros, c.nonzeros);
      expect(thisRun(md)).toBe(c.removed);
      expect(change(md)).toBe(`-${c.removed}`);
      expect(md).toContain(
        `"parameters removed" is 1 - non-zero parameters after / parameters before, and so is the change in non-zero ` +
          `parameters above: the baseline already had ${c.note}, which count as removed.`,
      );
    },
  );

  test('a baseline without zeros: the same figure, and no note', () => {
    const md = page(545810, 0, 69296);
    expect(thisRun(md)).toBe('87.30%');
    expect(change(md)).toBe('-87.30%');
    expect(md).toContain('"parameters removed" is 1 - non-zero parameters after / parameters before. MACs');
    // Nothing removed is 0.00%, not -0.00%.
    expect(change(page(1000, 0, 1000))).toBe('0.00%');
  });
});

describe('what a report says about its budget, data and plots', () => {
  const committed = JSON.parse(
    readFileSync(join(__dirname, '..', 'results', 'lenet-500-300', 'results.json'), 'utf8'),
  ) as RunResults;
  const metrics = readFileSync(join(__dirname, '..', 'results', 'lenet-500-300', 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'np-report-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('the recorded reduced flag decides the Reduced budget statement; no validation split is said so', () => {
    const full = toMarkdown(runReportBlocks(dir, committed, []));
    expect(full).not.toMatch(/Reduced budget/);
    expect(full).toMatch(/5,000 validation images \(held out of the training set; all tuning uses them\)/);
    // validation=0 with reduced false (as results written before validation counted): no statement,
    // and no claim that tuning used 0 images.
    const all = {
      ...committed,
      budget: { name: 'custom', spec: { validation: 0 }, reduced: false },
      dataset: { ...committed.dataset, train: 60000, validation: 0 },
    };
    const md = toMarkdown(runReportBlocks(dir, all, []));
    expect(md).not.toMatch(/Reduced budget/);
    expect(md).toMatch(
      /60,000 training images, no validation split \(every training image trains; nothing was tuned on this run\)/,
    );
    const tiny = { ...committed, budget: { name: 'tiny', spec: { trainSubset: 256 }, reduced: true } };
    expect(toMarkdown(runReportBlocks(dir, tiny, []))).toMatch(
      /\*\*Reduced budget\*\* \(`tiny`: \{"trainSubset":256\}\): this run's data/,
    );
  });

  test("a preset's note is said only for the preset as it is, not once settings changed it (audit 29)", () => {
    const note = 'reduced for a 2-core CPU: 15+12+4 epochs (about 30 minutes on an idle core)';
    const spec = { trainSubset: 20000, epochs: { baseline: 15, proximal: 12, finetune: 4 }, note };
    const as = (name: string, s: object) => ({
      ...committed,
      budget: { name, spec: s, reduced: true, note },
    });
    expect(toMarkdown(runReportBlocks(dir, as('reduced', spec), []))).toContain(
      'differ from the config as written (reduced for a 2-core CPU: 15+12+4 epochs (about 30 minutes on an idle core)); its figures',
    );
    // As an older normprune recorded `--budget reduced,epochs.baseline=31`: the preset's note kept.
    const custom = toMarkdown(
      runReportBlocks(dir, as('reduced+custom', { ...spec, epochs: { ...spec.epochs, baseline: 31 } }), []),
    );
    expect(custom).toMatch(
      /\*\*Reduced budget\*\* \(`reduced\+custom`: \{"trainSubset":20000,"epochs":\{"baseline":31,"proximal":12,"finetune":4\}\}\): this run's data, validation split, batch size, width or epochs differ from the config as written; its figures/,
    );
    expect(custom).not.toContain('15+12+4');
  });

  test('the dead-group plot is titled for what it shows and says why it ends below parameters removed', () => {
    const md = toMarkdown(runReportBlocks(dir, committed, metrics));
    const svg = readFileSync(join(dir, 'plots', 'compression.svg'), 'utf8');
    expect(svg).toMatch(/Weights in dead groups during proximal training/);
    expect(svg).not.toMatch(/Compression during/);
    expect(md).toMatch(/a lower bound on the parameters removed, which also count what surgery removes/);
  });

  test('a sweep report states a reduced budget, and shows granularity and cost columns only when varied', () => {
    const point = (lambda: number, extra: object = {}) => ({
      label: `lambda-${lambda}`,
      dir: `lambda-${lambda}`,
      lambda,
      compressionPct: 50 + 100 * lambda,
      validationErrorPct: 2,
      testErrorPct: 2,
      baselineValidationErrorPct: 1.5,
      baselineTestErrorPct: 1.5,
      ...extra,
    });
    const tiny = { name: 'tiny', spec: { trainSubset: 256 }, reduced: true };
    writeSweepReport(
      dir,
      'lenet-500-300',
      [point(0.001), point(0.002)],
      'Grid over lambda.',
      undefined,
      tiny,
    );
    const md = readFileSync(join(dir, 'report.md'), 'utf8');
    expect(md).toMatch(/\*\*Reduced budget\*\* \(`tiny`: \{"trainSubset":256\}\): the sweep's data/);
    const head = md.split('\n').find((l) => l.startsWith('| run'))!;
    expect(head).not.toMatch(/granularity|cost weighting/);
    writeSweepReport(
      dir,
      'lenet-500-300',
      [point(0.001, { granularity: 'input' }), point(0.001, { granularity: 'output' })],
      'Grid.',
      undefined,
      { name: 'full', spec: {}, reduced: false },
    );
    const varied = readFileSync(join(dir, 'report.md'), 'utf8');
    expect(varied).not.toMatch(/Reduced budget/);
    expect(varied.split('\n').find((l) => l.startsWith('| run'))).toMatch(/\| granularity +\| removed/);
    expect(varied).toMatch(/\| input +\| 50\.10%/);
  });
});

test('effectiveBudget drops epoch caps that cap nothing, so such a run is the run without them', () => {
  const cfg = loadExperiment('lenet-500-300');
  const e = cfg.training;
  expect(effectiveBudget(cfg, { epochs: { baseline: e.baseline.epochs + 5 } })).toEqual({});
  expect(
    effectiveBudget(cfg, {
      trainSubset: 100,
      epochs: { baseline: e.baseline.epochs, proximal: 1, finetune: e.finetune.epochs + 1 },
    }),
  ).toEqual({ trainSubset: 100, epochs: { proximal: 1 } });
  expect(effectiveBudget(cfg, { batchSize: 64 })).toEqual({ batchSize: 64 });
});

test('the committed reports in results/ are what `normprune report` writes from their results.json today', async () => {
  // A change to the report code must come with the committed reports rewritten (`normprune
  // report` over each results/ folder), or readers of results/ see what the code no longer says.
  const results = join(__dirname, '..', 'results');
  const copy = mkdtempSync(join(tmpdir(), 'normprune-results-'));
  try {
    cpSync(results, copy, { recursive: true });
    const dirs = (readdirSync(copy, { recursive: true }) as string[])
      .filter((f) => basename(f) === 'results.json' || basename(f) === 'sweep.json')
      .map((f) => join(copy, dirname(f)))
      .sort();
    expect(dirs.length).toBeGreaterThan(100);
    const { code, out } = await cli(['report', ...dirs]);
    expect(code).toBe(0);
    const written = out.split('\n').filter((l) => l.startsWith('wrote '));
    expect(written.length).toBeGreaterThanOrEqual(dirs.length);
    const stale: string[] = [];
    for (const f of readdirSync(copy, { recursive: true }) as string[]) {
      if (!/(^|\/)(report\.(md|html)|[^/]+\.svg)$/.test(f)) continue;
      if (readFileSync(join(copy, f), 'utf8') !== readFileSync(join(results, f), 'utf8')) stale.push(f);
    }
    expect(stale).toEqual([]);
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}, 60_000);

describe('committed table rows', () => {
  // results/<experiment>.json is `report --json` of results/<experiment>/: rewriting a row
  // must give the committed one, so a field added to every row (a preset budget's settings,
  // say) cannot slip in without the rows being regenerated.
  const root = join(__dirname, '..', 'results');
  const rows = readdirSync(root).filter((f) => f.endsWith('.json'));

  it.each(rows)('%s is what tableRow makes of its run', (file) => {
    const committed = JSON.parse(readFileSync(join(root, file), 'utf8')) as TableRow;
    const results = JSON.parse(
      readFileSync(join(root, basename(file, '.json'), 'results.json'), 'utf8'),
    ) as RunResults;
    expect(JSON.parse(JSON.stringify(tableRow(results)))).toEqual(committed);
  });

  it('a budget typed in records its settings, without its note; a preset none', () => {
    const results = JSON.parse(
      readFileSync(join(root, 'lenet-500-300', 'results.json'), 'utf8'),
    ) as RunResults;
    expect(tableRow(results)).not.toHaveProperty('budgetSpec');
    const typed = {
      ...results,
      budget: { ...results.budget, name: 'tiny+custom', spec: { trainSubset: 300, note: 'a smoke test' } },
    } as RunResults;
    expect(tableRow(typed).budgetSpec).toEqual({ trainSubset: 300 });
  });
});
