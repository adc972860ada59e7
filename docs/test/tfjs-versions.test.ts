// The TensorFlow.js versions a user's project may have. scripts/tfjs-versions.mjs
// measures which tfjs 4.x versions the packages work with (each project's Jest
// suite and tools/tfjs-versions/check.cjs, run against that version) and
// records it in tools/tfjs-versions/results.json. Here:
//  * the five packages share one tfjs peer range `^4.M.P`; every package's
//    whole suite passed at 4.M.P, nothing failed at a measured version the
//    range admits, and something failed at the measured version just below
//    it (so the range is neither wider nor narrower than measured);
//  * the lowest version the ranges admit, installed from the registry next to
//    the five packed packages (as `npm install` does in a user's project),
//    runs check.cjs: a CIFAR image folder parsed, a conv + dense model
//    decomposed, its gradients on wasm (training kernels registered) equal
//    to cpu's, trained with ProximalAdam on both, pruned, saved and loaded
//    through runtime's file system. This needs the registry (CI has it), once:
//    npm keeps the tarballs in its cache.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { npmEnv, packAndInstall, PackedProject, runInProject, TFJS_PEERS } from '../../tools/testing/pack';
import { parseMarkdown, read, workspaceRoot } from './markdown';

const PACKAGES = ['runtime', 'datasets', 'layers', 'prox', 'surgery'];
const DIR = path.join(workspaceRoot, 'tools', 'tfjs-versions');

interface ProjectResult {
  passed: number;
  failed: number;
  failures: string[];
}
interface VersionResult {
  wasm: string;
  check: { ok: boolean; error?: string };
  projects: Record<string, ProjectResult>;
}
const results = (
  JSON.parse(fs.readFileSync(path.join(DIR, 'results.json'), 'utf8')) as {
    versions: Record<string, VersionResult>;
  }
).versions;

function manifest(pkg: string): { peerDependencies: Record<string, string> } {
  return JSON.parse(fs.readFileSync(path.join(workspaceRoot, 'packages', pkg, 'package.json'), 'utf8'));
}

/** The tfjs peer ranges of a package. */
function tfjsPeers(pkg: string): [string, string][] {
  return Object.entries(manifest(pkg).peerDependencies).filter(([name]) => name.startsWith('@tensorflow/'));
}

/** `^4.M.P` as [4, M, P]; anything else fails the test, naming the range. */
function caret(range: string): number[] {
  const m = /^\^(4)\.(\d+)\.(\d+)$/.exec(range);
  if (!m) throw new Error(`tfjs peer range '${range}' is not of the form ^4.M.P`);
  return m.slice(1).map(Number);
}

/** Whether `^low` admits `version` (a pre-release never, as npm has it for ranges without one). */
function admits(low: number[], version: string): boolean {
  if (version.includes('-')) return false;
  const v = version.split('.').map(Number);
  if (v[0] !== low[0]) return false;
  return v[1] > low[1] || (v[1] === low[1] && v[2] >= low[2]);
}

/** The program failed at `version`, or `pkg`'s suite did. */
function fails(pkg: string, version: string): boolean {
  const r = results[version];
  return !r.check.ok || (r.projects[pkg]?.failed ?? 0) > 0;
}

/** The program ran at `version`, and so did `pkg`'s whole suite, without a failure. */
function passes(pkg: string, version: string): boolean {
  const r = results[version];
  return r.check.ok && r.projects[pkg] !== undefined && r.projects[pkg].failed === 0;
}

const stable = Object.keys(results).filter((v) => !v.includes('-'));

