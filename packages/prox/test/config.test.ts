// The optimisers' config is spelled as their constructor's options: `new ProximalSGD(opt.getConfig())`
// (Keras' `cls(**config)`, or a config read from a saved model.json) builds the same optimiser, and
// fromConfig still reads the configs earlier versions saved (`lambdaSchedule`, `epoch`,
// `compression`). A config that gives one option in both spellings is refused, naming both.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { decomposedDense } from '@normprune/layers';
import {
  constantLambda,
  type LambdaSchedule,
  ProximalAdam,
  type ProximalAdamConfig,
  ProximalSGD,
  type ProximalSGDConfig,
  SparsityCallback,
  stepLambda,
  targetLambda,
  warmupLambda,
} from '../src/index.js';
import { saveInMemory } from '../../../tools/testing/memory-io.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function mlp(): tfl.Sequential {
  return tfl.sequential({
    layers: [
      decomposedDense({ inputShape: [6], units: 8, activation: 'relu', name: 'fc_1' }),
      decomposedDense({ units: 2, name: 'out' }),
    ],
  });
}

type Cls = typeof ProximalSGD | typeof ProximalAdam;
type Opt = ProximalSGD | ProximalAdam;

const classes: [string, Cls, Record<string, unknown>][] = [
  ['ProximalSGD', ProximalSGD, { learningRate: 0.05, momentum: 0.9, nesterov: true }],
  ['ProximalAdam', ProximalAdam, { learningRate: 1e-3, beta1: 0.8, beta2: 0.99, epsilon: 1e-6 }],
];

// Every kind of lambda: a constant, each built-in schedule (both units where they have one), and
// targetLambda with state to carry.
const lambdas: [string, () => number | LambdaSchedule][] = [
  ['a constant', () => 0.01],
  ['constantLambda', () => constantLambda(0.02)],
  ['warmupLambda (steps)', () => warmupLambda({ value: 0.1, warmup: 50, start: 0.01 })],
  ['warmupLambda (epochs)', () => warmupLambda({ value: 0.1, warmup: 10, unit: 'epoch' })],
  ['stepLambda (epochs)', () => stepLambda({ initial: 0.1, factor: 0.5, every: 2 })],
  ['stepLambda (steps)', () => stepLambda({ initial: 0.1, factor: 0.5, every: 20, unit: 'step' })],
  ['targetLambda', () => targetLambda({ initial: 1e-3, targetCompression: 0.5, factor: 2, max: 1 })],
];

const make = (cls: Cls, o: object): Opt => new (cls as typeof ProximalSGD)(o as never);
const json = <T>(v: T): T => JSON.parse(JSON.stringify(v));

