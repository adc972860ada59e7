#!/usr/bin/env node
// Launcher of the normprune CLI: runs the built CommonJS copy (npm run build).
'use strict';
const path = require('path');
const fs = require('fs');
const entry = path.join(__dirname, '..', 'dist', 'cjs', 'cli-main.js');
if (!fs.existsSync(entry)) {
  process.stderr.write(
    'normprune: not built yet; run `npm run build` in apps/experiments (or `npx nx run experiments:build`)\n',
  );
  process.exit(1);
}

// Every @normprune package the CLI loads must load the CLI's copies of tfjs-core and tfjs-layers: a
// model, a layer class or a backend one copy registers is not the other's. `npm install -g` of the
// packages' tarballs gives each global package its own copies (and its own peers): a tiny lenet-5
// run there printed "Platform node has already been set" five times, found neither the wasm
// backend nor the bundled MNIST, and with --data-dir failed at decomposition with "Cannot read
// properties of undefined (reading 'forEach')". Checked before anything loads tfjs.
const home = path.join(__dirname, '..');
/** The folder of package `name` as resolved from folder `from` (its real path); undefined if not found. */
const packageDir = (name, from) => {
  let dir;
  try {
    dir = path.dirname(fs.realpathSync(require.resolve(name, { paths: [from] })));
  } catch {
    return undefined; // not installed there: the load below says what is missing
  }
  // Up from its entry point (dist/cjs/index.js, whose folder may hold a package.json of its own).
  for (; path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    try {
      if (JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).name === name) return dir;
    } catch {
      /* no package.json here */
    }
  }
  return undefined;
};
for (const tfjs of ['@tensorflow/tfjs-core', '@tensorflow/tfjs-layers']) {
  const cliCopy = packageDir(tfjs, home);
  for (const name of ['datasets', 'layers', 'prox', 'runtime', 'surgery']) {
    const dir = packageDir(`@normprune/${name}`, home);
    const copy = dir && packageDir(tfjs, dir);
    if (cliCopy && copy && copy !== cliCopy) {
      process.stderr.write(
        `normprune: error: @normprune/${name} (${dir}) loads its own copy of ${tfjs} (${copy}), not the CLI's ` +
          `(${cliCopy}), and a model, layer class or backend one copy registers is not the other's: a run would ` +
          'fail half way. `npm install -g` of the tarballs does this: it installs each package with its own tfjs. ' +
          'Install them into one folder instead (npm install --prefix DIR normprune-*.tgz) and run ' +
          'DIR/node_modules/.bin/normprune\n',
      );
      process.exit(1);
    }
  }
}
require(entry);
