// The launcher bin/normprune.js, in the layouts npm leaves: one folder (npm install, --prefix),
// where every package shares one tfjs-core, and a global install of the tarballs (npm install -g),
// where each package has its own copy and the launcher refuses to start, naming the fix.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const BIN = join(__dirname, '..', 'bin', 'normprune.js');
const PACKAGES = ['datasets', 'layers', 'prox', 'runtime', 'surgery'];

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'np-bin-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function write(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
}

/** A package `name` in folder `dir`: its entry in dist/cjs, beside a package.json of its own, as ours ship. */
function fakePackage(dir: string, name: string, entry = 'module.exports = {};\n'): void {
  write(join(dir, 'package.json'), JSON.stringify({ name, main: 'dist/cjs/index.js' }));
  write(join(dir, 'dist', 'cjs', 'package.json'), '{"type":"commonjs"}');
  write(join(dir, 'dist', 'cjs', 'index.js'), entry);
}

/** The CLI in `dir`: the real launcher, and a cli-main that says it ran. */
function fakeCli(dir: string): string {
  write(join(dir, 'package.json'), JSON.stringify({ name: '@normprune/experiments' }));
  cpSync(BIN, join(dir, 'bin', 'normprune.js'));
  write(join(dir, 'dist', 'cjs', 'cli-main.js'), "process.stdout.write('cli ran\\n');\n");
  return join(dir, 'bin', 'normprune.js');
}

function run(bin: string): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [bin], { encoding: 'utf8', env: { ...process.env, NODE_PATH: '' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('bin/normprune.js', () => {
  it('starts where every package shares the CLI’s tfjs-core (one folder, as npm install --prefix leaves it)', () => {
    const modules = join(root, 'project', 'node_modules');
    fakePackage(join(modules, '@tensorflow', 'tfjs-core'), '@tensorflow/tfjs-core');
    for (const p of PACKAGES) fakePackage(join(modules, '@normprune', p), `@normprune/${p}`);
    const bin = fakeCli(join(modules, '@normprune', 'experiments'));
    expect(run(bin)).toEqual({ code: 0, out: 'cli ran\n', err: '' });
  });

  it.each(['datasets', 'surgery'])(
    'refuses to start when @normprune/%s has its own tfjs-core (npm install -g of the tarballs), naming both copies and the fix',
    (own) => {
      const modules = join(root, `global-${own}`, 'lib', 'node_modules');
      const cli = join(modules, '@normprune', 'experiments');
      fakePackage(join(cli, 'node_modules', '@tensorflow', 'tfjs-core'), '@tensorflow/tfjs-core');
      for (const p of PACKAGES) {
        fakePackage(join(modules, '@normprune', p), `@normprune/${p}`);
        // Each global package gets its peers in its own node_modules; here only `own` has one.
        if (p === own)
          fakePackage(
            join(modules, '@normprune', p, 'node_modules', '@tensorflow', 'tfjs-core'),
            '@tensorflow/tfjs-core',
          );
      }
      const r = run(fakeCli(cli));
      expect(r.code).toBe(1);
      expect(r.out).toBe('');
      expect(r.err).toBe(
        `normprune: error: @normprune/${own} (${join(modules, '@normprune', own)}) loads its own copy of ` +
          `@tensorflow/tfjs-core (${join(modules, '@normprune', own, 'node_modules', '@tensorflow', 'tfjs-core')}), ` +
          `not the CLI's (${join(cli, 'node_modules', '@tensorflow', 'tfjs-core')}), and a model, layer class or ` +
          "backend one copy registers is not the other's: a run would fail half way. " +
          '`npm install -g` of the tarballs does this: it installs each package with its own tfjs. ' +
          'Install them into one folder instead (npm install --prefix DIR normprune-*.tgz) and run ' +
          'DIR/node_modules/.bin/normprune\n',
      );
    },
  );

  it('refuses a package with its own tfjs-layers too (the copy whose layer classes a model is loaded with)', () => {
    const modules = join(root, 'global-layers', 'lib', 'node_modules');
    const cli = join(modules, '@normprune', 'experiments');
    for (const lib of ['tfjs-core', 'tfjs-layers'])
      fakePackage(join(cli, 'node_modules', '@tensorflow', lib), `@tensorflow/${lib}`);
    for (const p of PACKAGES) fakePackage(join(modules, '@normprune', p), `@normprune/${p}`);
    // prox shares the CLI's tfjs-core (a copy above both) but not its tfjs-layers.
    fakePackage(join(modules, '@tensorflow', 'tfjs-core'), '@tensorflow/tfjs-core');
    rmSync(join(cli, 'node_modules', '@tensorflow', 'tfjs-core'), { recursive: true });
    fakePackage(
      join(modules, '@normprune', 'prox', 'node_modules', '@tensorflow', 'tfjs-layers'),
      '@tensorflow/tfjs-layers',
    );
    const r = run(fakeCli(cli));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      new RegExp(
        `^normprune: error: @normprune/prox \\(.*\\) loads its own copy of @tensorflow/tfjs-layers `,
      ),
    );
  });

  it('leaves a missing package or tfjs copy to the load that needs it', () => {
    const modules = join(root, 'partial', 'node_modules');
    fakePackage(join(modules, '@normprune', 'layers'), '@normprune/layers');
    const bin = fakeCli(join(modules, '@normprune', 'experiments'));
    expect(run(bin)).toEqual({ code: 0, out: 'cli ran\n', err: '' });
  });
});
