// Options objects with a key the function does not take are refused, naming the key, the one it
// likely misspells and the keys there are; a misspelled optional key would otherwise silently
// give its default (a typo in `granularity` would decompose at another granularity).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  closestKey,
  decompose,
  DecomposedConv1D,
  DecomposedConv2D,
  DecomposedDense,
  decomposedConv2d,
  decomposedDense,
  magnitudes,
  optionsProblem,
} from '../src/index.js';
import { useCpu } from './helpers.js';
import { saveInMemory } from '../../../tools/testing/memory-io.js';

beforeAll(useCpu);

function plain(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({ inputShape: [6, 6, 2], filters: 3, kernelSize: 3, name: 'c' }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: 4, name: 'd' }),
    ],
  });
}

describe('closestKey', () => {
  it.each([
    ['treshold', ['threshold'], 'threshold'],
    ['Threshold', ['threshold'], 'threshold'],
    ['unknownLayer', ['threshold', 'unknownLayers'], 'unknownLayers'],
    ['unknown_layers', ['threshold', 'unknownLayers'], 'unknownLayers'],
    ['formats', ['format', 'float16'], 'format'],
    ['flaot16', ['format', 'float16'], 'float16'],
    ['requestinit', ['requestInit', 'fetchFunc'], 'requestInit'],
    ['granularty', ['granularity', 'include', 'epsilon'], 'granularity'],
    ['conv2D', ['dense', 'conv2d'], 'conv2d'],
    ['fp16', ['format', 'float16'], undefined],
    ['dir', ['format', 'float16'], undefined],
  ])('%s among %j: %s', (word, keys, meant) => {
    expect(closestKey(word, keys)).toBe(meant);
  });
});

describe('optionsProblem', () => {
  const keys = ['lambda', 'epsilon'];
  it('is undefined for undefined, {} and known keys (also with undefined values)', () => {
    expect(optionsProblem(undefined, keys, '{ lambda: 1 }')).toBeUndefined();
    expect(optionsProblem({}, keys, '{ lambda: 1 }')).toBeUndefined();
    expect(optionsProblem({ lambda: 1, epsilon: undefined }, keys, '{ lambda: 1 }')).toBeUndefined();
  });
  it('names every unknown key, the likely one and the keys there are', () => {
    expect(optionsProblem({ lamda: 1, foo: 2 }, keys, '{ lambda: 1 }')).toBe(
      'unknown options `lamda` (did you mean `lambda`?), `foo`; the options are `lambda`, `epsilon`',
    );
  });
  it('refuses null values: only a key left out (or undefined) gives the default', () => {
    expect(optionsProblem({ lambda: null }, keys, '{ lambda: 1 }')).toBe(
      'option `lambda` is null: leave it out for the default, or give a value',
    );
    expect(optionsProblem({ lambda: null, epsilon: null }, keys, '{ lambda: 1 }')).toBe(
      'options `lambda`, `epsilon` are null: leave them out for the default, or give a value',
    );
    // An unknown key is named first.
    expect(optionsProblem({ lamda: null }, keys, '{ lambda: 1 }')).toMatch(/^unknown option `lamda`/);
  });
  it.each([null, 'lambda', 3, [1]])('refuses %p for the options object, showing an example', (v) => {
    expect(optionsProblem(v, keys, '{ lambda: 1 }')).toMatch(
      /^options must be an object such as \{ lambda: 1 \}, got /,
    );
  });
});

describe('decompose', () => {
  it.each([
    [
      { granularty: { dense: 'input' } },
      /decompose: unknown option `granularty` \(did you mean `granularity`\?\); the options are `granularity`, `include`, `epsilon`/,
    ],
    [{ includ: ['d'] }, /unknown option `includ` \(did you mean `include`\?\)/],
    [
      { granularity: { conv2D: 'filter' } },
      /decompose: granularity: unknown option `conv2D` \(did you mean `conv2d`\?\); the options are `dense`, `conv1d`, `conv2d`/,
    ],
    [{ granularity: { Dense: 'input' } }, /granularity: unknown option `Dense` \(did you mean `dense`\?\)/],
    [null, /decompose: options must be an object/],
  ])('refuses %j, naming the key and the one meant', (options, message) => {
    const m = plain();
    const before = tf.memory().numTensors;
    expect(() => decompose(m, options as never)).toThrow(message);
    expect(tf.memory().numTensors).toBe(before);
    m.dispose();
  });

  it('still takes every documented option, and granularity with either key unset', () => {
    const m = plain();
    const d = decompose(m, {
      granularity: { conv2d: 'filter', dense: undefined },
      include: ['c', 'd'],
      epsilon: 1e-6,
    });
    expect(magnitudes(d).map((i) => [i.layerName, i.granularity])).toEqual([
      ['c', 'filter'],
      ['d', 'output'],
    ]);
    d.dispose();
    m.dispose();
  });
});

