// costWeighting 'macs', and 'flops', its deprecated former name: the same weights and steps,
// and one warning per process. A file of its own: the warning is once per process (per
// jest module registry), so no other test may have used 'flops' before these.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { decomposedConv2d, decomposedDense, magnitudes } from '@normprune/layers';
import {
  COST_WEIGHTINGS,
  FORMER_COST_WEIGHTINGS,
  l1Penalty,
  ProximalAdam,
  ProximalSGD,
} from '../src/index.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function convNet(): tfl.Sequential {
  return tfl.sequential({
    layers: [
      decomposedConv2d({
        inputShape: [6, 6, 2],
        filters: 3,
        kernelSize: 3,
        granularity: 'kernel',
        name: 'c1',
        kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }),
      }),
      tfl.layers.flatten(),
      decomposedDense({
        units: 4,
        name: 'd1',
        kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }),
      }),
    ],
  });
}

/** The magnitudes after `steps` steps of `make()` on fixed gradients, from fixed starting magnitudes. */
function magnitudesAfter(make: (model: tfl.LayersModel) => tf.Optimizer, steps: number): number[][] {
  const model = convNet();
  const infos = magnitudes(model);
  const opt = make(model);
  for (let s = 0; s < steps; s++) {
    tf.tidy(() =>
      opt.applyGradients(
        infos.map((m, i) => ({
          name: m.magnitude.name,
          tensor: tf.fill(m.magnitude.shape, 0.01 * (i + 1) * (s + 1)),
        })),
      ),
    );
  }
  const out = infos.map((m) => Array.from(m.magnitude.dataSync()));
  opt.dispose();
  model.dispose();
  return out;
}

describe("costWeighting 'macs' and its deprecated alias 'flops'", () => {
  let warn: jest.SpyInstance;
  beforeEach(() => {
    warn = jest.spyOn(console, 'warn').mockImplementation(() => {});
  });
  afterEach(() => warn.mockRestore());

  it("'macs' weighs each group by its multiply-accumulates per sample, mean 1, without a warning", () => {
    const model = convNet();
    const infos = magnitudes(model);
    const opt = new ProximalSGD({ learningRate: 0.1, lambda: 1, magnitudes: infos, costWeighting: 'macs' });
    expect(opt.costWeighting).toBe('macs');
    const c = opt.penaltyWeights;
    const groups = infos.reduce((s, m) => s + m.groups, 0);
    const mean = infos.reduce((s, m, i) => s + m.groups * infos[i].macsPerGroup, 0) / groups;
    expect(c).toEqual(infos.map((m) => m.macsPerGroup / mean));
    expect(c[0]).not.toBe(c[1]);
    expect(opt.getConfig()['costWeighting']).toBe('macs');
    opt.dispose();
    model.dispose();
    expect(warn).not.toHaveBeenCalled();
  });

  it("'flops' gives exactly the numbers of 'macs' and warns once per process that it is deprecated", () => {
    const model = convNet();
    const infos = magnitudes(model);
    const macs = new ProximalSGD({ learningRate: 0.1, lambda: 1, magnitudes: infos, costWeighting: 'macs' });
    const flops = new ProximalSGD({
      learningRate: 0.1,
      lambda: 1,
      magnitudes: infos,
      costWeighting: 'flops',
    });
    expect(flops.costWeighting).toBe('macs');
    expect(flops.penaltyWeights).toEqual(macs.penaltyWeights);
    // A config written from it says 'macs'.
    expect(flops.getConfig()).toEqual(macs.getConfig());
    expect(l1Penalty(infos, { lambda: 0.5, costWeighting: 'flops' })).toBe(
      l1Penalty(infos, { lambda: 0.5, costWeighting: 'macs' }),
    );
    macs.dispose();
    flops.dispose();
    model.dispose();

    // Training steps, momentum and Adam alike, end at the same bits.
    for (const make of [
      (costWeighting: 'uniform' | 'macs' | 'flops') => (m: tfl.LayersModel) =>
        new ProximalSGD({ learningRate: 0.5, momentum: 0.9, lambda: 0.02, magnitudes: m, costWeighting }),
      (costWeighting: 'uniform' | 'macs' | 'flops') => (m: tfl.LayersModel) =>
        new ProximalAdam({ learningRate: 0.05, lambda: 0.02, magnitudes: m, costWeighting }),
    ]) {
      const a = magnitudesAfter(make('macs'), 5);
      const b = magnitudesAfter(make('flops'), 5);
      expect(b).toEqual(a);
      // ... and the weighting mattered: 'uniform' ends elsewhere.
      expect(magnitudesAfter(make('uniform'), 5)).not.toEqual(a);
    }

    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0][0])).toMatch(
      /costWeighting 'flops' is deprecated.*write costWeighting: 'macs'/,
    );
  });

  it("a config saved with 'flops' (before the rename) loads as 'macs', without a warning", () => {
    const map = tf.serialization.SerializationMap.getMap().classNameMap;
    const [cls, fromConfig] = map['ProximalAdam'];
    const o = new ProximalAdam({ learningRate: 0.01, lambda: 1e-3, magnitudes: [], costWeighting: 'macs' });
    const saved = { ...JSON.parse(JSON.stringify(o.getConfig())), costWeighting: 'flops' };
    const copy = fromConfig(cls, saved) as ProximalAdam;
    expect(copy.costWeighting).toBe('macs');
    expect(copy.getConfig()).toEqual(o.getConfig());
    o.dispose();
    copy.dispose();
    expect(warn).not.toHaveBeenCalled();
  });

  it("an unknown weighting is refused with the list of those there are, which names 'macs'", () => {
    expect(
      () =>
        new ProximalSGD({ learningRate: 0.1, lambda: 0, magnitudes: [], costWeighting: 'MACs' as 'macs' }),
    ).toThrow(/unknown costWeighting: "MACs"; allowed: 'uniform', 'params', 'macs'$/);
  });

  it('every former name maps to a current weighting that is not itself a former name', () => {
    expect(FORMER_COST_WEIGHTINGS).toEqual({ flops: 'macs' });
    expect(Object.isFrozen(FORMER_COST_WEIGHTINGS)).toBe(true);
    for (const [former, current] of Object.entries(FORMER_COST_WEIGHTINGS)) {
      expect(COST_WEIGHTINGS).toContain(current);
      expect(COST_WEIGHTINGS).not.toContain(former);
    }
    // Names inherited from Object.prototype are not former names.
    expect(
      () =>
        new ProximalSGD({
          learningRate: 0.1,
          lambda: 0,
          magnitudes: [],
          costWeighting: 'toString' as 'macs',
        }),
    ).toThrow(/unknown costWeighting: "toString"/);
  });
});
