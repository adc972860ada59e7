// A model zoo from the standpoint of a user who brings their own tfjs models:
// for each architecture, the documented workflow end to end, on the cpu and
// the wasm backend: decompose -> a few proximal steps -> zero some magnitudes
// by hand (guaranteed exact zeros) -> prune -> the pruned model computes what
// the folded model computes, the counts are right, both export formats
// round-trip, and no tensor is left behind. Unsupported layers must be
// refused with a message naming the layer, its class and what to do.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decompose, fold, magnitudes } from '@normprune/layers';
import { ProximalAdam, ProximalSGD } from '@normprune/prox';
import { fileSystem, initBackend } from '@normprune/runtime';
import { analyze, exportModel, kernelMask, loadSparseModel, prune, type Counts } from '../src/index';
import { maxDiff } from '../../../tools/testing/leaks';
import { plainCopy, roundToHalf } from './float16-reference';
import { editWeight, rng, setBias } from './helpers';
import { expectSameWeights, pruneTheOldWay } from './same-plan';

type DenseG = 'output' | 'input';
type ConvG = 'kernel' | 'filter';
type Sym = tfl.SymbolicTensor;

const k = (seed: number) => tfl.initializers.glorotNormal({ seed });

// ---------------------------------------------------------------- utilities

/** Random, fixed inputs for every model input (batch from the model when it is fixed). */
function inputsFor(model: tfl.LayersModel, seed: number, batch = 3, free = 7): tf.Tensor[] {
  return model.inputs.map((inp, j) => {
    const b = inp.shape[0] ?? batch;
    // a free spatial size (a fully convolutional model) gets `free`
    const rest = inp.shape.slice(1).map((d) => d ?? free);
    return tf.randomNormal([b, ...rest], 0, 1, 'float32', seed + j);
  });
}

function outputsOf(model: tfl.LayersModel, xs: tf.Tensor[]): Float32Array[] {
  return tf.tidy(() => {
    const y = model.predict(xs.length === 1 ? xs[0] : xs);
    return (Array.isArray(y) ? y : [y]).map((t) => t.dataSync() as Float32Array);
  });
}

/** Max |a - b| over every output, relative to max(1, largest |output|). */
function expectSameOutputs(a: tfl.LayersModel, b: tfl.LayersModel, xs: tf.Tensor[], tol = 1e-5): void {
  const ya = outputsOf(a, xs);
  const yb = outputsOf(b, xs);
  expect(yb.length).toBe(ya.length);
  ya.forEach((v, j) => {
    const scale = Math.max(1, ...Array.from(v, Math.abs));
    expect(maxDiff(v, yb[j]).abs).toBeLessThanOrEqual(tol * scale);
  });
}

function shortName(w: tfl.LayerVariable): string {
  return String((w as any).originalName ?? w.name)
    .split('/')
    .pop()!
    .replace(/_\d+$/, '');
}

/** Overwrites entries of a magnitude (decomposed layer) by flat index. */
function zeroMagnitude(model: tfl.LayersModel, layer: string, pred: (q: number, shape: number[]) => boolean) {
  editWeight(model, layer, 'magnitude', (v, shape) => v.forEach((_, q) => pred(q, shape) && (v[q] = 0)));
}

/** Kills output units (Dense neurons, Conv2D filters) through the magnitudes of any granularity. */
function killUnits(model: tfl.LayersModel, layer: string, units: number[]): void {
  const g = (model.getLayer(layer) as any).granularity as string;
  if (g === 'input') throw new Error('a Dense of granularity input cannot kill a unit');
  zeroMagnitude(model, layer, (q, shape) => units.includes(g === 'kernel' ? q % shape[1] : q));
}

/** Kills input features / channels of a layer (Dense 'input' rows, Conv2D 'kernel' [i, :]). */
function killInputs(model: tfl.LayersModel, layer: string, inputs: number[]): void {
  const g = (model.getLayer(layer) as any).granularity as string;
  if (g !== 'input' && g !== 'kernel') throw new Error(`granularity ${g} cannot kill an input`);
  zeroMagnitude(model, layer, (q, shape) => inputs.includes(g === 'kernel' ? Math.floor(q / shape[1]) : q));
}

/** Non-trivial biases and BatchNormalization statistics, so that dead units emit non-zero constants. */
function randomize(model: tfl.LayersModel, seed: number): void {
  const r = rng(seed);
  for (const layer of model.layers) {
    const ws = layer.weights;
    if (!ws.length) continue;
    const fill: Record<string, () => number> = {
      // positive: a dead relu unit then emits a non-zero constant that surgery must fold
      bias: () => 0.1 + 0.4 * r(),
      gamma: () => 0.5 + r(),
      beta: () => r() - 0.5,
      moving_mean: () => r() - 0.5,
      moving_variance: () => 0.5 + r(),
    };
    if (!ws.some((w) => fill[shortName(w)])) continue;
    const vals = layer.getWeights().map((t, j) => {
      const v = Float32Array.from(t.dataSync() as Float32Array);
      const f = fill[shortName(ws[j])];
      if (f) v.forEach((_, q) => (v[q] = f()));
      return tf.tensor(v, t.shape);
    });
    layer.setWeights(vals);
    tf.dispose(vals);
  }
}

/** Counts computed here from the weights alone, to check analyze() and the report against. */
function independentCounts(model: tfl.LayersModel): Counts & { byLayer: Map<string, Counts> } {
  const total: Counts = { params: 0, nonzeros: 0, macs: 0, nonzeroMacs: 0, zeroGroupParams: 0 };
  const byLayer = new Map<string, Counts>();
  for (const layer of model.layers) {
    const c: Counts = { params: 0, nonzeros: 0, macs: 0, nonzeroMacs: 0, zeroGroupParams: 0 };
    const cls = layer.getClassName();
    layer.weights.forEach((w) => {
      const v = w.read().dataSync();
      c.params += v.length;
      c.nonzeros += v.filter((x) => x !== 0).length;
      const name = shortName(w);
      const isKernel =
        ((cls === 'Dense' || cls === 'Conv2D') && name === 'kernel') ||
        (cls === 'DepthwiseConv2D' && name === 'depthwise_kernel');
      if (!isKernel) return;
      const out = layer.outputShape as (number | null)[];
      const positions = out.slice(1, -1).reduce<number>((a, b) => a * (b ?? NaN), 1);
      c.macs += v.length * positions;
      c.nonzeroMacs += v.filter((x) => x !== 0).length * positions;
      const s = w.shape as number[];
      const [cin, cout] = s.slice(-2);
      const K = v.length / (cin * cout);
      const zeroAt = (i: number, o: number) => {
        for (let kk = 0; kk < K; kk++) if (v[(kk * cin + i) * cout + o] !== 0) return false;
        return true;
      };
      for (let i = 0; i < cin; i++) {
        for (let o = 0; o < cout; o++) {
          let inZeroGroup: boolean;
          if (cls === 'Dense') {
            let row = true;
            let col = true;
            for (let oo = 0; oo < cout && row; oo++) if (v[i * cout + oo] !== 0) row = false;
            for (let ii = 0; ii < cin && col; ii++) if (v[ii * cout + o] !== 0) col = false;
            inZeroGroup = row || col;
          } else inZeroGroup = zeroAt(i, o);
          if (inZeroGroup) c.zeroGroupParams += K;
        }
      }
    });
    byLayer.set(layer.name, c);
    for (const key of Object.keys(total) as (keyof Counts)[]) total[key] += c[key];
  }
  return { ...total, byLayer };
}

function expectCounts(actual: Counts, expected: Counts): void {
  expect({
    params: actual.params,
    nonzeros: actual.nonzeros,
    macs: actual.macs,
    nonzeroMacs: actual.nonzeroMacs,
    zeroGroupParams: actual.zeroGroupParams,
  }).toEqual({
    params: expected.params,
    nonzeros: expected.nonzeros,
    macs: expected.macs,
    nonzeroMacs: expected.nonzeroMacs,
    zeroGroupParams: expected.zeroGroupParams,
  });
}

function unitsOf(model: tfl.LayersModel, name: string): number {
  const s = model.getLayer(name).outputShape as number[];
  return s[s.length - 1];
}

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-zoo-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

// ---------------------------------------------------------------- the zoo

