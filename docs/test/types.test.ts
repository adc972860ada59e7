// The published typings, as a TypeScript user compiles against them: the five
// packages packed and installed into an empty project (tools/testing/pack.ts),
// then a program using every package's main API (fixtures/consumer.ts) and
// every README's runnable example, and the code blocks of the doc comments that
// the API pages show (fragments, with the user's own names declared), type-checked there with the workspace's
// TypeScript under `strict` and `skipLibCheck: false`, in the module settings
// users have: node16 ES module, node16 CommonJS, bundler (also with the
// `browser` condition, whose builds must declare the same API), and legacy node10.
// The examples test runs the examples; this one proves that their types, and
// the package.json `exports`/`types` that lead to them, hold outside the
// workspace, where nothing resolves to the TypeScript sources.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';
import { packAndInstall, PackedProject, TFJS_PEERS } from '../../tools/testing/pack';
import { typeCheck } from '../../tools/testing/typecheck';
import { apiExamples, runnableExamples, workspaceRoot } from './markdown';

const PACKAGES = ['runtime', 'datasets', 'layers', 'prox', 'surgery'];

// A user's tsconfig: strict, libraries checked too. `types: []` is
// TypeScript 6's default; stated so that the settings mean the same under 5.x,
// and so that a declaration needing @types/node (Buffer, NodeJS.*) fails here.
const COMMON = { strict: true, noEmit: true, skipLibCheck: false, target: 'es2022', types: [] as string[] };

interface Setting {
  name: string;
  /** `"type"` of the directory's package.json. */
  type: 'module' | 'commonjs';
  /** Extension of the consumer's files: `.cts` makes them CommonJS under node16. */
  ext: '.ts' | '.cts';
  options: Record<string, unknown>;
  /**
   * The build whose declarations must resolve: `esm` through the `import`
   * condition of `exports`, `cjs` through `require` (node16 CommonJS) or the
   * top-level `types` (node10, which ignores `exports`).
   */
  flavour: 'esm' | 'cjs';
  /** Packages whose browser build (`dist/<flavour>/browser.d.ts`) must be the one that resolved. */
  browser?: string[];
}

const SETTINGS: Setting[] = [
  {
    name: 'node16-esm',
    type: 'module',
    ext: '.ts',
    flavour: 'esm',
    options: { module: 'node16', moduleResolution: 'node16' },
  },
  {
    name: 'node16-cjs',
    type: 'commonjs',
    ext: '.cts',
    flavour: 'cjs',
    options: { module: 'node16', moduleResolution: 'node16' },
  },
  {
    name: 'bundler',
    type: 'module',
    ext: '.ts',
    flavour: 'esm',
    options: { module: 'esnext', moduleResolution: 'bundler' },
  },
  {
    name: 'bundler-browser',
    type: 'module',
    ext: '.ts',
    flavour: 'esm',
    options: { module: 'esnext', moduleResolution: 'bundler', customConditions: ['browser'] },
    browser: ['datasets', 'runtime', 'surgery'],
  },
  {
    name: 'node10',
    type: 'commonjs',
    ext: '.ts',
    flavour: 'cjs',
    options: {
      module: 'commonjs',
      moduleResolution: 'node',
      // TypeScript 6 deprecates node10 resolution; projects still on it silence that.
      ...(Number(ts.versionMajorMinor.split('.')[0]) >= 6 ? { ignoreDeprecations: '6.0' } : {}),
    },
  },
];

// Deliberate errors, written into every project so that a pass means the
// project was type-checked at all: a misuse of our API (which only fails when
// our declarations resolved, since an unresolved import fails differently) and
// a broken declaration file (which only fails when .d.ts files are checked).
const misuse = `import { ProximalSGD } from '@normprune/prox';
import { loadMnist } from '@normprune/datasets';
export const optimizer = new ProximalSGD({ learningRate: 0.1 });
export const dataset: string = loadMnist;
`;
const broken = `export declare const broken: NotAType;\n`;
const expectedErrors = (ext: string) => [`broken.d.ts TS2304`, `misuse${ext} TS2322`, `misuse${ext} TS2345`];

const consumer = fs.readFileSync(path.join(__dirname, 'fixtures', 'consumer.ts'), 'utf8');

const EXAMPLES = runnableExamples();

