// prune keeps what a Dense / Conv2D layer was built with: every option but the number of units or
// filters, and the outputs. The weights here break their constraints (tfjs applies none while
// training), so those are left out, and said: tfjs would apply them when an export is loaded.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { decompose, fold, magnitudes } from '@normprune/layers';
import { prune } from '../src/index';
import { outputDiff } from './helpers';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const seeded = (seed: number) => tfl.initializers.glorotNormal({ seed });

function plainModel(): tfl.Sequential {
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        inputShape: [8, 7, 2],
        filters: 4,
        kernelSize: 3,
        dilationRate: 2,
        padding: 'same',
        useBias: false,
        activation: 'relu',
        // Small enough that the glorot kernels violate them: a write through setWeights would change them.
        kernelConstraint: tfl.constraints.maxNorm({ maxValue: 0.3, axis: [0, 1, 2] as never }),
        kernelRegularizer: tfl.regularizers.l2({ l2: 0.01 }),
        kernelInitializer: seeded(1),
        name: 'c1',
      }),
      tfl.layers.conv2d({
        filters: 4,
        kernelSize: [3, 2],
        strides: [2, 1],
        activation: 'elu',
        biasConstraint: tfl.constraints.nonNeg(),
        biasInitializer: tfl.initializers.constant({ value: -0.3 }),
        kernelInitializer: seeded(2),
        trainable: false,
        name: 'c2',
      }),
      tfl.layers.flatten(),
      tfl.layers.dense({
        units: 5,
        activation: 'tanh',
        kernelConstraint: tfl.constraints.nonNeg(),
        biasRegularizer: tfl.regularizers.l1({ l1: 0.01 }),
        kernelInitializer: seeded(3),
        name: 'd',
      }),
      tfl.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: seeded(4), name: 'out' }),
    ],
  });
}

test.each(['kernel', 'filter'] as const)(
  'a pruned model keeps every option and the outputs of the folded model (conv2d %s)',
  (conv2d) => {
    const dec = decompose(plainModel(), { granularity: { conv2d } });
    // Kill c1's filter 1 (whole filter: every 2-D kernel of it), c2's filter 2, d's unit 0, as training would.
    const dead: Record<string, (q: number, shape: number[]) => boolean> = {
      c1: (q, s) => (s.length === 2 ? q % s[1] === 1 : q === 1),
      c2: (q, s) => (s.length === 2 ? q % s[1] === 2 : q === 2),
      d: (q) => q === 0,
    };
    for (const m of magnitudes(dec)) {
      const kill = dead[m.layerName];
      if (!kill) continue;
      const g = Float32Array.from(m.magnitude.dataSync());
      g.forEach((_, q) => kill(q, m.magnitude.shape) && (g[q] = 0));
      tf.tidy(() => m.magnitude.assign(tf.tensor(g, m.magnitude.shape)));
    }
    const folded = fold(dec);
    for (const input of [folded, dec]) {
      const { model: pruned, report } = prune(input);
      const { abs, scale } = outputDiff(folded, pruned);
      expect(abs).toBeLessThanOrEqual(1e-5 * Math.max(1, scale));
      const broken: Record<string, string> = {
        c1: 'kernelConstraint',
        c2: 'biasConstraint',
        d: 'kernelConstraint',
      };
      for (const name of ['c1', 'c2', 'd', 'out']) {
        const before = folded.getLayer(name).getConfig();
        const after = pruned.getLayer(name).getConfig();
        const size = before.filters != null ? 'filters' : 'units';
        const dropped = broken[name] ? { [broken[name]]: null } : {};
        expect({ ...after, [size]: null }).toEqual({ ...before, [size]: null, ...dropped });
      }
      expect(report.warnings.filter((w) => w.includes('Constraint')).map((w) => w.split(':')[0])).toEqual([
        "Conv2D 'c1'",
        "Conv2D 'c2'",
        "Dense 'd'",
      ]);
      expect(pruned.getLayer('c1').getConfig().filters).toBe(3);
      expect(pruned.getLayer('c2').getConfig().filters).toBe(3);
      expect(pruned.getLayer('d').getConfig().units).toBe(4);
      expect(pruned.getLayer('c2').trainable).toBe(false);
      pruned.dispose();
    }
    [dec, folded].forEach((m) => m.dispose());
  },
);
