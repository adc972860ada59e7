// The commands normprune prints for the user to run, built from a recorded command line (a
// run's config.json, a sweep's plan and sweep.json), work from the directory they are printed
// in: a run started in one folder with relative --config, --data-dir and --out is continued,
// with the command `report --table` names, from another. Runs of versions that did not record
// the directory print the command as recorded, as before.
import {
  existsSync,
  readdirSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commandFor, commandIn, missingConfigFile, shellQuote, shellWords } from '../src/command-line';
import { cli, writeIdxFixture } from './helpers';

let tmp: string;
let cwd: string;
/** Where the runs are started: holds my.json and data/. */
let a: string;
/** A sibling folder, where their commands are printed. */
let b: string;
/** A finished row, so that `report --table` has something to print beside the notes. */
const row = join(__dirname, '..', 'results', 'lenet-500-300.json');

beforeAll(() => {
  cwd = process.cwd();
  tmp = realpathSync(mkdtempSync(join(tmpdir(), 'normprune-printed-')));
  // A space in the folder's name: the printed paths are quoted.
  a = join(tmp, 'folder a');
  b = join(tmp, 'b');
  mkdirSync(a);
  mkdirSync(b);
  writeFileSync(
    join(a, 'my.json'),
    JSON.stringify({ extends: 'lenet-500-300', training: { proximal: { lambda: 0.004 } } }),
  );
  writeIdxFixture(join(a, 'data'), 600, 300);
});
afterEach(() => process.chdir(cwd));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The `continue it with: ...` command of `text` (a note or an error), as words to run. */
function continueLine(text: string): string {
  const m =
    /continue it with: ((?:NORMPRUNE_DATA_DIR=(?:'[^']*'|\S+) )?normprune [^\n]*?)(?:; or give|\n|$)/.exec(
      text,
    );
  expect(m).not.toBeNull();
  return m![1];
}

/**
 * Runs a printed command line in-process (in the current directory), with the NORMPRUNE_DATA_DIR
 * it sets before `normprune`, if any, and unset otherwise.
 */
async function runPrinted(line: string) {
  const words = shellWords(line)!;
  const set = words[0]?.startsWith('NORMPRUNE_DATA_DIR=')
    ? words.shift()!.slice('NORMPRUNE_DATA_DIR='.length)
    : undefined;
  expect(words[0]).toBe('normprune');
  return withDataDir(set, () => cli(words.slice(1)));
}

/** Runs `f` with NORMPRUNE_DATA_DIR set to `dir`, or unset. */
async function withDataDir<T>(dir: string | undefined, f: () => Promise<T>): Promise<T> {
  const was = process.env.NORMPRUNE_DATA_DIR;
  if (dir === undefined) delete process.env.NORMPRUNE_DATA_DIR;
  else process.env.NORMPRUNE_DATA_DIR = dir;
  try {
    return await f();
  } finally {
    if (was === undefined) delete process.env.NORMPRUNE_DATA_DIR;
    else process.env.NORMPRUNE_DATA_DIR = was;
  }
}

describe('commandIn', () => {
  const cmd =
    "normprune train --config my.json --data-dir ./data --out=runs/x --seed 2 --baseline-from '../k 1'";

  test('is the recorded command when the directory is unknown or the command unreadable', () => {
    expect(commandIn(cmd, undefined)).toBe(cmd);
    expect(commandIn(cmd, 42)).toBe(cmd);
    expect(commandIn(cmd, 'relative/dir')).toBe(cmd);
    const odd = 'normprune train --config "my file.json"';
    expect(commandIn(odd, '/home/u/a')).toBe(odd);
  });

  test('names the same files wherever it is typed: every path absolute', () => {
    expect(commandIn(cmd, '/home/u/a')).toBe(
      "normprune train --config /home/u/a/my.json --data-dir /home/u/a/data --out=/home/u/a/runs/x --seed 2 --baseline-from '/home/u/k 1'",
    );
    // Absolute paths and the other flags' values stay as they are; the experiment name is no path.
    expect(commandIn('normprune sweep lenet-5 --out /r/s --lambda 0.1,0.2', '/x')).toBe(
      'normprune sweep lenet-5 --out /r/s --lambda 0.1,0.2',
    );
    expect(commandIn('normprune reproduce lenet-5 --out runs', '/x/y')).toBe(
      'normprune reproduce lenet-5 --out /x/y/runs',
    );
  });

  test('commandFor names the folder with --out when the command has none', () => {
    expect(commandFor('normprune reproduce lenet-5 --seed 2', '/x/y', '/x/y/runs/lenet-5')).toBe(
      'normprune reproduce lenet-5 --seed 2 --out /x/y/runs/lenet-5',
    );
    expect(commandFor('normprune reproduce lenet-5 --out=r', '/x/y', '/elsewhere')).toBe(
      'normprune reproduce lenet-5 --out=/x/y/r',
    );
    // Without the directory it ran in, as recorded.
    expect(commandFor('normprune reproduce lenet-5', undefined, '/x/y/runs/lenet-5')).toBe(
      'normprune reproduce lenet-5',
    );
  });

  test('keeps a variable set before normprune a variable assignment, its value quoted', () => {
    expect(commandIn("NORMPRUNE_DATA_DIR='/d 1' normprune train --config my.json", '/x')).toBe(
      "NORMPRUNE_DATA_DIR='/d 1' normprune train --config /x/my.json",
    );
    expect(shellWords("NORMPRUNE_DATA_DIR='/d 1' normprune")).toEqual([
      'NORMPRUNE_DATA_DIR=/d 1',
      'normprune',
    ]);
  });

  test('reads back what shellQuote writes', () => {
    const words = ['normprune', 'train', '--config', "it's a file.json", '--out', '', 'plain/path-1'];
    expect(shellWords(words.map(shellQuote).join(' '))).toEqual(words);
  });
});

test('missingConfigFile names the --config file a recorded command names when it is gone', () => {
  // my.json is in a (written by beforeAll); gone.json is not.
  expect(missingConfigFile("normprune train --config my.json --out 'runs/x'", a)).toBeUndefined();
  expect(
    missingConfigFile(`normprune train --config=${shellQuote(join(a, 'my.json'))}`, '/elsewhere'),
  ).toBeUndefined();
  expect(missingConfigFile('normprune train --config gone.json --seed 2', a)).toBe(join(a, 'gone.json'));
  expect(missingConfigFile(`normprune sweep --config=${join(b, 'gone.json')}`, undefined)).toBe(
    join(b, 'gone.json'),
  );
  // No --config (reproduce), a relative one without the directory it ran in, an unreadable command.
  expect(missingConfigFile('normprune reproduce lenet-5', a)).toBeUndefined();
  expect(missingConfigFile('normprune train --config gone.json', undefined)).toBeUndefined();
  expect(missingConfigFile('normprune train --config "gone.json"', a)).toBeUndefined();
});

test('an interrupted run started with relative paths is continued, as report --table says, from another folder', async () => {
  process.chdir(a);
  const args = [
    'train',
    '--config',
    'my.json',
    '--data-dir',
    'data',
    '--budget',
    'tiny',
    '--backend',
    'wasm',
  ];
  const stopped = await cli([...args, '--out', 'runs/x', '--stop-after-steps', '1']);
  expect(stopped.code).toBe(130);
  const run = join(a, 'runs', 'x');
  // Printed where it ran, the command names every path absolute, quoted for the space.
  expect(stopped.out).toContain(
    `continue with: normprune train --config '${a}/my.json' --data-dir '${a}/data' --budget tiny --backend wasm --out '${run}' --resume`,
  );
  const recorded = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8'));
  expect(recorded.command).toBe(
    `normprune train --config '${a}/my.json' --data-dir '${a}/data' --budget tiny --backend wasm --out '${run}'`,
  );
  expect(recorded.cwd).toBe(a);

  // From a sibling folder: the same absolute paths.
  process.chdir(b);
  const far = await cli(['report', '--table', row, join('..', 'folder a', 'runs', 'x')]);
  expect(far.code).toBe(0);
  expect(far.err).toContain(
    `continue it with: normprune train --config '${a}/my.json' --data-dir '${a}/data' --budget tiny --backend wasm --resume --out '${run}'`,
  );

  // From the folder above: the same, absolute (no path relative to it).
  process.chdir(tmp);
  const near = await cli(['report', join('folder a', 'runs', 'x')]);
  expect(near.code).toBe(1);
  const line = continueLine(near.err);
  expect(line).toBe(
    `normprune train --config '${a}/my.json' --data-dir '${a}/data' --budget tiny --backend wasm --resume --out '${run}'`,
  );
  // eval of its model names the same command.
  expect(continueLine((await cli(['eval', '--model', join('folder a', 'runs', 'x')])).err)).toBe(line);

  // And it works from there: the run finishes, keeping the command and folder that started it.
  const resumed = await runPrinted(line);
  expect(resumed.code).toBe(0);
  expect(existsSync(join(run, 'results.json'))).toBe(true);
  const after = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8'));
  expect(after.command).toBe(recorded.command);
  expect(after.cwd).toBe(a);
});

test('a run started with relative paths records, in results.json and its report, a command that works from any folder', async () => {
  process.chdir(a);
  const typed = [
    'train',
    '--config',
    'my.json',
    '--data-dir',
    './data',
    '--budget',
    'tiny',
    '--backend',
    'wasm',
  ];
  expect((await cli([...typed, '--seed', '4', '--out', 'runs/done'])).code).toBe(0);
  const run = join(a, 'runs', 'done');
  const command = `normprune train --config '${a}/my.json' --data-dir '${a}/data' --budget tiny --backend wasm --seed 4 --out '${run}'`;
  const recorded = JSON.parse(readFileSync(join(run, 'results.json'), 'utf8'));
  expect(recorded.command).toBe(command);
  expect(readFileSync(join(run, 'report.md'), 'utf8')).toContain(`Command: \`${command}\``);
  expect(JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')).command).toBe(command);

  // Typed in another folder, which holds a my.json of its own, it repeats this run: the same
  // config file, data and folder (nothing written where it is typed).
  const elsewhere = join(tmp, 'elsewhere');
  mkdirSync(elsewhere);
  writeFileSync(
    join(elsewhere, 'my.json'),
    JSON.stringify({ extends: 'lenet-500-300', training: { proximal: { lambda: 0.009 } } }),
  );
  process.chdir(elsewhere);
  const again = await runPrinted(command);
  expect(again.code).toBe(0);
  expect(readdirSync(elsewhere)).toEqual(['my.json']);
  const repeated = JSON.parse(readFileSync(join(run, 'results.json'), 'utf8'));
  expect(repeated.command).toBe(command);
  expect(repeated.dataset.source).toBe(join(a, 'data'));
  expect(repeated.configId).toBe(recorded.configId);

  // A results.json an earlier normprune wrote, with the paths as typed (config.json records
  // where): read as before, its report rewritten from another folder names them absolute.
  const old =
    'normprune train --config my.json --data-dir ./data --budget tiny --backend wasm --seed 4 --out runs/done';
  writeFileSync(join(run, 'results.json'), JSON.stringify({ ...repeated, command: old }));
  const cfg = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8'));
  writeFileSync(join(run, 'config.json'), JSON.stringify({ ...cfg, command: old, cwd: a }));
  const report = await cli(['report', run]);
  expect(report.code).toBe(0);
  expect(readFileSync(join(run, 'report.md'), 'utf8')).toContain(`Command: \`${command}\``);
  const rows = join(tmp, 'rows');
  expect((await cli(['report', '--json', rows, run])).code).toBe(0);
  // Its row, published, names them relative to the directory it ran in (published-commands.test.ts).
  const [rowFile] = readdirSync(rows);
  expect(JSON.parse(readFileSync(join(rows, rowFile), 'utf8')).command).toBe(
    'normprune train --config my.json --data-dir data --budget tiny --backend wasm --seed 4 --out runs/done',
  );
});

test('a run folder of a version that did not record the directory prints its command as recorded', async () => {
  process.chdir(a);
  const args = ['train', '--config', 'my.json', '--budget', 'tiny', '--backend', 'wasm', '--seed', '3'];
  expect((await cli([...args, '--out', 'runs/old', '--stop-after-steps', '1'])).code).toBe(130);
  const run = join(a, 'runs', 'old');
  const file = join(run, 'config.json');
  const { cwd: recordedCwd, ...older } = JSON.parse(readFileSync(file, 'utf8'));
  expect(recordedCwd).toBe(a);
  // As such a version recorded it: the paths as typed, no directory.
  older.command = 'normprune train --config my.json --budget tiny --backend wasm --seed 3 --out runs/old';
  writeFileSync(file, JSON.stringify(older));
  process.chdir(b);
  const r = await cli(['report', '--table', row, run]);
  expect(r.code).toBe(0);
  expect(r.err).toContain(
    `continue it with: normprune train --config my.json --budget tiny --backend wasm --seed 3 --resume --out '${run}'`,
  );
  // Resumed, it keeps the command it had and records no directory it does not know.
  process.chdir(a);
  expect((await cli([...args, '--out', 'runs/old', '--resume'])).code).toBe(0);
  const after = JSON.parse(readFileSync(file, 'utf8'));
  expect(after.command).toBe(older.command);
  expect(after.cwd).toBeUndefined();
});

test('an unfinished run in --out is named by the command that started it, as it works here', async () => {
  const shared = join(tmp, 'shared');
  process.chdir(a);
  const args = ['train', '--config', 'my.json', '--budget', 'tiny', '--backend', 'wasm', '--out', shared];
  expect((await cli([...args, '--stop-after-steps', '1'])).code).toBe(130);
  // The same words in another folder name another config file: not "this same command".
  process.chdir(b);
  writeFileSync(
    join(b, 'my.json'),
    JSON.stringify({ extends: 'lenet-500-300', training: { proximal: { lambda: 0.005 } } }),
  );
  const r = await cli(args);
  expect(r.code).toBe(1);
  expect(r.err).toContain(
    `started by \`normprune train --config '${a}/my.json' --budget tiny --backend wasm --out ${shared}\`; continue it with that command and --resume`,
  );
  expect(r.err).not.toMatch(/this same command/);
  // Printed where it started, the command is as recorded: its paths absolute.
  process.chdir(a);
  writeFileSync(
    join(a, 'edited.json'),
    JSON.stringify({ extends: 'lenet-500-300', training: { proximal: { lambda: 0.005 } } }),
  );
  const here = await cli(['train', '--config', 'edited.json', ...args.slice(3)]);
  expect(here.err).toContain(`started by \`normprune train --config '${a}/my.json' --budget tiny`);
});

test('an unfinished run in its default --out is named by a command that reaches it from elsewhere', async () => {
  const c = join(tmp, 'c');
  mkdirSync(c);
  writeFileSync(join(c, 'my.json'), JSON.stringify({ extends: 'lenet-500-300' }));
  process.chdir(c);
  // No --out: the run goes to runs/<name> in c.
  const args = ['--data-dir', join(a, 'data'), '--budget', 'tiny', '--backend', 'wasm'];
  expect((await cli(['train', '--config', 'my.json', ...args, '--stop-after-steps', '1'])).code).toBe(130);
  const [name] = readdirSync(join(c, 'runs'));
  const out = join(c, 'runs', name);
  process.chdir(b);
  const r = await cli(['train', '--config', join(a, 'my.json'), ...args, '--out', out]);
  expect(r.code).toBe(1);
  const started = /started by `([^`]*)`; continue it with that command and --resume/.exec(r.err);
  expect(started).not.toBeNull();
  // Typed here without --out, it would look for the run in b/runs.
  expect(started![1]).toBe(
    `normprune train --config ${c}/my.json --data-dir ${a.includes(' ') ? `'${a}/data'` : `${a}/data`} --budget tiny --backend wasm --out ${out}`,
  );
  const resumed = await runPrinted(`${started![1]} --resume`);
  expect(resumed.err).not.toMatch(/no checkpoint/);
  expect(resumed.code).toBe(0);
  expect(existsSync(join(out, 'results.json'))).toBe(true);
  expect(existsSync(join(b, 'runs'))).toBe(false);
});

test('an interrupted sweep started with relative paths is continued from another folder', async () => {
  process.chdir(a);
  const args = [
    'sweep',
    '--config',
    'my.json',
    '--data-dir',
    'data',
    '--budget',
    'tiny',
    '--lambda',
    '0.002,0.01',
  ];
  const stopped = await cli([...args, '--backend', 'wasm', '--out', 'sweeps/s', '--stop-after-steps', '3']);
  expect(stopped.code).toBe(130);
  const sweep = join(a, 'sweeps', 's');
  const plan = JSON.parse(readFileSync(join(sweep, '.sweep-plan.json'), 'utf8'));
  expect(plan.cwd).toBe(a);

  process.chdir(tmp);
  const expected = `normprune sweep --config '${a}/my.json' --data-dir '${a}/data' --budget tiny --lambda 0.002,0.01 --backend wasm --resume --out '${sweep}'`;
  const t = await cli(['report', '--table', row, join('folder a', 'sweeps', 's')]);
  expect(t.code).toBe(0);
  expect(continueLine(t.err)).toBe(expected);
  // Its unfinished point names the sweep's command, from the point's config.json.
  expect(continueLine((await cli(['report', join('folder a', 'sweeps', 's', 'lambda-0.002')])).err)).toBe(
    expected,
  );
  // Another grid given the folder names the plan's command, as it works here.
  const other = await cli([
    'sweep',
    'lenet-500-300',
    '--budget',
    'tiny',
    '--lambda',
    '0.3',
    '--out',
    sweep,
    '--resume',
  ]);
  expect(other.code).toBe(1);
  expect(other.err).toContain(
    `another plan (made by \`normprune sweep --config '${a}/my.json' --data-dir '${a}/data' --budget tiny --lambda 0.002,0.01 --backend wasm --out '${sweep}'\`)`,
  );
  // A plan of a version that did not record the directory (nor made its paths absolute): as recorded.
  const { cwd: _dropped, ...older } = {
    ...plan,
    command:
      'normprune sweep --config my.json --data-dir data --budget tiny --lambda 0.002,0.01 --backend wasm --out sweeps/s',
  };
  writeFileSync(join(sweep, '.sweep-plan.json'), JSON.stringify(older));
  expect(continueLine((await cli(['report', join('folder a', 'sweeps', 's')])).err)).toBe(
    `normprune sweep --config my.json --data-dir data --budget tiny --lambda 0.002,0.01 --backend wasm --resume --out '${sweep}'`,
  );
  writeFileSync(join(sweep, '.sweep-plan.json'), JSON.stringify(plan));

  // The printed command finishes it from here; sweep.json records the directory, an export does not.
  expect((await runPrinted(expected)).code).toBe(0);
  expect(JSON.parse(readFileSync(join(sweep, 'sweep.json'), 'utf8')).cwd).toBe(tmp);
  const exported = join(tmp, 'exported');
  expect((await cli(['report', '--export', exported, sweep])).code).toBe(0);
  const [folder] = readdirSync(exported).filter((f) => f.startsWith('sweep-'));
  const copy = JSON.parse(readFileSync(join(exported, folder, 'sweep.json'), 'utf8'));
  expect(copy.command).toBeDefined();
  expect(copy.cwd).toBeUndefined();
});