/** The names `packages/<pkg>/src/index.ts` exports (its `export { ... }` lists and exported declarations). */
function exportedNames(pkg: string): string[] {
  const file = path.join(workspaceRoot, 'packages', pkg, 'src', 'index.ts');
  const source = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.Latest);
  const names: string[] = [];
  for (const s of source.statements) {
    if (ts.isExportDeclaration(s) && s.exportClause && ts.isNamedExports(s.exportClause))
      names.push(...s.exportClause.elements.map((e) => e.name.text));
    const exported =
      ts.canHaveModifiers(s) && ts.getModifiers(s)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
    if (!exported) continue;
    if ((ts.isFunctionDeclaration(s) || ts.isClassDeclaration(s) || ts.isInterfaceDeclaration(s)) && s.name)
      names.push(s.name.text);
    if (ts.isVariableStatement(s))
      for (const d of s.declarationList.declarations) if (ts.isIdentifier(d.name)) names.push(d.name.text);
  }
  return names;
}

// The API pages' fragments use the names of their package and a few of the user's own (a model,
// its data, a folder); each is compiled as a module with those declared, nothing else.
const API_PRELUDE = `import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
declare let model: tfl.LayersModel;
declare const plain: tfl.LayersModel;
declare const xs: tf.Tensor;
declare const ys: tf.Tensor;
declare const dir: string;
declare function trainFromScratch(): Promise<tfl.LayersModel>;
`;

const API_EXAMPLES = apiExamples().map((e) => {
  const used = exportedNames(e.pkg).filter((n) => new RegExp(`\\b${n}\\b`).test(e.body));
  const imports = used.length ? `import { ${used.join(', ')} } from '@normprune/${e.pkg}';\n` : '';
  return { ...e, source: `${API_PRELUDE}${imports}// ${e.name}\n${e.body}` };
});

/** Writes one consumer project: package.json, tsconfig.json, the sources, the deliberate errors. */
function writeProject(
  dir: string,
  type: string,
  ext: string,
  options: Record<string, unknown>,
  sources: Record<string, string>,
): void {
  fs.mkdirSync(dir, { recursive: true });
  const files = { ...sources, [`misuse${ext}`]: misuse, 'broken.d.ts': broken };
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ type }, null, 2));
  fs.writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { ...COMMON, ...options }, files: Object.keys(files) }, null, 2),
  );
}

/** `file TScode` of each diagnostic, for comparing without the wording of the messages. */
function codes(diagnostics: string[]): string[] {
  return diagnostics.map((d) => d.replace(/^(.*?)\(\d+,\d+\): (TS\d+):.*$/s, '$1 $2')).sort();
}

/** `<package>/<esm|cjs>` of every @normprune declaration file the program loaded. */
function flavours(files: string[]): string[] {
  const out = new Set<string>();
  for (const f of files) {
    const m = /[\\/]node_modules[\\/]@normprune[\\/](\w+)[\\/]dist[\\/](esm|cjs)[\\/]/.exec(f);
    if (m) out.add(`${m[1]}/${m[2]}`);
  }
  return [...out].sort();
}

