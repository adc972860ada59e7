import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import * as layers from '@normprune/layers';
import { analyze, formatAnalysis, kernelMask, NonFiniteWeightError, prune } from '../src/index';
import { editWeight, fillAll, outputDiff, zeroKernelWhere, zeroUnits } from './helpers';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// 6x6x2 -> conv 3 filters 3x3 valid (4x4x3) -> flatten (48) -> dense 2, all biases 1.
function smallConvNet(): tfl.Sequential {
  const m = tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        inputShape: [6, 6, 2],
        filters: 3,
        kernelSize: 3,
        name: 'conv',
        kernelInitializer: tfl.initializers.ones(),
      }),
      tfl.layers.flatten({ name: 'flat' }),
      tfl.layers.dense({ units: 2, name: 'dense', kernelInitializer: tfl.initializers.ones() }),
    ],
  });
  fillAll(m, 'bias', () => 1);
  return m;
}

describe('analyze', () => {
  it('counts an MLP by hand: 4 -> 3 -> 2', () => {
    const m = tfl.sequential({
      layers: [
        tfl.layers.dense({
          units: 3,
          inputShape: [4],
          name: 'a',
          kernelInitializer: tfl.initializers.ones(),
          biasInitializer: tfl.initializers.ones(),
        }),
        tfl.layers.dense({ units: 2, name: 'b', kernelInitializer: tfl.initializers.ones() }),
      ],
    });
    // a: row 1 and column 0 zero -> 3 + 4 - 1 = 6 weights in zero groups.
    zeroKernelWhere(m, 'a', (i, o) => i === 1 || o === 0);
    const a = analyze(m);
    expect(a.layers.map((l) => [l.params, l.macs])).toEqual([
      [4 * 3 + 3, 4 * 3],
      [3 * 2 + 2, 3 * 2],
    ]);
    expect(a.total).toEqual({
      params: 23,
      nonzeros: 6 + 3 + 6,
      macs: 18,
      nonzeroMacs: 6 + 6,
      zeroGroupParams: 6,
    });
    expect(a.layers[0].groups).toEqual([
      { kind: 'output', total: 3, dead: 1 },
      { kind: 'input', total: 4, dead: 1 },
    ]);
    expect(a.table()).toMatch(/total\s+23\s+15\s+18\s+12/);
  });

  it('counts a conv net by hand, before and after pruning a filter', () => {
    const m = smallConvNet();
    zeroUnits(m, 'conv', [1]);
    zeroKernelWhere(m, 'conv', (i, o) => i === 0 && o === 0);
    const a = analyze(m);
    const conv = a.layers[0];
    expect(conv.params).toBe(3 * 3 * 2 * 3 + 3);
    expect(conv.macs).toBe(3 * 3 * 2 * 3 * 4 * 4);
    expect(conv.nonzeros).toBe(54 - 18 - 9 + 3);
    expect(conv.nonzeroMacs).toBe((54 - 27) * 16);
    expect(conv.zeroGroupParams).toBe(27);
    expect(conv.groups).toEqual([
      { kind: 'filter', total: 3, dead: 1 },
      { kind: 'kernel', total: 6, dead: 3 },
    ]);
    expect(a.layers[2].params).toBe(48 * 2 + 2);
    expect(a.layers[2].macs).toBe(96);
    expect(a.total.params).toBe(155);
    expect(a.total.macs).toBe(960);

    const { model, report } = prune(m);
    const b = analyze(model);
    expect(b.layers[0].params).toBe(3 * 3 * 2 * 2 + 2);
    expect(b.layers[0].macs).toBe(3 * 3 * 2 * 2 * 16);
    expect(b.layers[2].params).toBe(32 * 2 + 2);
    expect(b.total).toEqual({
      params: 104,
      nonzeros: 104 - 9,
      macs: 640,
      nonzeroMacs: 640 - 9 * 16,
      zeroGroupParams: 9,
    });
    expect(report.paramsBefore).toBe(155);
    expect(report.paramsAfter).toBe(95);
    expect(report.compression).toBeCloseTo(1 - 95 / 155, 12);
    expect(report.macsSpeedup).toBeCloseTo(960 / (640 - 144), 12);
  });

  it('formatAnalysis: the table of a conv net counted by hand, text for text', () => {
    // 6x6x2 -> conv 'c' 4 filters 3x3 valid (4x4x4, all ones) -> BatchNormalization -> Flatten
    // (64) -> Dense 'd' 3 (kernel ones, bias zeros).
    const m = tfl.sequential({
      layers: [
        tfl.layers.conv2d({
          inputShape: [6, 6, 2],
          filters: 4,
          kernelSize: 3,
          name: 'c',
          kernelInitializer: tfl.initializers.ones(),
          biasInitializer: tfl.initializers.ones(),
        }),
        tfl.layers.batchNormalization({ name: 'bn' }),
        tfl.layers.flatten({ name: 'flat' }),
        tfl.layers.dense({ units: 3, name: 'd', kernelInitializer: tfl.initializers.ones() }),
      ],
    });
    zeroUnits(m, 'c', [1]); // filter 1: 3*3*2 = 18 weights
    zeroKernelWhere(m, 'c', (i, o) => i === 0 && o === 0); // the 2-D kernel [0, 0]: 9 more
    // c: 72 + 4 params, 72 - 27 + 4 = 49 non-zeros, 72 * 16 = 1152 MACs, 45 * 16 = 720 non-zero;
    //    filters 3 of 4 live, 2-D kernels 8 - 3 = 5 of 8 live.
    // bn: 4 * 4 = 16 params, gamma and moving variance (ones) non-zero: 8; no MACs, no groups.
    // flat: no params, no row. d: 64 * 3 + 3 = 195 params, 192 non-zeros, 192 MACs.
    const a = analyze(m);
    expect(a.total).toEqual({
      params: 287,
      nonzeros: 249,
      macs: 1344,
      nonzeroMacs: 912,
      zeroGroupParams: 27,
    });
    expect(formatAnalysis(a)).toBe(
      [
        'layer  class               params  nonzeros   MACs  nonzero MACs  groups live/total',
        'c      Conv2D                  76        49  1,152           720  filters 3/4, kernels 5/8',
        'bn     BatchNormalization      16         8      0             0',
        'd      Dense                  195       192    192           192  outputs 3/3, inputs 64/64',
        'total                         287       249  1,344           912',
      ].join('\n'),
    );
    expect(a.table()).toBe(formatAnalysis(a));
    m.dispose();
  });

  it('formatAnalysis: unknown MACs (NaN, or null from JSON) and large counts, on an analysis written by hand', () => {
    const counts = { params: 1234567, nonzeros: 1000, macs: NaN, nonzeroMacs: null as unknown as number };
    const text = formatAnalysis({
      layers: [
        {
          name: 'conv',
          className: 'Conv2D',
          ...counts,
          zeroGroupParams: 0,
          groups: [
            { kind: 'filter', total: 8, dead: 8 },
            { kind: 'kernel', total: 64, dead: 63 },
          ],
        },
        // no parameters: no row
        {
          name: 'pool',
          className: 'MaxPooling2D',
          params: 0,
          nonzeros: 0,
          macs: 0,
          nonzeroMacs: 0,
          zeroGroupParams: 0,
          groups: [],
        },
      ],
      total: { ...counts, zeroGroupParams: 0 },
    });
    expect(text).toBe(
      [
        'layer  class      params  nonzeros     MACs  nonzero MACs  groups live/total',
        'conv   Conv2D  1,234,567     1,000  unknown       unknown  filters 0/8, kernels 1/64',
        'total          1,234,567     1,000  unknown       unknown',
        "MACs unknown: the output size of 'conv' (Conv2D) is not fixed by the model's input shape (build the model for a fixed input size to count them)",
      ].join('\n'),
    );
  });

  it('formatAnalysis refuses what is not an analysis, saying what to pass (a prune report, a JSON string)', () => {
    const m = tfl.sequential({
      layers: [tfl.layers.dense({ inputShape: [3], units: 2, name: 'd1' }), tfl.layers.dense({ units: 2 })],
    });
    const a = analyze(m);
    const { model, report } = prune(m);
    const saved = JSON.parse(JSON.stringify(report));
    // Before: "Cannot read properties of undefined (reading 'params')" and "a.layers is not iterable".
    expect(() => formatAnalysis(saved)).toThrow(TypeError);
    expect(() => formatAnalysis(saved)).toThrow(
      'for a prune report, formatAnalysis({ layers: report.layersAfter, total: report.after })',
    );
    expect(() => formatAnalysis(JSON.stringify(a) as never)).toThrow(
      /got .*\(a string\): JSON.parse it first/,
    );
    expect(() => formatAnalysis(undefined as never)).toThrow(
      'formatAnalysis: expected an analysis { layers, total } as analyze(model) returns it (or read back from JSON), got undefined',
    );
    expect(() => formatAnalysis({ layers: a.layers } as never)).toThrow(
      /expected an analysis \{ layers, total \}/,
    );
    // The hint is right: the report's own counts make the table.
    expect(formatAnalysis({ layers: saved.layersAfter, total: saved.after })).toBe(analyze(model).table());
    m.dispose();
    model.dispose();
  });

  it('counts BatchNormalization parameters (4 per channel) without MACs', () => {
    const m = tfl.sequential({
      layers: [
        tfl.layers.conv2d({ inputShape: [5, 5, 1], filters: 4, kernelSize: 3, padding: 'same', name: 'c' }),
        tfl.layers.batchNormalization({ name: 'bn' }),
      ],
    });
    const bn = analyze(m).layers[1];
    expect([bn.params, bn.macs, bn.groups]).toEqual([16, 0, []]);
    expect(analyze(m).layers[0].macs).toBe(9 * 4 * 25);
  });

  // prune refuses these classes, so analyze is the only count a user gets for such a model.
  describe('counts the MACs of convolutions prune refuses instead of reporting 0', () => {
    const ones = () => tfl.initializers.ones();
    const zeroFirst = (m: tfl.LayersModel, layer: string, weight: string) =>
      editWeight(m, layer, weight, (v) => (v[0] = 0));

    it('Conv1D: k * cin * cout * output length, with filter and kernel groups', () => {
      const m = tfl.sequential({
        layers: [
          tfl.layers.conv1d({
            inputShape: [10, 3],
            filters: 4,
            kernelSize: 3,
            name: 'c',
            kernelInitializer: ones(),
          }),
        ],
      });
      zeroKernelWhere(m, 'c', (i, o) => i === 1 && o === 2); // one 1-D kernel: 3 weights
      const c = analyze(m).layers[0];
      expect([c.macs, c.nonzeroMacs, c.zeroGroupParams]).toEqual([3 * 3 * 4 * 8, (36 - 3) * 8, 3]);
      expect(c.groups).toEqual([
        { kind: 'filter', total: 4, dead: 0 },
        { kind: 'kernel', total: 12, dead: 1 },
      ]);
    });

    it('SeparableConv2D: depthwise plus pointwise MACs', () => {
      const m = tfl.sequential({
        layers: [
          tfl.layers.separableConv2d({
            inputShape: [6, 6, 4],
            filters: 6,
            kernelSize: 3,
            depthMultiplier: 2,
            name: 's',
            depthwiseInitializer: ones(),
            pointwiseInitializer: ones(),
          }),
        ],
      });
      zeroFirst(m, 's', 'pointwise_kernel');
      const s = analyze(m).layers[0];
      // output 4x4: depthwise 3*3*4*2 per position, pointwise (4*2)*6 per position
      expect([s.macs, s.nonzeroMacs]).toEqual([(72 + 48) * 16, (72 + 47) * 16]);
    });

    it('Conv2DTranspose: every kernel weight once per input position', () => {
      const m = tfl.sequential({
        layers: [
          tfl.layers.conv2dTranspose({
            inputShape: [4, 4, 4],
            filters: 2,
            kernelSize: 3,
            name: 't',
            kernelInitializer: ones(),
          }),
        ],
      });
      zeroFirst(m, 't', 'kernel');
      const t = analyze(m).layers[0];
      expect([t.macs, t.nonzeroMacs]).toEqual([3 * 3 * 2 * 4 * 16, (72 - 1) * 16]);
    });

    it('a layer with a kernel analyze cannot count (a recurrent layer) makes the MACs unknown, not 0', () => {
      const m = tfl.sequential({
        layers: [
          tfl.layers.simpleRNN({
            inputShape: [5, 3],
            units: 4,
            name: 'rnn',
            recurrentInitializer: 'glorotNormal',
          }),
          tfl.layers.dense({ units: 2, name: 'd' }),
        ],
      });
      const a = analyze(m);
      expect(a.layers[0].macs).toBeNaN();
      expect(a.layers[0].nonzeroMacs).toBeNaN();
      expect(a.layers[1].macs).toBe(8);
      expect(a.total.macs).toBeNaN();
      expect(a.table()).toMatch(/rnn +SimpleRNN +\d+ +\d+ +unknown +unknown/);
      expect(a.table()).toMatch(/\nMACs unknown: analyze does not count the MACs of 'rnn' \(SimpleRNN\)$/);
      // prune's report said 'the model does not fix its input size' of a model that does.
      const { model: pruned, report } = prune(m, { unknownLayers: 'keep' });
      expect(report.macsSpeedup).toBeNaN();
      expect(report.table()).toContain(
        "MACs unknown: analyze does not count the MACs of 'rnn' (SimpleRNN)\n",
      );
      pruned.dispose();
      m.dispose();
    });
  });

  it('gives each layer of a nested model its own row, named by path, and counts it like a flat model', () => {
    const block = tfl.sequential({
      name: 'block',
      layers: [
        tfl.layers.conv2d({ inputShape: [6, 6, 2], filters: 3, kernelSize: 3, name: 'conv' }),
        tfl.layers.flatten({ name: 'flat' }),
      ],
    });
    const x = tfl.input({ shape: [6, 6, 2] });
    const y = tfl.layers.dense({ units: 2, name: 'dense' }).apply(block.apply(x)) as tfl.SymbolicTensor;
    const nested = tfl.model({ inputs: x, outputs: y });
    zeroKernelWhere(block, 'conv', (_i, o) => o === 1);
    const flat = smallConvNet();
    flat.getLayer('conv').setWeights(block.getLayer('conv').getWeights());
    flat.getLayer('dense').setWeights(nested.getLayer('dense').getWeights());
    const a = analyze(nested);
    const b = analyze(flat);
    const rows = a.layers.filter((l) => l.className !== 'InputLayer'); // a functional model lists its input
    expect(rows.map((l) => l.name)).toEqual(['block/conv', 'block/flat', 'dense']);
    expect(rows.map((l) => ({ ...l, name: '' }))).toEqual(b.layers.map((l) => ({ ...l, name: '' })));
    expect(a.total).toEqual(b.total);
    expect(a.total.params).toBe(nested.countParams());
    expect(rows[0].groups.find((g) => g.kind === 'filter')?.dead).toBe(1);
    expect(a.table()).toContain('block/conv');
  });

  describe('counts a layer once per call the model makes: MACs per sample, weights once', () => {
    const ones = tfl.initializers.ones;

    it('a Conv2D applied to two inputs of different sizes: the positions of both calls', () => {
      const a = tfl.input({ shape: [8, 8, 3] });
      const b = tfl.input({ shape: [6, 6, 3] });
      const conv = tfl.layers.conv2d({ filters: 4, kernelSize: 3, name: 'tower', kernelInitializer: ones() });
      const pool = (t: tfl.SymbolicTensor) =>
        tfl.layers
          .globalAveragePooling2d({})
          .apply(conv.apply(t) as tfl.SymbolicTensor) as tfl.SymbolicTensor;
      const cat = tfl.layers.concatenate().apply([pool(a), pool(b)]) as tfl.SymbolicTensor;
      const out = tfl.layers.dense({ units: 2, name: 'out' }).apply(cat) as tfl.SymbolicTensor;
      const m = tfl.model({ inputs: [a, b], outputs: out });
      zeroKernelWhere(m, 'tower', (i, o) => i === 0 && o === 1);
      const t = analyze(m).layers.find((l) => l.name === 'tower')!;
      // 3x3x3x4 = 108 weights at 6x6 + 4x4 output positions; 9 of them zero.
      expect([t.params, t.macs, t.nonzeroMacs]).toEqual([108 + 4, 108 * 52, 99 * 52]);
      expect(t.groups).toEqual([
        { kind: 'filter', total: 4, dead: 0 },
        { kind: 'kernel', total: 12, dead: 1 },
      ]);
    });

    it('a Dense shared by two branches of one input, and a Dense applied to three inputs', () => {
      for (const calls of [2, 3]) {
        const xs = Array.from({ length: calls }, () => tfl.input({ shape: [5] }));
        const shared = tfl.layers.dense({ units: 4, name: 'shared' });
        const ys = xs.map((x) => shared.apply(x) as tfl.SymbolicTensor);
        const cat = tfl.layers.concatenate().apply(ys) as tfl.SymbolicTensor;
        const out = tfl.layers.dense({ units: 2, name: 'out' }).apply(cat) as tfl.SymbolicTensor;
        const m = tfl.model({ inputs: xs, outputs: out });
        zeroUnits(m, 'shared', [3]);
        const a = analyze(m);
        const s = a.layers.find((l) => l.name === 'shared')!;
        expect([s.params, s.macs, s.nonzeroMacs, s.zeroGroupParams]).toEqual([24, 20 * calls, 15 * calls, 5]);
        expect(a.total.macs).toBe(20 * calls + 4 * calls * 2);
      }
      const x = tfl.input({ shape: [6] });
      const h = tfl.layers.dense({ units: 6, name: 'h' });
      const twice = h.apply(h.apply(x)) as tfl.SymbolicTensor;
      expect(analyze(tfl.model({ inputs: x, outputs: twice })).layers[1].macs).toBe(72);
    });

    it('a nested model applied twice: each of its layers twice', () => {
      const block = tfl.sequential({
        name: 'block',
        layers: [
          tfl.layers.dense({ inputShape: [8], units: 4, name: 'b1' }),
          tfl.layers.dense({ units: 3, name: 'b2' }),
        ],
      });
      const a = tfl.input({ shape: [8] });
      const b = tfl.input({ shape: [8] });
      const cat = tfl.layers
        .concatenate()
        .apply([block.apply(a), block.apply(b)] as tfl.SymbolicTensor[]) as tfl.SymbolicTensor;
      const m = tfl.model({ inputs: [a, b], outputs: cat });
      const rows = analyze(m).layers.filter((l) => l.params);
      expect(rows.map((l) => [l.name, l.macs])).toEqual([
        ['block/b1', 64],
        ['block/b2', 24],
      ]);
    });

    it('a call of the layer in another model built on it does not count', () => {
      const x = tfl.input({ shape: [5] });
      const d = tfl.layers.dense({ units: 3, name: 'd' });
      const m = tfl.model({ inputs: x, outputs: d.apply(x) as tfl.SymbolicTensor });
      const other = tfl.input({ shape: [5] });
      tfl.model({ inputs: other, outputs: d.apply(other) as tfl.SymbolicTensor });
      expect(analyze(m).layers[1].macs).toBe(15);
    });
  });

  describe("counts the MACs of layers after a Reshape's -1, which tfjs leaves unknown (null)", () => {
    // tfjs 4.22 infers [null, null, 4] for a Conv1D after reshape([-1, 6]) of a known [4, 4, 6]:
    // analyze read that shape, and reported the MACs unknown (NaN) where the model fixes them.
    const conv = (filters: number): tfl.layers.Layer =>
      tfl.layers.conv2d({ inputShape: [4, 4, 3], filters, kernelSize: 1, name: 'c1' });
    /** c1 on [4, 4, 3], a nested model declared for `inputShape`: reshape [-1, 6] and Conv1D, then an outer Conv1D. */
    const nestedReshape = (inputShape: (number | null)[]): tfl.LayersModel => {
      const block = tfl.sequential({
        name: 'block',
        layers: [
          tfl.layers.reshape({ inputShape, targetShape: [-1, 6], name: 'r' }),
          tfl.layers.conv1d({ filters: 4, kernelSize: 3, name: 'conv1d' }),
        ],
      });
      const input = tfl.input({ shape: [4, 4, 3] });
      const c1 = tfl.layers.conv2d({ filters: 6, kernelSize: 1, name: 'c1' }).apply(input);
      const c3 = tfl.layers
        .conv1d({ filters: 2, kernelSize: 3, name: 'c3' })
        .apply(block.apply(c1) as tfl.SymbolicTensor) as tfl.SymbolicTensor;
      return tfl.model({ inputs: input, outputs: c3 });
    };
    const cases: {
      name: string;
      build(): tfl.LayersModel;
      /** Layer path -> MACs before, and after pruning c1's filters `dead`. */
      macs: [string, number, number][];
      dead: number[];
      keep?: boolean;
    }[] = [
      {
        name: '[4, 4, 6] -> [-1, 6] = [16, 6], a Conv1D of kernel 3 (14 positions)',
        build: () =>
          tfl.sequential({
            layers: [
              conv(6),
              tfl.layers.reshape({ targetShape: [-1, 6], name: 'r' }),
              tfl.layers.conv1d({ filters: 4, kernelSize: 3, name: 'conv1d' }),
              tfl.layers.globalAveragePooling1d({ name: 'gap' }),
              tfl.layers.dense({ units: 2, name: 'out' }),
            ],
          }),
        macs: [
          ['c1', 3 * 6 * 16, 3 * 5 * 16],
          ['conv1d', 3 * 6 * 4 * 14, 3 * 5 * 4 * 14],
          ['out', 8, 8],
        ],
        dead: [2],
      },
      {
        name: '[4, 4, 6] -> [-1, 12] = [8, 12], a Conv1D of kernel 2 (7 positions)',
        build: () =>
          tfl.sequential({
            layers: [
              conv(6),
              tfl.layers.reshape({ targetShape: [-1, 12], name: 'r' }),
              tfl.layers.conv1d({ filters: 3, kernelSize: 2, name: 'conv1d' }),
              tfl.layers.globalMaxPooling1d({ name: 'gmp' }),
            ],
          }),
        // c1's filter 0 dead: 2 of the 12 features per position gone.
        macs: [
          ['c1', 3 * 6 * 16, 3 * 5 * 16],
          ['conv1d', 2 * 12 * 3 * 7, 2 * 10 * 3 * 7],
        ],
        dead: [0],
      },
      {
        // Moves entries across channels: kept whole with unknownLayers 'keep', c1 with it.
        name: '[4, 4, 6] -> [-1, 8] = [12, 8], a Dense at each of the 12 positions',
        build: () =>
          tfl.sequential({
            layers: [
              conv(6),
              tfl.layers.reshape({ targetShape: [-1, 8], name: 'r' }),
              tfl.layers.dense({ units: 5, name: 'd' }),
            ],
          }),
        macs: [
          ['c1', 3 * 6 * 16, 3 * 6 * 16],
          ['d', 8 * 5 * 12, 8 * 5 * 12],
        ],
        dead: [1],
        keep: true,
      },
      {
        // The -1 inside a nested model, and a Conv1D after that model's call in the outer one.
        name: 'a nested [4, 4, 6] -> [-1, 6] and Conv1D, then an outer Conv1D of kernel 3 (12 positions)',
        build: () => nestedReshape([4, 4, 6]),
        macs: [
          ['c1', 3 * 6 * 16, 3 * 5 * 16],
          ['block/conv1d', 3 * 6 * 4 * 14, 3 * 5 * 4 * 14],
          ['c3', 3 * 4 * 2 * 12, 3 * 4 * 2 * 12],
        ],
        dead: [5],
      },
      // A nested model's layers at the shapes its call reads, not those its inputs declare: analyze
      // counted them at the declared ones (NaN for a model built for inputs of any size, too few
      // for smaller ones) where prune, which unnests, counted them at the call's.
      ...(
        [
          ['built for inputs of any size', [null, null, 6]],
          ['built for [2, 2, 6] inputs', [2, 2, 6]],
        ] as const
      ).map(([declared, inputShape]) => ({
        name: `a nested model ${declared}, called on [4, 4, 6]: its -1 is 16 (14 positions), not what its inputs declare`,
        build: () => nestedReshape([...inputShape]),
        macs: [
          ['c1', 3 * 6 * 16, 3 * 4 * 16],
          ['block/conv1d', 3 * 6 * 4 * 14, 3 * 4 * 4 * 14],
          ['c3', 3 * 4 * 2 * 12, 3 * 4 * 2 * 12],
        ] as [string, number, number][],
        dead: [0, 3],
      })),
    ];

    it.each(cases.map((c) => [c.name, c] as const))('%s', (_, c) => {
      const m = c.build();
      zeroUnits(m, 'c1', c.dead);
      const before = tf.memory().numTensors;
      const a = analyze(m);
      const macsOf = (ls: { name: string; macs: number }[], name: string) =>
        ls.find((l) => l.name === name)!.macs;
      expect(c.macs.map(([n]) => [n, macsOf(a.layers, n)])).toEqual(c.macs.map(([n, b]) => [n, b]));
      expect(a.total.macs).toBe(c.macs.reduce((t, [, b]) => t + b, 0));
      expect(a.table()).not.toMatch(/\bunknown\b|NaN/);
      const { model: pruned, report } = prune(m, c.keep ? { unknownLayers: 'keep' } : {});
      expect(report.before.macs).toBe(a.total.macs);
      expect(c.macs.map(([n]) => [n, macsOf(report.layersAfter, n)])).toEqual(
        c.macs.map(([n, , x]) => [n, x]),
      );
      expect(report.after.macs).toBe(c.macs.reduce((t, [, , x]) => t + x, 0));
      expect(Number.isFinite(report.macsSpeedup)).toBe(true);
      expect(report.table()).not.toMatch(/\bunknown\b|NaN/);
      const diff = outputDiff(m, pruned);
      expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
      pruned.dispose();
      expect(tf.memory().numTensors).toBe(before);
      m.dispose();
    });
  });

  it('counts a nested model of two inputs built for any length at its call, and a Reshape after it, as prune does', () => {
    // block: [n, 6] and [n, 6] -> concatenate [n, 12] -> reshape [-1, 24] -> Conv1D of kernel 2.
    // Called on [8, 6] twice: [4, 24], 3 positions; the outer reshape [-1, 9] of its [3, 3] is [1, 9].
    const a = tfl.input({ shape: [null, 6] });
    const b = tfl.input({ shape: [null, 6] });
    const cat = tfl.layers.concatenate({ name: 'cat' }).apply([a, b]) as tfl.SymbolicTensor;
    const r = tfl.layers.reshape({ targetShape: [-1, 24], name: 'r' }).apply(cat) as tfl.SymbolicTensor;
    const c = tfl.layers.conv1d({ filters: 3, kernelSize: 2, name: 'c' }).apply(r) as tfl.SymbolicTensor;
    const block = tfl.model({ inputs: [a, b], outputs: c, name: 'block' });
    const x = tfl.input({ shape: [8, 6] });
    const y = tfl.input({ shape: [8, 6] });
    const d1 = tfl.layers.dense({ units: 6, name: 'd1' }).apply(x) as tfl.SymbolicTensor;
    const d2 = tfl.layers.dense({ units: 6, name: 'd2' }).apply(y) as tfl.SymbolicTensor;
    const o = block.apply([d1, d2]) as tfl.SymbolicTensor;
    const r2 = tfl.layers.reshape({ targetShape: [-1, 9], name: 'r2' }).apply(o) as tfl.SymbolicTensor;
    const out = tfl.layers.conv1d({ filters: 2, kernelSize: 1, name: 'out' }).apply(r2) as tfl.SymbolicTensor;
    const m = tfl.model({ inputs: [x, y], outputs: out });
    zeroUnits(m, 'd1', [1]);
    const before = tf.memory().numTensors;
    const macs = (ls: { name: string; macs: number }[]) =>
      ls.filter((l) => l.macs).map((l) => [l.name, l.macs]);
    const counted = analyze(m);
    expect(macs(counted.layers)).toEqual([
      ['d1', 6 * 6 * 8],
      ['d2', 6 * 6 * 8],
      ['block/c', 2 * 24 * 3 * 3],
      ['out', 9 * 2],
    ]);
    const { model: pruned, report } = prune(m);
    expect(report.before.macs).toBe(counted.total.macs);
    // d1's unit 1 gone: 11 of the 12 channels concatenated, [4, 22] after the reshape.
    expect(macs(report.layersAfter)).toEqual([
      ['d1', 6 * 5 * 8],
      ['d2', 6 * 6 * 8],
      ['block/c', 2 * 22 * 3 * 3],
      ['out', 9 * 2],
    ]);
    const [want, got] = tf.tidy(() => {
      const inputs = [0, 1].map((i) => tf.randomNormal([3, 8, 6], 0, 1, 'float32', i));
      return [m, pruned].map((model) => (model.predict(inputs) as tf.Tensor).dataSync());
    });
    expect(got.length).toBe(3 * 2);
    const scale = Math.max(1, ...Array.from(want, Math.abs));
    for (let i = 0; i < want.length; i++)
      expect(Math.abs(got[i] - want[i])).toBeLessThanOrEqual(1e-5 * scale);
    pruned.dispose();
    expect(tf.memory().numTensors).toBe(before);
    m.dispose();
  });

  it.each([
    ['a model', false],
    ['a nested model built for inputs of any size', true],
  ])('counts a Conv1D after a Reshape and 3000 layers in %s without overflowing the stack', (_, nested) => {
    // The shapes after the Reshape were worked out recursively, a call per layer: analyze, and
    // prune's report, threw 'Maximum call stack size exceeded' on a chain of a few thousand.
    const chain = [
      tfl.layers.reshape({ targetShape: [-1, 6], ...(nested ? { inputShape: [null, null, 6] } : {}) }),
      ...Array.from({ length: 3000 }, () => tfl.layers.activation({ activation: 'relu' })),
      tfl.layers.conv1d({ filters: 4, kernelSize: 3, name: 'conv1d' }),
    ];
    const input = tfl.input({ shape: [4, 4, 3] });
    const c1 = tfl.layers
      .conv2d({ filters: 6, kernelSize: 1, name: 'c1' })
      .apply(input) as tfl.SymbolicTensor;
    const output = nested
      ? (tfl.sequential({ name: 'block', layers: chain }).apply(c1) as tfl.SymbolicTensor)
      : chain.reduce((x, l) => l.apply(x) as tfl.SymbolicTensor, c1);
    const m = tfl.model({ inputs: input, outputs: output });
    zeroUnits(m, 'c1', [2]);
    const before = tf.memory().numTensors;
    const conv1d = nested ? 'block/conv1d' : 'conv1d';
    const macs = (ls: { name: string; macs: number }[]) =>
      ls.filter((l) => l.macs).map((l) => [l.name, l.macs]);
    const counted = analyze(m);
    expect(macs(counted.layers)).toEqual([
      ['c1', 3 * 6 * 16],
      [conv1d, 3 * 6 * 4 * 14],
    ]);
    const { model: pruned, report } = prune(m);
    expect(report.before.macs).toBe(counted.total.macs);
    expect(macs(report.layersAfter)).toEqual([
      ['c1', 3 * 5 * 16],
      [conv1d, 3 * 5 * 4 * 14],
    ]);
    const diff = outputDiff(m, pruned);
    expect(diff.abs).toBeLessThanOrEqual(1e-5 * Math.max(1, diff.scale));
    pruned.dispose();
    expect(tf.memory().numTensors).toBe(before);
    m.dispose();
  });

  it('leaves MACs unknown (NaN), not one position, when the model does not fix its input size', () => {
    const m = tfl.sequential({
      layers: [
        tfl.layers.conv2d({ inputShape: [null, null, 3], filters: 8, kernelSize: 3, name: 'c1' }),
        tfl.layers.globalAveragePooling2d({}),
        tfl.layers.dense({ units: 4, name: 'd' }),
      ],
    });
    const a = analyze(m);
    expect(a.layers[0].macs).toBeNaN();
    expect(a.layers[0].params).toBe(3 * 3 * 3 * 8 + 8);
    expect(a.layers[2].macs).toBe(8 * 4);
    expect(a.total.macs).toBeNaN();
    expect(a.table()).toContain('unknown');
    // Read back from JSON (as the README offers), the unknown counts are null: the same table.
    expect(formatAnalysis(JSON.parse(JSON.stringify(a)))).toBe(a.table());
    zeroUnits(m, 'c1', [1]);
    const r = prune(m).report;
    expect(r.macsSpeedup).toBeNaN();
    expect(r.table()).toContain(
      "MACs unknown: the output size of 'c1' (Conv2D) is not fixed by the model's input shape (build the model for a fixed input size to count them)",
    );
    expect(a.table().split('\n').pop()).toBe(
      "MACs unknown: the output size of 'c1' (Conv2D) is not fixed by the model's input shape (build the model for a fixed input size to count them)",
    );
  });

  it('refuses a model holding NaN or an infinity, naming the layer, the weight and the entry', () => {
    // |NaN| > threshold is false: a NaN unit used to count as dead, and a diverged model was
    // reported compressed (10.67%, 1.14x fewer MACs for an 8-6-3 MLP with one NaN neuron).
    // The fields of the NonFiniteWeightError thrown: [class, count, index, value].
    const cases: [string, string, (v: Float32Array) => void, RegExp, [string, number, number[], number]][] = [
      [
        'dense',
        'kernel',
        (v) => v.fill(NaN, 0, 2),
        /layer 'dense' \(Dense\) has 2 non-finite values in weight 'dense\/kernel' \(the first, at \[0,0\], is NaN\)/,
        ['Dense', 2, [0, 0], NaN],
      ],
      [
        'conv',
        'kernel',
        (v) => (v[3 * 2 * 3 + 5] = Infinity),
        /layer 'conv' \(Conv2D\) has 1 non-finite value in weight 'conv\/kernel' \(the first, at \[1,0,1,2\], is Infinity\)/,
        ['Conv2D', 1, [1, 0, 1, 2], Infinity],
      ],
      [
        'conv',
        'bias',
        (v) => (v[1] = -Infinity),
        /layer 'conv' \(Conv2D\) has 1 non-finite value in weight 'conv\/bias' \(the first, at \[1\], is -Infinity\)/,
        ['Conv2D', 1, [1], -Infinity],
      ],
    ];
    // The class surgery exports is the one of @normprune/layers, which decompose throws too.
    expect(NonFiniteWeightError).toBe(layers.NonFiniteWeightError);
    for (const [layer, weight, edit, message, [className, count, index, value]] of cases) {
      const m = smallConvNet();
      editWeight(m, layer, weight, edit);
      const before = tf.memory().numTensors;
      for (const run of [() => analyze(m), () => prune(m), () => prune(m, { threshold: 0.5 })]) {
        expect(run).toThrow(message);
        expect(run).toThrow(
          /^surgery: .*: no weight can be told zero or not. The model has diverged or its weights are corrupt/,
        );
        expect(run).toThrow(NonFiniteWeightError);
        expect(run).toThrow(
          expect.objectContaining({
            name: 'NonFiniteWeightError',
            code: 'non-finite',
            layer,
            className,
            weight: `${layer}/${weight}`,
            count,
            index,
            value,
          }),
        );
      }
      expect(tf.memory().numTensors).toBe(before);
      m.dispose();
    }
  });

  it("names the decomposed layer's own weight, not the folded kernel surgery made of it", () => {
    // [layer, weight, entry set to NaN (flat index)]: the error's [weight, index].
    const cases: [string, string, number, string, number[]][] = [
      ['conv', 'magnitude', 4, 'conv/magnitude', [1, 1]],
      ['dense', 'direction', 7, 'dense/direction', [3, 1]],
      ['dense', 'bias', 1, 'dense/bias', [1]],
    ];
    for (const [layer, weight, at, name, index] of cases) {
      const dec = layers.decompose(smallConvNet(), { granularity: { conv2d: 'kernel' } });
      const w = dec.getLayer(layer).weights.find((v) => v.originalName === `${layer}/${weight}`)!;
      const values = Float32Array.from(w.read().dataSync());
      values[at] = NaN;
      tf.tidy(() => (w.read() as tf.Variable).assign(tf.tensor(values, w.shape as number[])));
      const before = tf.memory().numTensors;
      for (const run of [() => analyze(dec), () => prune(dec)]) {
        expect(run).toThrow(
          expect.objectContaining({
            code: 'non-finite',
            layer,
            className: layer === 'conv' ? 'DecomposedConv2D' : 'DecomposedDense',
            weight: name,
            count: 1,
            index,
          }),
        );
        expect(run).toThrow(
          new RegExp(
            `^surgery: layer '${layer}' \\(Decomposed\\w+\\) has 1 non-finite value in weight '${name}' .*: no weight can be told zero or not`,
          ),
        );
      }
      expect(tf.memory().numTensors).toBe(before);
      dec.dispose();
    }
  });

  it('refuses a threshold that is not a finite number >= 0, and what is not a model', () => {
    const m = smallConvNet();
    for (const t of [-1, NaN, Infinity]) {
      expect(() => analyze(m, { threshold: t })).toThrow(/analyze: threshold must be a finite number >= 0/);
      expect(() => prune(m, { threshold: t })).toThrow(/prune: threshold must be a finite number >= 0/);
    }
    expect(() => prune(m, { threshold: '0' as never })).toThrow(/got "0" \(a string\)/);
    expect(() => analyze(m.layers[0] as never)).toThrow(
      /analyze: expected a tfjs LayersModel .*got an object/,
    );
    expect(() => prune(null as never)).toThrow(/prune: expected a tfjs LayersModel .*got null/);
    expect(() => kernelMask(m.layers[0] as never)).toThrow(
      /kernelMask: expected a tfjs LayersModel .*got an object/,
    );
    expect(() => kernelMask(null as never)).toThrow(/kernelMask: expected a tfjs LayersModel .*got null/);
    expect(() => prune(tfl.sequential({ name: 'empty' }))).toThrow(
      /surgery: model 'empty' has no layers yet \(an empty tf.sequential\(\)\); add its layers first/,
    );
  });
});
