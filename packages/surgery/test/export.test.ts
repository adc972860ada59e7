import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decompose, decomposedDense, magnitudes } from '@normprune/layers';
import { fileSystem } from '@normprune/runtime';
import { exportModel, loadSparseModel, ModelFileError, prune, type SparseWeightEntry } from '../src/index';
import { toFloat16, fromFloat16 } from '../src/export';
import { expectNoLeak, maxDiff } from '../../../tools/testing/leaks';
import { halfBits, halfValues, plainCopy, roundToHalf } from './float16-reference';
import { fillAll, lenet5, rng, zeroKernelWhere, zeroUnits } from './helpers';

const root = path.join(__dirname, '..', '..', '..');
let tmp: string;

beforeAll(async () => {
  await tf.setBackend('cpu');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'normprune-surgery-export-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function prunedLenet(): tfl.LayersModel {
  const m = lenet5(true);
  const r = rng(9);
  fillAll(m, 'bias', () => r() - 0.5);
  zeroUnits(m, 'conv2', [0, 3]);
  zeroUnits(m, 'fc1', [1, 2, 3, 5, 8, 13]);
  // Kernel granularity: 60% of conv2's 2-D kernels and most fc1 weights dead.
  zeroKernelWhere(m, 'conv2', (i, o) => (i * 7 + o * 3) % 5 < 3);
  zeroKernelWhere(m, 'fc1', (i, o) => (i + 2 * o) % 5 !== 0);
  return prune(m).model;
}

const input = () => tf.randomNormal([3, 28, 28, 1], 0, 1, 'float32', 5);

/**
 * How far a float16 export of prunedLenet may predict from the float32 model, relative to the
 * output scale: measured 2.0e-4 on input(), with 5x margin (float16 is not exact; the exact
 * comparison is with a tfjs model holding the reference-rounded weights).
 */
const F16_VS_F32 = 1e-3;

function predict(m: tfl.LayersModel): Float32Array {
  return tf.tidy(() => (m.predict(input()) as tf.Tensor).dataSync() as Float32Array);
}

/** Loads `dir` in a fresh Node process that has only tfjs (no normprune code, no custom classes) and predicts `x`. */
function predictInPlainTfjs(dir: string, x?: tf.Tensor): number[] {
  const t = x ?? input();
  const shape = t.shape;
  const values = Array.from(t.dataSync());
  if (x == null) t.dispose();
  const script = `
    const tf = require('@tensorflow/tfjs-core');
    require('@tensorflow/tfjs-backend-cpu');
    const tfl = require('@tensorflow/tfjs-layers');
    const fs = require('fs'), path = require('path');
    (async () => {
      await tf.setBackend('cpu');
      const dir = process.argv[1];
      const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
      const specs = json.weightsManifest.flatMap((g) => g.weights);
      const data = Buffer.concat(json.weightsManifest.flatMap((g) => g.paths.map((p) => fs.readFileSync(path.join(dir, p)))));
      const buf = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
      const model = await tfl.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: specs, weightData: buf }));
      const x = tf.tensor(JSON.parse(process.argv[2]), JSON.parse(process.argv[3]));
      process.stdout.write(JSON.stringify(Array.from(model.predict(x).dataSync())));
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const out = execFileSync(
    process.execPath,
    ['-e', script, dir, JSON.stringify(values), JSON.stringify(shape)],
    {
      cwd: root,
      encoding: 'utf8',
    },
  );
  return JSON.parse(out);
}

/** A functional model whose hidden Dense sits in a nested Sequential; only that Dense decomposed. */
function nestedDense(): { model: tfl.LayersModel; x: tf.Tensor } {
  const inner = tfl.sequential({
    name: 'inner',
    layers: [tfl.layers.dense({ inputShape: [8], units: 6, activation: 'relu', name: 'ih' })],
  });
  const x = tfl.input({ shape: [8] });
  const y = tfl.layers.dense({ units: 3, name: 'head' }).apply(inner.apply(x)) as tfl.SymbolicTensor;
  const model = decompose(tfl.model({ inputs: x, outputs: y }), { include: ['ih'] });
  return { model, x: tf.randomNormal([4, 8], 0, 1, 'float32', 11) };
}

/** A Sequential block inside a functional model inside a Sequential; the nested layers decomposed, some groups dead. */
function nestedConv(): { model: tfl.LayersModel; x: tf.Tensor } {
  const block = tfl.sequential({
    name: 'block',
    layers: [
      tfl.layers.conv2d({
        inputShape: [6, 5, 2],
        filters: 3,
        kernelSize: 3,
        activation: 'relu',
        name: 'b_conv',
      }),
      tfl.layers.flatten({ name: 'b_flat' }),
      tfl.layers.dense({ units: 4, activation: 'tanh', name: 'b_dense' }),
    ],
  });
  const input = tfl.input({ shape: [6, 5, 2] });
  const features = block.apply(input) as tfl.SymbolicTensor;
  const head = tfl.layers.dense({ units: 5, name: 'head' }).apply(features) as tfl.SymbolicTensor;
  const middle = tfl.model({ inputs: input, outputs: head, name: 'middle' });
  const outer = tfl.sequential({ layers: [middle, tfl.layers.dense({ units: 2, name: 'top' })] });
  const model = decompose(outer, {
    granularity: { conv2d: 'filter', dense: 'input' },
    include: ['b_conv', 'b_dense', 'head'],
  });
  for (const m of magnitudes(model)) {
    tf.tidy(() => {
      const keep = tf.cast(tf.notEqual(tf.mod(tf.range(0, m.groups, 1, 'int32'), 3), 0), 'float32');
      m.magnitude.assign(tf.mul(m.magnitude, tf.reshape(keep, m.magnitude.shape)));
    });
  }
  return { model, x: tf.randomNormal([3, 6, 5, 2], 0, 1, 'float32', 12) };
}

describe('exportModel with nested models (a model used as a layer)', () => {
  it.each([
    ['a decomposed Dense in a nested Sequential', nestedDense],
    ['decomposed Conv2D and Dense one and two levels deep, some groups dead', nestedConv],
  ])("'tfjs' folds %s: plain tfjs loads it and predicts the same", async (_name, make) => {
    const { model, x } = make();
    const dir = path.join(tmp, `nested-${model.name}`);
    await expectNoLeak(() => exportModel(model, dir));
    const json = fs.readFileSync(path.join(dir, 'model.json'), 'utf8');
    expect(json).not.toMatch(/Decomposed/);
    const ours = tf.tidy(() => (model.predict(x) as tf.Tensor).dataSync() as Float32Array);
    const scale = Math.max(1, ...Array.from(ours, Math.abs));
    expect(maxDiff(ours, predictInPlainTfjs(dir, x)).abs).toBeLessThan(1e-5 * scale);
    x.dispose();
  });

  it("'sparse' folds them too and loadSparseModel predicts the same", async () => {
    const { model, x } = nestedConv();
    const dir = path.join(tmp, 'nested-sparse');
    await exportModel(model, dir, { format: 'sparse' });
    expect(fs.readFileSync(path.join(dir, 'model.json'), 'utf8')).not.toMatch(/Decomposed/);
    const loaded = await loadSparseModel(dir);
    const [ours, theirs] = tf.tidy(() =>
      [model, loaded].map((m) => (m.predict(x) as tf.Tensor).dataSync() as Float32Array),
    );
    expect(maxDiff(ours, theirs).abs).toBeLessThan(1e-5 * Math.max(1, ...Array.from(ours, Math.abs)));
    x.dispose();
  });

  it('refuses, before writing, nested models whose layers share a name (no loader could read them back)', async () => {
    const block = (name: string) => {
      const i = tfl.input({ shape: [4] });
      const o = tfl.layers.dense({ units: 4, name: 'fc' }).apply(i) as tfl.SymbolicTensor;
      return tfl.model({ inputs: i, outputs: o, name });
    };
    const x = tfl.input({ shape: [4] });
    const y = tfl.layers
      .dense({ units: 2, name: 'out' })
      .apply(block('blockB').apply(block('blockA').apply(x))) as tfl.SymbolicTensor;
    const plain = tfl.model({ inputs: x, outputs: y });
    // tfjs's own save writes it, and its loader refuses it: what exportModel no longer writes.
    const saved = path.join(tmp, 'dup-names-saved');
    await plain.save(fileSystem(saved));
    await expect(tfl.loadLayersModel(fileSystem(saved))).rejects.toThrow(/Duplicate weight name: fc\/kernel/);
    for (const model of [plain, decompose(plain)])
      for (const format of ['tfjs', 'sparse'] as const) {
        const dir = path.join(tmp, `dup-names-${format}`);
        const err = await expectNoLeak(() => exportModel(model, dir, { format }).catch((e: unknown) => e));
        expect(err).toBeInstanceOf(ModelFileError);
        expect(err).toMatchObject({ code: 'invalid-argument', file: dir });
        expect((err as Error).message).toContain(
          "exportModel: layers 'blockA/fc' and 'blockB/fc' both name a weight 'fc/kernel' (tfjs names a weight " +
            'by its layer, without the nested models around it)',
        );
        expect(fs.existsSync(dir)).toBe(false);
      }
    // One layer inside a nested model and applied by the outer one too: named as one, in both places.
    const i = tfl.input({ shape: [4] });
    const inner = block('inner');
    const again = inner.getLayer('fc');
    const o = again.apply(inner.apply(i)) as tfl.SymbolicTensor;
    const twice = tfl.model({ inputs: i, outputs: o });
    const err = (await exportModel(twice, path.join(tmp, 'dup-one-layer')).catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(
      /exportModel: the layer at '(inner\/)?fc' and '(inner\/)?fc' is one layer, inside a nested model and applied by the model around it too, so its weight 'fc\/kernel' is listed twice/,
    );
    expect(fs.existsSync(path.join(tmp, 'dup-one-layer'))).toBe(false);
  });
});

describe('exportModel of a decomposed model with a layer applied twice', () => {
  it('frees the folded copy whole (tfjs leaves a shared layer allocated) and loads back the same', async () => {
    const i = tfl.input({ shape: [4] });
    const shared = decomposedDense({ units: 4, activation: 'tanh', name: 'shared' });
    const y = tfl.layers
      .dense({ units: 2, name: 'out' })
      .apply(shared.apply(shared.apply(i))) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: i, outputs: y });
    const x = tf.randomNormal([3, 4], 0, 1, 'float32', 5);
    const ours = tf.tidy(() => (model.predict(x) as tf.Tensor).dataSync() as Float32Array);
    for (const format of ['tfjs', 'sparse'] as const) {
      const dir = path.join(tmp, `shared-${format}`);
      await expectNoLeak(async () => {
        for (let k = 0; k < 3; k++) await exportModel(model, dir, { format });
      });
      const loaded =
        format === 'tfjs' ? await tfl.loadLayersModel(fileSystem(dir)) : await loadSparseModel(dir);
      const theirs = tf.tidy(() => (loaded.predict(x) as tf.Tensor).dataSync() as Float32Array);
      expect(maxDiff(ours, theirs).abs).toBeLessThan(1e-5 * Math.max(1, ...Array.from(ours, Math.abs)));
      loaded.dispose();
    }
    x.dispose();
  });
});

describe('float16', () => {
  it('rounds like IEEE half precision', () => {
    for (const v of [0, 1, -2.5, 65504, 1e-7, 6.1e-5, 0.1, -3.14159]) {
      const back = fromFloat16(toFloat16(v));
      expect(Math.abs(back - v)).toBeLessThanOrEqual(Math.max(Math.abs(v) * 2 ** -11, 2 ** -25));
    }
    expect(toFloat16(1)).toBe(0x3c00);
    expect(toFloat16(-2)).toBe(0xc000);
    expect(toFloat16(1e6)).toBe(0x7c00);
  });

  // The bits are checked against tfjs's own float16 decoder (test/float16-reference.ts), not
  // against fromFloat16, which shares its author and its assumptions with toFloat16.
  const same = (a: number, b: number) => Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));
  const hex = (h: number) => `0x${h.toString(16).padStart(4, '0')}`;

  it.each<[string, number, number]>([
    ['1', 1, 0x3c00],
    ['-2', -2, 0xc000],
    ['0.1 (down)', Math.fround(0.1), 0x2e66],
    ['0.3 (up)', Math.fround(0.3), 0x34cd],
    ['a tie 1 + 2^-11 between 0x3c00 and 0x3c01: to the even 0x3c00', 1 + 2 ** -11, 0x3c00],
    ['a tie 1 + 3 * 2^-11 between 0x3c01 and 0x3c02: to the even 0x3c02', 1 + 3 * 2 ** -11, 0x3c02],
    ['just above the tie 1 + 2^-11: up', 1 + 2 ** -11 + 2 ** -23, 0x3c01],
    ['a tie 1 - 2^-12 between 0x3bff and 0x3c00: up to the even 0x3c00', 1 - 2 ** -12, 0x3c00],
    ['a tie 2 - 2^-11 between 0x3fff and 0x4000: carries into the exponent', 2 - 2 ** -11, 0x4000],
    ['-(1 + 2^-11): ties to even with the sign kept', -(1 + 2 ** -11), 0xbc00],
    ['the smallest normal 2^-14', 2 ** -14, 0x0400],
    ['the largest subnormal 2^-14 - 2^-24', 2 ** -14 - 2 ** -24, 0x03ff],
    ['the smallest subnormal 2^-24', 2 ** -24, 0x0001],
    ['-2^-24', -(2 ** -24), 0x8001],
    ['a subnormal tie 1.5 * 2^-24: to the even 0x0002', 3 * 2 ** -25, 0x0002],
    ['a subnormal tie 2.5 * 2^-24: to the even 0x0002', 5 * 2 ** -25, 0x0002],
    ['a tie between the largest subnormal and the smallest normal: to 0x0400', 2 ** -14 - 2 ** -25, 0x0400],
    ['0', 0, 0x0000],
    ['-0 keeps its sign', -0, 0x8000],
    ['2^-25, the tie between 0 and 2^-24: to the even 0', 2 ** -25, 0x0000],
    ['-2^-25: to -0', -(2 ** -25), 0x8000],
    ['just above 2^-25: up to 2^-24', 2 ** -25 * (1 + 2 ** -23), 0x0001],
    ['1e-9 underflows to 0', Math.fround(1e-9), 0x0000],
    ['-1e-9 underflows to -0', Math.fround(-1e-9), 0x8000],
    ['the smallest float32 subnormal underflows to 0', 2 ** -149, 0x0000],
    ['65504, the largest half', 65504, 0x7bff],
    ['just below 65520: down to 65504', 65520 - 2 ** -8, 0x7bff],
    ['65520, the tie between 65504 and 2^16: to the even Infinity', 65520, 0x7c00],
    ['1e6 overflows to Infinity', 1e6, 0x7c00],
    ['-1e6 overflows to -Infinity', -1e6, 0xfc00],
    ['the largest float32 overflows to Infinity', 3.4028234663852886e38, 0x7c00],
    ['Infinity', Infinity, 0x7c00],
    ['-Infinity', -Infinity, 0xfc00],
  ])('toFloat16 of %s gives the bits tfjs decodes to that value', (_, v, bits) => {
    expect(Math.fround(v)).toBe(v); // each input is a float32, as a weight is
    expect(hex(toFloat16(v))).toBe(hex(bits));
    // the reference agrees with the answer worked out by hand
    expect(hex(halfBits(v))).toBe(hex(bits));
  });

  it('maps NaN to a NaN pattern (exponent all ones, mantissa not zero), which tfjs decodes to NaN', () => {
    const h = toFloat16(NaN);
    expect([h & 0x7c00, (h & 0x3ff) !== 0]).toEqual([0x7c00, true]);
    expect(halfValues()[h]).toBeNaN();
    expect(fromFloat16(h)).toBeNaN();
  });

  it('fromFloat16 decodes all 65536 patterns to what tfjs decodes them to', () => {
    const table = halfValues();
    const wrong: string[] = [];
    for (let h = 0; h < 65536; h++)
      if (!same(fromFloat16(h), table[h])) wrong.push(`${hex(h)}: ${fromFloat16(h)} vs ${table[h]}`);
    expect(wrong.slice(0, 10)).toEqual([]);
  });

  it('toFloat16 gives back every half value its own bits (both zeros, subnormals, the infinities)', () => {
    const table = halfValues();
    const wrong: string[] = [];
    for (let h = 0; h < 65536; h++) {
      if (Number.isNaN(table[h])) continue;
      if (toFloat16(table[h]) !== h) wrong.push(`${table[h]}: ${hex(toFloat16(table[h]))}, not ${hex(h)}`);
    }
    expect(wrong.slice(0, 10)).toEqual([]);
  });

  it('rounds each midpoint between neighbouring halves to the even one, and the float32 values on either side to the nearer', () => {
    const table = halfValues();
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    const step = (x: number, ulps: number) => {
      f[0] = x;
      u[0] += ulps;
      return f[0];
    };
    const wrong: string[] = [];
    const check = (v: number, want: number) => {
      if (toFloat16(v) !== want) wrong.push(`${v}: ${hex(toFloat16(v))}, not ${hex(want)}`);
    };
    // k and k + 1 over every positive pair, the last one being 65504 and Infinity (2^16)
    for (let k = 0; k <= 0x7bff; k++) {
      const upper = k + 1 === 0x7c00 ? 65536 : table[k + 1];
      const mid = (table[k] + upper) / 2;
      // 12 significant bits: a float32
      if (Math.fround(mid) !== mid) wrong.push(`the midpoint ${mid} is not a float32`);
      for (const sign of [1, -1]) {
        const s = sign < 0 ? 0x8000 : 0;
        check(sign * mid, s | (k % 2 === 0 ? k : k + 1));
        check(sign * step(mid, -1), s | k);
        check(sign * step(mid, 1), s | (k + 1));
      }
    }
    expect(wrong.slice(0, 10)).toEqual([]);
  });

  it('agrees with the reference on 20000 random float32 values around the half range', () => {
    const r = rng(16);
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    const wrong: string[] = [];
    for (let n = 0; n < 20000; n++) {
      // exponents 2^-30 .. 2^17: underflow, subnormals, normals and overflow
      const exp = 97 + Math.floor(r() * 48);
      u[0] = ((r() < 0.5 ? 1 : 0) << 31) | (exp << 23) | Math.floor(r() * 2 ** 23);
      const v = f[0];
      if (toFloat16(v) !== halfBits(v)) wrong.push(`${v}: ${hex(toFloat16(v))} vs ${hex(halfBits(v))}`);
    }
    expect(wrong.slice(0, 10)).toEqual([]);
  });
});

/**
 * Two linear Dense layers whose weights sit on the edges of float16: ties (one carrying into the
 * exponent), subnormals and a subnormal tie, values that underflow to +0 or -0, and a signed
 * zero. Kernel column 2 of 'e1' is all zero (a dead group 'sparse' leaves out) and column 3
 * is not zero in float32 but underflows to zero in float16 as a whole.
 */
function edgeModel(): tfl.LayersModel {
  const m = tfl.sequential({
    layers: [
      tfl.layers.dense({ inputShape: [4], units: 5, name: 'e1' }),
      tfl.layers.dense({ units: 3, name: 'e2' }),
    ],
  });
  // rows are inputs, columns units
  const k1 = [
    [1 + 2 ** -11, 3 * 2 ** -25, 0, 1e-9, -0.5],
    [1 + 3 * 2 ** -11, 2 ** -24, 0, -1e-9, 1 / 3],
    [2 - 2 ** -11, 2 ** -14 - 2 ** -25, 0, 2 ** -25, 5 * 2 ** -25],
    [-(1 + 2 ** -11), 0.1, -0, -(2 ** -26), 1 - 2 ** -12],
  ];
  const r = rng(23);
  const ts = [
    tf.tensor2d(k1),
    tf.tensor1d([0.1, -0.2, 0, 0.3, 1 / 3]),
    tf.tensor2d(
      Array.from({ length: 15 }, () => r() - 0.5),
      [5, 3],
    ),
    tf.tensor1d([0.5, -0.25, 2 ** -20]),
  ];
  m.getLayer('e1').setWeights(ts.slice(0, 2));
  m.getLayer('e2').setWeights(ts.slice(2));
  tf.dispose(ts);
  return m;
}

describe('float16 exports against a plain tfjs model holding the reference-rounded weights', () => {
  const cases: [string, () => tfl.LayersModel, () => tf.Tensor][] = [
    ['pruned LeNet-5', prunedLenet, input],
    [
      'Dense layers with weights on the edges of float16',
      edgeModel,
      () => tf.randomNormal([5, 4], 0, 1, 'float32', 21),
    ],
  ];

  const weightsOf = (m: tfl.LayersModel) => m.getWeights().map((t) => Array.from(t.dataSync()));
  const outputs = (m: tfl.LayersModel, x: tf.Tensor) =>
    tf.tidy(() => (m.predict(x) as tf.Tensor).dataSync() as Float32Array);

  it.each(cases)(
    "'tfjs': %s: the shard holds the reference's bits, and plain tfjs predicts what the reference does",
    async (name, make, makeX) => {
      const model = make();
      const x = makeX();
      const start = tf.memory().numTensors;
      const dir = path.join(tmp, `f16-ref-${name.replace(/\W+/g, '-')}`);
      const { files } = await exportModel(model, dir, { float16: true });
      // The shard, read as half bits, is every weight (in the manifest's order) through the reference.
      const bytes = fs.readFileSync(files[1]);
      const written = new Uint16Array(
        bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
      );
      const expected = Uint16Array.from(
        model.getWeights().flatMap((t) => Array.from(t.dataSync(), halfBits)),
      );
      const wrong: string[] = [];
      expected.forEach((h, i) => h !== written[i] && wrong.push(`#${i}: ${written[i]} vs ${h}`));
      expect([written.length, wrong.slice(0, 10)]).toEqual([expected.length, []]);
      const reference = await plainCopy(model, roundToHalf);
      const loaded = await tfl.loadLayersModel(fileSystem(dir));
      expect(weightsOf(loaded)).toEqual(weightsOf(reference));
      const ref = outputs(reference, x);
      const scale = Math.max(1, ...Array.from(ref, Math.abs));
      const inPlain = maxDiff(ref, predictInPlainTfjs(dir, x)).abs;
      const inProcess = maxDiff(ref, outputs(loaded, x)).abs;
      expect(inPlain).toBeLessThanOrEqual(1e-5 * scale);
      expect(inProcess).toBeLessThanOrEqual(1e-5 * scale);
      reference.dispose();
      loaded.dispose();
      expect(tf.memory().numTensors).toBe(start);
      model.dispose();
      x.dispose();
    },
  );

  it.each(cases)(
    "'sparse': %s: loadSparseModel gives the reference's weights and outputs",
    async (name, make, makeX) => {
      const model = make();
      const x = makeX();
      const start = tf.memory().numTensors;
      const dir = path.join(tmp, `f16-ref-sparse-${name.replace(/\W+/g, '-')}`);
      await exportModel(model, dir, { format: 'sparse', float16: true });
      const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'sparse.json'), 'utf8'));
      expect(new Set(manifest.weights.map((w: SparseWeightEntry) => w.valueDtype))).toEqual(
        new Set(['float16']),
      );
      expect(manifest.weights.some((w: SparseWeightEntry) => w.encoding === 'bitmask')).toBe(true);
      const reference = await plainCopy(model, roundToHalf);
      const loaded = await loadSparseModel(dir);
      // A group left out (all zero in float32, -0 included) comes back as +0: zeros compared by value.
      const unsigned = (m: tfl.LayersModel) => weightsOf(m).map((w) => w.map((v) => v + 0));
      expect(unsigned(loaded)).toEqual(unsigned(reference));
      const ref = outputs(reference, x);
      const scale = Math.max(1, ...Array.from(ref, Math.abs));
      expect(maxDiff(ref, outputs(loaded, x)).abs).toBeLessThanOrEqual(1e-5 * scale);
      reference.dispose();
      loaded.dispose();
      expect(tf.memory().numTensors).toBe(start);
      model.dispose();
      x.dispose();
    },
  );
});

