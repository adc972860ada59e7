// `report --table runs/*`, the README's own example, when runs/ also holds a folder that is no
// run (a `prune --out` export, notes of yours): that folder is skipped with a note, as an
// unfinished run is, rather than failing the whole table. Commands that write are still refused.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, reproduceTiny } from './helpers';

let tmp: string;
let runs: string;
beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'normprune-table-skips-'));
  runs = join(tmp, 'runs');
  expect((await reproduceTiny(join(runs, 'lenet-500-300-tiny'))).code).toBe(0);
  // A model export of prune's, and a file of notes, beside the run.
  mkdirSync(join(runs, 'pruned'));
  writeFileSync(join(runs, 'pruned', 'model.json'), '{}');
  writeFileSync(join(runs, 'notes.txt'), 'mine\n');
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const args = () => [join(runs, 'lenet-500-300-tiny'), join(runs, 'notes.txt'), join(runs, 'pruned')];

test('report --table skips a folder or file that holds no run, with a note', async () => {
  const r = await cli(['report', '--table', ...args()]);
  expect(r.code).toBe(0);
  expect(r.out).toMatch(/^\| lenet-500-300 +\| 1 +\| tiny \(reduced\)/m);
  expect(r.err).toContain(
    `note: skipped ${join(runs, 'pruned')}: not a run folder (no results.json or config.json)\n`,
  );
  expect(r.err).toContain(
    `note: skipped ${join(runs, 'notes.txt')}: not a run folder (no results.json or config.json)\n`,
  );
});

test('a report that writes (--json) still refuses it', async () => {
  const r = await cli(['report', '--table', '--json', join(tmp, 'rows'), ...args()]);
  expect(r.code).toBe(1);
  expect(r.err).toContain(`report: ${join(runs, 'notes.txt')} is not a run folder`);
});

test('a path that does not exist is still an error', async () => {
  const r = await cli(['report', '--table', join(runs, 'lenet-500-300-tiny'), join(runs, 'typo')]);
  expect(r.code).toBe(1);
  expect(r.err).toContain(`report: ${join(runs, 'typo')} does not exist`);
});
