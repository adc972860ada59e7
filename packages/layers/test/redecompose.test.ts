// decompose() of a model whose layers are decomposed already keeps those layers as they are: the
// granularity it is given applies to plain Dense and Conv2D layers only. Asked for another one,
// it says so (and how to decompose such a layer anew) instead of silently keeping the old one.
import * as tfl from '@tensorflow/tfjs-layers';
import { decompose, fold, magnitudes } from '../src/index.js';
import { useCpu } from './helpers.js';

beforeAll(useCpu);

function net(): tfl.Sequential {
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({ inputShape: [6, 6, 1], filters: 2, kernelSize: 3, name: 'conv' }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: 3, name: 'fc' }),
    ],
  });
}

let warn: jest.SpyInstance;
beforeEach(() => {
  warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
});
afterEach(() => warn.mockRestore());

it('warns, naming each layer that keeps another granularity than the one asked for', () => {
  const once = decompose(net(), { granularity: { dense: 'output', conv2d: 'kernel' } });
  const twice = decompose(once, { granularity: { dense: 'input', conv2d: 'kernel' } });
  expect(magnitudes(twice).map((m) => `${m.layerName}:${m.granularity}`)).toEqual([
    'conv:kernel',
    'fc:output',
  ]);
  expect(warn).toHaveBeenCalledTimes(1);
  expect(warn.mock.calls[0][0]).toBe(
    "decompose: 'fc' (DecomposedDense) keeps its granularity 'output', not 'input': it is decomposed already, " +
      'and decompose() replaces only plain Dense, Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D and SeparableConv2D layers. To decompose a layer anew at another ' +
      'granularity, fold() the model first (decompose(fold(model), { granularity }))',
  );
  // As the warning says: fold first.
  warn.mockClear();
  const anew = decompose(fold(once), { granularity: { dense: 'input' } });
  expect(magnitudes(anew).map((m) => `${m.layerName}:${m.granularity}`)).toEqual(['conv:kernel', 'fc:input']);
  expect(warn).not.toHaveBeenCalled();
});

it('says nothing where no granularity is asked for, the same one is, or include chose the layers', () => {
  const once = decompose(net(), { granularity: { dense: 'input' }, include: ['fc'] });
  decompose(once);
  decompose(once, { granularity: { dense: 'input' } });
  // The two-call idiom: the second call decomposes the layers it names at its own granularity.
  decompose(once, { granularity: { dense: 'output', conv2d: 'filter' }, include: ['conv'] });
  decompose(once, { granularity: { dense: 'output' }, include: (l) => l.name === 'conv' });
  expect(warn).not.toHaveBeenCalled();
});
