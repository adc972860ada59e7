// Default --out names changed in 7c87e69 (runs/<exp>-<budget> -> runs/<exp>-<budget>-<hash> for
// k=v budgets, runs/sweep-<exp> -> runs/sweep-<exp>-<budget>): a hand-typed --resume after an
// upgrade, finding nothing in the new default folder, names the former one when it holds this
// command's run or sweep (review 25, finding 7).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from './helpers';

let tmp: string;
let cwd: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'normprune-formerout-'));
  cwd = process.cwd();
  process.chdir(tmp);
});
afterAll(() => {
  process.chdir(cwd);
  rmSync(tmp, { recursive: true, force: true });
});

test('run --resume with a defaulted --out names the interrupted run of this command in the former default folder', async () => {
  const args = ['reproduce', 'lenet-500-300', '--budget', 'tiny,testSubset=64', '--backend', 'wasm'];
  // As an earlier normprune left it: its default folder was runs/lenet-500-300-tiny+custom.
  const former = join('runs', 'lenet-500-300-tiny+custom');
  expect((await cli([...args, '--out', former, '--stop-after-steps', '1'])).code).toBe(130);
  const r = await cli([...args, '--resume']);
  expect(r.code).toBe(1);
  expect(r.err).toMatch(
    /--resume: no checkpoint in .*runs\/lenet-500-300-tiny\+custom-[0-9a-f]{4}\/\.work\/checkpoint; /,
  );
  expect(r.err).toMatch(
    /the interrupted run of this command is in \S*runs\/lenet-500-300-tiny\+custom \(where an earlier normprune put it by default\): continue it with --resume --out \S*runs\/lenet-500-300-tiny\+custom\n/,
  );
  // Another seed is another run: not named.
  const other = await cli([...args, '--seed', '2', '--resume']);
  expect(other.code).toBe(1);
  expect(other.err).not.toMatch(/earlier normprune/);
  expect((await cli([...args, '--out', former, '--resume'])).code).toBe(0);
});

test('sweep --resume with a defaulted --out names the sweep of this command in the former default folder', async () => {
  const args = ['sweep', 'lenet-500-300', '--lambda', '0.002', '--budget', 'tiny', '--backend', 'wasm'];
  const former = join('runs', 'sweep-lenet-500-300');
  expect((await cli([...args, '--out', former, '--stop-after-steps', '1'])).code).toBe(130);
  const r = await cli([...args, '--resume']);
  expect(r.code).toBe(1);
  expect(r.err).toMatch(
    /--resume: no sweep in \S*runs\/sweep-lenet-500-300-tiny; the sweep of this command is in \S*runs\/sweep-lenet-500-300 \(where an earlier normprune put it by default\): continue it with --resume --out \S*runs\/sweep-lenet-500-300\n/,
  );
  expect(existsSync(join('runs', 'sweep-lenet-500-300-tiny'))).toBe(false);
  // Its plan gone, its points left: not known to be this sweep, but named, not "nothing to resume".
  rmSync(join(former, '.sweep-plan.json'));
  const gone = await cli([...args, '--resume']);
  expect(gone.code).toBe(1);
  expect(gone.err).toMatch(
    /--resume: no sweep in \S*runs\/sweep-lenet-500-300-tiny; \S*runs\/sweep-lenet-500-300, where an earlier normprune put sweeps of lenet-500-300 by default, holds a sweep not known to be this command's \(another grid, seed or budget, or one whose plan is gone\): if it is, continue it with --resume --out \S*runs\/sweep-lenet-500-300; else run the command without --resume/,
  );
  expect(existsSync(join('runs', 'sweep-lenet-500-300-tiny'))).toBe(false);
  expect((await cli([...args, '--out', former, '--resume'])).code).toBe(0);
});
