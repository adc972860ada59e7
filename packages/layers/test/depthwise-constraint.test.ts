// tfjs 4.22's DepthwiseConv2D writes its depthwiseRegularizer where its depthwiseConstraint goes
// in getConfig(), so a model rebuilt from its config lost the layer's constraint and took its
// regularizer as one, which tfjs applies to every weight it loads: a copy made by decompose(),
// fold() or unnest() (and surgery's prune and exportModel) was another model, and an export of
// it failed to load ("shape of the new value () and previous value (3,3,4,1) must match").
// modelConfig restores the constraint from the layer.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { decompose, fold, modelConfig, unnest } from '../src/index.js';
import { randn, useCpu } from './helpers.js';

beforeAll(useCpu);

/** A block holding a DepthwiseConv2D with the given regularizer and constraint, then a Dense head. */
function net(args: { depthwiseRegularizer?: any; depthwiseConstraint?: any }): tfl.LayersModel {
  const block = tfl.sequential({
    name: 'block',
    layers: [
      tfl.layers.depthwiseConv2d({ inputShape: [6, 6, 4], kernelSize: 3, name: 'dw', ...args }),
      tfl.layers.conv2d({ filters: 2, kernelSize: 2, name: 'conv' }),
    ],
  });
  return tfl.sequential({
    layers: [block, tfl.layers.flatten(), tfl.layers.dense({ units: 2, name: 'out' })],
  });
}

const className = (o: unknown): string | null =>
  (o as { getClassName?: () => string } | null)?.getClassName?.() ?? null;

it.each<[string, { depthwiseRegularizer?: any; depthwiseConstraint?: any }, string | null]>([
  [
    'a regularizer and a constraint',
    { depthwiseRegularizer: 'l1l2', depthwiseConstraint: 'maxNorm' },
    'MaxNorm',
  ],
  ['a regularizer only', { depthwiseRegularizer: 'l1l2' }, null],
  ['a constraint only', { depthwiseConstraint: 'nonNeg' }, 'NonNeg'],
])('decompose, fold and unnest keep the constraint of a DepthwiseConv2D with %s', (_, args, constraint) => {
  const model = net(args);
  const entry = (modelConfig(model).layers[0].config.layers as any[]).find((l) => l.config.name === 'dw');
  expect(entry.config.depthwiseConstraint?.className ?? null).toBe(constraint);
  // decompose() replaces a DepthwiseConv2D: its config states the constraint, and fold() gives it
  // back; left plain (include), the copy keeps it as well.
  const decomposed = decompose(model);
  const dwOf = (copy: tfl.LayersModel) =>
    copy.layers
      .flatMap((l) => (l instanceof tfl.LayersModel ? l.layers : [l]))
      .find((l) => l.name.endsWith('dw'))!;
  const own = dwOf(decomposed);
  expect(own.getClassName()).toBe('DecomposedDepthwiseConv2D');
  expect((own.getConfig().depthwiseConstraint as any)?.className ?? null).toBe(constraint);
  expect((own.getConfig().depthwiseRegularizer as any)?.className ?? null).toBe(
    args.depthwiseRegularizer ? 'L1L2' : null,
  );
  const kept = decompose(model, { include: (l) => l.getClassName() !== 'DepthwiseConv2D' });
  const folded = fold(decomposed);
  const flat = unnest(model);
  for (const copy of [kept, folded, flat]) {
    const dw = dwOf(copy);
    expect(className((dw as any).depthwiseConstraint)).toBe(constraint);
    expect(className(dw.weights[0].constraint)).toBe(constraint);
    expect(className((dw as any).depthwiseRegularizer)).toBe(args.depthwiseRegularizer ? 'L1L2' : null);
    const x = randn([2, 6, 6, 4], 1);
    const ya = model.predict(x) as tf.Tensor;
    const yb = copy.predict(x) as tf.Tensor;
    expect(tf.max(tf.abs(tf.sub(ya, yb))).dataSync()[0]).toBeLessThan(1e-5);
    tf.dispose([x, ya, yb]);
    copy.dispose();
  }
  const x = randn([2, 6, 6, 4], 1);
  const [ya, yb] = [model.predict(x), decomposed.predict(x)] as tf.Tensor[];
  expect(tf.max(tf.abs(tf.sub(ya, yb))).dataSync()[0]).toBeLessThan(1e-5);
  tf.dispose([x, ya, yb]);
  decomposed.dispose();
  model.dispose();
});
