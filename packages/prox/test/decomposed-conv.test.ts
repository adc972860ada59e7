// The proximal optimisers on decomposed convolutions whose kernels are not [..., inChannels,
// filters]: a DecomposedConv2DTranspose's is [kh, kw, filters, inChannels], a
// DecomposedDepthwiseConv2D's [kh, kw, inChannels, depthMultiplier]. Over a table with one row per
// class: the optimisers find its magnitudes through magnitudes(), drive groups to exactly 0, keep
// magnitudes >= 0 and directions of unit norm over its groups (axes [0, 1] or [0, 1, 3]),
// keepLargestFilters keeps what its 2-D magnitude's first axis indexes (filters, or input
// channels) and refuses a 'filter' layer, and a 1x1 layer's single-weight groups are warned about.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { type ConvGranularity, decompose, magnitudes } from '@normprune/layers';
import { keepLargestFilters, ProximalSGD } from '../src/index.js';
import { proximal, tenSteps } from './proximal-run.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const seeded = (seed: number) => tfl.initializers.glorotUniform({ seed });

interface Row {
  /** The decomposed class, and its key in decompose's granularity option. */
  name: string;
  key: 'conv2dTranspose' | 'depthwiseConv2d';
  /** A plain model with two layers of the class, and which layers decompose() takes. */
  build(): tfl.LayersModel;
  include?: (layer: tfl.layers.Layer) => boolean;
  /** Each decomposed layer's magnitude shape per granularity, by name. */
  layers: Record<string, Record<ConvGranularity, number[]>>;
  /** Lambdas large enough that ten steps zero some groups and small enough that they do not zero all. */
  lambdas: Record<'ProximalAdam' | 'ProximalSGD', Record<ConvGranularity, number>>;
  /**
   * keepLargestFilters on the first of `layers` at 'kernel': what its magnitude's rows are, the
   * magnitude's shape and entries, how many rows to keep, which are kept.
   */
  keep: {
    what: string;
    shape: [number, number];
    magnitude: (row: number, column: number) => number;
    count: number;
    kept: boolean[];
  };
  /** What keepLargestFilters' refusal of a 'filter' layer says its groups are. */
  filterGroups: string;
  /** Layers of 1x1 kernels: granularity, more of its name, what the warning names, the plain layer. */
  warnings: [ConvGranularity, string, string, () => tfl.layers.Layer][];
}

const ROWS: Row[] = [
  {
    name: 'DecomposedConv2DTranspose',
    filterGroups: 'its filters',
    key: 'conv2dTranspose',
    build: () =>
      tfl.sequential({
        layers: [
          tfl.layers.conv2dTranspose({
            inputShape: [3, 3, 4],
            filters: 6,
            kernelSize: 3,
            strides: 2,
            padding: 'same',
            activation: 'relu',
            kernelInitializer: seeded(1),
            name: 'up1',
          }),
          tfl.layers.conv2dTranspose({
            filters: 2,
            kernelSize: 2,
            kernelInitializer: seeded(2),
            name: 'up2',
          }),
        ],
      }),
    layers: { up1: { kernel: [6, 4], filter: [6] }, up2: { kernel: [2, 6], filter: [2] } },
    // A 'filter' group, 27 or 24 weights, has a larger norm than a 3x3 or 2x2 kernel.
    lambdas: { ProximalAdam: { kernel: 0.05, filter: 0.2 }, ProximalSGD: { kernel: 0.5, filter: 1 } },
    keep: {
      what: 'filters',
      // Filter o gets magnitudes (o + 1) on every kernel but filters 2 and 4, which get 10 on one
      // kernel. Norms: (o + 1) * 2 for filter o, but sqrt(100 + 3 (o + 1)^2) for 2 and 4: kept are
      // 4 (13.2), 5 (12) and 2 (11.3).
      shape: [6, 4],
      magnitude: (o, i) => ((o === 2 || o === 4) && i === 1 ? 10 : o + 1),
      count: 3,
      kept: [false, false, true, false, true, true],
    },
    warnings: [
      [
        'kernel',
        '',
        "'up' (Conv2DTranspose with 1x1 kernels, granularity 'kernel': use 'filter')",
        () =>
          tfl.layers.conv2dTranspose({
            inputShape: [3, 3, 4],
            filters: 2,
            kernelSize: 1,
            strides: 2,
            name: 'up',
          }),
      ],
    ],
  },
  {
    name: 'DecomposedDepthwiseConv2D',
    filterGroups:
      'its input channels, each with its depthMultiplier kernels, which keepLargestFilters keeps of a DepthwiseConv2D',
    key: 'depthwiseConv2d',
    // Two DepthwiseConv2D layers (multiplier 2, then 1) around a 1x1 Conv2D, left plain by decompose.
    build: () =>
      tfl.sequential({
        layers: [
          tfl.layers.depthwiseConv2d({
            inputShape: [6, 6, 4],
            kernelSize: 3,
            depthMultiplier: 2,
            strides: 2,
            padding: 'same',
            activation: 'relu',
            depthwiseInitializer: seeded(1),
            name: 'dw1',
          }),
          tfl.layers.conv2d({ filters: 4, kernelSize: 1, kernelInitializer: seeded(2), name: 'pw' }),
          tfl.layers.depthwiseConv2d({ kernelSize: 2, depthwiseInitializer: seeded(3), name: 'dw2' }),
        ],
      }),
    include: (l) => l.getClassName() === 'DepthwiseConv2D',
    layers: { dw1: { kernel: [4, 2], filter: [4] }, dw2: { kernel: [4, 1], filter: [4] } },
    lambdas: { ProximalAdam: { kernel: 0.2, filter: 0.1 }, ProximalSGD: { kernel: 0.5, filter: 0.7 } },
    keep: {
      what: 'input channels',
      // Channel c gets magnitudes (c + 1) on both kernels but channel 1, which gets 10 on one.
      // Norms: (c + 1) * sqrt(2) for channel c, but sqrt(104) for 1: kept are 1 (10.2) and 3 (5.7).
      shape: [4, 2],
      magnitude: (c, j) => (c === 1 && j === 0 ? 10 : c + 1),
      count: 2,
      kept: [false, true, false, true],
    },
    warnings: (
      [
        [1, 'kernel'],
        [2, 'kernel'],
        [1, 'filter'],
      ] as const
    ).map(([depthMultiplier, granularity]) => {
      const named =
        depthMultiplier === 1
          ? `'dw' (DepthwiseConv2D with 1x1 kernels and depthMultiplier 1, granularity '${granularity}': no granularity groups several of its weights; keep it plain)`
          : `'dw' (DepthwiseConv2D with 1x1 kernels, granularity '${granularity}': use 'filter')`;
      const layer = () =>
        tfl.layers.depthwiseConv2d({ inputShape: [3, 3, 4], kernelSize: 1, depthMultiplier, name: 'dw' });
      return [granularity, `, multiplier ${depthMultiplier}`, named, layer] as Row['warnings'][number];
    }),
  },
];

