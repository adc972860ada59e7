// The results table in the reproducing guide is generated from the committed
// result files; these tests keep the two equal and keep the generator honest
// (no numbers without result files).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { workspaceRoot } from './markdown';

const script = join(workspaceRoot, 'docs', 'scripts', 'results-table.mjs');
const generate = (...args: string[]) =>
  spawnSync(process.execPath, [script, ...args], { cwd: workspaceRoot, encoding: 'utf8' });

let tmp: string;
beforeEach(() => (tmp = mkdtempSync(join(tmpdir(), 'normprune-docs-'))));
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

test('the guide carries exactly the table generated from apps/experiments/results', () => {
  const r = generate('--check');
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
});

test('says there are no results rather than showing numbers when no result file exists', () => {
  const r = generate('--results', join(tmp, 'none'));
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/^No results yet/);
  expect(r.stdout).not.toMatch(/\d+\.\d/);
});

test('renders one row per result file in the format the experiments report uses', () => {
  // A TableRow as `normprune report --json` writes it (apps/experiments/src/report.ts).
  writeFileSync(
    join(tmp, 'lenet-500-300.json'),
    JSON.stringify({
      experiment: 'lenet-500-300',
      name: 'lenet-500-300',
      budget: 'full',
      reduced: false,
      command: 'normprune reproduce lenet-500-300 --seed 1',
      seed: 1,
      backend: 'wasm',
      baseline: { testErrorPct: 1.64, validationErrorPct: 2.1, params: 266610 },
      compressed: { testErrorPct: 1.7, validationErrorPct: 2.0, nonzeros: 26661 },
      compressionPct: 90,
      macsReductionPct: 89.5,
      errorDeltaPp: 0.06,
      thesis: { compressionPct: 85.4, errorDeltaPp: 0.09 },
      target: { minCompressionPct: 85.4, maxErrorDeltaPp: 0.09, met: true },
      targetText: 'met (>= 85.4% removed, error <= +0.09 pp)',
      trainingSec: 600,
      pairedTest: {
        onlyBaselineWrong: 20,
        onlyCompressedWrong: 26,
        pValue: 0.461,
        changeCi95Pp: [-0.141, 0.261],
      },
    }),
  );
  writeFileSync(
    join(tmp, 'lenet-5.json'),
    JSON.stringify({
      experiment: 'lenet-5',
      name: 'lenet-5',
      budget: 'reduced',
      reduced: true,
      baseline: { testErrorPct: 0.9, params: 431080 },
      compressed: { testErrorPct: 1.1, nonzeros: 64662 },
      compressionPct: 85,
      macsReductionPct: 70,
      errorDeltaPp: 0.2,
      target: { minCompressionPct: 90, maxErrorDeltaPp: 0.1, met: false },
      targetText: '**missed** at a reduced budget only, not a reproduction: 85.00% removed < 90%',
      dataNote: 'a test note',
    }),
  );
  writeFileSync(
    join(tmp, 'vgg-16.json'),
    JSON.stringify({ experiment: 'vgg-16', budget: 'small', reduced: true, baseline: {}, compressed: {} }),
  );
  const r = generate('--results', tmp);
  expect(r.status).toBe(0);
  const lines = r.stdout.split('\n');
  const rowsOf = (name: string) => lines.filter((l) => l.startsWith(`| ${name} |`));
  // The thesis's order, whatever the file names sort as; one size and one error row each.
  expect(
    lines.filter((l) => /^\| [a-z]/.test(l) && !l.startsWith('| experiment')).map((l) => l.split(' ')[1]),
  ).toEqual(['lenet-500-300', 'lenet-5', 'vgg-16', 'lenet-500-300', 'lenet-5', 'vgg-16']);
  expect(rowsOf('lenet-500-300')).toEqual([
    '| lenet-500-300 | full | 266,610 | 26,661 | 90.00% | 85.40% | 89.50% |',
    '| lenet-500-300 | 2.10% → 2.00% | 1.64% → 1.70% | +0.06 pp | [-0.14, +0.26 pp] | +0.09 pp | met | 600 s |',
  ]);
  expect(rowsOf('lenet-5')).toEqual([
    '| lenet-5 | reduced | 431,080 | 64,662 | 85.00% |  | 70.00% |',
    '| lenet-5 | n/a → n/a | 0.90% → 1.10% | +0.20 pp |  |  | **missed** (reduced budget) | n/a |',
  ]);
  // The target text is the one `normprune report` rendered into the row.
  expect(lines).toContain(
    '- lenet-5: **missed** at a reduced budget only, not a reproduction: 85.00% removed < 90%',
  );
  expect(lines).toContain('- lenet-500-300: met (>= 85.4% removed, error <= +0.09 pp)');
  expect(lines).toContain('- lenet-5: a test note');
  expect(lines).toContain(
    '- lenet-500-300: `normprune reproduce lenet-500-300 --seed 1` (seed 1, wasm backend)',
  );
  // Figures a file does not hold are shown as missing, never made up.
  expect(rowsOf('vgg-16')).toEqual([
    '| vgg-16 | small (reduced) | n/a | n/a | n/a |  | n/a |',
    '| vgg-16 | n/a → n/a | n/a → n/a | n/a |  |  |  | n/a |',
  ]);
});

test("a sweep point's row is named by its point, as `normprune report` names it", () => {
  writeFileSync(
    join(tmp, 'lenet-500-300-input-lambda-0.002.json'),
    JSON.stringify({
      experiment: 'lenet-500-300-input',
      variant: 'lambda-0.002',
      name: 'lenet-500-300-input lambda-0.002',
      budget: 'full',
      reduced: false,
      baseline: { testErrorPct: 1.15, params: 545810 },
      compressed: { testErrorPct: 1.29, nonzeros: 49400 },
      compressionPct: 90.95,
      macsReductionPct: 90.9,
      errorDeltaPp: 0.14,
    }),
  );
  const r = generate('--results', tmp);
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(
    /^\| lenet-500-300-input lambda-0\.002 \| full \| 545,810 \| 49,400 \| 90\.95% \|/m,
  );
});

test('--check fails, and --write repairs, a guide whose table was edited by hand', () => {
  const guide = join(tmp, 'guide.md');
  const original = readFileSync(join(workspaceRoot, 'docs', 'guides', 'reproducing.md'), 'utf8');
  writeFileSync(guide, original.replace(/(results-table:start[^\n]*\n)/, '$1\n| made-up | 0.1 |\n'));
  const results = join(workspaceRoot, 'apps', 'experiments', 'results');
  expect(generate('--check', '--guide', guide, '--results', results).status).toBe(1);
  expect(generate('--write', '--guide', guide, '--results', results).status).toBe(0);
  expect(readFileSync(guide, 'utf8')).toBe(original);
});