interface ZooCase {
  name: string;
  build(): tfl.LayersModel;
  granularity: { dense?: DenseG; conv2d?: ConvG };
  /** Zeroes magnitudes (and sets biases) on the decomposed model. */
  kill(m: tfl.LayersModel): void;
  /** Units (Dense) / filters (Conv2D) expected after pruning, by layer. */
  units: Record<string, number>;
  /** Layers (by name) expected to carry a kept-constant warning. */
  warns?: string[];
  /** Extra checks on the pruned model. */
  extra?(pruned: tfl.LayersModel, report: ReturnType<typeof prune>['report']): void;
  /** Skip the proximal training steps (e.g. no gradient on some backend). */
  noTraining?: boolean;
  /** Train with ProximalAdam instead of ProximalSGD. */
  adam?: boolean;
  /**
   * The zero kernel weights the pruned model keeps, by layer (what kernelMask must hold while
   * fine-tuning): a dead unit kept (with a warning), a zero row of a model input or of a single
   * Flatten position, a dead 2-D kernel of a live filter. Absent when the kill leaves none:
   * every group it zeroes is then a whole unit, or an input whose producer loses its last
   * reader, and prune removes it.
   */
  held?: Record<string, number>;
}

function mlpBn(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.dense({
        inputShape: [12],
        units: 16,
        activation: 'relu',
        name: 'd1',
        kernelInitializer: k(1),
      }),
      tfl.layers.batchNormalization({ name: 'bn1' }),
      tfl.layers.dropout({ rate: 0.3, name: 'drop1' }),
      tfl.layers.dense({ units: 12, activation: 'tanh', name: 'd2', kernelInitializer: k(2) }),
      tfl.layers.dropout({ rate: 0.3, name: 'drop2' }),
      tfl.layers.dense({ units: 5, activation: 'softmax', name: 'd3', kernelInitializer: k(3) }),
    ],
  });
}

function denseNoBias(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.dense({
        inputShape: [10],
        units: 16,
        activation: 'sigmoid',
        useBias: false,
        name: 'a',
        kernelInitializer: k(1),
      }),
      tfl.layers.dense({ units: 8, activation: 'relu', useBias: false, name: 'b', kernelInitializer: k(2) }),
      tfl.layers.dense({ units: 4, useBias: false, name: 'c', kernelInitializer: k(3) }),
    ],
  });
}

function activationLayers(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.dense({ inputShape: [10], units: 16, name: 'd1', kernelInitializer: k(1) }),
      tfl.layers.reLU({ name: 'relu' }),
      tfl.layers.dense({ units: 12, name: 'd2', kernelInitializer: k(2) }),
      tfl.layers.leakyReLU({ alpha: 0.2, name: 'lrelu' }),
      tfl.layers.dense({ units: 10, name: 'd3', kernelInitializer: k(3) }),
      tfl.layers.elu({ name: 'elu' }),
      tfl.layers.dense({ units: 6, name: 'd4', kernelInitializer: k(4) }),
      tfl.layers.softmax({ name: 'sm' }),
    ],
  });
}

function activationsInside(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.dense({
        inputShape: [10],
        units: 12,
        activation: 'relu',
        name: 'r',
        kernelInitializer: k(1),
      }),
      tfl.layers.dense({ units: 10, activation: 'tanh', name: 't', kernelInitializer: k(2) }),
      tfl.layers.dense({ units: 8, activation: 'sigmoid', name: 's', kernelInitializer: k(3) }),
      tfl.layers.dense({ units: 6, activation: 'linear', name: 'l', kernelInitializer: k(4) }),
      tfl.layers.dense({ units: 3, activation: 'softmax', name: 'o', kernelInitializer: k(5) }),
    ],
  });
}

/** conv 'valid' -> conv 'same' stride 2 -> max pooling -> Flatten -> Dense. */
function cnnA(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        inputShape: [12, 12, 3],
        filters: 6,
        kernelSize: 3,
        activation: 'relu',
        name: 'c1',
        kernelInitializer: k(1),
      }),
      tfl.layers.conv2d({
        filters: 8,
        kernelSize: 3,
        strides: 2,
        padding: 'same',
        activation: 'tanh',
        name: 'c2',
        kernelInitializer: k(2),
      }),
      tfl.layers.maxPooling2d({ poolSize: 2, name: 'mp' }),
      tfl.layers.flatten({ name: 'flat' }),
      tfl.layers.dense({ units: 10, activation: 'relu', name: 'f1', kernelInitializer: k(3) }),
      tfl.layers.dense({ units: 4, name: 'f2', kernelInitializer: k(4) }),
    ],
  });
}

/** conv 'same' -> 'same' average pooling that pads -> conv 'valid' sigmoid -> global average pooling. */
function cnnB(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        inputShape: [12, 12, 3],
        filters: 6,
        kernelSize: 3,
        padding: 'same',
        activation: 'relu',
        name: 'c1',
        kernelInitializer: k(1),
      }),
      tfl.layers.averagePooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'ap' }),
      tfl.layers.conv2d({
        filters: 8,
        kernelSize: 3,
        activation: 'sigmoid',
        name: 'c2',
        kernelInitializer: k(2),
      }),
      tfl.layers.globalAveragePooling2d({ name: 'gap' }),
      tfl.layers.dense({ units: 4, name: 'out', kernelInitializer: k(3) }),
    ],
  });
}

/** conv 'same' stride 2 elu -> 1x1 conv -> global max pooling. */
function cnnC(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        inputShape: [9, 9, 3],
        filters: 6,
        kernelSize: 3,
        strides: 2,
        padding: 'same',
        activation: 'elu',
        name: 'c1',
        kernelInitializer: k(1),
      }),
      tfl.layers.conv2d({ filters: 8, kernelSize: 1, padding: 'same', name: 'c2', kernelInitializer: k(2) }),
      tfl.layers.globalMaxPooling2d({ name: 'gmp' }),
      tfl.layers.dense({ units: 4, name: 'out', kernelInitializer: k(3) }),
    ],
  });
}

/** Two residual blocks: an identity shortcut, then a strided block with a 1x1 projection shortcut. */
function resnet(): tfl.LayersModel {
  const conv = (
    name: string,
    filters: number,
    size: number,
    seed: number,
    strides = 1,
    activation: any = 'linear',
  ) =>
    tfl.layers.conv2d({
      filters,
      kernelSize: size,
      strides,
      padding: 'same',
      activation,
      name,
      kernelInitializer: k(seed),
    });
  const x = tfl.input({ shape: [8, 8, 3], name: 'x' });
  const stem = conv('stem', 8, 3, 1, 1, 'relu').apply(x) as Sym;
  const r1a = conv('r1a', 8, 3, 2, 1, 'relu').apply(stem) as Sym;
  const r1b = conv('r1b', 8, 3, 3).apply(r1a) as Sym;
  const add1 = tfl.layers.add({ name: 'add1' }).apply([stem, r1b]) as Sym;
  const relu1 = tfl.layers.reLU({ name: 'relu1' }).apply(add1) as Sym;
  const p2a = conv('p2a', 12, 3, 4, 2, 'relu').apply(relu1) as Sym;
  const p2b = conv('p2b', 12, 3, 5).apply(p2a) as Sym;
  const proj = conv('proj', 12, 1, 6, 2).apply(relu1) as Sym;
  const add2 = tfl.layers.add({ name: 'add2' }).apply([p2b, proj]) as Sym;
  const relu2 = tfl.layers.reLU({ name: 'relu2' }).apply(add2) as Sym;
  const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(relu2) as Sym;
  const out = tfl.layers.dense({ units: 5, name: 'out', kernelInitializer: k(7) }).apply(gap) as Sym;
  return tfl.model({ inputs: x, outputs: out });
}

/** Inception-like: 1x1, 3x3 and pool->1x1 branches concatenated, then a 1x1 mix. */
function inception(): tfl.LayersModel {
  const x = tfl.input({ shape: [8, 8, 4], name: 'x' });
  const c = (name: string, filters: number, size: number, seed: number) =>
    tfl.layers.conv2d({
      filters,
      kernelSize: size,
      padding: 'same',
      activation: 'relu',
      name,
      kernelInitializer: k(seed),
    });
  const stem = c('stem', 6, 1, 1).apply(x) as Sym;
  const b1 = c('b1', 4, 1, 2).apply(stem) as Sym;
  const b2 = c('b2', 4, 3, 3).apply(stem) as Sym;
  const pool = tfl.layers
    .maxPooling2d({ poolSize: 3, strides: 1, padding: 'same', name: 'b3pool' })
    .apply(stem) as Sym;
  const b3 = c('b3', 3, 1, 4).apply(pool) as Sym;
  const cat = tfl.layers.concatenate({ name: 'cat' }).apply([b1, b2, b3]) as Sym;
  const mix = c('mix', 8, 1, 5).apply(cat) as Sym;
  const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(mix) as Sym;
  const out = tfl.layers.dense({ units: 3, name: 'out', kernelInitializer: k(6) }).apply(gap) as Sym;
  return tfl.model({ inputs: x, outputs: out });
}

