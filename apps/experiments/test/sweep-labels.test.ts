// A sweep point's label puts the granularity before the cost weighting (lambda-0.01-input-macs, the
// name --resume finds it by), and a sweep run again without --resume trains its points again.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '@normprune/runtime';
import { cli } from './helpers';

let tmp: string;
beforeAll(async () => {
  await initBackend({ prefer: 'wasm', quiet: true });
  tmp = mkdtempSync(join(tmpdir(), 'normprune-sweep-probe-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const tinySweep = (out: string, ...args: string[]) =>
  cli(['sweep', 'lenet-500-300', '--budget', 'tiny', ...args, '--out', out, '--backend', 'wasm']);

test('labels read lambda-granularity-cost; a rerun without --resume trains its points again', async () => {
  const out = join(tmp, 'grid');
  const args = ['--lambda', '0.01', '--granularity', 'input', '--cost-weighting', 'macs'];
  const first = await tinySweep(out, ...args);
  expect(first.code).toBe(0);
  const sweep = JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8'));
  expect(sweep.points.map((p: { label: string }) => p.label)).toEqual(['lambda-0.01-input-macs']);
  expect(existsSync(join(out, 'lambda-0.01-input-macs', 'results.json'))).toBe(true);
  const again = await tinySweep(out, ...args);
  expect(again.code).toBe(0);
  expect(`${again.out}\n${again.err}`).toMatch(/sweep point lambda-0\.01-input-macs/);
  expect(`${again.out}\n${again.err}`).not.toMatch(/finished before, reused/);
});
