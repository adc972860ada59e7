// A sweep given a --baseline-from it cannot reuse (no kept baseline there, a damaged one, or one
// trained under another seed) is refused before it makes its folder or plan, with the message and
// exit code a run gives, rather than when its first point starts.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, reproduceTiny, tinyWasm } from './helpers';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'normprune-sweep-baseline-from-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The `--baseline-from` line of an error output. */
const refusal = (err: string): string | undefined =>
  err.split('\n').find((l) => l.includes('--baseline-from '));

/** Runs a sweep and a run given `from` (and `extra`); both are refused alike, writing nothing. */
async function refusedAlike(name: string, from: string, ...extra: string[]): Promise<string> {
  const sweepOut = join(tmp, `${name}-sweep`);
  const runOut = join(tmp, `${name}-run`);
  const run = await reproduceTiny(runOut, '--baseline-from', from, ...extra);
  const sweep = await cli([
    'sweep',
    'lenet-500-300',
    ...tinyWasm(sweepOut),
    '--lambda',
    '0.01,0.05',
    '--baseline-from',
    from,
    ...extra,
  ]);
  expect(run.code).toBe(1);
  expect(sweep.code).toBe(run.code);
  expect(refusal(run.err)).toBeDefined();
  expect(refusal(sweep.err)).toBe(refusal(run.err));
  expect(sweep.err).not.toMatch(/sweep point/);
  expect(existsSync(sweepOut)).toBe(false);
  expect(existsSync(runOut)).toBe(false);
  return refusal(sweep.err) as string;
}

test('a folder holding no kept baseline', async () => {
  const dir = join(tmp, 'plain');
  mkdirSync(dir);
  expect(await refusedAlike('plain', dir)).toContain(`--baseline-from ${dir}: no kept baseline`);
});

test('a damaged kept baseline', async () => {
  const dir = join(tmp, 'damaged');
  mkdirSync(join(dir, '.work', 'baseline'), { recursive: true });
  writeFileSync(join(dir, '.work', 'baseline', 'baseline.json'), '{}');
  expect(await refusedAlike('damaged', dir)).toContain(
    `--baseline-from ${dir}: the kept baseline is damaged`,
  );
});

test('a kept baseline of another seed', async () => {
  const kept = join(tmp, 'kept');
  expect((await reproduceTiny(kept, '--keep-baseline')).code).toBe(0);
  expect(await refusedAlike('seed', kept, '--seed', '5')).toContain(
    `--baseline-from ${kept}: trained with another config or seed`,
  );
});