describe.each(classes)('new %s(opt.getConfig())', (_, cls, own) => {
  it.each(lambdas)(
    'with %s, progress and layer multipliers builds the same optimiser (also from JSON)',
    (_kind, lambda) => {
      for (const viaJson of [false, true]) {
        const opt = make(cls, {
          ...own,
          lambda: lambda(),
          magnitudes: [],
          costWeighting: 'params',
          layerMultipliers: { fc_1: 0.5, out: 0 },
          renormalize: false,
        });
        // progress the schedule has seen (targetLambda moves with it)
        opt.observe({ epoch: 1, compression: 0.1 });
        opt.observe({ epoch: 3, compression: 0.2 });
        const config = viaJson ? json(opt.getConfig()) : opt.getConfig();
        const copy = make(cls, config);
        expect(copy).toBeInstanceOf(cls);
        expect(copy.getConfig()).toEqual(opt.getConfig());
        expect(copy.lambda).toBe(opt.lambda);
        expect(copy.epochsCompleted).toBe(3);
        expect(copy.layerMultipliers).toEqual({ fc_1: 0.5, out: 0 });
        expect([copy.costWeighting, copy.renormalize]).toEqual(['params', false]);
        for (const k of Object.keys(own)) expect(copy.getConfig()[k]).toBe(own[k]);
        // fromConfig reads the same config the same way
        const viaFromConfig = cls.fromConfig(cls as never, json(config)) as Opt;
        expect(viaFromConfig.getConfig()).toEqual(opt.getConfig());
        // and both go on as the original does
        for (const [epoch, compression] of [
          [4, 0.25],
          [5, 0.3],
        ]) {
          for (const o of [opt, copy, viaFromConfig]) o.observe({ epoch, compression });
          expect(copy.lambda).toBe(opt.lambda);
          expect(viaFromConfig.lambda).toBe(opt.lambda);
        }
        expect(copy.getConfig()).toEqual(opt.getConfig());
        [opt, copy, viaFromConfig].forEach((o) => o.dispose());
      }
    },
  );

  it('is spelled as the constructor options: a schedule config in lambda, progress, multipliers as a list', () => {
    const opt = make(cls, {
      ...own,
      lambda: targetLambda({ initial: 1e-3, targetCompression: 0.5 }),
      magnitudes: [],
      layerMultipliers: { fc_1: 0.5 },
    });
    opt.observe({ epoch: 2, compression: 0.1 });
    const config = opt.getConfig();
    expect(Object.keys(config).sort()).toEqual(
      [
        'learningRate',
        'lambda',
        'costWeighting',
        'layerMultipliers',
        'renormalize',
        'progress',
        ...Object.keys(own).filter((k) => k !== 'learningRate'),
      ].sort(),
    );
    expect(config.lambda).toMatchObject({ kind: 'target', lastEpoch: 2, lastCompression: 0.1 });
    expect(config.progress).toEqual({ epoch: 2, compression: 0.1 });
    expect(config.layerMultipliers).toEqual([{ name: 'fc_1', multiplier: 0.5 }]);
    // no compression reported: none saved (not null, which the constructor refuses)
    const fresh = make(cls, { ...own, lambda: 0.1, magnitudes: [] });
    expect(fresh.getConfig().progress).toEqual({ epoch: 0 });
    expect(fresh.getConfig().lambda).toBe(0.1);
    [opt, fresh].forEach((o) => o.dispose());
  });

  it('a plain function schedule is saved as its current value (a function has no config)', () => {
    const opt = make(cls, {
      ...own,
      lambda: (_step: number, epoch: number) => 0.1 * (epoch + 1),
      magnitudes: [],
    });
    opt.observe({ epoch: 2 });
    const copy = make(cls, opt.getConfig());
    expect(copy.getConfig().lambda).toBeCloseTo(0.3, 12);
    expect(copy.lambda).toBe(opt.lambda);
    [opt, copy].forEach((o) => o.dispose());
  });

  it('getConfig() and { ...getConfig(), magnitudes: model } type-check and attach the same penalty weights, without leaks', () => {
    const model = mlp();
    const before = tf.memory().numTensors;
    const opt = make(cls, { ...own, lambda: 0.1, magnitudes: model, layerMultipliers: { fc_1: 2 } });
    // The typed config spreads into the typed options: no cast needed.
    const config: ProximalSGDConfig | ProximalAdamConfig = opt.getConfig();
    const copy =
      cls === ProximalSGD
        ? new ProximalSGD({ ...(opt as ProximalSGD).getConfig(), magnitudes: model })
        : new ProximalAdam({ ...(opt as ProximalAdam).getConfig(), magnitudes: model });
    expect(copy.getConfig()).toEqual(config);
    expect(copy.magnitudes).toHaveLength(2);
    expect(copy.penaltyWeights).toEqual(opt.penaltyWeights);
    // The config alone type-checks too (Keras' cls(**config)): nothing attached until attach(model).
    const bare =
      cls === ProximalSGD
        ? new ProximalSGD((opt as ProximalSGD).getConfig())
        : new ProximalAdam((opt as ProximalAdam).getConfig());
    expect(bare.getConfig()).toEqual(config);
    expect(bare.magnitudes).toEqual([]);
    bare.attach(model);
    expect(bare.penaltyWeights).toEqual(opt.penaltyWeights);
    [opt, copy, bare].forEach((o) => o.dispose());
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
});

describe('a model saved with includeOptimizer', () => {
  it.each(classes)(
    "%s: the training_config's optimizer config builds the optimiser with new, and loads (names with '_' kept)",
    async (_, cls, own) => {
      const model = mlp();
      const opt = make(cls, {
        ...own,
        lambda: stepLambda({ initial: 0.1, factor: 0.5, every: 1 }),
        magnitudes: model,
        layerMultipliers: { fc_1: 0.5 },
      });
      model.compile({ optimizer: opt, loss: 'meanSquaredError' });
      const xs = tf.randomNormal([8, 6], 0, 1, 'float32', 1);
      const ys = tf.randomNormal([8, 2], 0, 1, 'float32', 2);
      await model.fit(xs, ys, { epochs: 2, batchSize: 4, verbose: 0, callbacks: [new SparsityCallback()] });
      const artifacts = await saveInMemory(model, { includeOptimizer: true });
      // what a user reads from model.json
      const trainingConfig = json(artifacts.trainingConfig) as unknown as {
        optimizer_config: { class_name: string; config: Record<string, unknown> };
      };
      expect(trainingConfig.optimizer_config.class_name).toBe(cls.className);
      const fromJson = make(cls, trainingConfig.optimizer_config.config);
      expect(fromJson.getConfig()).toEqual(opt.getConfig());
      expect(fromJson.epochsCompleted).toBe(2);
      expect(fromJson.lambda).toBe(opt.lambda);
      // and tfjs loads it (its loader camel-cases the config's keys and strings on the way)
      const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts));
      expect(loaded.optimizer.getConfig()).toEqual(opt.getConfig());
      [opt, fromJson, loaded.optimizer].forEach((o) => o.dispose());
      tf.dispose([xs, ys]);
      model.dispose();
      loaded.dispose();
    },
  );
});

