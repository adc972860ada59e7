// DecomposedConv1D: what only it has. The checks it shares with the other decomposed
// convolutions (forward against tf.layers.conv1d on cpu and wasm, gradients, the epsilon term,
// weights, getConfig, decompose / fold, serialisation, leaks) are decomposed-conv.test.ts's.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { decomposedConv1d, decompose, magnitudes } from '../src/index.js';
import { conv1dNet } from './helpers.js';

describe('DecomposedConv1D', () => {
  it('refuses causal padding (tfjs cannot apply it), channelsFirst and an unknown granularity, naming them', () => {
    expect(() => decomposedConv1d({ filters: 2, kernelSize: 3, padding: 'causal' as any })).toThrow(
      /DecomposedConv1D padding must be one of 'same', 'valid', got "causal"/,
    );
    expect(() =>
      decomposedConv1d({ filters: 2, kernelSize: 3, dataFormat: 'channelsFirst', name: 'c' }),
    ).toThrow(/DecomposedConv1D supports dataFormat 'channelsLast' only, got 'channelsFirst' for layer 'c'/);
    expect(() => decomposedConv1d({ filters: 2, kernelSize: 3, granularity: 'output' as any })).toThrow(
      /'kernel', 'filter'/,
    );
    expect(() => decomposedConv1d({ filters: 2, kernelSize: 3, granularty: 'filter' } as any)).toThrow(
      /DecomposedConv1D: unknown option `granularty` \(did you mean `granularity`\?\)/,
    );
  });
});

describe('decompose and magnitudes with Conv1D layers', () => {
  beforeAll(async () => void (await tf.setBackend('cpu')));

  it('magnitudes() counts the parameters and MACs one group controls', () => {
    const model = conv1dNet(2);
    for (const granularity of ['kernel', 'filter'] as const) {
      const dec = decompose(model, { granularity: { conv1d: granularity }, include: ['c1', 'c2'] });
      // c1: kernel 5, cin 3, output length 8 ('same', stride 2); c2: kernel 2, cin 6, output length 4 - 2 = 2.
      const per = granularity === 'kernel' ? [5, 2] : [15, 12];
      expect(magnitudes(dec).map((m) => [m.layerName, m.groups, m.paramsPerGroup, m.macsPerGroup])).toEqual([
        ['c1', granularity === 'kernel' ? 18 : 6, per[0], per[0] * 8],
        ['c2', granularity === 'kernel' ? 24 : 4, per[1], per[1] * 2],
      ]);
      dec.dispose();
    }
    model.dispose();
  });

  it('refuses a causal Conv1D, naming it and the way out', () => {
    const model = conv1dNet(2, 'causal');
    expect(() => decompose(model)).toThrow(
      /decompose: Conv1D layer 'c1' uses padding 'causal', which tfjs 4.22 cannot apply .*leave it out with the include option/,
    );
    const dec = decompose(model, { include: ['c2', 'out'] });
    expect(dec.layers.map((l) => l.getClassName())[0]).toBe('Conv1D');
    dec.dispose();
    model.dispose();
  });
});
