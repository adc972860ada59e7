// Files of the user's that a command's output names match are never replaced (audit 26, items
// 1-3): a run or sweep in a folder of other files, `report --json`/`--export` over a file named as
// a row, `prune --out` over a model it did not export.
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tfl from '@tensorflow/tfjs-layers';
import { fileSystem } from '@normprune/runtime';
import { cli, loadInPlainTfjs } from './helpers';

let tmp: string;
beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'normprune-yours-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const tiny = ['--budget', 'tiny', '--backend', 'wasm'];
const reproduce = (out: string, ...extra: string[]) =>
  cli(['reproduce', 'lenet-500-300', ...tiny, '--out', out, ...extra]);
const sweep = (out: string, ...extra: string[]) =>
  cli(['sweep', 'lenet-500-300', '--lambda', '0.002', ...tiny, '--out', out, ...extra]);

/** Every file under `dir` (relative path -> content), to compare a folder before and after. */
function snapshot(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const f of readdirSync(dir, { recursive: true }) as string[])
    files[f] = statSync(join(dir, f)).isDirectory() ? '<dir>' : readFileSync(join(dir, f), 'latin1');
  return files;
}

/** A folder of the user's: a config file, a tfjs model of their own, a report and a plot. */
function project(name: string): string {
  const dir = join(tmp, name);
  mkdirSync(join(dir, 'model'), { recursive: true });
  mkdirSync(join(dir, 'plots'), { recursive: true });
  writeFileSync(join(dir, 'config.json'), '{"extends": "lenet-500-300", "name": "p3"}');
  writeFileSync(join(dir, 'model', 'model.json'), '{"modelTopology": {}, "weightsManifest": []}');
  writeFileSync(join(dir, 'model', 'group1-shard1of1.bin'), 'my weights');
  writeFileSync(join(dir, 'report.md'), '# My paper draft');
  writeFileSync(join(dir, 'plots', 'curves.svg'), '<svg/>');
  return dir;
}

let finished: string;
const finishedRun = async (): Promise<string> => {
  if (finished) return finished;
  finished = join(tmp, 'finished');
  expect((await reproduce(finished)).code).toBe(0);
  return finished;
};

test('a run never overwrites files of yours named as a run’s, with or without --force', async () => {
  const dir = project('proj');
  const before = snapshot(dir);
  const plain = await reproduce(dir);
  expect(plain.code).toBe(1);
  expect(plain.err).toMatch(
    /proj holds files that are not a normprune run, which the run would overwrite \(config\.json, model\/group1-shard1of1\.bin, model\/model\.json, \.\.\.\); move them away or choose another --out \(--force never replaces files of yours\)/,
  );
  expect(snapshot(dir)).toEqual(before);
  const forced = await reproduce(dir, '--force');
  expect(forced.code).toBe(1);
  expect(forced.err).toMatch(/which the run would overwrite/);
  expect(snapshot(dir)).toEqual(before);

  // A config file of yours alone, beside other files: named too (not only train.py).
  const proj2 = join(tmp, 'proj2');
  mkdirSync(proj2);
  writeFileSync(join(proj2, 'config.json'), '{"extends": "lenet-500-300"}');
  writeFileSync(join(proj2, 'train.py'), 'print(1)');
  const two = await reproduce(proj2, '--force');
  expect(two.code).toBe(1);
  expect(two.err).toMatch(/which the run would overwrite \(config\.json\)/);
  expect(readFileSync(join(proj2, 'config.json'), 'utf8')).toBe('{"extends": "lenet-500-300"}');
});

