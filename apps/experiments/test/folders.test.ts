// What report, eval and prune make of the folders they are given: a finished
// run, an interrupted one, a folder that is no run, a file where a folder
// goes, and a row folder that already holds a result of another budget.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tfl from '@tensorflow/tfjs-layers';
import { fileSystem } from '@normprune/runtime';
import { cli } from './helpers';

let tmp: string;
/** A finished run: the committed lenet-500-300 run (results.json, metrics, report). */
let full: string;
/** The same run as if made at --budget tiny. */
let tiny: string;
/** An interrupted run: config.json and a checkpoint, no results.json. */
let unfinished: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'normprune-folders-'));
  full = join(tmp, 'lenet-500-300');
  cpSync(join(__dirname, '..', 'results', 'lenet-500-300'), full, { recursive: true });
  tiny = join(tmp, 'lenet-500-300-tiny');
  cpSync(full, tiny, { recursive: true });
  const r = JSON.parse(readFileSync(join(tiny, 'results.json'), 'utf8'));
  r.budget = { name: 'tiny', spec: { trainSubset: 256, testSubset: 256, validation: 64 }, reduced: true };
  writeFileSync(join(tiny, 'results.json'), JSON.stringify(r));
  unfinished = join(tmp, 'lenet-5-tiny');
  mkdirSync(join(unfinished, '.work', 'checkpoint', 'model'), { recursive: true });
  writeFileSync(
    join(unfinished, 'config.json'),
    JSON.stringify({ experiment: 'lenet-5', command: 'normprune reproduce lenet-5 --budget tiny', seed: 1 }),
  );
  writeFileSync(join(unfinished, '.work', 'checkpoint', 'state.json'), '{}');
  writeFileSync(join(unfinished, '.work', 'checkpoint', 'model', 'model.json'), '{}');
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

test('report --export of a reduced-budget run does not replace the row of another budget', async () => {
  const results = join(tmp, 'results');
  expect((await cli(['report', '--export', results, full])).code).toBe(0);
  const row = readFileSync(join(results, 'lenet-500-300.json'), 'utf8');
  const report = readFileSync(join(results, 'lenet-500-300', 'report.md'), 'utf8');
  const r = await cli(['report', '--export', results, tiny]);
  expect(r.code).toBe(1);
  expect(r.err).toMatch(
    /lenet-500-300\.json holds the row of budget full; .*lenet-500-300-tiny \(budget tiny\) would replace it/,
  );
  expect(readFileSync(join(results, 'lenet-500-300.json'), 'utf8')).toBe(row);
  expect(readFileSync(join(results, 'lenet-500-300', 'report.md'), 'utf8')).toBe(report);
  // --json likewise; the same budget replaces its row as before.
  expect((await cli(['report', '--json', results, tiny])).code).toBe(1);
  expect((await cli(['report', '--export', results, full])).code).toBe(0);
});

test('report of a folder that is no run says what to give instead', async () => {
  const empty = join(tmp, 'not-a-run');
  mkdirSync(empty);
  const r = await cli(['report', empty]);
  expect(r.code).toBe(1);
  expect(r.err).toMatch(
    /report: .*not-a-run is not a run folder \(no results\.json or config\.json\); give run folders \(runs\/<experiment>\), sweep folders \(with sweep\.json\) or results table rows \(\*\.json\)/,
  );
});

test('report of an interrupted run names it and the command that continues it', async () => {
  const r = await cli(['report', unfinished]);
  expect(r.code).toBe(1);
  expect(r.err).toMatch(
    /lenet-5-tiny is an unfinished run \(interrupted\); continue it with: normprune reproduce lenet-5 --budget tiny --resume --out .*lenet-5-tiny/,
  );
  // `report --table runs/*` prints the finished runs and skips the unfinished one with a note.
  const t = await cli(['report', '--table', full, unfinished]);
  expect(t.code).toBe(0);
  expect(t.out).toMatch(/^\| lenet-500-300 /m);
  expect(t.err).toMatch(/note: skipped .*lenet-5-tiny: an unfinished run \(interrupted\)/);
  // Nothing finished at all is still an error.
  expect((await cli(['report', '--table', unfinished])).code).toBe(1);
});

