import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { decompose } from '@normprune/layers';
import { analyze, DisconnectedModelError, prune } from '../src/index';
import * as browser from '../src/browser';
import { expectNoLeak } from '../../../tools/testing/leaks';
import {
  editWeight,
  fillAll,
  lenet5,
  mlp,
  outputDiff,
  randomizeBatchNorm,
  residual,
  rng,
  unitsOf,
  vggBn,
  zeroInputs,
  zeroKernelWhere,
  zeroUnits,
} from './helpers';
import { saveInMemory } from '../../../tools/testing/memory-io.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** What `fn` throws (failing the test when it returns). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

function expectSame(a: tfl.LayersModel, b: tfl.LayersModel): void {
  const { abs, scale } = outputDiff(a, b);
  expect(scale).toBeGreaterThan(0);
  expect(abs).toBeLessThanOrEqual(1e-5 * Math.max(1, scale));
}

describe('prune: MLP', () => {
  it('removes dead neurons, folds their constant into the next bias, and unused ones backwards', () => {
    const m = mlp();
    const r = rng(3);
    fillAll(m, 'bias', () => r() - 0.2);
    zeroUnits(m, 'd1', [0, 3, 7]); // dead: emit relu(bias), folded into d2's bias
    zeroInputs(m, 'd2', [5]); // d1 unit 5 is read by nobody: removable backwards
    zeroUnits(m, 'd2', [1, 2]);
    const { model, report } = prune(m);
    expectSame(m, model);
    expect(unitsOf(model, 'd1')).toBe(12);
    expect(unitsOf(model, 'd2')).toBe(10);
    expect(unitsOf(model, 'd3')).toBe(5); // the classifier's outputs are never removed
    const d1 = report.layers.find((l) => l.name === 'd1')!;
    expect(d1.removed).toEqual([0, 3, 5, 7]);
    expect(d1.removedConstant).toBe(3);
    expect(d1.removedUnused).toBe(1);
    expect(report.layers.find((l) => l.name === 'd3')!.inputsRemoved).toBe(2);
    // 20*12+12 + 12*10+10 + 10*5+5
    expect(report.after.params).toBe(252 + 130 + 55);
    expect(report.paramsBefore).toBe(20 * 16 + 16 + 16 * 12 + 12 + 12 * 5 + 5);
    expect(report.compression).toBeCloseTo(1 - report.paramsAfter / report.paramsBefore, 12);
    expect(report.warnings).toEqual([]);
    expect(report.table()).toContain('d1');
  });

  it('a softmax unit with no live weights still varies with the others: neither folded nor reported constant', () => {
    const m = tfl.sequential({
      layers: [
        tfl.layers.dense({ inputShape: [4], units: 5, activation: 'softmax', name: 'h' }),
        tfl.layers.dense({ units: 3, activation: 'softmax', name: 'out' }),
      ],
    });
    zeroUnits(m, 'h', [2]); // softmax(z)_2 = e^b / sum e^z: not a constant
    zeroUnits(m, 'out', [1]);
    const { model, report } = prune(m);
    expectSame(m, model);
    expect(unitsOf(model, 'h')).toBe(5);
    for (const l of report.layers)
      expect({ name: l.name, kept: l.keptConstant }).toEqual({ name: l.name, kept: [] });
    expect(report.warnings).toEqual([]);
  });

  it('propagates deadness: a unit whose only live inputs are removed constants becomes constant too', () => {
    const m = mlp();
    const r = rng(5);
    fillAll(m, 'bias', () => r() + 0.1);
    zeroUnits(m, 'd1', [0, 1, 2, 3]);
    // d2 unit 4 reads only the dead d1 units 0..3: it emits a constant as well.
    zeroKernelWhere(m, 'd2', (i, o) => o === 4 && i > 3);
    const { model, report } = prune(m);
    expectSame(m, model);
    expect(report.layers.find((l) => l.name === 'd2')!.removed).toEqual([4]);
  });

  it('does not leak tensors (beyond the new model weights)', async () => {
    const m = mlp();
    zeroUnits(m, 'd1', [1]);
    let pruned: tfl.LayersModel | undefined;
    await expectNoLeak(() => {
      pruned = prune(m).model;
    }, 6);
    expect(pruned!.weights.length).toBe(6);
  });

  it('keeps a frozen model frozen (tfjs keeps the model flag out of its config), and frozen layers too', () => {
    const m = mlp();
    zeroUnits(m, 'd1', [1]);
    m.getLayer('d2').trainable = false;
    expect(prune(m).model.getLayer('d2').trainable).toBe(false);
    m.trainable = false;
    const frozen = prune(m).model;
    expect([frozen.trainable, frozen.trainableWeights.length]).toEqual([false, 0]);
  });

  it('with nothing to prune returns an equal model and 0 compression', () => {
    const m = mlp();
    const { model, report } = prune(m);
    expectSame(m, model);
    expect(report.layers.map((l) => l.unitsAfter)).toEqual([16, 12, 5]);
    expect(report.compression).toBe(0);
    expect(report.after).toEqual(report.before);
  });

  it('refuses a whole dead layer, naming it', () => {
    const m = mlp();
    zeroUnits(
      m,
      'd2',
      Array.from({ length: 12 }, (_, i) => i),
    );
    expect(() => prune(m)).toThrow(/every unit of layer 'd2' \(Dense, 12 units\) is dead: .*disconnect/);
    expect(() => prune(m)).toThrow(
      /train again with a smaller lambda, .*layerMultipliers: \{ 'd2': 0 \} leaves it unpenalised/,
    );
    // The fields say it without the message: a caller that wraps it (a CLI flag that zeroed the
    // layer) needs the layer and what its death does, not the advice about lambda.
    const e = thrown(() => prune(m));
    expect(e).toBeInstanceOf(DisconnectedModelError);
    expect(e).toBeInstanceOf(browser.DisconnectedModelError);
    expect(e).toMatchObject({
      name: 'DisconnectedModelError',
      code: 'dead',
      layer: 'd2',
      emptied: ['d1', 'd2'],
      detail:
        "the model's output no longer depends on its input, and removing them would disconnect the model " +
        "(layers left without a live unit: 'd1', 'd2')",
    });
    expect((e as Error).message).toContain((e as DisconnectedModelError).detail);
  });

  it('a DisconnectedModelError made by another copy of the package is one too; a plain Error is not', () => {
    let Other: typeof DisconnectedModelError | undefined;
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      Other = (require('../src/errors') as { DisconnectedModelError: typeof DisconnectedModelError })
        .DisconnectedModelError;
    });
    expect(Other).not.toBe(DisconnectedModelError);
    const e = new Other!({ code: 'unused', layer: 'a', emptied: ['a'], detail: 'd' }, 'surgery: m');
    expect(e).toBeInstanceOf(DisconnectedModelError);
    expect(new Error('surgery: m')).not.toBeInstanceOf(DisconnectedModelError);
    // A subclass keeps a plain prototype check.
    class Sub extends DisconnectedModelError {}
    expect(e).not.toBeInstanceOf(Sub);
  });

  it('names the layer that reads none of a layer it leaves unused: the output layer, or one past a Flatten', () => {
    // The output layer's units stay (they are the model's output), so no layer is dead: d2 and d1
    // are only unused, because d3 reads nothing from them.
    const m = mlp();
    zeroUnits(m, 'd3', [0, 1, 2, 3, 4]);
    expect(() => prune(m)).toThrow(
      /no unit of layer 'd2' is used: layer 'd3' \(Dense\) reads none of them .*disconnect the model \(layers left without a live unit: 'd1', 'd2'\)/,
    );
    expect(thrown(() => prune(m))).toMatchObject({ code: 'unused', layer: 'd2', emptied: ['d1', 'd2'] });
    const conv = tfl.sequential({
      layers: [
        tfl.layers.conv2d({ inputShape: [5, 5, 1], filters: 3, kernelSize: 3, name: 'c' }),
        tfl.layers.flatten({ name: 'f' }),
        tfl.layers.dense({ units: 2, name: 'logits' }),
      ],
    });
    zeroUnits(conv, 'logits', [0, 1]);
    expect(() => prune(conv)).toThrow(
      /no unit of layer 'c' is used: layer 'logits' \(Dense\) reads none of them/,
    );
  });

  it('gives a bias-free consumer a bias when it must absorb a constant', () => {
    const m = tfl.sequential({
      layers: [
        tfl.layers.inputLayer({ inputShape: [6] }),
        tfl.layers.dense({ units: 5, activation: 'sigmoid', name: 'h' }),
        tfl.layers.dense({ units: 3, useBias: false, name: 'o' }),
      ],
    });
    zeroUnits(m, 'h', [0, 4]); // sigmoid(0) = 0.5, a constant the next layer must add somewhere
    const { model } = prune(m);
    expectSame(m, model);
    expect(unitsOf(model, 'h')).toBe(3);
    expect(
      model
        .getLayer('o')
        .getWeights()
        .map((w) => w.shape),
    ).toEqual([[3, 3], [3]]);
  });

  it('treats groups under the threshold as zero', () => {
    const m = mlp();
    editWeight(m, 'd1', 'kernel', (v, [, units]) => v.forEach((_, p) => p % units === 2 && (v[p] *= 1e-9)));
    expect(prune(m).report.layers[0].unitsAfter).toBe(16);
    const { model, report } = prune(m, { threshold: 1e-6 });
    expect(report.layers[0].removed).toEqual([2]);
    expect(outputDiff(m, model).abs).toBeLessThan(1e-5);
  });
});

