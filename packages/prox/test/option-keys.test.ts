// Every options object of prox refuses a key it does not take, naming it and the key it likely
// misspells: a misspelled optional key (`beta_1`, `momentun`, `stopAtCompresion`) would otherwise
// silently give its default.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { decomposedDense, magnitudes } from '@normprune/layers';
import {
  l1Penalty,
  lambdaSchedule,
  ProximalAdam,
  ProximalSGD,
  SparsityCallback,
  stepLambda,
  targetLambda,
  warmupLambda,
} from '../src/index.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function model(): tfl.LayersModel {
  return tfl.sequential({ layers: [decomposedDense({ inputShape: [5], units: 3, name: 'd' })] });
}

const base = { learningRate: 0.1, lambda: 0.01, magnitudes: [] };

describe('the optimisers', () => {
  it.each([
    [
      'ProximalSGD',
      () => new ProximalSGD({ ...base, momentun: 0.9 } as never),
      /^ProximalSGD: unknown option `momentun` \(did you mean `momentum`\?\); the options are .*`momentum`, `nesterov`$/,
    ],
    [
      'ProximalSGD',
      () => new ProximalSGD({ ...base, beta1: 0.9 } as never),
      /^ProximalSGD: unknown option `beta1`;/,
    ],
    [
      'ProximalAdam',
      () => new ProximalAdam({ ...base, beta_1: 0.5 } as never),
      /^ProximalAdam: unknown option `beta_1` \(did you mean `beta1`\?\); the options are .*`beta1`, `beta2`, `epsilon`$/,
    ],
    [
      'ProximalAdam',
      () => new ProximalAdam({ ...base, momentum: 0.9 } as never),
      /^ProximalAdam: unknown option `momentum`;/,
    ],
    [
      'ProximalAdam',
      () => new ProximalAdam({ ...base, costWeigthing: 'macs' } as never),
      /unknown option `costWeigthing` \(did you mean `costWeighting`\?\)/,
    ],
    [
      'ProximalSGD',
      () => new ProximalSGD(null as never),
      /^ProximalSGD: options must be an object such as \{ learningRate: 0\.01, lambda: 1e-4, magnitudes: model \}, got null$/,
    ],
  ])('%s refuses a key it does not take', (_, make, message) => {
    expect(make).toThrow(message);
  });

  it('take every documented option, and each its own', () => {
    const m = model();
    const shared = {
      lambda: 0.01,
      magnitudes: m,
      costWeighting: 'params',
      layerMultipliers: { d: 2 },
      renormalize: true,
      progress: { epoch: 1 },
    } as const;
    const sgd = new ProximalSGD({ ...shared, learningRate: 0.1, momentum: 0.9, nesterov: true });
    const adam = new ProximalAdam({ ...shared, learningRate: 0.1, beta1: 0.8, beta2: 0.99, epsilon: 1e-7 });
    // A saved optimiser loads through the same constructor (fromConfig).
    for (const o of [sgd, adam]) {
      const [cls, fromConfig] = tf.serialization.SerializationMap.getMap().classNameMap[o.getClassName()];
      const copy = fromConfig(cls, o.getConfig()) as tf.Optimizer;
      expect(copy.getConfig()).toEqual(o.getConfig());
      copy.dispose();
      o.dispose();
    }
    m.dispose();
  });
});

describe('the other options objects', () => {
  it.each([
    [
      'SparsityCallback',
      () => new SparsityCallback({ stopAtCompresion: 0.5 } as never),
      /^SparsityCallback: unknown option `stopAtCompresion` \(did you mean `stopAtCompression`\?\)/,
    ],
    [
      'l1Penalty',
      () => l1Penalty([], { lamda: 2 } as never),
      /^l1Penalty: unknown option `lamda` \(did you mean `lambda`\?\)/,
    ],
    [
      'warmupLambda',
      () => warmupLambda({ value: 1, warmup: 2, units: 'epoch' } as never),
      /^warmupLambda: unknown option `units` \(did you mean `unit`\?\)/,
    ],
    [
      'stepLambda',
      () => stepLambda({ initial: 1, factor: 2, every: 3, Unit: 'step' } as never),
      /^stepLambda: unknown option `Unit` \(did you mean `unit`\?\)/,
    ],
    [
      'targetLambda',
      () => targetLambda({ initial: 1, targetCompression: 0.5, stallfactor: 10 } as never),
      /^targetLambda: unknown option `stallfactor` \(did you mean `stallFactor`\?\)/,
    ],
    [
      'targetLambda',
      () => targetLambda({ initial: 1, targetCompression: 0.5, maximum: 10 } as never),
      /^targetLambda: unknown option `maximum`; the options are/,
    ],
    [
      'lambdaSchedule',
      () => lambdaSchedule({ kind: 'constant', value: 1, vlaue: 2 } as never),
      /^lambdaSchedule: unknown option `vlaue` \(did you mean `value`\?\)/,
    ],
    [
      'targetLambda',
      () => targetLambda({ kind: 'step', initial: 1, targetCompression: 0.5 } as never),
      /^targetLambda: kind "step" \(a string\) is not 'target': build a schedule from its config with lambdaSchedule\(config\)$/,
    ],
    [
      'stepLambda',
      () => stepLambda({ kind: 'warmup', initial: 1, factor: 2, every: 3 } as never),
      /^stepLambda: kind "warmup" \(a string\) is not 'step'/,
    ],
    [
      'l1Penalty',
      () => l1Penalty([], { lambda: null } as never),
      /^l1Penalty: option `lambda` is null: leave it out for the default, or give a value$/,
    ],
    [
      'ProximalSGD',
      () => new ProximalSGD({ ...base, momentum: null } as never),
      /^ProximalSGD: option `momentum` is null/,
    ],
    [
      'SparsityCallback',
      () => new SparsityCallback({ verbose: 'false' } as never),
      /^SparsityCallback: verbose must be true or false, got "false" \(a string\)$/,
    ],
    [
      'lambdaSchedule',
      () => lambdaSchedule({ kind: 'warmup', value: 1, warmup: 2, strat: 0.5 } as never),
      /^warmupLambda: unknown option `strat` \(did you mean `start`\?\)/,
    ],
  ])('%s refuses a key it does not take', (_, make, message) => {
    expect(make).toThrow(message);
  });

  it("every schedule's config (its state included) builds it again", () => {
    const schedules = [
      warmupLambda({ value: 1, warmup: 2, start: 0.5, unit: 'epoch' }),
      stepLambda({ initial: 1, factor: 2, every: 3, unit: 'step' }),
      targetLambda({ initial: 1, targetCompression: 0.5, factor: 2, max: 8, stallFactor: 10 }),
    ];
    // The target schedule's state (current, lastEpoch, lastCompression, stallFrom) is in its config too.
    schedules[2](0, 1, { compression: 0.1 });
    schedules[2](0, 2, { compression: 0.2 });
    expect(Object.keys(schedules[2].config!)).toEqual(
      expect.arrayContaining(['current', 'lastEpoch', 'lastCompression', 'stallFrom']),
    );
    for (const s of schedules) expect(lambdaSchedule(s.config!).config).toEqual(s.config);
    const m = model();
    const cb = new SparsityCallback({ magnitudes: magnitudes(m), stopAtCompression: 0.5, verbose: false });
    expect(cb).toBeInstanceOf(SparsityCallback);
    expect(l1Penalty(m, { lambda: 2, costWeighting: 'uniform', layerMultipliers: { d: 1 } })).toBeGreaterThan(
      0,
    );
    m.dispose();
  });
});