describe('exportModel', () => {
  it("'tfjs' loads in a plain TensorFlow.js process and predicts the same", async () => {
    const model = prunedLenet();
    const dir = path.join(tmp, 'tfjs');
    const { bytes, files } = await exportModel(model, dir);
    expect(files.map((f) => path.basename(f))).toEqual(['model.json', 'group1-shard1of1.bin']);
    expect(bytes).toBe(files.reduce((a, f) => a + fs.statSync(f).size, 0));
    const ours = predict(model);
    expect(maxDiff(ours, predictInPlainTfjs(dir)).abs).toBeLessThan(1e-6);
  });

  it("'tfjs' with float16 halves the weight bytes and still loads in plain TensorFlow.js", async () => {
    const model = prunedLenet();
    const full = await exportModel(model, path.join(tmp, 'f32'));
    const dir = path.join(tmp, 'f16');
    const half = await exportModel(model, dir, { float16: true });
    const shard = (r: { files: string[] }) => fs.statSync(r.files[1]).size;
    expect(shard(half)).toBe(shard(full) / 2);
    const ours = predict(model);
    const { abs } = maxDiff(ours, predictInPlainTfjs(dir));
    // Against the float32 model: float16 keeps 11 significant bits (weight errors up to 2^-11
    // relative). Measured 2.0e-4 of the output scale here; 1e-3 leaves room. Exactness is
    // checked against a model holding the reference-rounded weights (see above).
    expect(abs).toBeLessThan(F16_VS_F32 * Math.max(1, ...Array.from(ours, Math.abs)));
  });

  it("'sparse' round-trips exactly and is smaller than 'tfjs'", async () => {
    const model = prunedLenet();
    const dense = await exportModel(model, path.join(tmp, 'dense-ref'));
    const dir = path.join(tmp, 'sparse');
    const sparse = await exportModel(model, dir, { format: 'sparse' });
    expect(sparse.files.map((f) => path.basename(f))).toEqual(['model.json', 'sparse.json', 'sparse.bin']);
    expect(sparse.bytes).toBeLessThan(dense.bytes);
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'sparse.json'), 'utf8'));
    expect(manifest.weights.find((w: any) => w.name.startsWith('conv2/kernel')).encoding).toBe('bitmask');
    const loaded = await loadSparseModel(dir);
    for (const layer of model.layers) {
      const a = layer.getWeights();
      const b = loaded.getLayer(layer.name).getWeights();
      a.forEach((t, i) => expect(Array.from(b[i].dataSync())).toEqual(Array.from(t.dataSync())));
    }
    expect(maxDiff(predict(model), predict(loaded)).abs).toBe(0);
  });

  it("plain tfjs refuses a 'sparse' directory instead of loading random weights", async () => {
    const model = prunedLenet();
    const dir = path.join(tmp, 'sparse-plain');
    await exportModel(model, dir, { format: 'sparse' });
    await expect(tfl.loadLayersModel(fileSystem(dir))).rejects.toThrow(/not set/);
  });

  it("'sparse' with float16", async () => {
    const model = prunedLenet();
    const dir = path.join(tmp, 'sparse16');
    const r32 = await exportModel(model, path.join(tmp, 'sparse32'), { format: 'sparse' });
    const r16 = await exportModel(model, dir, { format: 'sparse', float16: true });
    const bin = (r: { files: string[] }) => fs.statSync(r.files[2]).size;
    expect(r16.bytes).toBeLessThan(r32.bytes);
    expect(bin(r16)).toBeLessThan(bin(r32) * 0.6);
    const loaded = await loadSparseModel(dir);
    const ours = predict(model);
    // The same weights as the 'tfjs' float16 export: measured 2.0e-4 of the output scale.
    expect(maxDiff(ours, predict(loaded)).abs).toBeLessThan(
      F16_VS_F32 * Math.max(1, ...Array.from(ours, Math.abs)),
    );
  });

  it('leaves no tensor behind', async () => {
    const model = prunedLenet();
    await expectNoLeak(async () => {
      await exportModel(model, path.join(tmp, 'leak-tfjs'), { float16: true });
      await exportModel(model, path.join(tmp, 'leak-sparse'), { format: 'sparse' });
    });
  });

  it('refuses float16 for weights outside its range', async () => {
    const m = tfl.sequential({
      layers: [
        tfl.layers.dense({
          units: 2,
          inputShape: [2],
          name: 'd',
          biasInitializer: tfl.initializers.constant({ value: 1e5 }),
        }),
      ],
    });
    await expect(exportModel(m, path.join(tmp, 'range'), { float16: true })).rejects.toThrow(
      /'d\/bias.*float16 range/,
    );
  });

  it('a second export into the same directory replaces the first, in either format', async () => {
    const a = prunedLenet();
    const b = prunedLenet();
    const r = rng(99);
    fillAll(b, 'bias', () => r() - 0.5);
    expect(maxDiff(predict(a), predict(b)).abs).toBeGreaterThan(1e-3);
    const dir = path.join(tmp, 'switch');
    const mine = path.join(dir, 'notes.txt');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(mine, 'kept');
    await exportModel(a, dir, { format: 'sparse' });
    const tfjs = await exportModel(b, dir);
    // The sparse files are gone, so nothing can load a's weights into b's topology.
    expect(fs.readdirSync(dir).sort()).toEqual(['group1-shard1of1.bin', 'model.json', 'notes.txt']);
    expect(maxDiff(predict(b), predictInPlainTfjs(dir)).abs).toBeLessThan(1e-6);
    await expect(loadSparseModel(dir)).rejects.toThrow(/is a 'tfjs' export .*loadLayersModel/);
    await exportModel(a, dir, { format: 'sparse' });
    expect(fs.readdirSync(dir).sort()).toEqual(['model.json', 'notes.txt', 'sparse.bin', 'sparse.json']);
    expect(fs.existsSync(tfjs.files[1])).toBe(false);
    expect(maxDiff(predict(a), predict(await loadSparseModel(dir))).abs).toBe(0);
    expect(fs.readFileSync(mine, 'utf8')).toBe('kept');
  });

  it("a 'sparse' export flushes each file before its rename and the folder after the renames", async () => {
    const a = prunedLenet();
    const dir = path.join(tmp, 'durable');
    await exportModel(a, dir, { format: 'sparse' });
    const events: string[] = [];
    const open = fs.promises.open;
    const rename = fs.promises.rename;
    const spies = [
      jest.spyOn(fs.promises, 'open').mockImplementation(async (...args: Parameters<typeof open>) => {
        const handle = await open(...args);
        const sync = handle.sync.bind(handle);
        const name = path.resolve(String(args[0])) === dir ? 'the folder' : 'a file';
        handle.sync = async () => {
          events.push(`sync ${name}`);
          return sync();
        };
        return handle;
      }),
      jest.spyOn(fs.promises, 'rename').mockImplementation(async (...args: Parameters<typeof rename>) => {
        events.push(`rename to ${path.basename(String(args[1]))}`);
        return rename(...args);
      }),
    ];
    try {
      // Over an earlier export: its model.json is first repointed at backups, then the new files go in.
      await exportModel(a, dir, { format: 'sparse' });
    } finally {
      spies.forEach((s) => s.mockRestore());
    }
    expect(events).toEqual([
      ...Array(5).fill('sync a file'),
      'rename to model.json',
      'sync the folder',
      'rename to sparse.bin',
      'rename to sparse.json',
      'rename to model.json',
      'sync the folder',
    ]);
    expect(maxDiff(predict(a), predict(await loadSparseModel(dir))).abs).toBe(0);
  });

  it("a 'sparse' export over another loads the one or the other whole, wherever a kill stops it", async () => {
    // Two pruned models of different shapes: a model.json of one beside the other's
    // sparse.json would not load (or would load wrong weights).
    const a = prunedLenet();
    const bigger = lenet5(true);
    const r = rng(5);
    fillAll(bigger, 'bias', () => r() - 0.5);
    zeroUnits(bigger, 'fc1', [4]);
    const b = prune(bigger).model;
    bigger.dispose();
    expect(b.countParams()).not.toBe(a.countParams());
    const [pa, pb] = [predict(a), predict(b)];
    const writes = ['rename', 'link', 'copyFile', 'unlink'] as const;
    // Stop the export of b after each of its file-system changes in turn, as a kill would.
    const stops: number[] = [];
    for (let stopAt = 1; ; stopAt++) {
      const dir = path.join(tmp, `killed-${stopAt}`);
      await exportModel(a, dir, { format: 'sparse' });
      let n = 0;
      let reached!: () => void;
      const stopped = new Promise<void>((res) => (reached = res));
      const spies = writes.map((w) => {
        const real = fs.promises[w] as (...args: any[]) => Promise<any>;
        return jest.spyOn(fs.promises, w).mockImplementation(((...args: any[]) => {
          if (++n < stopAt) return real.apply(fs.promises, args);
          reached();
          return new Promise(() => undefined); // the process is gone: nothing more happens
        }) as any);
      });
      let finished = false;
      try {
        // Whichever comes first: the stop, or the end of an export that made
        // fewer changes than stopAt (no timer: a slow machine must not decide).
        const done = exportModel(b, dir, { format: 'sparse' }).then(() => (finished = true));
        await Promise.race([stopped, done]);
      } finally {
        spies.forEach((s) => s.mockRestore());
      }
      if (finished || n < stopAt) break; // b's export completed before the stop
      const loaded = await loadSparseModel(dir);
      const got = predict(loaded);
      loaded.dispose();
      expect([maxDiff(pa, got).abs, maxDiff(pb, got).abs]).toContain(0);
      // The next export (another process, after the kill) puts things right and leaves no leftovers.
      await exportModel(b, dir, { format: 'sparse' });
      expect(maxDiff(pb, predict(await loadSparseModel(dir))).abs).toBe(0);
      // What is left beside the export is the stopped one's (this process's, which looks alive).
      const others = fs
        .readdirSync(dir)
        .filter((f) => !f.includes(`.${process.pid}-`) && !f.includes(`-${process.pid}-`));
      expect(others.sort()).toEqual(['model.json', 'sparse.bin', 'sparse.json']);
      stops.push(stopAt);
      if (stopAt > 40) throw new Error('the export never finished');
    }
    // The backup link, model.json repointed, the three renames into place, the two backups removed.
    expect(stops.length).toBeGreaterThanOrEqual(7);
    a.dispose();
    b.dispose();
  });

  it('takes a file:// URL like fileSystem does, and refuses a .json path, a file, or no model', async () => {
    const model = prunedLenet();
    const dir = path.join(tmp, 'url');
    const cwd = process.cwd();
    process.chdir(tmp);
    try {
      const r = await exportModel(model, `file://${dir}`, { format: 'sparse' });
      expect(r.files[0]).toBe(path.join(dir, 'model.json'));
      expect(maxDiff(predict(model), predict(await loadSparseModel(`file://${dir}`))).abs).toBe(0);
      await exportModel(model, `file://${dir}`);
      expect(maxDiff(predict(model), predictInPlainTfjs(dir)).abs).toBeLessThan(1e-6);
      // Nothing lands in the working directory under a literal "file:" folder.
      expect(fs.existsSync(path.join(tmp, 'file:'))).toBe(false);
    } finally {
      process.chdir(cwd);
    }
    await expect(exportModel(model, path.join(tmp, 'x', 'model.json'))).rejects.toThrow(
      /names a \.json file; exportModel takes the directory that holds model\.json: pass '.*x'/,
    );
    expect(fs.existsSync(path.join(tmp, 'x'))).toBe(false);
    const file = path.join(tmp, 'a-file');
    fs.writeFileSync(file, '');
    await expect(exportModel(model, file)).rejects.toThrow(/a-file' exists and is not a directory/);
    if (fs.existsSync('/proc/self'))
      await expect(exportModel(model, '/proc/normprune-test/x')).rejects.toThrow(
        /exportModel: cannot create folder \/proc\/normprune-test\/x: ENOENT/,
      );
    await expect(exportModel(model, 42 as never)).rejects.toThrow(/dir must be a directory path .*got 42/);
    await expect(exportModel(null as never, dir)).rejects.toThrow(/exportModel: expected a tfjs LayersModel/);
    // Options are checked before anything is written.
    const unwritten = path.join(tmp, 'never-written');
    await expect(exportModel(model, unwritten, { format: 'dense' as never })).rejects.toThrow(
      /exportModel: unknown format 'dense' \(use 'tfjs' or 'sparse'\)/,
    );
    await expect(exportModel(model, unwritten, 'sparse' as never)).rejects.toThrow(
      /exportModel: options must be an object such as \{ format: 'sparse', float16: true \}, got "sparse" \(a string\)/,
    );
    await expect(exportModel(model, unwritten, null as never)).rejects.toThrow(
      /options must be an object .*got null/,
    );
    for (const float16 of ['false', 'yes', 1])
      await expect(exportModel(model, unwritten, { float16: float16 as never })).rejects.toThrow(
        /exportModel: float16 must be true \(weights stored as float16, half the bytes\) or false, got/,
      );
    expect(fs.existsSync(unwritten)).toBe(false);
    // A model.json path is taken, as fileSystem takes it: this one is a 'tfjs' export's.
    await expect(loadSparseModel(path.join(dir, 'model.json'))).rejects.toThrow(
      /loadSparseModel: .*model\.json is a 'tfjs' export .*load it with tfl\.loadLayersModel\(fileSystem\(dir\)\)/,
    );
  });

  it('reports a truncated sparse file by name', async () => {
    const model = prunedLenet();
    const dir = path.join(tmp, 'broken');
    await exportModel(model, dir, { format: 'sparse' });
    const bin = path.join(dir, 'sparse.bin');
    fs.truncateSync(bin, 100);
    await expect(loadSparseModel(dir)).rejects.toThrow(
      /loadSparseModel: .*broken\/sparse.bin is truncated \(weight '.*' needs bytes up to \d+, file has 100\): copy or export the model again/,
    );
    const manifestFile = path.join(dir, 'sparse.json');
    const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8'));
    // A manifest is not trusted to name a file outside the folder.
    fs.writeFileSync(manifestFile, JSON.stringify({ ...manifest, data: '../outside.bin' }));
    await expect(loadSparseModel(dir)).rejects.toThrow(
      /sparse.json names the data file "..\/outside.bin", not a file in/,
    );
    fs.writeFileSync(manifestFile, '{"format": "normprune-sparse", ');
    await expect(loadSparseModel(dir)).rejects.toThrow(
      /sparse.json is not valid JSON \(.*\); export the model again/,
    );
  });
});