/** The layer's weights read back as host arrays, in layer order (kernel first). */
function hostWeights(model: tfl.LayersModel, layer: string): Float32Array[] {
  return model
    .getLayer(layer)
    .getWeights()
    .map((t) => t.dataSync() as Float32Array);
}

/** Non-zero weights of every layer of `model`, counted in the test from the weights themselves. */
function countNonzeros(model: tfl.LayersModel): number {
  let n = 0;
  for (const l of model.layers)
    for (const w of hostWeights(model, l.name)) for (const v of w) if (v !== 0) n++;
  return n;
}

// A threshold makes sub-threshold groups count as zero; the README promises
// they are then *written* as exact zeros, so that the pruned model is exactly
// the thresholded one and a sparse export does not store them. That must hold
// inside units that stay, not only in removed ones (which are sliced away
// anyway). A group is one weight in a Dense layer, a whole 2-D kernel
// [:, :, i, o] in a Conv2D layer.
describe('prune: threshold > 0 writes sub-threshold groups of kept units as exact zeros', () => {
  it('Dense: single sub-threshold weights become 0, every other weight is untouched', () => {
    const m = mlp();
    const r = rng(23);
    fillAll(m, 'bias', () => r() - 0.5);
    // [layer, input row, unit]: scattered over different units, none of which loses all its weights.
    const tiny: [string, number, number][] = [
      ['d1', 3, 1],
      ['d1', 7, 4],
      ['d1', 19, 15],
      ['d2', 2, 5],
      ['d3', 11, 0],
    ];
    for (const [layer, i, o] of tiny)
      editWeight(m, layer, 'kernel', (v, [, units]) => (v[i * units + o] *= 1e-9));
    const { model, report } = prune(m, { threshold: 1e-6 });
    expect(report.layers.map((l) => l.unitsAfter)).toEqual([16, 12, 5]); // nothing removed: same indices
    for (const layer of ['d1', 'd2', 'd3']) {
      const [before, ...restBefore] = hostWeights(m, layer);
      const [after, ...restAfter] = hostWeights(model, layer);
      const units = m.getLayer(layer).getWeights()[0].shape[1]!;
      const zeroed = new Set(tiny.filter(([l]) => l === layer).map(([, i, o]) => i * units + o));
      for (const p of zeroed) expect(before[p]).not.toBe(0); // the fixture really has a tiny, non-zero weight
      after.forEach((v, p) => {
        if (zeroed.has(p)) expect(v).toBe(0);
        else expect(v).toBe(before[p]);
      });
      expect(restAfter).toEqual(restBefore); // biases: nothing folded
    }
    // The report counts the pruned model's weights as they are: the tiny ones as zeros.
    expect(report.after.nonzeros).toBe(countNonzeros(model));
    expect(report.after.nonzeros).toBe(countNonzeros(m) - tiny.length);
    expect(report.after.nonzeros).toBe(report.before.nonzeros); // before: counted with the threshold
    expect(outputDiff(m, model).abs).toBeLessThan(1e-5);
  });

  it('Conv2D: a sub-threshold 2-D kernel of a kept filter becomes 0; a tiny weight inside a live 2-D kernel stays', () => {
    const m = lenet5(true); // conv2: 5x5 kernels, 4 -> 8 channels
    const r = rng(29);
    fillAll(m, 'bias', () => r() - 0.5);
    const [cin, cout] = [4, 8];
    // conv2 [:, :, 2, 3] scaled to ~1e-10: a dead group in filter 3, which keeps its other three kernels.
    editWeight(m, 'conv2', 'kernel', (v) => {
      for (let k = 0; k < 25; k++) v[k * cin * cout + 2 * cout + 3] *= 1e-9;
    });
    // conv2 [0, 0, 1, 5] alone scaled: its 2-D kernel [:, :, 1, 5] is live, so the group stays whole.
    const single = 1 * cout + 5;
    editWeight(m, 'conv2', 'kernel', (v) => (v[single] *= 1e-9));
    const { model, report } = prune(m, { threshold: 1e-6 });
    expect(report.layers.map((l) => l.unitsAfter)).toEqual([4, 8, 24, 16, 10]);
    const [before] = hostWeights(m, 'conv2');
    const [after] = hostWeights(model, 'conv2');
    expect(after.length).toBe(before.length);
    after.forEach((v, p) => {
      const q = p % (cin * cout);
      if (q === 2 * cout + 3) {
        expect(before[p]).not.toBe(0);
        expect(v).toBe(0);
      } else {
        expect(v).toBe(before[p]);
      }
    });
    expect(Math.abs(after[single])).toBeGreaterThan(0);
    expect(Math.abs(after[single])).toBeLessThan(1e-6);
    // 25 weights of the dead 2-D kernel became zeros, and the report says so.
    expect(report.after.nonzeros).toBe(countNonzeros(model));
    expect(report.after.nonzeros).toBe(countNonzeros(m) - 25);
    expect(report.after.zeroGroupParams).toBe(report.before.zeroGroupParams);
    expect(report.after.zeroGroupParams).toBeGreaterThanOrEqual(25);
    expect(outputDiff(m, model).abs).toBeLessThan(1e-5);
  });

  it('|w| <= threshold counts as zero, ties included: a unit whose weights all equal ±threshold goes', () => {
    for (const t of [2 ** -12, 2 ** -20]) {
      // Exact in float32, and far below the other (glorot) weights.
      const m = mlp();
      editWeight(m, 'd1', 'kernel', (v, [rows, cout]) => {
        for (let i = 0; i < rows; i++) v[i * cout + 2] = i % 2 ? t : -t;
      });
      const { model, report } = prune(m, { threshold: t });
      expect(unitsOf(model, 'd1')).toBe(15);
      expect(report.layers[0].unitsAfter).toBe(15);
      // analyze agrees: the unit counts as dead there too.
      expect(analyze(m, { threshold: t }).layers[0].groups.find((g) => g.kind === 'output')?.dead).toBe(1);
    }
  });
});

describe('prune: LeNet-5', () => {
  it('removes filters and neurons through conv (valid) and Flatten -> Dense', () => {
    const m = lenet5();
    const r = rng(11);
    fillAll(m, 'bias', () => r() * 0.4 - 0.1);
    zeroUnits(m, 'conv1', [1, 4]); // constant relu(bias) folded into conv2 ('valid')
    zeroUnits(m, 'conv2', [0, 5, 9, 15]); // constants folded through pool + flatten into fc1
    zeroUnits(
      m,
      'fc1',
      Array.from({ length: 60 }, (_, i) => 2 * i),
    );
    zeroUnits(m, 'fc2', [3, 40]);
    const { model, report } = prune(m);
    expectSame(m, model);
    expect(unitsOf(model, 'conv1')).toBe(4);
    expect(unitsOf(model, 'conv2')).toBe(12);
    expect(unitsOf(model, 'fc1')).toBe(60);
    expect(unitsOf(model, 'fc2')).toBe(82);
    expect(unitsOf(model, 'fc3')).toBe(10);
    expect((model.getLayer('fc1').getWeights()[0].shape as number[])[0]).toBe(12 * 25);
    expect(report.warnings).toEqual([]);
  });

  it('removes a conv1 filter that conv2 ignores, even though conv1 is followed by nothing foldable', () => {
    const m = lenet5(true);
    zeroInputs(m, 'conv2', [2]);
    const { model, report } = prune(m);
    expectSame(m, model);
    expect(report.layers[0].removed).toEqual([2]);
    expect(report.layers[0].removedUnused).toBe(1);
  });
});

