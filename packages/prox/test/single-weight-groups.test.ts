// Layers whose groups are single weights (a 1x1 Conv2D of granularity 'kernel', the default; a
// Dense of one unit with 'input'; a Dense on one input feature with 'output'): the proximal step
// keeps magnitudes >= 0 and a one-weight direction cannot rotate, so no weight of such a layer can
// change sign. The optimisers say so when such a layer is attached.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  decompose,
  decomposedConv1d,
  decomposedConv2d,
  decomposedDense,
  magnitudes,
} from '@normprune/layers';
import { ProximalAdam, ProximalSGD } from '../src/index.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

let warn: jest.SpyInstance;
beforeEach(() => {
  warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
});
afterEach(() => warn.mockRestore());

const seeded = (seed: number) => tfl.initializers.glorotUniform({ seed });

describe('a layer whose groups are single weights', () => {
  it.each([
    ['a 1x1 Conv2D of granularity kernel', [1, 1, 3, 2], 'kernel'],
    ['a Dense of one unit, granularity input', [4, 1], 'input'],
    ['a Dense on one input feature, granularity output', [1, 3], 'output'],
  ] as const)(
    '%s cannot change the sign of a weight under ProximalSGD at lambda 0: the weight goes to 0 and stays',
    (_, shape, granularity) => {
      const layer =
        shape.length === 4
          ? decomposedConv2d({
              inputShape: [2, 2, shape[2]],
              filters: shape[3],
              kernelSize: 1,
              granularity: granularity as 'kernel',
            })
          : decomposedDense({ inputShape: [shape[0]], units: shape[1], granularity: granularity as 'input' });
      const model = tfl.sequential({ layers: [layer as tfl.layers.Layer] });
      tf.tidy(() => layer.setWeights([tf.fill([...shape], 0.5), tf.zeros([shape[shape.length - 1]])]));
      const [info] = magnitudes(model);
      const opt = new ProximalSGD({ learningRate: 1, lambda: 0, magnitudes: model });
      // d loss / d kernel = 1 everywhere: plain SGD takes every weight from 0.5 to -0.5, then -1.5;
      // here the magnitude goes to max(0.5 - 1, 0) = 0, and its gradient keeps it there.
      for (let step = 0; step < 3; step++)
        tf.tidy(() => {
          const { grads } = tf.variableGrads(
            () => tf.sum(layer.effectiveKernel()),
            [info.direction, info.magnitude],
          );
          opt.applyGradients(grads);
        });
      const kernel = layer.effectiveKernel();
      expect(Array.from(kernel.dataSync())).toEqual(new Array(kernel.size).fill(0));
      kernel.dispose();
      opt.dispose();
      model.dispose();
    },
  );

  it.each([
    [
      'a 1x1 Conv2D of granularity kernel',
      () => decomposedConv2d({ inputShape: [4, 4, 3], filters: 2, kernelSize: 1, name: 'pointwise' }),
      "'pointwise' (Conv2D with 1x1 kernels, granularity 'kernel': use 'filter')",
    ],
    [
      'a 1x1 Conv2D on one channel, either granularity',
      () =>
        decomposedConv2d({
          inputShape: [4, 4, 1],
          filters: 2,
          kernelSize: [1, 1],
          granularity: 'filter',
          name: 'gain',
        }),
      "'gain' (Conv2D with 1x1 kernels on one input channel, granularity 'filter': no granularity groups " +
        'several of its weights; keep it plain)',
    ],
    [
      'a Conv1D of kernel size 1, granularity kernel',
      () => decomposedConv1d({ inputShape: [6, 3], filters: 2, kernelSize: 1, name: 'mix1d' }),
      "'mix1d' (Conv1D with kernels of size 1, granularity 'kernel': use 'filter')",
    ],
    [
      'a Conv1D of kernel size 1 on one channel, granularity filter',
      () =>
        decomposedConv1d({
          inputShape: [6, 1],
          filters: 3,
          kernelSize: 1,
          granularity: 'filter',
          name: 'gain1d',
        }),
      "'gain1d' (Conv1D with kernels of size 1 on one input channel, granularity 'filter': no granularity groups " +
        'several of its weights; keep it plain)',
    ],
    [
      'a Dense of one unit, granularity input',
      () => decomposedDense({ inputShape: [5], units: 1, granularity: 'input', name: 'score' }),
      "'score' (Dense of 1 unit, granularity 'input': use 'output')",
    ],
    [
      'a Dense on one input feature, granularity output',
      () => decomposedDense({ inputShape: [1], units: 4, name: 'expand' }),
      "'expand' (Dense on 1 input feature, granularity 'output': use 'input')",
    ],
  ])('%s: attaching it warns once per optimiser, naming the layer and the way out', (_, layer, named) => {
    const model = tfl.sequential({ layers: [layer()] });
    for (const make of [
      () => new ProximalSGD({ learningRate: 0.1, lambda: 1e-3, magnitudes: model }),
      () => new ProximalAdam({ learningRate: 0.1, lambda: 1e-3, magnitudes: magnitudes(model) }),
    ]) {
      warn.mockClear();
      const opt = make();
      expect(warn).toHaveBeenCalledTimes(1);
      const text = warn.mock.calls[0][0] as string;
      expect(text).toContain(`every group of ${named} is a single weight`);
      expect(text).toMatch(/cannot change the sign of any of its weights/);
      opt.attach(model);
      expect(warn).toHaveBeenCalledTimes(1);
      opt.dispose();
    }
    model.dispose();
  });

  it('lists every such layer of a decomposed model in one warning, and none of the others', () => {
    const input = tfl.input({ shape: [6, 6, 3] });
    const a = tfl.layers
      .conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'spatial', kernelInitializer: seeded(1) })
      .apply(input);
    const b = tfl.layers
      .conv2d({ filters: 4, kernelSize: 1, name: 'mix', kernelInitializer: seeded(2) })
      .apply(a);
    const f = tfl.layers.flatten().apply(b);
    const h = tfl.layers.dense({ units: 3, name: 'hidden', kernelInitializer: seeded(3) }).apply(f);
    const out = tfl.layers.dense({ units: 1, name: 'out', kernelInitializer: seeded(4) }).apply(h);
    const plain = tfl.model({ inputs: input, outputs: out as tfl.SymbolicTensor });
    const byKernel = decompose(plain, { granularity: { dense: 'input', conv2d: 'kernel' } });
    const opt = new ProximalSGD({ learningRate: 0.1, lambda: 1e-3, magnitudes: byKernel });
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0][0]).toMatch(
      new RegExp(
        "^ProximalSGD: every group of 'mix' \\(Conv2D with 1x1 kernels, granularity 'kernel': use 'filter'\\) " +
          "and of 'out' \\(Dense of 1 unit, granularity 'input': use 'output'\\) is a single weight",
      ),
    );
    opt.dispose();
    // The granularities the warning names: no single-weight groups, no warning.
    warn.mockClear();
    const byFilter = decompose(plain, { granularity: { dense: 'output', conv2d: 'filter' } });
    new ProximalSGD({ learningRate: 0.1, lambda: 1e-3, magnitudes: byFilter }).dispose();
    expect(warn).not.toHaveBeenCalled();
    tf.dispose([byKernel, byFilter, plain].flatMap((m) => m.weights.map((w) => w.read())));
  });
});
