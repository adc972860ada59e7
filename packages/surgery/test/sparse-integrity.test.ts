// A sparse export's sparse.json and sparse.bin must agree byte for byte: records that overlap,
// leave gaps, or end before the data file does read some other bytes as weights.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decompose } from '@normprune/layers';
import { fileSystem } from '@normprune/runtime';
import { exportModel, loadSparseModel, ModelFileError, NonFiniteWeightError, prune } from '../src/index';
import { zeroKernelWhere } from './helpers';

let tmp: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-surgery-integrity-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Models whose sparse export holds 'bitmask' and 'dense' records. */
const models: [string, () => tfl.LayersModel][] = [
  [
    'an MLP',
    () => {
      const m = tfl.sequential({
        layers: [
          tfl.layers.dense({ inputShape: [5], units: 7, name: 'h' }),
          tfl.layers.dense({ units: 3, name: 'o' }),
        ],
      });
      zeroKernelWhere(m, 'h', (i, o) => (i + o) % 2 === 0);
      return m;
    },
  ],
  [
    'a CNN',
    () => {
      const m = tfl.sequential({
        layers: [
          tfl.layers.conv2d({ inputShape: [6, 6, 3], filters: 4, kernelSize: 3, name: 'c' }),
          tfl.layers.flatten(),
          tfl.layers.dense({ units: 2, name: 'o' }),
        ],
      });
      zeroKernelWhere(m, 'c', (i, o) => i !== o);
      return m;
    },
  ],
];

async function exported(name: string, make: () => tfl.LayersModel, float16: boolean) {
  const model = make();
  const dir = path.join(tmp, `${name.replace(/\W/g, '-')}-${float16}-${Math.random().toString(36).slice(2)}`);
  await exportModel(model, dir, { format: 'sparse', float16 });
  model.dispose();
  const manifestFile = path.join(dir, 'sparse.json');
  return {
    dir,
    manifestFile,
    dataFile: path.join(dir, 'sparse.bin'),
    manifest: JSON.parse(fs.readFileSync(manifestFile, 'utf8')),
  };
}

async function refusal(dir: string): Promise<ModelFileError> {
  const before = tf.memory().numTensors;
  const e = await loadSparseModel(dir).catch((err: unknown) => err);
  expect(tf.memory().numTensors).toBe(before);
  expect(e).toBeInstanceOf(ModelFileError);
  return e as ModelFileError;
}

