// Benchmarks are not run in CI (their figures depend on the machine), so what
// keeps them from rotting is cheap: each project's `typecheck` target compiles
// its bench/ folder (checked here, so that dropping "bench" from a tsconfig's
// include fails), every `bench*` script runs a file that exists, and every
// bench command or file a README or guide names exists. The benches themselves
// are not run and no time is asserted.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { markdownFiles, read, rel, workspaceRoot } from './markdown';

interface Project {
  dir: string; // relative to the workspace root, e.g. packages/runtime
  name: string; // the Nx project name (the folder's name)
  scripts: Record<string, string>;
  include: string[];
}

function projects(): Project[] {
  const out: Project[] = [];
  for (const parent of ['packages', 'apps']) {
    for (const name of readdirSync(join(workspaceRoot, parent)).sort()) {
      const dir = join(parent, name);
      const pkg = join(workspaceRoot, dir, 'package.json');
      if (!existsSync(pkg)) continue;
      const tsconfig = join(workspaceRoot, dir, 'tsconfig.json');
      out.push({
        dir,
        name,
        scripts: JSON.parse(readFileSync(pkg, 'utf8')).scripts ?? {},
        include: existsSync(tsconfig) ? (JSON.parse(readFileSync(tsconfig, 'utf8')).include ?? []) : [],
      });
    }
  }
  return out;
}

const all = projects();
const withBench = all.filter((p) => existsSync(join(workspaceRoot, p.dir, 'bench')));

test('every project with benchmarks has them', () => {
  // The five packages and the CLI: a rename of the folder would silently empty the checks below.
  expect(withBench.map((p) => p.dir)).toEqual([
    'packages/datasets',
    'packages/layers',
    'packages/prox',
    'packages/runtime',
    'packages/surgery',
    'apps/experiments',
  ]);
});

test.each(withBench.map((p) => [p.dir, p]))(
  '%s: typecheck covers bench/ and every bench script runs a file that exists',
  (_dir, p) => {
    const problems: string[] = [];
    if (!p.include.includes('bench')) problems.push(`tsconfig.json's include lacks "bench"`);
    if (!/\btsc\b.*--noEmit/.test(p.scripts.typecheck ?? ''))
      problems.push(`typecheck script is not tsc --noEmit: ${p.scripts.typecheck}`);
    const benches = Object.entries(p.scripts).filter(([k]) => k === 'bench' || k.startsWith('bench:'));
    if (!benches.some(([k]) => k === 'bench')) problems.push('no "bench" script (nx run <project>:bench)');
    for (const [k, cmd] of benches) {
      const files = [...cmd.matchAll(/(?:^|\s)(bench\/[\w./-]+\.ts)\b/g)].map((m) => m[1]);
      if (files.length === 0) problems.push(`script ${k} runs no bench/*.ts file: ${cmd}`);
      for (const f of files)
        if (!existsSync(join(workspaceRoot, p.dir, f))) problems.push(`script ${k}: ${f} does not exist`);
    }
    expect(problems).toEqual([]);
  },
);

/** The project a Markdown file documents (its folder), if it is a project's README. */
function ownerOf(file: string): Project | undefined {
  const dir = rel(dirname(file));
  return all.find((p) => p.dir === dir);
}

test.each(markdownFiles().map((f) => [rel(f), f]))('bench commands named in %s exist', (_name, file) => {
  const owner = ownerOf(file);
  // A guide or the root README names benches of any project; a project's README its own.
  const candidates = owner ? [owner] : withBench;
  const problems: string[] = [];
  read(file)
    .split('\n')
    .forEach((line, i) => {
      const where = `${rel(file)}:${i + 1}`;
      for (const m of line.matchAll(/\bnx run ([\w-]+):(bench[\w:-]*)/g)) {
        const p = all.find((q) => q.name === m[1]);
        if (!p?.scripts[m[2]]) problems.push(`${where}: nx run ${m[1]}:${m[2]}: no such script`);
      }
      for (const m of line.matchAll(/\bnpm run (bench(?::[\w-]+)?)\b/g))
        if (!candidates.some((p) => p.scripts[m[1]]))
          problems.push(
            `${where}: npm run ${m[1]}: no such script in ${candidates.map((p) => p.dir).join(', ')}`,
          );
      for (const m of line.matchAll(/\bbench\/([\w.-]+\.ts)\b/g))
        if (!candidates.some((p) => existsSync(join(workspaceRoot, p.dir, 'bench', m[1]))))
          problems.push(
            `${where}: bench/${m[1]} does not exist in ${candidates.map((p) => p.dir).join(', ')}`,
          );
    });
  expect(problems).toEqual([]);
});
