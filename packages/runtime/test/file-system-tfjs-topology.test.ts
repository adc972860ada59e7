// tfjs 4.22's own save writes two layers' configs wrong into model.json, and its loader then
// cannot build the model that was saved: a SeparableConv2D's depth_multiplier is left out (read
// back as 1: "Shape mismatch: [3,3,4,1] vs. [3,3,4,2]"), and a DepthwiseConv2D's
// depthwise_regularizer is written as its depthwise_constraint as well, which tfjs then applies to
// the kernel it loads ("shape of the new value () and previous value (3,3,4,1) must match").
// fileSystem's load repairs both from the model.json itself.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileSystem } from '../src/index.js';

let root: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-fs-topology-'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** SeparableConv2D layers of depthMultiplier 2 (one in a nested block), a DepthwiseConv2D with a regularizer. */
function net(depthwiseConstraint?: 'maxNorm'): tfl.LayersModel {
  const block = tfl.sequential({
    name: 'block',
    layers: [
      tfl.layers.separableConv2d({
        inputShape: [8, 8, 4],
        filters: 4,
        kernelSize: 3,
        depthMultiplier: 2,
        name: 'inner',
      }),
    ],
  });
  return tfl.sequential({
    layers: [
      tfl.layers.separableConv2d({
        inputShape: [8, 8, 2],
        filters: 4,
        kernelSize: 1,
        depthMultiplier: 3,
        name: 'sep',
      }),
      block,
      tfl.layers.depthwiseConv2d({
        kernelSize: 3,
        name: 'dw',
        depthwiseRegularizer: 'l1l2',
        depthwiseConstraint,
      }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: 2, name: 'out' }),
    ],
  });
}

it.each([[undefined], ['maxNorm' as const]])(
  "loads a model tfjs's own save wrote, with separable and depthwise layers (constraint %s)",
  async (constraint) => {
    const model = net(constraint);
    const dir = path.join(root, `m-${constraint}`);
    await model.save(fileSystem(dir));
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
    // What tfjs wrote (should a later tfjs write it right, this test has nothing left to show).
    const sep = json.modelTopology.config.layers[0];
    expect(sep.config.depth_multiplier).toBeUndefined();
    const dw = json.modelTopology.config.layers[2];
    expect(dw.config.depthwise_constraint).toEqual(dw.config.depthwise_regularizer);
    const loaded = await tfl.loadLayersModel(fileSystem(dir));
    expect(loaded.getLayer('sep').weights[0].shape).toEqual([1, 1, 2, 3]);
    expect((loaded.getLayer('block') as tfl.LayersModel).getLayer('inner').weights[0].shape).toEqual([
      3, 3, 4, 2,
    ]);
    expect((loaded.getLayer('dw') as any).depthwiseConstraint ?? null).toBeNull();
    const x = tf.randomNormal([2, 8, 8, 2], 0, 1, 'float32', 1);
    const a = model.predict(x) as tf.Tensor;
    const b = loaded.predict(x) as tf.Tensor;
    expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBeLessThan(1e-6);
    tf.dispose([x, a, b]);
    loaded.dispose();
    model.dispose();
  },
);
