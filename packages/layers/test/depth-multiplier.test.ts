// tfjs 4.22's SeparableConv2D leaves depthMultiplier out of getConfig(), so a model rebuilt from
// its config got multiplier 1 and could not take its own weights: decompose() and fold() of a
// model holding one with depthMultiplier 2 threw "weight '.../depthwise_kernel' has shape
// [3,3,2,1], got [3,3,2,2]", and so did unnest(). They now read it from the layer.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { decompose, fold, modelConfig, unnest } from '../src/index.js';
import { randn, useCpu } from './helpers.js';

beforeAll(useCpu);

/** A block holding a SeparableConv2D of depthMultiplier `m`, inside a Sequential with a Dense head. */
function net(m: number): tfl.LayersModel {
  const block = tfl.sequential({
    name: 'block',
    layers: [
      tfl.layers.separableConv2d({
        inputShape: [6, 6, 2],
        filters: 3,
        kernelSize: 3,
        depthMultiplier: m,
        name: 'sep',
      }),
      tfl.layers.conv2d({ filters: 2, kernelSize: 2, name: 'conv' }),
    ],
  });
  return tfl.sequential({
    layers: [block, tfl.layers.flatten(), tfl.layers.dense({ units: 2, name: 'out' })],
  });
}

function expectSame(a: tfl.LayersModel, b: tfl.LayersModel): void {
  const x = randn([2, 6, 6, 2], 1);
  const ya = a.predict(x) as tf.Tensor;
  const yb = b.predict(x) as tf.Tensor;
  expect(tf.max(tf.abs(tf.sub(ya, yb))).dataSync()[0]).toBeLessThan(1e-5);
  tf.dispose([x, ya, yb]);
}

it.each([1, 2, 3])('decompose, fold and unnest keep a SeparableConv2D of depthMultiplier %i', (m) => {
  const model = net(m);
  expect(JSON.stringify(modelConfig(model))).toContain(`"depthMultiplier":${m}`);
  const decomposed = decompose(model);
  const folded = fold(decomposed);
  const flat = unnest(model);
  for (const copy of [decomposed, folded, flat]) {
    const sep = copy.layers
      .flatMap((l) => (l instanceof tfl.LayersModel ? l.layers : [l]))
      .find((l) => l.name.endsWith('sep'))!;
    expect(sep.weights[0].shape).toEqual([3, 3, 2, m]);
    expectSame(model, copy);
    copy.dispose();
  }
  model.dispose();
});
