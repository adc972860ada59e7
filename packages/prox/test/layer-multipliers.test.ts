// layerMultipliers scale one layer's c_k (its groups share it); 0 switches the layer's penalty off,
// whatever the cost weighting.
import { costWeights } from '../src/weights';

test('layerMultipliers of 0 switches a layer off, whatever the cost weighting', () => {
  const infos = [
    { layerName: 'a', groups: 2, paramsPerGroup: 3, macsPerGroup: 3 },
    { layerName: 'b', groups: 1, paramsPerGroup: 6, macsPerGroup: 6 },
  ];
  expect(costWeights(infos, 'uniform', { a: 0 })).toEqual([0, 1]);
  expect(costWeights(infos, 'params', { b: 0 })).toEqual([0.75, 0]);
});
