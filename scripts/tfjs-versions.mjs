#!/usr/bin/env node
// `npm run tfjs-versions`: which TensorFlow.js 4.x versions the packages work
// with, measured. For each version it makes a copy of the workspace (sources,
// built dist folders) whose node_modules links every package to the
// workspace's, except the four tfjs packages, which are unpacked there from
// the registry's tarballs at that version; then it runs, in the copy,
//  * tools/tfjs-versions/check.cjs, the program a user of all five packages
//    runs (decompose, gradients on wasm against cpu, ProximalAdam, prune,
//    save/load, a CIFAR image folder), and
//  * each project's own Jest suite (its pack tests install the packed
//    packages next to that tfjs version),
// and writes what passed and what failed, with the first line of each
// failure, to tools/tfjs-versions/results.json. The peer ranges in the
// packages' package.json must agree with that file (docs/test/tfjs-versions.test.ts).
// The workspace itself is never changed (nothing is written under its
// node_modules). Needs the packages built (`npx nx run-many -t build`) and
// registry access for the tarballs it has not cached yet.
//
//   node scripts/tfjs-versions.mjs [--versions 4.0.0,4.22.0,4.23.0-rc.0:4.22.0]
//       [--projects runtime,datasets,layers,prox,surgery,docs] [--no-suites] [--keep]
//
// `A:B` runs tfjs A with tfjs-backend-wasm B (for versions the wasm backend
// was not published at). Without --versions: the newest version, the lowest
// the peer ranges admit, and the one below it that failed. Each version took
// 5 to 30 min on 2 cores shared with other jobs (the program alone: 20-30 s).
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.join(import.meta.dirname, '..');
const TFJS = ['tfjs-core', 'tfjs-layers', 'tfjs-backend-cpu', 'tfjs-backend-wasm'];
const PACKAGES = ['runtime', 'datasets', 'layers', 'prox', 'surgery'];
const RESULTS = path.join(root, 'tools', 'tfjs-versions', 'results.json');
const CHECK = path.join(root, 'tools', 'tfjs-versions', 'check.cjs');
// Left out of the copy (paths from the root; node_modules anywhere): large, or written by runs.
const SKIP = new Set(['.git', '.nx', 'reports', 'runs', '.cache', path.join('docs', 'site')]);

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = process.argv[i + 1];
  if (v === undefined || v.startsWith('--')) {
    console.error(`--${name} needs a value, e.g. --${name} ${fallback}`);
    process.exit(2);
  }
  return v;
}
const flag = (name) => process.argv.includes(`--${name}`);

const versions = option('versions', '4.10.0,4.11.0,4.22.0')
  .split(',')
  .map((spec) => {
    const [core, wasm = core] = spec.split(':');
    if (!/^4\.\d+\.\d+(-[\w.]+)?$/.test(core) || !/^4\.\d+\.\d+(-[\w.]+)?$/.test(wasm)) {
      console.error(`--versions: '${spec}' is not a tfjs 4.x version (e.g. 4.20.0, or 4.23.0-rc.0:4.22.0)`);
      process.exit(2);
    }
    return { core, wasm };
  });