describe('the packed packages type-check in a TypeScript project', () => {
  let project: PackedProject;
  let root: string;

  beforeAll(async () => {
    project = await packAndInstall(
      PACKAGES.map((p) => path.join(workspaceRoot, 'packages', p)),
      { deps: [...TFJS_PEERS, '@types/node'] },
    );
    root = fs.realpathSync(project.dir);
    for (const s of SETTINGS)
      writeProject(path.join(root, s.name), s.type, s.ext, s.options, { [`consumer${s.ext}`]: consumer });
    writeProject(
      path.join(root, 'readme'),
      'module',
      '.ts',
      // The examples use node:fs, node:os and node:path.
      { module: 'node16', moduleResolution: 'node16', types: ['node'] },
      Object.fromEntries(EXAMPLES.map((e) => [e.file, e.source])),
    );
    writeProject(
      path.join(root, 'api'),
      'module',
      '.ts',
      { module: 'node16', moduleResolution: 'node16', types: ['node'] },
      Object.fromEntries(API_EXAMPLES.map((e) => [e.file, e.source])),
    );
  });

  afterAll(() => project?.cleanup());

  describe.each(SETTINGS.map((s) => [s.name, s] as const))('%s', (_name, s) => {
    it(`compiles the main API of every package against the ${s.flavour} declarations`, () => {
      const { diagnostics, files } = typeCheck(path.join(root, s.name, 'tsconfig.json'));
      const unexpected = diagnostics.filter((d) => !/^(misuse\.c?ts|broken\.d\.ts)\(/.test(d));
      expect(unexpected).toEqual([]);
      expect(codes(diagnostics)).toEqual(expectedErrors(s.ext));
      expect(diagnostics.find((d) => d.includes('TS2345'))).toMatch(/lambda/);
      expect(flavours(files)).toEqual(PACKAGES.map((p) => `${p}/${s.flavour}`).sort());
      const browserBuilds = files
        .map(
          (f) =>
            /[\\/]node_modules[\\/]@normprune[\\/](\w+)[\\/]dist[\\/]\w+[\\/]browser\.d\.ts$/.exec(f)?.[1],
        )
        .filter((p) => p !== undefined);
      expect(browserBuilds.sort()).toEqual(s.browser ?? []);
      // Every @normprune file came from the installed tarballs, none from the workspace.
      const normprune = files.filter((f) =>
        /[\\/]@normprune[\\/]|[\\/]packages[\\/]\w+[\\/](src|dist)[\\/]/.test(f),
      );
      expect(normprune.filter((f) => !f.startsWith(root + path.sep))).toEqual([]);
    });
  });

  it('every source map names sources that ship in its package, so stack traces and go-to-definition land on real files', () => {
    let maps = 0;
    for (const p of PACKAGES) {
      const pkg = fs.realpathSync(path.join(root, 'node_modules', '@normprune', p));
      const walk = (dir: string): string[] =>
        fs
          .readdirSync(dir, { withFileTypes: true })
          .flatMap((e) =>
            e.isDirectory()
              ? walk(path.join(dir, e.name))
              : e.name.endsWith('.map')
                ? [path.join(dir, e.name)]
                : [],
          );
      for (const map of walk(path.join(pkg, 'dist'))) {
        maps++;
        const { sources, sourceRoot = '' } = JSON.parse(fs.readFileSync(map, 'utf8')) as {
          sources: string[];
          sourceRoot?: string;
        };
        expect(sources.length).toBeGreaterThan(0);
        for (const source of sources) {
          const file = path.resolve(path.dirname(map), sourceRoot, source);
          expect({
            map: path.relative(pkg, map),
            source,
            inPackage: file.startsWith(pkg + path.sep),
            exists: fs.existsSync(file),
          }).toEqual({ map: path.relative(pkg, map), source, inPackage: true, exists: true });
        }
      }
    }
    // .js.map and .d.ts.map, for both builds of every module
    expect(maps).toBeGreaterThan(4 * PACKAGES.length);
  });

  describe('README examples (node16 ES module)', () => {
    let diagnostics: string[];
    beforeAll(() => {
      diagnostics = typeCheck(path.join(root, 'readme', 'tsconfig.json')).diagnostics;
    });

    it('finds the deliberate errors, so the examples were checked', () => {
      expect(EXAMPLES.length).toBeGreaterThanOrEqual(PACKAGES.length);
      expect(codes(diagnostics.filter((d) => /^(misuse\.ts|broken\.d\.ts)\(/.test(d)))).toEqual(
        expectedErrors('.ts'),
      );
    });

    it.each(EXAMPLES.map((e) => [e.name, e] as const))('%s', (_name, e) => {
      expect(diagnostics.filter((d) => d.startsWith(`${e.file}(`))).toEqual([]);
    });

    it('reports nothing else', () => {
      const files = new Set([...EXAMPLES.map((e) => e.file), 'misuse.ts', 'broken.d.ts']);
      expect(diagnostics.filter((d) => !files.has(d.replace(/\(.*$/s, '')))).toEqual([]);
    });
  });

  describe('the code blocks of the API pages (doc comments, node16 ES module)', () => {
    let diagnostics: string[];
    beforeAll(() => {
      diagnostics = typeCheck(path.join(root, 'api', 'tsconfig.json')).diagnostics;
    });

    it('finds the deliberate errors, so the fragments were checked', () => {
      expect(API_EXAMPLES.length).toBeGreaterThanOrEqual(PACKAGES.length);
      expect(codes(diagnostics.filter((d) => /^(misuse\.ts|broken\.d\.ts)\(/.test(d)))).toEqual(
        expectedErrors('.ts'),
      );
    });

    it.each(API_EXAMPLES.map((e) => [e.name, e] as const))('%s', (_name, e) => {
      expect(diagnostics.filter((d) => d.startsWith(`${e.file}(`))).toEqual([]);
    });

    it('reports nothing else', () => {
      const files = new Set([...API_EXAMPLES.map((e) => e.file), 'misuse.ts', 'broken.d.ts']);
      expect(diagnostics.filter((d) => !files.has(d.replace(/\(.*$/s, '')))).toEqual([]);
    });
  });
});
