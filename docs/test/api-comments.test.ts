// What the API pages say about who throws an error, held to the sources that
// throw it: a new thrower must be named where users read the error's doc.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';
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

/**
 * Each exported function and class of `pkg` whose own body refuses something: a `throw`, or a
 * call of a `check...` helper, in the function's body or the class's constructor. Followed
 * through `export ... from` of the package's modules, by the TypeScript checker.
 */
function throwingExports(pkg: string): { name: string; doc: string }[] {
  const index = path.join(workspaceRoot, 'packages', pkg, 'src', 'index.ts');
  const program = ts.createProgram([index], { allowJs: false, noEmit: true, skipLibCheck: true });
  const checker = program.getTypeChecker();
  const module = checker.getSymbolAtLocation(program.getSourceFile(index)!)!;
  const refuses = (body: ts.Node | undefined): boolean => {
    let found = false;
    const visit = (n: ts.Node): void => {
      if (found) return;
      // A nested function is another function's body: its throws are its own.
      if (n !== body && (ts.isFunctionLike(n) || ts.isClassLike(n))) return;
      if (ts.isThrowStatement(n)) found = true;
      else if (
        ts.isCallExpression(n) &&
        ts.isIdentifier(n.expression) &&
        /^check[A-Z]/.test(n.expression.text)
      )
        found = true;
      else ts.forEachChild(n, visit);
    };
    if (body) visit(body);
    return found;
  };
  const out: { name: string; doc: string }[] = [];
  for (const exported of checker.getExportsOfModule(module)) {
    const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
    for (const decl of symbol.declarations ?? []) {
      // Only the package's own declarations (a re-export of a sibling's is documented there).
      if (!decl.getSourceFile().fileName.startsWith(path.join(workspaceRoot, 'packages', pkg, 'src')))
        continue;
      const body = ts.isFunctionDeclaration(decl)
        ? decl.body
        : ts.isClassDeclaration(decl)
          ? decl.members.find((m) => ts.isConstructorDeclaration(m))
          : undefined;
      if (!refuses(body)) continue;
      const tags = symbol.getJsDocTags(checker).map((t) => `@${t.name} ${ts.displayPartsToString(t.text)}`);
      const doc = [ts.displayPartsToString(symbol.getDocumentationComment(checker)), ...tags].join('\n');
      out.push({ name: exported.name, doc });
    }
  }
  return out;
}

test.each(['datasets', 'layers', 'prox', 'runtime', 'surgery'])(
  '@normprune/%s: an export whose body refuses something says what it throws in its doc comment',
  (pkg) => {
    const found = throwingExports(pkg);
    expect(found.length).toBeGreaterThan(0);
    // "Throws ...", "rejects", "refuses", "is an `invalid-argument` DatasetError", "(else a RangeError)".
    const says = /\b(throws?|rejects?|refuse[sd]?|errors?|\w+Error)\b/i;
    const silent = found.filter((e) => !says.test(e.doc)).map((e) => e.name);
    expect(silent).toEqual([]);
  },
);
