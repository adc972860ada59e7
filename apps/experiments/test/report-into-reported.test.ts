// `report --json DIR` or `--export DIR` where DIR is (or lies inside) one of the run or sweep
// folders being reported: refused (exit 2), naming that folder and saying to pick another, before
// anything is written, rather than writing rows among the run's or sweep's own files. An --export
// folder that holds one of them (whose export could replace it) is the same usage error, exit 2.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, reproduceTiny, tinyWasm } from './helpers';

let tmp: string;
let run: string;
let sweep: string;
beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'normprune-report-into-'));
  run = join(tmp, 'r1');
  sweep = join(tmp, 's1');
  expect((await reproduceTiny(run)).code).toBe(0);
  expect((await cli(['sweep', 'lenet-500-300', '--lambda', '0.001', ...tinyWasm(sweep)])).code).toBe(0);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Every file and folder below `dir`, sorted. */
const listing = (dir: string): string[] => (readdirSync(dir, { recursive: true }) as string[]).sort();

test.each([
  ['--json', 'the run folder', () => run, () => run, 'is'],
  ['--export', 'the run folder', () => run, () => run, 'is'],
  ['--json', 'a folder inside the run', () => run, () => join(run, 'rows'), 'lies inside'],
  ['--export', "the run's model folder", () => run, () => join(run, 'model'), 'lies inside'],
  ['--json', 'the sweep folder', () => sweep, () => sweep, 'is'],
  [
    '--export',
    'a folder inside a point of the sweep',
    () => sweep,
    () => join(sweep, 'lambda-0.001', 'x'),
    'lies inside',
  ],
])('report %s into %s is refused', async (flag, _what, from, to, verb) => {
  const before = listing(from());
  const r = await cli(['report', from(), flag, to()]);
  expect(r.code).toBe(2);
  expect(r.err).toContain(
    `report: ${flag} ${to()} ${verb} ${from()}, one of the folders being reported: ` +
      'its rows would be written among its own files; pick another folder (e.g. results/)',
  );
  expect(listing(from())).toEqual(before);
});

test('a link to the run folder, and the run beside another folder, are refused alike', async () => {
  const link = join(tmp, 'link');
  symlinkSync(run, link);
  const before = listing(run);
  const r = await cli(['report', sweep, run, '--json', link]);
  expect(r.code).toBe(2);
  expect(r.err).toContain(`report: --json ${link} is ${run}, one of the folders being reported`);
  expect(listing(run)).toEqual(before);
});

test('another folder is written as before', async () => {
  const rows = join(tmp, 'rows');
  const r = await cli(['report', run, '--json', rows]);
  expect(r.code).toBe(0);
  expect(readdirSync(rows)).toEqual(['lenet-500-300.json']);
});

test.each([
  ['the run', () => run],
  ['the sweep', () => sweep],
])('--export into a folder holding %s is refused alike, exit 2, naming it', async (_what, from) => {
  const before = listing(tmp);
  const r = await cli(['report', from(), '--export', tmp]);
  expect(r.code).toBe(2);
  expect(r.err).toContain(
    `report: --export ${tmp} holds ${from()}, one of the folders being reported: ` +
      'its export could replace that folder; pick another folder (e.g. results/)',
  );
  expect(listing(tmp)).toEqual(before);
});

test('a link to a folder holding the run is refused alike', async () => {
  const above = join(tmp, 'above');
  mkdirSync(above);
  const link = join(above, 'up');
  symlinkSync(tmp, link);
  const r = await cli(['report', run, '--export', link]);
  expect(r.code).toBe(2);
  expect(r.err).toContain(`report: --export ${link} holds ${run}, one of the folders being reported`);
  rmSync(above, { recursive: true });
});