describe('prune: VGG-style with BatchNormalization', () => {
  it('filter granularity: removes filters whose BN+relu constant is 0, keeps and reports the others', () => {
    const m = vggBn();
    randomizeBatchNorm(m);
    // c1 filter 2: BN constant beta - gamma*mean/sqrt(var+eps) pushed through relu. Force it negative -> relu gives 0.
    editWeight(m, 'c1_bn', 'beta', (v) => (v[2] = -5));
    editWeight(m, 'c1_bn', 'moving_mean', (v) => (v[2] = 0));
    // c1 filter 5: positive constant, read by c2 ('same' 3x3): cannot fold exactly.
    editWeight(m, 'c1_bn', 'beta', (v) => (v[5] = 2));
    zeroUnits(m, 'c1', [2, 5]);
    // c4 filters: constants flow through pooling, flatten and dense: always exact.
    zeroUnits(m, 'c4', [0, 7, 11]);
    zeroUnits(m, 'fc1', [3]);
    const { model, report } = prune(m);
    expectSame(m, model);
    expect(unitsOf(model, 'c1')).toBe(7);
    expect(unitsOf(model, 'c4')).toBe(9);
    expect(unitsOf(model, 'fc1')).toBe(15);
    expect((model.getLayer('c1_bn').getWeights()[0].shape as number[])[0]).toBe(7);
    const c1 = report.layers.find((l) => l.name === 'c1')!;
    expect(c1.removed).toEqual([2]);
    expect(c1.keptConstant.map((k) => k.unit)).toEqual([5]);
    expect(c1.keptConstant[0].reason).toMatch(/'c2'.*same/);
    expect(report.warnings).toHaveLength(1);
  });

  it('kernel granularity: zero 2-D kernels stay exact zeros and count as removed; a fully ignored input removes its producer', () => {
    const m = vggBn();
    randomizeBatchNorm(m, 3);
    const r = rng(17);
    const dead = new Set<string>();
    zeroKernelWhere(m, 'c3', (i, o) => {
      const kill = r() < 0.4;
      if (kill) dead.add(`${i},${o}`);
      return kill;
    });
    zeroInputs(m, 'c4', [1, 6]); // c3 filters 1 and 6: nobody reads them
    zeroKernelWhere(m, 'c2', (i, o) => (i + o) % 3 === 0);
    const { model, report } = prune(m);
    expectSame(m, model);
    expect(unitsOf(model, 'c3')).toBe(10);
    const before = report.layersBefore.find((l) => l.name === 'c4')!;
    const after = report.layersAfter.find((l) => l.name === 'c4')!;
    expect(after.groups.find((g) => g.kind === 'kernel')!.total).toBe(10 * 12);
    expect(before.zeroGroupParams).toBe(9 * 2 * 12);
    const c2 = report.layersAfter.find((l) => l.name === 'c2')!;
    const zeroKernels = Array.from({ length: 64 }, (_, q) => q).filter(
      (q) => (Math.floor(q / 8) + (q % 8)) % 3 === 0,
    ).length;
    expect(c2.groups.find((g) => g.kind === 'kernel')!.dead).toBe(zeroKernels);
    expect(c2.zeroGroupParams).toBe(9 * zeroKernels);
    expect(report.paramsAfter).toBe(report.after.params - report.after.zeroGroupParams);
    expect(report.paramsAfter).toBeLessThan(report.paramsBefore);
  });
});

describe('prune: residual Add', () => {
  it('keeps a channel when only one side of the Add is dead', () => {
    const m = residual();
    zeroUnits(m, 'b', [2]);
    const { model, report } = prune(m);
    expectSame(m, model);
    expect(report.layers.map((l) => l.unitsAfter)).toEqual([6, 6, 4]);
    expect(report.warnings).toEqual([
      // Said of the unit, not of what reads the joined channel (it read "no longer constant where
      // 'b' reads it", of the reader of a's output).
      "Conv2D 'b' unit 2 is dead (emits the constant 0) but was kept: coupled by an elementwise join with a varying unit of 'a'",
    ]);
  });

  it('says a dead filter is kept because the Add couples it with a model input channel', () => {
    // An identity shortcut from the model input: input channels are never removed.
    const x = tfl.input({ shape: [6, 6, 4], name: 'img' });
    const c = tfl.layers
      .conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'c' })
      .apply(x) as tfl.SymbolicTensor;
    const sum = tfl.layers.add({ name: 'add' }).apply([x, c]) as tfl.SymbolicTensor;
    const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(sum) as tfl.SymbolicTensor;
    const out = tfl.layers.dense({ units: 2, name: 'out' }).apply(gap) as tfl.SymbolicTensor;
    const m = tfl.model({ inputs: x, outputs: out });
    fillAll(m, 'bias', () => 0.5);
    zeroUnits(m, 'c', [1]);
    const { model, report } = prune(m);
    expectSame(m, model);
    expect(unitsOf(model, 'c')).toBe(4);
    expect(report.warnings).toEqual([
      expect.stringMatching(
        /'c' unit 1 is dead .* kept: coupled by an elementwise join with a channel of model input 'img', which is never removed/,
      ),
    ]);
  });

  it('removes a channel on both sides when both coupled filters are dead', () => {
    const m = residual();
    const r = rng(2);
    fillAll(m, 'bias', () => r() - 0.5);
    editWeight(m, 'a', 'bias', (v) => (v[3] = -1)); // relu(-1) = 0: conv b ('same') can drop it exactly
    zeroUnits(m, 'a', [3]);
    zeroUnits(m, 'b', [3]);
    const { model, report } = prune(m);
    expectSame(m, model);
    expect(unitsOf(model, 'a')).toBe(5);
    expect(unitsOf(model, 'b')).toBe(5);
    expect(report.layers.find((l) => l.name === 'out')!.inputsRemoved).toBe(1);
  });
});

