// The checks every decomposed convolution shares (DecomposedConv1D, DecomposedConv2D,
// DecomposedConv2DTranspose and DecomposedDepthwiseConv2D are one class, decomposed-conv.ts), over a
// table with one row per class: its plain tfjs counterpart and raw tf op, its magnitude's shape and
// norm axes per granularity, and its cases. Forward against the plain layer given the kernel
// computed here from the documented formula (cpu and wasm), gradients against finite differences
// (cpu), against the cpu's (wasm) and against autodiff of the formula, the epsilon term, weights
// and setWeights, constraints and regularizers, getConfig, leaks, and whole models: decompose /
// fold, serialisation, training on wasm against cpu. What only one class has stays in its own
// file (conv1d.test.ts, conv2d.test.ts, conv2d-transpose.test.ts, depthwise-conv2d.test.ts).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '@normprune/runtime';
import {
  type ConvGranularity,
  DecomposedConv,
  DecomposedConv1D,
  DecomposedConv2D,
  DecomposedConv2DTranspose,
  DecomposedDepthwiseConv2D,
  decompose,
  decomposedConv1d,
  decomposedConv2d,
  decomposedConv2dTranspose,
  decomposedDepthwiseConv2d,
  fold,
  isDecomposed,
  magnitudes,
} from '../src/index.js';
import { expectNoLeak } from '../../../tools/testing/leaks.js';
import {
  conv1dNet,
  conv2dNet,
  decoder,
  disposeWeights,
  expectTrainingLeavesNothing,
  gradientErrors,
  mobile,
  outputsAndGrads,
  randn,
  referenceKernel,
  referenceKernelOf,
  scaledError,
  scaledErrorOf,
  useCpu,
  values,
} from './helpers.js';

/** A layer's options (without `input`) and the shape of the input it is applied to. */
interface Case {
  input: number[];
  granularity: ConvGranularity;
  activation?: string;
  useBias?: boolean;
  [option: string]: unknown;
}

type Options = Record<string, unknown>;
type Pair<T> = Record<ConvGranularity, T>;

interface Row {
  /** The class, as getClassName() says. */
  name: string;
  /** Its plain tfjs counterpart. */
  plainName: string;
  Class: new (args: any) => DecomposedConv;
  make(args: any): DecomposedConv;
  plain(args: any): tfl.layers.Layer;
  /** Its key in decompose's granularity option. */
  key: 'conv1d' | 'conv2d' | 'conv2dTranspose' | 'depthwiseConv2d';
  /** `kernel` or `depthwise`: the prefix of its kernel's Initializer, Constraint and Regularizer options. */
  kernelOption: 'kernel' | 'depthwise';
  /** The axes of the direction one group spans, per granularity (written here, not read from src). */
  normAxes: Pair<number[]>;
  /** The raw tf op the layer applies to `x` with `kernel` (options of `c`, output shape of `layer`). */
  conv(x: tf.Tensor, kernel: tf.Tensor, c: Options, layer: DecomposedConv): tf.Tensor;
  /** Forward cases against the plain layer, on cpu and wasm. */
  cases: Case[];
  /**
   * Gradient cases (activation tanh): against finite differences on cpu, and on wasm against the
   * cpu's gradients.
   */
  gradCases: Case[];
  /** Whether the finite differences run on wasm too (as they did for DecomposedConv1D first). */
  wasmFiniteDifferences: boolean;
  /** Cases of the formula with epsilon 0.5 and small directions. */
  epsilonCases: Case[];
  /**
   * A fresh layer built for `input` (without batch): the shapes of its direction, magnitude (per
   * granularity) and bias; and its fields.
   */
  fresh: { options: Options; input: number[]; weights: [number[], Pair<number[]>, number[]] };
  fields: Options;
  /** A small layer (setWeights, constraints, leaks) and its input. */
  small: Case;
  /** A layer whose gradients are checked against autodiff of the formula. */
  autodiff: Case;
  /** One input and one output channel with a 2-tap kernel, for the worked example: input of 3 taps. */
  handWorked: { options: Options; input: number[]; taps(x: number[], w: number[]): number[] };
  /** getConfig: options, what the config holds, keys it leaves out. */
  config: { note: string; options: Options; holds: Options; absent: string[] };
  /**
   * A plain model holding the class (input and output shapes without batch); `trainable` for the
   * training tests, as tfjs 4.22 cannot train a dilated convolution.
   */
  model: {
    build(trainable: boolean): tfl.LayersModel;
    input: number[];
    output: number[];
    classes: string[];
    decomposed: string[];
  };
}

/** Cases of `input` and `options` with each [granularity, strides, padding, kernelSize, depthMultiplier?]. */
function variants(
  input: number[],
  options: Options,
  list: [ConvGranularity, number, 'same' | 'valid', number, number?][],
): Case[] {
  return list.map(([granularity, strides, padding, kernelSize, depthMultiplier]) => ({
    input,
    ...options,
    ...(depthMultiplier == null ? {} : { depthMultiplier }),
    kernelSize,
    strides,
    padding,
    granularity,
  }));
}

/** The strides, padding, data format and dilations tf.conv1d, conv2d and depthwiseConv2d take for options `c`. */
const geometry = <F extends string>(c: Options, format: F) =>
  [
    (c.strides ?? 1) as any,
    (c.padding ?? 'valid') as 'same' | 'valid',
    format,
    (c.dilationRate ?? 1) as any,
  ] as const;

/** Each output position reads the next kernel-size input positions. */
const valid = (x: number[], w: number[]) => [x[0] * w[0] + x[1] * w[1], x[1] * w[0] + x[2] * w[1]];
/** Each input position adds the kernel into the output from its own position on. */
const full = (x: number[], w: number[]) => [
  x[0] * w[0],
  x[1] * w[0] + x[0] * w[1],
  x[2] * w[0] + x[1] * w[1],
  x[2] * w[1],
];

