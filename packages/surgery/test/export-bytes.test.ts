// exportModel reads the weights one at a time and hands fileSystem one buffer
// per weight (on the cpu backend the weights' own buffers): no model.save
// (which joins copies of every weight), no split copies, no joined copy. The
// files are byte for byte those of the previous version.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { decompose, fold } from '@normprune/layers';
import { fileSystem } from '@normprune/runtime';
import { exportModel, loadSparseModel, prune } from '../src/index';
import { modelArtifacts } from '../src/export';
import { expectNoLeak } from '../../../tools/testing/leaks';
import { goldenModels } from './export-bytes-models';
import { saveInMemory } from '../../../tools/testing/memory-io.js';

let tmp: string;
let counter = 0;
const fresh = () => path.join(tmp, `e${counter++}`);

beforeAll(async () => {
  await tf.setBackend('cpu');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-export-bytes-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
afterEach(() => jest.restoreAllMocks());

const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

function joined(data: tf.io.WeightData): Buffer {
  return Buffer.concat((Array.isArray(data) ? data : [data]).map((b) => new Uint8Array(b)));
}

/** Files the previous exportModel wrote for goldenModels(), on the cpu backend (sha-256). */
const GOLDEN: Record<string, string> = {
  'dense tfjs|group1-shard1of2.bin': '2ee76bb08d7e5bd137e3543ff028a5519db889ae9995624fa7d05ca5bb771878',
  'dense tfjs|group1-shard2of2.bin': 'dec1dd22d77db7c7c53198927ccdcb5d39f45118717b52efb442af2771366b80',
  'dense tfjs float16|group1-shard1of1.bin':
    '15ffc3bd9b7dadd26129f656da96ade00cf199ec060743e6b9691cf7d520ec4e',
  'dense sparse|sparse.bin': 'ff6f072f3db6b4891dc487f179147d73bf4582e09f1e713e6c9b7f8ce45bb6a1',
  'dense sparse|sparse.json': 'b31d67aa089f0b9dcbf45b998f20c1e4e42c92dbc93cd02751d8b96215f23c09',
  'dense sparse float16|sparse.bin': '059fb4525536d6f2f90b42f14aa57f2c3bb01fcdb030c0419226047f09fac7c4',
  'dense sparse float16|sparse.json': '8f1b2c502330af10388ca08a62cd991f5ba5bac0a775269ddebb6c2d290cf087',
  'conv tfjs|group1-shard1of1.bin': '5b8ab7b2bf900d6d8b0e6b506ccf0c6327711e2351c72a76c49760d6b53edb7b',
  'conv tfjs float16|group1-shard1of1.bin':
    '9869a4b726a10c759eaa7cf2bf8ad3c77712399b3c2c2148cd09968b4edc816e',
  'conv sparse|sparse.bin': '23a7dee4e05fa108f36941c32fde00ca713456380445b3eb7de79d4a1bd39c8b',
  'conv sparse|sparse.json': 'c8c4a6ad364ac022bda9c0379dbf62d7f33a3e6e548bc0817f27d952acb369f1',
  'conv sparse float16|sparse.bin': 'b68af3377a7f344e3727909328c4460ac96c0d35d55bc09a72182da0ebc4b8a5',
  'conv sparse float16|sparse.json': '444ca14720cb361de3fd592faab4796920e485e93dc5d1bdf4ae506926173d73',
};

describe('exportModel writes the same files as before', () => {
  it.each(['dense', 'conv'])('%s: every format, float32 and float16', async (name) => {
    const model = goldenModels().find(([n]) => n === name)![1];
    const reference = fresh();
    await model.save(fileSystem(reference));
    const referenceJson = fs.readFileSync(path.join(reference, 'model.json'), 'utf8');
    for (const format of ['tfjs', 'sparse'] as const) {
      for (const float16 of [false, true]) {
        const dir = fresh();
        await expectNoLeak(() => exportModel(model, dir, { format, float16 }));
        const label = `${name} ${format}${float16 ? ' float16' : ''}`;
        const want = Object.keys(GOLDEN).filter((k) => k.startsWith(`${label}|`));
        const files = fs.readdirSync(dir).sort();
        expect(files.filter((f) => f !== 'model.json')).toEqual(
          want.map((k) => k.slice(label.length + 1)).sort(),
        );
        for (const f of files)
          if (f !== 'model.json') expect(sha256(path.join(dir, f))).toBe(GOLDEN[`${label}|${f}`]);
        // model.json names the tfjs version, so it is compared with what model.save writes through it.
        const json = fs.readFileSync(path.join(dir, 'model.json'), 'utf8');
        const expected = JSON.parse(referenceJson);
        if (format === 'sparse') {
          expect(JSON.parse(json)).toEqual({
            modelTopology: expected.modelTopology,
            format: expected.format,
            generatedBy: expected.generatedBy,
            convertedBy:
              'normprune-surgery (sparse weights in sparse.json / sparse.bin: load with loadSparseModel)',
            weightsManifest: [],
          });
        } else {
          if (float16) {
            // Half the bytes: the golden shards, and each entry says float16.
            expected.weightsManifest[0].paths = want.map((k) => k.slice(label.length + 1)).sort();
            for (const w of expected.weightsManifest[0].weights) w.quantization = { dtype: 'float16' };
          }
          expect(json).toBe(JSON.stringify(expected));
          if (!float16) {
            for (const f of files) expect(sha256(path.join(dir, f))).toBe(sha256(path.join(reference, f)));
          }
        }
      }
    }
    model.dispose();
  });

  it('the models load back with the weights they had', async () => {
    for (const [, model] of goldenModels()) {
      const a = fresh();
      const b = fresh();
      await exportModel(model, a);
      await exportModel(model, b, { format: 'sparse' });
      const loaded = [await tfl.loadLayersModel(fileSystem(a)), await loadSparseModel(b)];
      for (const m of loaded) {
        const [want, got] = [model.getWeights(), m.getWeights()];
        expect(got.length).toBe(want.length);
        for (let i = 0; i < want.length; i++)
          expect(
            Buffer.compare(Buffer.from(got[i].dataSync().buffer), Buffer.from(want[i].dataSync().buffer)),
          ).toBe(0);
        m.dispose();
      }
      model.dispose();
    }
  });
});

describe('modelArtifacts is what model.save hands a handler, without reading the weights', () => {
  function functional(): tfl.LayersModel {
    const input = tfl.input({ shape: [6] });
    const a = tfl.layers
      .dense({ units: 4, activation: 'tanh', name: 'left' })
      .apply(input) as tfl.SymbolicTensor;
    const b = tfl.layers.dense({ units: 5, name: 'right' }).apply(input) as tfl.SymbolicTensor;
    const joinedOut = tfl.layers.concatenate().apply([a, b]) as tfl.SymbolicTensor;
    const out = tfl.layers.dense({ units: 2, name: 'out' }).apply(joinedOut) as tfl.SymbolicTensor;
    const m = tfl.model({ inputs: input, outputs: out });
    m.setUserDefinedMetadata({ note: 'kept', n: 3 });
    return m;
  }

  const cases: [string, () => tfl.LayersModel][] = [
    ['dense, 2 shards', () => goldenModels()[0][1]],
    ['conv + batch norm (non-trainable weights)', () => goldenModels()[1][1]],
    ['functional with user metadata', functional],
    [
      'a folded decomposed model',
      () =>
        fold(
          decompose(
            tfl.sequential({
              layers: [tfl.layers.dense({ inputShape: [5], units: 7 }), tfl.layers.dense({ units: 3 })],
            }),
          ),
        ),
    ],
  ];

  it.each(cases)('%s', async (_label, make) => {
    const model = make();
    const want = await saveInMemory(model);
    const tensors = tf.memory().numTensors;
    const { artifacts, weights } = modelArtifacts(model);
    expect(tf.memory().numTensors).toBe(tensors);
    const { weightData, weightSpecs, ...rest } = want;
    expect(artifacts).toEqual(rest);
    expect(weights.map((w) => w.spec)).toEqual(weightSpecs);
    // The tensors are the model's own (nothing copied), with model.save's bytes.
    const values = Buffer.concat(weights.map((w) => new Uint8Array(w.tensor.dataSync().buffer)));
    expect(Buffer.compare(values, joined(weightData!))).toBe(0);
    model.dispose();
  });

  it('refuses a weight that is not float32, naming it, before writing anything', async () => {
    const model = goldenModels()[1][1];
    // Layers make float32 weights; an int32 one stands in for any other dtype.
    const int = tf.tensor([1, 2], [2], 'int32');
    const real = model.getWeights();
    jest.spyOn(model, 'getWeights').mockReturnValue([real[0], int, ...real.slice(2)]);
    const dir = fresh();
    await expect(exportModel(model, dir)).rejects.toThrow(
      "exportModel: weight 'conv1/bias' is int32; only float32 weights are supported",
    );
    expect(fs.existsSync(dir)).toBe(false);
    int.dispose();
    model.dispose();
  });
});

describe('exportModel copies no weights on the cpu backend', () => {
  it.each(['tfjs', 'sparse'] as const)(
    '%s (float32): every byte written is a view of a weight',
    async (format) => {
      const model = goldenModels()[0][1];
      const own = new Set<ArrayBufferLike>(model.getWeights().map((w) => w.dataSync().buffer));
      const handle = await fs.promises.open(path.join(tmp, 'probe'), 'w');
      const proto = Object.getPrototypeOf(handle) as { writeFile: (...a: unknown[]) => Promise<void> };
      await handle.close();
      const writeFile = proto.writeFile;
      const views: Uint8Array[] = [];
      jest.spyOn(proto, 'writeFile').mockImplementation(function (this: unknown, ...a: unknown[]) {
        if (a[0] instanceof Uint8Array) views.push(a[0]);
        return writeFile.apply(this, a);
      });
      const dir = fresh();
      await exportModel(model, dir, { format });
      const bytes = views.reduce((n, v) => n + v.byteLength, 0);
      const fromWeights = views.filter((v) => own.has(v.buffer)).reduce((n, v) => n + v.byteLength, 0);
      if (format === 'tfjs') {
        // All 4.4 MB of weights, each written from the weight's own buffer.
        expect(bytes).toBe(4 * (1100 * 1000 + 1000 + 1000 * 10 + 10));
        expect(fromWeights).toBe(bytes);
      } else {
        // Weights stored 'dense' are written from their own buffers; a 'bitmask'
        // record (mask and live groups) is new, and smaller.
        const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'sparse.json'), 'utf8'));
        const dense = manifest.weights
          .filter((w: { encoding: string }) => w.encoding === 'dense')
          .reduce((n: number, w: { values: number }) => n + 4 * w.values, 0);
        expect(dense).toBeGreaterThan(0);
        expect(fromWeights).toBe(dense);
      }
      model.dispose();
    },
  );
});