/** MobileNet-like: conv stride 2, then depthwise 3x3 ('same', then 'valid') each followed by a 1x1 conv. */
function mobilenet(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        inputShape: [10, 10, 3],
        filters: 8,
        kernelSize: 3,
        strides: 2,
        padding: 'same',
        activation: 'relu',
        name: 'c0',
        kernelInitializer: k(1),
      }),
      tfl.layers.depthwiseConv2d({
        kernelSize: 3,
        padding: 'same',
        activation: 'relu',
        name: 'dw1',
        depthwiseInitializer: k(2),
      }),
      tfl.layers.conv2d({
        filters: 12,
        kernelSize: 1,
        activation: 'relu',
        name: 'pw1',
        kernelInitializer: k(3),
      }),
      tfl.layers.depthwiseConv2d({ kernelSize: 3, name: 'dw2', depthwiseInitializer: k(4) }),
      tfl.layers.conv2d({ filters: 8, kernelSize: 1, name: 'pw2', kernelInitializer: k(5) }),
      tfl.layers.globalAveragePooling2d({ name: 'gap' }),
      tfl.layers.dense({ units: 4, name: 'out', kernelInitializer: k(6) }),
    ],
  });
}

/** Conv 'valid' -> ZeroPadding2D -> conv 'valid' -> Cropping2D -> 1x1 conv -> Flatten -> Dense. */
function padCrop(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        inputShape: [10, 10, 3],
        filters: 6,
        kernelSize: 3,
        activation: 'relu',
        name: 'c1',
        kernelInitializer: k(1),
      }),
      tfl.layers.zeroPadding2d({ padding: 1, name: 'zp' }),
      tfl.layers.conv2d({
        filters: 8,
        kernelSize: 3,
        activation: 'relu',
        name: 'c2',
        kernelInitializer: k(2),
      }),
      tfl.layers.cropping2D({ cropping: 1, name: 'crop' }),
      tfl.layers.conv2d({ filters: 6, kernelSize: 1, name: 'c3', kernelInitializer: k(3) }),
      tfl.layers.flatten({ name: 'flat' }),
      tfl.layers.dense({ units: 3, name: 'out', kernelInitializer: k(4) }),
    ],
  });
}

/** Two inputs (a vector and an image), merged by Concatenate. */
function multiInput(): tfl.LayersModel {
  const a = tfl.input({ shape: [10], name: 'inA' });
  const b = tfl.input({ shape: [6, 6, 2], name: 'inB' });
  const da = tfl.layers
    .dense({ units: 8, activation: 'relu', name: 'da', kernelInitializer: k(1) })
    .apply(a) as Sym;
  const cb = tfl.layers
    .conv2d({ filters: 4, kernelSize: 3, activation: 'relu', name: 'cb', kernelInitializer: k(2) })
    .apply(b) as Sym;
  const fl = tfl.layers.flatten({ name: 'flat' }).apply(cb) as Sym;
  const db = tfl.layers
    .dense({ units: 8, activation: 'relu', name: 'db', kernelInitializer: k(3) })
    .apply(fl) as Sym;
  const cat = tfl.layers.concatenate({ name: 'cat' }).apply([da, db]) as Sym;
  const out = tfl.layers.dense({ units: 4, name: 'out', kernelInitializer: k(4) }).apply(cat) as Sym;
  return tfl.model({ inputs: [a, b], outputs: out });
}

/** Three outputs: two heads and an intermediate feature layer. */
function multiOutput(): tfl.LayersModel {
  const x = tfl.input({ shape: [10], name: 'x' });
  const t1 = tfl.layers
    .dense({ units: 16, activation: 'relu', name: 't1', kernelInitializer: k(1) })
    .apply(x) as Sym;
  const t2 = tfl.layers
    .dense({ units: 12, activation: 'relu', name: 't2', kernelInitializer: k(2) })
    .apply(t1) as Sym;
  const h1 = tfl.layers
    .dense({ units: 3, activation: 'softmax', name: 'h1', kernelInitializer: k(3) })
    .apply(t2) as Sym;
  const h2 = tfl.layers.dense({ units: 1, name: 'h2', kernelInitializer: k(4) }).apply(t1) as Sym;
  return tfl.model({ inputs: x, outputs: [h1, h2, t2] });
}

/** A functional model whose input fixes the batch size. */
function fixedBatchFunctional(): tfl.LayersModel {
  const x = tfl.input({ batchShape: [4, 10], name: 'x' });
  const h = tfl.layers
    .dense({ units: 8, activation: 'relu', name: 'h', kernelInitializer: k(1) })
    .apply(x) as Sym;
  const out = tfl.layers.dense({ units: 3, name: 'out', kernelInitializer: k(2) }).apply(h) as Sym;
  return tfl.model({ inputs: x, outputs: out });
}

/** A Sequential model whose first layer fixes the batch size. */
function fixedBatchSequential(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        batchInputShape: [2, 6, 6, 2],
        filters: 4,
        kernelSize: 3,
        activation: 'relu',
        name: 'c',
        kernelInitializer: k(1),
      }),
      tfl.layers.flatten({ name: 'flat' }),
      tfl.layers.dense({ units: 6, activation: 'relu', name: 'h', kernelInitializer: k(2) }),
      tfl.layers.dense({ units: 3, name: 'out', kernelInitializer: k(3) }),
    ],
  });
}

/** Dense applied to a sequence [batch, t, features], then Flatten. */
function rank3Dense(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.dense({
        inputShape: [5, 7],
        units: 8,
        activation: 'relu',
        name: 'd1',
        kernelInitializer: k(1),
      }),
      tfl.layers.dense({ units: 6, activation: 'tanh', name: 'd2', kernelInitializer: k(2) }),
      tfl.layers.flatten({ name: 'flat' }),
      tfl.layers.dense({ units: 4, name: 'out', kernelInitializer: k(3) }),
    ],
  });
}

/** Dense applied to a sequence, then global average pooling over time. */
function rank3DensePooled(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.dense({
        inputShape: [5, 7],
        units: 8,
        activation: 'relu',
        name: 'd1',
        kernelInitializer: k(1),
      }),
      tfl.layers.dense({ units: 6, activation: 'sigmoid', name: 'd2', kernelInitializer: k(2) }),
      tfl.layers.globalAveragePooling1d({ name: 'gap' }),
      tfl.layers.dense({ units: 4, name: 'out', kernelInitializer: k(3) }),
    ],
  });
}

/** Fully convolutional: any height and width, global pooling, MACs unknown. */
function fullyConvolutional(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        inputShape: [null, null, 3],
        filters: 6,
        kernelSize: 3,
        activation: 'relu',
        name: 'c1',
        kernelInitializer: k(1),
      }),
      tfl.layers.conv2d({
        filters: 8,
        kernelSize: 3,
        padding: 'same',
        activation: 'relu',
        name: 'c2',
        kernelInitializer: k(2),
      }),
      tfl.layers.globalAveragePooling2d({ name: 'gap' }),
      tfl.layers.dense({ units: 3, name: 'out', kernelInitializer: k(3) }),
    ],
  });
}

/** Dense on an image [h, w, c] (a 1x1 convolution in disguise), BN without scale and center, upsampling. */
function denseOnImage(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        inputShape: [6, 6, 2],
        filters: 6,
        kernelSize: 3,
        activation: 'relu',
        name: 'c1',
        kernelInitializer: k(1),
      }),
      tfl.layers.batchNormalization({ scale: false, center: false, name: 'bn' }),
      tfl.layers.upSampling2d({ size: [2, 2], name: 'up' }),
      tfl.layers.dense({ units: 5, activation: 'relu', name: 'pix', kernelInitializer: k(2) }),
      tfl.layers.averagePooling2d({ poolSize: 2, name: 'ap' }),
      tfl.layers.flatten({ name: 'flat' }),
      tfl.layers.dense({ units: 3, name: 'out', kernelInitializer: k(3) }),
    ],
  });
}

/** Joins other than Add, and the model input itself inside a join and a Concatenate. */
function joins(): tfl.LayersModel {
  const x = tfl.input({ shape: [6], name: 'x' });
  const d = (name: string, units: number, seed: number, activation: any = 'relu') =>
    tfl.layers.dense({ units, activation, name, kernelInitializer: k(seed) });
  const a = d('a', 6, 1).apply(x) as Sym;
  const b = d('b', 6, 2).apply(x) as Sym;
  const c = d('c', 6, 3, 'tanh').apply(x) as Sym;
  const avg = tfl.layers.average({ name: 'avg' }).apply([a, b]) as Sym;
  const mx = tfl.layers.maximum({ name: 'max' }).apply([avg, c]) as Sym;
  const mn = tfl.layers.minimum({ name: 'min' }).apply([mx, x]) as Sym; // the input: its channels are fixed
  const e = d('e', 8, 4).apply(mn) as Sym;
  const cat = tfl.layers.concatenate({ name: 'cat' }).apply([e, x]) as Sym;
  const out = d('out', 3, 5, 'linear').apply(cat) as Sym;
  return tfl.model({ inputs: x, outputs: out });
}