const projects = option('projects', [...PACKAGES, 'docs'].join(',')).split(',');
for (const p of projects) {
  if (!fs.existsSync(path.join(root, p === 'docs' ? 'docs' : `packages/${p}`, 'jest.config.js'))) {
    console.error(`--projects: no project '${p}' (one of ${[...PACKAGES, 'docs'].join(', ')})`);
    process.exit(2);
  }
}
for (const p of PACKAGES) {
  if (!fs.existsSync(path.join(root, 'packages', p, 'dist', 'cjs', 'index.js'))) {
    console.error(`packages/${p} is not built: run \`npx nx run-many -t build\` first`);
    process.exit(2);
  }
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-tfjs-versions-'));
// mkdtemp makes it 0700; a datasets test runs the built package as nobody.
fs.chmodSync(work, 0o755);
// The real-data tests read ../shared/data beside the workspace.
if (fs.existsSync(path.join(root, '..', 'shared')))
  fs.symlinkSync(path.join(root, '..', 'shared'), path.join(work, 'shared'));
const tarballs = path.join(os.homedir(), '.cache', 'normprune', 'tfjs-tarballs');
fs.mkdirSync(tarballs, { recursive: true });

/** The registry's tarball of @tensorflow/<name>@<version>, downloaded once. */
function tarball(name, version) {
  const file = path.join(tarballs, `tensorflow-${name}-${version}.tgz`);
  if (!fs.existsSync(file)) {
    execFileSync(
      'npm',
      ['pack', '--silent', `@tensorflow/${name}@${version}`, '--pack-destination', tarballs],
      {
        stdio: ['ignore', 'ignore', 'inherit'],
      },
    );
  }
  return file;
}

/** A copy of the workspace with tfjs `core` (and tfjs-backend-wasm `wasm`) in its node_modules. */
function makeCopy(core, wasm) {
  const dir = path.join(work, `tfjs-${core}`);
  fs.cpSync(root, dir, {
    recursive: true,
    filter: (src) => path.basename(src) !== 'node_modules' && !SKIP.has(path.relative(root, src)),
  });
  const modules = path.join(dir, 'node_modules');
  fs.mkdirSync(modules);
  for (const entry of fs.readdirSync(path.join(root, 'node_modules'))) {
    if (entry === '@tensorflow' || entry === '@normprune' || entry === '.bin') continue;
    fs.symlinkSync(path.join(root, 'node_modules', entry), path.join(modules, entry), 'junction');
  }
  fs.mkdirSync(path.join(modules, '.bin'));
  for (const bin of ['jest', 'tsc']) {
    fs.symlinkSync(
      fs.realpathSync(path.join(root, 'node_modules', '.bin', bin)),
      path.join(modules, '.bin', bin),
    );
  }
  fs.mkdirSync(path.join(modules, '@normprune'));
  for (const p of PACKAGES)
    fs.symlinkSync(path.join(dir, 'packages', p), path.join(modules, '@normprune', p), 'junction');
  for (const name of TFJS) {
    const target = path.join(modules, '@tensorflow', name);
    fs.mkdirSync(target, { recursive: true });
    execFileSync('tar', [
      '-xzf',
      tarball(name, name === 'tfjs-backend-wasm' ? wasm : core),
      '-C',
      target,
      '--strip-components=1',
    ]);
  }
  // The pack tests install the packed packages next to this version: let the
  // peer ranges admit it, so that they measure the code, not the range.
  for (const p of PACKAGES) {
    const file = path.join(dir, 'packages', p, 'package.json');
    const manifest = JSON.parse(fs.readFileSync(file, 'utf8'));
    for (const name of TFJS.concat('tfjs-node')) {
      const key = `@tensorflow/${name}`;
      if (manifest.peerDependencies?.[key]) manifest.peerDependencies[key] = `^4.0.0 || ${core} || ${wasm}`;
    }
    fs.writeFileSync(file, JSON.stringify(manifest, null, 2) + '\n');
  }
  return dir;
}

/** First line of each failed test of a Jest --json report. */
function failures(report) {
  const out = [];
  for (const suite of report.testResults) {
    const file = path.basename(suite.name);
    if (suite.assertionResults.length === 0 && suite.message)
      out.push(`${file}: ${firstLine(suite.message)}`);
    for (const t of suite.assertionResults)
      if (t.status === 'failed')
        out.push(`${file} > ${t.fullName}: ${firstLine(t.failureMessages.join('\n'))}`);
  }
  return out;
}

/** The line of a crashed program's stderr that names its error (tfjs prints a banner first). */
function errorLine(stderr) {
  const lines = stderr.split('\n').map((l) => l.trim());
  return (lines.find((l) => /^(\w*Error|Uncaught)\b/.test(l)) ?? lines.filter(Boolean).pop() ?? '').slice(
    0,
    300,
  );
}

function firstLine(message) {
  const plain = message.replace(/\u001b\[[0-9;]*m/g, '');
  return (plain.split('\n').find((l) => l.trim() && !/^\s*●/.test(l)) ?? '').trim().slice(0, 300);
}

const commit = spawnSync('git', ['rev-parse', '--short', 'HEAD'], {
  cwd: root,
  encoding: 'utf8',
}).stdout.trim();
const dirty = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], {
  cwd: root,
  encoding: 'utf8',
}).stdout.trim();

