// Installs built workspace packages the way a user gets them: `npm pack`, then
// `npm install` of the tarballs into an empty project outside the workspace,
// without network. Tests then run Node *inside* that project (see
// `runInProject`), so nothing resolves through workspace links or TS sources.
//
// Usage (from a package's test, after its build):
//
//   const project = await packAndInstall([path.join(__dirname, '..')]);
//   try {
//     const out = runInProject(project.dir, 'check.mjs', `import { x } from '@normprune/foo'; ...`);
//   } finally {
//     project.cleanup();
//   }
//
// Packages a tarball depends on that are not on a registry (sibling
// @normprune packages) must be passed in `packageDirs` too: npm satisfies
// `"@normprune/layers": "0.1.0"` with the tarball installed next to it.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const WORKSPACE = path.resolve(__dirname, '..', '..');

/** The tfjs packages installed next to the tarballs unless `deps` says otherwise. */
export const TFJS_PEERS = [
  '@tensorflow/tfjs-core',
  '@tensorflow/tfjs-layers',
  '@tensorflow/tfjs-backend-cpu',
  '@tensorflow/tfjs-backend-wasm',
];

/** A temporary project with the packed packages installed. */
export interface PackedProject {
  /** The project directory: run `node` here. */
  dir: string;
  /** The tarballs `npm pack` produced, in the order of `packageDirs`. */
  tarballs: string[];
  /**
   * How the third-party dependencies got there: `'cache'` when npm installed
   * them from its cache (`--offline`), `'linked'` when the cache lacked them:
   * the tarballs were unpacked by hand and the workspace's copies of their
   * dependencies symlinked in.
   */
  mode: 'cache' | 'linked';
  /** Deletes the project and the tarballs. */
  cleanup(): void;
}

/** Options of {@link packAndInstall}. */
export interface PackOptions {
  /**
   * Registry packages to install next to the tarballs, as names (the version
   * the workspace has installed is used, so the npm cache that `npm ci` filled
   * has it) or `name@version` specs. Default: {@link TFJS_PEERS}.
   */
  deps?: string[];
  /** npm cache directory (tests of this helper use an empty one to force the fallback). */
  npmCache?: string;
  /**
   * Let npm fetch from the registry what its cache lacks (`--prefer-offline`),
   * for `deps` at versions the workspace does not have (another tfjs version).
   * There is then no fallback: a failed install throws.
   */
  online?: boolean;
}

/**
 * The environment for nested npm runs. When the tests themselves run under
 * `npm test`, npm exports its settings (workspace, prefix, ...) as
 * `npm_config_*` variables that would redirect the nested install into the
 * workspace; keep only the cache location.
 */
export function npmEnv(cache?: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_/i.test(k) && !/^npm_config_(cache|userconfig)$/i.test(k)) continue;
    env[k] = v;
  }
  env.npm_config_update_notifier = 'false';
  env.npm_config_fund = 'false';
  env.npm_config_audit = 'false';
  if (cache) env.npm_config_cache = cache;
  return env;
}

function npm(args: string[], cwd: string, cache?: string): string {
  try {
    return execFileSync('npm', args, {
      cwd,
      env: npmEnv(cache),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string; message: string };
    throw new Error(`npm ${args.join(' ')} (in ${cwd}) failed:\n${err.stderr || err.stdout || err.message}`);
  }
}

/** Every module under `dir` (relative paths, `.ts` → `.js`), tests and declarations excluded. */
function modules(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const rel = path.join(prefix, entry.name);
    if (entry.isDirectory()) out.push(...modules(path.join(dir, entry.name), rel));
    else if (/\.ts$/.test(entry.name) && !/\.(test|d)\.ts$/.test(entry.name))
      out.push(rel.replace(/\.ts$/, '.js'));
  }
  return out;
}

/**
 * Refuses to pack a package whose build is missing or does not cover every
 * source module. Freshness of the contents is Nx's job (the test target
 * depends on build, hashed by inputs); mtimes are not used because Nx restores
 * cached outputs with their original timestamps.
 */
function assertBuilt(pkgDir: string): void {
  const dist = path.join(pkgDir, 'dist');
  const src = path.join(pkgDir, 'src');
  const build = `run \`npx nx run ${path.basename(pkgDir)}:build\` first (the test target depends on it)`;
  for (const format of ['cjs', 'esm']) {
    if (!fs.existsSync(path.join(dist, format, 'index.js')))
      throw new Error(`${pkgDir} is not built: ${build}`);
    const missing = fs.existsSync(src)
      ? modules(src).filter((m) => !fs.existsSync(path.join(dist, format, m)))
      : [];
    if (missing.length) throw new Error(`${pkgDir}/dist/${format} lacks ${missing.join(', ')}: ${build}`);
  }
}

