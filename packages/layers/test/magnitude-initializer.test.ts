// A bad magnitudeInitializer is refused naming the option: tfjs's own words
// ('Unknown initializer: nope', 'Shape must be at least 2D.') name neither it nor
// the weight, and the layer takes a kernel and a bias initializer too.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { decomposedConv2d, decomposedDense } from '../src/index.js';
import { useCpu } from './helpers.js';

beforeAll(useCpu);

describe('magnitudeInitializer', () => {
  it('an unknown identifier or a non-initializer is refused at construction, naming the option and the value', () => {
    expect(() => decomposedDense({ units: 2, magnitudeInitializer: 'nope' as never })).toThrow(
      /^DecomposedDense magnitudeInitializer must be an initializer \(an identifier such as 'ones' or 'zeros', .*\), got "nope" \(a string\): Unknown initializer: nope/,
    );
    expect(() => decomposedConv2d({ filters: 2, kernelSize: 2, magnitudeInitializer: 3 as never })).toThrow(
      /^DecomposedConv2D magnitudeInitializer must be an initializer .*, got 3: /,
    );
  });

  it.each(['identity', 'orthogonal'])(
    "'%s', which fills matrices only, is refused at build naming the layer, the option and the magnitude's shape",
    (init) => {
      const dense = decomposedDense({ units: 3, name: 'fc', magnitudeInitializer: init as never });
      expect(() => dense.apply(tf.ones([2, 4]))).toThrow(
        /^DecomposedDense 'fc': its magnitudeInitializer cannot initialise the magnitude, of shape \[3\]: .*\(give one that fills any shape, such as 'ones' or 'zeros'\)$/,
      );
      const conv = decomposedConv2d({
        filters: 3,
        kernelSize: 2,
        name: 'cv',
        magnitudeInitializer: init as never,
      });
      expect(() => conv.apply(tf.ones([1, 3, 3, 2]))).toThrow(
        /^DecomposedConv2D 'cv': its magnitudeInitializer cannot initialise the magnitude, of shape \[2,3\]: /,
      );
    },
  );

  it('a valid one (identifier, config, instance) still works and round-trips', () => {
    for (const spec of [
      'ones',
      { className: 'Constant', config: { value: 2 } },
      tfl.initializers.constant({ value: 3 }),
    ]) {
      const layer = decomposedDense({ units: 2, magnitudeInitializer: spec as never });
      layer.apply(tf.ones([1, 3]));
      const again = new (layer.constructor as new (a: unknown) => tfl.layers.Layer)(layer.getConfig());
      again.apply(tf.ones([1, 3]));
      expect(again.getWeights()[1].arraySync()).toEqual(layer.getWeights()[1].arraySync());
    }
  });
});