// Configs as earlier versions saved them: the lambda's current value beside the schedule's config in
// `lambdaSchedule` (null for a constant), and the progress in `epoch` and `compression`; the first
// versions had neither `epoch` nor `compression`.
describe('configs saved by earlier versions', () => {
  const target = {
    kind: 'target',
    initial: 0.001,
    targetCompression: 0.5,
    factor: 2,
    stallFactor: 100,
    current: 0.004,
    lastEpoch: 3,
    lastCompression: 0.2,
  };
  const old: [string, Cls, Record<string, unknown>, Record<string, unknown>][] = [
    [
      'ProximalSGD, a constant, no progress keys (the first versions)',
      ProximalSGD,
      {
        learningRate: 0.05,
        lambda: 0.05,
        lambdaSchedule: null,
        costWeighting: 'uniform',
        layerMultipliers: [],
        renormalize: true,
        momentum: 0.9,
        nesterov: true,
      },
      {
        learningRate: 0.05,
        lambda: 0.05,
        costWeighting: 'uniform',
        layerMultipliers: [],
        renormalize: true,
        progress: { epoch: 0 },
        momentum: 0.9,
        nesterov: true,
      },
    ],
    [
      'ProximalSGD, a constant, epoch 0 and compression null',
      ProximalSGD,
      {
        learningRate: 0.05,
        lambda: 0.05,
        lambdaSchedule: null,
        costWeighting: 'macs',
        layerMultipliers: [{ name: 'fc_1', multiplier: 0 }],
        renormalize: false,
        epoch: 0,
        compression: null,
        momentum: 0,
        nesterov: false,
      },
      {
        learningRate: 0.05,
        lambda: 0.05,
        costWeighting: 'macs',
        layerMultipliers: [{ name: 'fc_1', multiplier: 0 }],
        renormalize: false,
        progress: { epoch: 0 },
        momentum: 0,
        nesterov: false,
      },
    ],
    [
      // the schedule decides lambda: the value saved beside it (here stale) is not read
      'ProximalAdam, targetLambda with state, epoch and compression',
      ProximalAdam,
      {
        learningRate: 0.001,
        lambda: 0.123,
        lambdaSchedule: target,
        costWeighting: 'params',
        layerMultipliers: [{ name: 'fc_1', multiplier: 0.5 }],
        renormalize: true,
        epoch: 3,
        compression: 0.2,
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-7,
      },
      {
        learningRate: 0.001,
        lambda: target,
        costWeighting: 'params',
        layerMultipliers: [{ name: 'fc_1', multiplier: 0.5 }],
        renormalize: true,
        progress: { epoch: 3, compression: 0.2 },
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-7,
      },
    ],
  ];

  it.each(old)('%s: fromConfig loads it as before', (_, cls, saved, now) => {
    const map = tf.serialization.SerializationMap.getMap().classNameMap;
    const [registered, fromConfig] = map[cls.className];
    // customObjects: what tfjs's deserialisation adds to every config
    for (const config of [json(saved), { ...json(saved), customObjects: {} }]) {
      const loaded = fromConfig(registered, config as never) as Opt;
      expect(loaded).toBeInstanceOf(cls);
      expect(loaded.getConfig()).toEqual(now);
      const expectedLambda = typeof now.lambda === 'number' ? now.lambda : target.current;
      expect(loaded.lambda).toBe(expectedLambda);
      expect(loaded.epochsCompleted).toBe((now.progress as { epoch: number }).epoch);
      loaded.dispose();
    }
  });

  it('loads from a model.json an earlier version saved', async () => {
    const model = mlp();
    const opt = new ProximalAdam({ learningRate: 0.001, lambda: 0.1, magnitudes: model });
    model.compile({ optimizer: opt, loss: 'meanSquaredError' });
    const artifacts = await saveInMemory(model, { includeOptimizer: true });
    const [, , saved, now] = old[2];
    const trainingConfig = artifacts.trainingConfig as unknown as { optimizer_config: { config: unknown } };
    trainingConfig.optimizer_config.config = json(saved);
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts));
    expect(loaded.optimizer.getConfig()).toEqual(now);
    expect((loaded.optimizer as ProximalAdam).lambda).toBe(target.current);
    [opt, loaded.optimizer].forEach((o) => o.dispose());
    model.dispose();
    loaded.dispose();
  });

  it.each(old)('%s: new refuses it, saying fromConfig reads it', (_, cls, saved) => {
    const keys = ['lambdaSchedule', 'epoch', 'compression'].filter((k) => k in saved);
    expect(() => make(cls, json(saved))).toThrow(
      new RegExp(
        `^${cls.className}: ${keys.map((k) => `\`${k}\``).join(', ')} (is|are) how a config saved by an earlier version ` +
          `of @normprune/prox spells .*: ${cls.className}\\.fromConfig\\(${cls.className}, config\\) reads either spelling`,
      ),
    );
  });
});

describe('a config that gives one option in both spellings', () => {
  const base = { learningRate: 0.1, costWeighting: 'uniform', layerMultipliers: [], renormalize: true };
  const schedule = warmupLambda({ value: 0.1, warmup: 10 }).config!;
  it.each([
    [
      { ...base, lambda: schedule, lambdaSchedule: schedule, progress: { epoch: 0 } },
      /^ProximalSGD\.fromConfig: the config gives the lambda schedule twice, as `lambda` \(a schedule config\) and as `lambdaSchedule` \(how earlier versions saved it\); keep one of them$/,
    ],
    [
      { ...base, lambda: 0.1, progress: { epoch: 2 }, epoch: 2 },
      /^ProximalSGD\.fromConfig: the config gives the training progress twice, as `progress` and as `epoch` \(how earlier versions saved it\); keep one of them$/,
    ],
    [
      { ...base, lambda: 0.1, progress: { epoch: 2 }, epoch: 2, compression: null },
      /as `progress` and as `epoch` and `compression` \(how earlier versions saved it\)/,
    ],
    [{ ...base, lambda: 0.1, progress: {}, compression: 0.5 }, /as `progress` and as `compression` \(how/],
  ])('%j is refused, naming both keys', (config, message) => {
    const before = tf.memory().numTensors;
    expect(() => ProximalSGD.fromConfig(ProximalSGD, json(config) as never)).toThrow(message);
    // through tfjs's registry too, as loading a model goes
    const [cls, fromConfig] = tf.serialization.SerializationMap.getMap().classNameMap['ProximalAdam'];
    expect(() => fromConfig(cls, { ...json(config), customObjects: {} } as never)).toThrow(
      /^ProximalAdam\.fromConfig: the config gives the/,
    );
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('the constructor still refuses what it does not take', () => {
  const base = { learningRate: 0.1, lambda: 0.1, magnitudes: [] };
  it.each([
    [{ ...base, lamda: 0.1 }, /^ProximalSGD: unknown option `lamda` \(did you mean `lambda`\?\)/],
    [
      { ...base, layerMultiplier: { fc_1: 1 } },
      /^ProximalSGD: unknown option `layerMultiplier` \(did you mean `layerMultipliers`\?\)/,
    ],
    [
      { ...base, progres: { epoch: 1 } },
      /^ProximalSGD: unknown option `progres` \(did you mean `progress`\?\)/,
    ],
    [
      { ...base, progress: { epochsCompleted: 3 } },
      /^progress: unknown option `epochsCompleted`; the options are `epoch`, `compression`$/,
    ],
    [{ ...base, progress: { epoc: 3 } }, /^progress: unknown option `epoc` \(did you mean `epoch`\?\)/],
    [{ ...base, progress: { epoch: 1, compression: null } }, /^progress: option `compression` is null/],
    [
      { ...base, lambdaSchedule: { kind: 'constant', value: 0.1 } },
      /^ProximalSGD: `lambdaSchedule` is how a config saved by an earlier version of @normprune\/prox spells `lambda` \(a schedule, or its config\): ProximalSGD\.fromConfig\(ProximalSGD, config\) reads either spelling/,
    ],
    [
      { ...base, epoch: 3 },
      /^ProximalSGD: `epoch` is how a config saved by an earlier version of @normprune\/prox spells `progress: \{ epoch \}`/,
    ],
    [
      { ...base, layerMultipliers: [{ name: 'fc_1', multipler: 0.5 }] },
      /^layerMultipliers\[0\]: unknown option `multipler` \(did you mean `multiplier`\?\)/,
    ],
    [
      { ...base, layerMultipliers: [{ multiplier: 0.5 }] },
      /^layerMultipliers\[0\]\.name must be a layer name, got undefined/,
    ],
    [
      { ...base, layerMultipliers: [{ name: '', multiplier: 0.5 }] },
      /^layerMultipliers\[0\]\.name must be a layer name, got ""/,
    ],
    [
      { ...base, layerMultipliers: [0.5] },
      /^layerMultipliers\[0\]: options must be an object such as \{ name: 'fc1', multiplier: 0\.5 \}, got 0\.5/,
    ],
    [
      {
        ...base,
        layerMultipliers: [
          { name: 'fc_1', multiplier: 0.5 },
          { name: 'fc_1', multiplier: 1 },
        ],
      },
      /^layerMultipliers: layer 'fc_1' is listed twice$/,
    ],
    [
      { ...base, layerMultipliers: [{ name: 'fc_1', multiplier: -1 }] },
      /^layerMultipliers\['fc_1'\] must be a finite number >= 0, got -1/,
    ],
    [
      { ...base, layerMultipliers: [{ name: 'fc_1' }] },
      /^layerMultipliers\['fc_1'\] must be a finite number >= 0, got undefined/,
    ],
    [
      { ...base, layerMultipliers: 0.5 },
      /^layerMultipliers must be a record such as \{ fc1: 0\.5 \} or a list such as \[\{ name: 'fc1', multiplier: 0\.5 \}\], got 0\.5/,
    ],
  ])('%j', (options, message) => {
    expect(() => new ProximalSGD(options as never)).toThrow(message);
  });

  it('observe refuses a key other than epoch and compression', () => {
    const opt = new ProximalSGD(base);
    expect(() => opt.observe({ epochs: 2 } as never)).toThrow(
      /^observe: unknown option `epochs` \(did you mean `epoch`\?\)/,
    );
    expect(opt.epochsCompleted).toBe(0);
    opt.dispose();
  });
});