/** `name` -> `name@<installed version>`; `name@x` stays as given. */
function pinned(dep: string): string {
  if (dep.lastIndexOf('@') > 0) return dep;
  const manifest = path.join(WORKSPACE, 'node_modules', dep, 'package.json');
  if (!fs.existsSync(manifest)) throw new Error(`packAndInstall: ${dep} is not installed in the workspace`);
  return `${dep}@${JSON.parse(fs.readFileSync(manifest, 'utf8')).version}`;
}

function depName(spec: string): string {
  const at = spec.lastIndexOf('@');
  return at > 0 ? spec.slice(0, at) : spec;
}

/**
 * The install without npm or network: each tarball unpacked (`tar`) into
 * `dir/node_modules/<its name>`, then every registry package the tarballs
 * depend on (their `dependencies` that are not among the tarballs) and every
 * one of `deps` symlinked from the workspace's node_modules, where `npm ci`
 * put the versions the lock file pins.
 */
function linkInstall(dir: string, tarballs: string[], deps: string[]): void {
  const packed = new Set<string>();
  const wanted = new Set(deps);
  for (const tgz of tarballs) {
    const stage = fs.mkdtempSync(path.join(dir, '.unpack-'));
    try {
      execFileSync('tar', ['-xzf', tgz, '-C', stage], { stdio: ['ignore', 'pipe', 'pipe'] });
      const unpacked = path.join(stage, 'package');
      const manifest = JSON.parse(fs.readFileSync(path.join(unpacked, 'package.json'), 'utf8'));
      const target = path.join(dir, 'node_modules', manifest.name);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.renameSync(unpacked, target);
      packed.add(manifest.name);
      for (const dep of Object.keys(manifest.dependencies ?? {})) wanted.add(dep);
    } finally {
      fs.rmSync(stage, { recursive: true, force: true });
    }
  }
  for (const dep of wanted) {
    if (packed.has(dep)) continue;
    const source = path.join(WORKSPACE, 'node_modules', dep);
    if (!fs.existsSync(source))
      throw new Error(`packAndInstall: ${dep} is neither in the npm cache nor installed in the workspace`);
    const target = path.join(dir, 'node_modules', dep);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.symlinkSync(source, target, 'junction');
  }
}

/**
 * Packs each (built) package directory with `npm pack`, creates an empty
 * project in the OS temp dir, and installs the tarballs there together with
 * the registry packages in `deps` (the tfjs peers by default), never touching
 * the network (unless `online`, see {@link PackOptions}):
 *
 * 1. `npm install --offline <tarballs> <deps>`: everything from the npm cache
 *    that `npm ci` filled. This is what a user's install does, minus network.
 * 2. If the cache cannot serve a dependency (ENOTCACHED: a cache cleaned since
 *    `npm ci`, or one that never held the packument of a package's own
 *    dependency, since `npm ci` reads versions from the lock file), the
 *    install goes without npm ({@link linkInstall}): each tarball is unpacked
 *    into node_modules, and each registry package it depends on, and each of
 *    `deps`, is symlinked from the workspace's node_modules.
 *
 * Takes a few seconds; call it once per test file (`beforeAll`).
 */
export async function packAndInstall(
  packageDirs: string[],
  options: PackOptions = {},
): Promise<PackedProject> {
  const dirs = packageDirs.map((d) => path.resolve(d));
  dirs.forEach(assertBuilt);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-pack-'));
  const cleanup = () => fs.rmSync(root, { recursive: true, force: true });
  try {
    const tarDir = path.join(root, 'tarballs');
    const dir = path.join(root, 'project');
    fs.mkdirSync(tarDir);
    fs.mkdirSync(dir);
    const tarballs = dirs.map((pkgDir) => {
      const out = JSON.parse(
        npm(['pack', '--json', '--ignore-scripts', '--pack-destination', tarDir], pkgDir, options.npmCache),
      );
      return path.join(tarDir, out[0].filename);
    });
    fs.writeFileSync(
      path.join(dir, 'package.json'),
      JSON.stringify({ name: 'normprune-pack-test', version: '0.0.0', private: true }, null, 2),
    );
    const deps = (options.deps ?? TFJS_PEERS).map(pinned);
    const common = [
      'install',
      options.online ? '--prefer-offline' : '--offline',
      '--no-audit',
      '--no-fund',
      '--ignore-scripts',
      '--no-package-lock',
    ];
    let mode: PackedProject['mode'] = 'cache';
    try {
      npm([...common, ...tarballs, ...deps], dir, options.npmCache);
    } catch (e) {
      // npm reports a packument missing from the cache as ENOTCACHED, or, when
      // resolving peers, as an ERESOLVE on `<name>@undefined`.
      if (options.online || !/ENOTCACHED|only-if-cached|@undefined/i.test((e as Error).message)) throw e;
      mode = 'linked';
      fs.rmSync(path.join(dir, 'node_modules'), { recursive: true, force: true });
      linkInstall(dir, tarballs, deps.map(depName));
    }
    return { dir, tarballs, mode, cleanup };
  } catch (e) {
    cleanup();
    throw e;
  }
}