const ZOO: ZooCase[] = [
  {
    name: "MLP with BatchNormalization and Dropout, Dense 'output'",
    build: mlpBn,
    granularity: { dense: 'output' },
    kill: (m) => {
      killUnits(m, 'd1', [1, 4, 7]);
      killUnits(m, 'd2', [0, 3]);
    },
    units: { d1: 13, d2: 10, d3: 5 },
    extra: (p) => expect(p.getLayer('bn1').getWeights()[0].shape).toEqual([13]),
  },
  {
    name: "MLP with BatchNormalization and Dropout, Dense 'input'",
    build: mlpBn,
    granularity: { dense: 'input' },
    kill: (m) => {
      killInputs(m, 'd1', [0]); // a model input: stays, as a zero row
      killInputs(m, 'd2', [2, 5]);
      killInputs(m, 'd3', [1]);
    },
    units: { d1: 14, d2: 11, d3: 5 },
    held: { d1: 14 }, // d1's row 0 (a model input) across its 14 units
  },
  {
    name: 'Dense without bias (a dead sigmoid unit emits 0.5: its consumer gets a bias)',
    build: denseNoBias,
    granularity: { dense: 'output' },
    kill: (m) => {
      killUnits(m, 'a', [0, 5]);
      killUnits(m, 'b', [2]);
    },
    units: { a: 14, b: 7, c: 4 },
    extra: (p) => {
      expect(p.getLayer('b').getConfig().useBias).toBe(true);
      expect(p.getLayer('c').getConfig().useBias).toBe(false);
    },
  },
  {
    name: 'activations as layers: ReLU, LeakyReLU, ELU, Softmax',
    build: activationLayers,
    granularity: { dense: 'output' },
    kill: (m) => {
      killUnits(m, 'd1', [3]);
      killUnits(m, 'd2', [1, 2]);
      killUnits(m, 'd3', [0]);
    },
    units: { d1: 15, d2: 10, d3: 9, d4: 6 },
  },
  {
    name: 'activations inside layers: relu, tanh, sigmoid, linear, softmax',
    build: activationsInside,
    granularity: { dense: 'output' },
    kill: (m) => {
      killUnits(m, 'r', [0, 1]);
      killUnits(m, 't', [2]);
      killUnits(m, 's', [3, 4]);
      killUnits(m, 'l', [5]);
    },
    units: { r: 10, t: 9, s: 6, l: 5, o: 3 },
  },
  {
    name: "CNN: 'valid' conv, 'same' stride-2 conv, max pooling, Flatten; conv 'kernel'",
    build: cnnA,
    granularity: { conv2d: 'kernel', dense: 'output' },
    kill: (m) => {
      // c1 filter 0 emits relu(-0.3) = 0: removed; filter 2 emits 0.3, and c2 pads: kept, with a warning.
      setBias(m, 'c1', { 0: -0.3, 2: 0.3 });
      killUnits(m, 'c1', [0, 2]);
      killInputs(m, 'c2', [4]); // nothing reads c1 filter 4 any more: removed
      zeroMagnitude(m, 'c2', (q, s) => q === 3 * s[1] + 0); // one 2-D kernel: stays as zeros
      killUnits(m, 'c2', [1, 5]);
      killUnits(m, 'f1', [2]);
    },
    units: { c1: 4, c2: 6, f1: 9, f2: 4 },
    warns: ['c1'],
    held: { c1: 27, c2: 9 }, // c1's kept filter 2 (3x3x3), c2's dead 2-D kernel [3, 0] (3x3)
    extra: (_p, report) => {
      const c1 = report.layers.find((l) => l.name === 'c1')!;
      expect(c1.removed).toEqual([0, 4]);
      expect([c1.removedConstant, c1.removedUnused, c1.inputsRemoved]).toEqual([1, 1, 0]);
      expect(c1.keptConstant.map((u) => u.unit)).toEqual([2]);
      expect(c1.keptConstant[0].value).toBeCloseTo(0.3, 6);
      const c2 = report.layers.find((l) => l.name === 'c2')!;
      expect(c2.removed).toEqual([1, 5]);
      expect(c2.inputsRemoved).toBe(2);
      expect(report.layers.find((l) => l.name === 'f1')!.inputsRemoved).toBe(2 * 2 * 2);
    },
  },
  {
    name: "CNN: 'same' conv, padded average pooling, 'valid' conv, global average pooling; conv 'filter'",
    build: cnnB,
    granularity: { conv2d: 'filter', dense: 'output' },
    kill: (m) => {
      killUnits(m, 'c1', [1, 3]);
      killUnits(m, 'c2', [0, 7]);
    },
    units: { c1: 4, c2: 6, out: 4 },
  },
  {
    name: "CNN: stride-2 'same' elu conv, 1x1 conv, global max pooling; conv 'kernel'",
    build: cnnC,
    granularity: { conv2d: 'kernel', dense: 'input' },
    kill: (m) => {
      killUnits(m, 'c1', [2]);
      killUnits(m, 'c2', [5]);
      killInputs(m, 'out', [1]);
    },
    units: { c1: 5, c2: 6, out: 4 },
  },
  {
    name: "ResNet-like: identity and projection shortcuts (Add); conv 'kernel'",
    build: resnet,
    granularity: { conv2d: 'kernel', dense: 'output' },
    kill: (m) => {
      setBias(m, 'r1a', { 2: -0.2, 6: -0.4 });
      killUnits(m, 'r1a', [2, 6]); // constant 0 ahead of a 'same' conv: removed
      setBias(m, 'p2a', { 0: -0.1 });
      killUnits(m, 'p2a', [0]);
      killUnits(m, 'p2b', [4]); // coupled by add2 with proj 4: both dead, both go
      killUnits(m, 'proj', [4]);
      killUnits(m, 'stem', [1]); // coupled with a live r1b filter: stays
    },
    units: { stem: 8, r1a: 6, r1b: 8, p2a: 11, p2b: 11, proj: 11, out: 5 },
    warns: ['stem'],
    // stem's kept filter 1 (3x3x3); proj: three of its 1x1 kernels (single weights, 3e-4 to
    // 2.2e-3 at initialisation) the proximal steps set to exactly 0 (the next, 2.8e-3, stays)
    held: { stem: 27, proj: 3 },
  },
  {
    name: "Inception-like: Concatenate of 1x1, 3x3 and pool branches; conv 'filter'",
    build: inception,
    granularity: { conv2d: 'filter', dense: 'output' },
    kill: (m) => {
      setBias(m, 'stem', { 5: -0.25 });
      killUnits(m, 'stem', [5]);
      killUnits(m, 'b1', [1]);
      killUnits(m, 'b2', [0, 3]);
      killUnits(m, 'b3', [2]);
      killUnits(m, 'mix', [6]);
    },
    units: { stem: 5, b1: 3, b2: 2, b3: 2, mix: 7, out: 3 },
  },
  {
    name: "MobileNet-like: DepthwiseConv2D then 1x1 conv; conv 'filter'",
    build: mobilenet,
    granularity: { conv2d: 'filter', dense: 'output' },
    kill: (m) => {
      setBias(m, 'c0', { 3: -0.5 });
      killUnits(m, 'c0', [3]); // constant 0 through the 'same' depthwise: removed with its channel
      killUnits(m, 'pw1', [0, 11]); // constant through the 'valid' depthwise, folded into pw2
      // A zero depthwise kernel makes its channel constant whatever pw1 filter 5 does: it goes too.
      // decompose() replaces the DepthwiseConv2D: its magnitude [channels, 1] zeroes that kernel.
      editWeight(m, 'dw2', 'magnitude', (v) => (v[5] = 0));
      killUnits(m, 'pw2', [1]);
    },
    units: { c0: 7, pw1: 9, pw2: 7, out: 4 },
    extra: (p) => {
      expect(p.getLayer('dw1').getWeights()[0].shape).toEqual([3, 3, 7, 1]);
      expect(p.getLayer('dw2').getWeights()[0].shape).toEqual([3, 3, 9, 1]);
    },
  },
  {
    name: "DepthwiseConv2D with depthMultiplier 2; conv 'filter'",
    build: depthwiseNet,
    granularity: { conv2d: 'filter', dense: 'output' },
    kill: (m) => {
      // Constant 0 through the 'same' depthwise: both its outputs are constants out folds.
      setBias(m, 'c1', { 1: -0.5 });
      killUnits(m, 'c1', [1]);
    },
    units: { c1: 3, out: 3 },
    extra: (p) => {
      expect(p.getLayer('dw').getWeights()[0].shape).toEqual([3, 3, 3, 2]);
      expect(p.getLayer('out').getWeights()[0].shape).toEqual([6, 3]);
    },
  },
  {
    name: 'ZeroPadding2D and Cropping2D between convolutions',
    build: padCrop,
    granularity: { conv2d: 'kernel', dense: 'output' },
    kill: (m) => {
      setBias(m, 'c1', { 0: -0.3, 1: 0.3 });
      killUnits(m, 'c1', [0, 1]); // 0 survives zero padding: removed; 0.3 does not: kept, with a warning
      killUnits(m, 'c2', [2, 3]);
      killUnits(m, 'c3', [4]);
    },
    units: { c1: 5, c2: 6, c3: 5, out: 3 },
    warns: ['c1'],
    held: { c1: 27 }, // c1's kept filter 1 (3x3x3)
  },
  {
    name: 'two inputs (vector and image) merged by Concatenate',
    build: multiInput,
    granularity: { conv2d: 'kernel', dense: 'output' },
    kill: (m) => {
      killUnits(m, 'da', [1]);
      killUnits(m, 'cb', [2]);
      killUnits(m, 'db', [0, 5]);
    },
    units: { da: 7, cb: 3, db: 6, out: 4 },
  },
  {
    name: 'three outputs: two heads and an intermediate layer',
    build: multiOutput,
    granularity: { dense: 'output' },
    kill: (m) => {
      killUnits(m, 't1', [0, 9]);
      killUnits(m, 't2', [4]); // a model output: kept, with a warning
    },
    units: { t1: 14, t2: 12, h1: 3, h2: 1 },
    warns: ['t2'],
    held: { t2: 14 }, // t2's kept unit 4: a column of its 14 inputs
  },
  {
    name: 'functional model with a fixed batch size',
    build: fixedBatchFunctional,
    granularity: { dense: 'output' },
    kill: (m) => killUnits(m, 'h', [0, 3]),
    units: { h: 6, out: 3 },
  },
  {
    name: 'Sequential model with a fixed batch size (batchInputShape)',
    build: fixedBatchSequential,
    granularity: { conv2d: 'filter', dense: 'input' },
    kill: (m) => {
      killUnits(m, 'c', [1]);
      killInputs(m, 'out', [2]);
    },
    units: { c: 3, h: 5, out: 3 },
  },
  {
    name: "Dense on [batch, t, features] then Flatten, Dense 'output'",
    build: rank3Dense,
    granularity: { dense: 'output' },
    kill: (m) => {
      killUnits(m, 'd1', [2]);
      killUnits(m, 'd2', [1, 3]);
    },
    units: { d1: 7, d2: 4, out: 4 },
  },
  {
    name: "Dense on [batch, t, features] then Flatten, Dense 'input'",
    build: rank3Dense,
    granularity: { dense: 'input' },
    kill: (m) => {
      killInputs(m, 'd2', [0]);
      // d2 unit 5 at every one of the 5 time steps: rows 5, 11, 17, 23, 29 of the Flatten
      killInputs(m, 'out', [5, 11, 17, 23, 29]);
      killInputs(m, 'out', [0]); // a single position: stays as a zero row
    },
    units: { d1: 7, d2: 5, out: 4 },
    held: { out: 4 }, // out's row 0 across its 4 units
  },
  {
    name: 'Dense on [batch, t, features] then GlobalAveragePooling1D',
    build: rank3DensePooled,
    granularity: { dense: 'output' },
    kill: (m) => {
      killUnits(m, 'd1', [0]);
      killUnits(m, 'd2', [2, 4]);
    },
    units: { d1: 7, d2: 4, out: 4 },
  },
  {
    name: 'fully convolutional (input [null, null, 3]): MACs unknown, pruning still exact',
    build: fullyConvolutional,
    granularity: { conv2d: 'filter', dense: 'output' },
    adam: true,
    kill: (m) => {
      setBias(m, 'c1', { 0: -0.2 });
      killUnits(m, 'c1', [0, 1]); // 0 is removed; the other constant meets 'same' padding of unknown size: kept
      killUnits(m, 'c2', [3]);
    },
    units: { c1: 5, c2: 7, out: 3 },
    warns: ['c1'],
    held: { c1: 27 }, // c1's kept filter 1 (3x3x3)
  },
  {
    name: 'Dense on [h, w, c], BatchNormalization without scale/center, UpSampling2D',
    build: denseOnImage,
    granularity: { conv2d: 'kernel', dense: 'output' },
    // tfjs-layers 4.22 cannot train a BatchNormalization without gamma or beta (it reads
    // this.gamma in its training branch): an upstream limitation, the rest of the workflow runs.
    noTraining: true,
    kill: (m) => {
      killUnits(m, 'c1', [0, 4]);
      killUnits(m, 'pix', [2]);
    },
    units: { c1: 4, pix: 4, out: 3 },
  },
  {
    name: 'Average, Maximum, Minimum joins and the model input inside a join and a Concatenate',
    build: joins,
    granularity: { dense: 'output' },
    kill: (m) => {
      killUnits(m, 'a', [0]); // coupled with live units: stays
      killUnits(m, 'b', [0]);
      killUnits(m, 'c', [0]); // a, b, c unit 0 all dead, but the Minimum couples them with the input
      killUnits(m, 'e', [1, 6]);
    },
    units: { a: 6, b: 6, c: 6, e: 6, out: 3 },
    warns: ['a', 'b', 'c'],
    held: { a: 6, b: 6, c: 6 }, // unit 0 of a, b and c, kept: a column of 6 each
    extra: (_p, report) => {
      for (const w of report.warnings)
        expect(w).toMatch(
          /coupled by an elementwise join with a channel of model input 'x', which is never removed/,
        );
    },
  },
];