describe.each(models)('loadSparseModel of %s: sparse.bin and sparse.json must agree', (name, make) => {
  it.each([false, true])('loads the undamaged export (float16 %s)', async (float16) => {
    const { dir } = await exported(name, make, float16);
    const before = tf.memory().numTensors;
    const model = await loadSparseModel(dir);
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it.each([false, true])(
    'refuses a data file longer than its records, naming it (float16 %s)',
    async (float16) => {
      const { dir, dataFile, manifest } = await exported(name, make, float16);
      const last = manifest.weights[manifest.weights.length - 1];
      const end = last.offset + last.maskBytes + last.values * (float16 ? 2 : 4);
      expect(fs.statSync(dataFile).size).toBe(end);
      fs.appendFileSync(dataFile, Buffer.alloc(8, 0x3f));
      const e = await refusal(dir);
      expect(e).toMatchObject({ code: 'damaged', file: dataFile });
      expect(e.message).toBe(
        `loadSparseModel: ${dataFile} has ${end + 8} bytes, but the weights its manifest lists end at byte ${end}: ` +
          'it is not the data file of that manifest (one from another export?): copy or export the model again',
      );
    },
  );

  it('refuses the data file of another, larger export of the same layers', async () => {
    const small = await exported(name, make, true);
    const large = await exported(name, make, false);
    fs.copyFileSync(large.dataFile, small.dataFile);
    const e = await refusal(small.dir);
    expect(e.file === small.dataFile || e.file === small.manifestFile).toBe(true);
    expect(e.code).toBe('damaged');
  });

  it.each<[string, (ws: { offset: number }[]) => void, (ws: { offset: number }[]) => string]>([
    [
      'overlapping records',
      (ws) => (ws[1].offset = 0),
      (ws) => `the records before it end at byte ${ws[1].offset}`,
    ],
    ['a gap between records', (ws) => (ws[1].offset += 1), () => 'the records before it end at byte'],
    ['a first record not at byte 0', (ws) => (ws[0].offset = 4), () => 'the first record starts at byte 0'],
  ])('refuses %s, naming sparse.json', async (_, edit, says) => {
    const { dir, manifestFile, manifest } = await exported(name, make, false);
    const original = manifest.weights.map((w: { offset: number }) => ({ ...w }));
    edit(manifest.weights);
    fs.writeFileSync(manifestFile, JSON.stringify(manifest));
    const e = await refusal(dir);
    expect(e).toMatchObject({ code: 'damaged', file: manifestFile });
    expect(e.message).toContain(says(original));
    expect(e.message).toContain('(each weight follows the one before it); export the model again');
  });
});

describe("a 'sparse' export keeps the model's userDefinedMetadata, as a 'tfjs' one does", () => {
  const metadata: [string, Record<string, unknown>][] = [
    ['class labels', { labels: ['cat', 'dog', 'émeu'] }],
    ['nested preprocessing', { preprocess: { mean: [0.5, 0.25], std: 2 }, version: 3, ok: true }],
  ];
  it.each(models.flatMap(([name, make]) => metadata.map(([what, m]) => [name, what, make, m] as const)))(
    '%s with %s',
    async (_name, _what, make, meta) => {
      const model = make();
      model.setUserDefinedMetadata(meta);
      const dir = path.join(tmp, `meta-${Math.random().toString(36).slice(2)}`);
      await exportModel(model, dir, { format: 'sparse', float16: true });
      model.dispose();
      const before = tf.memory().numTensors;
      const again = await loadSparseModel(dir);
      expect(again.getUserDefinedMetadata()).toEqual(meta);
      again.dispose();
      expect(tf.memory().numTensors).toBe(before);
    },
  );

  it.each(models)(
    '%s: through decompose, prune and exportModel of the decomposed model, both formats',
    async (_name, make) => {
      const meta = { labels: ['cat', 'dog'], preprocess: { scale: 1 / 255 } };
      const model = make();
      model.setUserDefinedMetadata(meta);
      const dec = decompose(model);
      const { model: pruned } = prune(dec);
      expect([dec.getUserDefinedMetadata(), pruned.getUserDefinedMetadata()]).toEqual([meta, meta]);
      for (const format of ['tfjs', 'sparse'] as const) {
        // exportModel folds the decomposed model: the folded copy keeps the metadata too.
        const dir = path.join(tmp, `meta-dec-${format}-${Math.random().toString(36).slice(2)}`);
        await exportModel(dec, dir, { format });
        const before = tf.memory().numTensors;
        const again =
          format === 'tfjs' ? await tfl.loadLayersModel(fileSystem(dir)) : await loadSparseModel(dir);
        expect(again.getUserDefinedMetadata()).toEqual(meta);
        again.dispose();
        expect(tf.memory().numTensors).toBe(before);
      }
      for (const m of [model, dec, pruned]) m.dispose();
    },
  );

  it('a model without metadata loads without it', async () => {
    const model = models[0][1]();
    const dir = path.join(tmp, `meta-none-${Math.random().toString(36).slice(2)}`);
    await exportModel(model, dir, { format: 'sparse' });
    model.dispose();
    expect('userDefinedMetadata' in JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'))).toBe(
      false,
    );
    const again = await loadSparseModel(dir);
    expect(again.getUserDefinedMetadata()).toBeUndefined();
    again.dispose();
  });

  it.each([
    ['a string', '"labels"'],
    ['an array', '["cat"]'],
  ])('refuses metadata that is %s, naming model.json, and frees the model', async (_, text) => {
    const model = models[1][1]();
    const dir = path.join(tmp, `meta-bad-${Math.random().toString(36).slice(2)}`);
    await exportModel(model, dir, { format: 'sparse' });
    model.dispose();
    const modelFile = path.join(dir, 'model.json');
    const json = JSON.parse(fs.readFileSync(modelFile, 'utf8'));
    fs.writeFileSync(modelFile, JSON.stringify({ ...json, userDefinedMetadata: JSON.parse(text) }));
    const e = await refusal(dir);
    expect(e).toMatchObject({ code: 'damaged', file: modelFile });
    expect(e.message).toMatch(
      new RegExp(
        `^loadSparseModel: the "userDefinedMetadata" of ${modelFile.replace(/[.\\/]/g, '\\$&')} is not what tfjs takes \\(.+\\); export the model again$`,
      ),
    );
  });
});

describe('a sparse.json of a later format version', () => {
  /** A 'sparse' export of `make()` whose sparse.json says `version`. */
  const exportedAs = async (make: () => tfl.LayersModel, version: unknown) => {
    const model = make();
    const dir = path.join(tmp, `version-${Math.random().toString(36).slice(2)}`);
    await exportModel(model, dir, { format: 'sparse' });
    model.dispose();
    const manifestFile = path.join(dir, 'sparse.json');
    const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8'));
    fs.writeFileSync(manifestFile, JSON.stringify({ ...manifest, version }));
    return { dir, manifestFile };
  };

  it.each(models.flatMap(([name, make]) => [2, 7].map((v) => [name, v, make] as const)))(
    '%s, version %s: refused as unsupported, saying to upgrade, naming sparse.json',
    async (_name, version, make) => {
      const { dir, manifestFile } = await exportedAs(make, version);
      const e = await refusal(dir);
      expect(e).toMatchObject({ code: 'unsupported', file: manifestFile });
      expect(e.message).toBe(
        `loadSparseModel: ${manifestFile} is a normprune-sparse v${version} manifest, written by a newer ` +
          '@normprune/surgery; this version reads v1 only: upgrade @normprune/surgery to load it',
      );
    },
  );

  it.each([0, 1.5, '2', null])('version %p is still a damaged manifest', async (version) => {
    const { dir, manifestFile } = await exportedAs(models[0][1], version);
    const e = await refusal(dir);
    expect(e).toMatchObject({ code: 'damaged', file: manifestFile });
    expect(e.message).toBe(`loadSparseModel: ${manifestFile} is not a normprune-sparse v1 manifest`);
  });
});

describe('exportModel refuses a model holding a NaN or an infinity, as analyze and prune do', () => {
  const put = (model: tfl.LayersModel, weight: string, at: number, value: number) => {
    const w = model.weights.find((v) => v.originalName === weight)!;
    const values = Float32Array.from(w.read().dataSync());
    values[at] = value;
    tf.tidy(() => (w.read() as tf.Variable).assign(tf.tensor(values, w.shape as number[])));
  };
  it.each(
    models.flatMap(([name, make]) =>
      (['tfjs', 'sparse'] as const).flatMap((format) =>
        [NaN, Infinity, -Infinity].map((value) => [name, format, String(value), make, value] as const),
      ),
    ),
  )('%s, %s format, %s', async (_name, format, _v, make, value) => {
    for (const [decomposed, float16] of [
      [false, false],
      [false, true],
      [true, false],
    ]) {
      const plain = make();
      const model = decomposed ? decompose(plain) : plain;
      const first = model.layers.find((l) => l.weights.length > 0)!;
      // A decomposed layer names its own weight (the magnitude), not surgery's folded kernel.
      const weight = decomposed ? `${first.name}/magnitude` : `${first.name}/kernel`;
      put(model, weight, 1, value);
      const dir = path.join(tmp, `nonfinite-${Math.random().toString(36).slice(2)}`);
      const before = tf.memory().numTensors;
      const e = (await exportModel(model, dir, { format, float16 }).catch((x) => x)) as NonFiniteWeightError;
      expect(e).toBeInstanceOf(NonFiniteWeightError);
      expect([e.weight, e.count, e.caller]).toEqual([weight, 1, 'exportModel']);
      expect(e.message).toMatch(
        /^exportModel: layer .* an export would load as a model whose outputs are NaN/,
      );
      expect(tf.memory().numTensors).toBe(before);
      // Nothing is written.
      expect(fs.existsSync(dir)).toBe(false);
      model.dispose();
      if (decomposed) plain.dispose();
    }
  });
});

describe('float16 refuses a weight past half precision, before a file or folder is written', () => {
  it.each(
    models.flatMap(([name, make]) => (['tfjs', 'sparse'] as const).map((f) => [name, f, make] as const)),
  )('%s, %s format', async (_name, format, make) => {
    for (const value of [70000, -1e9]) {
      const model = make();
      const w = model.weights.find((v) => v.originalName.endsWith('/kernel'))!;
      const values = Float32Array.from(w.read().dataSync());
      values[2] = value;
      tf.tidy(() => (w.read() as tf.Variable).assign(tf.tensor(values, w.shape as number[])));
      const dir = path.join(tmp, `f16-range-${Math.random().toString(36).slice(2)}`);
      const before = tf.memory().numTensors;
      const e = (await exportModel(model, dir, { format, float16: true }).catch((x) => x)) as ModelFileError;
      expect(e).toBeInstanceOf(ModelFileError);
      expect([e.code, e.file]).toEqual(['invalid-argument', dir]);
      expect(e.message).toBe(
        `exportModel: weight '${w.originalName}' holds ${value}, outside the float16 range (|x| <= 65504); export without float16`,
      );
      expect(fs.existsSync(dir)).toBe(false);
      expect(tf.memory().numTensors).toBe(before);
      // Without float16 it exports.
      expect((await exportModel(model, dir, { format })).bytes).toBeGreaterThan(0);
      model.dispose();
    }
  });
});
