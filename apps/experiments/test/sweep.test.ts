// `normprune sweep`: a grid shares one trained baseline and draws the Pareto
// front; --target-compression bisects lambda on the run's own parameter counts.
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '@normprune/runtime';
import { cli, writeVariant } from './helpers';

let tmp: string;
beforeAll(async () => {
  await initBackend({ prefer: 'wasm', quiet: true });
  tmp = mkdtempSync(join(tmpdir(), 'normprune-sweep-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/**
 * The budget of the sweeps whose checks do not depend on the model's size: tiny at a quarter of
 * the model's width, whose points take a third of tiny's time (a grid of 5 points on lenet-500-300:
 * 2.2 s instead of 6.1 s). The grid below keeps tiny, which its rows in the report test name.
 */
const NARROW = 'tiny,widthMultiplier=0.25';

/** `normprune sweep EXPERIMENT --budget NARROW ARGS --out OUT --backend wasm`. */
const tinySweep = (experiment: string, out: string, ...args: string[]) =>
  cli(['sweep', experiment, '--budget', NARROW, ...args, '--out', out, '--backend', 'wasm']);

test('a lambda x granularity grid writes every point, sweep.json and the Pareto plot', async () => {
  const out = join(tmp, 'grid');
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  const listeners = signals.map((s) => process.listenerCount(s));
  const r = await cli([
    'sweep',
    'lenet-500-300',
    '--budget',
    'tiny',
    '--lambda',
    '0.001,0.05',
    '--granularity',
    'output,input',
    '--out',
    out,
    '--backend',
    'wasm',
  ]);
  expect(r.code).toBe(0);
  // The sweep's and its points' stop-signal handlers are all gone.
  expect(signals.map((s) => process.listenerCount(s))).toEqual(listeners);
  const sweep = JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8'));
  expect(sweep.points.map((p: any) => p.label)).toEqual([
    'lambda-0.001-output',
    'lambda-0.05-output',
    'lambda-0.001-input',
    'lambda-0.05-input',
  ]);
  for (const p of sweep.points) expect(existsSync(join(out, p.dir, 'results.json'))).toBe(true);
  // One baseline for all points: identical baseline errors, and no leftover work folders.
  expect(new Set(sweep.points.map((p: any) => p.baselineTestErrorPct)).size).toBe(1);
  expect(existsSync(join(out, sweep.points[0].dir, '.work'))).toBe(false);
  expect(readFileSync(join(out, 'plots', 'pareto.svg'), 'utf8')).toMatch(/Pareto front/);
  expect(readFileSync(join(out, 'report.md'), 'utf8')).toMatch(
    /\| lambda-0\.05-input +\| 0\.05 +\| input +\|/,
  );
});

test('report over sweep directories: one row per point, and one across-seeds row per point', async () => {
  const grid = join(tmp, 'grid');
  // A second seed of the same sweep, made from the first (report reads only the files).
  const grid2 = join(tmp, 'grid-seed-2');
  cpSync(grid, grid2, { recursive: true });
  for (const p of JSON.parse(readFileSync(join(grid2, 'sweep.json'), 'utf8')).points) {
    const f = join(grid2, p.dir, 'results.json');
    const r = JSON.parse(readFileSync(f, 'utf8'));
    writeFileSync(f, JSON.stringify({ ...r, seed: r.seed + 1 }));
  }
  const rows = join(tmp, 'sweep-rows');
  // Both seeds' points would be written to the same row files: refused before anything is written.
  const clash = await cli(['report', '--table', grid, grid2, '--export', rows]);
  expect(clash.code).toBe(1);
  expect(clash.err).toMatch(
    /would both be written to .*lenet-500-300-lambda-0\.001-output\.json, the second replacing the first; export or --json each seed/,
  );
  expect(existsSync(rows)).toBe(false);
  // Runs of one seed would clash too: two configs under one name (an extends file that keeps it).
  const other = join(tmp, 'grid-other-config');
  cpSync(grid, other, { recursive: true });
  for (const p of JSON.parse(readFileSync(join(other, 'sweep.json'), 'utf8')).points) {
    const f = join(other, p.dir, 'results.json');
    writeFileSync(f, JSON.stringify({ ...JSON.parse(readFileSync(f, 'utf8')), configId: 'cccccccccccc' }));
  }
  const sameSeed = await cli(['report', '--table', grid, other, '--export', rows]);
  expect(sameSeed.code).toBe(1);
  expect(sameSeed.err).toMatch(
    /the second replacing the first; both are lenet-500-300 lambda-0\.001-output with seed 1 \(configs [0-9a-f]{12} and cccccccccccc\): export or --json each run to its own folder, e\.g\. .*sweep-rows\/lambda-0\.001-output/,
  );
  expect(sameSeed.err).not.toMatch(/each seed/);
  expect(existsSync(rows)).toBe(false);
  const t = await cli(['report', '--table', grid, grid2]);
  expect(t.code).toBe(0);
  expect((await cli(['report', '--table', grid, '--export', rows])).code).toBe(0);
  expect(t.out).toMatch(/\| lenet-500-300 lambda-0\.05-input +\| 1 +\| tiny/);
  // Four points x two seeds in the results table, four rows across seeds.
  const across = t.out.slice(t.out.indexOf('Across seeds'));
  expect(across.split('\n').filter((l) => /^\| lenet-500-300 lambda-/.test(l))).toHaveLength(4);
  expect(across).toMatch(/\| lenet-500-300 lambda-0\.001-output +\| tiny \(reduced\) +\| 1, 2 +\|/);
  // A reduced budget says so in the across-seeds row too, as in each point's row.
  expect(across).toMatch(/\| \*\*missed\*\* on the means at a reduced budget only, not a reproduction: /);
  // --export writes each point's row and files, and the sweep's own report.
  const row = JSON.parse(readFileSync(join(rows, 'lenet-500-300-lambda-0.001-input.json'), 'utf8'));
  expect(row).toMatchObject({ experiment: 'lenet-500-300', variant: 'lambda-0.001-input' });
  expect(existsSync(join(rows, 'lenet-500-300-lambda-0.001-input', 'report.md'))).toBe(true);
  expect(existsSync(join(rows, 'sweep-lenet-500-300', 'sweep.json'))).toBe(true);
  // A point of another sweep of the experiment, exported there before, is kept and named.
  writeFileSync(
    join(rows, 'lenet-500-300-lambda-0.009.json'),
    JSON.stringify({ ...row, variant: 'lambda-0.009' }),
  );
  const again = await cli(['report', '--table', grid, '--export', rows]);
  expect(again.err).toMatch(
    /note: .*sweep-rows also holds rows of lenet-500-300 from another sweep \(lambda-0\.009\); they are kept/,
  );
  expect(existsSync(join(rows, 'lenet-500-300-lambda-0.009.json'))).toBe(true);
  // The rewritten sweep report gives each point's change against the shared baseline.
  const md = readFileSync(join(grid, 'report.md'), 'utf8');
  expect(md).toMatch(/validation change \| test error \| test change \| test change 95% CI/);
  // Each point's paired test against the shared baseline: its interval holds its change.
  const sweep = JSON.parse(readFileSync(join(grid, 'sweep.json'), 'utf8'));
  for (const p of sweep.points) {
    const change = p.testErrorPct - p.baselineTestErrorPct;
    expect(p.changeCi95Pp[0]).toBeLessThanOrEqual(change + 1e-9);
    expect(p.changeCi95Pp[1]).toBeGreaterThanOrEqual(change - 1e-9);
  }
  // A point's directory alone is named by its label too.
  const one = await cli(['report', '--table', join(grid, 'lambda-0.05-output')]);
  expect(one.out).toMatch(/\| lenet-500-300 lambda-0\.05-output +\|/);
  // The exported sweep reads back: its sweep.json names the exported points, and an exported
  // point is named by its label.
  const back = await cli(['report', '--table', join(rows, 'sweep-lenet-500-300')]);
  expect(back.code).toBe(0);
  expect(back.out).toBe((await cli(['report', '--table', grid])).out);
  const exportedPoint = await cli(['report', '--table', join(rows, 'lenet-500-300-lambda-0.05-output')]);
  expect(exportedPoint.out).toMatch(/\| lenet-500-300 lambda-0\.05-output +\|/);
  // A row file there from another seed is not replaced by a later call: each seed to its own folder.
  const reseed = await cli(['report', '--table', grid2, '--json', rows]);
  expect(reseed.code).toBe(1);
  expect(reseed.err).toMatch(
    /lenet-500-300-lambda-0\.001-output\.json holds the row of seed 1; .*grid-seed-2.* \(seed 2\) would replace it.*sweep-rows\/seed-2/,
  );
  expect(JSON.parse(readFileSync(join(rows, 'lenet-500-300-lambda-0.001-input.json'), 'utf8')).seed).toBe(1);
  expect((await cli(['report', '--table', grid, '--json', rows])).code).toBe(0);
  // --seeds-only --section: only the across-seeds table, between the named markers.
  const readme = join(tmp, 'README.md');
  writeFileSync(
    readme,
    '<!-- results:start (x) -->\nkept\n<!-- results:end -->\n<!-- sweep:start (x) -->\nold\n<!-- sweep:end -->\n',
  );
  const w = await cli([
    'report',
    '--seeds-only',
    '--section',
    'sweep',
    '--write-readme',
    readme,
    grid,
    grid2,
  ]);
  expect(w.code).toBe(0);
  const text = readFileSync(readme, 'utf8');
  expect(text).toMatch(/<!-- results:start \(x\) -->\nkept\n<!-- results:end -->/);
  expect(text).not.toMatch(/\nold\n/);
  expect(text).toMatch(/<!-- sweep:start \(x\) -->\n\nAcross seeds/);
  expect(text).not.toMatch(/\| seed \|/);
  expect(text).toMatch(/\|\n\nCommands \(/);
  // One command line per sweep, not one per point.
  expect(text.match(/`normprune sweep lenet-500-300 /g)).toHaveLength(1);
  const badName = await cli(['report', '--section', 'Bad Name', '--write-readme', readme, grid]);
  expect(badName.code).toBe(2);
  expect(badName.err).toMatch(/--section must be a marker name/);
  expect((await cli(['report', '--seeds-only', '--table', grid])).code).toBe(2);
});

test('--target-compression bisects lambda and says whether any lambda reached it', async () => {
  const out = join(tmp, 'bisect');
  const r = await cli([
    'sweep',
    'lenet-500-300-input',
    '--budget',
    NARROW,
    '--target-compression',
    '15',
    '--bisect-steps',
    '2',
    '--out',
    out,
    '--backend',
    'wasm',
  ]);
  expect(r.code).toBe(0);
  const sweep = JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8'));
  expect(sweep.points.length).toBeGreaterThanOrEqual(3);
  expect(sweep.note).toMatch(/Bisection for >= 15% of parameters removed/);
  const lambdas = sweep.points.map((p: any) => p.lambda);
  expect(new Set(lambdas).size).toBe(lambdas.length);
  // The answer comes with the bracket below it: the largest lambda run below it, which missed.
  const ok = sweep.points
    .filter((p: any) => p.compressionPct >= 15)
    .sort((a: any, b: any) => a.lambda - b.lambda)[0];
  const below = sweep.points.filter((p: any) => p.lambda < ok.lambda);
  expect(r.out).toContain(`target 15% removed: smallest lambda reaching it ${ok.lambda} `);
  expect(sweep.note).toContain(`smallest lambda reaching it is ${ok.lambda} `);
  if (below.length) {
    const top = below.sort((a: any, b: any) => b.lambda - a.lambda)[0];
    expect(top.compressionPct).toBeLessThan(15);
    expect(sweep.note).toContain(`the largest lambda below it, ${top.lambda}, missed it`);
  } else expect(sweep.note).toContain('no smaller lambda was tried');
  // Every point is in the report's table once; the answer's row is marked, also when
  // `report` writes it again from sweep.json.
  const md = readFileSync(join(out, 'report.md'), 'utf8');
  for (const p of sweep.points) expect(md.split(`| ${p.label} `).length).toBe(2);
  expect(md).toContain(`| ${ok.label} (the answer) |`);
  expect(md.split('(the answer)')).toHaveLength(2);
  expect((await cli(['report', out])).code).toBe(0);
  expect(readFileSync(join(out, 'report.md'), 'utf8')).toBe(md);
});

test('an interrupted bisection continues with --resume along the same path, to the same answer', async () => {
  // The same bisection as above, interrupted twice: after 4 steps of its first point (the
  // baseline's 2 and 2 of the proximal phase), then, resumed, in its second point.
  const args = [
    'sweep',
    'lenet-500-300-input',
    '--budget',
    NARROW,
    '--target-compression',
    '15',
    '--bisect-steps',
    '2',
    '--backend',
    'wasm',
  ];
  const out = join(tmp, 'bisect-interrupted');
  const first = await cli([...args, '--out', out, '--stop-after-steps', '4']);
  expect(first.code).toBe(130);
  expect(first.out).toMatch(/continue with: normprune sweep .* --resume$/m);
  // Another bisection (or a grid) continuing it would leave its points out of its sweep.json.
  for (const other of [
    [...args.slice(0, 5), '20', ...args.slice(6)],
    [...args.slice(0, 4), '--lambda', '0.0035', '--backend', 'wasm'],
  ]) {
    const r = await cli([...other, '--out', out, '--resume']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /holds an interrupted sweep of another plan \(made by `normprune sweep lenet-500-300-input .*--target-compression 15 .*`\); continue it with that command and --resume/,
    );
    expect(r.err).not.toMatch(/sweep point/);
  }
  const second = await cli([...args, '--out', out, '--resume', '--stop-after-steps', '4']);
  expect(second.code).toBe(130);
  const third = await cli([...args, '--out', out, '--resume']);
  expect(third.code).toBe(0);
  expect(third.err).toMatch(/sweep point lambda-0\.0035: finished before, reused/);
  // The point interrupted second is resumed from its checkpoint, not trained again.
  expect(third.err).toMatch(/sweep point lambda-[\d.]+\n(.*\n)*resuming /);
  const sweep = (dir: string) => JSON.parse(readFileSync(join(dir, 'sweep.json'), 'utf8'));
  const whole = sweep(join(tmp, 'bisect'));
  // Every point once, in the same order, with the same figures; the same note and answer.
  expect(sweep(out).points).toEqual(whole.points);
  expect(sweep(out).note).toBe(whole.note);
  // The results table over the bisection: one row per point run, named by its lambda.
  const table = (await cli(['report', '--table', out])).out;
  for (const p of whole.points)
    expect(table.split('\n').filter((l) => l.startsWith(`| lenet-500-300-input ${p.label} `))).toHaveLength(
      1,
    );
  expect(
    readdirSync(out)
      .filter((d) => d.startsWith('lambda-'))
      .sort(),
  ).toEqual(whole.points.map((p: { dir: string }) => p.dir).sort());
  for (const p of whole.points) expect(existsSync(join(out, p.dir, '.work'))).toBe(false);
  // Another target, or a grid, over the finished bisection is refused before any point runs,
  // with --resume too (its points would be left out of the new sweep.json).
  const before = readFileSync(join(out, 'sweep.json'), 'utf8');
  for (const other of [
    [...args.slice(0, 5), '20', ...args.slice(6)],
    [...args.slice(0, 4), '--lambda', '0.0035', '--backend', 'wasm', '--resume'],
  ]) {
    const r = await cli([...other, '--out', out]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/holds another sweep \(of lenet-500-300-input: lambda-0\.0035, /);
    expect(r.err).not.toMatch(/sweep point/);
  }
  expect(readFileSync(join(out, 'sweep.json'), 'utf8')).toBe(before);
});

test('a finished bisection takes more --bisect-steps with --resume, reusing its points', async () => {
  const out = join(tmp, 'bisect-more');
  cpSync(join(tmp, 'bisect'), out, { recursive: true });
  const before = JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8'));
  const bisect = (steps: string, ...extra: string[]) =>
    tinySweep('lenet-500-300-input', out, '--target-compression', '15', '--bisect-steps', steps, ...extra);
  const more = (...extra: string[]) => bisect('3', ...extra);
  const plain = await more();
  expect(plain.code).toBe(1);
  expect(plain.err).toMatch(/; to add points to it, run with --resume \(its finished points are reused\)/);
  const r = await more('--resume');
  expect(r.code).toBe(0);
  for (const p of before.points) expect(r.err).toContain(`sweep point ${p.label}: finished before, reused`);
  const after = JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8'));
  // The same path, one step further.
  expect(after.points.slice(0, before.points.length)).toEqual(before.points);
  expect(after.points).toHaveLength(before.points.length + 1);
  // Fewer steps would leave points out of its sweep.json: refused, even with --resume.
  const fewer = await bisect('1', '--resume');
  expect(fewer.code).toBe(1);
  expect(fewer.err).toMatch(/holds another sweep/);
});

test('a sweep that fails before any point writes leaves its folder as it found it', async () => {
  // A plan and an empty point folder were left, and made the next sweep there an interrupted one.
  const out = join(tmp, 'no-data');
  const empty = join(tmp, 'empty-data');
  mkdirSync(empty);
  mkdirSync(out);
  writeFileSync(join(out, 'notes.txt'), 'mine');
  const r = await tinySweep('lenet-500-300', out, '--lambda', '0.001,0.002', '--data-dir', empty);
  expect(r.code).toBe(1);
  expect(readdirSync(out)).toEqual(['notes.txt']);
});

test('sweep flags are validated', async () => {
  expect((await cli(['sweep', 'lenet-500-300', '--granularity', 'rows'])).code).toBe(2);
  for (const t of ['150', '0', '100', 'NaN'])
    expect((await cli(['sweep', 'lenet-500-300', '--target-compression', t])).code).toBe(2);
  // The bisection varies lambda alone: a grid flag beside it would be ignored, so it is refused.
  const grid = await cli(['sweep', 'lenet-500-300', '--target-compression', '80', '--lambda', '0.5']);
  expect(grid.code).toBe(2);
  expect(grid.err).toMatch(/--target-compression .* does not take --lambda/);
  // And the reverse: --bisect-steps alone would run the config's whole grid at its default budget.
  const steps = await cli(['sweep', 'lenet-500-300', '--bisect-steps', '2']);
  expect(steps.code).toBe(2);
  expect(steps.err).toMatch(/--bisect-steps goes with --target-compression/);
  // A value given twice would train one point twice into one folder.
  for (const [flag, list, named] of [
    ['--lambda', '0.001,1e-3', '0.001'],
    ['--granularity', 'output,output', '"output"'],
  ]) {
    const twice = await cli(['sweep', 'lenet-500-300', flag, list, '--print-config']);
    expect(twice.code).toBe(2);
    expect(twice.err).toContain(`${flag}: ${named} is given twice`);
  }
  expect((await cli(['sweep'])).code).toBe(2);
  // So is one given twice in a config's sweep grid (0.0010 is 0.001): refused when the config is read.
  const cfg = JSON.parse(
    readFileSync(
      writeVariant(tmp, 'grid-twice', () => undefined),
      'utf8',
    ),
  );
  cfg.sweep = { lambda: [0.001, 0.002], granularity: ['input', 'output', 'input'] };
  const file = join(tmp, 'grid-twice.json');
  writeFileSync(file, JSON.stringify(cfg).replace('[0.001,0.002]', '[0.001,0.0010]'));
  const dup = await cli(['sweep', '--config', file, '--print-config']);
  expect(dup.code).toBe(2);
  expect(dup.err).toMatch(/sweep\.lambda: 0\.001 is given twice/);
  expect(dup.err).toMatch(/sweep\.granularity: "input" is given twice/);
});

test('--baseline-from: every point reuses a kept baseline, which the sweep leaves in place', async () => {
  const base = join(tmp, 'kept');
  const args = ['--budget', NARROW, '--backend', 'wasm', '--seed', '4'];
  expect((await cli(['reproduce', 'lenet-500-300', ...args, '--keep-baseline', '--out', base])).code).toBe(0);
  const kept = JSON.parse(readFileSync(join(base, 'results.json'), 'utf8'));
  // The run leaves only what --baseline-from reads: no checkpoint, no second copy of the model.
  expect(readdirSync(join(base, '.work'))).toEqual(['baseline']);
  const out = join(tmp, 'reuse');
  const r = await cli([
    'sweep',
    'lenet-500-300',
    ...args,
    '--lambda',
    '0.01,0.05',
    '--baseline-from',
    base,
    '--out',
    out,
  ]);
  expect(r.code).toBe(0);
  expect(r.err).toMatch(/baseline reused from/);
  expect(r.err).not.toMatch(/baseline epoch/);
  const sweep = JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8'));
  expect(sweep.points).toHaveLength(2);
  for (const p of sweep.points) expect(p.baselineTestErrorPct).toBeCloseTo(100 * kept.baseline.testError, 10);
  expect(sweep.note).toMatch(/every point reuses the baseline kept in/);
  expect(existsSync(join(base, '.work', 'baseline', 'baseline.json'))).toBe(true);

  // A run without a kept baseline, or one trained under another seed, is
  // refused before the new run directory is made.
  const never = join(tmp, 'never');
  const point = join(out, sweep.points[0].dir);
  const none = await cli(['reproduce', 'lenet-500-300', ...args, '--baseline-from', point, '--out', never]);
  expect(none.code).toBe(1);
  expect(none.err).toMatch(/--baseline-from .*: no kept baseline .*train that run with --keep-baseline/);
  const seed5From = (kept: string) =>
    cli([
      'reproduce',
      'lenet-500-300',
      ...args.slice(0, -2),
      '--seed',
      '5',
      '--baseline-from',
      kept,
      '--out',
      never,
    ]);
  const other = await seed5From(base);
  expect(other.code).toBe(1);
  expect(other.err).toMatch(
    /--baseline-from .*: trained with another config or seed \(seed: 4 there, 5 here\)/,
  );
  expect(existsSync(never)).toBe(false);
  // A baseline kept before baseline.json recorded its settings: they are read from its run's config.json.
  const old = join(tmp, 'kept-old');
  cpSync(base, old, { recursive: true });
  const keptFile = join(old, '.work', 'baseline', 'baseline.json');
  const { baselineKey, ...older } = JSON.parse(readFileSync(keptFile, 'utf8'));
  expect(baselineKey).toMatchObject({ seed: 4 });
  writeFileSync(keptFile, JSON.stringify(older));
  const fromOld = await seed5From(old);
  expect(fromOld.code).toBe(1);
  expect(fromOld.err).toMatch(/trained with another config or seed \(seed: 4 there, 5 here\)/);
  expect(existsSync(never)).toBe(false);
  // More baseline epochs make another baseline; more fine-tuning epochs do not.
  const reuse = (budget: string, dir: string) =>
    cli([
      'reproduce',
      'lenet-500-300',
      '--budget',
      budget,
      ...args.slice(2),
      '--baseline-from',
      base,
      '--out',
      dir,
    ]);
  const longer = await reuse(`${NARROW},epochs.finetune=2,epochs.proximal=2`, join(tmp, 'longer'));
  expect(longer.code).toBe(0);
  expect(longer.err).toMatch(/baseline reused from/);
  const more = await reuse(`${NARROW},epochs.baseline=2`, never);
  expect(more.code).toBe(1);
  expect(more.err).toMatch(/trained with another config or seed \(baseline\.epochs: 1 there, 2 here\)/);
  expect(existsSync(never)).toBe(false);
  // The baseline's epochs count wherever they are set: in the budget (tiny's
  // 1) or in the config, with a budget that leaves them alone.
  const file = writeVariant(tmp, 'one-epoch', (cfg) => (cfg.training.baseline.epochs = 1));
  const noBaselineEpochs = JSON.stringify({
    trainSubset: 256,
    testSubset: 256,
    validation: 64,
    epochs: { proximal: 1, finetune: 1 },
    widthMultiplier: 0.25,
  });
  const fromConfig = await cli([
    'train',
    '--config',
    file,
    '--budget',
    noBaselineEpochs,
    ...args.slice(2),
    '--baseline-from',
    base,
    '--out',
    join(tmp, 'from-config'),
  ]);
  expect(fromConfig.code).toBe(0);
  expect(fromConfig.err).toMatch(/baseline reused from/);
});

test('--keep-baseline: the sweep keeps the baseline it trained, and a later run reuses it', async () => {
  const args = ['--budget', NARROW, '--backend', 'wasm', '--seed', '5'];
  const out = join(tmp, 'keep');
  const r = await cli([
    'sweep',
    'lenet-500-300',
    ...args,
    '--lambda',
    '0.01,0.05',
    '--keep-baseline',
    '--out',
    out,
  ]);
  expect(r.code).toBe(0);
  const sweep = JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8'));
  const first = join(out, sweep.points[0].dir);
  // Only the baseline stays: no checkpoint, no plain model, nothing in the other point.
  expect(readdirSync(join(first, '.work'))).toEqual(['baseline']);
  expect(existsSync(join(out, sweep.points[1].dir, '.work'))).toBe(false);
  expect(sweep.note).toContain(`reuse it with --baseline-from ${first}`);
  const again = await cli([
    'reproduce',
    'lenet-500-300',
    ...args,
    '--baseline-from',
    first,
    '--out',
    join(tmp, 'again'),
  ]);
  expect(again.code).toBe(0);
  expect(again.err).toMatch(/baseline reused from/);
  const res = JSON.parse(readFileSync(join(tmp, 'again', 'results.json'), 'utf8'));
  expect(100 * res.baseline.testError).toBeCloseTo(sweep.points[0].baselineTestErrorPct, 10);
  // The step counter goes on from the reused baseline's, as in the run that trained it.
  const steps = (dir: string) =>
    readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => [JSON.parse(l).phase, JSON.parse(l).step]);
  expect(steps(join(tmp, 'again')).map(([phase]) => phase)).toEqual(['baseline', 'proximal', 'finetune']);
  expect(steps(join(tmp, 'again'))).toEqual(steps(first));
  expect(steps(first)[2][1]).toBeGreaterThan(steps(first)[1][1]);
});

test('an interrupted sweep continues with --resume: finished points reused, the interrupted one resumed', async () => {
  // tiny: two steps per epoch; the first point trains its baseline (2 steps), then 2 + 2,
  // the second reuses the baseline. Stopping after 4 steps per point interrupts the first
  // point at the end of its proximal phase, then the second at its last step.
  const args = ['sweep', 'lenet-500-300', '--budget', NARROW, '--lambda', '0.002,0.02', '--backend', 'wasm'];
  const out = join(tmp, 'interrupted');
  const first = await cli([...args, '--out', out, '--stop-after-steps', '4']);
  expect(first.code).toBe(130);
  expect(first.out).toMatch(/continue with: normprune sweep .* --resume$/m);
  // The shared baseline stays for the resumed sweep.
  expect(existsSync(join(out, 'lambda-0.002', '.work', 'baseline', 'baseline.json'))).toBe(true);
  // Without --resume the interrupted point is not overwritten.
  const plain = await cli([...args, '--out', out]);
  expect(plain.code).toBe(1);
  expect(plain.err).toMatch(
    /holds an interrupted sweep \(unfinished: lambda-0\.002\); continue it with --resume/,
  );
  // Refused before any point runs.
  expect(plain.err).not.toMatch(/sweep point/);
  const otherGrid = await cli([...args.slice(0, 5), '0.05', '--backend', 'wasm', '--out', out, '--resume']);
  expect(otherGrid.code).toBe(1);
  expect(otherGrid.err).toMatch(/holds an interrupted sweep of another plan/);
  expect(otherGrid.err).not.toMatch(/sweep point/);
  const second = await cli([...args, '--out', out, '--resume', '--stop-after-steps', '4']);
  expect(second.code).toBe(130);
  expect(existsSync(join(out, 'lambda-0.002', 'results.json'))).toBe(true);
  // Killed between the two points (before the second's first checkpoint): a rerun without
  // --resume would train the finished point again; it is refused, naming it.
  const between = join(tmp, 'interrupted-between');
  cpSync(out, between, { recursive: true });
  rmSync(join(between, 'lambda-0.02'), { recursive: true });
  const rerun = await cli([...args, '--out', between]);
  expect(rerun.code).toBe(1);
  expect(rerun.err).toMatch(
    /holds an interrupted sweep \(finished: lambda-0\.002\); continue it with --resume \(its finished points are reused\)/,
  );
  expect(rerun.err).not.toMatch(/sweep point/);
  // As if the second point had been killed after it wrote results.json, before its report and
  // clean-up: its checkpoint is still there, so it has not finished, whatever results.json says.
  cpSync(join(out, 'lambda-0.002', 'results.json'), join(out, 'lambda-0.02', 'results.json'));
  const third = await cli([...args, '--out', out, '--resume']);
  expect(third.code).toBe(0);
  expect(third.err).toMatch(/sweep point lambda-0.002: finished before, reused/);
  expect(third.err).toMatch(/sweep point lambda-0\.02\n(.*\n)*resuming /);
  expect(existsSync(join(out, 'lambda-0.02', 'report.md'))).toBe(true);
  expect(existsSync(join(out, 'lambda-0.02', '.work'))).toBe(false);
  // The finished sweep removes the shared baseline, as an uninterrupted one does.
  expect(existsSync(join(out, 'lambda-0.002', '.work'))).toBe(false);

  const whole = join(tmp, 'uninterrupted');
  expect((await cli([...args, '--out', whole])).code).toBe(0);
  const points = (dir: string) =>
    JSON.parse(readFileSync(join(dir, 'sweep.json'), 'utf8')).points.map((p: any) => ({
      ...p,
      dir: undefined,
    }));
  expect(points(out)).toEqual(points(whole));
  // The recorded command makes the sweep from scratch: the user's, without --resume and the
  // test-only flag; so do its points'.
  const recorded = JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8')).command;
  expect(recorded).toBe(`normprune ${args.join(' ')} --out ${out}`);
  for (const label of ['lambda-0.002', 'lambda-0.02'])
    expect(JSON.parse(readFileSync(join(out, label, 'results.json'), 'utf8')).command).toBe(recorded);
  for (const label of ['lambda-0.002', 'lambda-0.02']) {
    const bins = (dir: string) =>
      readdirSync(join(dir, label, 'model'))
        .filter((f) => f.endsWith('.bin'))
        .map((f) => readFileSync(join(dir, label, 'model', f)).toString('base64'));
    expect(bins(out)).toEqual(bins(whole));
  }
  // A finished sweep, extended by a lambda with --resume: its shared baseline is gone, so the new
  // point trains the same baseline again (same seed and backend) instead of failing on it.
  const more = await cli([
    ...args.slice(0, 5),
    '0.002,0.02,0.05',
    '--backend',
    'wasm',
    '--out',
    whole,
    '--resume',
  ]);
  expect(more.err).toMatch(/sweep point lambda-0\.05\n/);
  expect(more.code).toBe(0);
  const extended = points(whole);
  expect(extended.map((p: { label: string }) => p.label)).toEqual([
    'lambda-0.002',
    'lambda-0.02',
    'lambda-0.05',
  ]);
  expect(new Set(extended.map((p: { baselineTestErrorPct: number }) => p.baselineTestErrorPct)).size).toBe(1);
  expect(existsSync(join(whole, 'lambda-0.05', '.work'))).toBe(false);
});

test("a damaged checkpoint of a sweep point: the advice continues the sweep, not a run's --force", async () => {
  const args = ['sweep', 'lenet-500-300', '--budget', NARROW, '--lambda', '0.002,0.02', '--backend', 'wasm'];
  const out = join(tmp, 'damaged-point');
  expect((await cli([...args, '--out', out, '--stop-after-steps', '4'])).code).toBe(130);
  const ckpt = join(out, 'lambda-0.002', '.work', 'checkpoint');
  writeFileSync(join(ckpt, 'state.json'), '{"configHash":');
  const r = await cli([...args, '--out', out, '--resume']);
  expect(r.code).toBe(1);
  expect(r.err).toContain(
    `normprune: error: sweep point lambda-0.002: --resume: the checkpoint in ${ckpt} is damaged: state.json is not valid JSON (`,
  );
  const advice =
    /(; |, or )remove .*checkpoint and continue the sweep with --resume: that point starts over, and the finished points are reused \(--force would start the whole sweep over\)\n/;
  expect(r.err).toMatch(advice);
  // So for the point's other saved state: its metrics.jsonl, say.
  rmSync(ckpt, { recursive: true });
  expect((await cli([...args, '--out', out, '--resume', '--stop-after-steps', '4'])).code).toBe(130);
  writeFileSync(join(out, 'lambda-0.002', 'metrics.jsonl'), '');
  const metrics = await cli([...args, '--out', out, '--resume']);
  expect(metrics.code).toBe(1);
  expect(metrics.err).toMatch(
    /normprune: error: sweep point lambda-0\.002: --resume: .*metrics\.jsonl holds 0 lines.*; put back a whole copy of the file, or remove /,
  );
  expect(metrics.err).toMatch(advice);
  // The advice works.
  rmSync(ckpt, { recursive: true });
  const again = await cli([...args, '--out', out, '--resume']);
  expect(again.code).toBe(0);
  expect(JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8')).points).toHaveLength(2);
});

test('a damaged shared baseline: the advice continues the sweep, not a --keep-baseline the user never gave', async () => {
  const args = ['sweep', 'lenet-500-300', '--budget', NARROW, '--lambda', '0.002,0.02', '--backend', 'wasm'];
  const out = join(tmp, 'damaged-shared');
  expect((await cli([...args, '--out', out, '--stop-after-steps', '4'])).code).toBe(130);
  const shared = join(out, 'lambda-0.002', '.work', 'baseline');
  writeFileSync(join(shared, 'baseline.json'), '{');
  const r = await cli([...args, '--out', out, '--resume']);
  expect(r.code).toBe(1);
  expect(r.err).toContain(
    `normprune: error: sweep point lambda-0.02: the shared baseline in ${shared} cannot be used: ${join(shared, 'baseline.json')} is not valid JSON (`,
  );
  expect(r.err).toMatch(
    /; remove .*baseline and continue the sweep with --resume: the next point trains the shared baseline again, and the finished points are reused\n/,
  );
  expect(r.err).not.toMatch(/--keep-baseline/);
  // The advice works.
  rmSync(shared, { recursive: true });
  const again = await cli([...args, '--out', out, '--resume']);
  expect(again.code).toBe(0);
  expect(again.err).toMatch(/sweep point lambda-0\.002: finished before, reused/);
});

test('--target-compression stops after the expansion when no lambda reaches the target, and says so', async () => {
  const out = join(tmp, 'unreachable');
  const r = await cli([
    'sweep',
    'lenet-500-300',
    '--budget',
    NARROW,
    '--target-compression',
    '99.9',
    '--out',
    out,
    '--backend',
    'wasm',
  ]);
  expect(r.code).toBe(0);
  const sweep = JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8'));
  // The config's lambda and four expansions by 4; no bisection below the largest.
  expect(sweep.points.map((p: any) => p.lambda)).toEqual([0.0015, 0.006, 0.024, 0.096, 0.384]);
  expect(sweep.note).toMatch(/no lambda tried reached it/);
  expect(r.out).toMatch(
    /target 99\.9% removed: NOT reached; the largest lambda tried, 0\.384, removed \d+\.\d\d%/,
  );
});

test('a sweep is a usage error with both --config and an experiment, a kernel granularity on a dense model, or an infinite lambda', async () => {
  const cfg = writeVariant(tmp, 'variant-for-flags', () => undefined);
  expect((await cli(['sweep', 'lenet-500-300', '--config', cfg])).err).toMatch(
    /either --config FILE or one experiment name/,
  );
  expect((await cli(['sweep', 'lenet-500-300', '--granularity', 'kernel'])).err).toMatch(
    /--granularity kernel: lenet-500-300 has no conv2d layer/,
  );
  const inf = await cli(['sweep', 'lenet-500-300', '--lambda', '1e999']);
  expect(inf.code).toBe(2);
  expect(inf.err).toMatch(/--lambda: "1e999" is not a finite number >= 0/);
});

test('a sweep does not orphan the points of another sweep in its --out; --force replaces that sweep', async () => {
  const out = join(tmp, 'two-sweeps');
  const sweep = (lambdas: string, ...extra: string[]) =>
    tinySweep('lenet-500-300', out, '--lambda', lambdas, ...extra);
  expect((await sweep('0.002')).code).toBe(0);
  const before = readFileSync(join(out, 'sweep.json'), 'utf8');
  const other = await sweep('0.004');
  expect(other.code).toBe(1);
  expect(other.err).toMatch(
    /two-sweeps holds another sweep \(of lenet-500-300: lambda-0\.002, made by `normprune sweep lenet-500-300 .*`\); choose another --out, or pass --force to replace it/,
  );
  expect(readFileSync(join(out, 'sweep.json'), 'utf8')).toBe(before);
  expect(existsSync(join(out, 'lambda-0.004'))).toBe(false);
  // The same sweep again repeats it; a grid holding its points extends it with --resume.
  expect((await sweep('0.002')).code).toBe(0);
  expect((await sweep('0.002,0.004')).err).toMatch(
    /; to add points to it, run with --resume \(its finished points are reused\); choose another --out/,
  );
  // --force replaces the other sweep: its points go, the new sweep.json lists what is there.
  expect((await sweep('0.004', '--force')).code).toBe(0);
  expect(readdirSync(out).sort()).toEqual([
    'lambda-0.004',
    'plots',
    'report.html',
    'report.md',
    'sweep.json',
  ]);
  const table = await cli(['report', '--table', out]);
  expect(table.out).toMatch(/lambda-0\.004/);
  expect(table.out).not.toMatch(/lambda-0\.002/);
});

test('--force over an interrupted sweep of another plan, or a damaged sweep, removes its points', async () => {
  const out = join(tmp, 'force-interrupted');
  const sweep = (lambdas: string, ...extra: string[]) =>
    tinySweep('lenet-500-300', out, '--lambda', lambdas, ...extra);
  // As in the --resume test above: interrupted in its first point, then resumed and
  // interrupted in its second, the first finished.
  expect((await sweep('0.002,0.02', '--stop-after-steps', '4')).code).toBe(130);
  expect((await sweep('0.002,0.02', '--resume', '--stop-after-steps', '4')).code).toBe(130);
  expect(existsSync(join(out, 'lambda-0.002', 'results.json'))).toBe(true);
  expect(existsSync(join(out, 'lambda-0.02', '.work', 'checkpoint', 'state.json'))).toBe(true);
  writeFileSync(join(out, 'notes.txt'), 'mine');
  // A damaged plan cannot tell whose points these are: refused, but for --force.
  const planFile = join(out, '.sweep-plan.json');
  const plan = readFileSync(planFile, 'utf8');
  writeFileSync(planFile, '{"key": 3}');
  const damaged = await sweep('0.002,0.02', '--resume');
  expect(damaged.code).toBe(1);
  expect(damaged.err).toMatch(
    /\.sweep-plan\.json, the plan of an interrupted sweep in .*force-interrupted, is damaged \(it holds no sweep key\); choose another --out, or pass --force to start over/,
  );
  writeFileSync(planFile, '{"key": ');
  expect((await sweep('0.002,0.02', '--resume')).err).toMatch(
    /\.sweep-plan\.json, the plan of an interrupted sweep in .*, is damaged \(it is not valid JSON \(/,
  );
  writeFileSync(planFile, plan);
  const r = await sweep('0.05', '--force');
  expect(r.code).toBe(0);
  expect(readdirSync(out).sort()).toEqual([
    'lambda-0.05',
    'notes.txt',
    'plots',
    'report.html',
    'report.md',
    'sweep.json',
  ]);
  // --force over a damaged plan removes the folders named as points that hold a run.
  // (A run's config.json: one that does not read as a run's would be a file of the user's.)
  const runConfig = readFileSync(join(out, 'lambda-0.05', 'config.json'), 'utf8');
  mkdirSync(join(out, 'lambda-0.3'));
  writeFileSync(join(out, 'lambda-0.3', 'config.json'), runConfig);
  writeFileSync(planFile, '[');
  expect((await sweep('0.05', '--force')).code).toBe(0);
  expect(existsSync(join(out, 'lambda-0.3'))).toBe(false);
  expect(existsSync(join(out, 'notes.txt'))).toBe(true);
  // A damaged sweep.json: refused, but for --force, which replaces that sweep.
  writeFileSync(join(out, 'sweep.json'), '{"points": 3}');
  const broken = await sweep('0.05');
  expect(broken.code).toBe(1);
  expect(broken.err).toMatch(
    /force-interrupted\/sweep\.json is not the sweep\.json of a normprune sweep: "experiment" is missing; choose another --out, or pass --force to replace the sweep there/,
  );
  // Cut short (a write interrupted by a full disk): the same, with the parser's word.
  const whole = readFileSync(join(out, 'sweep.json'), 'utf8');
  writeFileSync(join(out, 'sweep.json'), '{"experiment": "lenet-500-300", "points": [{"label": "lam');
  const cut = await sweep('0.05');
  expect(cut.code).toBe(1);
  expect(cut.err).toMatch(
    /force-interrupted\/sweep\.json is not the sweep\.json of a normprune sweep: it is not valid JSON \(.+\); choose another --out, or pass --force to replace the sweep there/,
  );
  writeFileSync(join(out, 'sweep.json'), whole);
  mkdirSync(join(out, 'lambda-0.4'));
  writeFileSync(join(out, 'lambda-0.4', 'config.json'), runConfig);
  writeFileSync(join(out, 'lambda-0.4', 'results.json'), '{}');
  expect((await sweep('0.05', '--force')).code).toBe(0);
  expect(existsSync(join(out, 'lambda-0.4'))).toBe(false);
  expect(JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8')).points).toHaveLength(1);
});

test("--resume reuses a point that a sweep from before 'flops' was renamed 'macs' wrote in its -flops folder", async () => {
  const out = join(tmp, 'former-flops');
  expect((await tinySweep('lenet-500-300', out, '--lambda', '0.01', '--cost-weighting', 'macs')).code).toBe(
    0,
  );
  // As a sweep before the rename left it: its point's folder and label say 'flops'.
  renameSync(join(out, 'lambda-0.01-macs'), join(out, 'lambda-0.01-flops'));
  const file = join(out, 'sweep.json');
  const sweep = JSON.parse(readFileSync(file, 'utf8'));
  sweep.points = sweep.points.map((p: object) => ({
    ...p,
    label: 'lambda-0.01-flops',
    dir: 'lambda-0.01-flops',
    costWeighting: 'flops',
  }));
  writeFileSync(file, JSON.stringify(sweep, null, 2));
  const r = await tinySweep('lenet-500-300', out, '--lambda', '0.01', '--cost-weighting', 'macs', '--resume');
  expect(r.code).toBe(0);
  expect(`${r.out}\n${r.err}`).toMatch(/sweep point lambda-0\.01-flops: finished before, reused/);
  expect(existsSync(join(out, 'lambda-0.01-macs'))).toBe(false);
  expect(JSON.parse(readFileSync(file, 'utf8')).points.map((p: { dir: string }) => p.dir)).toEqual([
    'lambda-0.01-flops',
  ]);
});