// ---------------------------------------------------------------- the workflow

async function proximalSteps(m: tfl.LayersModel, seed: number, adam = false): Promise<void> {
  const optimizer = adam
    ? new ProximalAdam({ learningRate: 0.001, lambda: 1e-3, magnitudes: magnitudes(m) })
    : new ProximalSGD({ learningRate: 0.01, lambda: 1e-3, magnitudes: magnitudes(m) });
  m.compile({ optimizer, loss: 'meanSquaredError' });
  const xs = inputsFor(m, seed, 4);
  const ys = tf.tidy(() => {
    const y = m.predict(xs.length === 1 ? xs[0] : xs);
    return (Array.isArray(y) ? y : [y]).map((t) => tf.randomNormal(t.shape, 0, 1, 'float32', seed + 7));
  });
  for (let step = 0; step < 2; step++)
    await m.trainOnBatch(xs.length === 1 ? xs[0] : xs, ys.length === 1 ? ys[0] : ys);
  tf.dispose([...xs, ...ys]);
  optimizer.dispose();
  for (const g of magnitudes(m))
    expect(Math.min(...Array.from(g.magnitude.dataSync()))).toBeGreaterThanOrEqual(0);
}

async function runWorkflow(c: ZooCase, backend: string, index: number): Promise<void> {
  const start = tf.memory().numTensors;
  const plain = c.build();
  randomize(plain, 11 + index);
  const xs = inputsFor(plain, 100 + index);

  const dec = decompose(plain, { granularity: c.granularity });
  expectSameOutputs(plain, dec, xs);
  if (!c.noTraining) await proximalSteps(dec, 200 + index, c.adam);
  c.kill(dec);
  const folded = fold(dec);
  expectSameOutputs(dec, folded, xs);

  // prune: leaves its input untouched and nothing behind but the new model's weights
  const decWeights = dec.getWeights().map((t) => Float32Array.from(t.dataSync() as Float32Array));
  const beforePrune = tf.memory().numTensors;
  const { model: pruned, report } = prune(dec);
  const prunedWeights = pruned.weights.length;
  expect(tf.memory().numTensors - beforePrune).toBe(prunedWeights);

  dec.getWeights().forEach((t, j) => expect(maxDiff(t.dataSync(), decWeights[j]).abs).toBe(0));

  // the analysis decides what the round-by-round one it replaced decided: the same plan, and
  // the same pruned weights and outputs, bit for bit
  const { model: prunedTheOldWay } = pruneTheOldWay(folded);
  expectSameWeights(pruned, prunedTheOldWay);
  expectSameOutputs(pruned, prunedTheOldWay, xs, 0);
  prunedTheOldWay.dispose();

  // the same function
  expectSameOutputs(folded, pruned, xs);
  expectSameOutputs(dec, pruned, xs);

  // the expected structure
  for (const [name, n] of Object.entries(c.units)) expect([name, unitsOf(pruned, name)]).toEqual([name, n]);
  for (const l of report.layers) expect([l.name, l.unitsAfter]).toEqual([l.name, unitsOf(pruned, l.name)]);
  const warned = [...new Set(report.layers.filter((l) => l.keptConstant.length).map((l) => l.name))].sort();
  expect(warned).toEqual([...(c.warns ?? [])].sort());
  expect(report.warnings.length).toBe(report.layers.reduce((a, l) => a + l.keptConstant.length, 0));
  c.extra?.(pruned, report);

  // counts: analyze and the report against counts made here from the weights
  const foldedCounts = independentCounts(folded);
  const prunedCounts = independentCounts(pruned);
  expectCounts(analyze(dec).total, foldedCounts);
  expectCounts(analyze(folded).total, foldedCounts);
  expectCounts(report.before, foldedCounts);
  expectCounts(report.after, prunedCounts);
  expectCounts(analyze(pruned).total, prunedCounts);
  for (const l of analyze(pruned).layers) expectCounts(l, prunedCounts.byLayer.get(l.name)!);
  expect(report.before.params).toBe(folded.countParams());
  expect(report.after.params).toBe(pruned.countParams());
  expect(report.paramsAfter).toBe(prunedCounts.params - prunedCounts.zeroGroupParams);
  expect(report.compression).toBeCloseTo(1 - report.paramsAfter / foldedCounts.params, 12);
  if (Number.isNaN(foldedCounts.macs)) expect(report.macsSpeedup).toBeNaN();
  else expect(report.macsSpeedup).toBeCloseTo(foldedCounts.macs / prunedCounts.nonzeroMacs, 9);
  expect(report.after.params).toBeLessThan(report.before.params);
  expect(typeof report.table()).toBe('string');

  // export, both formats, and load back
  const dir = path.join(tmpRoot, `${backend}-${index}`);
  const beforeExport = tf.memory().numTensors;
  await exportModel(pruned, path.join(dir, 'tfjs'));
  await exportModel(pruned, path.join(dir, 'sparse'), { format: 'sparse' });
  await exportModel(dec, path.join(dir, 'dec-sparse'), { format: 'sparse' });
  expect(tf.memory().numTensors).toBe(beforeExport);
  const loaded = await tfl.loadLayersModel(fileSystem(path.join(dir, 'tfjs')));
  const sparse = await loadSparseModel(path.join(dir, 'sparse'));
  const decSparse = await loadSparseModel(path.join(dir, 'dec-sparse'));
  expectSameOutputs(pruned, loaded, xs, 0);
  expectSameOutputs(pruned, sparse, xs, 0);
  expectSameOutputs(folded, decSparse, xs, 0);
  expect(loaded.layers.map((l) => l.getClassName())).toEqual(pruned.layers.map((l) => l.getClassName()));

  // a decomposed checkpoint saved mid-training loads back (registered classes) and prunes the same
  await dec.save(fileSystem(path.join(dir, 'checkpoint')));
  const reloaded = await tfl.loadLayersModel(fileSystem(path.join(dir, 'checkpoint')));
  expect(reloaded.layers.map((l) => l.getClassName())).toEqual(dec.layers.map((l) => l.getClassName()));
  const { model: prunedAgain } = prune(reloaded);
  expectSameOutputs(pruned, prunedAgain, xs, 0);
  reloaded.dispose();
  prunedAgain.dispose();

  // float16 'tfjs' loads in plain tfjs too: it computes what a tfjs model holding the weights
  // rounded to float16 by an independent reference computes, and is close to the float32 model
  await exportModel(pruned, path.join(dir, 'tfjs16'), { float16: true });
  const loaded16 = await tfl.loadLayersModel(fileSystem(path.join(dir, 'tfjs16')));
  const rounded16 = await plainCopy(pruned, roundToHalf);
  expectSameOutputs(rounded16, loaded16, xs);
  // Against the float32 model, float16 is not exact: measured at most 6.0e-4 of the output
  // scale over the zoo, on both backends (three outputs: 6.0e-4; the median case 2.4e-4).
  expectSameOutputs(pruned, loaded16, xs, 2e-3);
  rounded16.dispose();

  // fine-tuning with the zeros held: one step, zero kernel weights stay zero
  if (!c.noTraining) {
    const before = tf.memory().numTensors;
    const held = zerosToHold(c, pruned);
    const mask = kernelMask(pruned);
    expect(Object.fromEntries(mask.layers.map((l) => [l.name, l.zeros]))).toEqual(held);
    const kernelOf = (name: string) =>
      pruned.getLayer(name).weights.find((v) => /kernel$/.test(shortName(v)))!;
    const kernelsBefore = new Map(
      mask.layers.map((l) => [l.name, Float32Array.from(kernelOf(l.name).read().dataSync())]),
    );
    const zerosBefore = independentCounts(pruned).params - independentCounts(pruned).nonzeros;
    const optimizer = tf.train.adam(0.01);
    pruned.compile({ optimizer, loss: 'meanSquaredError' });
    const ys = tf.tidy(() => {
      const y = pruned.predict(xs.length === 1 ? xs[0] : xs);
      return (Array.isArray(y) ? y : [y]).map((t) => tf.onesLike(t));
    });
    await pruned.fit(xs.length === 1 ? xs[0] : xs, ys.length === 1 ? ys[0] : ys, {
      epochs: 1,
      verbose: 0,
      callbacks: [mask.callback],
    });
    const zerosAt = (v: ArrayLike<number>) => Array.from(v).flatMap((x, q) => (x === 0 ? [q] : []));
    let moved = 0;
    for (const l of mask.layers) {
      const now = kernelOf(l.name).read().dataSync();
      const was = kernelsBefore.get(l.name)!;
      // the same weights are zero as before the step
      expect([l.name, zerosAt(now)]).toEqual([l.name, zerosAt(was)]);
      moved += now.filter((x, q) => x !== was[q]).length;
    }
    // and the step did move the other weights of the masked layers (not every layer: the
    // Minimum and Maximum joins pass 'a' no gradient on this batch)
    expect(moved).toBeGreaterThan(0);
    expect(mask.layers.reduce((a, l) => a + l.zeros, 0)).toBeLessThanOrEqual(zerosBefore);
    mask.dispose();
    optimizer.dispose();
    tf.dispose(ys);
    expect(tf.memory().numTensors).toBe(before);
  }

  for (const m of [plain, dec, folded, pruned, loaded, loaded16, sparse, decSparse]) m.dispose();
  tf.dispose(xs);
  expect(tf.memory().numTensors).toBe(start);
}

