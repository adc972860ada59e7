// DecomposedConv2DTranspose: what only it has (its refusals, and what magnitudes() counts for it:
// MACs per input position). The checks it shares with the other decomposed convolutions (forward
// against tf.layers.conv2dTranspose, gradients against finite differences on cpu and wasm and
// against autodiff, weights and setWeights, constraints, getConfig, decompose / fold,
// serialisation, leaks, training on wasm) are decomposed-conv.test.ts's.
import * as tfl from '@tensorflow/tfjs-layers';
import { DecomposedConv2DTranspose, decompose, decomposedConv2dTranspose, magnitudes } from '../src/index.js';
import { decoder, useCpu } from './helpers.js';

beforeAll(useCpu);

describe('DecomposedConv2DTranspose', () => {
  it('refuses an unknown option, dilationRate 2, channelsFirst, causal padding and a bad granularity, naming them', () => {
    expect(() =>
      decomposedConv2dTranspose({ filters: 2, kernelSize: 3, granularty: 'filter' } as never),
    ).toThrow(
      /^DecomposedConv2DTranspose: unknown option `granularty` \(did you mean `granularity`\?\); the options are `granularity`, `epsilon`, `magnitudeInitializer` and those of tf\.layers\.conv2dTranspose: /,
    );
    expect(() => new DecomposedConv2DTranspose({ filters: 2, kernelSize: 3, units: 4 } as never)).toThrow(
      /^DecomposedConv2DTranspose: unknown option `units`; the options are/,
    );
    expect(() => new DecomposedConv2DTranspose(null as never)).toThrow(
      'DecomposedConv2DTranspose: expected an options object, as tf.layers.conv2dTranspose takes ({ filters: 8, kernelSize: 3 }), got null',
    );
    expect(() =>
      decomposedConv2dTranspose({ filters: 2, kernelSize: 3, dilationRate: 2, name: 'up' }),
    ).toThrow(
      /^DecomposedConv2DTranspose supports dilationRate 1 only \(tfjs's Conv2DTranspose ignores any other\), got 2 for layer 'up'$/,
    );
    expect(() => decomposedConv2dTranspose({ filters: 2, kernelSize: 3, dilationRate: [1, 2] })).toThrow(
      /dilationRate 1 only.*got \[1,2\]$/,
    );
    expect(() =>
      decomposedConv2dTranspose({ filters: 2, kernelSize: 3, dataFormat: 'channelsFirst', name: 'up' }),
    ).toThrow(
      "DecomposedConv2DTranspose supports dataFormat 'channelsLast' only, got 'channelsFirst' for layer 'up'",
    );
    // tfjs's own refusal, as for the plain layer.
    expect(() => decomposedConv2dTranspose({ filters: 2, kernelSize: 3, padding: 'causal' })).toThrow(
      /Conv2DTranspose currently supports only padding modes 'same' and 'valid'/,
    );
    expect(() =>
      decomposedConv2dTranspose({ filters: 2, kernelSize: 3, granularity: 'output' as never }),
    ).toThrow(`DecomposedConv2DTranspose granularity must be one of 'kernel', 'filter', got "output"`);
  });
});

describe('DecomposedConv2DTranspose in models', () => {
  it('magnitudes() lists it: groups, params and MACs per group (input positions, as surgery counts them)', () => {
    const plain = decoder();
    for (const conv2dTranspose of ['kernel', 'filter'] as const) {
      const d = decompose(plain, { granularity: { conv2dTranspose } });
      const info = magnitudes(d).map(
        ({ layerName, granularity, groups, paramsPerGroup, macsPerGroup, normAxes }) => ({
          layerName,
          granularity,
          groups,
          paramsPerGroup,
          macsPerGroup,
          normAxes,
        }),
      );
      const kernel = conv2dTranspose === 'kernel';
      expect(info).toEqual([
        {
          layerName: 'enc',
          granularity: 'kernel',
          groups: 6,
          paramsPerGroup: 9,
          macsPerGroup: 9 * 16,
          normAxes: [0, 1],
        },
        {
          layerName: 'up1',
          granularity: conv2dTranspose,
          groups: kernel ? 12 : 4,
          paramsPerGroup: kernel ? 9 : 27,
          // Input 4 x 4 (output 8 x 8).
          macsPerGroup: (kernel ? 9 : 27) * 16,
          normAxes: kernel ? [0, 1] : [0, 1, 3],
        },
        {
          layerName: 'up2',
          granularity: conv2dTranspose,
          groups: kernel ? 8 : 2,
          paramsPerGroup: kernel ? 6 : 24,
          macsPerGroup: (kernel ? 6 : 24) * 64,
          normAxes: kernel ? [0, 1] : [0, 1, 3],
        },
      ]);
      d.dispose();
    }
    plain.dispose();
  });

  it('decompose refuses a channelsFirst Conv2DTranspose, and checks granularity.conv2dTranspose', () => {
    const cf = tfl.sequential({
      layers: [
        tfl.layers.conv2dTranspose({
          inputShape: [2, 3, 3],
          filters: 2,
          kernelSize: 2,
          dataFormat: 'channelsFirst',
          name: 'cf_up',
        }),
      ],
    });
    expect(() => decompose(cf)).toThrow(
      /^decompose: Conv2DTranspose layer 'cf_up' uses dataFormat 'channelsFirst'; only 'channelsLast' is supported\..*layer\.name !== 'cf_up'/,
    );
    expect(() => decompose(cf, { granularity: { conv2dTranspose: 'input' as never } })).toThrow(
      `decompose: granularity.conv2dTranspose must be one of 'kernel', 'filter', got "input"`,
    );
    expect(() => decompose(cf, { granularity: { conv2DTranspose: 'kernel' } as never })).toThrow(
      /decompose: granularity: unknown option `conv2DTranspose` \(did you mean `conv2dTranspose`\?\); the options are `dense`, `conv1d`, `conv2d`, `conv2dTranspose`/,
    );
    cf.dispose();
  });
});
