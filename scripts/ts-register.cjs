// Lets `node --require scripts/ts-register.cjs file.ts` run TypeScript directly
// (benchmarks, CLI in development) by transpiling with the workspace's
// TypeScript; @normprune/* imports resolve to sibling sources like in tests.
const ts = require('typescript');
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
require.extensions['.ts'] = function (module, filename) {
  const src = fs.readFileSync(filename, 'utf8');
  const out = ts.transpileModule(src, {
    fileName: filename,
    compilerOptions: {
      module: ts.ModuleKind.CommonJS,
      target: ts.ScriptTarget.ES2022,
      esModuleInterop: true,
      sourceMap: false,
      inlineSourceMap: true,
    },
  });
  module._compile(out.outputText, filename);
};
