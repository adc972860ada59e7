// Review 25b: report --export over another k=v budget's export, a user's plots in an earlier
// export, an unreadable --compare config, --out below a file, NORMPRUNE_BACKEND and --resume.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
