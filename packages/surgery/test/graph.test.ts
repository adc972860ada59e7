// src/graph.ts supports single-output layers only. A layer with several outputs (an RNN with
// returnState) is refused by name as soon as the graph reaches it. The two later guards, against
// a layer reading output N > 0 of another and against a model input/output other than output 0
// of its layer, cannot be reached with a model tfjs builds: only a multi-output layer has an
// output N > 0, and it is refused first, while a model input is always an InputLayer's only
// output. They are exercised here on configs that say so anyway.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { analyze, prune } from '../src/index';

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

describe("graph: a model's own calls, when another model built on its layers calls them too", () => {
  /** Zeroes units `dead` of Dense or Conv2D layer `name` of `model` and gives every bias 0.3. */
  function kill(model: tfl.LayersModel, name: string, dead: number[]): void {
    const layer = model.getLayer(name);
    const [kernel, bias] = layer.getWeights();
    const cout = kernel.shape[kernel.shape.length - 1];
    const v = Float32Array.from(kernel.dataSync(), (w, p) => (dead.includes(p % cout) ? 0 : w));
    const ws = [tf.tensor(v, kernel.shape), tf.fill(bias.shape, 0.3)];
    layer.setWeights(ws);
    tf.dispose(ws);
  }

  function same(a: tfl.LayersModel, b: tfl.LayersModel, shape: number[]): void {
    tf.tidy(() => {
      const x = tf.randomNormal(shape, 0, 1, 'float32', 3);
      const d = tf.max(tf.abs(tf.sub(a.predict(x) as tf.Tensor, b.predict(x) as tf.Tensor)));
      expect(d.dataSync()[0]).toBeLessThan(1e-5);
    });
  }

  it('a Sequential whose layers another model applies to its own input prunes (they run once in it)', () => {
    for (const units of [5, 8]) {
      const seq = tfl.sequential({
        layers: [
          tfl.layers.dense({ inputShape: [6], units, activation: 'relu', name: 'h' }),
          tfl.layers.dense({ units: 3, name: 'out' }),
        ],
      });
      kill(seq, 'h', [0, 2]);
      const x = tfl.input({ shape: [6] });
      const head = tfl.layers.dense({ units: 2, name: 'head' }).apply(seq.getLayer('h').apply(x)) as Sym;
      const other = tfl.model({ inputs: x, outputs: head });
      const { model, report } = prune(seq);
      expect(report.layers.map((l) => [l.name, l.unitsAfter])).toEqual([
        ['h', units - 2],
        ['out', 3],
      ]);
      same(seq, model, [4, 6]);
      expect(prune(other).report.layers[0].unitsAfter).toBe(units - 2);
    }
  });

  it('a model whose layers another model runs at another input size prunes, counted at its own size', () => {
    for (const [size, otherSize] of [
      [8, 16],
      [7, 5],
    ]) {
      const conv = tfl.layers.conv2d({ filters: 5, kernelSize: 3, activation: 'relu', name: 'c' });
      const pool = tfl.layers.globalAveragePooling2d({ name: 'gap' });
      const out = tfl.layers.dense({ units: 2, name: 'out' });
      const build = (s: number): tfl.LayersModel => {
        const x = tfl.input({ shape: [s, s, 3] });
        return tfl.model({ inputs: x, outputs: out.apply(pool.apply(conv.apply(x))) as Sym });
      };
      const model = build(size);
      build(otherSize);
      kill(model, 'c', [1, 3]);
      for (const m of [
        model,
        tfl.sequential({ layers: [tfl.layers.inputLayer({ inputShape: [size, size, 3] }), conv, pool, out] }),
      ]) {
        const { model: pruned, report } = prune(m);
        expect(report.layers.map((l) => [l.name, l.unitsAfter])).toEqual([
          ['c', 3],
          ['out', 2],
        ]);
        const positions = (size - 2) ** 2;
        expect(report.layersBefore.find((l) => l.name === 'c')!.macs).toBe(27 * 5 * positions);
        expect(report.layersAfter.find((l) => l.name === 'c')!.macs).toBe(27 * 3 * positions);
        expect(analyze(m).layers.find((l) => l.name === 'c')!.macs).toBe(27 * 5 * positions);
        same(m, pruned, [2, size, size, 3]);
      }
    }
  });
});
