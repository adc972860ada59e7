// What a command may do to the folder --out names: start over an unfinished run only with
// --force, keep a baseline kept there for --baseline-from, and never take over a run (a sweep,
// prune) or leave a replaced sweep behind to mix with the new run.
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configHashes } from '../src/pipeline';
import { cli, reproduceTiny as reproduce, tinyWasm } from './helpers';

let tmp: string;
beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'normprune-outdir-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

test('an unfinished run is continued with --resume or started over with --force, never mixed', async () => {
  const out = join(tmp, 'unfinished');
  expect((await reproduce(out, '--stop-after-steps', '1')).code).toBe(130);
  const plain = await reproduce(out);
  expect(plain.code).toBe(1);
  expect(plain.err).toMatch(
    /holds an unfinished run; continue it with --resume, choose another --out, or pass --force to start over/,
  );
  const forced = await reproduce(out, '--force', '--seed', '2');
  expect(forced.code).toBe(0);
  expect(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')).seed).toBe(2);
  expect(existsSync(join(out, '.work'))).toBe(false);
});

test('an unfinished run of another seed is named with the difference, before any data loads', async () => {
  const out = join(tmp, 'unfinished-seed');
  expect((await reproduce(out, '--stop-after-steps', '1', '--seed', '3')).code).toBe(130);
  // Its own --resume advice would loop: the checkpoint is seed 3's.
  const plain = await reproduce(out, '--seed', '4');
  expect(plain.code).toBe(1);
  expect(plain.err).toMatch(
    /holds an unfinished run of another config, budget or seed \(seed: 3 there, 4 here\), started by `normprune reproduce lenet-500-300 .*--seed 3`; continue it with that command and --resume/,
  );
  const resumed = await reproduce(out, '--seed', '4', '--resume');
  expect(resumed.code).toBe(1);
  expect(resumed.err).toMatch(
    /--resume: the checkpoint in .*unfinished-seed\/\.work\/checkpoint belongs to a run of another config, budget or seed \(seed: 3 there, 4 here\)/,
  );
  expect(resumed.err).not.toMatch(/^data: /m); // refused before the data set loaded
  // Its own command continues it.
  expect((await reproduce(out, '--seed', '3', '--resume')).code).toBe(0);
});

test('an unfinished run whose config file was edited since says so, not "continue it with that command"', async () => {
  const out = join(tmp, 'edited-config');
  const config = join(tmp, 'edited.json');
  const args = ['train', '--config', config, '--budget', 'tiny', '--backend', 'wasm', '--out', out];
  writeFileSync(
    config,
    JSON.stringify({ extends: 'lenet-500-300', training: { proximal: { lambda: 0.004 } } }),
  );
  expect((await cli([...args, '--stop-after-steps', '1'])).code).toBe(130);
  writeFileSync(
    config,
    JSON.stringify({
      extends: 'lenet-500-300',
      training: { baseline: { learningRate: 0.002 }, proximal: { lambda: 0.005 } },
    }),
  );
  // The command that started it is this one: running it again would be refused the same way.
  // The differences are named, not hidden behind the description that lists what the file
  // changed ("[changed by edited.json: ...]").
  const advice =
    /\(config\.training\.baseline\.learningRate: 0\.001 there, 0\.002 here; config\.training\.proximal\.lambda: 0\.004 there, 0\.005 here\), started by this same command: its config file \(or one it extends\) has changed since; put back what changed in the config file \(the run's .*edited-config\/config\.json records the config it ran\) and continue it with --resume/;
  for (const extra of [[], ['--resume']]) {
    const refused = await cli([...args, ...extra]);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(advice);
    expect(refused.err).not.toMatch(/continue it with that command/);
    expect(refused.err).not.toMatch(/config\.description/);
  }
  writeFileSync(
    config,
    JSON.stringify({ extends: 'lenet-500-300', training: { proximal: { lambda: 0.004 } } }),
  );
  expect((await cli([...args, '--resume'])).code).toBe(0);
});

test('a run goes on after its config file is renamed, and from the checkpoint of an earlier version', async () => {
  const out = join(tmp, 'renamed-config');
  const [first, second] = [join(tmp, 'first.json'), join(tmp, 'second.json')];
  const args = (config: string) => ['train', '--config', config, ...tinyWasm(out)];
  const lambda = (l: number) =>
    JSON.stringify({ extends: 'lenet-500-300', training: { proximal: { lambda: l } } });
  writeFileSync(first, lambda(0.004));
  expect((await cli([...args(first), '--stop-after-steps', '1'])).code).toBe(130);
  // The description now says "[changed by second.json: ...]": no result changes with it.
  renameSync(first, second);
  // A checkpoint written before 2026-12-02 records a hash that took in the name and description.
  const stateFile = join(out, '.work', 'checkpoint', 'state.json');
  const recorded = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  expect(recorded.config.description).toMatch(/\[changed by first\.json: training\.proximal\.lambda\]$/);
  const [current, earlier] = configHashes(recorded.config, recorded.budget.spec, recorded.seed);
  const state = JSON.parse(readFileSync(stateFile, 'utf8'));
  expect(state.configHash).toBe(current);
  writeFileSync(stateFile, JSON.stringify({ ...state, configHash: earlier }));
  const again = await cli([...args(second), '--resume', '--stop-after-steps', '1']);
  expect(again.code).toBe(130);
  // The command that started it names first.json, which is gone: the run records this one, and
  // report names it to continue the run (before, the old file's, which fails).
  expect(again.err).toContain(
    `note: the command that started this run names the config file ${first}, which is gone: the run records this command instead`,
  );
  expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).command).toContain(`--config ${second}`);
  const report = await cli(['report', out]);
  expect(report.code).toBe(1);
  expect(report.err).toContain(`continue it with: normprune train --config ${second} `);
  expect(report.err).not.toContain('first.json');
  // Its next checkpoint records this version's hash.
  expect(JSON.parse(readFileSync(stateFile, 'utf8')).configHash).toBe(current);
  const done = await cli([...args(second), '--resume']);
  expect(done.code).toBe(0);
  expect(existsSync(join(out, 'results.json'))).toBe(true);
  expect(existsSync(join(out, '.work'))).toBe(false);
  // Another lambda is still another run.
  writeFileSync(second, lambda(0.005));
  const other = await cli([...args(second), '--resume']);
  expect(other.code).toBe(1);
  expect(other.err).toMatch(
    /it is a run of another config, budget or seed \(config\.training\.proximal\.lambda: 0\.004 there, 0\.005 here\)/,
  );
});

