// Options objects with a key the function does not take are refused, naming the key, the one it
// likely misspells and the keys there are; a misspelled optional key would otherwise silently
// give its default (a typo in `granularity` would decompose at another granularity).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { closestKey, decompose, magnitudes, optionsProblem } from '../src/index.js';
import { useCpu } from './helpers.js';

beforeAll(useCpu);

function plain(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({ inputShape: [6, 6, 2], filters: 3, kernelSize: 3, name: 'c' }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: 4, name: 'd' }),
    ],
  });
}

describe('closestKey', () => {
  it.each([
    ['treshold', ['threshold'], 'threshold'],
    ['Threshold', ['threshold'], 'threshold'],
    ['unknownLayer', ['threshold', 'unknownLayers'], 'unknownLayers'],
    ['unknown_layers', ['threshold', 'unknownLayers'], 'unknownLayers'],
    ['formats', ['format', 'float16'], 'format'],
    ['flaot16', ['format', 'float16'], 'float16'],
    ['requestinit', ['requestInit', 'fetchFunc'], 'requestInit'],
    ['granularty', ['granularity', 'include', 'epsilon'], 'granularity'],
    ['conv2D', ['dense', 'conv2d'], 'conv2d'],
    ['fp16', ['format', 'float16'], undefined],
    ['dir', ['format', 'float16'], undefined],
  ])('%s among %j: %s', (word, keys, meant) => {
    expect(closestKey(word, keys)).toBe(meant);
  });
});

describe('optionsProblem', () => {
  const keys = ['lambda', 'epsilon'];
  it('is undefined for undefined, {} and known keys (also with undefined values)', () => {
    expect(optionsProblem(undefined, keys, '{ lambda: 1 }')).toBeUndefined();
    expect(optionsProblem({}, keys, '{ lambda: 1 }')).toBeUndefined();
    expect(optionsProblem({ lambda: 1, epsilon: undefined }, keys, '{ lambda: 1 }')).toBeUndefined();
  });
  it('names every unknown key, the likely one and the keys there are', () => {
    expect(optionsProblem({ lamda: 1, foo: 2 }, keys, '{ lambda: 1 }')).toBe(
      'unknown options `lamda` (did you mean `lambda`?), `foo`; the options are `lambda`, `epsilon`',
    );
  });
  it('refuses null values: only a key left out (or undefined) gives the default', () => {
    expect(optionsProblem({ lambda: null }, keys, '{ lambda: 1 }')).toBe(
      'option `lambda` is null: leave it out for the default, or give a value',
    );
    expect(optionsProblem({ lambda: null, epsilon: null }, keys, '{ lambda: 1 }')).toBe(
      'options `lambda`, `epsilon` are null: leave them out for the default, or give a value',
    );
    // An unknown key is named first.
    expect(optionsProblem({ lamda: null }, keys, '{ lambda: 1 }')).toMatch(/^unknown option `lamda`/);
  });
  it.each([null, 'lambda', 3, [1]])('refuses %p for the options object, showing an example', (v) => {
    expect(optionsProblem(v, keys, '{ lambda: 1 }')).toMatch(
      /^options must be an object such as \{ lambda: 1 \}, got /,
    );
  });
});

describe('decompose', () => {
  it.each([
    [
      { granularty: { dense: 'input' } },
      /decompose: unknown option `granularty` \(did you mean `granularity`\?\); the options are `granularity`, `include`, `epsilon`/,
    ],
    [{ includ: ['d'] }, /unknown option `includ` \(did you mean `include`\?\)/],
    [
      { granularity: { conv2D: 'filter' } },
      /decompose: granularity: unknown option `conv2D` \(did you mean `conv2d`\?\); the options are `dense`, `conv2d`/,
    ],
    [{ granularity: { Dense: 'input' } }, /granularity: unknown option `Dense` \(did you mean `dense`\?\)/],
    [null, /decompose: options must be an object/],
  ])('refuses %j, naming the key and the one meant', (options, message) => {
    const m = plain();
    const before = tf.memory().numTensors;
    expect(() => decompose(m, options as never)).toThrow(message);
    expect(tf.memory().numTensors).toBe(before);
    m.dispose();
  });

  it('still takes every documented option, and granularity with either key unset', () => {
    const m = plain();
    const d = decompose(m, {
      granularity: { conv2d: 'filter', dense: undefined },
      include: ['c', 'd'],
      epsilon: 1e-6,
    });
    expect(magnitudes(d).map((i) => [i.layerName, i.granularity])).toEqual([
      ['c', 'filter'],
      ['d', 'output'],
    ]);
    d.dispose();
    m.dispose();
  });
});