/**
 * The zeros kernelMask must hold in `pruned` while fine-tuning, by layer: the case's `held`.
 * A case whose kill leaves no zero kernel weight (checked here) gets one zero group written
 * into the pruned model, so that no case's fine-tuning check is empty: row 0 of the first
 * Dense (every unit's weight from input 0), or the 2-D kernel [:, :, 0, 0] of the first Conv2D.
 */
function zerosToHold(c: ZooCase, pruned: tfl.LayersModel): Record<string, number> {
  if (c.held) return c.held;
  const none = kernelMask(pruned);
  expect(none.layers).toEqual([]);
  none.dispose();
  const layer = pruned.layers.find((l) => ['Dense', 'Conv2D'].includes(l.getClassName()))!;
  const dense = layer.getClassName() === 'Dense';
  let zeros = 0;
  editWeight(pruned, layer.name, 'kernel', (v, shape) => {
    const cin = shape[shape.length - 2];
    const cout = shape[shape.length - 1];
    v.forEach((_, p) => {
      const q = p % (cin * cout);
      if (Math.floor(q / cout) === 0 && (dense || q % cout === 0)) {
        v[p] = 0;
        zeros++;
      }
    });
  });
  return { [layer.name]: zeros };
}

// ---------------------------------------------------------------- refusals

/** A squeeze-and-excitation block: the gate as a Reshape to [1, 1, 8] before the Multiply, or as the [8] vector itself. */
function seBlock(reshape: boolean): tfl.LayersModel {
  const x = tfl.input({ shape: [6, 6, 3], name: 'x' });
  const c1 = tfl.layers
    .conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1' })
    .apply(x) as tfl.SymbolicTensor;
  const squeeze = tfl.layers.globalAveragePooling2d({ name: 'squeeze' }).apply(c1) as tfl.SymbolicTensor;
  const fc = tfl.layers
    .dense({ units: 4, activation: 'relu', name: 'fc' })
    .apply(squeeze) as tfl.SymbolicTensor;
  let gate = tfl.layers
    .dense({ units: 8, activation: 'sigmoid', name: 'excite' })
    .apply(fc) as tfl.SymbolicTensor;
  if (reshape)
    gate = tfl.layers
      .reshape({ targetShape: [1, 1, 8], name: 'excite_reshape' })
      .apply(gate) as tfl.SymbolicTensor;
  const scaled = tfl.layers.multiply({ name: 'scale' }).apply([c1, gate]) as tfl.SymbolicTensor;
  const c2 = tfl.layers.conv2d({ filters: 4, kernelSize: 1, name: 'c2' }).apply(scaled) as tfl.SymbolicTensor;
  const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(c2) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: 3, name: 'out' }).apply(gap) as tfl.SymbolicTensor;
  return tfl.model({ inputs: x, outputs: out });
}