describe('prune: a branch whose every unit is dead, beside another input of a join', () => {
  /** x -> a -> [b1 -> b2] -> add(a, b2) -> out, Dense; or with a Concatenate instead of the Add. */
  function branch(join: 'add' | 'concatenate'): tfl.LayersModel {
    const x = tfl.input({ shape: [5], name: 'x' });
    const a = tfl.layers.dense({ units: 6, activation: 'relu', name: 'a' }).apply(x) as tfl.SymbolicTensor;
    const b1 = tfl.layers.dense({ units: 4, activation: 'relu', name: 'b1' }).apply(a) as tfl.SymbolicTensor;
    const b2 = tfl.layers.dense({ units: 6, name: 'b2' }).apply(b1) as tfl.SymbolicTensor;
    const joined = (
      join === 'add' ? tfl.layers.add({ name: 'join' }) : tfl.layers.concatenate({ name: 'join' })
    ).apply([a, b2]) as tfl.SymbolicTensor;
    const out = tfl.layers.dense({ units: 3, name: 'out' }).apply(joined) as tfl.SymbolicTensor;
    const m = tfl.model({ inputs: x, outputs: out });
    const r = rng(11);
    fillAll(m, 'bias', () => r() - 0.3);
    return m;
  }

  /** The kernel of layer `name` of `m`, as [rows][columns]. */
  function kernelOf(m: tfl.LayersModel, name: string): number[][] {
    return m.getLayer(name).getWeights()[0].arraySync() as number[][];
  }

  const placeholderWarning = (layer: string, unit = 0) =>
    new RegExp(
      `^Dense '${layer}' unit ${unit} was kept as a placeholder with zero weights, which the Dense and Conv2D layers after it read with zero weights: every unit of '${layer}' is dead or unused, but a model output after it still depends on the input through another input of a join, and a layer cannot have 0 units$`,
    );

  it('keeps a placeholder unit of a residual branch layer whose units all died, and prunes the rest of the model', () => {
    const m = branch('add');
    zeroUnits(m, 'b1', [0, 1, 2, 3]);
    zeroUnits(m, 'a', [5]); // a dead unit elsewhere, which must still go
    zeroUnits(m, 'b2', [5]);
    const { model, report } = prune(m);
    expectSame(m, model);
    // b1 keeps one unit; the Add couples a and b2 unit by unit, so a's dead unit 5 goes with b2's
    // unit 5, the only one dead on both sides.
    expect(['a', 'b1', 'b2', 'out'].map((n) => unitsOf(model, n))).toEqual([5, 1, 5, 3]);
    const b1 = report.layers.find((l) => l.name === 'b1')!;
    expect([b1.removed, b1.unitsAfter, b1.keptConstant]).toEqual([[1, 2, 3], 1, []]);
    expect(b1.placeholders).toEqual([{ unit: 0, reason: expect.stringMatching(/^every unit of 'b1'/) }]);
    // Its weights are zeros, and b2 reads it with zero weights: b1's constants are in b2's bias.
    expect(
      kernelOf(model, 'b1')
        .flat()
        .every((v) => v === 0),
    ).toBe(true);
    expect(model.getLayer('b1').getWeights()[1].arraySync()).toEqual([0]);
    expect(
      kernelOf(model, 'b2')
        .flat()
        .every((v) => v === 0),
    ).toBe(true);
    expect(report.layers.filter((l) => l.placeholders.length).map((l) => l.name)).toEqual(['b1']);
    expect(report.warnings[0]).toMatch(placeholderWarning('b1'));
    // The rest of the warnings: b2's dead units, kept because the Add couples them with a's.
    expect(report.warnings.slice(1)).toEqual([
      expect.stringMatching(
        /^Dense 'b2' units 0, 1, 2, 3, 4 \(5 of 6\) are dead \(each emits a constant\) but were kept: coupled by an elementwise join with a varying unit of 'a'$/,
      ),
    ]);
  });

  it('keeps a placeholder unit of a layer left unused by a dead layer after it', () => {
    const m = branch('add');
    zeroUnits(m, 'b2', [0, 1, 2, 3, 4, 5]); // b2 reads nothing: b1's units are unused, not dead
    const { model, report } = prune(m);
    expectSame(m, model);
    expect(['a', 'b1', 'b2'].map((n) => unitsOf(model, n))).toEqual([6, 1, 6]);
    // The placeholder's live weights are zeroed too: nothing reads it.
    expect(
      kernelOf(model, 'b1')
        .flat()
        .every((v) => v === 0),
    ).toBe(true);
    expect(report.warnings[0]).toMatch(placeholderWarning('b1'));
  });

  it('keeps a placeholder in each emptied layer of a dead branch into a Concatenate', () => {
    const m = branch('concatenate');
    zeroUnits(m, 'b1', [0, 1, 2, 3]);
    const { model, report } = prune(m);
    expectSame(m, model);
    // b2's units read only b1's constants: constants themselves, folded into 'out'.
    expect(['a', 'b1', 'b2', 'out'].map((n) => unitsOf(model, n))).toEqual([6, 1, 1, 3]);
    // out reads a's 6 features and b2's placeholder, with zero weights.
    expect(kernelOf(model, 'out')[6]).toEqual([0, 0, 0]);
    expect(report.warnings).toHaveLength(2);
    expect(report.warnings[0]).toMatch(placeholderWarning('b1'));
    expect(report.warnings[1]).toMatch(placeholderWarning('b2'));
    expect(report.paramsAfter).toBeLessThan(report.paramsBefore);
  });

  it('keeps the filters of a dead residual Conv2D branch, coupled by the Add with live ones, as constants', () => {
    const m = residual();
    const r = rng(4);
    fillAll(m, 'bias', () => r() - 0.5);
    zeroUnits(m, 'b', [0, 1, 2, 3, 4, 5]);
    const { model, report } = prune(m);
    expectSame(m, model);
    expect(unitsOf(model, 'b')).toBe(6);
    expect(report.layers.every((l) => l.placeholders.length === 0)).toBe(true);
    expect(report.warnings).toEqual([
      expect.stringMatching(
        /^Conv2D 'b' units 0, 1, 2, 3, 4, 5 \(6 of 6\) are dead .* kept: coupled by an elementwise join with a varying unit of 'a'$/,
      ),
    ]);
  });

  /** x -> a -> b1 -> b2 -> add(a, b2) -> out1, Dense: the tensors a second head is built from. */
  function residualWithHead() {
    const x = tfl.input({ shape: [5], name: 'x' });
    const a = tfl.layers.dense({ units: 5, activation: 'relu', name: 'a' }).apply(x) as tfl.SymbolicTensor;
    const b1 = tfl.layers.dense({ units: 4, activation: 'relu', name: 'b1' }).apply(a) as tfl.SymbolicTensor;
    const b2 = tfl.layers.dense({ units: 5, name: 'b2' }).apply(b1) as tfl.SymbolicTensor;
    const sum = tfl.layers.add({ name: 'j' }).apply([a, b2]) as tfl.SymbolicTensor;
    const out1 = tfl.layers.dense({ units: 3, name: 'out1' }).apply(sum) as tfl.SymbolicTensor;
    return { x, a, b1, out1 };
  }

  it('judges each emptied layer by the outputs after it: a constant output elsewhere does not refuse a placeholder', () => {
    // out2 reads a with all-zero weights (a constant output of its own); b1 died whole beside the
    // Add's identity input, before out1, which still varies.
    const { x, a, out1 } = residualWithHead();
    const out2 = tfl.layers.dense({ units: 2, name: 'out2' }).apply(a) as tfl.SymbolicTensor;
    const m = tfl.model({ inputs: x, outputs: [out1, out2] });
    const r = rng(5);
    fillAll(m, 'bias', () => r() - 0.3);
    zeroUnits(m, 'b1', [0, 1, 2, 3]);
    zeroUnits(m, 'out2', [0, 1]);
    const { model, report } = prune(m);
    // Both outputs the same (outputDiff takes one).
    const xs = tf.randomNormal([8, 5], 0, 1, 'float32', 3);
    const [before, after] = [m, model].map((k) =>
      tf.tidy(() => (k.predict(xs) as tf.Tensor[]).map((t) => Array.from(t.dataSync()))),
    );
    for (const o of [0, 1])
      after[o].forEach((v, i) => expect(Math.abs(v - before[o][i])).toBeLessThanOrEqual(1e-5));
    xs.dispose();
    expect(report.layers.filter((l) => l.placeholders.length).map((l) => l.name)).toEqual(['b1']);
  });

  it('blames the dead branch, not a healthy layer after it that an output made constant goes through', () => {
    // b1 died whole: its residual path still varies (out1), but it also feeds c, whose output
    // out2 is now constant: refused, naming b1 (c is only emptied because of it).
    const { x, b1, out1 } = residualWithHead();
    const c = tfl.layers.dense({ units: 3, activation: 'relu', name: 'c' }).apply(b1) as tfl.SymbolicTensor;
    const out2 = tfl.layers.dense({ units: 2, name: 'out2' }).apply(c) as tfl.SymbolicTensor;
    const m = tfl.model({ inputs: x, outputs: [out1, out2] });
    fillAll(m, 'bias', () => 0.2);
    zeroUnits(m, 'b1', [0, 1, 2, 3]);
    expect(() => prune(m)).toThrow(
      /every unit of layer 'b1' \(Dense, 4 units\) is dead: the model's output 'out2' no longer depends on its input, .*\(layers left without a live unit: 'b1', 'c'\)/,
    );
    // Reading b1 directly, out2 is as constant: b1 keeps a placeholder (out1 still varies), and
    // the constant output is said.
    const direct = tfl.layers.dense({ units: 2, name: 'out2b' }).apply(b1) as tfl.SymbolicTensor;
    const m2 = tfl.model({ inputs: x, outputs: [out1, direct] });
    const { report } = prune(m2);
    expect(report.layers.filter((l) => l.placeholders.length).map((l) => l.name)).toEqual(['b1']);
    expect(report.warnings).toContain("model output 'out2b' is constant: it no longer depends on the input");
  });

  it('says which placeholder a coupled one stands with, and whether its own layer died too, and zeroes every placeholder unit of a layer', () => {
    // Add(Concatenate(A, B), C) with A, B and C dead: C's units are coupled with both A's and B's
    // placeholders, so it holds two.
    const build = () => {
      const x = tfl.input({ shape: [4], name: 'x' });
      const trunk = tfl.layers
        .dense({ units: 5, activation: 'relu', name: 't' })
        .apply(x) as tfl.SymbolicTensor;
      const dense = (units: number, name: string) =>
        tfl.layers.dense({ units, activation: 'relu', name }).apply(trunk) as tfl.SymbolicTensor;
      const cat = tfl.layers
        .concatenate({ name: 'cat' })
        .apply([dense(2, 'A'), dense(3, 'B')]) as tfl.SymbolicTensor;
      const sum = tfl.layers.add({ name: 'j' }).apply([cat, dense(5, 'C')]) as tfl.SymbolicTensor;
      const both = tfl.layers.concatenate({ name: 'both' }).apply([sum, trunk]) as tfl.SymbolicTensor;
      const out = tfl.layers.dense({ units: 3, name: 'out' }).apply(both) as tfl.SymbolicTensor;
      return tfl.model({ inputs: x, outputs: out });
    };
    const m = build();
    const r = rng(8);
    fillAll(m, 'bias', () => r() - 0.3);
    for (const [name, n] of [
      ['A', 2],
      ['B', 3],
      ['C', 5],
    ] as const)
      zeroUnits(
        m,
        name,
        Array.from({ length: n }, (_, i) => i),
      );
    const { model, report } = prune(m);
    expectSame(m, model);
    const by = (name: string) => report.layers.find((l) => l.name === name)!;
    expect(by('A').placeholders).toEqual([{ unit: 0, reason: expect.stringMatching(/^every unit of 'A' /) }]);
    expect(by('B').placeholders).toEqual([{ unit: 0, reason: expect.stringMatching(/^every unit of 'B' /) }]);
    // C died whole too: its own reason comes first.
    expect(by('C').placeholders).toEqual([
      {
        unit: 0,
        reason: expect.stringMatching(
          /^every unit of 'C' is dead or unused, as are those of 'A', with whose placeholder an elementwise join couples it, but /,
        ),
      },
      {
        unit: 2,
        reason: expect.stringMatching(
          /^every unit of 'C' is dead or unused, as are those of 'B', with whose placeholder an elementwise join couples it, but /,
        ),
      },
    ]);
    expect(by('C').keptConstant).toEqual([]);
    // Each placeholder's weights are zeros.
    for (const name of ['A', 'B', 'C'])
      for (const w of model.getLayer(name).getWeights())
        expect([name, Array.from(w.dataSync()).every((v) => v === 0)]).toEqual([name, true]);
    m.dispose();
    model.dispose();

    // With B alive and only C's units read with A's, C did not die: it is only coupled.
    const m2 = build();
    fillAll(m2, 'bias', () => r() - 0.3);
    zeroUnits(m2, 'A', [0, 1]);
    zeroUnits(m2, 'C', [0, 1]);
    const p2 = prune(m2);
    expectSame(m2, p2.model);
    const by2 = (name: string) => p2.report.layers.find((l) => l.name === name)!;
    expect(by2('A').placeholders).toEqual([
      { unit: 0, reason: expect.stringMatching(/^every unit of 'A' /) },
    ]);
    expect(by2('C').placeholders).toEqual([
      {
        unit: 0,
        reason: expect.stringMatching(
          /^coupled by an elementwise join with the placeholder of 'A': every unit of 'A' is dead or unused, but /,
        ),
      },
    ]);
    expect(by2('C').unitsAfter).toBe(4);
    m2.dispose();
    p2.model.dispose();
  });

  it('still refuses a dead layer when the model output no longer depends on the input', () => {
    const m = branch('add');
    zeroUnits(m, 'a', [0, 1, 2, 3, 4, 5]);
    zeroUnits(m, 'b1', [0, 1, 2, 3]);
    expect(() => prune(m)).toThrow(/every unit of layer 'a' \(Dense, 6 units\) is dead: .*disconnect/);
  });

  it('names the dead units of a layer kept for one reason in one warning, with their count', () => {
    const m = residual();
    fillAll(m, 'bias', () => 0.5);
    zeroUnits(m, 'a', [0, 2, 4]);
    const { model, report } = prune(m);
    expectSame(m, model);
    const a = report.layers.find((l) => l.name === 'a')!;
    expect(a.keptConstant.map((k) => k.unit)).toEqual([0, 2, 4]);
    expect(report.warnings.filter((w) => w.startsWith("Conv2D 'a' "))).toEqual([
      expect.stringMatching(
        /^Conv2D 'a' units 0, 2, 4 \(3 of 6\) are dead \(each emits a constant\) but were kept: /,
      ),
    ]);
  });
});