test('--force writes a run beside files of yours it does not overwrite, and keeps them', async () => {
  const dir = join(tmp, 'beside');
  mkdirSync(join(dir, 'model'), { recursive: true });
  mkdirSync(join(dir, 'plots'));
  writeFileSync(join(dir, 'train.py'), 'print(1)');
  writeFileSync(join(dir, 'model', 'NOTES.md'), 'mine');
  writeFileSync(join(dir, 'plots', 'mine.svg'), '<svg/>');
  const plain = await reproduce(dir);
  expect(plain.code).toBe(1);
  expect(plain.err).toMatch(
    /holds files that are not a normprune run \(model, plots, train\.py\); choose another --out, or pass --force to write the run beside them \(they are kept\)/,
  );
  expect((await reproduce(dir, '--force')).code).toBe(0);
  expect(readFileSync(join(dir, 'train.py'), 'utf8')).toBe('print(1)');
  expect(readFileSync(join(dir, 'model', 'NOTES.md'), 'utf8')).toBe('mine');
  expect(readFileSync(join(dir, 'plots', 'mine.svg'), 'utf8')).toBe('<svg/>');
  expect(existsSync(join(dir, 'results.json'))).toBe(true);
  // Now a run is there: a rerun of another seed replaces it (with --force) and keeps them still.
  expect((await reproduce(dir, '--seed', '2', '--force')).code).toBe(0);
  expect(readFileSync(join(dir, 'model', 'NOTES.md'), 'utf8')).toBe('mine');
  expect(readFileSync(join(dir, 'train.py'), 'utf8')).toBe('print(1)');
});

test('a sweep refuses a folder of files of yours, and never overwrites your report', async () => {
  const notes = join(tmp, 'proj5');
  mkdirSync(notes);
  writeFileSync(join(notes, 'notes.txt'), 'x');
  writeFileSync(join(notes, 'README.md'), '# readme');
  const refused = await sweep(notes);
  expect(refused.code).toBe(1);
  expect(refused.err).toMatch(
    /proj5 holds files that are not a normprune sweep \(README\.md, notes\.txt\); choose another --out, or pass --force to write the sweep beside them/,
  );
  expect(readdirSync(notes).sort()).toEqual(['README.md', 'notes.txt']);

  const paper = join(tmp, 'paper2');
  mkdirSync(paper);
  writeFileSync(join(paper, 'report.md'), '# My own notes');
  for (const extra of [[], ['--force']]) {
    const r = await sweep(paper, ...extra);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /paper2 holds files that are not a normprune sweep, which the sweep would overwrite \(report\.md\); move them away/,
    );
  }
  expect(readdirSync(paper)).toEqual(['report.md']);
  expect(readFileSync(join(paper, 'report.md'), 'utf8')).toBe('# My own notes');

  // A sweep.json of yours (not a sweep's, and no run of a point beside it, only a folder named as
  // one) is yours too: --force neither removes it as a damaged sweep nor overwrites it.
  for (const [i, text] of ['{"my": "sweep"}', 'lambda,error\n0.1,2.0\n'].entries()) {
    const own = join(tmp, `own-sweep-json-${i}`);
    mkdirSync(join(own, 'lambda-notes'), { recursive: true });
    writeFileSync(join(own, 'sweep.json'), text);
    writeFileSync(join(own, 'lambda-notes', 'a.txt'), 'x');
    const before = snapshot(own);
    for (const extra of [[], ['--force']]) {
      const r = await sweep(own, ...extra);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(
        /own-sweep-json-\d holds files that are not a normprune sweep, which the sweep would overwrite \(lambda-notes, sweep\.json\); move them away/,
      );
      expect(snapshot(own)).toEqual(before);
    }
  }

  // A run given that folder: the same (it took any sweep.json for a sweep's, and with --force
  // replaced the report.md beside it as the sweep's).
  const both = join(tmp, 'own-sweep-json-run');
  mkdirSync(both);
  writeFileSync(join(both, 'sweep.json'), '{"my": "sweep"}');
  writeFileSync(join(both, 'report.md'), '# mine');
  const mine = snapshot(both);
  for (const extra of [[], ['--force']]) {
    const r = await reproduce(both, ...extra);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /own-sweep-json-run holds files that are not a normprune run, which the run would overwrite \(report\.md\)/,
    );
    expect(snapshot(both)).toEqual(mine);
  }

  // A config file of yours is no run: a sweep --force does not remove it as one.
  const cfg = join(tmp, 'sweep-cfg');
  mkdirSync(cfg);
  writeFileSync(join(cfg, 'config.json'), '{"extends": "lenet-500-300"}');
  const forced = await sweep(cfg, '--force');
  expect(forced.code).toBe(0);
  expect(readFileSync(join(cfg, 'config.json'), 'utf8')).toBe('{"extends": "lenet-500-300"}');
  expect(existsSync(join(cfg, 'sweep.json'))).toBe(true);
});