describe.each(ROWS.map((row) => [row.name, row] as const))('%s layers', (name, row) => {
  const decomposed = (granularity: ConvGranularity) =>
    decompose(row.build(), { granularity: { [row.key]: granularity }, include: row.include });

  const lambdas = Object.entries(row.lambdas).flatMap(([optimizer, byGranularity]) =>
    Object.entries(byGranularity).map(
      ([granularity, lambda]) => [optimizer, granularity as ConvGranularity, lambda] as const,
    ),
  );
  describe.each(lambdas)('%s, granularity %s, lambda %d', (optimizer, granularity, lambda) => {
    it('zeroes groups exactly, keeps magnitudes >= 0 and directions unit-norm, and leaks nothing', async () => {
      const model = decomposed(granularity);
      const infos = magnitudes(model);
      expect(infos.map((m) => [m.layerName, m.layer.getClassName(), m.magnitude.shape])).toEqual(
        Object.entries(row.layers).map(([layer, shapes]) => [layer, name, shapes[granularity]]),
      );
      const opt = proximal(optimizer as 'ProximalAdam' | 'ProximalSGD', lambda, infos);
      const [xs, ys] = [model.inputs[0], model.outputs[0]].map((t, i) =>
        tf.randomNormal([4, ...t.shape.slice(1)] as number[], 0, 1, 'float32', 3 + i),
      );
      // The penalty's zeros are exact, in some groups and not all.
      const zeros = await tenSteps(opt, model, infos, xs, ys);
      expect(zeros.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
      expect(infos.some((m, i) => zeros[i] < m.groups)).toBe(true);
      tf.dispose([xs, ys]);
      opt.dispose();
      model.dispose();
    });
  });

  it(`keepLargestFilters keeps the ${row.keep.what} of a kernel-granularity layer with the largest norms`, () => {
    const model = decomposed('kernel');
    const { shape, magnitude, count, kept } = row.keep;
    const layer = Object.keys(row.layers)[0];
    const info = magnitudes(model).find((m) => m.layerName === layer)!;
    expect(info.magnitude.shape).toEqual(shape);
    const g = Array.from({ length: shape[0] }, (_, r) =>
      Array.from({ length: shape[1] }, (_, c) => magnitude(r, c)),
    );
    tf.tidy(() => info.magnitude.assign(tf.tensor2d(g)));
    keepLargestFilters(model, { [layer]: count });
    const rows = info.magnitude.arraySync() as number[][];
    expect(rows.map((r) => r.every((v) => v !== 0))).toEqual(kept);
    expect(rows.map((r) => r.every((v) => v === 0))).toEqual(kept.map((k) => !k));
    model.dispose();
  });

  it("keepLargestFilters refuses a 'filter' layer as a convolution it knows, changing nothing", () => {
    const model = decomposed('filter');
    const layer = Object.keys(row.layers)[0];
    const info = magnitudes(model).find((m) => m.layerName === layer)!;
    const before = info.magnitude.arraySync();
    expect(() => keepLargestFilters(model, { [layer]: row.keep.count })).toThrow(
      `keepLargestFilters: ${layer}: expected a Conv1D, Conv2D, Conv2DTranspose or DepthwiseConv2D layer of granularity 'kernel', ` +
        `got granularity 'filter' (its groups are ${row.filterGroups}: use keepLargestGroups)`,
    );
    expect(info.magnitude.arraySync()).toEqual(before);
    model.dispose();
  });

  it.each(row.warnings)(
    'warns that a 1x1 layer of granularity %s%s has single-weight groups, naming it',
    (granularity, _more, named, layer) => {
      const model = decompose(tfl.sequential({ layers: [layer()] }), {
        granularity: { [row.key]: granularity },
      });
      const warn = jest.spyOn(console, 'warn').mockImplementation(() => {});
      try {
        const opt = new ProximalSGD({ learningRate: 0.1, lambda: 0.1, magnitudes: magnitudes(model) });
        expect(warn).toHaveBeenCalledTimes(1);
        expect(warn.mock.calls[0][0]).toContain(`every group of ${named}`);
        opt.dispose();
      } finally {
        warn.mockRestore();
        model.dispose();
      }
    },
  );
});