test('the command that continues a moved run names the folder given, as an absolute path', async () => {
  // The recorded --out (here the default, relative runs/lenet-5-tiny, elsewhere the original
  // folder) would resume another run, or one under another working directory.
  const moved = join(tmp, 'moved', 'copy of run');
  cpSync(unfinished, moved, { recursive: true });
  const r = await cli(['report', moved]);
  expect(r.code).toBe(1);
  expect(r.err).toContain(
    `continue it with: normprune reproduce lenet-5 --budget tiny --resume --out '${moved}'`,
  );
  // A recorded --out is replaced, not repeated.
  const cfg = JSON.parse(readFileSync(join(moved, 'config.json'), 'utf8'));
  writeFileSync(
    join(moved, 'config.json'),
    JSON.stringify({ ...cfg, command: `${cfg.command} --out runs/x --seed 2` }),
  );
  const again = await cli(['report', moved]);
  expect(again.err).toContain(`--budget tiny --seed 2 --resume --out '${moved}'`);
  expect(again.err).not.toContain('runs/x');
  // A run being written is named with its process, not given advice that only meets its lock.
  writeFileSync(join(moved, '.normprune.lock'), `${process.ppid}\na run of lenet-5\n`);
  const live = await cli(['report', moved]);
  expect(live.code).toBe(1);
  expect(live.err).toMatch(
    new RegExp(
      `copy of run is a run being written by process ${process.ppid} \\(a run of lenet-5\\); wait for it to end`,
    ),
  );
  expect(live.err).not.toMatch(/continue it with/);
  // The lock, an older normprune's, records no start time: the process of its pid may be another
  // program, and the message says how to check.
  expect(live.err).toMatch(
    new RegExp(
      `wait for it to end \\(its lock .*records no start time, .*\`ps -p ${process.ppid}\` shows no normprune`,
    ),
  );
});

// Node's fs module itself (the CLI calls its functions through it), for spies.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const fs = require('node:fs') as typeof import('node:fs');

test('a read-only run is exported with the report it has; an unwritable --json folder is named at once', async () => {
  // Tests run as root, which chmod does not stop: the file system's refusal is injected.
  const ro = join(tmp, 'read-only-run');
  cpSync(full, ro, { recursive: true });
  const report = readFileSync(join(ro, 'report.md'), 'utf8');
  const denied = (file: unknown) => String(file).startsWith(ro + '/');
  const realWrite = fs.writeFileSync;
  const write = jest.spyOn(fs, 'writeFileSync').mockImplementation((file, ...rest) => {
    if (denied(file))
      throw Object.assign(new Error(`EACCES: permission denied, open '${file}'`), { code: 'EACCES' });
    return realWrite(file, ...rest);
  });
  try {
    const exportDir = join(tmp, 'exported-read-only');
    const r = await cli(['report', '--export', exportDir, ro]);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/note: .*read-only-run is read-only: its report is left as it is, not rewritten/);
    expect(readFileSync(join(exportDir, 'lenet-500-300', 'report.md'), 'utf8')).toBe(report);
    // Rewriting its report alone still fails, naming the file.
    const alone = await cli(['report', ro]);
    expect(alone.code).toBe(1);
    expect(alone.err).toMatch(/cannot write .*read-only-run.*EACCES/);
  } finally {
    write.mockRestore();
  }
  const access = jest.spyOn(fs, 'accessSync').mockImplementation((p) => {
    if (String(p) === tmp) throw Object.assign(new Error('EACCES'), { code: 'EACCES' });
  });
  try {
    const r = await cli(['report', '--json', join(tmp, 'rows-here', 'deeper'), full]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /report: --json .*rows-here\/deeper cannot be written: .* is not writable \(EACCES\); give another folder/,
    );
    expect(r.out).toBe('');
    expect(existsSync(join(tmp, 'rows-here'))).toBe(false);
  } finally {
    access.mockRestore();
  }
});

test('report --export or --json to a file is refused before any report is rewritten', async () => {
  const file = join(tmp, 'a-file');
  writeFileSync(file, 'x');
  for (const flag of ['--export', '--json']) {
    const r = await cli(['report', flag, file, full]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(new RegExp(`report: ${flag} .*a-file is a file; give a folder`));
    expect(r.out).toBe('');
  }
});

test('eval and prune of an interrupted run point at its checkpoint model', async () => {
  for (const cmd of [
    ['eval', '--model', unfinished],
    ['prune', '--model', unfinished, '--out', join(tmp, 'pruned')],
  ]) {
    const r = await cli(cmd);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /lenet-5-tiny is an unfinished run \(interrupted\): its model\/ is written when it finishes; continue it with: normprune reproduce lenet-5 --budget tiny --resume --out .*lenet-5-tiny; or give its checkpoint's model, .*lenet-5-tiny\/\.work\/checkpoint\/model/,
    );
  }
  expect(existsSync(join(tmp, 'pruned'))).toBe(false);
});