/** getConfig options every 2-D row takes, and what its config then holds of them. */
const CONFIG_2D = {
  kernelSize: [3, 1],
  strides: [1, 2],
  padding: 'same',
  activation: 'relu',
  granularity: 'filter',
  epsilon: 1e-5,
};
const { activation: _activation, ...HOLDS_2D } = CONFIG_2D;

type Identity = 'name' | 'plainName' | 'Class' | 'make' | 'plain' | 'key' | 'kernelOption';

/** A row of the class `Class`, made by `make`, whose plain counterpart `plain` makes. */
function row(
  Class: Row['Class'] & { className: string },
  make: Row['make'],
  plain: Row['plain'],
  key: Row['key'],
  rest: Omit<Row, Identity>,
): Row {
  const name = Class.className;
  const kernelOption = key === 'depthwiseConv2d' ? 'depthwise' : 'kernel';
  return { name, plainName: name.replace(/^Decomposed/, ''), Class, make, plain, key, kernelOption, ...rest };
}

const ROWS: Row[] = [
  row(DecomposedConv1D, decomposedConv1d, tfl.layers.conv1d, 'conv1d', {
    normAxes: { kernel: [0], filter: [0, 1] },
    conv: (x, k, c) => tf.conv1d(x as tf.Tensor3D, k as tf.Tensor3D, ...geometry(c, 'NWC')),
    // prettier-ignore
    cases: [
      { input: [2, 9, 3], filters: 4, kernelSize: 3, granularity: 'kernel' },
      { input: [2, 9, 3], filters: 4, kernelSize: 3, granularity: 'filter', padding: 'same', activation: 'relu' },
      { input: [1, 12, 2], filters: 5, kernelSize: 4, strides: 3, padding: 'same', granularity: 'kernel', activation: 'tanh' },
      { input: [3, 11, 2], filters: 3, kernelSize: 3, dilationRate: 2, granularity: 'filter', useBias: false },
      { input: [2, 10, 4], filters: 2, kernelSize: 2, dilationRate: 3, padding: 'same', granularity: 'kernel', activation: 'elu' },
      { input: [2, 6, 1], filters: 3, kernelSize: 1, granularity: 'filter', activation: 'softmax' },
    ],
    // prettier-ignore
    gradCases: variants([2, 7, 2], { filters: 2 }, [
      ['kernel', 1, 'valid', 3], ['filter', 2, 'same', 3], ['kernel', 2, 'same', 3],
    ]),
    wasmFiniteDifferences: true,
    // prettier-ignore
    epsilonCases: [
      { input: [2, 9, 2], filters: 3, kernelSize: 3, strides: 2, padding: 'same', granularity: 'kernel' },
      { input: [2, 9, 2], filters: 3, kernelSize: 3, strides: 2, padding: 'same', granularity: 'filter' },
    ],
    // prettier-ignore
    fresh: { options: { filters: 6, kernelSize: 5 }, input: [20, 4], weights: [[5, 4, 6], { kernel: [4, 6], filter: [6] }, [6]] },
    fields: {
      rank: 1,
      transposed: false,
      depthwise: false,
      kernelSize: [5],
      strides: [1],
      dilationRate: [1],
    },
    small: {
      input: [2, 8, 2],
      filters: 3,
      kernelSize: 3,
      strides: 2,
      padding: 'same',
      granularity: 'kernel',
    },
    autodiff: {
      input: [2, 9, 3],
      filters: 3,
      kernelSize: 3,
      strides: 2,
      activation: 'relu',
      granularity: 'kernel',
    },
    handWorked: { options: { filters: 1, kernelSize: 2 }, input: [1, 3, 1], taps: valid },
    config: {
      note: '',
      options: {
        filters: 3,
        kernelSize: 4,
        strides: 2,
        padding: 'same',
        dilationRate: 1,
        activation: 'relu',
        granularity: 'filter',
        epsilon: 1e-5,
        name: 'conv_x',
      },
      holds: {
        filters: 3,
        kernelSize: [4],
        strides: [2],
        padding: 'same',
        granularity: 'filter',
        epsilon: 1e-5,
        name: 'conv_x',
      },
      absent: [],
    },
    model: {
      build: (trainable) => conv1dNet(trainable ? 1 : 2),
      input: [16, 3],
      output: [3],
      classes: ['Conv1D', 'MaxPooling1D', 'Conv1D', 'GlobalAveragePooling1D', 'Dense'],
      decomposed: [
        'DecomposedConv1D',
        'MaxPooling1D',
        'DecomposedConv1D',
        'GlobalAveragePooling1D',
        'DecomposedDense',
      ],
    },
  }),
  row(DecomposedConv2D, decomposedConv2d, tfl.layers.conv2d, 'conv2d', {
    normAxes: { kernel: [0, 1], filter: [0, 1, 2] },
    conv: (x, k, c) => tf.conv2d(x as tf.Tensor4D, k as tf.Tensor4D, ...geometry(c, 'NHWC')),
    // prettier-ignore
    cases: [
      { input: [2, 7, 7, 3], filters: 4, kernelSize: 3, granularity: 'kernel' },
      { input: [2, 7, 7, 3], filters: 4, kernelSize: 3, granularity: 'filter', padding: 'same', activation: 'relu' },
      { input: [1, 9, 8, 2], filters: 5, kernelSize: [3, 2], strides: 2, granularity: 'kernel', padding: 'same', activation: 'tanh' },
      { input: [1, 9, 8, 2], filters: 5, kernelSize: [2, 3], strides: [2, 1], granularity: 'filter', activation: 'sigmoid', useBias: false },
      { input: [2, 10, 10, 2], filters: 3, kernelSize: 3, dilationRate: 2, granularity: 'kernel', activation: 'elu' },
      { input: [2, 10, 10, 2], filters: 3, kernelSize: 3, dilationRate: [2, 1], padding: 'same', granularity: 'filter', activation: 'relu6' },
      { input: [3, 6, 6, 1], filters: 2, kernelSize: 5, granularity: 'kernel', activation: 'softmax' },
    ],
    // prettier-ignore
    gradCases: variants([2, 4, 4, 2], { filters: 2 }, [
      ['kernel', 1, 'valid', 2], ['filter', 2, 'same', 2], ['kernel', 2, 'same', 2],
      ['filter', 1, 'valid', 2],
    ]),
    wasmFiniteDifferences: false,
    // prettier-ignore
    epsilonCases: [
      { input: [2, 5, 5, 3], filters: 4, kernelSize: 3, granularity: 'kernel', useBias: false },
      { input: [2, 5, 5, 3], filters: 4, kernelSize: 3, granularity: 'filter', useBias: false },
      { input: [1, 6, 7, 2], filters: 3, kernelSize: [2, 3], strides: 2, padding: 'same', granularity: 'kernel' },
      { input: [1, 6, 7, 2], filters: 3, kernelSize: [3, 2], strides: [1, 2], padding: 'same', granularity: 'filter' },
      { input: [2, 7, 7, 1], filters: 2, kernelSize: 2, dilationRate: 2, granularity: 'kernel', activation: 'relu' },
      { input: [2, 4, 4, 5], filters: 1, kernelSize: 1, granularity: 'filter', activation: 'relu' },
    ],
    // prettier-ignore
    fresh: { options: { filters: 6, kernelSize: [3, 2] }, input: [8, 8, 4], weights: [[3, 2, 4, 6], { kernel: [4, 6], filter: [6] }, [6]] },
    fields: { rank: 2, transposed: false, depthwise: false, depthMultiplier: null, filters: 6 },
    small: { input: [1, 5, 5, 2], filters: 3, kernelSize: 2, strides: 2, granularity: 'kernel' },
    autodiff: {
      input: [2, 5, 6, 3],
      filters: 3,
      kernelSize: [2, 3],
      strides: 2,
      activation: 'relu',
      granularity: 'kernel',
    },
    handWorked: { options: { filters: 1, kernelSize: [1, 2] }, input: [1, 1, 3, 1], taps: valid },
    config: {
      note: '',
      options: { ...CONFIG_2D, filters: 3, dilationRate: 1, kernelRegularizer: 'l1l2', name: 'conv_x' },
      holds: { ...HOLDS_2D, filters: 3, name: 'conv_x' },
      absent: [],
    },
    model: {
      build: conv2dNet,
      input: [6, 6, 2],
      output: [2],
      classes: ['Conv2D', 'MaxPooling2D', 'Conv2D', 'Flatten', 'Dense'],
      decomposed: ['DecomposedConv2D', 'MaxPooling2D', 'DecomposedConv2D', 'Flatten', 'DecomposedDense'],
    },
  }),
  row(DecomposedConv2DTranspose, decomposedConv2dTranspose, tfl.layers.conv2dTranspose, 'conv2dTranspose', {
    normAxes: { kernel: [0, 1], filter: [0, 1, 3] },
    conv: (x, k, c, layer) =>
      tf.conv2dTranspose(
        x as tf.Tensor4D,
        k as tf.Tensor4D,
        layer.computeOutputShape(x.shape) as [number, number, number, number],
        (c.strides as number) ?? 1,
        (c.padding as 'same') ?? 'valid',
      ),
    // prettier-ignore
    cases: [
      { input: [2, 5, 5, 3], filters: 4, kernelSize: 3, granularity: 'kernel' },
      { input: [2, 5, 5, 3], filters: 4, kernelSize: 3, strides: 2, padding: 'same', granularity: 'filter' },
      { input: [1, 4, 6, 2], filters: 3, kernelSize: [2, 3], strides: 2, granularity: 'kernel', activation: 'relu' },
      { input: [1, 4, 6, 2], filters: 3, kernelSize: [2, 3], strides: [2, 1], padding: 'same', granularity: 'filter', activation: 'tanh', useBias: false },
      { input: [2, 3, 3, 4], filters: 2, kernelSize: 1, granularity: 'kernel', useBias: false },
      { input: [2, 3, 3, 4], filters: 2, kernelSize: 1, strides: 2, padding: 'valid', granularity: 'filter' },
      // A kernel smaller than the stride: 'valid' adds nothing past input * stride.
      { input: [1, 3, 2, 2], filters: 2, kernelSize: [1, 3], strides: [3, 2], granularity: 'kernel' },
    ],
    // prettier-ignore
    gradCases: variants([2, 3, 3, 2], { filters: 2 }, [
      ['kernel', 1, 'valid', 2], ['filter', 2, 'same', 2], ['kernel', 2, 'same', 3],
      ['filter', 1, 'valid', 3], ['kernel', 2, 'valid', 1], ['filter', 2, 'valid', 1],
    ]),
    // Not on wasm: there the finite differences of its loss are up to 1.9e-4 off its gradients
    // (1.6e-5 to 4.5e-5 on cpu), which equal the cpu's to 1e-6: the wasm transposed convolution's
    // float32 rounding, divided by h = 1e-2.
    wasmFiniteDifferences: false,
    // prettier-ignore
    epsilonCases: [
      { input: [2, 3, 3, 2], filters: 3, kernelSize: 3, strides: 2, padding: 'same', granularity: 'kernel' },
      { input: [1, 3, 4, 3], filters: 2, kernelSize: [2, 3], strides: [2, 1], granularity: 'filter', activation: 'relu', useBias: false },
    ],
    // prettier-ignore
    fresh: { options: { filters: 6, kernelSize: [3, 2] }, input: [5, 5, 4], weights: [[3, 2, 6, 4], { kernel: [6, 4], filter: [6] }, [6]] },
    fields: { rank: 2, transposed: true, depthwise: false, depthMultiplier: null, filters: 6 },
    small: { input: [1, 3, 3, 2], filters: 3, kernelSize: 2, strides: 2, granularity: 'kernel' },
    autodiff: { input: [2, 3, 4, 2], filters: 3, kernelSize: [2, 3], strides: 2, granularity: 'kernel' },
    handWorked: { options: { filters: 1, kernelSize: [1, 2] }, input: [1, 1, 3, 1], taps: full },
    config: {
      note: ', without a dilationRate (as Conv2DTranspose leaves it out)',
      options: { ...CONFIG_2D, filters: 3, name: 'up_x' },
      holds: { ...HOLDS_2D, filters: 3, name: 'up_x' },
      absent: ['dilationRate'],
    },
    model: {
      build: decoder,
      input: [4, 4, 2],
      output: [9, 10, 2],
      classes: ['Conv2D', 'Conv2DTranspose', 'Conv2DTranspose'],
      decomposed: ['DecomposedConv2D', 'DecomposedConv2DTranspose', 'DecomposedConv2DTranspose'],
    },
  }),
  row(DecomposedDepthwiseConv2D, decomposedDepthwiseConv2d, tfl.layers.depthwiseConv2d, 'depthwiseConv2d', {
    normAxes: { kernel: [0, 1], filter: [0, 1, 3] },
    conv: (x, k, c) => tf.depthwiseConv2d(x as tf.Tensor4D, k as tf.Tensor4D, ...geometry(c, 'NHWC')),
    // prettier-ignore
    cases: [
      { input: [2, 5, 5, 3], kernelSize: 3, granularity: 'kernel' },
      { input: [2, 5, 5, 3], kernelSize: 3, depthMultiplier: 2, strides: 2, padding: 'same', granularity: 'filter' },
      { input: [1, 4, 6, 2], kernelSize: [2, 3], depthMultiplier: 2, strides: 2, granularity: 'kernel', activation: 'relu' },
      { input: [1, 4, 6, 2], kernelSize: [2, 3], strides: [2, 1], padding: 'same', granularity: 'filter', activation: 'tanh', useBias: false },
      { input: [2, 3, 3, 4], kernelSize: 1, granularity: 'kernel', useBias: false },
      { input: [2, 3, 3, 4], kernelSize: 1, depthMultiplier: 2, strides: 2, granularity: 'filter' },
      { input: [1, 5, 4, 2], kernelSize: 3, depthMultiplier: 2, padding: 'same', granularity: 'kernel', useBias: false },
    ],
    // prettier-ignore
    gradCases: variants([2, 4, 4, 2], {}, [
      ['kernel', 1, 'valid', 2, 1], ['filter', 2, 'same', 2, 2], ['kernel', 2, 'same', 3, 2],
      ['filter', 1, 'valid', 3, 1], ['kernel', 2, 'valid', 1, 2], ['filter', 1, 'same', 1, 2],
    ]),
    wasmFiniteDifferences: false,
    // prettier-ignore
    epsilonCases: [
      { input: [2, 5, 5, 3], kernelSize: 3, depthMultiplier: 2, granularity: 'kernel' },
      { input: [1, 6, 5, 2], kernelSize: [2, 3], strides: 2, padding: 'same', granularity: 'filter', activation: 'relu', useBias: false },
    ],
    // prettier-ignore
    fresh: { options: { kernelSize: [3, 2], depthMultiplier: 3 }, input: [5, 5, 4], weights: [[3, 2, 4, 3], { kernel: [4, 3], filter: [4] }, [12]] },
    fields: { rank: 2, transposed: false, depthwise: true, depthMultiplier: 3, filters: 12 },
    small: { input: [1, 5, 5, 3], kernelSize: 2, depthMultiplier: 2, strides: 2, granularity: 'kernel' },
    autodiff: {
      input: [2, 5, 6, 3],
      kernelSize: [2, 3],
      depthMultiplier: 2,
      strides: 2,
      activation: 'relu',
      granularity: 'kernel',
    },
    handWorked: { options: { kernelSize: [1, 2] }, input: [1, 1, 3, 1], taps: valid },
    config: {
      note: ', with its own depthwiseConstraint (not the regularizer tfjs writes there)',
      options: {
        ...CONFIG_2D,
        depthMultiplier: 2,
        depthwiseConstraint: 'maxNorm',
        depthwiseRegularizer: 'l1l2',
        name: 'dw_x',
      },
      holds: {
        ...HOLDS_2D,
        depthMultiplier: 2,
        dilationRate: [1, 1],
        name: 'dw_x',
        depthwiseConstraint: { className: 'MaxNorm' },
        depthwiseRegularizer: { className: 'L1L2' },
      },
      absent: ['filters'],
    },
    model: {
      build: mobile,
      input: [6, 6, 2],
      output: [2, 1, 4],
      classes: ['Conv2D', 'DepthwiseConv2D', 'Conv2D', 'DepthwiseConv2D'],
      decomposed: [
        'DecomposedConv2D',
        'DecomposedDepthwiseConv2D',
        'DecomposedConv2D',
        'DecomposedDepthwiseConv2D',
      ],
    },
  }),
];

