// The commands of the README's first example, typed in order in one folder as a new user would:
// each runs (the sweeps at the tiny budget), none refused by what an earlier one left there (the
// bisection, without --out, has a default folder of its own: it was refused in the grid's).
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from './helpers';

let tmp: string;
let cwd: string;
beforeAll(() => {
  cwd = process.cwd();
  tmp = mkdtempSync(join(tmpdir(), 'normprune-readme-'));
});
afterAll(() => {
  process.chdir(cwd);
  rmSync(tmp, { recursive: true, force: true });
});

/** The `npx normprune` lines of the README's first `sh` block, as words, without comments. */
function quickStart(): string[][] {
  const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');
  const block = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
  return block
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter((l) => l.startsWith('npx normprune '))
    .map((l) => l.split(/\s+/).slice(2));
}

test('its sweeps, a grid and then a bisection, both run at the tiny budget', async () => {
  const sweeps = quickStart().filter((w) => w[0] === 'sweep');
  expect(sweeps.map((w) => w.join(' '))).toEqual([
    expect.stringContaining('--lambda'),
    expect.stringContaining('--target-compression'),
  ]);
  process.chdir(tmp);
  for (const words of sweeps) {
    const extra = ['--budget', 'tiny', '--backend', 'wasm'];
    if (words.includes('--target-compression')) extra.push('--bisect-steps', '1');
    const r = await cli([...words, ...extra]);
    expect({ words, err: r.err.split('\n').filter((l) => l.startsWith('normprune:')) }).toEqual({
      words,
      err: [],
    });
    expect(r.code).toBe(0);
  }
  expect(existsSync(join(tmp, 'runs', 'sweep-lenet-500-300-tiny', 'sweep.json'))).toBe(true);
  expect(existsSync(join(tmp, 'runs', 'sweep-lenet-500-300-target-95-tiny', 'sweep.json'))).toBe(true);
});
