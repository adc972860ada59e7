// NonFiniteWeightError: one typed error for a NaN or an infinity in a weight,
// which decompose throws here and surgery's analyze / prune throw too.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { decompose, NonFiniteWeightError, readFiniteWeight } from '../src/index.js';
import { useCpu } from './helpers.js';

beforeAll(useCpu);

/** A Conv2D (kernel [3,3,2,4], bias [4]) then a Dense (kernel [36,5], bias [5]). */
function convNet(): tfl.Sequential {
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({ inputShape: [5, 5, 2], filters: 4, kernelSize: 3, name: 'conv' }),
      tfl.layers.flatten({ name: 'flat' }),
      tfl.layers.dense({ units: 5, name: 'fc' }),
    ],
  });
}

/** Sets entry `at` of weight `which` (0 kernel, 1 bias) of layer `name` to `value`. */
function poke(model: tfl.LayersModel, name: string, which: number, at: number[], value: number): void {
  const layer = model.getLayer(name);
  const weights = layer.getWeights();
  const buffer = weights[which].bufferSync();
  buffer.set(value, ...at);
  const changed = buffer.toTensor();
  layer.setWeights(weights.map((t, i) => (i === which ? changed : t)));
  changed.dispose(); // the variable keeps the data; getWeights() gave the variables themselves
}

const ADVICE = 'nothing can be done with it. Retrain';

// [layer, weight (0 kernel, 1 bias), index, value, class, weight name]
const cases: [string, number, number[], number, string, string][] = [
  ['fc', 0, [7, 2], NaN, 'Dense', 'fc/kernel'],
  ['fc', 1, [4], -Infinity, 'Dense', 'fc/bias'],
  ['conv', 0, [1, 2, 0, 3], Infinity, 'Conv2D', 'conv/kernel'],
  ['conv', 0, [0, 0, 0, 0], -Infinity, 'Conv2D', 'conv/kernel'],
  ['conv', 1, [2], NaN, 'Conv2D', 'conv/bias'],
];

describe('readFiniteWeight', () => {
  it.each(cases)(
    'throws a NonFiniteWeightError for %s weight %i at %j = %d, with the fields and message',
    (name, which, at, value, className, weight) => {
      const model = convNet();
      poke(model, name, which, at, value);
      const layer = model.getLayer(name);
      const before = tf.memory().numTensors;
      let caught: unknown;
      try {
        readFiniteWeight(layer, layer.weights[which], 'mytool', ADVICE);
      } catch (e) {
        caught = e;
      }
      expect(tf.memory().numTensors).toBe(before);
      expect(caught).toBeInstanceOf(NonFiniteWeightError);
      expect(caught).toBeInstanceOf(Error);
      const e = caught as NonFiniteWeightError;
      expect(e.name).toBe('NonFiniteWeightError');
      expect({
        code: e.code,
        layer: e.layer,
        className: e.className,
        weight: e.weight,
        count: e.count,
        index: e.index,
        value: e.value,
      }).toEqual({ code: 'non-finite', layer: name, className, weight, count: 1, index: at, value });
      const detail =
        `layer '${name}' (${className}) has 1 non-finite value in weight '${weight}' ` +
        `(the first, at [${at.join(',')}], is ${value})`;
      expect(e.detail).toBe(detail);
      expect([e.caller, e.advice]).toEqual(['mytool', ADVICE]);
      expect(e.message).toBe(`mytool: ${detail}: ${ADVICE}`);
      expect(String(e)).toBe(`NonFiniteWeightError: ${e.message}`);
      expect(e.stack).toMatch(/^NonFiniteWeightError: mytool: layer/);
      // The other weights of the layer pass, and come back as they are.
      const other = layer.weights[1 - which];
      expect(Array.from(readFiniteWeight(layer, other, 'mytool', ADVICE))).toEqual(
        Array.from(other.read().dataSync()),
      );
      model.dispose();
    },
  );

  it('refuses a weight that is not a LayerVariable (its name, say), saying what to pass', () => {
    const model = convNet();
    const layer = model.getLayer('conv');
    // Before: "weight.read is not a function".
    expect(() => readFiniteWeight(layer, 'conv/kernel' as never, 'x', 'y')).toThrow(TypeError);
    expect(() => readFiniteWeight(layer, 'conv/kernel' as never, 'x', 'y')).toThrow(
      `readFiniteWeight: weight must be one of the layer's weights (layer.weights[i], a LayerVariable), got "conv/kernel" (a string)`,
    );
    expect(() => readFiniteWeight(layer, undefined as never, 'x', 'y')).toThrow(
      /a LayerVariable\), got undefined$/,
    );
    model.dispose();
  });

  it('counts every bad entry and gives the first in row-major order', () => {
    const model = convNet();
    poke(model, 'conv', 0, [2, 1, 1, 0], Infinity);
    poke(model, 'conv', 0, [0, 2, 1, 3], NaN); // first in row-major order
    poke(model, 'conv', 0, [2, 2, 1, 3], -Infinity);
    const layer = model.getLayer('conv');
    expect(() => readFiniteWeight(layer, layer.weights[0], 'x', 'y')).toThrow(
      expect.objectContaining({ count: 3, index: [0, 2, 1, 3], value: NaN }),
    );
    expect(() => readFiniteWeight(layer, layer.weights[0], 'x', 'y')).toThrow(
      /has 3 non-finite values in weight 'conv\/kernel' \(the first, at \[0,2,1,3\], is NaN\)/,
    );
    model.dispose();
  });
});