// On wasm every read of a weight is a copy out of the heap, and a weight read twice (once by
// the checks, again to write it) was held twice, the first copy dead until V8 collected it.
describe('exportModel reads each weight out of the backend once', () => {
  function countReads(): Map<unknown, number> {
    const reads = new Map<unknown, number>();
    const engine = tf.engine();
    const count = (dataId: unknown) => reads.set(dataId, (reads.get(dataId) ?? 0) + 1);
    const readSync = engine.readSync.bind(engine);
    const read = engine.read.bind(engine);
    jest.spyOn(engine, 'readSync').mockImplementation((dataId) => (count(dataId), readSync(dataId)));
    jest.spyOn(engine, 'read').mockImplementation((dataId) => (count(dataId), read(dataId)));
    return reads;
  }

  it.each([
    ['tfjs', false],
    ['tfjs', true],
    ['sparse', false],
    ['sparse', true],
  ] as const)('%s, float16 %s: every weight written once, from that one read', async (format, float16) => {
    const model = goldenModels()[1][1];
    const ids = model.weights.map((w) => w.read().dataId);
    const reads = countReads();
    await exportModel(model, fresh(), { format, float16 });
    expect(ids.map((id) => reads.get(id))).toEqual(ids.map(() => 1));
    expect([...reads.values()].every((n) => n === 1)).toBe(true);
    model.dispose();
  });

  it.each([false, true])(
    'a decomposed model, float16 %s: its own weights checked once, the fold read once (its biases, shared, twice)',
    async (float16) => {
      const plain = tfl.sequential({
        layers: [
          tfl.layers.dense({ inputShape: [6], units: 5, name: 'd1' }),
          tfl.layers.dense({ units: 3, name: 'd2' }),
        ],
      });
      const model = decompose(plain);
      plain.dispose();
      const own = model.weights.map((w) => [w.originalName, w.read().dataId] as const);
      const reads = countReads();
      await exportModel(model, fresh(), { float16 });
      // The fold's kernels are tensors of their own, read once each; its biases are clones of
      // the model's (one dataId), read by the check and again to be written.
      expect(own.map(([name, id]) => [name, reads.get(id)])).toEqual(
        own.map(([name]) => [name, /\/bias$/.test(name) ? 2 : 1]),
      );
      const ownIds = new Set<unknown>(own.map(([, id]) => id));
      const fold = [...reads].filter(([id]) => !ownIds.has(id));
      expect(fold.length).toBe(own.filter(([name]) => !/\/bias$/.test(name)).length / 2);
      expect(fold.every(([, n]) => n === 1)).toBe(true);
      model.dispose();
    },
  );
});