test('a run and a sweep that read their data from a relative NORMPRUNE_DATA_DIR record it, absolute, in the command that reproduces them', async () => {
  writeIdxFixture(join(a, 'root', 'mnist'), 600, 300);
  process.chdir(a);
  const env = `NORMPRUNE_DATA_DIR='${a}/root'`;
  const tiny = ['--budget', 'tiny', '--backend', 'wasm'];
  const stopped = await withDataDir('root', () =>
    cli(['reproduce', 'lenet-500-300', ...tiny, '--out', 'runs/env', '--stop-after-steps', '1']),
  );
  expect(stopped.code).toBe(130);
  expect(stopped.out).toContain(
    `continue with: ${env} normprune reproduce lenet-500-300 --budget tiny --backend wasm --out '${a}/runs/env' --resume`,
  );
  const run = join(a, 'runs', 'env');
  const recorded = `${env} normprune reproduce lenet-500-300 --budget tiny --backend wasm --out '${run}'`;
  expect(JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')).command).toBe(recorded);

  // From another folder, the variable unset there: the printed command continues it on the same data.
  process.chdir(b);
  const line = continueLine((await withDataDir(undefined, () => cli(['report', run]))).err);
  expect(line).toBe(
    `${env} normprune reproduce lenet-500-300 --budget tiny --backend wasm --resume --out '${run}'`,
  );
  expect((await runPrinted(line)).code).toBe(0);
  const results = JSON.parse(readFileSync(join(run, 'results.json'), 'utf8'));
  expect(results.command).toBe(recorded);
  expect(results.dataset.source).toBe(join(a, 'root', 'mnist'));
  expect(readFileSync(join(run, 'report.md'), 'utf8')).toContain(`Command: \`${recorded}\``);

  // A sweep's point names the sweep's command, which writes the folder above it.
  process.chdir(a);
  const sweep = join(a, 'sweeps', 'env');
  const args = ['sweep', 'lenet-500-300', ...tiny, '--lambda', '0.002', '--out', 'sweeps/env'];
  expect((await withDataDir('root', () => cli([...args, '--stop-after-steps', '3']))).code).toBe(130);
  process.chdir(b);
  const point = await withDataDir(undefined, () => cli(['report', join(sweep, 'lambda-0.002')]));
  expect(continueLine(point.err)).toBe(
    `${env} normprune sweep lenet-500-300 --budget tiny --backend wasm --lambda 0.002 --resume --out '${sweep}'`,
  );
  // A --data-dir given is the data, and the variable is left out.
  process.chdir(a);
  const given = await withDataDir('root', () =>
    cli([
      'reproduce',
      'lenet-500-300',
      ...tiny,
      '--data-dir',
      'data',
      '--out',
      'runs/given',
      '--stop-after-steps',
      '1',
    ]),
  );
  expect(given.out).toContain(
    `continue with: normprune reproduce lenet-500-300 --budget tiny --backend wasm --data-dir '${a}/data'`,
  );
});

test("a sweep's finished points reused after its config file was renamed record the command that works", async () => {
  const d = join(tmp, 'renamed');
  mkdirSync(d);
  writeFileSync(join(d, 'old.json'), JSON.stringify({ extends: 'lenet-500-300' }));
  process.chdir(d);
  const tiny = ['--data-dir', join(a, 'data'), '--budget', 'tiny', '--backend', 'wasm', '--out', 's'];
  expect((await cli(['sweep', '--config', 'old.json', '--lambda', '0.002', ...tiny])).code).toBe(0);
  renameSync(join(d, 'old.json'), join(d, 'new.json'));
  const words = ['sweep', '--config', 'new.json', '--lambda', '0.002,0.01', ...tiny];
  const resumed = await cli([...words, '--resume']);
  expect(resumed.code).toBe(0);
  expect(resumed.err).toContain(
    `note: sweep point lambda-0.002 was made by a command naming the config file ${join(d, 'old.json')}, which is gone: it records this sweep's command instead`,
  );
  // Its paths absolute, as the sweep records them.
  const command = `normprune ${words.map(shellQuote).join(' ')}`
    .replace('new.json', join(d, 'new.json'))
    .replace('--out s', `--out ${join(d, 's')}`);
  const point = join(d, 's', 'lambda-0.002');
  const recorded = () => ({
    config: JSON.parse(readFileSync(join(point, 'config.json'), 'utf8')),
    results: JSON.parse(readFileSync(join(point, 'results.json'), 'utf8')),
    report: readFileSync(join(point, 'report.md'), 'utf8'),
  });
  const now = recorded();
  expect(now.config.command).toBe(command);
  expect(now.config.cwd).toBe(d);
  expect(now.results.command).toBe(command);
  expect(now.report).toContain(`Command: \`${command}\``);
  expect(now.report).not.toContain('old.json');
  // A command that still works is kept, as a resumed run keeps it.
  expect((await cli(['sweep', '--config', './new.json', ...words.slice(3), '--resume'])).code).toBe(0);
  expect(recorded()).toEqual(now);
});

test('an unfinished sweep point moved out of its sweep is named as one, with what continues it', async () => {
  const d = join(tmp, 'moved');
  mkdirSync(d);
  process.chdir(d);
  const args = [
    'sweep',
    'lenet-500-300',
    '--data-dir',
    join(a, 'data'),
    '--budget',
    'tiny',
    '--backend',
    'wasm',
  ];
  const grid = ['--lambda', '0.002,0.01', '--out', 's'];
  expect((await cli([...args, ...grid, '--stop-after-steps', '3'])).code).toBe(130);
  mkdirSync(join(d, 'runs'));
  const point = join(d, 'runs', 'p');
  renameSync(join(d, 's', 'lambda-0.002'), point);
  const sweep = `normprune ${[...args, ...grid].map(shellQuote).join(' ')}`.replace(
    '--out s',
    `--out ${join(d, 's')}`,
  );
  const moved = `${point} is an unfinished point of a sweep, moved out of the sweep's folder (${join(d, 'runs')} holds no sweep)`;
  const back = `only its sweep continues it: move it back into the sweep's folder and continue the sweep with --resume (the sweep was started by \`${sweep}\`)`;
  // Not the sweep's command with --out runs, which finds no sweep there.
  const report = await cli(['report', point]);
  expect(report.code).toBe(1);
  expect(report.err).toContain(`report: ${moved}; ${back}`);
  const evaluated = await cli(['eval', '--model', point]);
  expect(evaluated.code).toBe(1);
  expect(evaluated.err).toContain(`eval: ${moved}: its model/ is written when it finishes; ${back}`);
  const run = await cli([
    'reproduce',
    'lenet-500-300',
    '--budget',
    'tiny',
    '--backend',
    'wasm',
    '--out',
    point,
  ]);
  expect(run.code).toBe(1);
  expect(run.err).toContain(
    `, a point of the sweep started by \`${sweep}\`, moved out of that sweep's folder; move it back into its sweep's folder and continue that sweep with --resume`,
  );
  // Moved back, the sweep continues it; so it does when the sweep's plan is gone (its points are found).
  renameSync(point, join(d, 's', 'lambda-0.002'));
  const plan = join(d, 's', '.sweep-plan.json');
  const kept = readFileSync(plan);
  rmSync(plan);
  expect(continueLine((await cli(['report', join(d, 's', 'lambda-0.002')])).err)).toBe(
    `${sweep.replace(` --out ${join(d, 's')}`, '')} --resume --out ${join(d, 's')}`,
  );
  writeFileSync(plan, kept);
  expect((await cli([...args, ...grid, '--resume'])).code).toBe(0);
});

test('--print-config prints the config alone, re-readable as a config file: no command, no directory', async () => {
  process.chdir(a);
  const r = await cli(['train', '--config', 'my.json', '--budget', 'tiny', '--print-config']);
  expect(r.code).toBe(0);
  const printed = JSON.parse(r.out);
  expect(printed.cwd).toBeUndefined();
  expect(printed.command).toBeUndefined();
  writeFileSync(join(a, 'printed.json'), r.out);
  const again = await cli(['train', '--config', 'printed.json', '--print-config']);
  expect(JSON.parse(again.out)).toEqual(printed);
});
