// DecomposedDepthwiseConv2D: what only it has (no filters option, its refusals, and what
// magnitudes() counts for it). The checks it shares with the other decomposed convolutions
// (forward against tf.layers.depthwiseConv2d, gradients against finite differences on cpu and wasm
// and against autodiff, weights and setWeights, constraints, getConfig, decompose / fold,
// serialisation, leaks, training on wasm) are decomposed-conv.test.ts's.
import * as tfl from '@tensorflow/tfjs-layers';
import { DecomposedDepthwiseConv2D, decompose, decomposedDepthwiseConv2d, magnitudes } from '../src/index.js';
import { disposeWeights, mobile, useCpu } from './helpers.js';

beforeAll(useCpu);

describe('DecomposedDepthwiseConv2D', () => {
  it('has no filters option: its filters are NaN until it is built, then inChannels x depthMultiplier', () => {
    const layer = decomposedDepthwiseConv2d({ kernelSize: [3, 2], depthMultiplier: 3 });
    expect(Number.isNaN(layer.filters)).toBe(true);
    layer.build([null, 5, 5, 4]);
    expect(layer.filters).toBe(12);
    disposeWeights(layer);
  });

  it('refuses an unknown option, a kernel* option, dilationRate 2, channelsFirst, causal padding and a bad granularity, naming them', () => {
    expect(() => decomposedDepthwiseConv2d({ kernelSize: 3, granularty: 'filter' } as never)).toThrow(
      /^DecomposedDepthwiseConv2D: unknown option `granularty` \(did you mean `granularity`\?\); the options are `granularity`, `epsilon`, `magnitudeInitializer` and those of tf\.layers\.depthwiseConv2d: .*`depthMultiplier`, `depthwiseInitializer`, `depthwiseConstraint`, `depthwiseRegularizer`$/,
    );
    expect(() => decomposedDepthwiseConv2d({ kernelSize: 3, filters: 4 } as never)).toThrow(
      /^DecomposedDepthwiseConv2D: unknown option `filters`; the options are/,
    );
    expect(() => decomposedDepthwiseConv2d({ kernelSize: 3, kernelInitializer: 'ones' } as never)).toThrow(
      /^DecomposedDepthwiseConv2D: unknown option `kernelInitializer`; .* \(a DepthwiseConv2D ignores kernelInitializer, kernelConstraint and kernelRegularizer: its kernel takes depthwiseInitializer, depthwiseConstraint and depthwiseRegularizer\)$/,
    );
    expect(() => new DecomposedDepthwiseConv2D(null as never)).toThrow(
      'DecomposedDepthwiseConv2D: expected an options object, as tf.layers.depthwiseConv2d takes ({ kernelSize: 3, depthMultiplier: 1 }), got null',
    );
    expect(() => decomposedDepthwiseConv2d({ kernelSize: 3, dilationRate: 2, name: 'dw' })).toThrow(
      /^DecomposedDepthwiseConv2D supports dilationRate 1 only \(tfjs's DepthwiseConv2D ignores any other\), got 2 for layer 'dw'$/,
    );
    expect(() => decomposedDepthwiseConv2d({ kernelSize: 3, dilationRate: [1, 2] })).toThrow(
      /dilationRate 1 only.*got \[1,2\]$/,
    );
    expect(() =>
      decomposedDepthwiseConv2d({ kernelSize: 3, dataFormat: 'channelsFirst', name: 'dw' }),
    ).toThrow(
      "DecomposedDepthwiseConv2D supports dataFormat 'channelsLast' only, got 'channelsFirst' for layer 'dw'",
    );
    expect(() => decomposedDepthwiseConv2d({ kernelSize: 3, padding: 'causal' })).toThrow(
      `DecomposedDepthwiseConv2D padding must be one of 'same', 'valid', got "causal"`,
    );
    expect(() => decomposedDepthwiseConv2d({ kernelSize: 3, granularity: 'output' as never })).toThrow(
      `DecomposedDepthwiseConv2D granularity must be one of 'kernel', 'filter', got "output"`,
    );
    const layer = decomposedDepthwiseConv2d({ kernelSize: 3, name: 'dw' });
    expect(() => layer.build([null, 5, 5, null])).toThrow(
      "DecomposedDepthwiseConv2D 'dw': the channel dimension of the input must be known",
    );
  });
});

describe('DecomposedDepthwiseConv2D in models', () => {
  it('include by class leaves the DepthwiseConv2D layers plain and decomposes the others', () => {
    const plain = mobile();
    const kept = decompose(plain, { include: (l) => l.getClassName() !== 'DepthwiseConv2D' });
    expect(kept.layers.map((l) => l.getClassName())).toEqual([
      'DecomposedConv2D',
      'DepthwiseConv2D',
      'DecomposedConv2D',
      'DepthwiseConv2D',
    ]);
    for (const m of [plain, kept]) m.dispose();
  });

  it('magnitudes() lists it: groups, params and MACs per group (output positions)', () => {
    const plain = mobile();
    for (const depthwiseConv2d of ['kernel', 'filter'] as const) {
      const d = decompose(plain, { granularity: { depthwiseConv2d } });
      const info = magnitudes(d)
        .filter((m) => m.layerName.startsWith('dw'))
        .map(({ layerName, granularity, groups, paramsPerGroup, macsPerGroup, normAxes }) => ({
          layerName,
          granularity,
          groups,
          paramsPerGroup,
          macsPerGroup,
          normAxes,
        }));
      const kernel = depthwiseConv2d === 'kernel';
      expect(info).toEqual([
        {
          layerName: 'dw1',
          granularity: depthwiseConv2d,
          // 3 input channels, multiplier 2; output 3 x 3.
          groups: kernel ? 6 : 3,
          paramsPerGroup: kernel ? 9 : 18,
          macsPerGroup: (kernel ? 9 : 18) * 9,
          normAxes: kernel ? [0, 1] : [0, 1, 3],
        },
        {
          layerName: 'dw2',
          granularity: depthwiseConv2d,
          // 4 input channels, multiplier 1, kernel 2 x 3; output 2 x 1.
          groups: 4,
          paramsPerGroup: 6,
          macsPerGroup: 6 * 2,
          normAxes: kernel ? [0, 1] : [0, 1, 3],
        },
      ]);
      d.dispose();
    }
    plain.dispose();
  });

  it('decompose refuses a channelsFirst or dilated DepthwiseConv2D, and checks granularity.depthwiseConv2d', () => {
    const cf = tfl.sequential({
      layers: [
        tfl.layers.depthwiseConv2d({
          inputShape: [2, 3, 3],
          kernelSize: 2,
          dataFormat: 'channelsFirst',
          name: 'cf_dw',
        }),
      ],
    });
    expect(() => decompose(cf)).toThrow(
      /^decompose: DepthwiseConv2D layer 'cf_dw' uses dataFormat 'channelsFirst'; only 'channelsLast' is supported\..*layer\.name !== 'cf_dw'/,
    );
    expect(() => decompose(cf, { granularity: { depthwiseConv2d: 'input' as never } })).toThrow(
      `decompose: granularity.depthwiseConv2d must be one of 'kernel', 'filter', got "input"`,
    );
    expect(() => decompose(cf, { granularity: { depthwiseConv2D: 'kernel' } as never })).toThrow(
      /decompose: granularity: unknown option `depthwiseConv2D` \(did you mean `depthwiseConv2d`\?\); the options are `dense`, `conv1d`, `conv2d`, `conv2dTranspose`, `depthwiseConv2d`/,
    );
    const dilated = tfl.sequential({
      layers: [
        tfl.layers.depthwiseConv2d({ inputShape: [5, 5, 2], kernelSize: 2, dilationRate: 2, name: 'dil' }),
      ],
    });
    expect(() => decompose(dilated)).toThrow(
      /^decompose: DepthwiseConv2D layer 'dil' has dilationRate \[2,2\], which tfjs 4\.22's DepthwiseConv2D ignores .*leave it out with the include option \(e\.g\. include: \(layer\) => layer\.name !== 'dil'\)$/,
    );
    for (const m of [cf, dilated]) m.dispose();
  });
});
