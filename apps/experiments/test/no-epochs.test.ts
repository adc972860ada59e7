// A run whose budget gives every phase 0 epochs writes no epoch line, and still its metrics.jsonl
// (empty): `report` then rewrites the report without calling the file missing.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from './helpers';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'normprune-no-epochs-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

test('a run of 0 epochs writes an empty metrics.jsonl, which report does not call missing', async () => {
  const out = join(tmp, 'run');
  const run = await cli([
    'reproduce',
    'lenet-500-300',
    '--budget',
    'tiny,epochs=0',
    '--backend',
    'wasm',
    '--out',
    out,
  ]);
  expect(run.code).toBe(0);
  expect(existsSync(join(out, 'metrics.jsonl'))).toBe(true);
  expect(readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim()).toBe('');
  const r = await cli(['report', out]);
  expect(r.code).toBe(0);
  expect(r.err).not.toMatch(/missing/);
  expect(readFileSync(join(out, 'report.md'), 'utf8')).not.toMatch(/metrics\.jsonl` is missing/);
});
