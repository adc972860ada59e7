// Review 25b: report --export over another k=v budget's export, a user's plots in an earlier
// export, an unreadable --compare config, --out below a file, NORMPRUNE_BACKEND and --resume, an old
// sweep export re-exported, a first prune killed during its save.
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from './helpers';

let tmp: string;
beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'normprune-review2-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const runs: Record<string, string> = {};
/** A finished lenet-500-300 run at `budget` (once per budget). */
async function finishedRun(budget = 'tiny'): Promise<string> {
  if (runs[budget]) return runs[budget];
  const out = join(tmp, `run-${Object.keys(runs).length}`);
  const r = await cli(['reproduce', 'lenet-500-300', '--budget', budget, '--backend', 'wasm', '--out', out]);
  expect(r.code).toBe(0);
  return (runs[budget] = out);
}

let sweepDir: string | undefined;
/** A finished sweep of lenet-500-300 at one lambda. */
async function finishedSweep(): Promise<string> {
  if (sweepDir) return sweepDir;
  const out = join(tmp, 'sweep');
  const r = await cli(['sweep', 'lenet-500-300', '--lambda', '0.002', '--budget', 'tiny', '--out', out]);
  expect(r.code).toBe(0);
  return (sweepDir = out);
}

test('report --export refuses to replace the export of another k=v budget of the same name', async () => {
  const a = await finishedRun('tiny,testSubset=64');
  const b = await finishedRun('tiny,testSubset=128');
  const dir = join(tmp, 'ex-budgets');
  expect((await cli(['report', '--table', a, '--export', dir])).code).toBe(0);
  const row = readFileSync(join(dir, 'lenet-500-300.json'), 'utf8');
  const results = readFileSync(join(dir, 'lenet-500-300', 'results.json'), 'utf8');
  const r = await cli(['report', '--table', b, '--export', dir]);
  expect(r.code).toBe(1);
  expect(r.err).toMatch(
    /holds the row of budget tiny\+custom \{.*"testSubset":64.*\}; .*run-1 \(budget tiny\+custom \{.*"testSubset":128.*\}\) would replace it/,
  );
  // Without the row (its folder kept), the export folder itself is refused, naming both budgets.
  rmSync(join(dir, 'lenet-500-300.json'));
  const f = await cli(['report', '--table', b, '--export', dir]);
  expect(f.code).toBe(1);
  expect(f.err).toMatch(
    /not an earlier export of .*run-1 \(its results\.json is of budget tiny\+custom \{.*"testSubset":64.*\}, this run's of budget tiny\+custom \{.*"testSubset":128.*\}\)/,
  );
  expect(readFileSync(join(dir, 'lenet-500-300', 'results.json'), 'utf8')).toBe(results);
  writeFileSync(join(dir, 'lenet-500-300.json'), row);
  // The same budget again is an earlier export of it, and replaced.
  expect((await cli(['report', '--table', a, '--export', dir])).code).toBe(0);
});

test("a rerun whose preset budget's note was reworded is the same budget: its export replaces the earlier one", async () => {
  const run = await finishedRun();
  const dir = join(tmp, 'ex-note');
  expect((await cli(['report', '--table', run, '--export', dir])).code).toBe(0);
  // The same run as a later version records it: the tiny preset's note reworded, its settings the same.
  const again = join(tmp, 'run-note');
  cpSync(run, again, { recursive: true });
  const file = join(again, 'results.json');
  const results = JSON.parse(readFileSync(file, 'utf8'));
  results.budget.spec.note = 'reworded in a later version';
  writeFileSync(file, JSON.stringify(results));
  const r = await cli(['report', '--table', again, '--export', dir]);
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  // Settings that differ under one preset name are refused, and the message shows them.
  results.budget.spec.trainSubset = 300;
  writeFileSync(file, JSON.stringify(results));
  const other = await cli(['report', '--table', again, '--export', dir]);
  expect(other.code).toBe(1);
  expect(other.err).toMatch(/budget tiny \{.*\}, this run's of budget tiny \{.*"trainSubset":300.*\}/);
});

test('re-exporting into an earlier export keeps files of yours inside its plots/', async () => {
  const run = await finishedRun();
  const sweep = await finishedSweep();
  const dir = join(tmp, 'ex-plots');
  expect((await cli(['report', '--table', run, sweep, '--export', dir])).code).toBe(0);
  const plots = join(dir, 'lenet-500-300', 'plots');
  const splots = join(dir, 'sweep-lenet-500-300', 'plots');
  writeFileSync(join(plots, 'my-extra.svg'), '<svg/>');
  writeFileSync(join(splots, 'my-extra.svg'), '<svg/>');
  // An old plot of the export's own is replaced by the run's.
  writeFileSync(join(plots, 'loss.svg'), 'stale');
  writeFileSync(join(splots, 'pareto.svg'), 'stale');
  expect((await cli(['report', '--table', run, sweep, '--export', dir])).code).toBe(0);
  expect(readdirSync(plots)).toContain('my-extra.svg');
  expect(readFileSync(join(plots, 'my-extra.svg'), 'utf8')).toBe('<svg/>');
  expect(readFileSync(join(plots, 'loss.svg'), 'utf8')).toBe(
    readFileSync(join(run, 'plots', 'loss.svg'), 'utf8'),
  );
  expect(readFileSync(join(splots, 'my-extra.svg'), 'utf8')).toBe('<svg/>');
  expect(readFileSync(join(splots, 'pareto.svg'), 'utf8')).not.toBe('stale');
});

test('an --out or --export below a file is refused up front, naming the file', async () => {
  const run = await finishedRun();
  const file = join(tmp, 'afile');
  writeFileSync(file, 'hi');
  const below = join(file, 'sub');
  const p = await cli(['prune', '--model', join(run, 'model'), '--out', below]);
  expect(p.code).toBe(1);
  expect(p.err).toBe(
    `normprune: error: prune: --out ${below} cannot be written: ${file} is a file, not a folder, ` +
      'so nothing can be created below it; choose another --out\n',
  );
  for (const flag of ['--export', '--json']) {
    const r = await cli(['report', '--table', run, flag, below]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `normprune: error: report: ${flag} ${below} cannot be written: ${file} is a file, not a folder, ` +
        'so nothing can be created below it; give another folder\n',
    );
  }
  expect(readFileSync(file, 'utf8')).toBe('hi');
});

test('--resume on another backend set by NORMPRUNE_BACKEND: the advice is about the variable, which overrides --backend', async () => {
  const out = join(tmp, 'stopped');
  const args = ['reproduce', 'lenet-500-300', '--budget', 'tiny', '--out', out];
  expect((await cli([...args, '--backend', 'wasm', '--stop-after-steps', '1'])).code).toBe(130);
  const was = process.env.NORMPRUNE_BACKEND;
  process.env.NORMPRUNE_BACKEND = 'cpu';
  try {
    for (const extra of [[], ['--backend', 'wasm']]) {
      const r = await cli([...args, '--resume', ...extra]);
      expect(r.code).toBe(1);
      expect(r.err).toContain(
        'the run began on the wasm backend and would go on on cpu, whose bits differ; ' +
          'NORMPRUNE_BACKEND=cpu overrides --backend: resume it with NORMPRUNE_BACKEND=wasm, ' +
          'or with NORMPRUNE_BACKEND unset and --backend wasm',
      );
    }
  } finally {
    if (was === undefined) delete process.env.NORMPRUNE_BACKEND;
    else process.env.NORMPRUNE_BACKEND = was;
  }
  // Without the variable, --backend is the advice, and it works.
  expect((await cli([...args, '--resume', '--backend', 'cpu'])).err).toMatch(
    /whose bits differ; resume it with --backend wasm$/m,
  );
  expect((await cli([...args, '--resume', '--backend', 'wasm'])).code).toBe(0);
});

test('a sweep export of an earlier version (points named lambda-<x>, not ../<row>) is re-exported; a sweep folder is not', async () => {
  const sweep = await finishedSweep();
  const dir = join(tmp, 'ex-old-sweep');
  expect((await cli(['report', '--table', sweep, '--export', dir])).code).toBe(0);
  const file = join(dir, 'sweep-lenet-500-300', 'sweep.json');
  const exported = JSON.parse(readFileSync(file, 'utf8'));
  // As --export wrote it from 2814303 to ab99d25: the sweep's sweep.json unchanged.
  writeFileSync(file, readFileSync(join(sweep, 'sweep.json'), 'utf8'));
  expect(JSON.parse(readFileSync(file, 'utf8')).points[0].dir).toBe('lambda-0.002');
  const r = await cli(['report', '--table', sweep, '--export', dir]);
  expect(r.err).not.toMatch(/not an export of one/);
  expect(r.code).toBe(0);
  expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(exported);
  // The sweep folder itself (its points' runs in it) is still refused.
  const other = join(tmp, 'ex-sweep-folder');
  cpSync(sweep, join(other, 'sweep-lenet-500-300'), { recursive: true });
  const f = await cli(['report', '--table', sweep, '--export', other]);
  expect(f.code).toBe(1);
  expect(f.err).toMatch(
    /which is not an earlier export of .* \(it is a sweep folder, not an export of one\)/,
  );
});

test('a first prune killed during its save (shards, and its model.json still a temporary file) is replaced by the next', async () => {
  const run = await finishedRun();
  const first = join(tmp, 'pruned-first');
  expect((await cli(['prune', '--model', join(run, 'model'), '--out', first])).code).toBe(0);
  // What the save leaves when killed at the rename of its model.json into place.
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  const killed = join(tmp, 'pruned-killed');
  cpSync(first, killed, { recursive: true });
  renameSync(join(killed, 'model.json'), join(killed, `.model.json.${dead}-36a32cc3.tmp`));
  const r = await cli(['prune', '--model', join(run, 'model'), '--out', killed]);
  expect(r.err).not.toMatch(/perhaps your only copy/);
  expect(r.code).toBe(0);
  expect(readdirSync(killed).sort()).toEqual(readdirSync(first).sort());
  // Another tool's model without its model.json is refused as before.
  const other = join(tmp, 'pruned-other');
  cpSync(killed, other, { recursive: true });
  rmSync(join(other, 'model.json'));
  const o = await cli(['prune', '--model', join(run, 'model'), '--out', other]);
  expect(o.code).toBe(1);
  expect(o.err).toMatch(/weight files without a model\.json\), perhaps your only copy/);
});

test('two sweeps of one experiment exported in one call are refused before anything is written', async () => {
  const first = await finishedSweep();
  const second = join(tmp, 'sweep-other');
  const s = await cli(['sweep', 'lenet-500-300', '--lambda', '0.004', '--budget', 'tiny', '--out', second]);
  expect(s.code).toBe(0);
  const dir = join(tmp, 'ex-two-sweeps');
  const r = await cli(['report', '--table', first, second, '--export', dir]);
  expect(r.code).toBe(1);
  expect(r.err).toMatch(
    /the sweeps .*sweep and .*sweep-other would both be written to .*sweep-lenet-500-300/,
  );
  expect(existsSync(dir)).toBe(false);
});