// The README's "Which is smaller": 'sparse' leaves out zero groups at a bit each but carries a
// larger manifest, so in the same precision it is larger when no zero group is left (every zero
// was in a whole filter, which prune removed) and smaller when dead 2-D kernels are.
describe("'sparse' against 'tfjs' in the same precision", () => {
  function convNet(deadKernels: boolean): tfl.LayersModel {
    const m = tfl.sequential({
      layers: [
        tfl.layers.conv2d({ inputShape: [8, 8, 3], filters: 8, kernelSize: 3, name: 'c1' }),
        tfl.layers.conv2d({ filters: 32, kernelSize: 3, name: 'c2' }),
        tfl.layers.flatten(),
        tfl.layers.dense({ units: 4, name: 'out' }),
      ],
    });
    const c2 = m.getLayer('c2');
    const [kernel, bias] = c2.getWeights();
    const v = kernel.dataSync().slice();
    // Filters 0-3 dead whole; with deadKernels, also every 2-D kernel [:, :, i, o] with (i + o) even.
    v.forEach((_, p) => {
      const o = p % 32;
      const i = Math.floor(p / 32) % 8;
      if (o < 4 || (deadKernels && (i + o) % 2 === 0)) v[p] = 0;
    });
    const t = tf.tensor(v, kernel.shape);
    c2.setWeights([t, bias]);
    t.dispose();
    return m;
  }

  it.each([
    ['larger when prune removed every zero', false],
    ['smaller when dead 2-D kernels are left', true],
  ])('%s', async (_, deadKernels) => {
    const before = tf.memory().numTensors;
    const m = convNet(deadKernels);
    const { model: pruned } = prune(m);
    m.dispose();
    for (const float16 of [false, true]) {
      const tfjs = (await exportModel(pruned, fresh(), { float16 })).bytes;
      const sparse = (await exportModel(pruned, fresh(), { format: 'sparse', float16 })).bytes;
      if (deadKernels) expect(sparse).toBeLessThan(0.85 * tfjs);
      else {
        expect(sparse).toBeGreaterThan(tfjs);
        expect(sparse - tfjs).toBeLessThan(1000); // the manifest: about 80 bytes per weight
      }
    }
    pruned.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