interface Refusal {
  name: string;
  build(): tfl.LayersModel;
  layer: string;
  className: string;
  /** What the message must advise, besides naming the layer. */
  advice: RegExp;
}

/** conv 3 -> 4, SeparableConv2D 4 -> 6 (the given options), global average pooling, dense 3. */
function separableNet(options: { dilationRate?: number } = {}): tfl.Sequential {
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({ inputShape: [8, 8, 3], filters: 4, kernelSize: 3, activation: 'relu', name: 'c1' }),
      tfl.layers.separableConv2d({ filters: 6, kernelSize: 3, ...options, name: 'sep' }),
      tfl.layers.globalAveragePooling2d({ name: 'gap' }),
      tfl.layers.dense({ units: 3, name: 'out' }),
    ],
  });
}

/** conv 3 -> 4, DepthwiseConv2D of depthMultiplier 2 ('same', stride 2), global average pooling, dense 3. */
function depthwiseNet(): tfl.Sequential {
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        inputShape: [8, 8, 3],
        filters: 4,
        kernelSize: 3,
        activation: 'relu',
        name: 'c1',
      }),
      tfl.layers.depthwiseConv2d({
        kernelSize: 3,
        depthMultiplier: 2,
        strides: 2,
        padding: 'same',
        activation: 'relu',
        name: 'dw',
      }),
      tfl.layers.globalAveragePooling2d({ name: 'gap' }),
      tfl.layers.dense({ units: 3, name: 'out' }),
    ],
  });
}

