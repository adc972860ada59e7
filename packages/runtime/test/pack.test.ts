// The published package, as a user installs it: npm pack, npm install into an
// empty project (offline), then require() and import() it from Node there.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  errorAcrossBuilds,
  HOLDS_ACROSS_BUILDS,
  packAndInstall,
  PackedProject,
  runInProject,
} from '../../../tools/testing/pack.js';

const PKG = path.join(__dirname, '..');

// One script body for both module systems; only the imports differ.
const body = `
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-packed-'));
try {
  const cpu = await runtime.initBackend({ prefer: 'cpu', quiet: true });
  const model = tfl.sequential({ layers: [tfl.layers.dense({ inputShape: [3], units: 2, activation: 'relu' }), tfl.layers.dense({ units: 1 })] });
  model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
  const xs = tf.tensor2d([[0, 1, 2], [1, 0, 1], [2, 2, 0], [1, 1, 1]]);
  const ys = tf.tensor2d([[1], [0], [2], [1]]);
  await model.fit(xs, ys, { epochs: 3, verbose: 0 });
  await model.save(runtime.fileSystem(dir));
  const loaded = await tfl.loadLayersModel(runtime.fileSystem(dir));
  const a = Array.from(model.predict(xs).dataSync());
  const b = Array.from(loaded.predict(xs).dataSync());
  // The opt-in release: the same gradient bits, and the original method back after.
  const gf = (x) => tf.sum(tf.square(tf.relu(tf.matMul(x, tf.transpose(x)))));
  const g0 = tf.grad(gf)(xs).dataSync();
  const undo = runtime.releaseSavedTensorsDuringBackprop();
  const g1 = tf.grad(gf)(xs).dataSync();
  undo();
  const released = g0.length === 3 * 4 && g0.every((v, i) => Object.is(v, g1[i])) && !Object.hasOwn(tf.engine(), 'gradients');
  const auto = await runtime.initBackend({ quiet: true });
  console.log(JSON.stringify({
    exports: Object.keys(runtime).sort(),
    cpu: { backend: cpu.backend, tf: cpu.tfBackendName },
    files: fs.readdirSync(dir).sort(),
    same: a.length === 4 && a.every((v, i) => v === b[i]),
    released,
    auto: { backend: auto.backend, simd: auto.simd, trainingKernels: auto.trainingKernels, fallbacks: auto.fallbacks.map((f) => f.backend) },
    active: tf.getBackend(),
  }));
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
`;

const cjs = `
const fs = require('node:fs'); const os = require('node:os'); const path = require('node:path');
const tf = require('@tensorflow/tfjs-core');
const tfl = require('@tensorflow/tfjs-layers');
const runtime = require('@normprune/runtime');
console.error('resolved ' + require.resolve('@normprune/runtime'));
(async () => { ${body} })().catch((e) => { console.error(e); process.exit(1); });
`;

const esm = `
import fs from 'node:fs'; import os from 'node:os'; import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as runtime from '@normprune/runtime';
${body}
`;

const expected = {
  exports: [
    'ModelFileError',
    'backendEnvironmentProblem',
    'fileSystem',
    'initBackend',
    'isSaveFile',
    'killedSaveTemp',
    'makeDirs',
    'processGone',
    'registerWasmTrainingKernels',
    'releaseSavedTensorsDuringBackprop',
    'syncDir',
    'writeFileDurably',
  ],
  cpu: { backend: 'cpu', tf: 'cpu' },
  files: ['group1-shard1of1.bin', 'model.json'],
  same: true,
  released: true,
  // tfjs-node is never installed here; wasm must be found from the installed
  // package (the scripts run with another cwd), with its training kernels.
  auto: { backend: 'wasm', trainingKernels: true, fallbacks: ['node'] },
  active: 'wasm',
};

