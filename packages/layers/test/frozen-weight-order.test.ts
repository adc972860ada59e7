// A decomposed layer keeps its weights' order, [direction, magnitude, bias], when one of them is
// frozen: tfjs lists trainable weights first, so `layer.magnitude.trainable = false` (training the
// directions alone) made getWeights() / setWeights() swap the magnitude and the bias.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { decompose, decomposedConv2d, decomposedDense } from '../src/index.js';
import { randn, useCpu } from './helpers.js';

beforeAll(useCpu);

const read = (v: tfl.LayerVariable | null) => Array.from(v!.read().dataSync());

describe.each(['output', 'input'] as const)("DecomposedDense '%s' with a frozen weight", (granularity) => {
  const make = () => {
    const layer = decomposedDense({ units: 3, inputShape: [3], granularity });
    tfl.sequential({ layers: [layer] });
    return layer;
  };

  it('getWeights() and setWeights() of its own form keep [direction, magnitude, bias]', () => {
    const layer = make();
    layer.magnitude!.trainable = false;
    expect(layer.getWeights().map((w) => w.shape)).toEqual([[3, 3], [3], [3]]);
    expect(layer.weights.map((w) => w.originalName.split('/')[1])).toEqual([
      'direction',
      'magnitude',
      'bias',
    ]);
    layer.setWeights([tf.ones([3, 3]), tf.tensor1d([1, 2, 3]), tf.tensor1d([7, 8, 9])]);
    expect(read(layer.magnitude)).toEqual([1, 2, 3]);
    expect(read(layer.bias)).toEqual([7, 8, 9]);
    const [, magnitude, bias] = layer.getWeights();
    expect(Array.from(magnitude.dataSync())).toEqual([1, 2, 3]);
    expect(Array.from(bias.dataSync())).toEqual([7, 8, 9]);
    // Only the trainable ones train.
    expect(layer.trainableWeights.map((w) => w.originalName.split('/')[1])).toEqual(['direction', 'bias']);
  });

  it("setWeights() of the plain layer's [kernel, bias] sets the bias as the bias", () => {
    const layer = make();
    layer.magnitude!.trainable = false;
    layer.setWeights([tf.ones([3, 3]), tf.tensor1d([7, 8, 9])]);
    expect(read(layer.bias)).toEqual([7, 8, 9]);
    expect(read(layer.magnitude)[0]).toBeCloseTo(Math.sqrt(3), 5);
  });

  it('decompose() of a model holding it copies magnitude and bias to their places', () => {
    const layer = make();
    layer.setWeights([randn([3, 3], 1), tf.tensor1d([1, 2, 3]), tf.tensor1d([7, 8, 9])]);
    const model = tfl.sequential({ layers: [layer] });
    layer.magnitude!.trainable = false;
    const copy = decompose(model);
    expect(read((copy.layers[0] as typeof layer).magnitude)).toEqual([1, 2, 3]);
    expect(read((copy.layers[0] as typeof layer).bias)).toEqual([7, 8, 9]);
  });
});

it('DecomposedConv2D with a frozen direction applies its kernel constraint to the direction written with it', () => {
  const layer = decomposedConv2d({
    filters: 2,
    kernelSize: 1,
    inputShape: [2, 2, 2],
    granularity: 'filter',
    kernelConstraint: tfl.constraints.maxNorm({ maxValue: 1, axis: 2 }),
  });
  tfl.sequential({ layers: [layer] });
  layer.direction!.trainable = false;
  expect(layer.weights.map((w) => w.originalName.split('/')[1])).toEqual(['direction', 'magnitude', 'bias']);
  // A kernel of norm 2 over each filter's input channels: the constraint scales it to norm 1.
  layer.setWeights([tf.fill([1, 1, 2, 2], Math.SQRT2), tf.zeros([2])]);
  const kernel = layer.effectiveKernel();
  for (const v of kernel.dataSync()) expect(v).toBeCloseTo(Math.SQRT1_2, 5);
});