test('a run or sweep whose --out is a file says so', async () => {
  const file = join(tmp, 'out-file');
  writeFileSync(file, 'x');
  const r = await cli(['reproduce', 'lenet-500-300', '--budget', 'tiny', '--out', file]);
  expect(r.code).toBe(1);
  expect(r.err).toMatch(/--out .*out-file is a file, not a folder; give a folder for the run/);
  const s = await cli(['sweep', 'lenet-500-300', '--budget', 'tiny', '--lambda', '0.002', '--out', file]);
  expect(s.code).toBe(1);
  expect(s.err).toMatch(/--out .*out-file is a file, not a folder; give a folder for the sweep/);
  expect(readFileSync(file, 'utf8')).toBe('x');
});

/** A small saved MLP whose model.json `edit` changes. */
async function editedModel(name: string, edit: (j: any) => void): Promise<string> {
  const dir = join(tmp, name);
  const model = tfl.sequential({
    layers: [
      tfl.layers.flatten({ inputShape: [28, 28, 1] }),
      tfl.layers.dense({ units: 8, activation: 'relu' }),
      tfl.layers.dense({ units: 10 }),
    ],
  });
  await model.save(fileSystem(dir));
  model.dispose();
  const j = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
  edit(j);
  writeFileSync(join(dir, 'model.json'), JSON.stringify(j));
  return dir;
}

test('eval and prune of a model.json whose topology and weights disagree name the file and the fix', async () => {
  const firstDense = (j: any) =>
    j.modelTopology.config.layers.find((l: any) => l.class_name === 'Dense').config;
  const disagree = /; its modelTopology and weightsManifest disagree \(.*\): copy it again, or rerun/;
  const cases: [string, (j: any) => void, RegExp, RegExp][] = [
    ['units', (j) => (firstDense(j).units += 1), /: Shape mismatch: \[784,9\] vs\. \[784,8\]/, disagree],
    // The shard then holds more bytes than the manifest names: the file check says so.
    ['manifest', (j) => j.weightsManifest[0].weights.pop(), /bytes, but/, /the model folder is damaged/],
    [
      'class',
      (j) => (j.modelTopology.config.layers[1].class_name = 'MyDense'),
      /uses the layer class MyDense, which is neither a tfjs layer nor a normprune one/,
      /load it in your own code, which registers that class/,
    ],
    // Not a model.json at all: the file check names it once, as damaged (tfjs never sees it).
    [
      'topology',
      (j) => delete j.modelTopology,
      /model\.json is not a tfjs model\.json: the key "modelTopology" is missing/,
      /; the model folder is damaged or incomplete \(.*\): copy it again/,
    ],
    [
      'activation',
      (j) => (firstDense(j).activation = 'swishy'),
      /swishy/,
      /tfjs cannot build the model it describes \(.*\): copy it again/,
    ],
  ];
  for (const [name, edit, problem, fix] of cases) {
    const dir = await editedModel(`mismatch-${name}`, edit);
    for (const cmd of [
      ['eval', '--model', dir, '--experiment', 'lenet-500-300', '--data-dir', join(tmp, 'no-data-here')],
      ['prune', '--model', dir, '--out', join(tmp, `pruned-${name}`)],
    ]) {
      const r = await cli(cmd);
      expect(r.code).toBe(1);
      expect(r.err.split(join(dir, 'model.json'))).toHaveLength(2);
      expect(r.err).toMatch(problem);
      expect(r.err).toMatch(fix);
      // One line: tfjs's own advice on custom layers runs to several.
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(existsSync(join(tmp, `pruned-${name}`))).toBe(false);
    }
  }
});

test('eval and prune of a damaged model folder say what to do, before loading any data', async () => {
  const damaged = join(tmp, 'damaged');
  mkdirSync(damaged);
  writeFileSync(join(damaged, 'model.json'), '{"modelTopology": {"class_name": "Sequ');
  for (const cmd of [
    ['eval', '--model', damaged, '--experiment', 'lenet-500-300', '--data-dir', join(tmp, 'no-data-here')],
    ['prune', '--model', damaged, '--out', join(tmp, 'pruned-damaged')],
  ]) {
    const r = await cli(cmd);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /: Cannot load model: .*damaged\/model\.json is not valid JSON \(.*\); the model folder is damaged or incomplete \(cut short by a copy or a full disk\?\): copy it again, or rerun the run or prune that wrote it/,
    );
    // The model is read before the data set: a missing --data-dir is not what eval reports.
    expect(r.err).not.toMatch(/no-data-here/);
  }
});