const GRANULARITIES = ['kernel', 'filter'] as const;

/** A case's layer options: everything but its input shape. */
const optionsOf = ({ input: _input, ...options }: Case) => options;

/** The activations the reference computations below apply, by name. */
function activate(name: unknown, z: tf.Tensor): tf.Tensor {
  if (name == null || name === 'linear') return z;
  if (name === 'relu') return tf.relu(z);
  if (name === 'tanh') return tf.tanh(z);
  throw new Error(`no reference activation ${String(name)}`);
}

/**
 * A plain layer whose kernel is the documented formula applied to the decomposed layer's
 * direction and magnitude (computed in the test, not by effectiveKernel(), so a wrong formula in
 * src cannot agree with itself).
 */
function plainTwin(row: Row, layer: DecomposedConv, c: Case): tfl.layers.Layer {
  const { granularity: _g, ...options } = optionsOf(c);
  const plain = row.plain(options);
  plain.build(c.input);
  const kernel = referenceKernelOf(layer);
  plain.setWeights(layer.bias ? [kernel, layer.bias.read()] : [kernel]);
  kernel.dispose();
  return plain;
}

/** Whether each group of `layer`'s direction is a single weight (a 1x1 kernel at 'kernel'). */
const oneWeightGroups = (row: Row, layer: DecomposedConv) =>
  row.normAxes[layer.granularity].every((a) => layer.direction!.shape[a] === 1);

