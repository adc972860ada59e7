// `report --json DIR` (or --export) given one run twice (`r1 r1`, `r1 ./r1/`, a glob beside a
// name) or a sweep's point beside its sweep: refused as given twice, not as two runs of one seed
// whose fix would be to export "each run to its own folder".
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, reproduceTiny, tinyWasm } from './helpers';

let tmp: string;
let run: string;
let sweep: string;
beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'normprune-given-twice-'));
  run = join(tmp, 'r1');
  sweep = join(tmp, 's1');
  expect((await reproduceTiny(run)).code).toBe(0);
  expect((await cli(['sweep', 'lenet-500-300', '--lambda', '0.001', ...tinyWasm(sweep)])).code).toBe(0);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

test('a run given twice is named as given twice, and nothing is written', async () => {
  const rows = join(tmp, 'rows');
  const r = await cli(['report', run, run, '--json', rows]);
  expect(r.code).toBe(1);
  expect(r.err).toContain(`report: ${run} is given twice; give it once`);
  expect(r.err).not.toContain('its own folder');
  const r2 = await cli(['report', run, `${run}/`, '--export', rows]);
  expect(r2.code).toBe(1);
  expect(r2.err).toContain(`report: ${run}/ is given twice (as ${run} and ${run}/); give it once`);
  expect(existsSync(rows)).toBe(false);
});

test('a sweep given twice, or with one of its points, is named so', async () => {
  const rows = join(tmp, 'rows');
  const r = await cli(['report', sweep, sweep, '--export', rows]);
  expect(r.code).toBe(1);
  expect(r.err).toContain(`report: ${sweep} is given twice; give it once`);
  const point = join(sweep, 'lambda-0.001');
  const r2 = await cli(['report', sweep, point, '--json', rows]);
  expect(r2.code).toBe(1);
  expect(r2.err).toContain(
    `report: ${point} is given twice (on its own and in its sweep); give the sweep or the point`,
  );
  expect(existsSync(rows)).toBe(false);
});

test('two seeds of one experiment keep their own refusal', async () => {
  const seed2 = join(tmp, 'r2');
  expect((await reproduceTiny(seed2, '--seed', '2')).code).toBe(0);
  const r = await cli(['report', run, seed2, '--json', join(tmp, 'rows')]);
  expect(r.code).toBe(1);
  expect(r.err).toContain('export or --json each seed to its own folder');
});

test('report --table counts a run given twice once, with a note', async () => {
  const rowLines = (out: string) => out.split('\n').filter((l) => /^\| lenet-500-300 +\| 1 +\|/.test(l));
  const r = await cli(['report', '--table', run, `${run}/`, run]);
  expect(r.code).toBe(0);
  expect(rowLines(r.out)).toHaveLength(1);
  expect(r.err).toContain(`note: ${run}/ is given twice (as ${run} and ${run}/); its row is counted once\n`);
  expect(r.err).toContain(`note: ${run} is given twice; its row is counted once\n`);
  // A sweep and one of its points: the point's row once, the sweep's other rows as they are.
  const point = join(sweep, 'lambda-0.001');
  const r2 = await cli(['report', '--table', point, sweep, sweep]);
  expect(r2.code).toBe(0);
  expect(r2.out.split('\n').filter((l) => /^\| lenet-500-300/.test(l))).toHaveLength(1);
  expect(r2.err).toContain(`note: ${join(sweep, 'lambda-0.001')} is given twice`);
  expect(r2.err).toContain(`note: ${sweep} is given twice; its rows are counted once\n`);
});

test('without --table, a run given twice is reported once, and the note does not speak of rows', async () => {
  const r = await cli(['report', run, run]);
  expect(r.code).toBe(0);
  expect(r.err).toContain(`note: ${run} is given twice; it is reported once\n`);
  expect(r.out.split('\n').filter((l) => l.startsWith('wrote '))).toHaveLength(1);
});

test('report --table SWEEP SWEEP/* skips its sweep.json (no table row) with a note', async () => {
  const r = await cli(['report', '--table', sweep, ...readdirSync(sweep).map((f) => join(sweep, f))]);
  expect(r.code).toBe(0);
  expect(r.err).toContain(
    `note: skipped ${join(sweep, 'sweep.json')}: not a results table row (written by report --json or --export)\n`,
  );
  expect(r.out.split('\n').filter((l) => /^\| lenet-500-300/.test(l))).toHaveLength(1);
  // A report that writes still refuses it.
  const w = await cli(['report', '--json', join(tmp, 'rows2'), join(sweep, 'sweep.json')]);
  expect(w.code).toBe(1);
  expect(w.err).toContain(`report: ${join(sweep, 'sweep.json')} is not a results table row`);
});
