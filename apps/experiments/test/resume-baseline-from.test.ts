// --resume given a --baseline-from it cannot reuse (here a folder holding no kept baseline) is
// refused before anything is written, as the fresh run or sweep is, with the fresh path's message:
// the interrupted run or sweep is left as it was, to be continued with the right folder.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, reproduceTiny, tinyWasm } from './helpers';

let tmp: string;
let kept: string;
let empty: string;
beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'normprune-resume-baseline-from-'));
  kept = join(tmp, 'kept');
  expect((await reproduceTiny(kept, '--keep-baseline')).code).toBe(0);
  empty = join(tmp, 'empty');
  mkdirSync(empty);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Every file below `dir` with its size and content: what a refused command must leave alone. */
function snapshot(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else files[p] = `${statSync(p).size}:${readFileSync(p).toString('base64')}`;
    }
  };
  walk(dir);
  return files;
}

/** The `--baseline-from` line of an error output. */
const refusal = (err: string): string | undefined =>
  err.split('\n').find((l) => l.includes('--baseline-from '));

test('a run: --resume --baseline-from checks the folder before it continues', async () => {
  const out = join(tmp, 'run');
  expect((await reproduceTiny(out, '--baseline-from', kept, '--stop-after-steps', '3')).code).toBe(130);
  const before = snapshot(out);
  const resumed = await reproduceTiny(out, '--baseline-from', empty, '--resume');
  const started = await reproduceTiny(join(tmp, 'run-fresh'), '--baseline-from', empty);
  expect(resumed.code).toBe(1);
  expect(refusal(resumed.err)).toContain(`--baseline-from ${empty}: no kept baseline`);
  expect(refusal(resumed.err)).toBe(refusal(started.err));
  expect(snapshot(out)).toEqual(before);
});

test('a sweep: --resume --baseline-from checks the folder before it continues', async () => {
  const out = join(tmp, 'sweep');
  const args = ['sweep', 'lenet-500-300', ...tinyWasm(out), '--lambda', '0.01,0.05'];
  expect((await cli([...args, '--baseline-from', kept, '--stop-after-steps', '3'])).code).toBe(130);
  const before = snapshot(out);
  const resumed = await cli([...args, '--baseline-from', empty, '--resume']);
  const started = await cli([
    'sweep',
    'lenet-500-300',
    ...tinyWasm(join(tmp, 'sweep-fresh')),
    '--lambda',
    '0.01,0.05',
    '--baseline-from',
    empty,
  ]);
  expect(resumed.code).toBe(1);
  expect(refusal(resumed.err)).toContain(`--baseline-from ${empty}: no kept baseline`);
  expect(refusal(resumed.err)).toBe(refusal(started.err));
  expect(resumed.err).not.toMatch(/sweep point/);
  expect(snapshot(out)).toEqual(before);
});