describe('@normprune/runtime packed and installed', () => {
  let project: PackedProject;

  beforeAll(async () => {
    project = await packAndInstall([PKG]);
  });

  afterAll(() => project?.cleanup());

  it('installs offline with only its tarball and the tfjs packages', () => {
    const installed = path.join(project.dir, 'node_modules', '@normprune', 'runtime');
    expect(fs.readdirSync(installed).sort()).toEqual(['LICENSE', 'README.md', 'dist', 'package.json', 'src']);
    expect(fs.existsSync(path.join(project.dir, 'node_modules', '@tensorflow', 'tfjs-node'))).toBe(false);
  });

  it('works through require()', () => {
    const out = JSON.parse(runInProject(project.dir, 'check.cjs', cjs));
    expect(out).toMatchObject(expected);
    expect(typeof out.auto.simd).toBe('boolean');
  });

  it('works through import()', () => {
    const out = JSON.parse(runInProject(project.dir, 'check.mjs', esm));
    expect(out).toMatchObject(expected);
  });

  it('ModelFileError answers instanceof across its CommonJS and ES module builds loaded in one process', () => {
    expect(
      errorAcrossBuilds(
        project.dir,
        '@normprune/runtime',
        'ModelFileError',
        `['missing', '/no/model.json', 'missing']`,
      ),
    ).toEqual(HOLDS_ACROSS_BUILDS);
  });

  it('serves the CommonJS build to require and the ES module build to import', () => {
    const out = runInProject(
      project.dir,
      'which.mjs',
      `import { createRequire } from 'node:module';
       console.log(createRequire(import.meta.url).resolve('@normprune/runtime'));
       console.log(import.meta.resolve('@normprune/runtime'));`,
    ).split('\n');
    expect(out[0]).toMatch(/node_modules[\\/]@normprune[\\/]runtime[\\/]dist[\\/]cjs[\\/]index\.js$/);
    expect(out[1]).toMatch(/node_modules\/@normprune\/runtime\/dist\/esm\/index\.js$/);
  });

  it('routes file:// strings once when both builds are loaded in one process', () => {
    const out = runInProject(
      project.dir,
      'both.mjs',
      `import { createRequire } from 'node:module';
       import fs from 'node:fs'; import os from 'node:os'; import path from 'node:path';
       import * as tf from '@tensorflow/tfjs-core';
       import * as tfl from '@tensorflow/tfjs-layers';
       import '@tensorflow/tfjs-backend-cpu';
       const cjs = createRequire(import.meta.url)('@normprune/runtime');
       const esm = await import('@normprune/runtime');
       await tf.setBackend('cpu');
       const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-packed-url-'));
       try {
         const model = tfl.sequential({ layers: [tfl.layers.dense({ inputShape: [3], units: 2 })] });
         await model.save('file://' + dir);
         const loaded = await tfl.loadLayersModel('file://' + path.join(dir, 'model.json'));
         const x = tf.tensor2d([[0, 1, 2], [1, 0, 1]]);
         const [a, b] = [model.predict(x).dataSync(), loaded.predict(x).dataSync()];
         console.log(JSON.stringify({
           twoCopies: cjs.fileSystem !== esm.fileSystem,
           handlers: [tf.io.getSaveHandlers('file://' + dir).length, tf.io.getLoadHandlers('file://' + dir).length],
           files: fs.readdirSync(dir).sort(),
           same: a.length === 4 && a.every((v, i) => v === b[i]),
         }));
       } finally {
         fs.rmSync(dir, { recursive: true, force: true });
       }`,
    );
    expect(JSON.parse(out)).toEqual({
      twoCopies: true,
      handlers: [1, 1],
      files: ['group1-shard1of1.bin', 'model.json'],
      same: true,
    });
  });

  it('falls back to linking the workspace tfjs packages when the npm cache lacks them', async () => {
    const emptyCache = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-empty-cache-'));
    const linked = await packAndInstall([PKG], { npmCache: emptyCache });
    try {
      expect(linked.mode).toBe('linked');
      const out = JSON.parse(runInProject(linked.dir, 'check.cjs', cjs));
      expect(out).toMatchObject(expected);
    } finally {
      linked.cleanup();
      fs.rmSync(emptyCache, { recursive: true, force: true });
    }
  });
});
