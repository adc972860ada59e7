// The results table in the reproducing guide is generated from the committed
// result files; these tests keep the two equal and keep the generator honest
// (no numbers without result files).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { workspaceRoot } from './markdown';

const script = join(workspaceRoot, 'docs', 'scripts', 'results-table.mjs');
const generate = (...args: string[]) => spawnSync(process.execPath, [script, ...args], { cwd: workspaceRoot, encoding: 'utf8' });

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

test('renders one row per result file, computing what the file leaves out', () => {
  writeFileSync(
    join(tmp, 'lenet-500-300.json'),
    JSON.stringify({
      experiment: 'lenet-500-300',
      baseline: { testErrorPct: 1.64, params: 266610 },
      compressed: { testErrorPct: 1.7, params: 26661 },
      thesis: { compressionPct: 85.4, errorDeltaPp: 0.09 },
    }),
  );
  const r = generate('--results', tmp);
  expect(r.status).toBe(0);
  const row = r.stdout.split('\n').find((l) => l.includes('lenet-500-300'));
  expect(row).toBe('| `lenet-500-300` | 1.64 | 1.70 | +0.06 | 266,610 → 26,661 | 90.0 | 85.4 / +0.09 |');
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
