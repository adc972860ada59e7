// `report --json DIR` and `--export DIR` say what they wrote, one line per file or folder, named
// relative to the cwd (they printed only the reports they rewrote: the rows and copies, the point
// of the command, went unnamed).
import { existsSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, reproduceTiny, tinyWasm } from './helpers';

let tmp: string;
let cwd: string;
beforeAll(async () => {
  cwd = process.cwd();
  tmp = realpathSync(mkdtempSync(join(tmpdir(), 'normprune-wrote-')));
  process.chdir(tmp);
  expect((await reproduceTiny('runs/r')).code).toBe(0);
  expect((await cli(['sweep', 'lenet-500-300', '--lambda', '0.001', ...tinyWasm('runs/s')])).code).toBe(0);
});
afterAll(() => {
  process.chdir(cwd);
  rmSync(tmp, { recursive: true, force: true });
});

test('--json names each row it wrote, --export each row and copy', async () => {
  const r = await cli(['report', '--table', '--json', 'rows', '--export', join(tmp, 'results'), 'runs/r']);
  expect(r.code).toBe(0);
  const wrote = r.out.split('\n').filter((l) => l.startsWith('wrote '));
  expect(wrote).toHaveLength(3);
  const [row, exportedRow, copy] = wrote;
  expect(row).toMatch(/^wrote rows\/lenet-500-300[^/ ]*\.json$/);
  const name = row.slice('wrote rows/'.length, -'.json'.length);
  expect(exportedRow).toBe(`wrote results/${name}.json`);
  expect(copy).toBe(
    `wrote results/${name}/ (the run's results.json, metrics.jsonl, report.md, report.html, plots)`,
  );
  for (const l of [row, exportedRow]) expect(existsSync(join(tmp, l.slice('wrote '.length)))).toBe(true);
  expect(existsSync(join(tmp, 'results', name, 'results.json'))).toBe(true);
});

test("an exported sweep names its folder and its points' rows and copies", async () => {
  const r = await cli(['report', '--export', 'out', 'runs/s']);
  expect(r.code).toBe(0);
  const wrote = r.out.split('\n').filter((l) => l.startsWith('wrote '));
  expect(wrote).toContain(
    "wrote out/sweep-lenet-500-300/ (the sweep's report.md, report.html, plots, sweep.json)",
  );
  expect(wrote.filter((l) => /^wrote out\/[^/ ]+\.json$/.test(l))).toHaveLength(1);
  expect(wrote.filter((l) => /^wrote out\/[^/ ]+\/ \(the run's /.test(l))).toHaveLength(1);
  // Outside the cwd: absolute, not ../ paths.
  const away = mkdtempSync(join(tmpdir(), 'normprune-wrote-away-'));
  try {
    const r2 = await cli(['report', '--json', away, 'runs/r']);
    expect(r2.code).toBe(0);
    expect(r2.out.split('\n').filter((l) => l.startsWith('wrote '))).toEqual([
      expect.stringMatching(new RegExp(`^wrote ${realpathSync(away)}/lenet-500-300[^/ ]*\\.json$`)),
      'wrote runs/r/report.md',
    ]);
  } finally {
    rmSync(away, { recursive: true, force: true });
  }
});

test('a run and a sweep name their report relative to the cwd, and absolute outside it', async () => {
  const inside = await reproduceTiny(join(tmp, 'runs', 'abs'));
  expect(inside.code).toBe(0);
  expect(inside.out.split('\n').pop()).toBe('report: runs/abs/report.md');
  const sweep = await cli([
    'sweep',
    'lenet-500-300',
    '--lambda',
    '0.001',
    ...tinyWasm(join(tmp, 'runs', 's2')),
  ]);
  expect(sweep.code).toBe(0);
  expect(sweep.out.split('\n').pop()).toBe('report: runs/s2/report.md');
  const away = realpathSync(mkdtempSync(join(tmpdir(), 'normprune-wrote-away-')));
  try {
    const outside = await reproduceTiny(join(away, 'r'));
    expect(outside.code).toBe(0);
    expect(outside.out.split('\n').pop()).toBe(`report: ${join(away, 'r', 'report.md')}`);
  } finally {
    rmSync(away, { recursive: true, force: true });
  }
});
