// An application can hold two copies of this package (its ESM and CommonJS
// builds, or two installs). A decomposed layer built by one copy must be
// recognised by the other, which `instanceof` cannot do.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as layers from '../src/index.js';
import { DecomposedConv2D, DecomposedDense, fold, isDecomposed, magnitudes } from '../src/index.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';
import { randn, scaledError, useCpu } from './helpers.js';

beforeAll(useCpu);

/** A second copy of the package's modules, sharing this copy's TensorFlow.js. */
function secondCopy(): typeof layers {
  let copy: typeof layers | undefined;
  jest.isolateModules(() => {
    jest.doMock('@tensorflow/tfjs-core', () => tf);
    jest.doMock('@tensorflow/tfjs-layers', () => tfl);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    copy = require('../src/index') as typeof layers;
  });
  return copy!;
}

const other = secondCopy();

function expectClose(a: tfl.LayersModel, b: tfl.LayersModel, x: tf.Tensor): void {
  const [ya, yb] = [a.predict(x) as tf.Tensor, b.predict(x) as tf.Tensor];
  expect(scaledError(ya, yb)).toBeLessThan(1e-5);
  tf.dispose([ya, yb]);
}

describe('decomposed layers from another copy of the package', () => {
  it('are other classes, yet isDecomposed recognises them both ways; plain layers stay unrecognised', () => {
    expect(other.DecomposedDense).not.toBe(DecomposedDense);
    const dense = other.decomposedDense({ units: 3, inputShape: [4] });
    const conv = other.decomposedConv2d({ filters: 2, kernelSize: 3, inputShape: [5, 5, 1] });
    expect(dense).not.toBeInstanceOf(DecomposedDense);
    expect(conv).not.toBeInstanceOf(DecomposedConv2D);
    expect(isDecomposed(dense)).toBe(true);
    expect(isDecomposed(conv)).toBe(true);
    expect(other.isDecomposed(layers.decomposedDense({ units: 2 }))).toBe(true);
    expect(isDecomposed(tfl.layers.dense({ units: 3 }))).toBe(false);
    expect(isDecomposed(tfl.layers.conv2d({ filters: 2, kernelSize: 3 }))).toBe(false);
  });

  it.each([
    // [input shape, conv granularity, dense granularity, strides, padding]
    [[6, 6, 1], 'kernel', 'output', 1, 'valid'],
    [[7, 5, 3], 'filter', 'input', 2, 'same'],
    [[8, 8, 2], 'kernel', 'input', 2, 'valid'],
  ] as const)(
    'magnitudes and fold of this copy handle them (input %j, %s / %s, strides %d, %s)',
    async (inputShape, conv2d, dense, strides, padding) => {
      const model = tfl.sequential({
        layers: [
          other.decomposedConv2d({
            inputShape: [...inputShape],
            filters: 4,
            kernelSize: 3,
            strides,
            padding,
            activation: 'relu',
            granularity: conv2d,
            name: 'c',
          }),
          tfl.layers.flatten(),
          other.decomposedDense({ units: 5, granularity: dense, name: 'd' }),
        ],
      });
      const info = magnitudes(model);
      expect(info.map((m) => [m.layerName, m.granularity])).toEqual([
        ['c', conv2d],
        ['d', dense],
      ]);
      const cin = inputShape[2];
      expect(info[0].paramsPerGroup).toBe(conv2d === 'kernel' ? 9 : 9 * cin);
      const flat = model.layers[1].outputShape[1] as number;
      expect(info[1].paramsPerGroup).toBe(dense === 'output' ? flat : 5);
      const x = randn([2, ...inputShape], 3);
      await expectNoLeak(() => {
        const folded = fold(model);
        expect(folded.layers.map((l) => l.getClassName())).toEqual(['Conv2D', 'Flatten', 'Dense']);
        expectClose(model, folded, x);
        folded.dispose();
      });
      x.dispose();
      model.dispose();
    },
  );
});