describe('prune: ResNet-style blocks with BatchNormalization and a projection shortcut', () => {
  function resnet(): tfl.LayersModel {
    const k = (seed: number) => tfl.initializers.glorotNormal({ seed });
    const conv = (name: string, filters: number, size: number, strides = 1, seed = 1) =>
      tfl.layers.conv2d({
        filters,
        kernelSize: size,
        strides,
        padding: 'same',
        useBias: false,
        name,
        kernelInitializer: k(seed),
      });
    const bn = (name: string) => tfl.layers.batchNormalization({ name });
    const input = tfl.input({ shape: [8, 8, 3] });
    let x = conv('stem', 8, 3, 1, 1).apply(input) as tfl.SymbolicTensor;
    x = tfl.layers.reLU({ name: 'stem_relu' }).apply(bn('stem_bn').apply(x)) as tfl.SymbolicTensor;
    // Block 1: identity shortcut.
    let y = conv('b1c1', 8, 3, 1, 2).apply(x) as tfl.SymbolicTensor;
    y = tfl.layers.reLU().apply(bn('b1bn1').apply(y)) as tfl.SymbolicTensor;
    y = bn('b1bn2').apply(conv('b1c2', 8, 3, 1, 3).apply(y)) as tfl.SymbolicTensor;
    x = tfl.layers.reLU().apply(tfl.layers.add({ name: 'b1add' }).apply([x, y])) as tfl.SymbolicTensor;
    // Block 2: strided, 1x1 projection shortcut.
    let z = conv('b2c1', 12, 3, 2, 4).apply(x) as tfl.SymbolicTensor;
    z = tfl.layers.reLU().apply(bn('b2bn1').apply(z)) as tfl.SymbolicTensor;
    z = bn('b2bn2').apply(conv('b2c2', 12, 3, 1, 5).apply(z)) as tfl.SymbolicTensor;
    const sc = bn('b2scbn').apply(conv('b2sc', 12, 1, 2, 6).apply(x)) as tfl.SymbolicTensor;
    x = tfl.layers.reLU().apply(tfl.layers.add({ name: 'b2add' }).apply([sc, z])) as tfl.SymbolicTensor;
    const gap = tfl.layers.globalAveragePooling2d({}).apply(x) as tfl.SymbolicTensor;
    const out = tfl.layers
      .dense({ units: 5, name: 'out', kernelInitializer: k(7) })
      .apply(gap) as tfl.SymbolicTensor;
    const m = tfl.model({ inputs: input, outputs: out });
    randomizeBatchNorm(m, 21);
    return m;
  }

  it('prunes inside blocks, keeps coupled channels unless every coupled filter is dead, and stays exact', () => {
    const m = resnet();
    zeroUnits(m, 'b1c1', [0, 5]); // inner filters of block 1: constant after BN + relu, read by b1c2 ('same')
    editWeight(m, 'b1bn1', 'beta', (v) => (v[0] = -4)); // filter 0's constant is relu(negative) = 0: removable
    editWeight(m, 'b1bn1', 'moving_mean', (v) => ((v[0] = 0), (v[5] = 0)));
    editWeight(m, 'b1bn1', 'beta', (v) => (v[5] = 2)); // filter 5's constant is 2: kept and reported
    zeroUnits(m, 'b2c2', [3, 4]);
    zeroUnits(m, 'b2sc', [3]); // channel 3 of block 2's sum: dead on both sides, its constant folds into 'out'
    zeroInputs(m, 'b2c2', [7]); // b2c1 filter 7: unused
    const { model, report } = prune(m);
    expectSame(m, model);
    const units = Object.fromEntries(report.layers.map((l) => [l.name, l.unitsAfter]));
    expect(units).toMatchObject({ b1c1: 7, b2c1: 11, b2c2: 11, b2sc: 11, out: 5 });
    expect(units.stem).toBe(8);
    expect(units.b1c2).toBe(8);
    expect(report.warnings.some((w) => /'b1c1' unit 5/.test(w))).toBe(true);
    expect(report.warnings.some((w) => /'b2c2' unit 4/.test(w))).toBe(true);
  });
});

