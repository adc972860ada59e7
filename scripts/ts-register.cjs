// Lets `node --require scripts/ts-register.cjs file.ts` run TypeScript directly
// (benchmarks, CLI in development) by transpiling with the workspace's
// TypeScript; @normprune/* imports resolve to sibling sources like in tests.
// Each file's output is cached on disk (node_modules/.cache/ts-register), keyed by
// its path, its text, the TypeScript version and the options: transpiling the
// CLI's sources took 5.7 s of CPU at every start, and the CLI tests start it in
// child processes, so only the first start after a change pays it.
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const Module = require('module');

const root = path.join(__dirname, '..');
const aliases = {
  runtime: 'packages/runtime',
  datasets: 'packages/datasets',
  layers: 'packages/layers',
  prox: 'packages/prox',
  surgery: 'packages/surgery',
};
const origResolve = Module._resolveFilename;
Module._resolveFilename = function (request, parent, ...rest) {
  const m = /^@normprune\/(\w+)$/.exec(request);
  if (m && aliases[m[1]]) request = path.join(root, aliases[m[1]], 'src', 'index.ts');
  else if (
    request.endsWith('.js') &&
    request.startsWith('.') &&
    parent &&
    parent.filename &&
    parent.filename.endsWith('.ts')
  ) {
    const ts_ = path.join(path.dirname(parent.filename), request.replace(/\.js$/, '.ts'));
    if (fs.existsSync(ts_)) request = ts_;
  }
  return origResolve.call(this, request, parent, ...rest);
};
const compilerOptions = {
  module: 'CommonJS',
  target: 'ES2022',
  esModuleInterop: true,
  sourceMap: false,
  inlineSourceMap: true,
};
const cacheDir = path.join(root, 'node_modules', '.cache', 'ts-register');
const cacheSalt = JSON.stringify([require('typescript/package.json').version, compilerOptions]);
let ts; // loaded on the first cache miss only (its loading alone takes a quarter of a second)
function transpile(src, filename) {
  const key = crypto
    .createHash('sha256')
    .update(cacheSalt)
    .update('\0')
    .update(filename)
    .update('\0')
    .update(src);
  const cached = path.join(cacheDir, `${key.digest('hex')}.js`);
  try {
    return fs.readFileSync(cached, 'utf8');
  } catch {
    /* not cached yet */
  }
  ts ??= require('typescript');
  const { options } = ts.convertCompilerOptionsFromJson(compilerOptions, root);
  const out = ts.transpileModule(src, { fileName: filename, compilerOptions: options }).outputText;
  try {
    // Another process may write the same entry at once: each writes its own file, then renames.
    fs.mkdirSync(cacheDir, { recursive: true });
    const tmp = `${cached}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, out);
    fs.renameSync(tmp, cached);
  } catch {
    /* a read-only or full disk: run uncached */
  }
  return out;
}
require.extensions['.ts'] = function (module, filename) {
  module._compile(transpile(fs.readFileSync(filename, 'utf8'), filename), filename);
};
