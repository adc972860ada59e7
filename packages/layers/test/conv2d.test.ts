// DecomposedConv2D: what only it has. The checks it shares with the other decomposed
// convolutions (forward against tf.layers.conv2d on cpu and wasm, gradients, the epsilon term,
// weights, getConfig, decompose / fold, serialisation, leaks) are decomposed-conv.test.ts's.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { decompose, decomposedConv2d } from '../src/index.js';
import { allFinite, randn, useCpu } from './helpers.js';

beforeAll(useCpu);

describe('DecomposedConv2D', () => {
  it('rejects channelsFirst with a clear error', () => {
    expect(() =>
      decomposedConv2d({ filters: 2, kernelSize: 3, dataFormat: 'channelsFirst', name: 'c' }),
    ).toThrow(/channelsLast.*only.*'channelsFirst'.*layer 'c'/);
    expect(() => decomposedConv2d({ filters: 2, kernelSize: 3, granularity: 'output' as any })).toThrow(
      /'kernel', 'filter'/,
    );
  });

  it.each(['kernel', 'filter'] as const)(
    'a zero magnitude or zero direction gives a zero group and no NaN (%s)',
    (granularity) => {
      const layer = decomposedConv2d({ filters: 3, kernelSize: 2, granularity, activation: 'relu' });
      const x = randn([2, 5, 5, 2], 51);
      layer.apply(x);
      // Zero the whole direction of output channel 0 and the magnitude of (0, 1) / filter 1.
      const direction = tf.tidy(() => tf.mul(randn([2, 2, 2, 3], 52), tf.tensor1d([0, 1, 1])));
      const magnitude =
        granularity === 'kernel'
          ? tf.tensor2d([
              [1, 0, 2],
              [1, 3, 2],
            ])
          : tf.tensor1d([1, 0, 2]);
      layer.setWeights([direction, magnitude, tf.zeros([3])]);
      const k = layer.effectiveKernel();
      const kv = k.arraySync() as number[][][][];
      for (let a = 0; a < 2; a++)
        for (let b = 0; b < 2; b++)
          for (let i = 0; i < 2; i++) {
            expect(Math.abs(kv[a][b][i][0])).toBe(0);
            if (granularity === 'filter' || i === 0) expect(Math.abs(kv[a][b][i][1])).toBe(0);
          }
      const vars = [layer.direction!, layer.magnitude!].map((w) => w.read() as tf.Variable);
      const { value, grads } = tf.variableGrads(
        () => tf.sum(tf.square(layer.apply(x) as tf.Tensor)) as tf.Scalar,
        vars,
      );
      expect(allFinite(value)).toBe(true);
      for (const v of vars) expect(allFinite(grads[v.name])).toBe(true);
      tf.dispose([x, direction, magnitude, k, value, ...Object.values(grads)]);
    },
  );
});

describe('decompose warns about a dilated convolution, which tfjs 4.22 cannot train', () => {
  const net = (dilationRate: number) =>
    tfl.sequential({
      layers: [
        tfl.layers.conv1d({ inputShape: [12, 2], filters: 3, kernelSize: 3, dilationRate, name: 'c1' }),
        tfl.layers.reshape({ targetShape: [12 - 2 * dilationRate, 1, 3] }),
        tfl.layers.conv2d({ filters: 2, kernelSize: [3, 1], dilationRate: [dilationRate, 1], name: 'c2' }),
        tfl.layers.conv2d({ filters: 2, kernelSize: 1, name: 'plain' }),
      ],
    });

  it('names each dilated layer and the fix; training it does throw inside tfjs', async () => {
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      const model = net(2);
      const d = decompose(model);
      expect(warn).toHaveBeenCalledTimes(1);
      const message = String(warn.mock.calls[0][0]);
      expect(message).toMatch(
        /^decompose: 'c1' \(DecomposedConv1D, dilationRate \[2\]\), 'c2' \(DecomposedConv2D, dilationRate \[2,1\]\) cannot be trained: tfjs 4.22 has no gradient[^]*Rebuild them with dilationRate 1[^]*leave it out with include/,
      );
      expect(message).not.toMatch(/'plain'/);
      d.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
      const x = tf.ones([1, 12, 2]);
      const y = tf.ones(d.outputs[0].shape.map((s) => s ?? 1));
      await expect(d.trainOnBatch(x, y)).rejects.toThrow(/dilation rates greater than 1/);
      tf.dispose([x, y]);
      model.dispose();
      d.dispose();
    } finally {
      warn.mockRestore();
    }
  });

  it('says nothing for dilation rate 1', () => {
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      const model = net(1);
      const d = decompose(model);
      expect(warn).not.toHaveBeenCalled();
      model.dispose();
      d.dispose();
    } finally {
      warn.mockRestore();
    }
  });
});
