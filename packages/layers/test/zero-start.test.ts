// A decomposed layer built from scratch whose kernel initializer gives zeros (the zero-initialised
// head of fine-tuning recipes): a group whose direction and magnitude are both zero gets no
// gradient, so its kernel could never train, where a plain layer's would. The layer says so at its
// first call (once its weights are what they will train from: loaded, decomposed or given), and
// names the way to start at a zero kernel that trains.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { decompose, decomposedConv2d, decomposedDense, decomposedDepthwiseConv2d } from '../src/index.js';
import { randn, useCpu } from './helpers.js';
import { saveInMemory } from '../../../tools/testing/memory-io.js';

beforeAll(useCpu);

let warn: jest.SpyInstance;
beforeEach(() => {
  warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
});
afterEach(() => warn.mockRestore());

const cases = [
  {
    what: "DecomposedDense 'output'",
    make: (o: object) => decomposedDense({ units: 3, name: 'head', ...o }),
    input: [6, 4],
    cls: 'DecomposedDense',
  },
  {
    what: "DecomposedDense 'input', rank-3 input",
    make: (o: object) => decomposedDense({ units: 2, granularity: 'input', name: 'head', ...o }),
    input: [4, 3, 5],
    cls: 'DecomposedDense',
  },
  {
    what: "DecomposedConv2D 'kernel'",
    make: (o: object) => decomposedConv2d({ filters: 2, kernelSize: 3, name: 'head', ...o }),
    input: [2, 5, 5, 3],
    cls: 'DecomposedConv2D',
  },
  {
    what: "DecomposedConv2D 'filter'",
    make: (o: object) =>
      decomposedConv2d({ filters: 2, kernelSize: [2, 3], granularity: 'filter', name: 'head', ...o }),
    input: [2, 4, 5, 2],
    cls: 'DecomposedConv2D',
  },
  // A DepthwiseConv2D's kernel takes depthwiseInitializer (kernelInitializer is refused).
  {
    what: "DecomposedDepthwiseConv2D 'kernel'",
    make: (o: object) => decomposedDepthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, name: 'head', ...o }),
    input: [2, 5, 5, 3],
    cls: 'DecomposedDepthwiseConv2D',
    option: 'depthwiseInitializer',
  },
  {
    what: "DecomposedDepthwiseConv2D 'filter'",
    make: (o: object) =>
      decomposedDepthwiseConv2d({ kernelSize: [2, 3], granularity: 'filter', name: 'head', ...o }),
    input: [2, 4, 5, 2],
    cls: 'DecomposedDepthwiseConv2D',
    option: 'depthwiseInitializer',
  },
];

/** The kernel gradient of sum(layer(x) * r), and the layer's weights. */
function kernelGradient(layer: tfl.layers.Layer, input: number[]): number[] {
  const x = randn(input, 1);
  const r = tf.tidy(() => randn((layer.apply(x) as tf.Tensor).shape, 2));
  const vars = layer.trainableWeights.slice(0, 2).map((w) => w.read() as tf.Variable);
  const { value, grads } = tf.variableGrads(
    () => tf.sum(tf.mul(layer.apply(x) as tf.Tensor, r)) as tf.Scalar,
    vars,
  );
  const size = vars.map((v) => tf.tidy(() => tf.max(tf.abs(grads[v.name])).dataSync()[0]));
  tf.dispose([x, r, value, ...Object.values(grads)]);
  return size;
}

describe.each(cases)(
  '$what built with a zero kernel initializer',
  ({ make, input, cls, option = 'kernelInitializer' }) => {
    it('gets no gradient for its direction or magnitude, and warns once, at its first call, naming the way out', () => {
      const layer = make({ [option]: 'zeros' });
      layer.build(input);
      expect(warn).not.toHaveBeenCalled();
      expect(kernelGradient(layer, input)).toEqual([0, 0]);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(warn.mock.calls[0][0]).toBe(
        `${cls} 'head': its direction and magnitude are all zero (a zero ${option}?), and a group whose ` +
          'direction and magnitude are both zero gets no gradient: this layer will never train its kernel (a plain ' +
          `layer would). To start at a zero kernel that trains, keep a random ${option} and give magnitudeInitializer: 'zeros'`,
      );
      for (const w of layer.weights) w.dispose();
    });

    // Also what a layer the penalty pruned whole looks like: zero magnitudes on unit directions.
    it("with a random kernel initializer and magnitudeInitializer 'zeros' starts at a zero kernel, trains, and does not warn", () => {
      const layer = make({ magnitudeInitializer: 'zeros' });
      layer.build(input);
      const kernel = (layer as unknown as { effectiveKernel(): tf.Tensor }).effectiveKernel();
      expect(Array.from(kernel.dataSync()).every((v) => v === 0)).toBe(true);
      kernel.dispose();
      const [, magnitudeGradient] = kernelGradient(layer, input);
      expect(magnitudeGradient).toBeGreaterThan(0);
      expect(warn).not.toHaveBeenCalled();
      for (const w of layer.weights) w.dispose();
    });
  },
);

describe('no warning where the zeros are not what the layer trains from', () => {
  it('a layer given its weights, and a loaded model, the layer inside a nested one', async () => {
    const x = tf.ones([2, 4]);
    const w = [tf.ones([4, 3]), tf.zeros([3])];
    const given = decomposedDense({ inputShape: [4], units: 3, kernelInitializer: 'zeros', weights: w });
    const inner = tfl.sequential({ layers: [given] });
    const input = tfl.input({ shape: [4] });
    const model = tfl.model({ inputs: input, outputs: inner.apply(input) as tfl.SymbolicTensor });
    const saved = await saveInMemory(model);
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(saved));
    const [y1, y2] = [model.predict(x) as tf.Tensor, loaded.predict(x) as tf.Tensor];
    expect(Array.from(y2.dataSync())).toEqual(Array.from(y1.dataSync()));
    expect(warn).not.toHaveBeenCalled();
    tf.dispose([x, y1, y2, ...w]);
    [model, loaded].forEach((m) => m.dispose());
  });

  it('decompose() of a zero kernel warns in its own words, and the layer again at its first call', () => {
    const plain = tfl.sequential({
      layers: [tfl.layers.dense({ inputShape: [4], units: 3, kernelInitializer: 'zeros', name: 'zero' })],
    });
    const d = decompose(plain);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0][0]).toMatch(/^decompose: every group of layer 'zero' is zero/);
    tf.dispose(d.predict(tf.ones([1, 4])) as tf.Tensor);
    expect(warn).toHaveBeenCalledTimes(2);
    expect(warn.mock.calls[1][0]).toMatch(
      /^DecomposedDense 'zero': its direction and magnitude are all zero/,
    );
    [plain, d].forEach((m) => m.dispose());
  });
});
