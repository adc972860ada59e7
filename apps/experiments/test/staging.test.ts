// A run stages its model/ export in .work, not beside its files (audit 26, item 11): a kill
// during the export (Ctrl-C after training quits at once) leaves no model.tmp/ in the run folder,
// and --resume clears what it left.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as surgery from '@normprune/surgery';
import { cli } from './helpers';

jest.mock('@normprune/surgery', () => {
  const actual = jest.requireActual('@normprune/surgery');
  return { __esModule: true, ...actual, exportModel: jest.fn(actual.exportModel) };
});
const exportModel = surgery.exportModel as jest.MockedFunction<typeof surgery.exportModel>;

let tmp: string;
beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'normprune-staging-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

test('while a run exports its model, the run folder holds no temporary folder of it', async () => {
  const out = join(tmp, 'run');
  const reproduce = (...extra: string[]) =>
    cli(['reproduce', 'lenet-500-300', '--budget', 'tiny', '--backend', 'wasm', '--out', out, ...extra]);
  // What a kill in the middle of the export would leave in the run folder.
  let during: string[] = [];
  exportModel.mockImplementationOnce(async (model, dir, options) => {
    during = readdirSync(out).sort();
    return jest.requireActual('@normprune/surgery').exportModel(model, dir, options);
  });
  expect((await reproduce()).code).toBe(0);
  expect(during).toEqual(['.normprune.lock', '.work', 'config.json', 'metrics.jsonl']);
  expect(readdirSync(out).sort()).toEqual([
    'config.json',
    'metrics.jsonl',
    'model',
    'plots',
    'report.html',
    'report.md',
    'results.json',
  ]);

  // Staged leftovers of a killed export (this version's in .work, an older one's model.tmp/) go
  // with --resume, which exports again.
  expect((await reproduce('--seed', '2', '--force', '--stop-after-steps', '1')).code).toBe(130);
  mkdirSync(join(out, '.work', 'model.tmp'));
  writeFileSync(join(out, '.work', 'model.tmp', 'model.json'), '{}');
  mkdirSync(join(out, 'model.tmp'));
  expect((await reproduce('--seed', '2', '--resume')).code).toBe(0);
  expect(existsSync(join(out, 'model.tmp'))).toBe(false);
  expect(existsSync(join(out, '.work'))).toBe(false);
  expect(existsSync(join(out, 'model', 'model.json'))).toBe(true);
});
