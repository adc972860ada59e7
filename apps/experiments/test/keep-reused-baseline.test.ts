// --keep-baseline beside --baseline-from keeps the run's baseline, the reused one, in
// RUN_DIR/.work/baseline as a trained one is kept: eval --compare and a later --baseline-from
// find it there. It kept nothing, without a word.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from './helpers';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'normprune-keep-reused-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A tiny run at a quarter of the model's width: what is kept and reused does not depend on it. */
const run = (experiment: string, out: string, ...extra: string[]) =>
  cli([
    'reproduce',
    experiment,
    '--budget',
    'tiny,widthMultiplier=0.25',
    '--backend',
    'wasm',
    '--out',
    out,
    ...extra,
  ]);

test('a run that reuses a baseline keeps it with --keep-baseline, and another run can reuse it from there', async () => {
  const first = join(tmp, 'lenet-5');
  expect((await run('lenet-5', first, '--keep-baseline')).code).toBe(0);
  const second = join(tmp, 'lenet-5-fc');
  expect((await run('lenet-5-fc', second, '--baseline-from', first, '--keep-baseline')).code).toBe(0);
  const kept = (dir: string) => join(dir, '.work', 'baseline');
  expect(existsSync(join(kept(second), 'model', 'model.json'))).toBe(true);
  expect(readFileSync(join(kept(second), 'baseline.json'), 'utf8')).toBe(
    readFileSync(join(kept(first), 'baseline.json'), 'utf8'),
  );
  const compare = await cli(['eval', '--model', second, '--compare', kept(second), '--backend', 'wasm']);
  expect(compare.code).toBe(0);
  const third = await run('lenet-5-filter', join(tmp, 'lenet-5-filter'), '--baseline-from', second);
  expect(third.code).toBe(0);
  expect(third.err).toContain(`baseline reused from ${second}`);
  // Without --keep-baseline, nothing is kept.
  const plain = join(tmp, 'plain');
  expect((await run('lenet-5-fc', plain, '--baseline-from', first)).code).toBe(0);
  expect(existsSync(kept(plain))).toBe(false);
});
