// The published package, as a user installs it: npm pack of surgery and the
// packages it depends on (layers, runtime), npm install into an empty project
// (offline) next to tfjs, then require() and import() it there.
import * as path from 'node:path';
import { packAndInstall, PackedProject, runInProject } from '../../../tools/testing/pack.js';

const body = `
await tf.setBackend('cpu');
const plain = tfl.sequential({
  layers: [
    tfl.layers.dense({ inputShape: [10], units: 8, activation: 'relu' }),
    tfl.layers.dense({ units: 3 }),
  ],
});
const model = layers.decompose(plain);
const g = layers.magnitudes(model)[0];
g.magnitude.assign(tf.tensor([1, 0, 1, 0, 0, 1, 1, 0]));
const { model: pruned, report } = surgery.prune(model);
const x = tf.randomNormal([4, 10], 0, 1, 'float32', 3);
const diff = tf.max(tf.abs(tf.sub(model.predict(x), pruned.predict(x)))).dataSync()[0];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'npsurgery-packed-'));
try {
  await surgery.exportModel(pruned, dir, { format: 'tfjs' });
  const loaded = await tfl.loadLayersModel(runtime.fileSystem(dir));
  const reloadDiff = tf.max(tf.abs(tf.sub(loaded.predict(x), pruned.predict(x)))).dataSync()[0];
  console.log(JSON.stringify({
    units: pruned.layers.map((l) => l.getConfig().units),
    compressionPositive: report.compression > 0,
    exact: diff < 1e-5 && reloadDiff === 0,
    classes: loaded.layers.map((l) => l.getClassName()),
  }));
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
`;

const expected = { units: [4, 3], compressionPositive: true, exact: true, classes: ['Dense', 'Dense'] };

const cjs = `
const fs = require('node:fs'); const os = require('node:os'); const path = require('node:path');
const tf = require('@tensorflow/tfjs-core');
const tfl = require('@tensorflow/tfjs-layers');
require('@tensorflow/tfjs-backend-cpu');
const layers = require('@normprune/layers');
const runtime = require('@normprune/runtime');
const surgery = require('@normprune/surgery');
(async () => { ${body} })().catch((e) => { console.error(e); process.exit(1); });
`;

const esm = `
import fs from 'node:fs'; import os from 'node:os'; import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import * as layers from '@normprune/layers';
import * as runtime from '@normprune/runtime';
import * as surgery from '@normprune/surgery';
${body}
`;

describe('@normprune/surgery packed and installed', () => {
  let project: PackedProject;

  beforeAll(async () => {
    const packages = path.join(__dirname, '..', '..');
    project = await packAndInstall(
      ['surgery', 'layers', 'runtime'].map((p) => path.join(packages, p)),
      { deps: ['@tensorflow/tfjs-core', '@tensorflow/tfjs-layers', '@tensorflow/tfjs-backend-cpu'] },
    );
  });

  afterAll(() => project?.cleanup());

  it('works through require(): decompose, prune exactly, export, load in plain tfjs', () => {
    expect(JSON.parse(runInProject(project.dir, 'check.cjs', cjs))).toEqual(expected);
  });

  it('works through import()', () => {
    expect(JSON.parse(runInProject(project.dir, 'check.mjs', esm))).toEqual(expected);
  });
});
