// The published package, as a user installs it: npm pack of prox and the
// layers package it depends on, npm install into an empty project (offline)
// next to tfjs, then require() and import() it there.
import * as path from 'node:path';
import { packAndInstall, PackedProject, runInProject } from '../../../tools/testing/pack.js';

const body = `
await tf.setBackend('cpu');
const model = tfl.sequential({
  layers: [
    layers.decomposedDense({ inputShape: [6], units: 12, activation: 'relu' }),
    layers.decomposedDense({ units: 1 }),
  ],
});
const optimizer = new prox.ProximalSGD({ learningRate: 0.05, lambda: 2, magnitudes: layers.magnitudes(model) });
model.compile({ optimizer, loss: 'meanSquaredError' });
const xs = tf.randomNormal([64, 6], 0, 1, 'float32', 2);
const ys = tf.slice(xs, [0, 0], [-1, 1]);
// The first epoch creates the optimiser's state; after it the count stays flat.
await model.fit(xs, ys, { epochs: 1, batchSize: 16, verbose: 0 });
const before = tf.memory().numTensors;
await model.fit(xs, ys, { epochs: 4, batchSize: 16, verbose: 0 });
const leaked = tf.memory().numTensors - before;
const g = Array.from(layers.magnitudes(model)[0].magnitude.dataSync());
console.log(JSON.stringify({
  isProximal: optimizer instanceof prox.ProximalSGD && optimizer instanceof tf.Optimizer,
  nonnegative: g.every((v) => v >= 0),
  exactZeros: g.some((v) => v === 0),
  threshold: Array.from(prox.nonnegSoftThreshold(tf.tensor([-1, 0.2, 3]), 0.5).dataSync()),
  leaked,
}));
`;

const expected = { isProximal: true, nonnegative: true, exactZeros: true, threshold: [0, 0, 2.5], leaked: 0 };

const cjs = `
const tf = require('@tensorflow/tfjs-core');
const tfl = require('@tensorflow/tfjs-layers');
require('@tensorflow/tfjs-backend-cpu');
const layers = require('@normprune/layers');
const prox = require('@normprune/prox');
(async () => { ${body} })().catch((e) => { console.error(e); process.exit(1); });
`;

const esm = `
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import * as layers from '@normprune/layers';
import * as prox from '@normprune/prox';
${body}
`;

// Both builds in one process (a CommonJS dependency beside an ES module app): an optimiser of one
// is a ProximalOptimizer to the other, so the other's SparsityCallback finds and drives it.
const dual = `
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import * as layers from '@normprune/layers';
const cjs = createRequire(import.meta.url)('@normprune/prox');
const esm = await import('@normprune/prox');
await tf.setBackend('cpu');
const model = tfl.sequential({
  layers: [
    layers.decomposedDense({ inputShape: [6], units: 12, activation: 'relu' }),
    layers.decomposedDense({ units: 1 }),
  ],
});
const optimizer = new cjs.ProximalSGD({ learningRate: 0.05, lambda: 2, magnitudes: model });
model.compile({ optimizer, loss: 'meanSquaredError' });
const xs = tf.randomNormal([64, 6], 0, 1, 'float32', 2);
const ys = tf.slice(xs, [0, 0], [-1, 1]);
const warnings = [];
console.warn = (...a) => warnings.push(a.join(' '));
await model.fit(xs, ys, { epochs: 2, batchSize: 16, verbose: 0, callbacks: [new esm.SparsityCallback()] });
console.log(JSON.stringify({
  twoCopies: cjs.ProximalSGD !== esm.ProximalSGD,
  acrossBuilds: optimizer instanceof esm.ProximalSGD && optimizer instanceof esm.ProximalOptimizer,
  otherClassRefused: !(optimizer instanceof esm.ProximalAdam),
  plainRefused: !(new tf.SGDOptimizer(0.1) instanceof esm.ProximalOptimizer) && !({} instanceof cjs.ProximalSGD),
  markHidden: Object.keys(optimizer).every((k) => !k.includes('normprune')),
  epochsCompleted: optimizer.epochsCompleted,
  warnings,
}));
`;

describe('@normprune/prox packed and installed', () => {
  let project: PackedProject;

  beforeAll(async () => {
    const packages = path.join(__dirname, '..', '..');
    project = await packAndInstall([path.join(packages, 'prox'), path.join(packages, 'layers')], {
      deps: ['@tensorflow/tfjs-core', '@tensorflow/tfjs-layers', '@tensorflow/tfjs-backend-cpu'],
    });
  });

  afterAll(() => project?.cleanup());

  it('works through require(): proximal training reaches exact zeros', () => {
    expect(JSON.parse(runInProject(project.dir, 'check.cjs', cjs))).toEqual(expected);
  });

  it('works through import()', () => {
    expect(JSON.parse(runInProject(project.dir, 'check.mjs', esm))).toEqual(expected);
  });

  it("drives an optimiser of its CommonJS build with its ES module build's SparsityCallback", () => {
    expect(JSON.parse(runInProject(project.dir, 'dual.mjs', dual))).toEqual({
      twoCopies: true,
      acrossBuilds: true,
      otherClassRefused: true,
      plainRefused: true,
      markHidden: true,
      epochsCompleted: 2,
      warnings: [],
    });
  });
});
