// src/graph.ts supports single-output layers only. A layer with several outputs (an RNN with
// returnState) is refused by name as soon as the graph reaches it. The two later guards, against
// a layer reading output N > 0 of another and against a model input/output other than output 0
// of its layer, cannot be reached with a model tfjs builds: only a multi-output layer has an
// output N > 0, and it is refused first, while a model input is always an InputLayer's only
// output. They are exercised here on configs that say so anyway.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { prune } from '../src/index';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

type Sym = tfl.SymbolicTensor;

/** x [4, 3] -> LSTM with returnState, giving [output, state h, state c]. */
function lstmWithState(): { x: Sym; outputs: Sym[] } {
  const x = tfl.input({ shape: [4, 3], name: 'x' });
  // glorotNormal: tfjs's default orthogonal initializer needs chained ops these tests do not load
  const lstm = tfl.layers.lstm({
    units: 5,
    returnState: true,
    name: 'lstm',
    recurrentInitializer: 'glorotNormal',
  });
  return { x, outputs: lstm.apply(x) as Sym[] };
}

/** x [6] -> Dense 'h' (5) -> Dense 'out' (3). */
function twoDense(): tfl.LayersModel {
  const x = tfl.input({ shape: [6], name: 'x' });
  const h = tfl.layers.dense({ units: 5, activation: 'relu', name: 'h' }).apply(x) as Sym;
  const out = tfl.layers.dense({ units: 3, name: 'out' }).apply(h) as Sym;
  return tfl.model({ inputs: x, outputs: out });
}

/** `model` whose getConfig() answers `edit` of its real config (deep copied first). */
function withConfig(model: tfl.LayersModel, edit: (config: any) => void): tfl.LayersModel {
  const real = model.getConfig.bind(model);
  jest.spyOn(model, 'getConfig').mockImplementation(() => {
    const config = JSON.parse(JSON.stringify(real()));
    edit(config);
    return config;
  });
  return model;
}

const several =
  "surgery: layer 'lstm' (LSTM) has several outputs; only single-output layers are supported: build it with " +
  "one (for a recurrent layer, returnState: false), then prune. Without pruning, exportModel(model, dir, { format: 'sparse' })";

describe('graph: layers with several outputs', () => {
  it.each<['refuse' | 'keep']>([['refuse'], ['keep']])(
    'refuses a Dense reading the state (output 1) of an LSTM, naming the LSTM (unknownLayers %s)',
    (unknownLayers) => {
      const { x, outputs } = lstmWithState();
      const y = tfl.layers.dense({ units: 2, name: 'd' }).apply(outputs[1]) as Sym;
      const model = tfl.model({ inputs: x, outputs: y });
      // what the graph would have to follow: d reads tensor 1 of the LSTM
      const d = (model.getConfig() as any).layers.find((l: any) => l.name === 'd');
      expect(d.inboundNodes[0][0].slice(0, 3)).toEqual(['lstm', 0, 1]);
      const start = tf.memory().numTensors;
      expect(() => prune(model, { unknownLayers })).toThrow(several);
      expect(tf.memory().numTensors).toBe(start);
      model.dispose();
    },
  );

  it('refuses a model whose outputs are outputs 0 and 2 of an LSTM, naming the LSTM', () => {
    const { x, outputs } = lstmWithState();
    const model = tfl.model({ inputs: x, outputs: [outputs[0], outputs[2]] });
    expect((model.getConfig() as any).outputLayers).toEqual([
      ['lstm', 0, 0],
      ['lstm', 0, 2],
    ]);
    expect(() => prune(model, { unknownLayers: 'keep' })).toThrow(several);
    model.dispose();
  });
});

describe('graph: guards against reading an output other than 0, on configs that say so', () => {
  it('the unaltered model prunes (the configs below differ from it in one index only)', () => {
    const model = twoDense();
    const { model: pruned } = prune(model);
    expect(pruned.layers.map((l) => l.name)).toEqual(['x', 'h', 'out']);
    pruned.dispose();
    model.dispose();
  });

  it('refuses a layer reading output 1 of another, naming both', () => {
    const model = withConfig(twoDense(), (config) => {
      config.layers.find((l: any) => l.name === 'out').inboundNodes[0][0][2] = 1;
    });
    const start = tf.memory().numTensors;
    expect(() => prune(model)).toThrow(
      "surgery: layer 'out' reads output 1 of 'h'; multi-output layers are not supported",
    );
    expect(tf.memory().numTensors).toBe(start);
    model.dispose();
  });

  it.each<[string, string, string]>([
    ['a model output', 'outputLayers', 'out'],
    ['a model input', 'inputLayers', 'x'],
  ])('refuses %s that is output 1 of its layer, naming the layer', (_, key, name) => {
    const model = withConfig(twoDense(), (config) => {
      config[key][0][2] = 1;
    });
    expect(() => prune(model)).toThrow(`surgery: model input/output '${name}' index 1 not supported`);
    model.dispose();
  });
});