/** The layers of `row`'s class in `model`. */
const namesOf = (row: Row, model: tfl.LayersModel, decomposed: boolean) =>
  model.layers.filter((l) => l.getClassName() === (decomposed ? row.name : row.plainName)).map((l) => l.name);

const BACKENDS = [
  ['cpu', useCpu],
  ['wasm', async () => void (await initBackend({ prefer: 'wasm', quiet: true }))],
] as const;

describe.each(ROWS.map((row) => [row.name, row] as const))('%s', (_name, row) => {
  const plainName = row.plainName;

  describe.each(BACKENDS)('on %s', (backend, init) => {
    beforeAll(init);
    afterAll(useCpu);

    it.each(row.cases)(`equals a plain ${plainName} given the kernel of the formula: %j`, (c) => {
      const layer = row.make(optionsOf(c));
      const x = randn(c.input, 1);
      layer.apply(x);
      tf.tidy(() => void layer.magnitude!.write(tf.mul(randn(layer.magnitude!.shape as number[], 2), 2)));
      if (layer.bias) tf.tidy(() => void layer.bias!.write(randn(layer.bias!.shape as number[], 3)));
      const y = layer.apply(x) as tf.Tensor;
      const plain = plainTwin(row, layer, c);
      const yPlain = plain.apply(x) as tf.Tensor;
      expect(y.shape).toEqual(yPlain.shape);
      const unbatched = [null, ...c.input.slice(1)] as any;
      expect(layer.computeOutputShape(unbatched)).toEqual([null, ...yPlain.shape.slice(1)]);
      expect(layer.computeOutputShape(unbatched)).toEqual(plain.computeOutputShape(unbatched));
      expect(layer.computeOutputShape(c.input)).toEqual(yPlain.shape);
      expect(scaledError(y, yPlain)).toBeLessThan(1e-5);
      const k = layer.effectiveKernel();
      const reference = referenceKernelOf(layer);
      expect(scaledError(k, reference)).toBeLessThan(1e-5);
      // Each group's norm is its magnitude's absolute value.
      const norms = tf.tidy(() => tf.sqrt(tf.sum(tf.square(k), row.normAxes[c.granularity])));
      const m = tf.abs(layer.magnitude!.read());
      expect(scaledError(norms, m)).toBeLessThan(1e-5);
      tf.dispose([x, y, yPlain, k, reference, norms, m]);
      disposeWeights(layer);
      disposeWeights(plain);
    });

    if (backend === 'cpu' || row.wasmFiniteDifferences)
      it.each(row.gradCases)('gradients agree with central finite differences: %j', (c) => {
        const layer = row.make({ ...optionsOf(c), activation: 'tanh' });
        const x = randn(c.input, 41);
        layer.apply(x);
        const errors = gradientErrors(layer, x, 42);
        // A 1x1 kernel of granularity 'kernel' has one-weight groups, whose direction gets no
        // gradient (g * eps^2 / |v|^3, about 0): the relative error of two zeros says nothing.
        if (oneWeightGroups(row, layer)) errors.shift();
        // Measured (seeded, cpu, tanh) for DecomposedConv2D: at most 3.5e-5.
        for (const error of errors) expect(error).toBeLessThan(1e-4);
        x.dispose();
        disposeWeights(layer);
      });

    if (backend === 'wasm')
      it.each(row.gradCases)("gradients equal the cpu backend's: %j", async (c) => {
        const layer = row.make({ ...optionsOf(c), activation: 'tanh' });
        await tf.setBackend('cpu');
        const x = randn(c.input, 41);
        const r = tf.tidy(() => randn((layer.apply(x) as tf.Tensor).shape, 42));
        const weights = [layer.direction, layer.magnitude, layer.bias].filter((w) => w != null);
        weights.forEach((w, i) => tf.tidy(() => void w.write(randn(w.shape as number[], 43 + i))));
        /** The loss sum(layer(x) * r), and its gradients with respect to each weight and x. */
        const lossAndGrads = () =>
          tf.tidy(() => {
            const loss = (input: tf.Tensor) =>
              tf.sum(tf.mul(layer.apply(input) as tf.Tensor, r)) as tf.Scalar;
            const vars = weights.map((w) => w.read() as tf.Variable);
            const { value, grads } = tf.variableGrads(() => loss(x), vars);
            return [value, ...vars.map((v) => grads[v.name]), tf.grad(loss)(x)].map(
              (t) => t.dataSync() as Float32Array,
            );
          });
        const onCpu = lossAndGrads();
        await tf.setBackend('wasm');
        const onWasm = await expectNoLeak(lossAndGrads);
        // As the finite differences: the direction of one-weight groups gets about 0 on both.
        if (oneWeightGroups(row, layer)) [onCpu, onWasm].forEach((a) => a.splice(1, 1));
        onWasm.forEach((w, i) => expect(scaledErrorOf(w, onCpu[i])).toBeLessThan(1e-5));
        tf.dispose([x, r]);
        disposeWeights(layer);
      });

    it('call() leaves no tensor behind', async () => {
      const layer = row.make({ ...optionsOf(row.small), activation: 'softmax' });
      const x = randn(row.small.input, 61);
      layer.apply(x);
      await expectNoLeak(() => {
        for (let i = 0; i < 5; i++) (layer.apply(x) as tf.Tensor).dispose();
      });
      x.dispose();
      disposeWeights(layer);
    });
  });

  describe('on cpu', () => {
    beforeAll(useCpu);

    const [directionShape, magnitudeShapes, biasShape] = row.fresh.weights;
    it(`weights are direction ${JSON.stringify(directionShape)}, magnitude ${JSON.stringify(magnitudeShapes)}, bias ${JSON.stringify(biasShape)}; a fresh layer applies its direction`, () => {
      for (const granularity of GRANULARITIES) {
        const layer = row.make({ ...row.fresh.options, granularity });
        layer.build([null, ...row.fresh.input]);
        const [direction, magnitude, bias] = layer.getWeights();
        expect(layer.weights.map((w) => w.originalName.split('/').pop())).toEqual([
          'direction',
          'magnitude',
          'bias',
        ]);
        expect([direction.shape, magnitude.shape, bias.shape]).toEqual([
          directionShape,
          magnitudeShapes[granularity],
          biasShape,
        ]);
        expect(layer.normAxes).toEqual(row.normAxes[granularity]);
        for (const [field, value] of Object.entries(row.fields))
          expect([field, (layer as any)[field]]).toEqual([field, value]);
        expect(layer).toBeInstanceOf(DecomposedConv);
        expect(isDecomposed(layer)).toBe(true);
        const k = layer.effectiveKernel();
        expect(scaledError(k, direction)).toBeLessThan(1e-5);
        k.dispose();
        disposeWeights(layer);
      }
    });

    it.each(GRANULARITIES)(
      `setWeights takes the plain ${plainName}'s [kernel, bias] and applies that kernel (%s)`,
      (granularity) => {
        const { granularity: _g, ...options } = optionsOf(row.small);
        const plain = row.plain(options);
        const layer = row.make({ ...options, granularity });
        const x = randn(row.small.input, 7);
        plain.apply(x);
        layer.apply(x);
        tf.tidy(() => plain.setWeights(plain.weights.map((w, i) => randn(w.shape as number[], 8 + i))));
        layer.setWeights(plain.getWeights());
        const [a, b] = [layer.apply(x), plain.apply(x)] as tf.Tensor[];
        expect(scaledError(a, b)).toBeLessThan(1e-5);
        tf.dispose([x, a, b]);
        disposeWeights(layer);
        disposeWeights(plain);
      },
    );

    it.each(GRANULARITIES)(
      `the ${row.kernelOption} constraint and regularizer act on the effective kernel, and the initializer on the direction (%s)`,
      (granularity) => {
        const k = row.kernelOption;
        const layer = row.make({
          ...optionsOf(row.small),
          granularity,
          [`${k}Initializer`]: 'ones',
          [`${k}Constraint`]: 'nonNeg',
          [`${k}Regularizer`]: tfl.regularizers.l2({ l2: 0.5 }),
        });
        layer.build([null, ...row.small.input.slice(1)]);
        expect(tf.min(layer.direction!.read()).dataSync()[0]).toBe(1);
        expect(tf.max(layer.direction!.read()).dataSync()[0]).toBe(1);
        const kernel = randn(layer.direction!.shape as number[], 31);
        const bias = tf.zeros(layer.bias!.shape as number[]);
        layer.setWeights([kernel, bias]);
        const effective = layer.effectiveKernel();
        const expected = tf.relu(kernel);
        expect(scaledError(effective, expected)).toBeLessThan(1e-6);
        // tfjs keeps a layer's regularizer losses as functions (RegularizerFn).
        const loss = (layer.losses[0] as unknown as () => tf.Scalar)();
        const l2 = tf.tidy(() => tf.mul(0.5, tf.sum(tf.square(expected))));
        expect(scaledError(loss, l2)).toBeLessThan(1e-6);
        tf.dispose([kernel, bias, effective, expected, loss, l2]);
        disposeWeights(layer);
      },
    );

    it(`getConfig round-trips${row.config.note}`, () => {
      const config = row.make(row.config.options).getConfig();
      expect(config).toMatchObject(row.config.holds);
      for (const key of row.config.absent) expect(config).not.toHaveProperty(key);
      expect(new row.Class(JSON.parse(JSON.stringify(config))).getConfig()).toEqual(config);
    });

    it.each(GRANULARITIES)(
      'gradients with respect to direction and magnitude equal autodiff of the formula (%s)',
      (granularity) => {
        const c = { ...row.autodiff, granularity };
        const layer = row.make(optionsOf(c));
        const x = randn(c.input, 11);
        layer.apply(x);
        const v = layer.direction!.read() as tf.Variable;
        const g = layer.magnitude!.read() as tf.Variable;
        tf.tidy(() => g.assign(tf.abs(randn(g.shape, 12))));
        tf.tidy(() => void layer.bias!.write(randn(layer.bias!.shape as number[], 14)));
        const r = tf.tidy(() => randn((layer.apply(x) as tf.Tensor).shape, 13));
        const axes = row.normAxes[granularity];
        const reference = () => {
          const inv = tf.rsqrt(tf.add(tf.sum(tf.square(v), axes, true), layer.epsilon ** 2));
          const gb = tf.reshape(
            g,
            v.shape.map((d, a) => (axes.includes(a) ? 1 : d)),
          );
          const y = row.conv(x, tf.mul(tf.mul(v, gb), inv), c, layer);
          return tf.sum(tf.mul(activate(c.activation, tf.add(y, layer.bias!.read())), r)) as tf.Scalar;
        };
        const ours = tf.variableGrads(
          () => tf.sum(tf.mul(layer.apply(x) as tf.Tensor, r)) as tf.Scalar,
          [v, g],
        );
        const theirs = tf.variableGrads(reference, [v, g]);
        expect(scaledError(ours.value, theirs.value)).toBeLessThan(1e-5);
        for (const w of [v, g])
          expect(scaledError(ours.grads[w.name], theirs.grads[w.name])).toBeLessThan(1e-5);
        tf.dispose([
          x,
          r,
          ours.value,
          theirs.value,
          ...Object.values(ours.grads),
          ...Object.values(theirs.grads),
        ]);
        disposeWeights(layer);
      },
    );

    // With the default epsilon (1e-6) the epsilon^2 under the square root is invisible next to a
    // direction group of norm ~1, so a layer that added epsilon instead of epsilon^2 would pass
    // every test above. epsilon 0.5 next to direction groups of norm ~0.05 makes the term dominate.
    it.each(GRANULARITIES)(
      'one 2-tap kernel [0.03, 0.04], magnitude 1, epsilon 0.5 (%s, worked by hand)',
      (granularity) =>
        expectNoLeak(() => {
          // One input and one output channel: a kernel is the whole filter, so both
          // granularities have the single group [0.03, 0.04]:
          // w = [0.03, 0.04] / sqrt(0.03^2 + 0.04^2 + 0.5^2).
          const layer = row.make({ ...row.handWorked.options, granularity, epsilon: 0.5, useBias: false });
          layer.build([null, ...row.handWorked.input.slice(1)]);
          const direction = tf.tensor([0.03, 0.04], layer.direction!.shape as number[]);
          const magnitude = tf.ones(layer.magnitude!.shape as number[]);
          layer.setWeights([direction, magnitude]);
          const x = tf.tensor([1, 2, -3], row.handWorked.input);
          const y = layer.apply(x) as tf.Tensor;
          const n = Math.sqrt(0.0025 + 0.25);
          const expected = row.handWorked.taps([1, 2, -3], [0.03 / n, 0.04 / n]);
          // The input's 3 taps give as many outputs as the expected values, one channel.
          const length = row.handWorked.input.length - 2;
          expect(y.shape).toEqual(row.handWorked.input.map((d, a) => (a === length ? expected.length : d)));
          expect(Array.from(values(y))).toEqual(expected.map((e) => expect.closeTo(e, 6)));
          tf.dispose([direction, magnitude, x, y]);
          disposeWeights(layer);
        }),
    );

    it.each(row.epsilonCases)(
      'layer.apply(x) = conv(x, g v / sqrt(||v||^2 + eps^2)) (+ bias) with eps 0.5 and small directions: %j',
      (c) =>
        expectNoLeak(() => {
          const layer = row.make({ ...optionsOf(c), epsilon: 0.5 });
          layer.build(c.input);
          const shape = layer.direction!.shape as number[];
          const direction = tf.tidy(() => tf.mul(randn(shape, 111), 0.05));
          const magnitude = tf.tidy(() => tf.mul(randn(layer.magnitude!.shape as number[], 112), 2));
          const bias = layer.bias ? randn(layer.bias.shape as number[], 113) : null;
          layer.setWeights(bias == null ? [direction, magnitude] : [direction, magnitude, bias]);
          const x = randn(c.input, 114);
          const y = layer.apply(x) as tf.Tensor;
          const axes = row.normAxes[c.granularity];
          const kernel = referenceKernel(values(direction), shape, axes, values(magnitude), 0.5);
          const expected = tf.tidy(() => {
            const z = row.conv(x, tf.tensor(Array.from(kernel), shape), c, layer);
            return activate(c.activation, bias == null ? z : tf.add(z, bias));
          });
          expect(y.shape).toEqual(expected.shape);
          expect(scaledError(y, expected)).toBeLessThan(1e-5);
          tf.dispose([direction, magnitude, x, y, expected]);
          if (bias != null) bias.dispose();
          disposeWeights(layer);
        }),
    );
  });

  describe(`in a model of ${row.model.classes.join(', ')}`, () => {
    beforeAll(useCpu);
    const input = () => randn([3, ...row.model.input], 21);
    const granularity = (g: ConvGranularity) => ({ conv2d: 'filter' as const, [row.key]: g });

    it.each(GRANULARITIES)(
      `decompose() replaces its ${plainName} layers and fold() gives them back, outputs kept and no tensor left (%s)`,
      (g) => {
        const plain = row.model.build(false);
        const x = input();
        const before = tf.memory().numTensors;
        const d = decompose(plain, { granularity: granularity(g) });
        expect(d.layers.map((l) => l.getClassName())).toEqual(row.model.decomposed);
        for (const n of namesOf(row, d, true)) expect((d.getLayer(n) as DecomposedConv).granularity).toBe(g);
        const y0 = plain.predict(x) as tf.Tensor;
        const y1 = d.predict(x) as tf.Tensor;
        expect(scaledError(y1, y0)).toBeLessThan(1e-5);
        // Kill some groups, as the proximal step does, then fold.
        const target = magnitudes(d).find((m) => m.layer.getClassName() === row.name)!;
        tf.tidy(() =>
          target.magnitude.assign(
            tf.mul(
              target.magnitude,
              tf.cast(
                tf.greater(tf.randomUniform(target.magnitude.shape, 0, 1, 'float32', 5), 0.5),
                'float32',
              ),
            ),
          ),
        );
        const y2 = d.predict(x) as tf.Tensor;
        const f = fold(d);
        expect(f.layers.map((l) => l.getClassName())).toEqual(row.model.classes);
        expect(f.layers.some(isDecomposed)).toBe(false);
        for (const n of namesOf(row, plain, false))
          expect(f.getLayer(n).getConfig()).toEqual(plain.getLayer(n).getConfig());
        const y3 = f.predict(x) as tf.Tensor;
        expect(scaledError(y3, y2)).toBeLessThan(1e-5);
        // Folding the unchanged model gives the plain model's outputs back.
        const d0 = decompose(plain, { granularity: { [row.key]: g } });
        const f0 = fold(d0);
        const y4 = f0.predict(x) as tf.Tensor;
        expect(scaledError(y4, y0)).toBeLessThan(1e-5);
        tf.dispose([y0, y1, y2, y3, y4]);
        for (const m of [d, f, d0, f0]) m.dispose();
        expect(tf.memory().numTensors).toBe(before);
        x.dispose();
        plain.dispose();
      },
    );

    it(`include selects ${plainName} layers by name`, () => {
      const plain = row.model.build(false);
      const last = namesOf(row, plain, false).pop()!;
      const d = decompose(plain, { include: [last] });
      expect(d.layers.map((l) => l.getClassName())).toEqual(
        plain.layers.map((l) => (l.name === last ? row.name : l.getClassName())),
      );
      plain.dispose();
      d.dispose();
    });

    it('serialises: toJSON / modelFromJSON and save / load through tf.io keep the configs and outputs', async () => {
      const d = decompose(row.model.build(false), { granularity: granularity('filter') });
      const x = input();
      const y = d.predict(x) as tf.Tensor;
      const fromJson = await tfl.models.modelFromJSON({ modelTopology: JSON.parse(d.toJSON() as string) });
      fromJson.setWeights(d.getWeights());
      for (const n of namesOf(row, d, true)) expect(fromJson.getLayer(n)).toBeInstanceOf(row.Class);
      const y1 = fromJson.predict(x) as tf.Tensor;
      expect(scaledError(y1, y)).toBeLessThan(1e-6);
      let artifacts: tf.io.ModelArtifacts | undefined;
      await d.save(tf.io.withSaveHandler(async (a) => ((artifacts = a), { modelArtifactsInfo: {} as any })));
      const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts!));
      expect(loaded.layers.map((l) => l.getClassName())).toEqual(row.model.decomposed);
      for (const n of namesOf(row, d, true))
        expect(loaded.getLayer(n).getConfig()).toEqual(d.getLayer(n).getConfig());
      const y2 = loaded.predict(x) as tf.Tensor;
      expect(scaledError(y2, y)).toBeLessThan(1e-6);
      tf.dispose([x, y, y1, y2]);
      for (const m of [d, fromJson, loaded]) m.dispose();
    });

    it('training steps (minimize, then fit) leave no tensor behind', async () => {
      const m = decompose(row.model.build(true), { granularity: granularity('filter') });
      const xs = randn([2, ...row.model.input], 62);
      const ys = randn([2, ...row.model.output], 63);
      await expectTrainingLeavesNothing(m, xs, ys);
      tf.dispose([xs, ys]);
      m.dispose();
    });
  });

  describe('on the wasm backend', () => {
    beforeAll(async () => {
      const info = await initBackend({ prefer: 'wasm', quiet: true });
      expect(info.backend).toBe('wasm');
    });
    afterAll(useCpu);

    it.each(GRANULARITIES)(
      `a model's outputs and gradients equal the cpu backend's, and training leaves no tensor behind (%s)`,
      async (g) => {
        await tf.setBackend('cpu');
        // 'filter' for the model's other Conv2D layers: at 'kernel', mobile()'s 1x1 Conv2D would have
        // one-weight groups, whose direction gradient is about 0 on both backends, and the relative
        // error of two zeros says nothing.
        const m = decompose(row.model.build(true), { granularity: { conv2d: 'filter', [row.key]: g } });
        const [x, r] = [row.model.input, row.model.output].map((shape, i) => ({
          values: tf.tidy(() => randn([2, ...shape], 5 + i).dataSync() as Float32Array),
          shape: [2, ...shape],
        }));
        const onCpu = outputsAndGrads(m, x, r);
        await tf.setBackend('wasm');
        const onWasm = await expectNoLeak(() => outputsAndGrads(m, x, r));
        expect(onWasm.length).toBe(onCpu.length);
        // Against each array's own scale, as wasm.test.ts checks the other layers.
        onWasm.forEach((w, i) => expect(scaledErrorOf(w, onCpu[i])).toBeLessThan(1e-5));
        const opt = tf.train.adam(0.01);
        const xs = tf.tensor(x.values, x.shape);
        const ys = tf.tensor(r.values, r.shape);
        const step = () =>
          opt.minimize(() => tf.losses.meanSquaredError(ys, m.apply(xs) as tf.Tensor) as tf.Scalar, true);
        const first = step()!;
        const loss0 = first.dataSync()[0];
        first.dispose();
        await expectNoLeak(() => {
          for (let i = 0; i < 5; i++) step()!.dispose();
        });
        const last = step()!;
        expect(last.dataSync()[0]).toBeLessThan(loss0);
        tf.dispose([xs, ys, last]);
        opt.dispose();
        m.dispose();
      },
    );
  });
});