// The factories and constructors of the decomposed layers refuse a key that is neither their own
// option nor an argument of the plain tfjs layer (Keras: "Keyword argument not understood"):
// tfjs ignores unknown keys, so `granularty: 'input'` would build the default granularity.
describe('decomposed layers', () => {
  // The arguments tfjs-layers 4.22 declares (dist/engine/topology.d.ts LayerArgs,
  // dist/layers/core.d.ts DenseLayerArgs, dist/layers/convolutional.d.ts BaseConvLayerArgs and
  // ConvLayerArgs), written out here apart from the source's list.
  const layerArgs = [
    'inputShape',
    'batchInputShape',
    'batchSize',
    'dtype',
    'name',
    'trainable',
    'weights',
    'inputDType',
  ];
  const kernelArgs = [
    'activation',
    'useBias',
    'kernelInitializer',
    'biasInitializer',
    'kernelConstraint',
    'biasConstraint',
    'kernelRegularizer',
    'biasRegularizer',
    'activityRegularizer',
  ];
  const denseArgs = [...layerArgs, ...kernelArgs, 'units', 'inputDim'];
  const convArgs = [
    ...layerArgs,
    ...kernelArgs,
    'filters',
    'kernelSize',
    'strides',
    'padding',
    'dataFormat',
    'dilationRate',
  ];
  const ours = ['granularity', 'epsilon', 'magnitudeInitializer'];

  it.each([
    [
      'decomposedDense',
      () => decomposedDense({ units: 4, granularty: 'input' } as never),
      /^DecomposedDense: unknown option `granularty` \(did you mean `granularity`\?\); the options are `granularity`, `epsilon`, `magnitudeInitializer` and those of tf\.layers\.dense: `inputShape`, .*`units`/,
    ],
    [
      'decomposedDense',
      () => decomposedDense({ units: 4, magnitudeInitialiser: 'zeros' } as never),
      /^DecomposedDense: unknown option `magnitudeInitialiser` \(did you mean `magnitudeInitializer`\?\)/,
    ],
    [
      'decomposedDense',
      () => decomposedDense({ units: 4, epsilion: 1e-3 } as never),
      /^DecomposedDense: unknown option `epsilion` \(did you mean `epsilon`\?\)/,
    ],
    [
      // Keras' spelling: tf.layers.dense ignores it and keeps the bias.
      'decomposedDense',
      () => decomposedDense({ units: 4, use_bias: false } as never),
      /^DecomposedDense: unknown option `use_bias` \(did you mean `useBias`\?\)/,
    ],
    [
      // An argument of the other layer kind.
      'decomposedDense',
      () => decomposedDense({ units: 4, filters: 2 } as never),
      /^DecomposedDense: unknown option `filters`; the options are/,
    ],
    [
      'new DecomposedDense',
      () => new DecomposedDense({ units: 4, granularty: 'input', epsilion: 1e-3 } as never),
      /^DecomposedDense: unknown options `granularty` \(did you mean `granularity`\?\), `epsilion` \(did you mean `epsilon`\?\);/,
    ],
    [
      'decomposedConv2d',
      () => decomposedConv2d({ filters: 3, kernelSize: 3, granulartiy: 'filter' } as never),
      /^DecomposedConv2D: unknown option `granulartiy` \(did you mean `granularity`\?\); the options are `granularity`, `epsilon`, `magnitudeInitializer` and those of tf\.layers\.conv2d: `inputShape`, .*`filters`, `kernelSize`/,
    ],
    [
      // Refused before tfjs would complain that kernelSize is missing.
      'decomposedConv2d',
      () => decomposedConv2d({ filters: 3, kernel_size: 3 } as never),
      /^DecomposedConv2D: unknown option `kernel_size` \(did you mean `kernelSize`\?\)/,
    ],
    [
      'new DecomposedConv2D',
      () => new DecomposedConv2D({ filters: 3, kernelSize: 3, units: 4 } as never),
      /^DecomposedConv2D: unknown option `units`; the options are/,
    ],
  ])('%s refuses a key that is neither its own option nor a tfjs argument', (_, make, message) => {
    expect(make).toThrow(message);
  });

  it('refuses options that are not an object, saying what to pass', () => {
    // Before: "Cannot destructure property 'granularity' of 'args' as it is undefined".
    expect(() => (decomposedDense as () => unknown)()).toThrow(TypeError);
    expect(() => (decomposedDense as () => unknown)()).toThrow(
      'DecomposedDense: expected an options object, as tf.layers.dense takes ({ units: 10 }), got undefined',
    );
    expect(() => decomposedConv2d(null as never)).toThrow(
      'DecomposedConv2D: expected an options object, as tf.layers.conv2d takes ({ filters: 8, kernelSize: 3 }), got null',
    );
    expect(() => new DecomposedConv1D(8 as never)).toThrow(
      /^DecomposedConv1D: expected an options object, .* got 8$/,
    );
    expect(() => decomposedDense([{ units: 2 }] as never)).toThrow(/got an array of length 1$/);
  });

  it('takes every argument tfjs declares for the plain layer, and its own options', () => {
    // undefined is "not given" for tfjs and for us; what is tested is that no key is refused.
    for (const k of [...denseArgs, ...ours])
      expect(() => new DecomposedDense({ [k]: undefined, units: 2 } as never)).not.toThrow();
    for (const k of [...convArgs, ...ours])
      expect(
        () => new DecomposedConv2D({ [k]: undefined, filters: 2, kernelSize: 3 } as never),
      ).not.toThrow();
    // and with values, as many as go together
    const dense = decomposedDense({
      units: 3,
      inputDim: 4,
      batchSize: 2,
      activation: 'relu',
      useBias: true,
      kernelInitializer: 'heNormal',
      biasInitializer: 'ones',
      kernelConstraint: 'maxNorm',
      biasConstraint: 'nonNeg',
      kernelRegularizer: tfl.regularizers.l2(),
      biasRegularizer: tfl.regularizers.l1l2(),
      activityRegularizer: tfl.regularizers.l1(),
      dtype: 'float32',
      inputDType: 'float32',
      name: 'all_dense',
      trainable: false,
      granularity: 'input',
      epsilon: 1e-4,
      magnitudeInitializer: 'ones',
    });
    expect(dense.getConfig()).toMatchObject({
      units: 3,
      granularity: 'input',
      epsilon: 1e-4,
      trainable: false,
    });
    const conv = decomposedConv2d({
      batchInputShape: [null, 6, 6, 2],
      filters: 3,
      kernelSize: [3, 2],
      strides: 1,
      padding: 'same',
      dataFormat: 'channelsLast',
      dilationRate: 1,
      activation: 'relu',
      useBias: false,
      granularity: 'filter',
    });
    expect(conv.getConfig()).toMatchObject({
      kernelSize: [3, 2],
      padding: 'same',
      useBias: false,
      granularity: 'filter',
    });
  });

  it("takes a plain layer's getConfig() spread into its arguments (also through JSON)", () => {
    // New configs each time: tfjs writes customObjects into the nested configs it reads.
    const plainConfigs = () => [
      tfl.layers
        .dense({
          units: 3,
          activation: 'relu',
          inputShape: [4],
          kernelInitializer: 'heNormal',
          kernelRegularizer: tfl.regularizers.l2(),
          name: 'dense',
        })
        .getConfig(),
      tfl.layers
        .conv2d({
          filters: 3,
          kernelSize: 3,
          strides: 2,
          inputShape: [5, 5, 2],
          biasConstraint: 'nonNeg',
          name: 'conv',
        })
        .getConfig(),
    ];
    for (const viaJson of [false, true]) {
      const [dense, conv] = plainConfigs().map((c) => (viaJson ? JSON.parse(JSON.stringify(c)) : c));
      const [denseExpected, convExpected] = plainConfigs();
      const d = decomposedDense({ ...dense, granularity: 'input' } as never).getConfig();
      const { granularity: dg, epsilon: de, ...densePart } = d;
      expect([dg, de]).toEqual(['input', 1e-6]);
      expect(densePart).toEqual(denseExpected);
      const c = decomposedConv2d({ ...conv, granularity: 'filter' } as never).getConfig();
      const { granularity: cg, epsilon: ce, ...convPart } = c;
      expect([cg, ce]).toEqual(['filter', 1e-6]);
      expect(convPart).toEqual(convExpected);
    }
  });

  it.each(['sequential', 'functional'])(
    'a saved %s model with decomposed Dense and Conv2D layers loads (tfjs passes the saved config and customObjects)',
    async (kind) => {
      const before = tf.memory().numTensors;
      const layers = () => [
        decomposedConv2d({
          filters: 3,
          kernelSize: 3,
          granularity: 'filter',
          magnitudeInitializer: 'ones',
          kernelRegularizer: tfl.regularizers.l2(),
          name: 'c',
        }),
        tfl.layers.flatten({ name: 'f' }),
        decomposedDense({ units: 2, granularity: 'input', epsilon: 1e-4, activation: 'relu', name: 'd' }),
      ];
      let model: tfl.LayersModel;
      if (kind === 'sequential') {
        model = tfl.sequential({ layers: [tfl.layers.inputLayer({ inputShape: [5, 5, 2] }), ...layers()] });
      } else {
        const input = tfl.input({ shape: [5, 5, 2] });
        const output = layers().reduce<tfl.SymbolicTensor>((x, l) => l.apply(x) as tfl.SymbolicTensor, input);
        model = tfl.model({ inputs: input, outputs: output });
      }
      const artifacts = await saveInMemory(model);
      const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts));
      expect(loaded.getConfig()).toEqual(model.getConfig());
      tf.tidy(() => {
        const x = tf.randomNormal([2, 5, 5, 2], 0, 1, 'float32', 3);
        const [a, b] = [model.predict(x) as tf.Tensor, loaded.predict(x) as tf.Tensor];
        expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
      });
      model.dispose();
      loaded.dispose();
      expect(tf.memory().numTensors).toBe(before);
    },
  );
});
