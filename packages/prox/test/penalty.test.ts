// The helpers around the penalty, by value: l1Penalty weighs layers by their
// multipliers, keepLargestFilters ranks filters by the L2 norm of their kernels'
// magnitudes, and measureSparsity calls a group live when its magnitude is
// exactly non-zero, however small.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { decomposedConv2d, decomposedDense, magnitudes } from '@normprune/layers';
import {
  keepLargestFilters,
  keepLargestGroups,
  l1Penalty,
  measureSparsity,
  ProximalSGD,
  type ProximalSGDConfig,
} from '../src/index.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Dense 3 -> 2 ('a') -> 3 ('b'), one magnitude per neuron, set to `a` and `b`. */
function mlp(a: number[], b: number[]): tfl.LayersModel {
  const m = tfl.sequential({
    layers: [
      decomposedDense({ inputShape: [3], units: 2, name: 'a' }),
      decomposedDense({ units: 3, name: 'b' }),
    ],
  });
  const [ma, mb] = magnitudes(m);
  tf.tidy(() => {
    ma.magnitude.assign(tf.tensor1d(a));
    mb.magnitude.assign(tf.tensor1d(b));
  });
  return m;
}

describe('a list that is not magnitudes(model)', () => {
  it('is refused naming the entry, with a hint for the magnitude tensors and the layers themselves', async () => {
    const m = mlp([1, -2], [1, 1, 1]);
    const infos = magnitudes(m);
    const tensors = infos.map((i) => i.magnitude);
    await expectNoLeak(async () => {
      // Before: tfjs's "Argument 'x' passed to 'abs' must be a Tensor or TensorLike, but got 'null'".
      expect(() => l1Penalty(tensors as never)).toThrow(
        /^l1Penalty: expected a LayersModel or a list of magnitudes .*, got a list whose entry 0 is .* \(a tensor: pass the MagnitudeInfo entries magnitudes\(model\) returns/,
      );
      await expect(measureSparsity(m.layers as never)).rejects.toThrow(
        /^measureSparsity: .*got a list whose entry 0 is an object \(DecomposedDense\) \(a layer: pass the model, or magnitudes\(model\)\)$/,
      );
      expect(
        () => new ProximalSGD({ learningRate: 0.1, lambda: 0.1, magnitudes: [infos[0], {}] as never }),
      ).toThrow(/^attach: .*got a list whose entry 1 is an object \(Object\)$/);
      expect(() => keepLargestGroups([1] as never, { a: 1 })).toThrow(/got a list whose entry 0 is 1$/);
      // The real list still works, and so does an empty one.
      expect(l1Penalty(infos)).toBeCloseTo(6, 5);
      expect(l1Penalty([])).toBe(0);
    });
    m.dispose();
  });
});

describe('l1Penalty', () => {
  it('is lambda times the sum of |magnitude|, each layer weighed by its multiplier', async () => {
    const m = mlp([1, -2], [1, 1, 1]);
    await expectNoLeak(() => {
      expect(l1Penalty(m, { lambda: 1 })).toBeCloseTo(6, 5);
      // a counts nothing: 2 x (1 + 1 + 1)
      expect(l1Penalty(m, { lambda: 2, layerMultipliers: { a: 0 } })).toBeCloseTo(6, 5);
      // a counts half: 0.5 x 3 + 3
      expect(l1Penalty(m, { lambda: 1, layerMultipliers: { a: 0.5 } })).toBeCloseTo(4.5, 5);
      expect(l1Penalty(m, { lambda: 1, layerMultipliers: { a: 2, b: 3 } })).toBeCloseTo(2 * 3 + 3 * 3, 5);
    });
    m.dispose();
  });

  it("takes layerMultipliers as the list an optimiser's config saves, as the optimisers do", async () => {
    const m = mlp([1, 2], [1, 1, 1]);
    const opt = new ProximalSGD({
      learningRate: 0.1,
      lambda: 0.5,
      layerMultipliers: { a: 0.5 },
      magnitudes: m,
    });
    const config = JSON.parse(JSON.stringify(opt.getConfig())) as ProximalSGDConfig;
    expect(config.layerMultipliers).toEqual([{ name: 'a', multiplier: 0.5 }]);
    await expectNoLeak(() => {
      // 0.5 x (0.5 x 3 + 3)
      expect(
        l1Penalty(m, { lambda: config.lambda as number, layerMultipliers: config.layerMultipliers }),
      ).toBeCloseTo(2.25, 5);
      expect(
        l1Penalty(m, {
          layerMultipliers: [
            { name: 'a', multiplier: 2 },
            { name: 'b', multiplier: 3 },
          ],
        }),
      ).toBeCloseTo(2 * 3 + 3 * 3, 5);
      expect(l1Penalty(m, { layerMultipliers: [] })).toBeCloseTo(6, 5);
    });
    // The list is checked as the optimisers check it.
    expect(() => l1Penalty(m, { layerMultipliers: [{ name: 'c', multiplier: 1 }] })).toThrow(
      "layerMultipliers: no decomposed layer named 'c' (have: a, b)",
    );
    expect(() => l1Penalty(m, { layerMultipliers: [{ name: 'a', multiplier: -1 }] })).toThrow(
      "layerMultipliers['a'] must be a finite number >= 0, got -1",
    );
    expect(() =>
      l1Penalty(m, {
        layerMultipliers: [
          { name: 'a', multiplier: 1 },
          { name: 'a', multiplier: 2 },
        ],
      }),
    ).toThrow("layerMultipliers: layer 'a' is listed twice");
    opt.dispose();
    m.dispose();
  });
});

describe('keepLargestFilters', () => {
  it("ranks a 'kernel'-granularity conv's filters by the L2 norm of their kernels' magnitudes, not the L1", async () => {
    const m = tfl.sequential({
      layers: [decomposedConv2d({ inputShape: [4, 4, 4], filters: 2, kernelSize: 1, name: 'c' })],
    });
    const [c] = magnitudes(m);
    // filter 0: four kernels of 1 (L2 2, L1 4); filter 1: one kernel of 3 (L2 3, L1 3)
    tf.tidy(() =>
      c.magnitude.assign(
        tf.tensor2d([
          [1, 3],
          [1, 0],
          [1, 0],
          [1, 0],
        ]),
      ),
    );
    await expectNoLeak(() => keepLargestFilters(m, { c: 1 }));
    expect(Array.from(c.magnitude.dataSync())).toEqual([0, 3, 0, 0, 0, 0, 0, 0]);
    m.dispose();
  });
});

describe('measureSparsity', () => {
  it('counts a group live when its magnitude is not exactly 0, however small', async () => {
    const m = mlp([1, 1], [1e-8, 0, -1e-30]);
    const s = await expectNoLeak(() => measureSparsity(m));
    expect(s.liveGroups['b']).toBe(2);
    expect(s.liveGroups['a']).toBe(2);
    m.dispose();
  });
});
