// A config written without `extends` need not have a `description` (a Keras or PyTorch user writes
// none for a script): it was refused ('description: ... expected string'); now its name stands in
// for it wherever a description is shown (--print-config, results.json, the reports).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../src/config';
import { cli, tinyWasm, writeIdxFixture } from './helpers';

let tmp: string;
let file: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'normprune-undescribed-'));
  const shipped = JSON.parse(
    readFileSync(join(__dirname, '..', 'configs', 'lenet-500-300.json'), 'utf8'),
  ) as Record<string, unknown>;
  const { description: _d, $schema: _s, ...mine } = shipped;
  file = join(tmp, 'mine.json');
  writeFileSync(file, JSON.stringify({ ...mine, name: 'my-mlp' }));
  writeIdxFixture(join(tmp, 'data'), 600, 300);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

test('a config without description is valid, described by its name; one with it keeps it', () => {
  const mine = JSON.parse(readFileSync(file, 'utf8'));
  expect(parseConfig(mine).description).toBe('my-mlp');
  expect(parseConfig({ ...mine, description: 'mine' }).description).toBe('mine');
});

test('train --config FILE without description runs, and its results and report show the name', async () => {
  const printed = await cli(['train', '--config', file, '--print-config']);
  expect(printed.code).toBe(0);
  expect(JSON.parse(printed.out).description).toBe('my-mlp');
  const out = join(tmp, 'run');
  const r = await cli(['train', '--config', file, '--data-dir', join(tmp, 'data'), ...tinyWasm(out)]);
  expect(r.err).not.toContain('normprune: ');
  expect(r.code).toBe(0);
  expect(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')).description).toBe('my-mlp');
  expect(readFileSync(join(out, 'report.md'), 'utf8')).toMatch(/^my-mlp$/m);
  // Its recorded config is read back, by report, as it was written.
  expect((await cli(['report', out])).code).toBe(0);
});