test("prune refuses an --out that is its --model, or inside a run's .work, before loading anything", async () => {
  const model = join(tmp, 'a-model');
  mkdirSync(model);
  writeFileSync(join(model, 'model.json'), '{}');
  for (const [out, message] of [
    [model, /prune: --out .*a-model is the --model folder: the export would replace the model it prunes/],
    [
      join(tmp, 'run', '.work', 'checkpoint', 'model'),
      /prune: --out .*is inside a run's \.work folder, which --resume reads back/,
    ],
  ] as const) {
    const r = await cli(['prune', '--model', model, '--out', out]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
  }
  expect(readFileSync(join(model, 'model.json'), 'utf8')).toBe('{}');
  expect(existsSync(join(tmp, 'run'))).toBe(false);
  // Through a link into a run's .work (its kept baseline), the folder not there yet: refused too.
  const kept = join(tmp, 'run-kept', '.work', 'baseline', 'model');
  mkdirSync(kept, { recursive: true });
  symlinkSync(join(tmp, 'run-kept', '.work', 'baseline'), join(tmp, 'to-kept'));
  const linked = await cli(['prune', '--model', model, '--out', join(tmp, 'to-kept', 'model', 'pruned')]);
  expect(linked.code).toBe(2);
  expect(linked.err).toMatch(/prune: --out .*to-kept\/model\/pruned is inside a run's \.work folder/);
  expect(readdirSync(kept)).toEqual([]);
  rmSync(join(tmp, 'to-kept'));
  rmSync(join(tmp, 'run-kept'), { recursive: true });
});

test('a kept baseline outlives a repeat of its run without --keep-baseline, and a run that reads it in place', async () => {
  const kb = join(tmp, 'kb');
  expect((await reproduce(kb, '--keep-baseline')).code).toBe(0);
  const baseline = join(kb, '.work', 'baseline', 'baseline.json');
  expect(existsSync(baseline)).toBe(true);
  expect((await reproduce(kb)).code).toBe(0);
  expect(existsSync(baseline)).toBe(true);
  const inPlace = await reproduce(kb, '--baseline-from', kb);
  expect(inPlace.code).toBe(0);
  expect(inPlace.err).toMatch(/baseline reused from/);
  expect(existsSync(baseline)).toBe(true);
  // The kept baseline is a model eval and prune take as is, with the run's config found above it.
  const evalBaseline = await cli([
    'eval',
    '--model',
    join(kb, '.work', 'baseline'),
    '--budget',
    'tiny',
    '--backend',
    'wasm',
  ]);
  expect(evalBaseline.err).not.toMatch(/error/);
  expect(evalBaseline.code).toBe(0);
  expect(evalBaseline.out).toMatch(/\| .*baseline.model +\| 545,810 +\|/);
  const pruneRun = await cli(['prune', '--model', kb, '--out', join(tmp, 'kb-pruned'), '--backend', 'wasm']);
  expect(pruneRun.code).toBe(0);
  expect(pruneRun.err).toMatch(/has no decomposed layers/);
});

test('a sweep does not take over a run folder without --force; a run with --force removes the sweep it replaces', async () => {
  const run = join(tmp, 'a-run');
  expect((await reproduce(run)).code).toBe(0);
  const results = readFileSync(join(run, 'results.json'), 'utf8');
  const sweep = (out: string, ...extra: string[]) =>
    cli([
      'sweep',
      'lenet-500-300',
      '--lambda',
      '0.002',
      '--budget',
      'tiny',
      '--backend',
      'wasm',
      '--out',
      out,
      ...extra,
    ]);
  const refused = await sweep(run);
  expect(refused.code).toBe(1);
  expect(refused.err).toMatch(
    /holds a run, not a sweep; choose another --out, or pass --force to replace it/,
  );
  expect(readFileSync(join(run, 'results.json'), 'utf8')).toBe(results);
  expect(existsSync(join(run, 'sweep.json'))).toBe(false);
  expect((await sweep(run, '--force')).code).toBe(0);
  expect(readdirSync(run).sort()).toEqual([
    'lambda-0.002',
    'plots',
    'report.html',
    'report.md',
    'sweep.json',
  ]);
  // And back: a run forced into the sweep's folder leaves no sweep.json or point behind.
  expect((await reproduce(run, '--force')).code).toBe(0);
  expect(existsSync(join(run, 'sweep.json'))).toBe(false);
  expect(existsSync(join(run, 'lambda-0.002'))).toBe(false);
  const table = await cli(['report', '--table', run]);
  expect(table.code).toBe(0);
  expect(table.out).not.toMatch(/lambda-0\.002/);
});

test("a folder named model beside a results.json that is no run's is prune's to write; a run's, even cut short, is not", async () => {
  const run = join(tmp, 'a-run');
  if (!existsSync(join(run, 'results.json'))) expect((await reproduce(run)).code).toBe(0);
  const model = join(run, 'model');
  // Another tool's results.json beside the folder: the export is written there, and replaced.
  const project = join(tmp, 'project');
  mkdirSync(project);
  writeFileSync(join(project, 'results.json'), JSON.stringify({ accuracy: 0.98 }));
  for (let i = 0; i < 2; i++) {
    const r = await cli(['prune', '--model', model, '--out', join(project, 'model')]);
    expect(r.err).not.toMatch(/is the model of the run/);
    expect(r.code).toBe(0);
  }
  expect(existsSync(join(project, 'model', 'model.json'))).toBe(true);
  // A run's results.json cut short (not JSON): its config.json says whose model/ that is.
  const cut = join(tmp, 'cut-run');
  cpSync(run, cut, { recursive: true });
  writeFileSync(join(cut, 'results.json'), '{"experiment": "lenet-');
  const refused = await cli(['prune', '--model', model, '--out', join(cut, 'model', 'sub')]);
  expect(refused.code).toBe(1);
  expect(refused.err).toContain(`is inside the model of the run in ${cut}`);
  expect(existsSync(join(cut, 'model', 'sub'))).toBe(false);
});

test("prune does not write into a run's model folder or a folder of other files", async () => {
  const run = join(tmp, 'a-run');
  if (!existsSync(join(run, 'results.json'))) expect((await reproduce(run)).code).toBe(0);
  const model = join(run, 'model');
  const before = readFileSync(join(model, 'model.json'), 'utf8');
  const into = await cli(['prune', '--model', model, '--out', model]);
  expect(into.code).toBe(1);
  expect(into.err).toMatch(
    /--out .*model is the model of the run in .*a-run, which its results\.json describes/,
  );
  expect(readFileSync(join(model, 'model.json'), 'utf8')).toBe(before);
  const others = await cli(['prune', '--model', model, '--out', run]);
  expect(others.code).toBe(1);
  expect(others.err).toMatch(/holds files that are not an exported model \(config\.json, metrics\.jsonl/);
  // Node's recursive mkdir never returns under /proc; prune fails at once instead.
  if (existsSync('/proc/self')) {
    const proc = await cli(['prune', '--model', model, '--out', '/proc/normprune-test/pruned']);
    expect(proc.code).toBe(1);
    expect(proc.err).toMatch(/cannot create folder \/proc\/normprune-test\/pruned: ENOENT/);
  }
  // A folder holding an earlier prune's export is replaced.
  const pruned = join(tmp, 'pruned');
  expect((await cli(['prune', '--model', model, '--out', pruned])).code).toBe(0);
  expect((await cli(['prune', '--model', model, '--out', pruned])).code).toBe(0);
  // So is one in the run's folder beside its model/ (it was refused as the run's model).
  const beside = join(run, 'pruned');
  expect((await cli(['prune', '--model', model, '--out', beside])).code).toBe(0);
  expect((await cli(['prune', '--model', model, '--out', beside])).code).toBe(0);
  rmSync(beside, { recursive: true });
  // A folder inside the run's model/, named or through a link, is refused and not made.
  symlinkSync(model, join(tmp, 'to-model'));
  for (const out of [join(model, 'sub'), join(model, 'sub', 'deeper'), join(tmp, 'to-model', 'sub')]) {
    const r = await cli(['prune', '--model', model, '--out', out]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      `prune: --out ${out} is inside the model of the run in ${run} (${model}), which its results.json describes; choose another --out`,
    );
  }
  // The link itself is the run's model, not a folder inside it.
  const link = await cli(['prune', '--model', model, '--out', join(tmp, 'to-model')]);
  expect(link.code).toBe(1);
  expect(link.err).toContain(
    `prune: --out ${join(tmp, 'to-model')} is the model of the run in ${run} (${model}), which its results.json describes; choose another --out`,
  );
  expect(readdirSync(model).sort()).toEqual(['group1-shard1of1.bin', 'model.json']);
  // A folder inside a model folder that is no run's: refused as inside the --model folder.
  const copy = join(tmp, 'model-copy');
  cpSync(model, copy, { recursive: true });
  const inside = await cli(['prune', '--model', copy, '--out', join(copy, 'pruned')]);
  expect(inside.code).toBe(2);
  expect(inside.err).toContain(
    `prune: --out ${join(copy, 'pruned')} is inside the --model folder ${copy}: the export would be written among the files of the model it prunes`,
  );
  expect(readdirSync(copy).sort()).toEqual(['group1-shard1of1.bin', 'model.json']);
  // So is a new folder through a link into it (the link resolved in the part of --out that exists).
  symlinkSync(copy, join(tmp, 'to-copy'));
  for (const out of [join(tmp, 'to-copy', 'pruned'), join(tmp, 'to-copy', 'sub', 'deeper')]) {
    const linked = await cli(['prune', '--model', copy, '--out', out]);
    expect(linked.code).toBe(2);
    expect(linked.err).toContain(
      `prune: --out ${out} is inside the --model folder ${copy}: the export would be written among the files of the model it prunes`,
    );
  }
  expect(readdirSync(copy).sort()).toEqual(['group1-shard1of1.bin', 'model.json']);
});

test('a run or sweep that fails before writing anything leaves no folder behind, nor the parents it made', async () => {
  const base = join(tmp, 'nothing');
  mkdirSync(base);
  const cwd = process.cwd();
  process.chdir(base);
  try {
    // A file given as --data-dir is no data set: the run fails at loading, the sweep at its baseline.
    writeFileSync(join(base, 'not-data'), 'hi\n');
    const data = ['--data-dir', 'not-data', '--budget', 'tiny', '--backend', 'wasm'];
    // Its default folder, runs/lenet-500-300-tiny, and runs/ made for it.
    const run = await cli(['reproduce', 'lenet-500-300', ...data]);
    expect(run.code).toBe(1);
    expect(run.err).toMatch(/could not load data set mnist/);
    // A new --out two folders deep.
    expect((await cli(['reproduce', 'lenet-500-300', ...data, '--out', 'a/b/c'])).code).toBe(1);
    // A sweep, whose default folder is runs/sweep-lenet-500-300-tiny.
    const sweep = await cli(['sweep', 'lenet-500-300', '--lambda', '0.001', ...data]);
    expect(sweep.code).toBe(1);
    expect(sweep.err).toMatch(/could not load data set mnist/);
    expect(readdirSync(base)).toEqual(['not-data']);
    // A folder that was there stays, as does anything in it.
    mkdirSync(join(base, 'runs', 'mine'), { recursive: true });
    writeFileSync(join(base, 'runs', 'mine', 'notes.txt'), 'mine\n');
    expect((await cli(['reproduce', 'lenet-500-300', ...data, '--out', 'runs/mine/x'])).code).toBe(1);
    expect(readdirSync(join(base, 'runs', 'mine'))).toEqual(['notes.txt']);
    expect((await cli(['reproduce', 'lenet-500-300', ...data, '--out', 'runs/empty/x'])).code).toBe(1);
    expect(readdirSync(join(base, 'runs')).sort()).toEqual(['mine']);
  } finally {
    process.chdir(cwd);
  }
});