describe('prune: depthwise-separable (MobileNet-style) block', () => {
  function mobile(): tfl.LayersModel {
    const k = (seed: number) => tfl.initializers.glorotNormal({ seed });
    return tfl.sequential({
      layers: [
        tfl.layers.conv2d({
          inputShape: [9, 9, 3],
          filters: 8,
          kernelSize: 1,
          useBias: false,
          name: 'expand',
          kernelInitializer: k(1),
        }),
        tfl.layers.batchNormalization({ name: 'bn1' }),
        tfl.layers.reLU({ name: 'r1' }),
        tfl.layers.depthwiseConv2d({
          kernelSize: 3,
          padding: 'same',
          useBias: false,
          name: 'dw',
          depthwiseInitializer: k(2),
        }),
        tfl.layers.batchNormalization({ name: 'bn2' }),
        tfl.layers.reLU({ name: 'r2' }),
        tfl.layers.conv2d({ filters: 6, kernelSize: 1, name: 'project', kernelInitializer: k(3) }),
        tfl.layers.globalAveragePooling2d({ name: 'gap' }),
        tfl.layers.dense({ units: 4, name: 'out', kernelInitializer: k(4) }),
      ],
    });
  }

  it('a zero depthwise kernel makes its channel constant: folded into the 1x1 projection, and its producer filter goes too', () => {
    const m = mobile();
    randomizeBatchNorm(m, 9);
    editWeight(m, 'bn2', 'beta', (v) => (v[2] = 1.5));
    zeroKernelWhere(m, 'dw', (c) => c === 2, 'depthwise_kernel');
    const { model, report } = prune(m);
    expectSame(m, model);
    expect(unitsOf(model, 'expand')).toBe(7);
    expect(unitsOf(model, 'dw')).toBe(7);
    expect(report.layers.find((l) => l.name === 'expand')!.removedUnused).toBe(1);
    expect(report.layersBefore.find((l) => l.name === 'dw')!.macs).toBe(9 * 8 * 81);
    expect(report.layersAfter.find((l) => l.name === 'dw')!.macs).toBe(9 * 7 * 81);
  });

  it('threshold > 0: a sub-threshold depthwise kernel counts as zero, as analyze counts it: written as zeros, its channel folded', () => {
    for (const [c, scale] of [
      [2, 1e-9],
      [5, 1e-8],
    ] as const) {
      const m = mobile();
      randomizeBatchNorm(m, 9);
      editWeight(m, 'bn2', 'beta', (v) => (v[c] = 1.5));
      // The same model with the kernel exactly zero: what a threshold of 1e-6 must make of m.
      const exact = mobile();
      exact.setWeights(m.getWeights());
      editWeight(m, 'dw', 'depthwise_kernel', (v) => v.forEach((_, p) => p % 8 === c && (v[p] *= scale)));
      zeroKernelWhere(exact, 'dw', (i) => i === c, 'depthwise_kernel');
      expect(analyze(m, { threshold: 1e-6 }).layers.find((l) => l.name === 'dw')!.groups).toEqual([
        { kind: 'filter', total: 8, dead: 1 },
        { kind: 'kernel', total: 8, dead: 1 },
      ]);
      const { model, report } = prune(m, { threshold: 1e-6 });
      const { model: reference } = prune(exact);
      expectSame(exact, model);
      expect(unitsOf(model, 'expand')).toBe(7);
      expect(unitsOf(model, 'dw')).toBe(7);
      for (const l of ['expand', 'dw', 'project'])
        expect(hostWeights(model, l)).toEqual(hostWeights(reference, l));
      expect(report.after.nonzeros).toBe(countNonzeros(model));
    }
  });

  it("a dead filter ahead of a 'same' depthwise conv stays unless its constant is 0", () => {
    const m = mobile();
    randomizeBatchNorm(m, 10);
    editWeight(m, 'bn1', 'beta', (v) => ((v[1] = 1), (v[4] = -3)));
    editWeight(m, 'bn1', 'moving_mean', (v) => ((v[1] = 0), (v[4] = 0)));
    zeroUnits(m, 'expand', [1, 4]);
    const { model, report } = prune(m);
    expectSame(m, model);
    expect(report.layers.find((l) => l.name === 'expand')!.removed).toEqual([4]);
    expect(report.warnings).toEqual([
      expect.stringMatching(/'expand' unit 1 .*no longer constant where 'project' reads it/),
    ]);
  });
});

describe('prune: Concatenate', () => {
  it('maps channels through concatenation offsets', () => {
    const input = tfl.input({ shape: [6, 6, 2] });
    const a = tfl.layers
      .conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'a' })
      .apply(input) as tfl.SymbolicTensor;
    const b = tfl.layers
      .conv2d({ filters: 3, kernelSize: 1, activation: 'relu', name: 'b' })
      .apply(input) as tfl.SymbolicTensor;
    const cat = tfl.layers.concatenate({ name: 'cat' }).apply([a, b]) as tfl.SymbolicTensor;
    const c = tfl.layers
      .conv2d({ filters: 5, kernelSize: 3, padding: 'valid', name: 'c' })
      .apply(cat) as tfl.SymbolicTensor;
    const flat = tfl.layers.flatten().apply(c) as tfl.SymbolicTensor;
    const out = tfl.layers.dense({ units: 2, name: 'out' }).apply(flat) as tfl.SymbolicTensor;
    const m = tfl.model({ inputs: input, outputs: out });
    const r = rng(8);
    fillAll(m, 'bias', () => r());
    zeroUnits(m, 'a', [1]); // constant, folded into c ('valid')
    zeroInputs(m, 'c', [4 + 2]); // b's filter 2 (concat channel 6): unused
    const { model, report } = prune(m);
    expectSame(m, model);
    expect([unitsOf(model, 'a'), unitsOf(model, 'b'), unitsOf(model, 'c')]).toEqual([3, 2, 5]);
    expect(report.layers.find((l) => l.name === 'c')!.inputsRemoved).toBe(2);
  });
});

describe('prune: Multiply and average pooling', () => {
  function gated(): tfl.LayersModel {
    const input = tfl.input({ shape: [7, 7, 2] });
    const a = tfl.layers
      .conv2d({ filters: 5, kernelSize: 3, padding: 'same', activation: 'tanh', name: 'a' })
      .apply(input) as tfl.SymbolicTensor;
    const g = tfl.layers
      .conv2d({ filters: 5, kernelSize: 1, activation: 'sigmoid', name: 'g' })
      .apply(input) as tfl.SymbolicTensor;
    const prod = tfl.layers.multiply({ name: 'mul' }).apply([a, g]) as tfl.SymbolicTensor;
    // 'same' average pooling divides by the in-bounds count, so a constant stays constant at the borders.
    const pool = tfl.layers
      .averagePooling2d({ poolSize: 2, padding: 'same', name: 'pool' })
      .apply(prod) as tfl.SymbolicTensor;
    const flat = tfl.layers.flatten().apply(pool) as tfl.SymbolicTensor;
    const out = tfl.layers.dense({ units: 3, name: 'out' }).apply(flat) as tfl.SymbolicTensor;
    const m = tfl.model({ inputs: input, outputs: out });
    const r = rng(12);
    fillAll(m, 'bias', () => r() - 0.5);
    return m;
  }

  it('keeps a gated channel when only one factor is constant', () => {
    const m = gated();
    zeroUnits(m, 'a', [1]);
    const { model } = prune(m);
    expectSame(m, model);
    expect([unitsOf(model, 'a'), unitsOf(model, 'g')]).toEqual([5, 5]);
  });

  it('folds the product of two constants through pooling and flatten', () => {
    const m = gated();
    zeroUnits(m, 'a', [1, 3]);
    zeroUnits(m, 'g', [1, 3]);
    const { model } = prune(m);
    expectSame(m, model);
    expect([unitsOf(model, 'a'), unitsOf(model, 'g')]).toEqual([3, 3]);
  });
});

