// Loose ends of audit 26: report --export over folders of the user's named as its own, a data
// folder that does not exist, NORMPRUNE_BACKEND=node without tfjs-node, unwritable folders.
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
import { cli } from './helpers';

let tmp: string;
beforeAll(() => (tmp = mkdtempSync(join(tmpdir(), 'normprune-loose-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const tiny = ['--budget', 'tiny', '--backend', 'wasm'];

/** Every file under `dir` (relative path -> content), to compare a folder before and after. */
function snapshot(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const f of readdirSync(dir, { recursive: true }) as string[])
    files[f] = statSync(join(dir, f)).isDirectory() ? '<dir>' : readFileSync(join(dir, f), 'latin1');
  return files;
}

let finished: string | undefined;
const finishedRun = async (): Promise<string> => {
  if (finished) return finished;
  finished = join(tmp, 'run');
  expect((await cli(['reproduce', 'lenet-500-300', ...tiny, '--out', finished])).code).toBe(0);
  return finished;
};

/** Runs `f` with NORMPRUNE_DATA_DIR set to `dir`. */
async function withDataDir<T>(dir: string, f: () => Promise<T>): Promise<T> {
  const was = process.env.NORMPRUNE_DATA_DIR;
  process.env.NORMPRUNE_DATA_DIR = dir;
  try {
    return await f();
  } finally {
    if (was === undefined) delete process.env.NORMPRUNE_DATA_DIR;
    else process.env.NORMPRUNE_DATA_DIR = was;
  }
}

test('report --export replaces DIR/<experiment>/ and DIR/sweep-<experiment>/ only when they hold an earlier export', async () => {
  const run = await finishedRun();
  const sweep = join(tmp, 'sweep');
  expect((await cli(['sweep', 'lenet-500-300', '--lambda', '0.002', ...tiny, '--out', sweep])).code).toBe(0);

  // A folder of yours named as the run's export: your report and results are kept, nothing written.
  const dir = join(tmp, 'export');
  const mine = join(dir, 'lenet-500-300');
  mkdirSync(mine, { recursive: true });
  writeFileSync(join(mine, 'report.md'), '# My paper draft');
  writeFileSync(join(mine, 'results.json'), '{"accuracy": 0.99}');
  const before = snapshot(dir);
  const r = await cli(['report', run, '--export', dir]);
  expect(r.code).toBe(1);
  expect(r.err).toContain(
    `report: --export would replace report.md, results.json in ${mine}, which is not an earlier export of ${run}`,
  );
  expect(r.err).toMatch(/give --export another folder, or move that folder away/);
  expect(snapshot(dir)).toEqual(before);
  // A run folder there (its own config.json) is not an export either, though its results.json is the run's.
  rmSync(mine, { recursive: true });
  cpSync(run, mine, { recursive: true });
  const asRun = await cli(['report', '--table', run, '--export', dir]);
  expect(asRun.code).toBe(1);
  expect(asRun.err).toMatch(
    /not an earlier export of .* \(it holds config\.json, model, as a run folder does\)/,
  );
  expect(existsSync(join(dir, 'lenet-500-300.json'))).toBe(false);
  rmSync(mine, { recursive: true });

  // An earlier export is replaced (a note of yours in it kept), and read back.
  expect((await cli(['report', '--table', run, '--export', dir])).code).toBe(0);
  writeFileSync(join(mine, 'notes.txt'), 'mine');
  expect((await cli(['report', '--table', run, '--export', dir])).code).toBe(0);
  expect(readFileSync(join(mine, 'notes.txt'), 'utf8')).toBe('mine');
  expect((await cli(['report', '--table', mine])).code).toBe(0);
  // ... but not an export of another seed's run.
  const other = JSON.parse(readFileSync(join(mine, 'results.json'), 'utf8'));
  writeFileSync(join(mine, 'results.json'), JSON.stringify({ ...other, seed: 7 }));
  rmSync(join(dir, 'lenet-500-300.json'));
  const seed = await cli(['report', '--table', run, '--export', dir]);
  expect(seed.code).toBe(1);
  expect(seed.err).toMatch(/its results\.json is of seed 7, this run's of seed 1/);

  // A sweep's export folder: yours is refused, an earlier export replaced.
  const sdir = join(tmp, 'sexport');
  const smine = join(sdir, 'sweep-lenet-500-300');
  mkdirSync(smine, { recursive: true });
  writeFileSync(join(smine, 'report.md'), '# My sweep notes');
  const sbefore = snapshot(sdir);
  const s = await cli(['report', sweep, '--export', sdir]);
  expect(s.code).toBe(1);
  expect(s.err).toContain(
    `report: --export would replace report.md in ${smine}, which is not an earlier export of ${sweep} (it has no sweep.json)`,
  );
  expect(snapshot(sdir)).toEqual(sbefore);
  rmSync(smine, { recursive: true });
  expect((await cli(['report', sweep, '--export', sdir])).code).toBe(0);
  expect((await cli(['report', sweep, '--export', sdir])).code).toBe(0);
  expect((await cli(['report', '--table', smine])).code).toBe(0);
});

test('a NORMPRUNE_DATA_DIR that does not exist is an error, not a silent fall back to the copies on this machine', async () => {
  const missing = join(tmp, 'no-such-data');
  const out = join(tmp, 'data-run');
  for (const args of [
    ['reproduce', 'lenet-500-300', ...tiny, '--out', out],
    ['sweep', 'lenet-500-300', '--lambda', '0.002', ...tiny, '--out', out],
  ]) {
    const r = await withDataDir(missing, () => cli(args));
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      `normprune: error: NORMPRUNE_DATA_DIR is set to ${missing}, which does not exist; ` +
        'set it to the folder holding mnist/, fashion-mnist/ or cifar-10/, or unset it to use the copies on this machine',
    );
    // Nothing written: no folder made, and the sweep fails before its first point.
    expect(existsSync(out)).toBe(false);
    expect(r.err).not.toContain('sweep point');
    // Found before the backend is chosen and named (a run's "backend: ..." line came first).
    expect(r.err).not.toContain('backend:');
  }
  // As --data-dir is (exit 1 too, a data error).
  for (const args of [
    ['reproduce', 'lenet-500-300', ...tiny, '--out', out],
    ['sweep', 'lenet-500-300', '--lambda', '0.002', ...tiny, '--out', out],
  ]) {
    const flag = await cli([...args, '--data-dir', missing]);
    expect(flag.code).toBe(1);
    expect(flag.err).toContain(
      `--data-dir ${missing} does not exist; give the folder holding mnist's files, or an archive of them, ` +
        'or leave --data-dir out to read NORMPRUNE_DATA_DIR, else the copies on this machine',
    );
    expect(existsSync(out)).toBe(false);
    expect(flag.err).not.toContain('backend:');
  }

  const run = await finishedRun();
  const file = join(tmp, 'a-file');
  writeFileSync(file, '');
  const asFile = await withDataDir(file, () => cli(['eval', '--model', run]));
  expect(asFile.code).toBe(1);
  expect(asFile.err).toContain(`NORMPRUNE_DATA_DIR is set to ${file}, which is a file;`);

  // One that exists without this data set's folder (it may hold the others): the run says where it loads from.
  const other = join(tmp, 'data-root');
  mkdirSync(join(other, 'fashion-mnist'), { recursive: true });
  const noted = await withDataDir(other, () => cli(['eval', '--model', run]));
  expect(noted.code).toBe(0);
  expect(noted.err).toContain(
    `note: NORMPRUNE_DATA_DIR ${other} has no mnist/; mnist is loaded from the copies on this machine`,
  );
  // Such a folder given as --data-dir: the error says to give its mnist/ (or to set the variable).
  mkdirSync(join(other, 'mnist'));
  const root = await cli(['eval', '--model', run, '--data-dir', other]);
  expect(root.code).toBe(1);
  expect(root.err).toContain(
    `MNIST: missing train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte`,
  );
  expect(root.err).toContain(
    `${other} holds mnist/: give --data-dir ${join(other, 'mnist/')}, or set NORMPRUNE_DATA_DIR=${other} and leave --data-dir out`,
  );
});

test('NORMPRUNE_BACKEND=node without tfjs-node is refused as --backend node is (exit 1, naming the fix)', async () => {
  const run = await finishedRun();
  const out = join(tmp, 'node-run');
  const was = process.env.NORMPRUNE_BACKEND;
  process.env.NORMPRUNE_BACKEND = 'node';
  try {
    for (const args of [
      ['reproduce', 'lenet-500-300', '--budget', 'tiny', '--out', out],
      ['eval', '--model', run],
      ['eval', '--model', run, '--backend', 'wasm'],
    ]) {
      const r = await cli(args);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(
        /NORMPRUNE_BACKEND=node( \(which overrides --backend wasm\))?: not available, wasm started instead .*; install @tensorflow\/tfjs-node, or unset NORMPRUNE_BACKEND to use the fastest that loads/,
      );
      if (args.includes('--backend')) expect(r.err).toContain('(which overrides --backend wasm)');
    }
  } finally {
    if (was === undefined) delete process.env.NORMPRUNE_BACKEND;
    else process.env.NORMPRUNE_BACKEND = was;
  }
  const flag = await cli(['eval', '--model', run, '--backend', 'node']);
  expect(flag.code).toBe(1);
  expect(flag.err).toContain('--backend node: not available');
  expect(flag.err).toContain(
    'install @tensorflow/tfjs-node, or drop --backend to use the fastest that loads',
  );
});

// Node's fs module itself (the CLI calls its functions through it), for spies.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const fs = require('node:fs') as typeof import('node:fs');

test('report on a read-only run names the folder that is not writable, not a temp file', async () => {
  // Tests run as root, which chmod does not stop: the file system's refusal is injected.
  const ro = join(tmp, 'read-only-run');
  cpSync(await finishedRun(), ro, { recursive: true });
  const before = snapshot(ro);
  const realWrite = fs.writeFileSync;
  const write = jest.spyOn(fs, 'writeFileSync').mockImplementation((file, ...rest) => {
    if (String(file).startsWith(ro + '/'))
      throw Object.assign(new Error(`EACCES: permission denied, open '${file}'`), { code: 'EACCES' });
    return realWrite(file, ...rest);
  });
  try {
    const r = await cli(['report', ro]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      new RegExp(
        `^normprune: error: report: cannot write ${ro}/plots/[\\w-]+\\.svg: ${ro}/plots is not writable \\(EACCES\\): ` +
          `the report of ${ro} cannot be rewritten; --export DIR copies the run with the report it has, --table prints its row\\n$`,
      ),
    );
    expect(r.err).not.toMatch(/\.tmp/);
  } finally {
    write.mockRestore();
  }
  expect(snapshot(ro)).toEqual(before);
});

test('prune into a folder that cannot be written is refused before the model is loaded', async () => {
  const model = join(await finishedRun(), 'model');
  const parent = join(tmp, 'ro-parent');
  mkdirSync(parent);
  const out = join(parent, 'pruned');
  const access = jest.spyOn(fs, 'accessSync').mockImplementation((p) => {
    if (String(p) === parent) throw Object.assign(new Error('EACCES'), { code: 'EACCES' });
  });
  const load = jest.spyOn(fs.promises, 'readFile');
  try {
    const r = await cli(['prune', '--model', model, '--out', out]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `normprune: error: prune: --out ${out} cannot be written: ${parent} is not writable (EACCES); choose another --out\n`,
    );
    expect(r.out).toBe('');
    // The model was never loaded.
    expect(load.mock.calls.filter(([f]) => String(f).startsWith(model))).toEqual([]);
    expect(existsSync(out)).toBe(false);
  } finally {
    access.mockRestore();
    load.mockRestore();
  }
});
