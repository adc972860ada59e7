// What the API pages say about who throws an error, held to the sources that
// throw it: a new thrower must be named where users read the error's doc.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { workspaceRoot } from './markdown';

/** Every `.ts` file under `packages/<pkg>/src`, nested folders included. */
function sources(): string[] {
  const walk = (dir: string): string[] =>
    fs
      .readdirSync(dir, { withFileTypes: true })
      .flatMap((e) =>
        e.isDirectory()
          ? walk(path.join(dir, e.name))
          : e.name.endsWith('.ts')
            ? [path.join(dir, e.name)]
            : [],
      );
  const packages = path.join(workspaceRoot, 'packages');
  return fs
    .readdirSync(packages)
    .map((p) => path.join(packages, p, 'src'))
    .filter((d) => fs.existsSync(d))
    .flatMap(walk);
}

test("NonFiniteWeightError's `caller` doc names every caller the sources throw it with", () => {
  const thrown = new Set<string>();
  for (const file of sources()) {
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(/readFiniteWeight\(\s*[\w.]+,\s*[\w.]+,\s*'([^']+)'/g)) thrown.add(m[1]);
    for (const m of text.matchAll(/new NonFiniteWeightError\(\s*\{[^}]*\},\s*'([^']+)'/g)) thrown.add(m[1]);
  }
  expect(thrown.size).toBeGreaterThanOrEqual(3);
  const errors = fs.readFileSync(path.join(workspaceRoot, 'packages', 'layers', 'src', 'errors.ts'), 'utf8');
  const doc = /\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*readonly caller: string;/.exec(errors)?.[1] ?? '';
  const documented = new Set([...doc.matchAll(/`'([^']+)'`/g)].map((m) => m[1]));
  expect([...thrown].filter((c) => !documented.has(c)).sort()).toEqual([]);
});