describe('prune: Average, Maximum and Minimum joins of dead units', () => {
  // Unit 0 of a and b (and c) is dead with a different constant each (relu of its bias), so the
  // join's constant, folded into out's bias, is their mean, max or min: the wrong one shows.
  function joined(kind: 'average' | 'maximum' | 'minimum', branches: number, units: number): tfl.LayersModel {
    const x = tfl.input({ shape: [5], name: 'x' });
    const names = ['a', 'b', 'c'].slice(0, branches);
    const parts = names.map(
      (name, k) =>
        tfl.layers
          .dense({
            units,
            activation: 'relu',
            name,
            kernelInitializer: tfl.initializers.glorotUniform({ seed: k + 1 }),
          })
          .apply(x) as tfl.SymbolicTensor,
    );
    const j = tfl.layers[kind]({ name: 'j' }).apply(parts) as tfl.SymbolicTensor;
    const out = tfl.layers
      .dense({ units: 3, name: 'out', kernelInitializer: tfl.initializers.glorotUniform({ seed: 9 }) })
      .apply(j) as tfl.SymbolicTensor;
    const m = tfl.model({ inputs: x, outputs: out });
    const r = rng(7);
    fillAll(m, 'bias', () => r() + 0.1);
    [0.9, 0.2, 0.55].slice(0, branches).forEach((c, k) => editWeight(m, names[k], 'bias', (v) => (v[0] = c)));
    for (const name of names) zeroUnits(m, name, [0]);
    return m;
  }

  it("a Subtract join (a class of the user's, as a Keras port registers one: tfjs-layers has none)", () => {
    class Subtract extends tfl.layers.Layer {
      static className = 'Subtract';
      override computeOutputShape(shape: tfl.Shape | tfl.Shape[]): tfl.Shape {
        return (shape as tfl.Shape[])[0];
      }
      override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
        const [a, b] = inputs as tf.Tensor[];
        return tf.sub(a, b);
      }
    }
    tf.serialization.registerClass(Subtract);
    const x = tfl.input({ shape: [5], name: 'x' });
    const [a, b] = ['a', 'b'].map(
      (name, k) =>
        tfl.layers
          .dense({
            units: 4,
            activation: 'relu',
            name,
            kernelInitializer: tfl.initializers.glorotUniform({ seed: k + 1 }),
          })
          .apply(x) as tfl.SymbolicTensor,
    );
    const j = new Subtract({ name: 'j' }).apply([a, b]) as tfl.SymbolicTensor;
    const out = tfl.layers
      .dense({ units: 3, name: 'out', kernelInitializer: tfl.initializers.glorotUniform({ seed: 9 }) })
      .apply(j) as tfl.SymbolicTensor;
    const m = tfl.model({ inputs: x, outputs: out });
    const r = rng(8);
    fillAll(m, 'bias', () => r() + 0.1);
    editWeight(m, 'a', 'bias', (v) => (v[0] = 0.9));
    editWeight(m, 'b', 'bias', (v) => (v[0] = 0.2));
    zeroUnits(m, 'a', [0]);
    zeroUnits(m, 'b', [0]);
    const { model } = prune(m);
    expect([unitsOf(model, 'a'), unitsOf(model, 'b')]).toEqual([3, 3]);
    // a - b = 0.7 on the removed channel, folded into out's bias (a + b, or b - a, would show).
    expectSame(m, model);
  });

  it.each([
    ['average', 2, 4],
    ['maximum', 2, 4],
    ['minimum', 2, 4],
    ['average', 3, 6],
    ['maximum', 3, 6],
  ] as const)(
    '%s of %i branches of %i units: the dead units go, the outputs stay',
    (kind, branches, units) => {
      const m = joined(kind, branches, units);
      const { model } = prune(m);
      for (const name of ['a', 'b', 'c'].slice(0, branches)) expect(unitsOf(model, name)).toBe(units - 1);
      expectSame(m, model);
    },
  );
});

describe('prune: constants ahead of a convolution', () => {
  function twoConvs(padding: 'same' | 'valid', kernelSize: number, strides = 1, size = 7): tfl.Sequential {
    return tfl.sequential({
      layers: [
        tfl.layers.conv2d({
          inputShape: [size, size, 2],
          filters: 4,
          kernelSize: 3,
          padding: 'same',
          activation: 'relu',
          name: 'c1',
        }),
        tfl.layers.conv2d({ filters: 3, kernelSize, strides, padding, name: 'c2' }),
        tfl.layers.flatten({ name: 'f' }),
        tfl.layers.dense({ units: 2, name: 'out' }),
      ],
    });
  }
  // 'same' with stride 2 and kernel 2 pads (ceil(size / 2) - 1) * 2 + 2 - size: 1 on 7x7, 0 on 6x6.
  for (const [padding, k, removed, strides, size] of [
    ['valid', 3, true, 1, 7],
    ['same', 1, true, 1, 7],
    ['same', 3, false, 1, 7],
    ['same', 2, false, 2, 7],
    ['same', 2, true, 2, 6],
  ] as const) {
    it(`a dead filter with constant 0.5 ahead of a ${k}x${k} stride ${strides} '${padding}' conv on ${size}x${size} is ${removed ? 'folded' : 'kept and reported'}`, () => {
      const m = twoConvs(padding, k, strides, size);
      editWeight(m, 'c1', 'bias', (v) => (v[1] = 0.5));
      zeroUnits(m, 'c1', [1]);
      const { model, report } = prune(m);
      expectSame(m, model);
      expect(unitsOf(model, 'c1')).toBe(removed ? 3 : 4);
      expect(report.warnings.length).toBe(removed ? 0 : 1);
      if (!removed)
        expect(report.layers[0].keptConstant).toEqual([
          { unit: 1, value: 0.5, reason: expect.stringMatching(/'c2'/) },
        ]);
    });
  }

  it('a dead filter with constant 0 ahead of a same conv is removed', () => {
    const m = twoConvs('same', 3);
    editWeight(m, 'c1', 'bias', (v) => (v[1] = -0.5));
    zeroUnits(m, 'c1', [1]);
    const { model } = prune(m);
    expectSame(m, model);
    expect(unitsOf(model, 'c1')).toBe(3);
  });
});

describe('prune: a layer past the first built with its own inputShape', () => {
  // tfjs keeps such a layer's batchInputShape in its config (Keras lets any layer declare one),
  // and warns when the tensor a layer is applied to does not match it.
  const cases: [string, () => tfl.LayersModel, [string, number[]][]][] = [
    [
      'Dense after Dense, in a Sequential',
      () =>
        tfl.sequential({
          layers: [
            tfl.layers.dense({ inputShape: [5], units: 6, activation: 'relu', name: 'd1' }),
            tfl.layers.dense({ inputShape: [6], units: 4, activation: 'relu', name: 'd2' }),
            tfl.layers.dense({ units: 3, name: 'out' }),
          ],
        }),
      [
        ['d1', [0, 2]],
        ['d2', [1]],
      ],
    ],
    [
      'Conv2D after Conv2D, and BatchNormalization, in a Sequential',
      () =>
        tfl.sequential({
          layers: [
            tfl.layers.conv2d({
              inputShape: [6, 6, 3],
              filters: 6,
              kernelSize: 3,
              activation: 'relu',
              name: 'c1',
            }),
            tfl.layers.batchNormalization({ inputShape: [4, 4, 6], name: 'bn' }),
            tfl.layers.conv2d({ inputShape: [4, 4, 6], filters: 4, kernelSize: 3, name: 'c2' }),
            tfl.layers.flatten({ name: 'f' }),
            tfl.layers.dense({ units: 3, name: 'out' }),
          ],
        }),
      [['c1', [0, 2, 5]]],
    ],
    [
      'Dense after Flatten, in a functional model',
      () => {
        const x = tfl.input({ shape: [5, 5, 2] });
        const c = tfl.layers
          .conv2d({ filters: 4, kernelSize: 3, activation: 'relu', name: 'c1' })
          .apply(x) as tfl.SymbolicTensor;
        const f = tfl.layers.flatten({ name: 'f' }).apply(c) as tfl.SymbolicTensor;
        const d = tfl.layers.dense({ inputShape: [36], units: 5, name: 'd' }).apply(f) as tfl.SymbolicTensor;
        return tfl.model({ inputs: x, outputs: d });
      },
      [['c1', [1]]],
    ],
  ];

  it.each(cases)(
    '%s: its batchInputShape follows its pruned input, and tfjs does not warn',
    async (_, build, dead) => {
      const m = build();
      const r = rng(11);
      fillAll(m, 'bias', () => r() - 0.2);
      for (const [layer, units] of dead) zeroUnits(m, layer, units);
      const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
      try {
        const { model } = prune(m);
        expectSame(m, model);
        const config = model.getConfig() as any;
        const entries: any[] = Array.isArray(config) ? config : config.layers;
        for (const e of entries) {
          const declared = e.config.batchInputShape;
          if (!declared || e.className === 'InputLayer') continue;
          const layer = model.getLayer(e.config.name);
          expect(declared).toEqual(layer.inboundNodes[0].inputShapes[0]);
        }
        const saved = await saveInMemory(model);
        const loaded = await tfl.loadLayersModel(tf.io.fromMemory(saved));
        expectSame(m, loaded);
        expect(warn).not.toHaveBeenCalled();
      } finally {
        warn.mockRestore();
      }
    },
  );
});

