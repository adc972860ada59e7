// The published package, as a user installs it: npm pack, npm install into an
// empty project (offline) next to tfjs, then require() and import() it there.
import * as path from 'node:path';
import {
  errorAcrossBuilds,
  HOLDS_ACROSS_BUILDS,
  packAndInstall,
  PackedProject,
  runInProject,
} from '../../../tools/testing/pack.js';

const body = `
await tf.setBackend('cpu');
const plain = tfl.sequential({
  layers: [
    tfl.layers.conv2d({ inputShape: [8, 8, 2], filters: 3, kernelSize: 3, activation: 'relu' }),
    tfl.layers.flatten(),
    tfl.layers.dense({ units: 4 }),
  ],
});
const x = tf.randomNormal([2, 8, 8, 2], 0, 1, 'float32', 1);
const decomposed = layers.decompose(plain, { granularity: { conv2d: 'filter' } });
const folded = layers.fold(decomposed);
const restored = await tfl.models.modelFromJSON(JSON.parse(JSON.stringify(decomposed.toJSON(null, false))));
restored.setWeights(decomposed.getWeights());
const y = plain.predict(x);
const diff = (m) => tf.max(tf.abs(tf.sub(m.predict(x), y))).dataSync()[0];
const bad = tfl.sequential({ layers: [tfl.layers.dense({ inputShape: [2], units: 2, name: 'd' })] });
bad.layers[0].setWeights([tf.tensor2d([[1, NaN], [2, 3]]), tf.zeros([2])]);
let refusal;
try {
  layers.decompose(bad);
} catch (e) {
  refusal = [e instanceof layers.NonFiniteWeightError, e instanceof Error, e.name, e.code, e.weight, e.index];
}
console.log(JSON.stringify({
  classes: decomposed.layers.map((l) => l.getClassName()),
  folded: folded.layers.map((l) => l.getClassName()),
  groups: layers.magnitudes(decomposed).map((m) => [m.layerName, m.granularity, m.groups]),
  close: [diff(decomposed), diff(folded), diff(restored)].every((d) => d < 1e-5),
  refusal,
}));
`;

const expected = {
  classes: ['DecomposedConv2D', 'Flatten', 'DecomposedDense'],
  folded: ['Conv2D', 'Flatten', 'Dense'],
  groups: [
    [expect.any(String), 'filter', 3],
    [expect.any(String), 'output', 4],
  ],
  close: true,
  // The typed refusal is the exported class in each module format (instanceof holds).
  refusal: [true, true, 'NonFiniteWeightError', 'non-finite', 'd/kernel', [0, 1]],
};

const cjs = `
const tf = require('@tensorflow/tfjs-core');
const tfl = require('@tensorflow/tfjs-layers');
require('@tensorflow/tfjs-backend-cpu');
const layers = require('@normprune/layers');
(async () => { ${body} })().catch((e) => { console.error(e); process.exit(1); });
`;

const esm = `
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import * as layers from '@normprune/layers';
${body}
`;

describe('@normprune/layers packed and installed', () => {
  let project: PackedProject;

  beforeAll(async () => {
    project = await packAndInstall([path.join(__dirname, '..')], {
      deps: ['@tensorflow/tfjs-core', '@tensorflow/tfjs-layers', '@tensorflow/tfjs-backend-cpu'],
    });
  });

  afterAll(() => project?.cleanup());

  it('works through require(): decompose, serialise, fold, magnitudes, NonFiniteWeightError', () => {
    expect(JSON.parse(runInProject(project.dir, 'check.cjs', cjs))).toEqual(expected);
  });

  it('works through import()', () => {
    expect(JSON.parse(runInProject(project.dir, 'check.mjs', esm))).toEqual(expected);
  });

  it('NonFiniteWeightError answers instanceof across its CommonJS and ES module builds loaded in one process', () => {
    expect(
      errorAcrossBuilds(
        project.dir,
        '@normprune/layers',
        'NonFiniteWeightError',
        `[{ layer: 'fc', className: 'Dense', weight: 'fc/kernel', count: 1, index: [0, 0], value: NaN }, 'decompose', 'retrain']`,
      ),
    ).toEqual(HOLDS_ACROSS_BUILDS);
  });
});