describe('loadSparseModel: damaged sparse.json / sparse.bin / model.json', () => {
  // A Dense kernel [4, 6] with every other weight dead (stored 'bitmask'), and its bias ('dense').
  let dir: string;
  let manifestFile: string;
  let modelFile: string;
  let manifest: { weights: Record<string, unknown>[] } & Record<string, unknown>;
  let modelJson: string;
  let model: tfl.Sequential;

  beforeAll(async () => {
    model = tfl.sequential({ layers: [tfl.layers.dense({ inputShape: [4], units: 6, name: 'd' })] });
    zeroKernelWhere(model, 'd', (i, o) => (i + o) % 2 === 0);
    dir = path.join(tmp, 'damaged');
    await exportModel(model, dir, { format: 'sparse' });
    manifestFile = path.join(dir, 'sparse.json');
    modelFile = path.join(dir, 'model.json');
    manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8'));
    modelJson = fs.readFileSync(modelFile, 'utf8');
    expect(manifest.weights.map((w) => w.encoding)).toEqual(['bitmask', 'dense']);
  });
  afterAll(() => model.dispose());
  afterEach(() => {
    fs.writeFileSync(manifestFile, JSON.stringify(manifest));
    fs.writeFileSync(modelFile, modelJson);
  });

  it('loads the undamaged export exactly', async () => {
    const again = await loadSparseModel(dir);
    const x = tf.ones([1, 4]);
    expect(maxDiff(predict1(model, x), predict1(again, x)).abs).toBe(0);
    x.dispose();
    again.dispose();
  });

  function predict1(m: tfl.LayersModel, x: tf.Tensor): Float32Array {
    return tf.tidy(() => (m.predict(x) as tf.Tensor).dataSync() as Float32Array);
  }

  const kernel = (edit: Record<string, unknown>) => (m: typeof manifest) => ({
    ...m,
    weights: [{ ...m.weights[0], ...edit }, m.weights[1]],
  });
  const bias = (edit: Record<string, unknown>) => (m: typeof manifest) => ({
    ...m,
    weights: [m.weights[0], { ...m.weights[1], ...edit }],
  });

  it.each<[string, (m: typeof manifest) => unknown, string]>([
    ['weights that is not an array', (m) => ({ ...m, weights: {} }), '"weights" must be an array'],
    [
      'a weight that is null',
      (m) => ({ ...m, weights: [null, m.weights[1]] }),
      'weights[0]: it is not an object',
    ],
    ['a weight without a name', kernel({ name: 7 }), 'weights[0]: "name" must be a non-empty string'],
    [
      'a negative dimension',
      bias({ shape: [-6] }),
      'weights[1] ("d/bias"): "shape" must be an array of non-negative integers',
    ],
    [
      'a value dtype other than float32/float16',
      bias({ valueDtype: 'int32' }),
      'weights[1] ("d/bias"): "valueDtype" must be "float32" or "float16"',
    ],
    [
      'an unknown encoding',
      bias({ encoding: 'rle' }),
      'weights[1] ("d/bias"): "encoding" must be "dense" or "bitmask"',
    ],
    [
      'a negative offset',
      bias({ offset: -24 }),
      'weights[1] ("d/bias"): "offset", "maskBytes" and "values" must be non-negative integers',
    ],
    [
      'a fractional value count',
      bias({ values: 5.5 }),
      'weights[1] ("d/bias"): "offset", "maskBytes" and "values" must be non-negative integers',
    ],
    [
      'a dense weight with fewer values than its shape',
      bias({ values: 5 }),
      'weights[1] ("d/bias"): a \'dense\' weight of shape [6] stores 6 values and no bitmask, not 5 values and 0 bitmask bytes',
    ],
    [
      'a dense weight with a bitmask',
      bias({ maskBytes: 1 }),
      'weights[1] ("d/bias"): a \'dense\' weight of shape [6] stores 6 values and no bitmask, not 6 values and 1 bitmask bytes',
    ],
    [
      'a bitmask shorter than its shape needs',
      kernel({ maskBytes: 2 }),
      'weights[0] ("d/kernel"): a \'bitmask\' weight of shape [4,6] has a bitmask of 3 bytes (a bit per group of its last two axes), not 2',
    ],
    [
      'a bitmask longer than its shape needs',
      kernel({ maskBytes: 4 }),
      'weights[0] ("d/kernel"): a \'bitmask\' weight of shape [4,6] has a bitmask of 3 bytes (a bit per group of its last two axes), not 4',
    ],
    [
      'a bitmask weight of rank 1',
      kernel({ shape: [24] }),
      'weights[0] ("d/kernel"): a \'bitmask\' weight needs at least 2 axes, shape is [24]',
    ],
    [
      'more values than the set bits',
      kernel({ values: 13 }),
      'weights[0] ("d/kernel"): its bitmask stores 12 groups of 1 values (12 values), but "values" says 13',
    ],
    [
      'fewer values than the set bits',
      kernel({ values: 11 }),
      'weights[0] ("d/kernel"): its bitmask stores 12 groups of 1 values (12 values), but "values" says 11',
    ],
    [
      'a huge shape behind a small bitmask',
      kernel({ shape: [1e6, 1e6, 4, 6] }),
      'weights[0] ("d/kernel"): its shape [1000000,1000000,4,6] has 24000000000000 elements, more than loadSparseModel holds (268435456)',
    ],
    [
      'a duplicated name',
      bias({ name: 'd/kernel' }),
      'weights[1] ("d/kernel"): the name is also weights[0]\'s',
    ],
  ])('refuses %s, naming sparse.json', async (_, damage, why) => {
    fs.writeFileSync(manifestFile, JSON.stringify(damage(manifest)));
    const err = (await loadSparseModel(dir).catch((e: Error) => e)) as Error;
    expect(err.message).toBe(`loadSparseModel: ${manifestFile}: ${why}; export the model again`);
    expect(err).toBeInstanceOf(ModelFileError);
    expect(err).toMatchObject({ code: 'damaged', file: manifestFile });
  });

  it('tells its failures apart by code, as fileSystem does, naming the file', async () => {
    const codeOf = async (d: string) => {
      const e = await loadSparseModel(d).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(ModelFileError);
      return { code: (e as ModelFileError).code, file: (e as ModelFileError).file };
    };
    const nowhere = path.join(tmp, 'nothing-exported');
    expect(await codeOf(nowhere)).toEqual({ code: 'missing', file: path.join(nowhere, 'model.json') });
    expect(await codeOf(path.join(dir, 'sparse.json'))).toEqual({
      code: 'invalid-argument',
      file: path.join(dir, 'sparse.json'),
    });
    fs.writeFileSync(manifestFile, JSON.stringify({ ...manifest, data: '../outside.bin' }));
    expect(await codeOf(dir)).toEqual({ code: 'unsafe-path', file: manifestFile });
    fs.writeFileSync(manifestFile, JSON.stringify({ ...manifest, data: 'gone.bin' }));
    expect(await codeOf(dir)).toEqual({ code: 'damaged', file: path.join(dir, 'gone.bin') });
    fs.writeFileSync(modelFile, '{"modelTopology": ');
    expect(await codeOf(dir)).toEqual({ code: 'damaged', file: modelFile });
    const tfjs = path.join(tmp, 'a-tfjs-export');
    await exportModel(model, tfjs);
    expect(await codeOf(tfjs)).toEqual({ code: 'unsupported', file: path.join(tfjs, 'model.json') });
  });

  it.each([
    ['model.json', 'EACCES', 'permission denied'],
    ['sparse.json', 'EIO', 'i/o error'],
    ['sparse.bin', 'EACCES', 'permission denied'],
  ])(
    'a %s that cannot be read (%s, not ENOENT) is read-failed, naming the file, with the fs error as its cause',
    async (name, code, text) => {
      const file = path.join(dir, name);
      const failure = Object.assign(new Error(`${code}: ${text}, open '${file}'`), {
        code,
        syscall: 'open',
        path: file,
      });
      const readFile = fs.promises.readFile;
      const spy = jest
        .spyOn(fs.promises, 'readFile')
        .mockImplementation(((f: unknown, ...rest: unknown[]) =>
          String(f) === file ? Promise.reject(failure) : (readFile as any)(f, ...rest)) as any);
      let err: unknown;
      let read: string[] = [];
      try {
        err = await loadSparseModel(dir).catch((e: unknown) => e);
        read = spy.mock.calls.map((c) => String(c[0]));
      } finally {
        spy.mockRestore();
      }
      // read in this order, up to the one that failed
      const order = ['model.json', 'sparse.json', 'sparse.bin'];
      expect(read).toEqual(order.slice(0, order.indexOf(name) + 1).map((f) => path.join(dir, f)));
      expect(err).toBeInstanceOf(ModelFileError);
      expect(err).toMatchObject({ name: 'ModelFileError', code: 'read-failed', file, cause: failure });
      expect((err as Error).message).toBe(
        `loadSparseModel: cannot read ${file}: ${code}: ${text}, open '${file}'`,
      );
      // the same folder loads once the file reads again
      const again = await loadSparseModel(dir);
      again.dispose();
    },
  );

  it('refuses a weight the topology lacks or misses, naming both files, and frees the model', async () => {
    const before = tf.memory().numTensors;
    fs.writeFileSync(manifestFile, JSON.stringify({ ...manifest, weights: [manifest.weights[0]] }));
    // sparse.bin cut after the kernel's record, as the manifest says (bytes past it are refused).
    const binFile = path.join(dir, 'sparse.bin');
    const bin = fs.readFileSync(binFile);
    fs.writeFileSync(binFile, bin.subarray(0, manifest.weights[1].offset as number));
    await expect(loadSparseModel(dir)).rejects.toThrow(
      `loadSparseModel: the weights of ${manifestFile} do not fit the model in ${modelFile} ` +
        '(1 of 2 weights are not set: d/bias); export the model again',
    );
    fs.writeFileSync(binFile, bin);
    fs.writeFileSync(manifestFile, JSON.stringify(kernel({ name: 'other' })(manifest)));
    await expect(loadSparseModel(dir)).rejects.toThrow(
      `loadSparseModel: the weights of ${manifestFile} do not fit the model in ${modelFile} (`,
    ); // the model built for the weights is disposed when they are refused
    expect(tf.memory().numTensors).toBe(before);
  });

  it.each([
    ['null', 'null'],
    ['an array', '[]'],
    ['without modelTopology', '{"weightsManifest": []}'],
  ])('refuses a model.json that is %s', async (_, text) => {
    fs.writeFileSync(modelFile, text);
    await expect(loadSparseModel(dir)).rejects.toThrow(
      `loadSparseModel: ${modelFile} is not a model.json (a JSON object with "modelTopology"); export the model again`,
    );
  });

  it.each([
    ['null', 'null'],
    ['an array', '[]'],
  ])('refuses a sparse.json that is %s', async (_, text) => {
    fs.writeFileSync(manifestFile, text);
    await expect(loadSparseModel(dir)).rejects.toThrow(
      `loadSparseModel: ${manifestFile} is not a normprune-sparse v1 manifest`,
    );
  });

  it.each(['../sparse.json', '/etc/passwd', 'sub/../../x.json'])(
    'refuses a sparseManifest outside the folder (%s)',
    async (name) => {
      fs.writeFileSync(modelFile, JSON.stringify({ ...JSON.parse(modelJson), sparseManifest: name }));
      await expect(loadSparseModel(dir)).rejects.toThrow(
        `names the manifest ${JSON.stringify(name)}, not a file in ${dir}`,
      );
    },
  );
});
