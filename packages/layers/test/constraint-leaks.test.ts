// A decomposed layer with a kernelConstraint or biasConstraint frees what its constraints return:
// tfjs 4.22's LayerVariable.write keeps no reference to a constraint's output, so each write of a
// constrained weight (every load of a saved model, setWeights) left a tensor allocated for good.
// Loading and disposing a model leaves tf.memory().numTensors where it was. On cpu and on wasm.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '@normprune/runtime';
import { decomposedConv1d, decomposedConv2d, decomposedDense } from '../src/index.js';

const constrained = { kernelConstraint: 'maxNorm', biasConstraint: 'nonNeg' } as const;

const models: [string, () => tfl.Sequential, number[]][] = [
  [
    'DecomposedDense',
    () => tfl.sequential({ layers: [decomposedDense({ inputShape: [4], units: 3, ...constrained })] }),
    [2, 4],
  ],
  [
    'DecomposedConv1D',
    () =>
      tfl.sequential({
        layers: [decomposedConv1d({ inputShape: [5, 2], filters: 3, kernelSize: 2, ...constrained })],
      }),
    [2, 5, 2],
  ],
  [
    'DecomposedConv2D',
    () =>
      tfl.sequential({
        layers: [
          decomposedConv2d({
            inputShape: [4, 4, 2],
            filters: 3,
            kernelSize: 2,
            granularity: 'filter',
            ...constrained,
          }),
        ],
      }),
    [2, 4, 4, 2],
  ],
];

describe.each([
  ['cpu', async () => void (await tf.setBackend('cpu'))],
  ['wasm', async () => void (await initBackend({ prefer: 'wasm', quiet: true }))],
])('on %s', (_, init) => {
  beforeAll(init);

  it.each(models)(
    '%s: loading a saved model and disposing it leaves nothing behind',
    async (_, make, shape) => {
      const model = make();
      let artifacts: tf.io.ModelArtifacts | undefined;
      await model.save(
        tf.io.withSaveHandler(async (a) => ((artifacts = a), { modelArtifactsInfo: {} as never })),
      );
      const x = tf.randomNormal(shape);
      const expected = tf.tidy(() => Array.from((model.predict(x) as tf.Tensor).dataSync()));
      const before = tf.memory().numTensors;
      for (let i = 0; i < 2; i++) {
        const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts!));
        // Loaded with the weights written, constraints applied: the same outputs.
        const out = tf.tidy(() => Array.from((loaded.predict(x) as tf.Tensor).dataSync()));
        expect(Math.max(...out.map((v, j) => Math.abs(v - expected[j])))).toBeLessThan(1e-5);
        loaded.dispose();
        // tfjs kept the kernel constraint's and the bias constraint's outputs: 2 tensors per load.
        expect(tf.memory().numTensors).toBe(before);
      }
      x.dispose();
      model.dispose();
    },
  );

  it.each(models)('%s: a model written through setWeights frees everything on dispose', (_, make, shape) => {
    const before = tf.memory().numTensors;
    const model = make();
    tf.tidy(() => void model.predict(tf.zeros(shape)));
    const plain = model.getWeights().map((w) => w.clone());
    model.setWeights(plain);
    tf.dispose(plain);
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