try {
  for (const { core, wasm } of versions) {
    const started = Date.now();
    const dir = makeCopy(core, wasm);
    // Which code was measured, and when: every result says so, since runs for one
    // version (the program alone, some projects) may come from different commits.
    const stamp = {
      commit: dirty ? `${commit}+changes` : commit,
      date: new Date().toISOString().slice(0, 10),
    };
    const entry = { wasm };
    fs.copyFileSync(CHECK, path.join(dir, 'check.cjs'));
    const check = spawnSync(process.execPath, ['check.cjs'], { cwd: dir, encoding: 'utf8', timeout: 600000 });
    entry.check =
      check.status === 0
        ? { ok: true, ...stamp, ...JSON.parse(check.stdout.trim().split('\n').pop()) }
        : { ok: false, ...stamp, error: errorLine(check.stderr || String(check.error)) };
    console.log(`tfjs ${core}: check ${entry.check.ok ? 'passed' : `failed: ${entry.check.error}`}`);
    entry.projects = {};
    for (const p of flag('no-suites') ? [] : projects) {
      const cwd = path.join(dir, p === 'docs' ? 'docs' : `packages/${p}`);
      const out = path.join(work, `${core}-${p}.json`);
      // docs' tfjs-versions test checks the workspace's ranges against this file: not a test of the version.
      const args = ['--json', `--outputFile=${out}`, '--testPathIgnorePatterns', 'tfjs-versions\\.test'];
      const run = spawnSync(path.join(dir, 'node_modules', '.bin', 'jest'), args, {
        cwd,
        encoding: 'utf8',
        env: { ...process.env, CI: 'true' },
      });
      if (!fs.existsSync(out)) {
        entry.projects[p] = {
          passed: 0,
          failed: 1,
          failures: [`jest did not run: ${firstLine(run.stderr)}`],
        };
      } else {
        const report = JSON.parse(fs.readFileSync(out, 'utf8'));
        entry.projects[p] = {
          passed: report.numPassedTests,
          failed: report.numFailedTests + report.numRuntimeErrorTestSuites,
          failures: failures(report),
        };
      }
      Object.assign(entry.projects[p], stamp);
      const r = entry.projects[p];
      console.log(`tfjs ${core}: ${p} ${r.passed} passed, ${r.failed} failed`);
      for (const f of r.failures) console.log(`    ${f}`);
    }
    console.log(`tfjs ${core}: ${Math.round((Date.now() - started) / 1000)} s`);
    // Merged into the file version by version, so an interrupted run keeps what it measured.
    const current = fs.existsSync(RESULTS) ? JSON.parse(fs.readFileSync(RESULTS, 'utf8')) : { versions: {} };
    for (const e of Object.values(current.versions)) stampOldEntry(e);
    const merged = {
      ...current.versions,
      [core]: {
        ...entry,
        projects: { ...current.versions[core]?.projects, ...entry.projects },
      },
    };
    const sorted = Object.fromEntries(Object.entries(merged).sort(([a], [b]) => compare(a, b)));
    const tmp = `${RESULTS}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify({ versions: sorted }, null, 2) + '\n');
    fs.renameSync(tmp, RESULTS);
    // In the layout `npm run format:check` (prettier) expects.
    spawnSync(process.execPath, [
      path.join(root, 'node_modules', 'prettier', 'bin', 'prettier.cjs'),
      '--write',
      RESULTS,
    ]);
    if (!flag('keep')) fs.rmSync(dir, { recursive: true, force: true });
  }
} finally {
  if (!flag('keep')) fs.rmSync(work, { recursive: true, force: true });
  else console.log(`copies kept in ${work}`);
}

/**
 * An entry written before results carried their own commit and date (one
 * `commit`/`date` for the whole entry, written by the run that measured all
 * of it): gives them to its results.
 */
function stampOldEntry(e) {
  if (e.commit === undefined) return;
  for (const r of [e.check, ...Object.values(e.projects)]) {
    r.commit ??= e.commit;
    r.date ??= e.date;
  }
  delete e.commit;
  delete e.date;
  delete e.seconds;
}

/** Orders versions as semver does (a pre-release before its release). */
function compare(a, b) {
  const parse = (v) => {
    const [main, pre] = v.split('-');
    return [...main.split('.').map(Number), pre === undefined ? Infinity : 0];
  };
  const [x, y] = [parse(a), parse(b)];
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return 0;
}