/**
 * Writes `source` to `file` inside the project and runs it with Node there
 * (`.cjs` / `.mjs` decide the module system). Returns stdout; throws with
 * stderr when the script fails.
 */
export function runInProject(
  dir: string,
  file: string,
  source: string,
  env: NodeJS.ProcessEnv = {},
  timeout = 60000,
): string {
  const script = path.join(dir, file);
  fs.writeFileSync(script, source);
  // Run from another directory so that resolving from the cwd, instead of
  // from the installed package, would fail.
  const run = spawnSync(process.execPath, [script], {
    cwd: os.tmpdir(),
    env: { ...npmEnv(), NODE_PATH: '', ...env },
    encoding: 'utf8',
    timeout,
  });
  if (run.status !== 0) {
    throw new Error(
      `node ${file} failed (status ${run.status}${run.signal ? `, ${run.signal}` : ''}):\n${run.stderr}\n${run.stdout}`,
    );
  }
  return run.stdout;
}

/** What {@link errorAcrossBuilds} finds: each field is true for a package that gets it right. */
export interface ErrorAcrossBuilds {
  /** The CommonJS and ES module builds were two copies of the class. */
  twoCopies: boolean;
  /** An error of either build is `instanceof` the other build's class. */
  acrossBuilds: boolean;
  /** A plain Error, even one with the class's `name`, is not. */
  plainErrorsRefused: boolean;
  /** A subclass's `instanceof` stays a prototype check; an instance of a subclass is one of the class in both builds. */
  subclassesStrict: boolean;
  /** The mark the check reads is not an enumerable property. */
  markHidden: boolean;
}

/** What {@link errorAcrossBuilds} gives for a package that gets everything right. */
export const HOLDS_ACROSS_BUILDS: ErrorAcrossBuilds = {
  twoCopies: true,
  acrossBuilds: true,
  plainErrorsRefused: true,
  subclassesStrict: true,
  markHidden: true,
};

/**
 * Loads both builds of the installed package `pkg` in one process (`require` and `import`) and
 * checks that its error class `className`, made with the constructor arguments `args` (a
 * JavaScript expression), answers `instanceof` across the two copies.
 */
export function errorAcrossBuilds(
  dir: string,
  pkg: string,
  className: string,
  args: string,
): ErrorAcrossBuilds {
  const out = runInProject(
    dir,
    'error-across-builds.mjs',
    `import { createRequire } from 'node:module';
     const C = ${JSON.stringify(className)};
     const Cjs = createRequire(import.meta.url)(${JSON.stringify(pkg)})[C];
     const Esm = (await import(${JSON.stringify(pkg)}))[C];
     const a = new Cjs(...${args});
     const b = new Esm(...${args});
     class Sub extends Esm {}
     const s = new Sub(...${args});
     const named = Object.assign(new Error('x'), { name: C });
     console.log(JSON.stringify({
       twoCopies: Cjs !== Esm,
       acrossBuilds: a instanceof Esm && b instanceof Cjs && a instanceof Cjs && b instanceof Esm,
       plainErrorsRefused: !(new Error('x') instanceof Esm) && !(named instanceof Cjs) && !({} instanceof Esm),
       subclassesStrict: !(b instanceof Sub) && !(a instanceof Sub) && s instanceof Sub && s instanceof Cjs && s instanceof Esm,
       markHidden: [a, b].every((e) => Object.getOwnPropertySymbols(e).every((k) => !Object.getOwnPropertyDescriptor(e, k).enumerable)),
     }));`,
  );
  return JSON.parse(out) as ErrorAcrossBuilds;
}