describe('decompose throws NonFiniteWeightError', () => {
  it.each(cases)('for %s weight %i at %j = %d, with its own prefix and advice', (name, which, at, value) => {
    const model = convNet();
    poke(model, name, which, at, value);
    const before = tf.memory().numTensors;
    expect(() => decompose(model)).toThrow(NonFiniteWeightError);
    expect(() => decompose(model)).toThrow(
      expect.objectContaining({ code: 'non-finite', layer: name, index: at, value }),
    );
    expect(() => decompose(model)).toThrow(
      /^decompose: layer .*: no magnitude can be computed from it\. .*then decompose$/,
    );
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it('naming a layer of a nested model by its path, which a layer of another block shares the name of', () => {
    // Two blocks, each with a Dense 'fc': the NaN is in the second one's.
    const block = (name: string, seed: number) =>
      tfl.sequential({
        name,
        layers: [
          tfl.layers.dense({
            inputShape: [4],
            units: 3,
            name: 'fc',
            kernelInitializer: tfl.initializers.glorotUniform({ seed }),
          }),
        ],
      });
    const model = tfl.sequential({ layers: [block('blockA', 1), block('blockB', 2)] });
    const fc = (model.getLayer('blockB') as tfl.Sequential).getLayer('fc');
    const [kernel, bias] = fc.getWeights();
    const bad = tf.tidy(() =>
      tf.where(tf.equal(tf.reshape(tf.range(0, 12), [4, 3]), 7), tf.scalar(NaN), kernel),
    );
    fc.setWeights([bad, bias]);
    tf.dispose(bad);
    const before = tf.memory().numTensors;
    expect(() => decompose(model)).toThrow(
      expect.objectContaining({ code: 'non-finite', layer: 'blockB/fc', index: [2, 1] }),
    );
    expect(() => decompose(model)).toThrow(/^decompose: layer 'blockB\/fc' \(Dense\) has 1 non-finite value/);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it("with code 'overflow' for a group norm past float32, naming the magnitude and the group", () => {
    const model = convNet();
    const fc = model.getLayer('fc');
    const [kernel, bias] = fc.getWeights();
    const big = tf.tidy(() => {
      // Columns 1 and 3 of the kernel: finite entries whose norm (6 * 3e19) overflows.
      const mask = tf.tensor2d([[0, 1, 0, 1, 0]]);
      return tf.add(kernel, tf.mul(tf.fill([36, 5], 3e19), mask));
    });
    fc.setWeights([big, bias]);
    big.dispose();
    const before = tf.memory().numTensors;
    let caught: unknown;
    try {
      decompose(model).dispose();
    } catch (e) {
      caught = e;
    }
    expect(tf.memory().numTensors).toBe(before);
    expect(caught).toBeInstanceOf(NonFiniteWeightError);
    const e = caught as NonFiniteWeightError;
    expect({
      code: e.code,
      layer: e.layer,
      className: e.className,
      weight: e.weight,
      count: e.count,
      index: e.index,
      value: e.value,
    }).toEqual({
      code: 'overflow',
      layer: 'fc',
      className: 'DecomposedDense',
      weight: 'fc/magnitude',
      count: 2,
      index: [1],
      value: Infinity,
    });
    expect(e.detail).toBe(
      "layer 'fc' has a group of weights whose norm overflows float32 (entries near 1e19 or larger)",
    );
    expect(e.message).toBe(
      `decompose: ${e.detail}: its magnitude would be infinite and its outputs NaN. The model has diverged; ` +
        'restore a checkpoint or retrain it with a lower learning rate, then decompose',
    );
    model.dispose();
  });
});

describe('NonFiniteWeightError', () => {
  it('keeps its own copy of the index, and defaults to code non-finite', () => {
    const index = [1, 2];
    const e = new NonFiniteWeightError(
      { layer: 'l', className: 'Dense', weight: 'l/kernel', count: 2, index, value: NaN },
      'who',
      'why',
    );
    index[0] = 9;
    expect(e.index).toEqual([1, 2]);
    expect(e.code).toBe('non-finite');
    expect(e.message).toBe(
      "who: layer 'l' (Dense) has 2 non-finite values in weight 'l/kernel' (the first, at [1,2], is NaN): why",
    );
    expect(Object.getPrototypeOf(e)).toBe(NonFiniteWeightError.prototype);
  });
});