test('report --json and --export replace only a results row, never another file of that name', async () => {
  const run = await finishedRun();
  for (const flag of ['--json', '--export']) {
    const dir = join(tmp, `rows${flag}`);
    mkdirSync(dir);
    const file = join(dir, 'lenet-500-300.json');
    for (const [text, why] of [
      ['{"extends": "lenet-500-300", "name": "lenet-500-300"}', 'is not a results table row,'],
      ['not json', /is not a results table row \(not valid JSON\)/],
    ] as const) {
      writeFileSync(file, text);
      const r = await cli(['report', '--table', run, flag, dir]);
      expect(r.code).toBe(1);
      expect(r.err).toContain(`report: ${file} `);
      expect(r.err).toMatch(why);
      expect(r.err).toMatch(`give ${flag} another folder, or move the file away`);
      expect(readFileSync(file, 'utf8')).toBe(text);
      expect(readdirSync(dir)).toEqual(['lenet-500-300.json']);
    }
    // A row (of the same seed and budget) is replaced, as before.
    rmSync(file);
    expect((await cli(['report', '--table', run, flag, dir])).code).toBe(0);
    const row = readFileSync(file, 'utf8');
    expect((await cli(['report', '--table', run, flag, dir])).code).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe(row);
  }
});

test('prune --out replaces only an earlier export of prune, marked in its model.json', async () => {
  const run = await finishedRun();
  const model = join(run, 'model');
  // A model of another tool (here a copy of a run's export, which prune does not mark).
  const mine = join(tmp, 'my-model');
  cpSync(model, mine, { recursive: true });
  const before = snapshot(mine);
  const refused = await cli(['prune', '--model', model, '--out', mine]);
  expect(refused.code).toBe(1);
  expect(refused.err).toMatch(
    /prune: --out .*my-model holds a model that is not an export of normprune prune \(its model\.json has no normprune mark\), perhaps your only copy of it; choose another --out/,
  );
  expect(snapshot(mine)).toEqual(before);

  // prune's export is marked, loads in plain tfjs, and a later prune replaces it.
  const pruned = join(tmp, 'pruned');
  expect((await cli(['prune', '--model', model, '--out', pruned])).code).toBe(0);
  const json = JSON.parse(readFileSync(join(pruned, 'model.json'), 'utf8'));
  expect(json.userDefinedMetadata).toEqual({ normprune: { exportedBy: 'normprune prune' } });
  const loaded = await tfl.loadLayersModel(fileSystem(pruned));
  expect(loaded.getUserDefinedMetadata()).toEqual(json.userDefinedMetadata);
  loaded.dispose();
  expect(loadInPlainTfjs([pruned])[0].shape).toEqual([2, 10]);
  // A shard of a larger earlier export, which its model.json lists, goes with it.
  json.weightsManifest[0].paths.push('group1-shard2of2.bin');
  writeFileSync(join(pruned, 'model.json'), JSON.stringify(json));
  writeFileSync(join(pruned, 'group1-shard2of2.bin'), 'old');
  expect((await cli(['prune', '--model', model, '--out', pruned])).code).toBe(0);
  expect(readdirSync(pruned).sort()).toEqual(['group1-shard1of1.bin', 'model.json']);
  // A weight file its model.json does not list, and not named as fileSystem names its shards
  // (those are a killed save's, which the next save removes: leftovers.test.ts), is not the export's.
  writeFileSync(join(pruned, 'weights.bin'), 'mine');
  const stray = await cli(['prune', '--model', model, '--out', pruned]);
  expect(stray.code).toBe(1);
  expect(stray.err).toMatch(
    /holds weight files its model\.json does not list \(weights\.bin\), which are not the export's/,
  );
  expect(readFileSync(join(pruned, 'weights.bin'), 'utf8')).toBe('mine');
});