const REFUSALS: Refusal[] = [
  {
    // One of dilation rate 1 prune splits into those two layers itself (separable.test.ts).
    name: 'SeparableConv2D with dilation rate 2',
    build: () => separableNet({ dilationRate: 2 }),
    layer: 'sep',
    className: 'SeparableConv2D',
    advice:
      /With a dilation rate above 1 it computes a Conv2D with m filters per input channel \(m its depthMultiplier.*followed by a 1x1 Conv2D/,
  },
  {
    name: 'Reshape',
    build: () =>
      tfl.sequential({
        layers: [
          tfl.layers.reshape({ inputShape: [48], targetShape: [4, 4, 3], name: 'reshape' }),
          tfl.layers.conv2d({ filters: 4, kernelSize: 3, activation: 'relu', name: 'c1' }),
          tfl.layers.flatten({ name: 'flat' }),
          tfl.layers.dense({ units: 3, name: 'out' }),
        ],
      }),
    layer: 'reshape',
    className: 'Reshape',
    advice: /give the model input that shape/,
  },
  {
    name: 'a Dense layer applied to two branches (shared weights)',
    build: () => {
      const x = tfl.input({ shape: [6], name: 'x' });
      const a = tfl.layers.dense({ units: 8, activation: 'relu', name: 'a' }).apply(x) as tfl.SymbolicTensor;
      const b = tfl.layers.dense({ units: 8, activation: 'tanh', name: 'b' }).apply(x) as tfl.SymbolicTensor;
      const shared = tfl.layers.dense({ units: 5, activation: 'relu', name: 'shared' });
      const sum = tfl.layers
        .add({ name: 'sum' })
        .apply([shared.apply(a), shared.apply(b)] as tfl.SymbolicTensor[]) as tfl.SymbolicTensor;
      const out = tfl.layers.dense({ units: 3, name: 'out' }).apply(sum) as tfl.SymbolicTensor;
      return tfl.model({ inputs: x, outputs: out });
    },
    layer: 'shared',
    className: 'Dense',
    advice: /build the model with one layer per call, each holding the weights of this one/,
  },
  {
    name: 'a Multiply broadcasting a 1-channel gate over the channels of a Conv2D',
    build: () => {
      const x = tfl.input({ shape: [6, 6, 3], name: 'x' });
      const c1 = tfl.layers
        .conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1' })
        .apply(x) as tfl.SymbolicTensor;
      const gate = tfl.layers
        .conv2d({ filters: 1, kernelSize: 1, activation: 'sigmoid', name: 'gate' })
        .apply(c1) as tfl.SymbolicTensor;
      const gated = tfl.layers.multiply({ name: 'gated' }).apply([c1, gate]) as tfl.SymbolicTensor;
      const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(gated) as tfl.SymbolicTensor;
      const out = tfl.layers.dense({ units: 3, name: 'out' }).apply(gap) as tfl.SymbolicTensor;
      return tfl.model({ inputs: x, outputs: out });
    },
    layer: 'gated',
    className: 'Multiply',
    advice:
      /broadcasts its input from 'gate' \(1 channel\) over the 4 channels of 'c1'.* build that layer with 4 units, its kernel and bias repeated in each/,
  },
];

// ---------------------------------------------------------------- the tests

const backends = [
  ['cpu', async () => void (await tf.setBackend('cpu'))],
  ['wasm', async () => void (await initBackend({ prefer: 'wasm', quiet: true }))],
] as const;

describe.each(backends)('model zoo on the %s backend', (backend, init) => {
  beforeAll(async () => {
    await init();
    expect(tf.getBackend()).toBe(backend);
  });

  ZOO.forEach((c, index) => {
    it(c.name, async () => {
      await runWorkflow(c, backend, index);
    });
  });

  describe('refusals name the layer, its class and what to do', () => {
    for (const r of REFUSALS) {
      it(r.name, () => {
        const m = r.build();
        const dec = decompose(m);
        const start = tf.memory().numTensors;
        let message = '';
        try {
          prune(dec);
        } catch (e) {
          message = (e as Error).message;
        }
        expect(message).toContain(`'${r.layer}'`);
        expect(message).toContain(r.className);
        // what to do, not only what is unsupported
        expect(message).toMatch(r.advice);
        expect(message).toMatch(/exportModel\(model, dir, \{ format: 'sparse' \}\)/);
        // A CLI user, who reads it too, is told it is not a flag of theirs.
        expect(message).toMatch(/a JavaScript call, which the normprune CLI has no flag for/);
        expect(tf.memory().numTensors).toBe(start);
        m.dispose();
        dec.dispose();
      });
    }
  });
  describe('the advice of the refusals holds', () => {
    it('SeparableConv2D = DepthwiseConv2D (no bias) + 1x1 Conv2D, which prunes (what prune does itself at depthMultiplier 1)', async () => {
      const sep = separableNet();
      randomize(sep, 5);
      const [dk, pk, bias] = sep.getLayer('sep').getWeights();
      const rebuilt = tfl.sequential({
        layers: [
          tfl.layers.conv2d({
            inputShape: [8, 8, 3],
            filters: 4,
            kernelSize: 3,
            activation: 'relu',
            name: 'c1',
          }),
          tfl.layers.depthwiseConv2d({ kernelSize: 3, useBias: false, name: 'sep_dw' }),
          tfl.layers.conv2d({ filters: 6, kernelSize: 1, name: 'sep_pw' }),
          tfl.layers.globalAveragePooling2d({ name: 'gap' }),
          tfl.layers.dense({ units: 3, name: 'out' }),
        ],
      });
      rebuilt.getLayer('c1').setWeights(sep.getLayer('c1').getWeights());
      rebuilt.getLayer('sep_dw').setWeights([dk]);
      rebuilt.getLayer('sep_pw').setWeights([pk, bias]);
      rebuilt.getLayer('out').setWeights(sep.getLayer('out').getWeights());
      const xs = inputsFor(sep, 3);
      expectSameOutputs(sep, rebuilt, xs);
      const dec = decompose(rebuilt);
      killUnits(dec, 'c1', [1]);
      killUnits(dec, 'sep_pw', [2]);
      const { model: pruned } = prune(dec);
      expectSameOutputs(dec, pruned, xs);
      expect([unitsOf(pruned, 'c1'), unitsOf(pruned, 'sep_pw')]).toEqual([3, 5]);
      // prune splits the SeparableConv2D into the same two layers, and prunes them alike; decompose
      // makes it a DecomposedSeparableConv2D, whose pointwise magnitude [inChannels, filters] kills filter 2.
      const sepDec = decompose(sep);
      killUnits(sepDec, 'c1', [1]);
      expect(sepDec.getLayer('sep').getClassName()).toBe('DecomposedSeparableConv2D');
      const pointwise = magnitudes(sepDec).find((m) => m.layerName === 'sep:pointwise')!;
      tf.tidy(() => pointwise.magnitude.assign(tf.mul(pointwise.magnitude, tf.tensor1d([1, 1, 0, 1, 1, 1]))));
      const auto = prune(sepDec);
      expectSameOutputs(pruned, auto.model, xs);
      expect([unitsOf(auto.model, 'c1'), unitsOf(auto.model, 'sep/pointwise')]).toEqual([3, 5]);
      tf.dispose(xs);
      for (const m of [sep, rebuilt, dec, pruned, sepDec, auto.model]) m.dispose();
    });

    it('DepthwiseConv2D with depthMultiplier m = Conv2D with m filters per channel, zero off the diagonal, which prunes', () => {
      // prune follows the DepthwiseConv2D itself too (the zoo entry above); this is the same function as a Conv2D.
      const dm = depthwiseNet();
      randomize(dm, 7);
      const [dk, bias] = dm.getLayer('dw').getWeights();
      // [3, 3, 4, 2] -> [3, 3, 4, 8]: input channel c feeds filters c * 2 + j only
      const dv = dk.dataSync();
      const kv = new Float32Array(3 * 3 * 4 * 8);
      for (let k = 0; k < 9; k++)
        for (let c = 0; c < 4; c++)
          for (let j = 0; j < 2; j++) kv[(k * 4 + c) * 8 + c * 2 + j] = dv[(k * 4 + c) * 2 + j];
      const kernel = tf.tensor(kv, [3, 3, 4, 8]);
      const rebuilt = tfl.sequential({
        layers: [
          tfl.layers.conv2d({
            inputShape: [8, 8, 3],
            filters: 4,
            kernelSize: 3,
            activation: 'relu',
            name: 'c1',
          }),
          tfl.layers.conv2d({
            filters: 8,
            kernelSize: 3,
            strides: 2,
            padding: 'same',
            activation: 'relu',
            name: 'dw',
          }),
          tfl.layers.globalAveragePooling2d({ name: 'gap' }),
          tfl.layers.dense({ units: 3, name: 'out' }),
        ],
      });
      rebuilt.getLayer('c1').setWeights(dm.getLayer('c1').getWeights());
      rebuilt.getLayer('dw').setWeights([kernel, bias]);
      rebuilt.getLayer('out').setWeights(dm.getLayer('out').getWeights());
      const xs = inputsFor(dm, 8);
      expectSameOutputs(dm, rebuilt, xs);
      const dec = decompose(rebuilt);
      killUnits(dec, 'dw', [5]);
      const { model: pruned } = prune(dec);
      expectSameOutputs(dec, pruned, xs);
      expect(unitsOf(pruned, 'dw')).toBe(7);
      tf.dispose([kernel, ...xs]);
      for (const m of [dm, rebuilt, dec, pruned]) m.dispose();
    });

    it('a shared Dense = one copy of it per call, which prunes, each copy on its own', () => {
      const sh = REFUSALS.find((r) => r.layer === 'shared')!.build();
      randomize(sh, 8);
      const x = tfl.input({ shape: [6], name: 'x' });
      const a = tfl.layers.dense({ units: 8, activation: 'relu', name: 'a' }).apply(x) as tfl.SymbolicTensor;
      const b = tfl.layers.dense({ units: 8, activation: 'tanh', name: 'b' }).apply(x) as tfl.SymbolicTensor;
      const sa = tfl.layers.dense({ units: 5, activation: 'relu', name: 'shared_a' }).apply(a);
      const sb = tfl.layers.dense({ units: 5, activation: 'relu', name: 'shared_b' }).apply(b);
      const sum = tfl.layers
        .add({ name: 'sum' })
        .apply([sa, sb] as tfl.SymbolicTensor[]) as tfl.SymbolicTensor;
      const out = tfl.layers.dense({ units: 3, name: 'out' }).apply(sum) as tfl.SymbolicTensor;
      const rebuilt = tfl.model({ inputs: x, outputs: out });
      for (const name of ['a', 'b', 'out']) rebuilt.getLayer(name).setWeights(sh.getLayer(name).getWeights());
      for (const name of ['shared_a', 'shared_b'])
        rebuilt.getLayer(name).setWeights(sh.getLayer('shared').getWeights());
      const xs = inputsFor(sh, 9);
      expectSameOutputs(sh, rebuilt, xs);
      const dec = decompose(rebuilt);
      killUnits(dec, 'a', [2, 5]);
      killUnits(dec, 'b', [1]);
      const { model: pruned } = prune(dec);
      expectSameOutputs(dec, pruned, xs);
      expect([unitsOf(pruned, 'a'), unitsOf(pruned, 'b')]).toEqual([6, 7]);
      tf.dispose(xs);
      for (const m of [sh, rebuilt, dec, pruned]) m.dispose();
    });

    it('a 1-channel gate broadcast by a Multiply = the gate repeated in 4 filters, which prunes', () => {
      const gm = REFUSALS.find((r) => r.layer === 'gated')!.build();
      randomize(gm, 10);
      const [gk, gb] = gm.getLayer('gate').getWeights();
      const x = tfl.input({ shape: [6, 6, 3], name: 'x' });
      const c1 = tfl.layers
        .conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1' })
        .apply(x) as tfl.SymbolicTensor;
      const gate = tfl.layers
        .conv2d({ filters: 4, kernelSize: 1, activation: 'sigmoid', name: 'gate' })
        .apply(c1) as tfl.SymbolicTensor;
      const gated = tfl.layers.multiply({ name: 'gated' }).apply([c1, gate]) as tfl.SymbolicTensor;
      const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(gated) as tfl.SymbolicTensor;
      const out = tfl.layers.dense({ units: 3, name: 'out' }).apply(gap) as tfl.SymbolicTensor;
      const rebuilt = tfl.model({ inputs: x, outputs: out });
      // [1, 1, 4, 1] -> [1, 1, 4, 4]: the same kernel column and bias in every filter
      const kernel = tf.tile(gk, [1, 1, 1, 4]);
      const bias = tf.tile(gb, [4]);
      rebuilt.getLayer('gate').setWeights([kernel, bias]);
      for (const name of ['c1', 'out']) rebuilt.getLayer(name).setWeights(gm.getLayer(name).getWeights());
      const xs = inputsFor(gm, 11);
      expectSameOutputs(gm, rebuilt, xs);
      const dec = decompose(rebuilt, { granularity: { conv2d: 'kernel', dense: 'input' } });
      // Nothing reads channel 1 any more ('out' and the gate with zero weights): c1's filter 1 and
      // the gate's copy 1, which the Multiply joins, go together.
      killInputs(dec, 'out', [1]);
      killInputs(dec, 'gate', [1]);
      const { model: pruned } = prune(dec);
      expectSameOutputs(dec, pruned, xs);
      expect([unitsOf(pruned, 'c1'), unitsOf(pruned, 'gate')]).toEqual([3, 3]);
      tf.dispose([kernel, bias, ...xs]);
      for (const m of [gm, rebuilt, dec, pruned]) m.dispose();
    });

    it('a gate reshaped to [1, 1, C] before a Multiply (a squeeze-and-excitation block) prunes as the [C] gate given to the Multiply does', () => {
      const withReshape = seBlock(true);
      randomize(withReshape, 12);
      const rebuilt = seBlock(false);
      for (const name of ['c1', 'fc', 'excite', 'c2', 'out'])
        rebuilt.getLayer(name).setWeights(withReshape.getLayer(name).getWeights());
      const xs = inputsFor(withReshape, 13);
      expectSameOutputs(withReshape, rebuilt, xs);
      // Nothing reads channel 3 of the scaled image, nor 'fc' that of c1: c1's filter 3 and the
      // gate's unit 3, which the Multiply joins, go together; and the gate reads no unit 1 of 'fc'.
      const [dec, decRebuilt] = [withReshape, rebuilt].map((m) => {
        const d = decompose(m, { granularity: { dense: 'input' } });
        killInputs(d, 'c2', [3]);
        killInputs(d, 'fc', [3]);
        killInputs(d, 'excite', [1]);
        return d;
      });
      const { model: pruned } = prune(dec);
      const { model: prunedRebuilt } = prune(decRebuilt);
      expectSameOutputs(dec, pruned, xs);
      expectSameOutputs(prunedRebuilt, pruned, xs);
      expect([unitsOf(pruned, 'c1'), unitsOf(pruned, 'fc'), unitsOf(pruned, 'excite')]).toEqual([7, 3, 7]);
      expect(pruned.getLayer('excite_reshape').getConfig().targetShape).toEqual([1, 1, 7]);
      tf.dispose(xs);
      for (const m of [withReshape, rebuilt, dec, decRebuilt, pruned, prunedRebuilt]) m.dispose();
    });
  });
});