describe('prune: refusals', () => {
  it('names an unknown layer type', () => {
    const m = tfl.sequential({
      layers: [
        tfl.layers.dense({ units: 4, inputShape: [3], name: 'd' }),
        tfl.layers.reshape({ targetShape: [2, 2], name: 'r' }),
      ],
    });
    expect(() => prune(m)).toThrow(/'r'.*Reshape/);
  });

  it('names a layer called more than once: in parallel branches, and applied to its own output', () => {
    const shared =
      /surgery: layer 'shared' \(Dense\) is called more than once \(shared weights\); shared layers are not supported/;
    const x = tfl.input({ shape: [4] });
    const d = tfl.layers.dense({ units: 4, name: 'shared' });
    const branches = tfl.layers
      .add()
      .apply([
        d.apply(x) as tfl.SymbolicTensor,
        d.apply(tfl.layers.activation({ activation: 'relu' }).apply(x)) as tfl.SymbolicTensor,
      ]) as tfl.SymbolicTensor;
    const parallel = tfl.model({
      inputs: x,
      outputs: tfl.layers.dense({ units: 2 }).apply(branches) as tfl.SymbolicTensor,
    });
    expect(() => prune(parallel)).toThrow(shared);
    expect(() => prune(parallel)).toThrow(
      /not supported: build the model with one layer per call.*, then prune. Without pruning, exportModel\(model, dir, \{ format: 'sparse' \}\)/,
    );
    // In a chain the layer reads its own output: refused as shared, not as a model with no order.
    const y = tfl.input({ shape: [4] });
    const e = tfl.layers.dense({ units: 4, name: 'shared' });
    const chain = tfl.model({
      inputs: y,
      outputs: tfl.layers.dense({ units: 2 }).apply(e.apply(e.apply(y))) as tfl.SymbolicTensor,
    });
    expect(() => prune(chain)).toThrow(shared);
    // Decomposed, the same refusals, and the folded copy (whose shared layer tfjs's dispose leaves
    // allocated) is freed whole, by prune as by analyze.
    for (const m of [parallel, chain]) {
      const dec = decompose(m);
      const before = tf.memory().numTensors;
      for (let k = 0; k < 3; k++) {
        expect(() => prune(dec)).toThrow(shared);
        expect(analyze(dec).layers.length).toBeGreaterThan(0);
      }
      expect(tf.memory().numTensors).toBe(before);
      dec.dispose();
    }
  });

  it.each<[string, () => tfl.LayersModel, string]>([
    [
      'a channelsFirst Conv2D',
      () =>
        tfl.sequential({
          layers: [
            tfl.layers.conv2d({
              inputShape: [2, 6, 6],
              filters: 3,
              kernelSize: 3,
              dataFormat: 'channelsFirst',
              name: 'c',
            }),
            tfl.layers.flatten(),
            tfl.layers.dense({ units: 2 }),
          ],
        }),
      "surgery: layer 'c' (Conv2D) uses dataFormat 'channelsFirst'; only channelsLast is supported: build the model " +
        "with dataFormat 'channelsLast' (the default, inputs as [batch, height, width, channels]), then prune.",
    ],
    [
      'a BatchNormalization on axis 1',
      () =>
        tfl.sequential({
          layers: [
            tfl.layers.conv2d({ inputShape: [6, 6, 2], filters: 3, kernelSize: 3, name: 'c' }),
            tfl.layers.batchNormalization({ axis: 1, name: 'bn' }),
            tfl.layers.flatten(),
            tfl.layers.dense({ units: 2 }),
          ],
        }),
      "surgery: layer 'bn' (BatchNormalization) works on axis 1; only the last (channel) axis is supported: build " +
        'the model with its channels last (axis -1, the default), then prune.',
    ],
  ])('refuses %s, saying what to build instead and what to do without pruning', (_, build, message) => {
    const m = build();
    const before = tf.memory().numTensors;
    expect(() => prune(m, { unknownLayers: 'keep' })).toThrow(message);
    expect(() => prune(m)).toThrow(
      `${message} Without pruning, exportModel(model, dir, { format: 'sparse' })`,
    );
    expect(tf.memory().numTensors).toBe(before);
    m.dispose();
  });
});

// PruneReport.layersBefore is the input model's per-layer counts (what analyze gives with the
// same threshold), layersAfter the pruned model's (what analyze gives on it).
describe('PruneReport.layersBefore / layersAfter', () => {
  it.each([0, 0.2])(
    'threshold %s: the input model, then the pruned model, as analyze counts them',
    (threshold) => {
      const m = tfl.sequential({
        layers: [
          tfl.layers.dense({
            inputShape: [8],
            units: 6,
            name: 'd1',
            kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }),
          }),
          tfl.layers.dense({
            units: 3,
            name: 'o',
            kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }),
          }),
        ],
      });
      const k = m.getLayer('d1').getWeights()[0];
      const v = k.dataSync().slice();
      v.forEach((_, p) => p % 6 === 2 && (v[p] = 0)); // unit 2 of d1 dead
      const t = tf.tensor(v, k.shape);
      m.getLayer('d1').setWeights([t, m.getLayer('d1').getWeights()[1]]);
      t.dispose();
      const before = tf.memory().numTensors;
      const { model: pruned, report } = prune(m, { threshold });
      expect(report.layersBefore).toEqual(analyze(m, { threshold }).layers);
      expect(report.layersAfter).toEqual(analyze(pruned).layers);
      expect(report.layersBefore.find((l) => l.name === 'd1')!.params).toBe(8 * 6 + 6);
      expect(report.layersAfter.find((l) => l.name === 'd1')!.params).toBeLessThan(8 * 6 + 6);
      pruned.dispose();
      expect(tf.memory().numTensors).toBe(before);
      m.dispose();
    },
  );
});

describe('prune: a layer dead whole before a softmax', () => {
  // A softmax of units that are all constant is constant: the model's output no longer depends on
  // its input, so the dead layer is refused, as before any other output. It used to be kept as a
  // placeholder, "a model output after it still depends on the input through another input of a join".
  const dense = (head: (x: tfl.SymbolicTensor) => tfl.SymbolicTensor) => () => {
    const input = tfl.input({ shape: [6] });
    const a = tfl.layers
      .dense({ units: 4, activation: 'relu', name: 'a' })
      .apply(input) as tfl.SymbolicTensor;
    return tfl.model({ inputs: input, outputs: head(a) });
  };
  const logits = (x: tfl.SymbolicTensor) =>
    tfl.layers.dense({ units: 3, name: 'logits' }).apply(x) as tfl.SymbolicTensor;
  const cases: [string, () => tfl.LayersModel, number][] = [
    [
      'Dense with activation softmax',
      dense(
        (x) =>
          tfl.layers.dense({ units: 3, activation: 'softmax', name: 'out' }).apply(x) as tfl.SymbolicTensor,
      ),
      4,
    ],
    [
      'an Activation softmax',
      dense((x) => tfl.layers.activation({ activation: 'softmax' }).apply(logits(x)) as tfl.SymbolicTensor),
      4,
    ],
    [
      'an Activation logSoftmax',
      dense(
        (x) =>
          tfl.layers.activation({ activation: 'logSoftmax' as never }).apply(logits(x)) as tfl.SymbolicTensor,
      ),
      4,
    ],
    ['a Softmax layer', dense((x) => tfl.layers.softmax().apply(logits(x)) as tfl.SymbolicTensor), 4],
    [
      'Conv2D with activation softmax',
      () =>
        tfl.sequential({
          layers: [
            tfl.layers.conv2d({
              inputShape: [5, 5, 2],
              filters: 4,
              kernelSize: 3,
              activation: 'relu',
              name: 'a',
            }),
            tfl.layers.conv2d({ filters: 3, kernelSize: 1, activation: 'softmax', name: 'out' }),
          ],
        }),
      4,
    ],
  ];
  it.each(cases)(
    '%s: refused when every unit before it is dead, pruned exactly when one lives',
    (_name, make, units) => {
      const m = make();
      fillAll(m, 'bias', () => 0.3);
      zeroUnits(
        m,
        'a',
        Array.from({ length: units }, (_, i) => i),
      );
      const before = tf.memory().numTensors;
      expect(() => prune(m)).toThrow(
        new RegExp(
          `^surgery: every unit of layer 'a' \\(\\w+, ${units} units\\) is dead: the model's output no longer depends on its input`,
        ),
      );
      expect(tf.memory().numTensors).toBe(before);
      const live = make();
      fillAll(live, 'bias', () => 0.3);
      zeroUnits(
        live,
        'a',
        Array.from({ length: units - 1 }, (_, i) => i),
      );
      const { model } = prune(live);
      expectSame(live, model);
      expect(unitsOf(model, 'a')).toBe(1);
      for (const x of [m, live, model]) x.dispose();
    },
  );
});