describe('tfjs versions', () => {
  it('results.json holds measurements: the program ran at every version, and each package suite at some', () => {
    expect(stable.length).toBeGreaterThan(1);
    for (const pkg of PACKAGES)
      expect(stable.filter((v) => results[v].projects[pkg]).length).toBeGreaterThan(0);
  });

  it('the packages share one tfjs range, so any tfjs version a project has fits all five or none', () => {
    const ranges = new Set(PACKAGES.flatMap((p) => tfjsPeers(p).map(([, r]) => r)));
    expect([...ranges]).toHaveLength(1);
  });

  describe('the range, against the measurements', () => {
    const low = caret(tfjsPeers('layers')[0][1]);
    const lowest = low.join('.');

    it.each(PACKAGES)('%s: its lowest version was measured, with its whole suite, and passed', (pkg) => {
      expect({ pkg, lowest, passes: lowest in results && passes(pkg, lowest) }).toEqual({
        pkg,
        lowest,
        passes: true,
      });
    });

    it.each(PACKAGES)('%s: no measured version the range admits failed', (pkg) => {
      const failed = stable.filter((v) => admits(low, v) && fails(pkg, v));
      expect(failed.map((v) => ({ v, check: results[v].check, suite: results[v].projects[pkg] }))).toEqual(
        [],
      );
    });

    it('the range is as wide as measured: the measured version below its lowest failed for some package', () => {
      const below = stable.filter((v) => !admits(low, v)).pop();
      if (below !== undefined) expect(PACKAGES.filter((p) => fails(p, below))).not.toEqual([]);
      else expect(lowest).toBe('4.0.0');
    });
  });

  describe('the lowest tfjs version of the range, installed from the registry', () => {
    const lowest = caret(tfjsPeers('layers')[0][1]).join('.');
    let project: PackedProject;

    // Measured on the 2-core machine with other jobs running (load average 8
    // to 12): 37 to 70 s to pack and install (tarballs in npm's cache), 14 to
    // 25 s to run.
    beforeAll(async () => {
      project = await packAndInstall(
        PACKAGES.map((p) => path.join(workspaceRoot, 'packages', p)),
        { deps: TFJS_PEERS.map((name) => `${name}@${lowest}`), online: true },
      );
    }, 300000);

    afterAll(() => project?.cleanup());

    it(`tfjs ${lowest}: parse, decompose, wasm gradients = cpu's, ProximalAdam, prune, save and load`, () => {
      const source = fs.readFileSync(path.join(DIR, 'check.cjs'), 'utf8');
      const out = JSON.parse(
        runInProject(project.dir, 'check.cjs', source, {}, 180000).trim().split('\n').pop()!,
      );
      const installed = (name: string) =>
        JSON.parse(fs.readFileSync(path.join(project.dir, 'node_modules', name, 'package.json'), 'utf8'))
          .version;
      expect(TFJS_PEERS.map(installed)).toEqual(TFJS_PEERS.map(() => lowest));
      expect(out.tfjs).toBe(lowest);
      expect(out.dataset).toEqual({ train: 20, test: 10, xs: [20, 32, 32, 3], ys: [20, 10] });
      expect(out.backend).toEqual({ backend: 'wasm', trainingKernels: true });
      // results.json: 4.2e-6 of the largest gradient at every version from 4.6.0 to 4.23.0-rc.0.
      expect(out.gradientRelDiff).toBeLessThan(1e-5);
      // 4.5e-6 there after five Adam steps, which can amplify differences (3.1e-4 was seen on 4.1.0).
      expect(out.trainedRelDiff).toBeLessThan(1e-3);
      expect(out.leaked).toEqual({ cpu: 0, wasm: 0 });
      // Half the first layer's 6 filters, and any the penalty killed, are removed.
      expect(out.zeros[0]).toBeGreaterThanOrEqual(3);
      expect(out.pruned.filters).toBe(6 - out.zeros[0]);
      expect(out.pruned.compression).toBeGreaterThan(0);
      expect(out.pruned.maxDiff).toBeLessThan(1e-5);
      expect(out.reload).toEqual({ files: ['group1-shard1of1.bin', 'model.json'], maxDiff: 0 });
    }, 240000);

    // A user's project already has tfjs, not the newest, and no wasm backend;
    // the guide's install block then runs as written, each @normprune/<name>
    // replaced by its tarball. npm resolves an optional peer that is not
    // installed (tfjs-backend-wasm, of runtime) to its newest version, whose
    // exact peer on the newest tfjs-core conflicts with the project's
    // (npm/cli#8416): installing the packages first, then wasm, stopped at ERESOLVE.
    it(`the getting-started install block works in a project that has tfjs ${lowest} without wasm`, () => {
      const guide = path.join(workspaceRoot, 'docs', 'guides', 'getting-started.md');
      const block = parseMarkdown(read(guide)).blocks.find(
        (b) => b.info === 'sh' && /npm install @normprune\//.test(b.body),
      );
      expect(block).toBeDefined();
      // Until they are on the registry, a command installs the tarballs of
      // the packages it names and of the sibling packages those depend on.
      const siblings = (name: string): string[] => [
        name,
        ...Object.keys(
          JSON.parse(fs.readFileSync(path.join(workspaceRoot, 'packages', name, 'package.json'), 'utf8'))
            .dependencies ?? {},
        )
          .filter((d) => d.startsWith('@normprune/'))
          .flatMap((d) => siblings(d.slice('@normprune/'.length))),
      ];
      const script = block!.body
        .replace(/\\\n/g, ' ')
        .split('\n')
        .map((line) => {
          const names = [...line.matchAll(/@normprune\/([a-z]+)/g)].map((m) => m[1]);
          if (!names.length) return line;
          const all = [...new Set(names.flatMap(siblings))];
          expect(all.filter((n) => !PACKAGES.includes(n))).toEqual([]);
          const tarballs = all.map((n) => project.tarballs[PACKAGES.indexOf(n)]).join(' ');
          return line.replace(/\s*@normprune\/[a-z]+/g, '').replace('npm install', `npm install ${tarballs}`);
        })
        .join('\n');
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-guide-install-'));
      const env = { ...npmEnv(), npm_config_prefer_offline: 'true', npm_config_audit: 'false' };
      const sh = (source: string) =>
        spawnSync('bash', ['-e', '-c', source], { cwd: dir, env, encoding: 'utf8' });
      try {
        fs.writeFileSync(path.join(dir, 'package.json'), '{ "name": "a-tfjs-project", "private": true }\n');
        const tfjs = ['tfjs-core', 'tfjs-layers', 'tfjs-backend-cpu'].map(
          (n) => `@tensorflow/${n}@${lowest}`,
        );
        expect(sh(`npm install ${tfjs.join(' ')}`).status).toBe(0);
        const run = sh(script);
        expect({ status: run.status, stderr: run.status === 0 ? '' : run.stderr }).toEqual({
          status: 0,
          stderr: '',
        });
        const installed = (name: string) =>
          JSON.parse(fs.readFileSync(path.join(dir, 'node_modules', name, 'package.json'), 'utf8')).version;
        expect(TFJS_PEERS.map(installed)).toEqual(TFJS_PEERS.map(() => lowest));
        const ours = (p: string) =>
          JSON.parse(fs.readFileSync(path.join(workspaceRoot, 'packages', p, 'package.json'), 'utf8'))
            .version;
        expect(PACKAGES.map((p) => installed(`@normprune/${p}`))).toEqual(PACKAGES.map(ours));
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }, 120000);
  });
});
